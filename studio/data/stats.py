"""Statistics and plots of a linted dataset: what the model will actually see and learn from.

The one statistics path: `compute_stats(report)` reads the report's per-row table
(studio.data.table: counts, roles, system prompts, token counts after the chosen model's chat
template) and its findings, so `lint --json` and the Data tab show the same numbers for the same
file. Everything is numpy, so a million rows take well under a second; plotly is imported inside
the figure functions only.

`compute_stats()` returns a JSON-able dict with every figure the Data tab shows (the linter stores
it as report.stats); `manifest_stats()` picks the small "stats" dict a saved dataset's manifest holds.
Percentiles are nearest-rank (each one a real example's size); `suggested_max_length` and
`suggested_epochs` are defined here once for the linter, the Data tab and the Train tab.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from studio import escape
from studio.data.records import Finding
from studio.data.report import LintReport
from studio.data.rules.secrets import quote
from studio.data.table import FORMATS, ROLES

PERCENTILES = (5, 25, 50, 75, 95, 99)

# OpenAI's chat fine-tuning data-prep rule (lint rule DS-EPOCHS).
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_EPOCHS, MAX_EPOCHS = 1, 25

DEFAULT_BATCH_SIZE = 8
DEFAULT_MAX_LENGTH = 2048  # when neither the caller nor the model says
LENGTH_STEP = 64  # suggested max_length is rounded up to a multiple of this
CONVERTED_FORMATS = [FORMATS.index(name) for name in ("sharegpt", "alpaca", "prompt-completion")]
HISTOGRAM_BINS = 60  # the token-length histogram is binned here, so a million rows stay a small chart

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
    ordered = np.sort(
        np.fromiter(values, dtype=np.float64) if not isinstance(values, np.ndarray) else values.astype(np.float64)
    )
    if not len(ordered):
        return {**{f"p{q}": 0 for q in PERCENTILES}, "min": 0, "mean": 0, "max": 0}
    result: dict[str, int | float] = {}
    for q in PERCENTILES:
        rank = max(1, math.ceil(q / 100 * len(ordered)))  # nearest-rank definition
        result[f"p{q}"] = _plain(ordered[rank - 1])
    result["min"] = _plain(ordered[0])
    result["mean"] = round(float(ordered.mean()), 1)
    result["max"] = _plain(ordered[-1])
    return result


def _plain(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


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


def suggested_max_length(p99: float, context: int | None = None) -> int:
    """About p99 rounded up to a multiple of 64 (never above the model's context)."""
    value = max(LENGTH_STEP, math.ceil(max(p99, 1) / LENGTH_STEP) * LENGTH_STEP)
    if context:
        value = min(value, int(context))
    return int(value)


def pack_sequences(lengths: Sequence[int], max_length: int) -> int:
    """How many sequences of max_length best-fit-decreasing packing needs (like TRL's "bfd").

    Longer examples are truncated to max_length first, as the trainer does. Exact BFD, computed on
    counts: examples of one length fill, one after the other, the fullest open sequence that still
    has room (a sequence with f tokens free takes f // length of them in a row), so the work grows
    with the number of distinct lengths, not with the number of rows.
    """
    clipped = np.minimum(np.asarray(lengths, dtype=np.int64), max_length)
    clipped = clipped[clipped > 0]
    if not len(clipped):
        return 0
    values, counts = np.unique(clipped, return_counts=True)
    open_by_free = np.zeros(max_length + 1, dtype=np.int64)  # open sequences by free tokens (0 = full)
    used = 0
    for length, count in zip(values[::-1].tolist(), counts[::-1].tolist()):
        while count:
            candidates = np.flatnonzero(open_by_free[length:]) + length
            free = int(candidates[0]) if len(candidates) else None
            if free is None:  # no open sequence fits: open new ones, each takes max_length // length examples
                per = max_length // length
                full, rest = divmod(count, per)
                used += full + (1 if rest else 0)
                open_by_free[max_length - per * length] += full
                if rest:
                    open_by_free[max_length - rest * length] += 1
                count = 0
                continue
            per = free // length
            sequences = int(open_by_free[free])
            if count >= per * sequences:
                open_by_free[free] = 0
                open_by_free[free - per * length] += sequences
                count -= per * sequences
            else:
                full, rest = divmod(count, per)
                open_by_free[free] -= full + (1 if rest else 0)
                open_by_free[free - per * length] += full
                if rest:
                    open_by_free[free - rest * length] += 1
                count = 0
    return used


def padded_tokens(lengths: Sequence[int], batch_size: int, max_length: int) -> int:
    """Tokens processed without packing: each batch (in file order) padded to its longest example."""
    clipped = np.minimum(np.asarray(lengths, dtype=np.int64), max_length)
    if not len(clipped):
        return 0
    size = len(clipped)
    padded = np.zeros(-(-size // batch_size) * batch_size, dtype=np.int64)
    padded[:size] = clipped
    batch_max = padded.reshape(-1, batch_size).max(axis=1)
    batch_rows = np.full(len(batch_max), batch_size, dtype=np.int64)
    batch_rows[-1] = size - (len(batch_max) - 1) * batch_size
    return int((batch_max * batch_rows).sum())


def histogram(values: np.ndarray, bins: int = HISTOGRAM_BINS) -> dict[str, list[int]]:
    """Counts of values in equal-width integer bins [edges[i], edges[i + 1]) (the last bin includes the max)."""
    if not len(values):
        return {"edges": [], "counts": []}
    low, high = int(values.min()), int(values.max())
    width = max(1, math.ceil((high - low + 1) / bins))
    edges = np.arange(low, high + width + 1, width)
    counts, _ = np.histogram(values, bins=edges)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def error_rows(findings: Iterable[Finding]) -> dict[int, list[Finding]]:
    """Row number -> its E findings (rows with an E are excluded from training)."""
    result: dict[int, list[Finding]] = {}
    for finding in findings:
        if finding.severity == "E" and finding.row is not None:
            result.setdefault(finding.row, []).append(finding)
    return result


# ---------------------------------------------------------------- the statistics


def token_percentiles(report: LintReport) -> dict[str, int | float] | None:
    """Percentiles of tokens per example over the rows that train (None without token counts):
    the figures the stats show and LEN-PACK-HINT quotes."""
    totals = report.facts().tokens[report.valid_mask(), 0]
    totals = totals[totals >= 0]
    return percentiles(totals) if len(totals) else None


def compute_stats(
    report: LintReport,
    max_length: int | None = None,
    batch_size: int | None = None,
    model: str | None = None,
    context: int | None = None,
    row_numbers: Iterable[int] | None = None,
) -> dict[str, Any]:
    """Every statistic the Data tab and `lint --json` show, as a JSON-able dict.

    Defaults come from the report (its max_length, batch size, model and context).
    row_numbers: restrict the figures to these rows (e.g. the cleaned train split);
    by default every parsed row without an E finding.
    """
    context = context or report.context_length
    max_length = int(max_length or report.max_length or context or DEFAULT_MAX_LENGTH)
    batch_size = max(1, int(batch_size or report.batch_size or DEFAULT_BATCH_SIZE))
    model = model or report.model
    table = report.facts()
    numbers = table.numbers
    valid = report.valid_mask()
    selected = valid if row_numbers is None else np.isin(numbers, np.fromiter(row_numbers, dtype=np.int64))
    used = int(selected.sum())

    tokens = table.tokens[selected]
    tokens = tokens[tokens[:, 0] >= 0]
    totals, prompts, trainables, cuts = (tokens[:, k].astype(np.int64) for k in range(4))
    have_tokens = bool(len(totals))

    over = totals > max_length
    tokens_cut = int((totals[over] - max_length).sum())
    # TRL cuts from the right, where the (last) answer is. The linter counts the trained tokens lost
    # exactly when it used this max_length; otherwise: at most the tokens cut and the row's trainable tokens.
    if report.max_length == max_length:
        trainable_cut = int(cuts[over].sum())
    else:
        trainable_cut = int(np.minimum(totals[over] - max_length, trainables[over]).sum())

    kept = np.minimum(totals, max_length)
    kept_tokens = int(kept.sum())
    padded = padded_tokens(totals, batch_size, max_length) if have_tokens else 0
    packed_sequences = pack_sequences(totals, max_length) if have_tokens else 0
    epochs = suggested_epochs(used)
    steps_per_epoch = math.ceil(used / batch_size) if used else 0
    packed_steps = math.ceil(packed_sequences / batch_size) if packed_sequences else 0

    total_pct = percentiles(totals)
    unreadable = report.error_rows() - set(numbers.tolist())  # lines the loader could not turn into a row
    stats: dict[str, Any] = {
        "model": model,
        "max_length": max_length,
        "context": context,
        "batch_size": batch_size,
        "format": report.format,
        "rows": {
            "total": len(table),
            "valid": int(valid.sum()),
            "invalid": int(len(table) - valid.sum()),
            "converted": int((table.parsed & np.isin(table.formats, CONVERTED_FORMATS)).sum()),
            "used": used,
            "unreadable": len(unreadable),
        },
        "have_tokens": have_tokens,
        "tokens": {
            "total": int(totals.sum()),
            "prompt": int(prompts.sum()),
            "trainable": int(trainables.sum()) if have_tokens else None,
            "per_example": {
                "total": total_pct,
                "prompt": percentiles(prompts),
                "trainable": percentiles(trainables) if have_tokens else None,
            },
        },
        "length": {
            "rows_over_max_length": int(over.sum()),
            "rows_over": table.numbers[selected][table.tokens[selected, 0] > max_length][:1000].tolist(),
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
            "trained_tokens": int(np.minimum(trainables, max_length).sum()) * epochs if have_tokens else None,
        },
        "messages_per_example": _value_counts(table.messages[selected & (table.messages >= 0)]),
        "turns": _turn_mix(table, selected),
        "roles": _roles(table, selected),
        "system_prompts": _system_prompts(table, selected),
        "findings_by_rule": findings_by_rule(report.findings),
        "findings_by_severity": dict(Counter(f.severity for f in report.findings)),
        "histogram": histogram(totals),  # tokens per example, for the chart
    }
    return stats


def _value_counts(values: np.ndarray) -> dict[str, int]:
    keys, counts = np.unique(values, return_counts=True)
    return {str(key): int(count) for key, count in zip(keys.tolist(), counts.tolist())}


def _turn_mix(table, selected: np.ndarray) -> dict[str, int]:
    chat = selected & (table.messages >= 0)
    multi = int((table.users[chat] > 1).sum())
    return {"single-turn": int(chat.sum()) - multi, "multi-turn": multi}


def _roles(table, selected: np.ndarray) -> dict[str, int]:
    sums = table.roles[selected].sum(axis=0).tolist()
    roles = {name: int(count) for name, count in zip(ROLES, sums) if count}
    if table.other_roles:
        chosen = set(np.flatnonzero(selected).tolist())
        for index, extra in table.other_roles.items():
            if index in chosen:
                for role, count in extra.items():
                    roles[role] = roles.get(role, 0) + count
    return roles


def _system_prompts(table, selected: np.ndarray, top: int = 5) -> dict[str, Any]:
    chat = selected & (table.messages >= 0)
    ids = table.system[chat]
    with_prompt = ids[ids >= 0]
    counts = np.bincount(with_prompt, minlength=len(table.system_texts)) if len(with_prompt) else np.zeros(0, np.int64)
    order = np.argsort(-counts, kind="stable")[:top]  # ties: the prompt seen first
    return {
        "distinct": int((counts > 0).sum()),
        "rows_without": int((ids < 0).sum()),
        "rows": int(chat.sum()),
        # Prompts come from the data: a secret in one is masked before it is shown anywhere.
        "top": [
            {"prompt": quote(table.system_texts[i], 2000), "rows": int(counts[i])} for i in order.tolist() if counts[i]
        ],
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
            f"\n**Max length {stats['max_length']:,}:** {length['rows_over_max_length']} rows are longer and would "
            f"be cut ({length['tokens_cut']:,} tokens, of which {length['trainable_tokens_cut']:,} trained). "
            f"Suggested max length: **{length['suggested_max_length']}** (p99 rounded up to {LENGTH_STEP})."
        )
        packing = stats["packing"]
        if packing["padding_efficiency"] is not None:
            lines.append(
                f"\n**Padding vs packing:** without packing {packing['padding_efficiency']:.0%} of processed tokens "
                f"are real (the rest is padding); packed into {packing['packed_sequences']:,} "
                f"sequence{'s' if packing['packed_sequences'] != 1 else ''} of {stats['max_length']:,} tokens, "
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
            f"**System prompts:** {system['distinct']} distinct; {system['rows_without']} of {system['rows']} rows "
            f"have none."
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

    bins = stats.get("histogram") or {"edges": [], "counts": []}
    edges, counts = bins["edges"], bins["counts"]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=[(a + b) / 2 for a, b in zip(edges, edges[1:])],
            y=counts,
            width=[b - a for a, b in zip(edges, edges[1:])],
            marker_color=PALETTE["blue"],
            name="rows",
            customdata=[[a, b - 1] for a, b in zip(edges, edges[1:])],
            hovertemplate="%{customdata[0]}-%{customdata[1]} tokens: %{y} rows<extra></extra>",
        )
    )
    if counts:
        p95 = stats["tokens"]["per_example"]["total"]["p95"]
        max_length = stats["max_length"]
        fig.add_vline(
            x=p95,
            line_dash="dot",
            line_color=PALETTE["green"],
            line_width=2,
            annotation_text=f"p95 = {p95}",
            annotation_position="top right",
            annotation_yshift=-18,
        )
        if max_length <= edges[-1] * 1.5:
            fig.add_vline(
                x=max_length,
                line_dash="dash",
                line_color=PALETTE["vermillion"],
                line_width=2,
                annotation_text=f"max_length = {max_length}",
                annotation_position="top left",
            )
        else:
            fig.add_annotation(
                text=f"max_length = {max_length:,} (off the chart: nothing is cut)",
                xref="paper",
                yref="paper",
                x=1,
                y=1.08,
                showarrow=False,
                font={"color": PALETTE["vermillion"]},
            )
    return _layout(fig, "Tokens per example", "tokens (after the chat template)", "rows")


def messages_chart(stats: dict[str, Any]):
    import plotly.graph_objects as go

    data = stats.get("messages_per_example") or {}
    fig = go.Figure(
        go.Bar(
            x=list(data.keys()),
            y=list(data.values()),
            marker_color=PALETTE["sky"],
            hovertemplate="%{x} messages: %{y} rows<extra></extra>",
        )
    )
    fig.update_xaxes(type="category")
    return _layout(fig, "Messages per example", "messages in the conversation", "rows")


def roles_chart(stats: dict[str, Any]):
    import plotly.graph_objects as go

    roles = stats.get("roles") or {}
    names = list(roles.keys())
    fig = go.Figure(
        go.Bar(
            x=[roles[name] for name in names],
            y=[escape.html(name, quote=False) for name in names],
            orientation="h",  # roles come from the data
            marker_color=[ROLE_COLOURS.get(name, PALETTE["purple"]) for name in names],
            text=[roles[name] for name in names],
            textposition="auto",
            hovertemplate="%{y}: %{x} messages<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Role mix (messages)", "messages", "")


def system_prompts_chart(stats: dict[str, Any]):
    import plotly.graph_objects as go

    system = stats.get("system_prompts") or {"top": [], "rows_without": 0}
    labels = [
        escape.html(_shorten(item["prompt"] or "(empty)", 42), quote=False) for item in system["top"]
    ]  # Plotly reads tags in labels
    values = [item["rows"] for item in system["top"]]
    if system.get("rows_without"):
        labels.append("(no system prompt)")
        values.append(system["rows_without"])
    colours = [PALETTE["purple"]] * len(system["top"]) + [PALETTE["grey"]] * (len(labels) - len(system["top"]))
    fig = go.Figure(
        go.Bar(
            x=values,
            y=labels,
            orientation="h",
            marker_color=colours,
            text=values,
            textposition="auto",
            hovertemplate="%{y}<br>%{x} rows<extra></extra>",
        )
    )
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
        fig.add_trace(
            go.Bar(
                x=[item["count"] for item in group],
                y=[item["rule"] for item in group],
                orientation="h",
                name=SEVERITY_NAMES[severity],
                marker_color=SEVERITY_COLOURS[severity],
                text=[item["count"] for item in group],
                textposition="auto",
                hovertemplate="%{y}: %{x} findings<extra>" + SEVERITY_NAMES[severity] + "</extra>",
            )
        )
    fig.update_yaxes(autorange="reversed", categoryorder="array", categoryarray=[item["rule"] for item in items])
    fig.update_traces(textposition="outside", cliponaxis=False)
    if items and max(item["count"] for item in items) <= 10:
        fig.update_xaxes(dtick=1)  # whole findings only
    _layout(fig, "Findings by rule", "findings", "", height=max(260, 80 + 17 * len(items)))
    fig.update_layout(
        showlegend=True, legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"}
    )
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


def report_markdown(
    report, stats: dict[str, Any], source_name: str = "", verdict: str = "", max_findings: int = 500
) -> str:
    """The lint report for people (report.md): verdict, statistics, findings by rule, then every finding."""
    severity_counts = Counter(f.severity for f in report.findings)
    title = {"blocked": "Blocked as it is", "warnings": "Ready, with warnings", "ready": "Ready to train"}.get(
        verdict, verdict
    )
    lines = [
        f"# Dataset lint report{f': {escape.md_inline(source_name)}' if source_name else ''}",
        "",
        f"**Verdict:** {title or '—'} · {severity_counts.get('E', 0)} errors · {severity_counts.get('W', 0)} warnings"
        f" · {severity_counts.get('I', 0)} notes · format "
        f"{escape.md_code(getattr(report, 'format', None) or 'unknown')}",
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
        lines.append(
            f"| {SEVERITY_NAMES.get(finding.severity, finding.severity)} | {_cell(finding.rule)} | {row} | "
            f"{_cell(finding.message)} | {_cell(finding.hint)} |"
        )
    if len(ordered) > max_findings:
        lines.append(f"\n… and {len(ordered) - max_findings} more findings: see report.json.")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return escape.md_cell(" ".join(str(text).split()))
