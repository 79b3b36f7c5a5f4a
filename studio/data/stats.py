"""Statistics and plots of a linted dataset: what the model will actually see and learn from.

Works on a LintReport (rows, findings, per-row token counts after the chosen model's chat
template). Everything here is plain Python + numpy; plotly is imported inside the figure
functions only.

`compute_stats()` returns a JSON-able dict with every figure the Data tab shows;
`manifest_stats()` picks the small "stats" dict of the saved-dataset contract from it.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from typing import Any, Iterable, Sequence

from studio import escape

PERCENTILES = (5, 25, 50, 75, 95, 99)

# OpenAI's chat fine-tuning data-prep rule (LINT-RULES DS-EPOCHS).
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_EPOCHS, MAX_EPOCHS = 1, 25

DEFAULT_BATCH_SIZE = 8
LENGTH_STEP = 64  # suggested max_length is rounded up to a multiple of this

# Okabe-Ito: distinguishable with every common colour-vision deficiency.
PALETTE = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "black": "#000000",
    "grey": "#999999",
}
SEVERITY_COLOURS = {"E": PALETTE["vermillion"], "W": PALETTE["orange"], "I": PALETTE["sky"]}
SEVERITY_NAMES = {"E": "error", "W": "warning", "I": "info"}
ROLE_COLOURS = {
    "system": PALETTE["grey"],
    "user": PALETTE["blue"],
    "assistant": PALETTE["orange"],
    "tool": PALETTE["green"],
}


# ---------------------------------------------------------------- small pure helpers


def percentiles(values: Iterable[float]) -> dict[str, int | float]:
    """True percentiles over every value (nearest rank, so each is a real example's size), plus min/mean/max."""
    ordered = sorted(values)
    if not ordered:
        return {**{f"p{q}": 0 for q in PERCENTILES}, "min": 0, "mean": 0, "max": 0}
    result: dict[str, int | float] = {}
    for q in PERCENTILES:
        rank = max(1, math.ceil(q / 100 * len(ordered)))  # nearest-rank definition
        result[f"p{q}"] = ordered[rank - 1]
    result["min"] = ordered[0]
    result["mean"] = round(sum(ordered) / len(ordered), 1)
    result["max"] = ordered[-1]
    return result


def suggested_epochs(rows: int) -> int:
    """OpenAI's default: 3 epochs, clamped so that epochs x rows stays within 100..25,000 (epochs 1..25)."""
    if rows <= 0:
        return TARGET_EPOCHS
    epochs = TARGET_EPOCHS
    if rows * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        epochs = min(MAX_EPOCHS, math.ceil(MIN_TARGET_EXAMPLES / rows))
    elif rows * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        epochs = max(MIN_EPOCHS, MAX_TARGET_EXAMPLES // rows)
    return int(epochs)


def suggested_max_length(p99: int, context: int | None = None) -> int:
    """About p99 rounded up to a multiple of 64 (never above the model's context)."""
    value = max(LENGTH_STEP, math.ceil(max(p99, 1) / LENGTH_STEP) * LENGTH_STEP)
    if context:
        value = min(value, int(context))
    return int(value)


def pack_sequences(lengths: Sequence[int], max_length: int) -> int:
    """How many sequences of max_length best-fit-decreasing packing needs (like TRL's "bfd").

    Longer examples are truncated to max_length first, as the trainer does.
    """
    remaining: list[int] = []  # free space of each open sequence, kept sorted
    full = 0
    for length in sorted((min(n, max_length) for n in lengths if n > 0), reverse=True):
        index = bisect.bisect_left(remaining, length)  # the fullest sequence that still fits
        free = (remaining.pop(index) if index < len(remaining) else max_length) - length
        if free > 0:
            bisect.insort(remaining, free)
        else:
            full += 1
    return full + len(remaining)


def padded_tokens(lengths: Sequence[int], batch_size: int, max_length: int) -> int:
    """Tokens processed without packing: each batch (in file order) padded to its longest example."""
    clipped = [min(n, max_length) for n in lengths]
    total = 0
    for start in range(0, len(clipped), batch_size):
        batch = clipped[start : start + batch_size]
        total += max(batch) * len(batch)
    return total


# ---------------------------------------------------------------- report access


def _token_counts(report, row) -> tuple[int, int, int | None, int | None] | None:
    """(total, prompt, trainable, trainable_cut) of one row; the report keys counts by position
    (a list aligned with report.rows) or by row number (a dict); each count is a TokenCount-like
    object, a dict or a tuple. trainable_cut is None when the report does not know it."""
    counts = getattr(report, "token_counts", None)
    if not counts:
        return None
    if isinstance(counts, dict):
        value = counts.get(row.number)
    else:
        index = _row_index(report).get(row.number)
        value = counts[index] if index is not None and index < len(counts) else None
    if value is None:
        return None
    if isinstance(value, dict):
        value = (value.get("total"), value.get("prompt"), value.get("trainable"), value.get("trainable_cut"))
    elif hasattr(value, "total"):
        value = (value.total, getattr(value, "prompt", 0), getattr(value, "trainable", None),
                 getattr(value, "trainable_cut", None))
    total, prompt, trainable, cut = (tuple(value) + (None, None, None, None))[:4]
    if total is None:
        return None
    return int(total), int(prompt or 0), (None if trainable is None else int(trainable)), (None if cut is None else int(cut))


def _row_index(report) -> dict[int, int]:
    cached = getattr(report, "_studio_row_index", None)
    if cached is None:
        cached = {row.number: index for index, row in enumerate(report.rows)}
        try:
            report._studio_row_index = cached
        except AttributeError:
            pass
    return cached


def error_rows(findings) -> dict[int, list]:
    """Row number -> its E findings (rows with an E are excluded from training)."""
    result: dict[int, list] = {}
    for finding in findings:
        if finding.severity == "E" and finding.row is not None:
            result.setdefault(finding.row, []).append(finding)
    return result


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content)
    return str(content)


# ---------------------------------------------------------------- the statistics


def compute_stats(
    report,
    max_length: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    model: str | None = None,
    context: int | None = None,
    row_numbers: Iterable[int] | None = None,
) -> dict[str, Any]:
    """Every statistic the Data tab shows, as a JSON-able dict.

    row_numbers: restrict the token figures to these rows (e.g. the cleaned train split);
    by default every row without an E finding.
    """
    max_length = int(max_length or getattr(report, "max_length", None) or context or 2048)
    batch_size = max(1, int(batch_size))
    rows = list(report.rows)
    errors = error_rows(report.findings)
    parsed = [row for row in rows if row.messages is not None or row.text is not None]
    converted = [row for row in parsed if row.format not in (None, "messages", "text")]
    if row_numbers is None:
        selected = [row for row in parsed if row.number not in errors]
    else:
        wanted = set(row_numbers)
        selected = [row for row in rows if row.number in wanted]

    counts = [(row, _token_counts(report, row)) for row in selected]
    counted = [(row, c) for row, c in counts if c is not None]
    totals = [c[0] for _, c in counted]
    prompts = [c[1] for _, c in counted]
    trainables = [c[2] for _, c in counted if c[2] is not None]
    have_tokens = bool(counted)

    over = [(row.number, c) for row, c in counted if c[0] > max_length]
    tokens_cut = sum(c[0] - max_length for _, c in over)
    # TRL cuts from the right, where the (last) answer is. The linter counts the trained tokens lost
    # exactly when it used this max_length; otherwise: at most the tokens cut and the row's trainable tokens.
    same_length = getattr(report, "max_length", None) == max_length
    trainable_cut = sum(
        c[3] if (same_length and c[3] is not None) else min(c[0] - max_length, c[2] or 0) for _, c in over
    )

    kept_tokens = sum(min(n, max_length) for n in totals)
    padded = padded_tokens(totals, batch_size, max_length) if totals else 0
    packed_sequences = pack_sequences(totals, max_length) if totals else 0
    epochs = suggested_epochs(len(selected))
    steps_per_epoch = math.ceil(len(selected) / batch_size) if selected else 0
    packed_steps = math.ceil(packed_sequences / batch_size) if packed_sequences else 0

    total_pct = percentiles(totals)
    stats: dict[str, Any] = {
        "model": model,
        "max_length": max_length,
        "context": context,
        "batch_size": batch_size,
        "format": getattr(report, "format", None),
        "rows": {
            "total": len(rows),
            "valid": len(parsed) - len([r for r in parsed if r.number in errors]),
            "invalid": len(rows) - len(parsed) + len([r for r in parsed if r.number in errors]),
            "converted": len(converted),
            "used": len(selected),
            # Lines the loader could not turn into a row (bad JSON, not an object, ...).
            "unreadable": len({f.row for f in report.findings if f.severity == "E" and f.row is not None}
                              - {row.number for row in rows}),
        },
        "have_tokens": have_tokens,
        "tokens": {
            "total": sum(totals),
            "prompt": sum(prompts),
            "trainable": sum(trainables) if trainables else None,
            "per_example": {
                "total": total_pct,
                "prompt": percentiles(prompts),
                "trainable": percentiles(trainables) if trainables else None,
            },
        },
        "length": {
            "rows_over_max_length": len(over),
            "rows_over": [number for number, _ in over][:1000],
            "tokens_cut": tokens_cut,
            "trainable_tokens_cut": trainable_cut,
            "suggested_max_length": suggested_max_length(total_pct["p99"], context) if have_tokens else None,
        },
        "packing": {
            "real_tokens": kept_tokens,
            "padded_tokens": padded,
            "padding_efficiency": round(kept_tokens / padded, 3) if padded else None,
            "packed_sequences": packed_sequences,
            "packing_efficiency": round(kept_tokens / (packed_sequences * max_length), 3) if packed_sequences else None,
        },
        "budget": {
            "batch_size": batch_size,
            "steps_per_epoch": steps_per_epoch,
            "steps_per_epoch_packed": packed_steps,
            "suggested_epochs": epochs,
            "total_steps": steps_per_epoch * epochs,
            "processed_tokens": kept_tokens * epochs,
            "trained_tokens": (sum(min(t, max_length) for t in trainables) * epochs) if trainables else None,
        },
        "messages_per_example": _sorted_counter(len(row.messages) for row in selected if row.messages is not None),
        "turns": _turn_mix(selected),
        "roles": dict(Counter(m.get("role", "?") for row in selected for m in (row.messages or []) if isinstance(m, dict))),
        "system_prompts": _system_prompts(selected),
        "findings_by_rule": findings_by_rule(report.findings),
        "findings_by_severity": dict(Counter(f.severity for f in report.findings)),
        # Kept for the histogram; not part of the manifest.
        "per_row_total": totals,
        "per_row_trainable": trainables,
    }
    return stats


def _sorted_counter(values: Iterable[int]) -> dict[str, int]:
    counter = Counter(values)
    return {str(key): counter[key] for key in sorted(counter)}


def _turn_mix(rows) -> dict[str, int]:
    single = multi = 0
    for row in rows:
        if row.messages is None:
            continue
        user_turns = sum(1 for m in row.messages if isinstance(m, dict) and m.get("role") == "user")
        if user_turns <= 1:
            single += 1
        else:
            multi += 1
    return {"single-turn": single, "multi-turn": multi}


def _system_prompts(rows, top: int = 5) -> dict[str, Any]:
    prompts: Counter = Counter()
    without = 0
    chat_rows = 0
    for row in rows:
        if row.messages is None:
            continue
        chat_rows += 1
        system = next((m for m in row.messages if isinstance(m, dict) and m.get("role") == "system"), None)
        if system is None:
            without += 1
        else:
            prompts[_content_text(system.get("content")).strip()] += 1
    return {
        "distinct": len(prompts),
        "rows_without": without,
        "rows": chat_rows,
        "top": [{"prompt": prompt, "rows": count} for prompt, count in prompts.most_common(top)],
    }


def findings_by_rule(findings) -> list[dict[str, Any]]:
    """[{rule, severity, count}] sorted by severity (E first) then count."""
    counter: Counter = Counter()
    severity_of: dict[str, str] = {}
    order = {"E": 0, "W": 1, "I": 2}
    for finding in findings:
        counter[finding.rule] += 1
        current = severity_of.get(finding.rule)
        if current is None or order.get(finding.severity, 3) < order.get(current, 3):
            severity_of[finding.rule] = finding.severity
    items = [{"rule": rule, "severity": severity_of[rule], "count": count} for rule, count in counter.items()]
    return sorted(items, key=lambda item: (order.get(item["severity"], 3), -item["count"], item["rule"]))


def manifest_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """The "stats" dict of the saved-dataset contract (what Decide and Train read)."""
    per_example = stats["tokens"]["per_example"]["total"]
    return {
        "model": stats.get("model"),
        "max_length": stats["max_length"],
        "rows": stats["rows"]["used"],
        "tokens": {
            "total": stats["tokens"]["total"],
            "trainable": stats["tokens"]["trainable"],
            "p50": per_example["p50"],
            "p95": per_example["p95"],
            "p99": per_example["p99"],
            "max": per_example["max"],
        },
        "suggested_max_length": stats["length"]["suggested_max_length"],
        # Extra figures (beyond the contract) that estimators may use.
        "suggested_epochs": stats["budget"]["suggested_epochs"],
        "steps_per_epoch": stats["budget"]["steps_per_epoch"],
        "batch_size": stats["budget"]["batch_size"],
        "rows_over_max_length": stats["length"]["rows_over_max_length"],
    }


def summary_markdown(stats: dict[str, Any]) -> str:
    """The statistics as a short Markdown block for the tab and report.md."""
    rows = stats["rows"]
    lines = [
        f"**Rows:** {rows['total']} read · {rows['valid']} usable · {rows['invalid']} with errors"
        + (f" · {rows['unreadable']} unreadable lines" if rows.get("unreadable") else "")
        + f" · {rows['converted']} converted to chat messages",
    ]
    if stats["have_tokens"]:
        per = stats["tokens"]["per_example"]
        model = f" ({escape.md_inline(stats['model'])})" if stats.get("model") else ""
        lines.append(f"\n**Tokens per example**{model}, after the chat template:\n")
        lines.append("| | p5 | p25 | p50 | p75 | p95 | p99 | max | sum |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for name in ("total", "prompt", "trainable"):
            values = per.get(name)
            if not values:
                continue
            label = {"total": "total", "prompt": "prompt (not trained)", "trainable": "trained (answers)"}[name]
            cells = " | ".join(f"{values[f'p{q}']:,}" for q in PERCENTILES)
            total_sum = stats["tokens"][name]
            lines.append(f"| {label} | {cells} | {values['max']:,} | {total_sum:,} |")
        length = stats["length"]
        lines.append(
            f"\n**Max length {stats['max_length']:,}:** {length['rows_over_max_length']} rows are longer and would be cut "
            f"({length['tokens_cut']:,} tokens, of which {length['trainable_tokens_cut']:,} trained). "
            f"Suggested max length: **{length['suggested_max_length']}** (p99 rounded up to {LENGTH_STEP})."
        )
        packing = stats["packing"]
        if packing["padding_efficiency"] is not None:
            lines.append(
                f"\n**Padding vs packing:** without packing {packing['padding_efficiency']:.0%} of processed tokens are real "
                f"(the rest is padding); packed into {packing['packed_sequences']:,} sequence"
                f"{'s' if packing['packed_sequences'] != 1 else ''} of {stats['max_length']:,} tokens, "
                f"{packing['packing_efficiency']:.0%}."
            )
        budget = stats["budget"]
        lines.append(
            f"\n**Budget at batch size {budget['batch_size']}:** {budget['steps_per_epoch']:,} steps per epoch "
            f"({budget['steps_per_epoch_packed']:,} with packing); suggested epochs **{budget['suggested_epochs']}** "
            f"(OpenAI's rule) → {budget['total_steps']:,} steps, {budget['processed_tokens']:,} tokens processed."
        )
    else:
        lines.append("\n*Token statistics need a model's tokenizer: pick a model and lint again.*")
    turns = stats["turns"]
    if turns["single-turn"] or turns["multi-turn"]:
        lines.append(f"\n**Conversations:** {turns['single-turn']} single-turn, {turns['multi-turn']} multi-turn.")
    system = stats["system_prompts"]
    if system["rows"]:
        lines.append(
            f"**System prompts:** {system['distinct']} distinct; {system['rows_without']} of {system['rows']} rows have none."
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- plotly figures


def _layout(fig, title: str, x_title: str = "", y_title: str = "", height: int = 320):
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 15}},
        xaxis_title=x_title,
        yaxis_title=y_title,
        height=height,
        margin={"l": 50, "r": 20, "t": 50, "b": 45},
        template="plotly_white",
        font={"size": 13},
        showlegend=False,
        bargap=0.08,
    )
    return fig


