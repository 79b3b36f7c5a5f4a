"""A stakeholder report: one self-contained HTML file (inline CSS, inline SVG charts, no scripts,
no network) and the same content as Markdown. Saved as report.html / report.md in the viewer's Compare
folder (runs.RunInfo.compare_dir); every user-controlled value goes through studio.escape.

It leads with the verdict (studio.compare.verdict: the same object Compare and `compare --json` show),
then states what the run was (steps, epochs, rows, the learning rate actually used) and how much
evidence there is, the training loss, the evaluation table and the finished blind ballots.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

from studio import access, escape, paths
from studio.compare import evaluate, metrics, runs, votes
from studio.compare import verdict as verdicts
from studio.data import store as data_store
from studio.models import catalog
from studio.train import store
from studio.units import format_duration

CONFIG_KEYS = (
    "model",
    "dataset",
    "technique",
    "max_length",
    "epochs",
    "max_steps",
    "learning_rate",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "batch_size",
    "gradient_accumulation_steps",
    "seed",
)


def read_events(run: runs.RunInfo) -> list[dict]:
    """The run's events as its charts draw them: a resumed run's abandoned stretch is left out (train.store)."""
    return [] if run.is_bare_adapter else store.chart_events(run.dir)


def loss_series(events: list[dict]) -> dict[str, list[tuple[float, float]]]:
    train = [
        (e["step"], e["loss"]) for e in events if e.get("type") == "log" and _num(e.get("loss")) and _num(e.get("step"))
    ]
    val = [
        (e["step"], e["eval_loss"])
        for e in events
        if e.get("type") == "eval" and _num(e.get("eval_loss")) and _num(e.get("step"))
    ]
    return {"train loss": train, "validation loss": val}


def _num(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _timestamp(value) -> float | None:
    if _num(value):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def training_time(run: runs.RunInfo) -> str:
    """The training time as the Train tab shows it (the trainer's own clock, summed over resumes), and the whole
    run's wall-clock time when that is longer (model load, the CPU precision check, saving)."""
    training = run.status.get("elapsed") if _num(run.status.get("elapsed")) else None
    start, end = _timestamp(run.status.get("started_at")), _timestamp(run.status.get("ended_at"))
    wall = end - start if start is not None and end is not None and end >= start else None
    if training is None and wall is None:
        return "unknown"
    if training is None:
        return f"{format_duration(wall)} from start to end"
    if wall is not None and wall - training >= 1:
        return f"{format_duration(training)} ({format_duration(wall)} from start to end, with model loading and checks)"
    return format_duration(training)


def dataset_label(run: runs.RunInfo) -> str:
    folder = run.dataset_dir
    if folder is None:
        return "unknown"
    manifest = data_store.read_manifest(folder) or {}
    counts = manifest.get("counts") or {}
    name = manifest.get("name") or folder.name
    if counts:
        return f"{name} ({counts.get('train', '?')} training rows, {counts.get('validation', '?')} validation)"
    return name


def learning_rate_used(run: runs.RunInfo) -> tuple[float | None, str]:
    """(rate, how it was chosen): the worker records the resolved rate in status facts; the config may say None
    (auto)."""
    facts = run.status.get("facts") or {}
    configured = run.config.get("learning_rate")
    used = facts.get("learning_rate") if _num(facts.get("learning_rate")) else configured if _num(configured) else None
    if configured is None:
        how = "automatic for the model's size" if used is not None else "automatic (the value was not recorded)"
    else:
        how = "set by hand"
    return used, how


def training_facts(run: runs.RunInfo, events: list[dict] | None = None) -> str:
    """What the run was, in one line: steps, epochs, rows and the learning rate actually used."""
    if run.is_bare_adapter:
        return "unknown (an adapter folder without its run record)"
    events = read_events(run) if events is None else events
    status, config, facts = run.status, run.config, run.status.get("facts") or {}
    parts = []
    step, total = status.get("step"), status.get("total_steps")
    if _num(step):
        parts.append(f"{int(step):,} of {int(total):,} steps" if _num(total) else f"{int(step):,} steps")
    epochs_done = max((e["epoch"] for e in events if _num(e.get("epoch"))), default=None)
    planned = config.get("epochs")
    max_steps = config.get("max_steps")
    if _num(max_steps) and max_steps > 0:  # max steps wins over epochs (the Trainer's rule): no epochs were planned
        plan = f" (set by max steps {int(max_steps):,}, not by epochs)"
    else:
        plan = f" (planned {planned:g})" if _num(planned) else ""
    if epochs_done is not None:
        parts.append(f"{epochs_done:.2g} epoch(s) done{plan}")
    elif _num(planned):
        parts.append(f"{planned:g} epoch(s) planned")
    manifest = data_store.read_manifest(run.dataset_dir) if run.dataset_dir else None
    counts = (manifest or {}).get("counts") or {}
    train_rows = facts.get("train_rows", counts.get("train"))
    eval_rows = facts.get("eval_rows", counts.get("validation"))
    if train_rows is not None:
        parts.append(
            f"{train_rows:,} training rows" + (f", {eval_rows:,} validation rows" if eval_rows is not None else "")
        )
    rate, how = learning_rate_used(run)
    parts.append(f"learning rate {rate:g} ({how})" if rate is not None else f"learning rate {how}")
    return ", ".join(parts)


def data_dismissals(run: runs.RunInfo) -> list[dict]:
    """Lint findings the dataset's owner dismissed (with their reasons), from the dataset manifest."""
    manifest = data_store.read_manifest(run.dataset_dir) if run.dataset_dir else None
    items = (manifest or {}).get("dismissals") or []
    return [item for item in items if isinstance(item, dict)]


def dismissal_text(item: dict) -> str:
    where = f"row {item['row']}" if item.get("row") is not None else "every row"
    return f"{item.get('rule', '?')} ({where}) dismissed: {item.get('reason', '')}"


def summary_items(run: runs.RunInfo) -> list[tuple[str, str]]:
    try:
        model = catalog.label(run.base_ref)
    except Exception:  # noqa: BLE001 - a model folder that no longer exists still gets a label
        model = run.base_ref
    items = [
        ("Run", run.name),
        ("Base model", model),
        ("Data", dataset_label(run)),
        ("Status", str(run.status.get("status", "adapter folder" if run.is_bare_adapter else "unknown"))),
        ("Training", training_facts(run)),
        ("Training time", training_time(run)),
    ]
    rate, _ = learning_rate_used(run)
    settings = []
    for key in CONFIG_KEYS:
        if key not in run.config or key in ("model", "dataset"):
            continue
        value = run.config[key]
        if key == "learning_rate" and value is None:
            value = f"{rate:g} (automatic)" if rate is not None else "automatic"
        settings.append(f"{key}={value}")
    if settings:
        items.append(("Settings", ", ".join(settings)))
    dismissed = data_dismissals(run)
    if dismissed:
        items.append(("Data findings dismissed", "; ".join(dismissal_text(item) for item in dismissed)))
    # A public studio's reports are downloaded by visitors: no server folder in them (a base model in the models
    # folder, a dataset path in the settings), as on the page.
    return [(label, access.redact(value)) for label, value in items]


def svg_line_chart(
    series: dict[str, list[tuple[float, float]]],
    width: int = 640,
    height: int = 260,
    colors=("#2563eb", "#ea580c", "#16a34a"),
    y_label: str = "loss",
    x_label: str = "step",
) -> str:
    """A small inline SVG line chart (no scripts): axes, ticks, one polyline per series, a legend."""
    points = [p for values in series.values() for p in values]
    if not points:
        return '<p class="muted">No loss was logged for this run.</p>'
    left, right, top, bottom = 52, 16, 28, 36
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1
    pad = (y1 - y0) * 0.08
    y0, y1 = (max(0.0, y0 - pad) if y0 >= 0 else y0 - pad), y1 + pad  # a loss axis never dips below 0

    def sx(x):
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y):
        return top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape.html(y_label)} by {escape.html(x_label)}" '
        f'style="max-width:{width}px;font-family:sans-serif;font-size:11px">'
    ]
    parts.append(
        f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" fill="#f8fafc" '
        f'stroke="#cbd5e1"/>'
    )
    for i in range(5):
        value = y0 + (y1 - y0) * i / 4
        y = sy(value)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#475569">{value:.3g}</text>')
    for i in range(5):
        value = x0 + (x1 - x0) * i / 4
        parts.append(
            f'<text x="{sx(value):.1f}" y="{height - bottom + 16}" text-anchor="middle" fill="#475569">'
            f"{value:.0f}</text>"
        )
    parts.append(
        f'<text x="{(width + left) / 2:.0f}" y="{height - 4}" text-anchor="middle" fill="#334155">'
        f"{escape.html(x_label)}</text>"
    )
    parts.append(
        f'<text x="12" y="{(height) / 2:.0f}" transform="rotate(-90 12 {height / 2:.0f})" text-anchor="middle" '
        f'fill="#334155">{escape.html(y_label)}</text>'
    )
    legend_x = left + 8
    for (name, values), color in zip(series.items(), colors):
        if not values:
            continue
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>')
        if len(values) == 1:
            x, y = values[0]
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>')
        parts.append(
            f'<rect x="{legend_x}" y="8" width="12" height="4" fill="{color}"/>'
            f'<text x="{legend_x + 16}" y="14" fill="#334155">{escape.html(name)}</text>'
        )
        legend_x += 24 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)


CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;color:#0f172a;max-width:1100px;\
margin:24px auto;padding:0 16px;line-height:1.45}
h1{font-size:1.6em;margin-bottom:0}h2{font-size:1.2em;margin-top:1.8em;border-bottom:2px solid #e2e8f0;\
padding-bottom:4px}
.muted{color:#64748b}.lead{font-size:1.05em;background:#eff6ff;border-left:4px solid #2563eb;padding:10px 14px;\
border-radius:4px}
dl.summary{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px}dl.summary dt{font-weight:600;color:#334155}\
dl.summary dd{margin:0}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #e2e8f0;border-radius:8px;padding:10px 14px;\
min-width:150px}
.card b{display:block;font-size:1.4em}.card span{color:#64748b;font-size:.9em}
table{border-collapse:collapse;width:100%;font-size:.9em}th,td{border:1px solid #e2e8f0;padding:6px 8px;\
vertical-align:top;text-align:left}
th{background:#f1f5f9}td.num{text-align:right;white-space:nowrap}td.better{background:#dcfce7}
.answer{white-space:pre-wrap}
.verdict{border-radius:8px;padding:12px 16px;border:2px solid #94a3b8;background:#f8fafc}
.verdict.better{border-color:#16a34a;background:#f0fdf4}.verdict.worse{border-color:#dc2626;background:#fef2f2}
.verdict.inconclusive{border-color:#d97706;background:#fffbeb}.verdict h2{border:0;margin:0 0 6px 0}
.verdict ul{margin:6px 0 0 0;padding-left:20px}
"""


def _fmt(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if _num(value) else "–"


def _eval_cards(summary: dict) -> list[tuple[str, str]]:
    cards = []
    if summary.get("with_reference"):
        cards += [
            ("Mean loss", f"{_fmt(summary['base_loss'])} → {_fmt(summary['tuned_loss'])}"),
            ("Perplexity", f"{_fmt(summary['base_perplexity'], 1)} → {_fmt(summary['tuned_perplexity'], 1)}"),
            ("Lower loss for tuned", f"{summary['improved']} of {summary['with_reference']} prompts"),
            ("ROUGE-L", f"{_fmt(summary.get('base_rouge_l'))} → {_fmt(summary.get('tuned_rouge_l'))}"),
            ("chrF", f"{_fmt(summary.get('base_chrf'))} → {_fmt(summary.get('tuned_chrf'))}"),
        ]
    wording = {"prefix": "Starts with", "suffix": "Ends with"}
    for part, counts in (summary.get("style_parts") or {}).items():
        cards.append(
            (
                f"{wording[part]} “{summary['style_marker'][part]}”",
                f"{counts['base']} → {counts['tuned']} of {summary['prompts']}",
            )
        )
    return cards


def decoding_text(settings: dict) -> str:
    """How the answers were generated, from the settings an evaluation recorded (older files: greedy)."""
    if not settings:
        return "decoding settings not recorded"
    if settings.get("decoding") == "sampling" or (settings.get("temperature") or 0) > 0:
        how = f"sampling at temperature {settings.get('temperature')}, top-p {settings.get('top_p')}"
    else:
        how = "greedy decoding"
    penalty = settings.get("repetition_penalty")
    guard = f"repetition penalty {penalty}" if penalty and penalty != 1 else "no repetition guard"
    source = f" ({settings['source']})" if settings.get("source") else ""
    return (
        f"{how}, {guard}, seed {settings.get('seed', 0)}, up to {settings.get('max_new_tokens', '?')} new tokens, "
        f"the same for both models{source}"
    )


def _ballots(ballots) -> list[dict]:
    if not ballots:
        return []
    return [ballots] if isinstance(ballots, dict) else list(ballots)


def build(run: runs.RunInfo, eval_result: dict | None = None, ballots=None) -> tuple[str, str]:
    """(html, markdown) for the run, its saved evaluation and the finished blind ballots (all revealed ones by
    default)."""
    eval_result = eval_result if eval_result is not None else evaluate.load(run)
    ballots = _ballots(ballots if ballots is not None else votes.finished_ballots(run, eval_result))
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    items = summary_items(run)
    series = loss_series(read_events(run))
    esc, md, md_inline = escape.html, escape.md, escape.md_inline  # every user-controlled value goes through these
    the_verdict = verdicts.verdict(eval_result, ballots)

    body = [
        f"<h1>Fine-tune report: {esc(run.name)}</h1>",
        f'<p class="muted">Fine-Tune Studio · generated {generated}</p>',
    ]
    out = [f"# Fine-tune report: {md_inline(run.name)}", "", f"_Fine-Tune Studio · generated {generated}_", ""]

    conclusion = the_verdict["conclusion"]
    signal_items = "".join(f"<li>{esc(signal['text'])}</li>" for signal in the_verdict["signals"])
    regression_items = "".join(f"<li>{esc(item['text'])}</li>" for item in the_verdict["regressions"])
    body.append(
        f'<div class="verdict {esc(conclusion)}" id="verdict" data-conclusion="{esc(conclusion)}">'
        f"<h2>Verdict: {esc(conclusion)}</h2><p><b>{esc(the_verdict['headline'])}</b></p>"
        + (f"<ul>{signal_items}</ul>" if signal_items else "")
        + (f"<p><b>Regressions</b></p><ul>{regression_items}</ul>" if regression_items else "")
        + f'<p class="muted">How: {esc(the_verdict["method"])}</p></div>'
    )
    out += [f"## Verdict: {md_inline(conclusion)}", "", f"**{md_inline(the_verdict['headline'])}**", ""]
    out += [f"- {md_inline(signal['text'])}" for signal in the_verdict["signals"]]
    if the_verdict["regressions"]:
        out += ["", "**Regressions:**", ""] + [f"- {md_inline(item['text'])}" for item in the_verdict["regressions"]]
    out += ["", f"_How: {md_inline(the_verdict['method'])}_", ""]
    if eval_result:
        facts = evaluate.headline(eval_result["summary"])
        if facts:
            body.append(f'<p class="lead">{esc(facts)}</p>')
            out += [f"> {md_inline(facts)}", ""]

    body.append(
        '<h2>Run</h2><dl class="summary">'
        + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items)
        + f"<dt>Evidence</dt><dd>{esc(the_verdict['evidence_text'])}</dd></dl>"
    )
    out += (
        ["## Run", ""]
        + [f"- **{md_inline(k)}:** {md_inline(v)}" for k, v in items]
        + [f"- **Evidence:** {md_inline(the_verdict['evidence_text'])}", ""]
    )

    body.append("<h2>Training loss</h2>" + svg_line_chart(series))
    out += ["## Training loss", ""]
    for name, values in series.items():
        if values:
            out.append(
                f"- {name}: {_fmt(values[0][1])} at step {values[0][0]} → {_fmt(values[-1][1])} at step "
                f"{values[-1][0]} (min {_fmt(min(v for _, v in values))})"
            )
    if not any(series.values()):
        out.append("No loss was logged for this run.")
    out.append("")

    body.append("<h2>Held-out evaluation</h2>")
    out += ["## Held-out evaluation", ""]
    if eval_result:
        summary = eval_result["summary"]
        how = (
            f"{summary['prompts']} prompts from the {eval_result.get('source') or 'prompt file'}; "
            f"{decoding_text(eval_result.get('settings') or {})}. Loss = teacher-forced cross-entropy of the reference "
            f"answer (lower is better); ROUGE-L = word overlap and chrF = character overlap with the reference "
            f"(0–1, higher is better); an answer repeats itself when {metrics.LOOPING:.0%} or more of its "
            f"word 3-grams occurred earlier in it."
        )
        body.append(f'<p class="muted">{esc(how)}</p>')
        body.append(
            '<div class="cards">'
            + "".join(f'<div class="card"><span>{esc(k)}</span><b>{esc(v)}</b></div>' for k, v in _eval_cards(summary))
            + "</div>"
        )
        out += [md(how), ""] + [f"- **{md_inline(k)}:** {md_inline(v)}" for k, v in _eval_cards(summary)] + [""]
        if summary.get("style_marker"):
            marker = summary["style_marker"]
            text = f"Style marker detected in the references: prefix “{marker['prefix']}”, suffix “{marker['suffix']}”."
            body.append(f'<p class="muted">{esc(text)}</p>')
            out += [md(text), ""]
        header = [
            "#",
            "Prompt",
            "Reference",
            "Base answer",
            "Tuned answer",
            "Base loss",
            "Tuned loss",
            "Repeats itself",
        ]
        rows_html = []
        out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for i, row in enumerate(eval_result["rows"], start=1):
            better = _num(row.get("tuned_loss")) and _num(row.get("base_loss")) and row["tuned_loss"] < row["base_loss"]
            loops = evaluate.repeats(row)
            rows_html.append(
                f'<tr><td class="num">{i}</td><td>{esc(row["prompt"])}</td><td class="answer">'
                f'{esc(row.get("reference") or "")}</td><td class="answer">{esc(row["base"])}</td><td class="answer">'
                f'{esc(row["tuned"])}</td><td class="num">{_fmt(row.get("base_loss"))}</td>'
                f'<td class="num{" better" if better else ""}">{_fmt(row.get("tuned_loss"))}</td>'
                f"<td>{esc(loops)}</td></tr>"
            )
            cells = [
                str(i),
                row["prompt"],
                row.get("reference") or "",
                row["base"],
                row["tuned"],
                _fmt(row.get("base_loss")),
                _fmt(row.get("tuned_loss")),
                loops,
            ]
            out.append("| " + " | ".join(escape.md_cell(c) for c in cells) + " |")
        body.append(
            '<table id="eval-table"><thead><tr>'
            + "".join(f"<th>{h}</th>" for h in header)
            + "</tr></thead><tbody>"
            + "".join(rows_html)
            + "</tbody></table>"
        )
        out.append("")
    else:
        body.append(
            '<p class="muted">No evaluation yet: run it in the Compare tab or with <code>'
            "python -m studio compare</code>.</p>"
        )
        out += ["No evaluation yet.", ""]

    body.append("<h2>Blind A/B votes</h2>")
    out += ["## Blind A/B votes", ""]
    result = votes.tally(ballots) if ballots else None
    if result and result["total"]:
        lines = [votes.tally_text(result)]
        if len(ballots) > 1:
            lines += [
                f"{ballot.get('label', 'Voter')}: {votes.tally_text(votes.tally(ballot))}"
                for ballot in ballots
                if ballot.get("votes")
            ]
        lines.append(
            "Only finished ballots count: a voter's answers are revealed, and the ballot closed, when they finish or "
            "stop."
        )
        body += [f"<p>{esc(line)}</p>" for line in lines]
        for line in lines:
            out += [md(line), ""]
    else:
        body.append('<p class="muted">No blind votes yet.</p>')
        out += ["No blind votes yet.", ""]

    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Fine-tune report: {esc(run.name)}</title><style>{CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>"
    )
    return page, "\n".join(out)


def write(
    run: runs.RunInfo, out: str | Path | None = None, eval_result: dict | None = None, ballots=None
) -> tuple[Path, Path]:
    """Write report.html and report.md (next to `out` if given, else in the viewer's Compare folder)."""
    page, markdown = build(run, eval_result, ballots)
    html_path = Path(out) if out else run.writable_compare_dir() / "report.html"
    md_path = html_path.with_suffix(".md")
    paths.atomic_write_text(html_path, page)
    paths.atomic_write_text(md_path, markdown)
    return html_path, md_path
