"""How a Plan is shown: tables, the break-even chart, and the Markdown decision record for stakeholders."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from studio import escape, paths
from studio.decide import checklist
from studio.decide import estimate as est
from studio.decide.plan import Plan
from studio.models import cost

# Okabe–Ito colours: distinguishable with every common colour-vision deficiency.
BLUE, ORANGE, GREEN, VERMILION, GREY = "#0072B2", "#E69F00", "#009E73", "#D55E00", "#666666"
VERDICT_STYLE = {
    checklist.GO: ("[GO]", GREEN),
    checklist.NOT_YET: ("[NOT YET]", ORANGE),
    checklist.DONT: ("[DON'T]", VERMILION),
}


def money(value: float) -> str:
    if value == 0:
        return "$0"
    return f"${value:,.2f}" if value >= 0.01 else "< $0.01"


def duration(hours: float) -> str:
    if hours < 1 / 3600:
        return "< 1 s"
    if hours < 1 / 60:
        return f"{hours * 3600:.0f} s"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def months_text(months: float) -> str:
    if months < 1:
        days = months * 30.4
        return "less than a day" if days < 1 else f"{days:.0f} days"
    return f"{months:.1f} months"


def flops_text(flops: float) -> str:
    return f"{flops:.3g} FLOPs ({flops / 1e15:,.2f} PFLOPs)"


def _question_labels(keys) -> str:
    return ", ".join(checklist.QUESTION_BY_KEY[key].short for key in keys)


def reason_lines(reasons) -> list[str]:
    lines = []
    for reason in reasons:
        source = f" *(from: {_question_labels(reason.questions)})*" if reason.questions else ""
        lines.append(f"- {reason.text}{source}")
    return lines


def recommendation_markdown(rec: checklist.Recommendation, heading: str = "###") -> str:
    icon, _ = VERDICT_STYLE[rec.kind]
    lines = [f"{heading} {icon} {rec.verdict}", "", "**Why**", *reason_lines(rec.reasons)]
    if rec.supporting:
        lines += ["", "**Speaks for fine-tuning later**", *reason_lines(rec.supporting)]
    if rec.notes:
        lines += ["", "**Keep in mind**", *reason_lines(rec.notes)]
    lines += ["", "**Next steps**", *[f"{number}. {step}" for number, step in enumerate(rec.next_steps, 1)]]
    return "\n".join(lines)


MEMORY_PARTS = cost.MEMORY_PARTS


def memory_rows(plan: Plan) -> list[list]:
    """Memory parts (GiB) for every technique side by side, the chosen one marked."""
    common = dict(
        arch=plan.arch,
        batch_size=plan.estimate.batch_size,
        max_length=int(plan.estimate.run.workload.longest) or plan.max_length,
        gradient_checkpointing=plan.estimate.gradient_checkpointing,
        lora_r=plan.estimate.lora_r,
        dtype=plan.estimate.dtype,
        kind=plan.hardware.kind,
    )
    memories = {key: est.estimate_memory(plan.params, key, **common) for key in est.TECHNIQUES}
    rows = [[label] + [f"{getattr(memories[key], part):.2f}" for key in est.TECHNIQUES] for part, label in MEMORY_PARTS]
    rows.append(["Total (GiB)"] + [f"{memories[key].total:.1f}" for key in est.TECHNIQUES])
    rows.append(
        [f"Fits {plan.hardware.label}?"]
        + ["yes" if est.fits_in(memories[key].total, plan.hardware.memory_gib) else "no" for key in est.TECHNIQUES]
    )
    return rows


def memory_headers(plan: Plan) -> list[str]:
    return ["Part"] + [est.TECHNIQUE_LABELS[key] + (" ◀" if key == plan.technique else "") for key in est.TECHNIQUES]


COMPARISON_HEADERS = ["Hardware", "Memory needed / available", "Fits", "Time", "Cost", "Price/h", "Peak × efficiency"]


def comparison_rows(plan: Plan) -> list[list]:
    rows = []
    for item in plan.comparison:
        device = item.hardware
        fits = f"no: {item.unavailable}" if item.unavailable else ("yes" if item.fits else "no")
        name = device.label + (f" × {item.devices}" if item.devices > 1 else "")
        rows.append(
            [
                name,
                f"{item.memory.total:.1f} / {device.memory_gib:.0f} GiB",
                fits,
                duration(item.hours),
                money(item.cost_usd),
                money(device.price_per_hour),
                f"{device.peak_tflops:g} TFLOP/s × {item.run.efficiency:.0%}",
            ]
        )
    return rows


ADVICE_HEADERS = ["Technique", "Memory needed", "Here", "Reduces compute", "Reduces memory", "Trainable params"]


def markdown_table(headers: list[str], rows: list[list]) -> str:
    def cell(value) -> str:
        return str(value).replace("|", "/").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def summary_markdown(plan: Plan) -> str:
    e = plan.estimate
    shape = (
        ""
        if plan.arch.known
        else ", generic shape: hidden " + str(plan.arch.hidden) + ", " + str(plan.arch.layers) + " layers"
    )
    lines = [
        f"**{est.TECHNIQUE_LABELS[plan.technique]}{' + DeepSpeed ZeRO-3' if plan.devices > 1 else ''}** on "
        f"**{plan.arch.name}** ({est.format_params(plan.params)} params{shape})"
        f" · {plan.tokens:,.0f} tokens × {e.epochs:g} epochs · batch {e.batch_size} × length {e.max_length}"
        f" · {e.dtype}{', gradient checkpointing' if e.gradient_checkpointing else ''} on **{plan.hardware.label}**"
        + (f" × {plan.devices}" if plan.devices > 1 else ""),
        "",
        f"| Memory | Compute | Time | Cost |\n|---|---|---|---|\n"
        f"| {e.memory.total:.1f} GiB of {plan.hardware.memory_gib:.0f} GiB "
        f"({'fits' if e.fits else '**does not fit**'}) "
        f"| {e.flops:.3g} FLOPs | {duration(e.hours)} (training steps {duration(e.train_hours)}) "
        f"| {money(e.cost_usd)} |",
        "",
        f"*Formula:* FLOPs = {e.formula}"
        + (
            f"; time × {est.TIME_OVERHEAD[plan.technique]:g} for {est.TECHNIQUE_LABELS[plan.technique]}'s overhead"
            if est.TIME_OVERHEAD[plan.technique] != 1
            else ""
        )
        + f". Trainable parameters: {(plan.params if plan.technique == 'full' else e.adapter_params):,.0f}.",
    ]
    if plan.warnings:
        lines += ["", *[f"**Warning:** {escape.md_inline(warning)}" for warning in plan.warnings]]  # may name the model
    return "\n".join(lines)


def break_even_markdown(plan: Plan) -> str:
    b = plan.break_even
    if b.monthly_saving == 0:
        return (
            "**Break-even:** no savings entered. Fill in *prompt tokens saved per request* and *requests per "
            "month* in the Benefits section to see when fine-tuning pays for itself."
        )
    hosting = (
        f" minus {money(b.monthly_saving - b.net_monthly)}/month extra hosting"
        if b.net_monthly != b.monthly_saving
        else ""
    )
    head = f"Saving {money(b.monthly_saving)}/month in prompt tokens{hosting} against a one-time {money(b.one_time)}"
    if b.months is None:
        return f"**Break-even: never.** {head}: the tuned model costs more each month than it saves."
    return f"**Break-even after {months_text(b.months)}.** {head}."


def break_even_figure(plan: Plan):
    import plotly.graph_objects as go

    b = plan.break_even
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=b.horizon,
            y=b.without_tuning,
            name="Without fine-tuning (few-shot prompt tokens)",
            mode="lines+markers",
            line=dict(color=ORANGE, width=3, dash="dash"),
            marker=dict(symbol="circle", size=6),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=b.horizon,
            y=b.with_tuning,
            name="With fine-tuning (training + extra hosting)",
            mode="lines+markers",
            line=dict(color=BLUE, width=3),
            marker=dict(symbol="square", size=6),
        )
    )
    if b.months is not None and b.months <= b.horizon[-1]:
        fig.add_vline(
            x=b.months,
            line=dict(color=GREY, dash="dot"),
            annotation_text=f"break-even: {months_text(b.months)}",
            annotation_position="top left",
        )
    fig.update_layout(
        title="Cumulative cost that differs between the two options",
        xaxis_title="Months",
        yaxis_title="USD",
        template="plotly_white",
        height=360,
        margin=dict(l=50, r=20, t=60, b=40),
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def decision_record(plan: Plan, now: dt.datetime | None = None) -> str:
    """The Markdown record for stakeholders: answers, recommendation, reasons, technique, estimates, date."""
    now = now or dt.datetime.now(dt.UTC)
    rec = plan.recommendation
    lines = [
        "# Fine-tuning decision record",
        "",
        f"*Date:* {now:%Y-%m-%d %H:%M} UTC · *Made with:* Fine-Tune Studio (Decide tab)",
        "",
        "## Recommendation",
        "",
        recommendation_markdown(rec, heading="###"),
        "",
        "## Answers",
        "",
        "| Section | Question | Answer |",
        "|---|---|---|",
    ]
    sections = {key: title for key, title, _ in checklist.SECTIONS}
    for question in checklist.QUESTIONS:
        answer = escape.md_cell(checklist.answer_label(question.key, rec.answers[question.key]))  # may echo typed text
        lines.append(f"| {sections[question.section]} | {question.label} | {answer} |")
    lines += ["", "## Technique", "", f"**{plan.advice.label}.** {plan.advice.reason}", ""]
    lines += [markdown_table(ADVICE_HEADERS, advice_rows(plan))]
    lines += [
        "",
        "## Estimates",
        "",
        f"*Numbers from:* {escape.md(plan.dataset_label)}",
        "",
        summary_markdown(plan),
        "",
        "### Memory by technique (GiB)",
        "",
        markdown_table(memory_headers(plan), memory_rows(plan)),
    ]
    lines += ["", "### Time and money by hardware", "", markdown_table(COMPARISON_HEADERS, comparison_rows(plan))]
    b = plan.break_even
    lines += [
        "",
        "## Break-even",
        "",
        break_even_markdown(plan),
        "",
        f"Inputs: {rec.answers['tokens_saved']:,.0f} prompt tokens saved per request × "
        f"{rec.answers['requests_per_month']:,.0f} requests/month × ${plan.inputs.price_per_1k:g} per 1k tokens; "
        f"one-time cost {money(b.one_time)} (training {money(plan.estimate.cost_usd)} + other "
        f"{money(float(plan.inputs.other_one_time or 0))}); "
        f"extra hosting {money(float(plan.inputs.hosting_diff or 0))}/month.",
        "",
        "## Assumptions",
        "",
        "- FLOPs: full fine-tuning 6·N per token; LoRA-family 4·N + 6·A (no weight gradients for the frozen "
        "base); +2·N with gradient checkpointing; attention scores 12·L·s·h. Tokens are the dataset's real "
        "tokens after the chat template, plus the padding of length-grouped batches.",
        "- Memory (GiB, peak of one process): weights in the training precision (4-bit NF4 4.127 bits/param); "
        "full fine-tuning trains fp32 weights with fp32 gradients and Adam states (16 B/param); adapters "
        "16 B/param; activations per token per layer, fitted to measured runs; the LM head's vocabulary "
        f"buffers; the process floor. Plan for at most {est.USABLE_FRACTION:.0%} of a device.",
        f"- Prices and peaks: {est.PRICES_SOURCE}",
        "- Time: start-up (loading the model, not downloading it), warm-up, training steps, the run's "
        "evaluations (about 5) and checkpoints. CPU efficiency is measured; GPU efficiency is an assumption. "
        "The Train tab's preflight gives the same figures for the same run.",
        "",
    ]
    return "\n".join(lines)


def save_record(text: str, now: dt.datetime | None = None, folder: Path | None = None) -> Path:
    """Save a decision record under a new name in `folder` (default: the studio's decisions/ folder; the page
    gives each public-mode visitor their own). Two saves in the same second both keep theirs."""
    now = now or dt.datetime.now(dt.UTC)
    return paths.write_new_file(
        Path(folder or paths.home() / "decisions"), f"decision-record-{now:%Y%m%d-%H%M%S}", ".md", text
    )


def advice_rows(plan: Plan) -> list[list]:
    return plan.advice.rows(plan.hardware.memory_gib)