def tokens_histogram(stats: dict[str, Any]):
    import plotly.graph_objects as go

    totals = stats.get("per_row_total") or []
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=totals, marker_color=PALETTE["blue"], name="rows",
                               hovertemplate="%{x} tokens: %{y} rows<extra></extra>"))
    if totals:
        p95 = stats["tokens"]["per_example"]["total"]["p95"]
        max_length = stats["max_length"]
        fig.add_vline(x=p95, line_dash="dot", line_color=PALETTE["green"], line_width=2,
                      annotation_text=f"p95 = {p95}", annotation_position="top right",
                      annotation_yshift=-18)
        if max_length <= max(totals) * 1.5:
            fig.add_vline(x=max_length, line_dash="dash", line_color=PALETTE["vermillion"], line_width=2,
                          annotation_text=f"max_length = {max_length}", annotation_position="top left")
        else:
            fig.add_annotation(text=f"max_length = {max_length:,} (off the chart: nothing is cut)", xref="paper",
                               yref="paper", x=1, y=1.08, showarrow=False, font={"color": PALETTE["vermillion"]})
    return _layout(fig, "Tokens per example", "tokens (after the chat template)", "rows")


def messages_chart(stats: dict[str, Any]):
    import plotly.graph_objects as go

    data = stats.get("messages_per_example") or {}
    fig = go.Figure(go.Bar(x=list(data.keys()), y=list(data.values()), marker_color=PALETTE["sky"],
                           hovertemplate="%{x} messages: %{y} rows<extra></extra>"))
    fig.update_xaxes(type="category")
    return _layout(fig, "Messages per example", "messages in the conversation", "rows")


