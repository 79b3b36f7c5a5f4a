"""The Data tab: choose data, lint it with the chosen model's tokenizer, read the report, fix and split.

Also: a column mapping for tables of other column names (studio.data.mapping: proposed from the names,
changeable, previewed, applied before the lint) and dismissals of findings that are wrong for this data
(studio.data.dismissals: with a reason, per finding or per rule). Both live in the source dict (the
`source_state`), so every re-check keeps them, and both are saved in the dataset's manifest; a file
checked again takes them over from the caller's own saved dataset of the same file only.

Thin UI: the logic lives in studio/data (load, formats, mapping, lint, dismissals, stats, clean, store,
rowview). Handlers are module-level functions so tests can call them directly. Every one is wired through
ui/guard.py (studio.access): in public mode files come only from the upload box, the bundled samples or a
Hub download (made without the server's token), models only from the Hub or the studio's models folder, and
a saved dataset belongs to the visitor who saved it (within their quota). Column names and dismissal
reasons are user text: they go through studio.escape wherever they are shown.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gradio as gr

from studio import access, escape, paths, quotas
from studio.data import clean, dismissals, pipeline, rowview, store
from studio.data import mapping as mapping_module
from studio.data import stats as stats_module
from studio.data.lint import context_length
from studio.data.load import load_hub
from studio.data.mapping import ColumnMapping
from studio.data.rowview import ROW_VIEW_CSS
from studio.data.rules.secrets import mask_row
from studio.data.stats import compute_stats, error_rows
from studio.data.store import SAMPLES_DIR, bundled_samples
from studio.errors import StudioError
from studio.models import catalog, loading
from studio.ui.guard import guarded
from studio.ui.shared import Shared, download_copy, message_markdown
from studio.ui.wiring import Parts, wired

INTRO = (
    "**What am I looking at?** Your training data, checked row by row *before* you spend compute on it. "
    "Pick a file (or start with the sample), read the verdict and the flagged rows, then **Fix and split** "
    "to save a clean train/validation set for the Train tab."
)
UPLOAD_TYPES = [".jsonl", ".json", ".csv", ".parquet", ".gz", ".zip"]
SOURCE_KINDS = ["Sample", "Upload a file", "Hugging Face Hub"]
SOURCE_BOXES = ("sample_box", "upload_box", "hub_box")  # the inputs of each kind, in the same order
FINDING_COLUMNS = ["Severity", "Rule", "Row", "Message", "Hint"]
SEVERITY_LABELS = {"E": "error", "W": "warning", "I": "info"}
# Okabe-Ito colours (colour-blind safe), same as the plots.
SEVERITY_COLOURS = {"E": "#D55E00", "W": "#B8860B", "I": "#0072B2"}
SEVERITY_SYMBOLS = {"E": "✕", "W": "!", "I": "i"}
SEVERITY_FILTERS = ["All", "Errors", "Warnings", "Info"]
_FILTER_TO_SEVERITY = {"Errors": "E", "Warnings": "W", "Info": "I"}
MAX_TABLE_ROWS = 2000
DISMISS_SCOPES = ["This finding only", "Every finding of this rule in this dataset"]
NO_COLUMN = "(none)"
DEFAULT_BATCH_SIZE = 8
FALLBACK_CONTEXT = 2048

VERDICT_CSS = """
.dv-verdict { border-radius: 10px; padding: 14px 18px; border: 2px solid; }
.dv-verdict h3 { margin: 0 0 4px 0; font-size: 1.25em; }
.dv-verdict p { margin: 2px 0; }
.dv-ready { border-color: #009E73; background: #009E7318; }
.dv-warn { border-color: #E69F00; background: #E69F0018; }
.dv-blocked { border-color: #D55E00; background: #D55E0018; }
.dv-idle { border-color: rgba(127,127,127,0.4); border-style: dashed; opacity: 0.85; }
.dv-counts span { display: inline-block; margin-right: 16px; font-weight: 600; }
.dv-icon { display: inline-block; width: 1.5em; height: 1.5em; line-height: 1.5em; border-radius: 50%; color: white;
           text-align: center; font-weight: 800; margin-right: 8px; font-size: 0.9em; vertical-align: 0.1em; }
.dv-dot { display: inline-block; width: 0.7em; height: 0.7em; border-radius: 50%; margin-right: 5px; }
"""


def severity_badge(severity: str) -> str:
    colour = SEVERITY_COLOURS.get(severity, "#999999")
    return f'<span style="color:{colour};font-weight:700">● {SEVERITY_LABELS.get(severity, severity)}</span>'


# ---------------------------------------------------------------- helpers (no gradio needed)


def _samples() -> list[dict]:
    return bundled_samples()


def model_choices() -> list[tuple[str, str]]:
    return [(entry.label, entry.ref) for entry in catalog.entries()]


def get_tokenizer(model_ref: str, progress=None):
    """The model's tokenizer from a bounded cache (loading the bundled one may convert it once)."""
    access.check_model_ref((model_ref or "").strip())
    return loading.cached_tokenizer(model_ref, progress=progress)


def model_context(tokenizer) -> int | None:
    return context_length(tokenizer)


def source_from_sample(name: str) -> dict:
    for sample in _samples():
        if sample["name"] == name or sample["path"] == name:
            return {"kind": "sample", "path": sample["path"], "name": Path(sample["path"]).name}
    raise StudioError(f"There is no bundled sample called '{name}'.", "Pick one from the list.")


def source_from_upload(file_path: str | None) -> dict | None:
    if not file_path:
        return None
    file_path = access.check_upload_path(file_path)
    return {"kind": "upload", "path": str(file_path), "name": Path(str(file_path)).name}


def _check_source(source: dict) -> None:
    """A source (from this session's state) must still name a file this caller may read: the bundled samples or
    an upload / Hub download (public mode)."""
    if access.is_public() and access.inside(source.get("path") or "", SAMPLES_DIR) is None:
        access.check_upload_path(source.get("path"))


def source_from_hub(dataset_id: str, split: str = "train") -> dict:
    """Download a Hub dataset (when online) into the uploads folder as gzipped JSONL, so it lints like a file
    (gzipped: the upload limit then applies to about the download's size, the decoded-size limit to the rows)."""
    import gzip
    import json

    result = load_hub(dataset_id, split=(split or "train").strip())
    name = paths.safe_name(f"{dataset_id.replace('/', '__')}-{split}", default="hub-dataset") + ".jsonl.gz"
    target = paths.uploads_dir() / f"{paths.new_id()}-{name}"
    text = "".join(json.dumps(row.raw, ensure_ascii=False, default=str) + "\n" for row in result.rows)
    paths.atomic_write_bytes(target, gzip.compress(text.encode("utf-8"), compresslevel=1))
    return {"kind": "hub", "path": str(target), "name": name, "hub_id": dataset_id}


def _error_rows(report) -> dict[int, list]:
    return error_rows(report.findings)


def verdict_html(report, stats: dict | None = None) -> str:
    verdict = pipeline.verdict_of(report)
    counts = report.counts_by_severity
    numbers = {row.number for row in report.rows}
    bad_rows = len(set(_error_rows(report)) & numbers)
    unreadable = len(set(_error_rows(report)) - numbers)
    total = len(report.rows)
    file_errors = [f for f in report.findings if f.severity == "E" and f.row is None]
    if verdict == "blocked":
        title, css, symbol, colour = "Blocked as it is", "dv-blocked", "✕", SEVERITY_COLOURS["E"]
        parts = []
        good = total - bad_rows
        if (bad_rows or unreadable) and good > 0:
            lines = f" (and {unreadable} line{'s' if unreadable != 1 else ''} could not be read)" if unreadable else ""
            parts.append(
                f"{bad_rows} of {total} rows have errors that would crash training or teach the wrong thing{lines}. "
                f"<b>Fix and split</b> sets them aside and keeps the {good} good rows."
            )
        elif total and not good:
            parts.append("No row can be used as it is: see the errors below.")
        for finding in file_errors[:2]:
            parts.append(f"{escape.html(finding.message)} <i>{escape.html(finding.hint)}</i>")
        detail = "</p><p>".join(parts) or "See the errors below."
    elif verdict == "warnings":
        title, css, symbol, colour = "Ready, with warnings", "dv-warn", "!", "#E69F00"
        detail = "Training will run, but the warnings below are likely to hurt quality. Read them, then Fix and split."
    else:
        title, css, symbol, colour = "Ready to train", "dv-ready", "✓", "#009E73"
        detail = "No errors or warnings. Fix and split to save a train/validation set."
    dots = "".join(
        f'<span><span class="dv-dot" style="background:{SEVERITY_COLOURS[key]}"></span>{counts[key]} {name}'
        f"{'s' if counts[key] != 1 else ''}</span>"
        for key, name in (("E", "error"), ("W", "warning"), ("I", "note"))
    )
    counts_html = f'<p class="dv-counts"><span>{total} rows</span>{dots}</p>'
    icon = f'<span class="dv-icon" style="background:{colour}">{symbol}</span>'
    return (
        f'<div class="dv-verdict {css}" data-verdict="{verdict}"><h3>{icon}{title}</h3><p>{detail}</p>'
        f"{counts_html}</div>"
    )


def idle_verdict_html(text: str = "No data checked yet: pick the sample or upload a file above.") -> str:
    return f'<div class="dv-verdict dv-idle" data-verdict="none"><p>{escape.html(text)}</p></div>'


def format_markdown(
    report, source: dict, model_label: str | None, max_length: int | None, stats: dict | None = None
) -> str:
    formats: dict[str, int] = {}
    mappings: dict[str, int] = {}
    for row in report.rows:
        if row.format:
            formats[row.format] = formats.get(row.format, 0) + 1
        mapping = (row.extra or {}).get("mapping")
        if mapping:
            mappings[str(mapping)] = mappings.get(str(mapping), 0) + 1
    detected = report.format or (max(formats, key=formats.get) if formats else "unknown")
    lines = [f"**Source:** {escape.md_code(source.get('name', ''))} · **Detected format:** {escape.md_code(detected)}"]
    if len(formats) > 1:
        lines[0] += (
            " (" + ", ".join(f"{escape.md_inline(name)}: {count} rows" for name, count in sorted(formats.items())) + ")"
        )
    if model_label:
        lines[0] += (
            f" · **Model:** {escape.md_inline(model_label)} · **Max length:** {max_length:,}"
            if max_length
            else f" · **Model:** {escape.md_inline(model_label)}"
        )
    if mappings:
        shown = "; ".join(f"{mapping} ({count} rows)" for mapping, count in list(mappings.items())[:4])
        lines.append(f"**Converted to chat messages:** {escape.md_inline(shown)}")
    if stats and stats.get("have_tokens"):
        per = stats["tokens"]["per_example"]["total"]
        budget = stats["budget"]
        lines.append(
            f"**At a glance:** {stats['rows']['used']:,} usable rows · tokens per example p50 {per['p50']:,} / "
            f"p95 {per['p95']:,} / max {per['max']:,} · {stats['length']['rows_over_max_length']} rows over max "
            f"length · suggested max length **{stats['length']['suggested_max_length']}** · "
            f"{budget['steps_per_epoch']:,} steps per epoch at batch {budget['batch_size']} · suggested epochs "
            f"**{budget['suggested_epochs']}**"
        )
    return "\n\n".join(lines)


def findings_frame(report, severity: str = "All", rule: str = "All"):
    import pandas as pd

    wanted = _FILTER_TO_SEVERITY.get(severity)
    order = {"E": 0, "W": 1, "I": 2}
    items = [
        f
        for f in report.findings
        if (wanted is None or f.severity == wanted) and (rule in ("All", None, "") or f.rule == rule)
    ]
    items.sort(key=lambda f: (order.get(f.severity, 3), f.row if f.row is not None else 0, f.rule))
    rows = [
        [severity_badge(f.severity), f.rule, "file" if f.row is None else f.row, f.message, f.hint]
        for f in items[:MAX_TABLE_ROWS]
    ]
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)


def rule_choices(report) -> list[str]:
    return ["All"] + sorted({f.rule for f in report.findings})


def row_view(state: dict | None, row_number) -> dict[str, str]:
    """One row of the linted file: its chat, its tokens and its findings (the names chat, tokens, notes)."""
    if not state:
        return {"chat": "", "tokens": "", "notes": "Check some data first."}
    try:
        number = int(row_number)
    except (TypeError, ValueError):
        return {"chat": "", "tokens": "", "notes": "This finding is about the whole file, not one row."}
    report = state["report"]
    row = next((r for r in report.rows if r.number == number), None)
    findings = [f for f in report.findings if f.row == number]
    notes = "\n".join(
        f"- {severity_badge(f.severity)} **{escape.md_inline(f.rule)}** — {escape.md_inline(f.message)} "
        f"*{escape.md_inline(f.hint)}*"
        for f in findings
    )
    header = f"**Row {number}** — " + (
        f"{len(findings)} finding{'s' if len(findings) != 1 else ''}:\n\n{notes}" if findings else "no findings."
    )
    if row is None:
        return {
            "chat": rowview.chat_html(None),
            "tokens": "",
            "notes": f"**Row {number}** could not be read as a record (see its findings).\n\n{notes}",
        }
    if any(f.rule == "PII-SECRET" for f in findings):
        row = mask_row(row)  # a secret is never shown, not even in its own row
    tokenizer = state.get("tokenizer")
    if tokenizer is None:
        tokens = '<div class="rv-empty">Pick a model to see the tokens.</div>'
    elif row.messages or row.text is not None:
        try:
            tokens = rowview.tokens_html(rowview.row_spans(row, tokenizer, state.get("max_length")))
        except Exception as error:  # noqa: BLE001 - the template may reject a broken row: say so
            tokens = (
                f'<div class="rv-empty">'
                f"The chat template could not render this row: {escape.html(str(error)[:300])}</div>"
            )
    else:
        tokens = ""
    return {"chat": rowview.chat_html(row.messages, row.text), "tokens": tokens, "notes": header}


# ---------------------------------------------------------------- handlers


def lint_source(source: dict | None, model_ref: str, max_length, batch_size, progress=None):
    """Lint the chosen source (with its column mapping and dismissals). Returns (state dict, stats dict, model
    message or None); state["source"] is the source as used (carried-over decisions included). Raises StudioError."""
    if not source:
        raise StudioError(
            "Nothing to check yet.", "Click “Use the sample”, upload a file, or load a Hub dataset first."
        )
    _check_source(source)
    model_ref = (model_ref or catalog.BUNDLED).strip()
    model_note = None
    tokenizer = None
    if progress:
        progress(0.02, desc="Loading the model's tokenizer")

    def model_progress(fraction, message=None, *args, **kwargs):
        if progress:  # the bundled model is converted once, on first use (about a minute)
            progress(min(0.05, 0.05 * float(fraction or 0)), desc=message or "Preparing the model")

    try:
        tokenizer = get_tokenizer(model_ref, progress=model_progress)
    except StudioError as error:
        model_note = message_markdown(error) + "\n\nThe rows were checked without token counts."
    context = model_context(tokenizer) if tokenizer is not None else None
    try:
        max_length = int(max_length) if max_length not in (None, "") and int(max_length) > 0 else None
    except (TypeError, ValueError):
        max_length = None
    max_length = max_length or context or FALLBACK_CONTEXT
    try:
        batch_size = max(1, int(batch_size or DEFAULT_BATCH_SIZE))
    except (TypeError, ValueError):
        batch_size = DEFAULT_BATCH_SIZE

    def report_progress(fraction, desc=None, *args, **kwargs):
        if progress:
            progress(min(0.95, 0.05 + 0.9 * float(fraction or 0)), desc=desc or "Checking rows")

    # The Data tab keeps the rows (row view, fix and split); its statistics are the report's own: the
    # same compute_stats path as `python -m studio lint --json`.
    source = carry_over(source)
    column_mapping = mapping_module.ColumnMapping.from_dict(source.get("mapping"))
    report = mapping_module.lint_mapped(
        source["path"],
        source["name"],
        column_mapping,
        tokenizer=tokenizer,
        max_length=max_length,
        progress=report_progress,
        batch_size=batch_size,
        model=model_ref,
    )
    all_findings = list(report.findings)
    dismissed = dismissals.apply_to_report(report, source.get("dismissals"), all_findings)
    stats = report.stats
    state = {
        "report": report,
        "source": source,
        "model": model_ref,
        "tokenizer": tokenizer,
        "max_length": max_length,
        "context": context,
        "batch_size": batch_size,
        "stats": stats,
        "all_findings": all_findings,
        "dismissed": dismissed,
    }
    return state, stats, model_note


def carry_over(source: dict) -> dict:
    """A file checked before and saved as a dataset keeps that dataset's column mapping and dismissals."""
    if source.get("carry_checked") or not source.get("path"):
        return source
    source = {**source, "carry_checked": True}
    try:
        saved = store.carried_over(store.sha256_file(source["path"]))
    except OSError:
        saved = {}
    if saved:
        if not source.get("mapping") and saved.get("column_mapping"):
            source["mapping"] = saved["column_mapping"]
        if not source.get("dismissals") and saved.get("dismissals"):
            source["dismissals"] = dismissals.clean(saved["dismissals"])
        source["carried_from"] = saved.get("dataset")
    return source


def run_lint(source, model_ref, max_length, batch_size, progress=gr.Progress()):
    """Lint the current source again (e.g. with another model or max length). Outputs: LINT_OUTPUTS in build()."""
    try:
        state, stats, model_note = lint_source(source, model_ref, max_length, batch_size, progress)
    except Exception as error:  # noqa: BLE001 - StudioError or not: never a traceback in the browser
        return _lint_failed(source, error)
    return _render(state["source"], state, stats, model_note)


def _render(source, state, stats, model_note=None) -> dict[str, Any]:
    """The lint outputs (LINT_OUTPUTS) for a checked source."""
    report = state["report"]
    figures = stats_module.figures(stats)
    try:
        label = catalog.label(state["model"])
    except StudioError:
        label = state["model"]
    first_row = _first_flagged_row(report)
    row = row_view(state, first_row) if first_row is not None else {"chat": "", "tokens": "", "notes": ""}
    return {
        "source": source,
        "state": state,
        "verdict": verdict_html(report, stats),
        "format": format_markdown(report, state["source"], label, state["max_length"], stats)
        + (f"\n\n{model_note}" if model_note else ""),
        "findings": findings_update(report),
        "severity": gr.update(choices=SEVERITY_FILTERS, value="All"),
        "rule": gr.update(choices=rule_choices(report), value="All"),
        "row": gr.update(value=first_row),
        **row,
        "stats": stats_module.summary_markdown(stats),
        "plot_tokens": figures["tokens"],
        "plot_messages": figures["messages"],
        "plot_roles": figures["roles"],
        "plot_system": figures["system_prompts"],
        "plot_findings": figures["findings"],
        "max_length": gr.update(value=state["max_length"]),
        "report_box": gr.update(visible=True),
        "downloads": gr.update(value=None, visible=False),  # from a previous fix
        "next": gr.update(visible=False),
        "fix_result": "",
        "dataset_stats": stats_module.manifest_stats(stats),  # Decide can estimate from the data before it is saved
        "dismiss_rule": gr.update(choices=sorted({f.rule for f in state.get("all_findings") or report.findings})),
        "dismissed": dismissed_markdown(source, state),
        **mapping_updates(source, state),
    }


def lint_sample(sample_name, model_ref, max_length, batch_size, progress=gr.Progress()):
    try:
        source = source_from_sample(sample_name)
    except Exception as error:  # noqa: BLE001 - shown as the lint's failure, never a traceback
        return _lint_failed(None, error)
    return run_lint(source, model_ref, max_length, batch_size, progress)


def lint_upload(file_path, model_ref, max_length, batch_size, progress=gr.Progress()):
    try:
        source = source_from_upload(file_path)
    except Exception as error:  # noqa: BLE001 - a refused path: say so where the verdict goes
        return _lint_failed(None, error)
    if source is None:
        return _lint_failed(None, None)
    return run_lint(source, model_ref, max_length, batch_size, progress)


def lint_hub(dataset_id, split, model_ref, max_length, batch_size, progress=gr.Progress()):
    try:
        source = source_from_hub(dataset_id, split)
    except Exception as error:  # noqa: BLE001 - offline, unknown id, ...: a message, not a traceback
        return _lint_failed(None, error)
    return run_lint(source, model_ref, max_length, batch_size, progress)


def _first_flagged_row(report) -> int | None:
    order = {"E": 0, "W": 1, "I": 2}
    flagged = sorted((order.get(f.severity, 3), f.row) for f in report.findings if f.row is not None)
    if flagged:
        return flagged[0][1]
    return report.rows[0].number if report.rows else None


def error_html(error: Exception) -> str:
    if isinstance(error, StudioError):
        message, hint = access.redact(error.message), access.redact(error.hint)
    else:
        message, hint = access.redact(f"Something went wrong: {error}"), "The details are in the server log."
    hint_html = f"<p><b>Hint:</b> {escape.html(hint)}</p>" if hint else ""
    icon = f'<span class="dv-icon" style="background:{SEVERITY_COLOURS["E"]}">✕</span>'
    return (
        f'<div class="dv-verdict dv-blocked" data-verdict="error"><h3>{icon}{escape.html(message)}</h3>'
        f"{hint_html}</div>"
    )


def _lint_failed(source, error: Exception | None) -> dict[str, Any]:
    """Outputs when nothing could be checked: the message (and hint) where the verdict goes; report hidden."""
    if error is not None:
        logging.getLogger(__name__).warning("Data tab: could not check the data: %r", error)
    hidden = gr.update(visible=False)
    return {
        "source": source,
        "state": None,
        "verdict": error_html(error) if error is not None else idle_verdict_html(),
        "format": "",
        "chat": "",
        "tokens": "",
        "notes": "",
        "stats": "",
        **dict.fromkeys(("plot_tokens", "plot_messages", "plot_roles", "plot_system", "plot_findings")),
        "report_box": hidden,
        "downloads": gr.update(value=None, visible=False),
        "next": hidden,
        "fix_result": "",
        "dismissed": "",
        "map_box": hidden,
        "map_preview": "",
    }


# ---------------------------------------------------------------- dismissals and column mapping


def dismissed_markdown(source, state) -> str:
    """The dismissed findings with their reasons (and where carried-over decisions came from)."""
    items = (source or {}).get("dismissals") or []
    if not items:
        return "*No dismissed findings.*"
    counts: dict[tuple, int] = {}
    for _, dismissal in (state or {}).get("dismissed") or []:
        key = (dismissal["rule"], dismissal.get("row"))
        counts[key] = counts.get(key, 0) + 1
    lines = [f"**Dismissed ({len(items)})** — not counted, not set aside; saved with the dataset:"]
    for item in items:
        n = counts.get((item["rule"], item.get("row")), 0)
        lines.append(f"- {escape.md_inline(dismissals.describe(item))} *({n} finding{'s' if n != 1 else ''})*")
    if (source or {}).get("carried_from"):
        lines.append(
            f"*Carried over from your saved dataset “{escape.md_inline(source['carried_from'])}” (same file).*"
        )
    return "\n".join(lines)


def _reapply(source, state):
    """Apply the source's dismissals to the checked report again (no new lint) and render."""
    report = state["report"]
    dismissed = dismissals.apply_to_report(report, source.get("dismissals"), state["all_findings"])
    stats = compute_stats(
        report,
        max_length=state["max_length"],
        batch_size=state["batch_size"],
        model=state["model"],
        context=state.get("context"),
    )
    state = {**state, "source": source, "stats": stats, "dismissed": dismissed}
    return _render(source, state, stats)


def dismiss_finding(source, state, rule, row, scope, reason):
    """Dismiss one finding (rule + row) or every finding of a rule, with a reason: the lint outputs again, the
    status, the reason box emptied."""
    try:
        if not state or not source:
            raise StudioError("Check some data first.", "Use the sample or upload a file.")
        every_row = scope == DISMISS_SCOPES[1]
        number = None
        if not every_row:
            if row in (None, ""):
                raise StudioError(
                    "Which row's finding?", "Click the finding in the table, or pick “Every finding of this rule”."
                )
            try:
                number = int(row)
            except (TypeError, ValueError):
                raise StudioError(
                    "The row must be a number.", "Click the finding in the table to fill it in."
                ) from None
        dismissal = dismissals.make(state["all_findings"], rule, reason, number)
        source = {**source, "dismissals": dismissals.add(source.get("dismissals"), dismissal)}
        described = f"Dismissed: {escape.md_inline(dismissals.describe(dismissal))}"
        return {**_reapply(source, state), "dismiss_status": described, "dismiss_reason": ""}
    except StudioError as error:
        return {"dismiss_status": message_markdown(error)}


def restore_dismissed(source, state):
    """Undo every dismissal: the findings count again."""
    if not state or not source:
        return {"dismiss_status": "Nothing to restore."}
    source = {**source, "dismissals": []}
    return {**_reapply(source, state), "dismiss_status": "Every dismissed finding counts again."}


def pick_for_dismissal(state, evt: gr.SelectData):
    """Clicking a finding also picks it for the dismiss form: its rule and row."""
    row_value = getattr(evt, "row_value", None) or []
    rule = row_value[1] if len(row_value) > 1 else None
    cell = row_value[2] if len(row_value) > 2 else None
    number = int(cell) if str(cell).strip().isdigit() else None
    scope = DISMISS_SCOPES[0] if number is not None else DISMISS_SCOPES[1]
    return {
        "dismiss_rule": gr.update(value=rule),
        "dismiss_row": gr.update(value=number),
        "dismiss_scope": gr.update(value=scope),
    }


def mapping_updates(source, state) -> dict[str, Any]:
    """The mapping panel: shown for unknown layouts (open, with a proposal) or when a mapping is in use."""
    report = state["report"]
    available = mapping_module.columns(report.rows)
    current = mapping_module.ColumnMapping.from_dict((source or {}).get("mapping"))
    needed = mapping_module.needs_mapping(report.rows, report.format) if current is None else False
    proposal = current or (mapping_module.propose(report.rows) if needed else None)
    unknown_table = report.format is None and len(available) >= 2
    show = current is not None or needed or unknown_table
    if not show:
        return {"map_box": gr.update(visible=False, open=False), "map_preview": ""}
    optional = [NO_COLUMN] + available
    values = proposal.to_dict() if proposal else {"user": None, "assistant": None, "context": [], "system": None}
    preview = (
        preview_html(report.rows, proposal)
        if proposal
        else '<div class="rv-empty">Pick the user column and the answer column to see the converted rows.</div>'
    )
    title = (
        ("Column mapping — in use: " + current.describe())
        if current
        else "Column mapping — this file's columns are not a chat format the studio knows: say which column is which"
    )
    return {
        "map_box": gr.update(visible=True, open=current is None, label=title),
        "map_user": gr.update(choices=available, value=values["user"]),
        "map_assistant": gr.update(choices=available, value=values["assistant"]),
        "map_context": gr.update(choices=available, value=values["context"]),
        "map_system": gr.update(choices=optional, value=values["system"] or NO_COLUMN),
        "map_preview": preview,
    }


def _mapping_from_form(user, assistant, context, system):
    return mapping_module.ColumnMapping(
        user=user or "",
        assistant=assistant or "",
        context=[c for c in (context or []) if c and c != NO_COLUMN],
        system=None if system in (None, "", NO_COLUMN) else system,
    )


def preview_html(rows, column_mapping, n: int = 3) -> str:
    converted = mapping_module.preview(rows, column_mapping, n)
    parts = [
        f'<div class="rv-empty">Preview of the first {len(converted)} rows as chat '
        f"({escape.html(column_mapping.describe())}):</div>"
    ]
    for item in converted:
        parts.append(f'<div class="rv-empty">Row {item["row"]}</div>' + rowview.chat_html(item["messages"]))
    return "".join(parts)


def preview_mapping(state, user, assistant, context, system):
    if not state:
        return ""
    rows = state["report"].rows
    try:
        column_mapping = _mapping_from_form(user, assistant, context, system).check(mapping_module.columns(rows))
        return preview_html(rows, column_mapping)
    except StudioError as error:
        return error_html(error)


def apply_mapping(source, user, assistant, context, system, model_ref, max_length, batch_size, progress=gr.Progress()):
    """Check the file again with this column mapping: the lint outputs and the mapping status."""
    try:
        if not source:
            raise StudioError("Check some data first.", "Upload the file, then map its columns.")
        _check_source(source)  # still a file this caller may read (as run_lint checks)
        column_mapping = _mapping_from_form(user, assistant, context, system)
        loaded = mapping_module.load_mapped(source["path"], source["name"], None)
        column_mapping.check(mapping_module.columns(loaded.rows))
    except StudioError as error:
        return {"map_status": message_markdown(error)}
    source = {**source, "mapping": column_mapping.to_dict()}
    return {
        **run_lint(source, model_ref, max_length, batch_size, progress),
        "map_status": f"Rows converted with: {escape.md_inline(column_mapping.describe())}.",
    }


def clear_mapping(source, model_ref, max_length, batch_size, progress=gr.Progress()):
    if not source:
        return {"map_status": ""}
    source = {key: value for key, value in source.items() if key != "mapping"}
    return {
        **run_lint(source, model_ref, max_length, batch_size, progress),
        "map_status": "The file is read as it is again.",
    }


# What a check of the data redraws (run_lint and the handlers that check again return some of these names).
LINT_OUTPUTS = (
    "source",
    "state",
    "verdict",
    "format",
    "findings",
    "severity",
    "rule",
    "row",
    "chat",
    "tokens",
    "notes",
    "stats",
    "plot_tokens",
    "plot_messages",
    "plot_roles",
    "plot_system",
    "plot_findings",
    "max_length",
    "report_box",
    "downloads",
    "next",
    "fix_result",
    "dataset_stats",
    "dismiss_rule",
    "dismissed",
    "map_box",
    "map_user",
    "map_assistant",
    "map_context",
    "map_system",
    "map_preview",
)


def filter_findings(state, severity, rule):
    if not state:
        return gr.update()
    return findings_update(state["report"], severity or "All", rule or "All")


def findings_update(report, severity: str = "All", rule: str = "All"):
    frame = findings_frame(report, severity, rule)
    total = len(report.findings)
    shown = f"{len(frame)} of {total}" if len(frame) != total else f"all {total}"
    return gr.update(value=frame, label=f"Findings ({shown}; errors first)")


def select_finding(state, evt: gr.SelectData):
    """Clicking a finding opens its row."""
    row_value = getattr(evt, "row_value", None) or []
    cell = row_value[2] if len(row_value) > 2 else None
    number = int(cell) if str(cell).strip().isdigit() else None
    opened = row_view(state, number)
    return {**opened, "row": gr.update(value=number)} if number is not None else opened


def show_row(state, number):
    return row_view(state, number)


def fix_and_split(state, validation_percent, seed, name, progress=gr.Progress()):
    """Apply the safe fixes, split, save the dataset folder: the result, its downloads, the dataset (for Train and
    Decide) and the next-step button."""
    try:
        folder, manifest = save_from_state(state, validation_percent, seed, name, progress)
    except Exception as error:  # noqa: BLE001 - StudioError or not: a message, never a traceback
        return {
            "fix_result": message_markdown(error),
            "downloads": gr.update(value=None, visible=False),
            "next": gr.update(visible=False),
        }
    counts = manifest["counts"]
    fixes = manifest.get("fixes", {})
    fixed = []
    if fixes.get("rejected_with_errors"):
        fixed.append(f"set aside {fixes['rejected_with_errors']} rows with errors")
    if fixes.get("duplicates_removed"):
        fixed.append(f"removed {fixes['duplicates_removed']} exact duplicates")
    if fixes.get("whitespace"):
        fixed.append(f"stripped edge whitespace in {fixes['whitespace']} messages")
    if fixes.get("nfc"):
        fixed.append(f"normalised Unicode (NFC) in {fixes['nfc']} messages")
    if fixes.get("converted"):
        fixed.append(f"converted {fixes['converted']} rows to chat messages")
    if manifest.get("column_mapping"):
        fixed.append(
            "built every row from the columns "
            f"({escape.md_inline(ColumnMapping.from_dict(manifest['column_mapping']).describe())})"
        )
    if manifest.get("dismissals"):
        fixed.append(f"kept {len(manifest['dismissals'])} dismissal(s) with their reasons")
    leak_note = (
        "no near-duplicates shared between train and validation"
        if not manifest["split"]["leaks"]
        else f"{manifest['split']['leaks']} possible leaks remain (check DS-LEAK)"
    )
    result = (
        f"### Saved “{escape.md_inline(manifest['name'])}”\n"
        f"**{counts['train']}** training rows · **{counts['validation']}** validation rows · "
        f"**{counts['rejected']}** rejected (download below with reasons).\n\n"
        + (f"Fixes: {'; '.join(fixed)}.\n\n" if fixed else "")
        + f"Split with seed {manifest['split']['seed']}: {leak_note}.\n\n"
        f"Folder: {escape.md_code(access.redact(str(folder)))}"
    )
    files = [
        download_copy(folder / name) if access.is_public() else str(folder / name)
        for name in ("train.jsonl", "validation.jsonl", "rejected.jsonl", "report.json", "report.md")
    ]
    return {
        "fix_result": result,
        "downloads": gr.update(value=files, visible=True),
        "dataset": str(folder),
        "dataset_stats": manifest["stats"],
        "next": gr.update(visible=True),
    }


def save_from_state(state, validation_percent, seed, name, progress=None):
    """Fix, split and save what was checked (studio.data.pipeline); returns (folder, manifest). Raises StudioError."""
    if not state:
        raise StudioError("Check some data first.", "Use the sample or upload a file, then Fix and split.")
    identity = access.authorize(access.current(), access.SAVE_DATASET)
    quotas.check_quota(identity, "datasets")
    try:
        fraction = float(validation_percent) / 100
    except (TypeError, ValueError):
        fraction = clean.DEFAULT_VALIDATION_FRACTION
    try:
        seed = int(seed)
    except (TypeError, ValueError):
        seed = 0
    return pipeline.save_checked(
        pipeline.Checked(
            report=state["report"],
            stats=state["stats"],
            source=state["source"],
            model=state["model"],
            max_length=state["max_length"],
            batch_size=state["batch_size"],
            context=state.get("context"),
            dismissed=state.get("dismissed"),
        ),
        validation_fraction=fraction,
        seed=seed,
        name=(name or "").strip() or None,
        owner=identity.user_id or access.LOCAL_OWNER,
        progress=(lambda fraction, text: progress(fraction, desc=text)) if progress else None,
    )


def go_to_train():
    return gr.Tabs(selected="train")


def show_source(kind):
    """Show the inputs of the chosen source (sample, upload, Hub)."""
    return {box: gr.update(visible=kind == option) for box, option in zip(SOURCE_BOXES, SOURCE_KINDS)}


def sample_description(name) -> str:
    for sample in _samples():
        if sample["name"] == name:
            return f"{sample['description']} *({sample['rows']} rows)*"
    return ""


# ---------------------------------------------------------------- layout


def build(shared: Shared) -> None:
    samples = _samples()
    sample_names = [s["name"] for s in samples]
    default_sample = sample_names[0] if sample_names else None

    gr.Markdown(INTRO, elem_classes="tab-intro", elem_id="data-intro")
    source_state = gr.State(None)
    lint_state = gr.State(None)

    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            gr.Markdown("### 1 · Choose your data")
            # A radio, not nested tabs: the shell's tabs stay the only gr.Tab blocks.
            source_kind = gr.Radio(SOURCE_KINDS, value=SOURCE_KINDS[0], show_label=False, elem_id="data-source-kind")
            with gr.Column(visible=True, elem_id="data-source-sample") as sample_box:
                sample_pick = gr.Dropdown(
                    sample_names,
                    value=default_sample,
                    label="Bundled sample",
                    elem_id="data-sample-pick",
                    interactive=True,
                )
                sample_info = gr.Markdown(
                    sample_description(default_sample) if default_sample else "No bundled samples found."
                )
                sample_btn = gr.Button("Use the sample", variant="primary", elem_id="data-sample-btn")
            with gr.Column(visible=False, elem_id="data-source-upload") as upload_box:
                upload = gr.File(
                    label="Drop a .jsonl, .json, .csv or .parquet file",
                    file_types=UPLOAD_TYPES,
                    type="filepath",
                    elem_id="data-upload",
                )
                gr.Markdown(
                    "Rows may be `messages`, ShareGPT `conversations`, Alpaca `instruction/output`, "
                    "`prompt/completion` or plain `text`: the format is detected and converted.",
                    elem_classes="tab-intro",
                )
            with gr.Column(visible=False, elem_id="data-source-hub") as hub_box:
                with gr.Row():
                    hub_id = gr.Textbox(
                        label="Dataset id", placeholder="HuggingFaceH4/no_robots", scale=3, elem_id="data-hub-id"
                    )
                    hub_split = gr.Textbox(label="Split", value="train", scale=1)
                hub_btn = gr.Button("Load from the Hub", elem_id="data-hub-btn")
        with gr.Column(scale=2):
            gr.Markdown("### 2 · Model and length")
            model = gr.Dropdown(
                model_choices(),
                value=catalog.BUNDLED,
                label="Model (its tokenizer and chat template)",
                allow_custom_value=True,
                elem_id="data-model",
                info="Token counts use this model. A Hub id or a local folder works too.",
            )
            with gr.Row():
                max_length = gr.Number(
                    value=None,
                    label="Max length (tokens)",
                    precision=0,
                    minimum=0,
                    info="0 = the model's context.",
                    elem_id="data-max-length",
                )
                batch_size = gr.Number(
                    value=DEFAULT_BATCH_SIZE,
                    label="Batch size",
                    precision=0,
                    minimum=1,
                    info="For steps per epoch.",
                    elem_id="data-batch-size",
                )
            lint_btn = gr.Button("Check the data", variant="secondary", elem_id="data-lint-btn")

    verdict = gr.HTML(idle_verdict_html(), elem_id="data-verdict", css_template=VERDICT_CSS)

    with gr.Accordion("Column mapping", open=False, visible=False, elem_id="data-mapping") as map_box:
        gr.Markdown(
            "Say which column holds the question (the **user** turn) and which the **answer** (the assistant "
            "turn). Context columns are appended to the question after a blank line; a system column becomes "
            "the system prompt. The preview shows the first rows converted; **Use this mapping** checks the "
            "file again with it, and the mapping is saved with the dataset.",
            elem_classes="tab-intro",
        )
        with gr.Row():
            map_user = gr.Dropdown([], label="User turn (question)", elem_id="data-map-user")
            map_assistant = gr.Dropdown([], label="Assistant turn (answer)", elem_id="data-map-assistant")
            map_context = gr.Dropdown(
                [], multiselect=True, label="Context (appended to the user turn)", elem_id="data-map-context"
            )
            map_system = gr.Dropdown([NO_COLUMN], value=NO_COLUMN, label="System prompt", elem_id="data-map-system")
        with gr.Row():
            map_apply = gr.Button("Use this mapping", variant="primary", elem_id="data-map-apply")
            map_clear = gr.Button("Read the file as it is", size="sm", elem_id="data-map-clear")
        map_status = gr.Markdown(elem_id="data-map-status")
        map_preview = gr.HTML(elem_id="data-map-preview", css_template=ROW_VIEW_CSS)

    with gr.Column(visible=False, elem_id="data-report") as report_box:
        format_info = gr.Markdown(elem_id="data-format")
        gr.Markdown("### Findings")
        with gr.Column(elem_id="data-findings-box"):
            with gr.Row():
                severity_filter = gr.Dropdown(
                    SEVERITY_FILTERS, value="All", label="Severity", scale=1, elem_id="data-filter-severity"
                )
                rule_filter = gr.Dropdown(["All"], value="All", label="Rule", scale=1, elem_id="data-filter-rule")
                gr.Markdown("Click a finding to open its row below.", elem_classes="tab-intro")
            findings = gr.Dataframe(
                headers=FINDING_COLUMNS,
                interactive=False,
                wrap=True,
                max_height=420,
                label="Findings",
                show_label=True,
                datatype=["html", "str", "str", "str", "str"],
                column_widths=["11%", "15%", "6%", "34%", "34%"],
                elem_id="data-findings",
            )
            with gr.Accordion("Dismiss a finding that is wrong for this data", open=False, elem_id="data-dismiss"):
                gr.Markdown(
                    "Say why (the reason is saved with the dataset and shown in its report). A dismissed "
                    "finding no longer counts and a dismissed error no longer blocks or sets its row aside. "
                    "Errors that make a row untrainable (broken structure) cannot be dismissed. Clicking a "
                    "finding in the table fills in its rule and row.",
                    elem_classes="tab-intro",
                )
                with gr.Row():
                    dismiss_rule = gr.Dropdown([], label="Rule", elem_id="data-dismiss-rule", scale=2)
                    dismiss_row = gr.Number(label="Row", precision=0, minimum=1, elem_id="data-dismiss-row", scale=1)
                    dismiss_scope = gr.Radio(
                        DISMISS_SCOPES, value=DISMISS_SCOPES[0], label="Dismiss", elem_id="data-dismiss-scope", scale=3
                    )
                dismiss_reason = gr.Textbox(
                    label="Reason (required)",
                    placeholder="e.g. an image file path, not a secret",
                    elem_id="data-dismiss-reason",
                )
                with gr.Row():
                    dismiss_btn = gr.Button("Dismiss", variant="secondary", elem_id="data-dismiss-btn")
                    restore_btn = gr.Button("Restore all dismissed findings", size="sm", elem_id="data-restore-btn")
                dismiss_status = gr.Markdown(elem_id="data-dismiss-status")
                dismissed_md = gr.Markdown(elem_id="data-dismissed")
            with gr.Column(elem_id="data-row-view"):
                gr.Markdown("### The row")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=220):
                        row_number = gr.Number(
                            label="Row (line in the file)", precision=0, minimum=1, elem_id="data-row-number"
                        )
                        row_btn = gr.Button("Show row", size="sm", elem_id="data-row-btn")
                    gr.Column(scale=4)
                row_notes = gr.Markdown(elem_id="data-row-notes")
                with gr.Row(equal_height=False):
                    with gr.Column():
                        gr.Markdown("**As a chat**")
                        row_chat = gr.HTML(elem_id="data-row-chat", css_template=ROW_VIEW_CSS)
                    with gr.Column():
                        gr.Markdown("**As the model sees it** (after the chat template)")
                        row_tokens = gr.HTML(elem_id="data-row-tokens", css_template=ROW_VIEW_CSS)
        with gr.Accordion("Statistics and charts", open=True, elem_id="data-stats-box"):
            stats_md = gr.Markdown(elem_id="data-stats")
            with gr.Row():
                plot_tokens = gr.Plot(label="Tokens per example", show_label=False, elem_id="data-plot-tokens")
                plot_messages = gr.Plot(label="Messages per example", show_label=False, elem_id="data-plot-messages")
            with gr.Row():
                plot_roles = gr.Plot(label="Role mix", show_label=False, elem_id="data-plot-roles")
                plot_system = gr.Plot(label="Top system prompts", show_label=False, elem_id="data-plot-system")
            plot_findings = gr.Plot(label="Findings by rule", show_label=False, elem_id="data-plot-findings")

        gr.Markdown("### 3 · Fix and split")
        gr.Markdown(
            "One click applies only safe fixes: rows with errors are set aside (downloadable with the "
            "reasons), exact duplicates removed, edge whitespace stripped, Unicode normalised, every row "
            "converted to chat messages. Then a seeded split keeps near-duplicates on the same side.",
            elem_classes="tab-intro",
        )
        with gr.Row():
            val_percent = gr.Slider(1, 50, value=10, step=1, label="Validation share (%)", elem_id="data-val-pct")
            seed = gr.Number(value=42, precision=0, label="Seed", elem_id="data-seed")
            dataset_name = gr.Textbox(
                label="Dataset name (optional)", placeholder="defaults to the file name", elem_id="data-name"
            )
        fix_btn = gr.Button("Fix and split", variant="primary", elem_id="data-fix-btn")
        fix_result = gr.Markdown(elem_id="data-fix-result")
        downloads = gr.File(
            label="Downloads: train, validation, rejected rows, report (JSON, Markdown)",
            file_count="multiple",
            visible=False,
            interactive=False,
            elem_id="data-downloads",
        )
        next_btn = gr.Button("Next: train on it →", variant="primary", visible=False, elem_id="data-next-btn")

    # Every component a handler changes, by the name handlers return.
    page = Parts(
        source=source_state,
        state=lint_state,
        verdict=verdict,
        format=format_info,
        findings=findings,
        severity=severity_filter,
        rule=rule_filter,
        row=row_number,
        chat=row_chat,
        tokens=row_tokens,
        notes=row_notes,
        stats=stats_md,
        plot_tokens=plot_tokens,
        plot_messages=plot_messages,
        plot_roles=plot_roles,
        plot_system=plot_system,
        plot_findings=plot_findings,
        max_length=max_length,
        report_box=report_box,
        downloads=downloads,
        next=next_btn,
        fix_result=fix_result,
        dataset=shared.dataset,
        dataset_stats=shared.dataset_stats,
        dismiss_rule=dismiss_rule,
        dismiss_row=dismiss_row,
        dismiss_scope=dismiss_scope,
        dismiss_status=dismiss_status,
        dismiss_reason=dismiss_reason,
        dismissed=dismissed_md,
        map_box=map_box,
        map_user=map_user,
        map_assistant=map_assistant,
        map_context=map_context,
        map_system=map_system,
        map_preview=map_preview,
        map_status=map_status,
        sample_box=sample_box,
        upload_box=upload_box,
        hub_box=hub_box,
    )
    lint = page.pick(*LINT_OUTPUTS)
    settings = [model, max_length, batch_size]

    # API: checking a file (sample, upload, Hub) and saving it are named endpoints a gradio_client script may
    # call (/lint_sample, /lint_upload, /lint_hub, /fix_and_split); every other event only updates the page.
    private = {"api_visibility": "private"}
    g = guarded  # every handler goes through the guard (studio/ui/guard.py) with its rule
    boxes = page.pick(*SOURCE_BOXES)
    source_kind.change(wired(access.LOOK, boxes, show_source), source_kind, boxes.outputs(), **private)
    sample_pick.change(g(access.LOOK, sample_description), sample_pick, sample_info, **private)
    sample_btn.click(
        wired(access.LINT, lint, lint_sample), [sample_pick] + settings, lint.outputs(), api_name="lint_sample"
    )
    upload.upload(wired(access.LINT, lint, lint_upload), [upload] + settings, lint.outputs(), api_name="lint_upload")
    hub_btn.click(
        wired(access.LINT_HUB, lint, lint_hub), [hub_id, hub_split] + settings, lint.outputs(), api_name="lint_hub"
    )
    lint_btn.click(wired(access.LINT, lint, run_lint), [source_state] + settings, lint.outputs(), **private)
    # A new model: its own context is the default max length again; and it is the studio-wide model choice.
    model.change(g(access.LOOK, lambda: None), None, max_length, **private)
    model.change(g(access.LOOK, lambda ref: ref), model, shared.model, **private)

    filters = [lint_state, severity_filter, rule_filter]
    severity_filter.change(g(access.LOOK, filter_findings), filters, findings, **private)
    rule_filter.change(g(access.LOOK, filter_findings), filters, findings, **private)
    opened_row = page.pick("row", "chat", "tokens", "notes")
    findings.select(wired(access.LOOK, opened_row, select_finding), lint_state, opened_row.outputs(), **private)
    picked = page.pick("dismiss_rule", "dismiss_row", "dismiss_scope")
    findings.select(wired(access.LOOK, picked, pick_for_dismissal), lint_state, picked.outputs(), **private)
    # Dismissing re-renders the checked data (nothing is saved until Fix and split): the lint rule.
    dismissing = lint.plus(dismiss_status=dismiss_status, dismiss_reason=dismiss_reason)
    dismiss_btn.click(
        wired(access.LINT, dismissing, dismiss_finding),
        [source_state, lint_state, dismiss_rule, dismiss_row, dismiss_scope, dismiss_reason],
        dismissing.outputs(),
        **private,
    )
    restore_btn.click(
        wired(access.LINT, dismissing, restore_dismissed), [source_state, lint_state], dismissing.outputs(), **private
    )
    map_form = [map_user, map_assistant, map_context, map_system]
    for control in map_form:
        control.input(
            g(access.LOOK, preview_mapping), [lint_state] + map_form, map_preview, show_progress="hidden", **private
        )
    mapping = lint.plus(map_status=map_status)
    map_apply.click(
        wired(access.LINT, mapping, apply_mapping), [source_state] + map_form + settings, mapping.outputs(), **private
    )
    map_clear.click(wired(access.LINT, mapping, clear_mapping), [source_state] + settings, mapping.outputs(), **private)
    shown_row = page.pick("chat", "tokens", "notes")
    row_btn.click(wired(access.LOOK, shown_row, show_row), [lint_state, row_number], shown_row.outputs(), **private)
    row_number.submit(wired(access.LOOK, shown_row, show_row), [lint_state, row_number], shown_row.outputs(), **private)

    saved = page.pick("fix_result", "downloads", "dataset", "dataset_stats", "next")
    fix_btn.click(
        wired(access.SAVE_DATASET, saved, fix_and_split),
        [lint_state, val_percent, seed, dataset_name],
        saved.outputs(),
        api_name="fix_and_split",
    )
    next_btn.click(g(access.LOOK, go_to_train), None, shared.tabs, **private)