def roles_chart(stats: dict[str, Any]):
    import plotly.graph_objects as go

    roles = stats.get("roles") or {}
    names = list(roles.keys())
    fig = go.Figure(go.Bar(
        x=[roles[name] for name in names], y=[escape.html(name, quote=False) for name in names], orientation="h",  # roles come from the data
        marker_color=[ROLE_COLOURS.get(name, PALETTE["purple"]) for name in names],
        text=[roles[name] for name in names], textposition="auto",
        hovertemplate="%{y}: %{x} messages<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Role mix (messages)", "messages", "")


def system_prompts_chart(stats: dict[str, Any]):
    import plotly.graph_objects as go

    system = stats.get("system_prompts") or {"top": [], "rows_without": 0}
    labels = [escape.html(_shorten(item["prompt"] or "(empty)", 42), quote=False) for item in system["top"]]  # Plotly reads tags in labels
    values = [item["rows"] for item in system["top"]]
    if system.get("rows_without"):
        labels.append("(no system prompt)")
        values.append(system["rows_without"])
    colours = [PALETTE["purple"]] * len(system["top"]) + [PALETTE["grey"]] * (len(labels) - len(system["top"]))
    fig = go.Figure(go.Bar(x=values, y=labels, orientation="h", marker_color=colours, text=values, textposition="auto",
                           hovertemplate="%{y}<br>%{x} rows<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Top system prompts", "rows", "", height=max(260, 60 + 45 * len(labels)))


def findings_chart(stats: dict[str, Any]):
    import plotly.graph_objects as go

    items = stats.get("findings_by_rule") or []
    fig = go.Figure()
    for severity in ("E", "W", "I"):
        group = [item for item in items if item["severity"] == severity]
        if not group:
            continue
        fig.add_trace(go.Bar(
            x=[item["count"] for item in group], y=[item["rule"] for item in group], orientation="h",
            name=SEVERITY_NAMES[severity], marker_color=SEVERITY_COLOURS[severity],
            text=[item["count"] for item in group], textposition="auto",
            hovertemplate="%{y}: %{x} findings<extra>" + SEVERITY_NAMES[severity] + "</extra>",
        ))
    fig.update_yaxes(autorange="reversed", categoryorder="array", categoryarray=[item["rule"] for item in items])
    fig.update_traces(textposition="outside", cliponaxis=False)
    if items and max(item["count"] for item in items) <= 10:
        fig.update_xaxes(dtick=1)  # whole findings only
    _layout(fig, "Findings by rule", "findings", "", height=max(260, 80 + 17 * len(items)))
    fig.update_layout(showlegend=True, legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"})
    return fig


def figures(stats: dict[str, Any]) -> dict[str, Any]:
    return {
        "tokens": tokens_histogram(stats),
        "messages": messages_chart(stats),
        "roles": roles_chart(stats),
        "system_prompts": system_prompts_chart(stats),
        "findings": findings_chart(stats),
    }


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------- the report as Markdown


def report_markdown(report, stats: dict[str, Any], source_name: str = "", verdict: str = "", max_findings: int = 500) -> str:
    """The lint report for people (report.md): verdict, statistics, findings by rule, then every finding."""
    severity_counts = Counter(f.severity for f in report.findings)
    title = {"blocked": "Blocked as it is", "warnings": "Ready, with warnings", "ready": "Ready to train"}.get(verdict, verdict)
    lines = [
        f"# Dataset lint report{f': {escape.md_inline(source_name)}' if source_name else ''}",
        "",
        f"**Verdict:** {title or '—'} · {severity_counts.get('E', 0)} errors · {severity_counts.get('W', 0)} warnings"
        f" · {severity_counts.get('I', 0)} notes · format {escape.md_code(getattr(report, 'format', None) or 'unknown')}",
        "",
        "## Statistics",
        "",
        summary_markdown(stats),
        "",
        "## Findings by rule",
        "",
        "| Rule | Severity | Count |",
        "|---|---|---|",
    ]
    for item in findings_by_rule(report.findings):
        lines.append(f"| {item['rule']} | {SEVERITY_NAMES.get(item['severity'], item['severity'])} | {item['count']} |")
    lines += ["", "## Findings", "", "| Severity | Rule | Row | Message | Hint |", "|---|---|---|---|---|"]
    order = {"E": 0, "W": 1, "I": 2}
    ordered = sorted(report.findings, key=lambda f: (order.get(f.severity, 3), f.row or 0, f.rule))
    for finding in ordered[:max_findings]:
        row = "file" if finding.row is None else str(finding.row)
        lines.append(f"| {SEVERITY_NAMES.get(finding.severity, finding.severity)} | {_cell(finding.rule)} | {row} | "
                     f"{_cell(finding.message)} | {_cell(finding.hint)} |")
    if len(ordered) > max_findings:
        lines.append(f"\n… and {len(ordered) - max_findings} more findings: see report.json.")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return escape.md_cell(" ".join(str(text).split()))
