"""Decide tab: should we fine-tune at all? Checklist → recommendation, technique, estimates, break-even, record.

Thin: every number and every sentence of advice comes from studio.decide; this module lays it out and
wires the events. Handlers are plain functions (tested in tests/decide/test_decide_tab.py). They recompute
from the session's own form values each time (cheap), so the record and the hand-over always match what the
form says, even when a click overtakes a pending refresh; per-session state is the form itself plus the
shared gr.State objects (dataset_stats in, train_prefill out).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gradio as gr

from studio import access, escape, paths
from studio.data import store as data_store
from studio.decide import checklist, report
from studio.decide import estimate as est
from studio.decide import plan as plan_mod
from studio.decide import technique as tech
from studio.errors import StudioError
from studio.ui.guard import guarded
from studio.ui.shared import Shared, download_copy, message_markdown
from studio.ui.wiring import Parts, wired

INTRO = (
    "**What am I looking at?** A checklist that ends in a recommendation: *fine-tune*, *not yet*, or *don't*. "
    "Answer the four sections on the left (use case, alternatives you tried, costs, benefits); the card on the "
    "right updates as you go and says which answers led to it. Below it: which technique fits your hardware, "
    "how much memory, time and money the run takes (from your real dataset when the Data tab has one), and when "
    "fine-tuning pays for itself. Download the decision record for stakeholders, or hand the settings to Train."
)

ANSWER_KEYS = [question.key for question in checklist.QUESTIONS]
# The estimate form, in the order the handlers receive it.
INPUT_KEYS = [
    "model",
    "params",
    "hardware",
    "gpus",
    "priority",
    "technique",
    "tokens",
    "epochs",
    "batch_size",
    "max_length",
    "lora_r",
    "use_dataset",
    "price_per_1k",
    "hosting_diff",
    "other_one_time",
]
ELEM_IDS = {
    "goals": "decide-usecase",
    "knowledge_changes": "decide-knowledge",
    "few_shot": "decide-few-shot",
    "baseline_score": "decide-baseline-score",
    "rag": "decide-rag",
    "tunability": "decide-tunability",
    "effort": "decide-effort",
    "compute": "decide-compute",
    "examples": "decide-examples",
    "quality_gain": "decide-quality-gain",
    "tokens_saved": "decide-tokens-saved",
    "requests_per_month": "decide-requests",
    "reuse": "decide-reuse",
}
VERDICT_COLOURS = {
    checklist.GO: ("#009E73", "#e6f5f0", "Fine-tune"),
    checklist.NOT_YET: ("#E69F00", "#fdf4e3", "Not yet"),
    checklist.DONT: ("#D55E00", "#fbece3", "Don't"),
}
CARD_CSS = """
.card { border-radius: 12px; padding: 16px 20px; border: 1px solid var(--border-color-primary); }
.card h3 { margin: 4px 0 10px 0; font-size: 1.35em; }
.card .badge { display: inline-block; font-size: 0.75em; font-weight: 700; letter-spacing: 0.05em;
  text-transform: uppercase; padding: 2px 10px; border-radius: 999px; color: white; }
.card h4 { margin: 14px 0 4px 0; font-size: 0.95em; }
.card ul, .card ol { margin: 0 0 0 1.2em; padding: 0; }
.card li { margin: 3px 0; line-height: 1.4; }
.card .from { opacity: 0.65; font-size: 0.85em; }
"""


# --- Rendering ---------------------------------------------------------------------------------------


def _reason_items(reasons) -> str:
    items = []
    for reason in reasons:
        source = ", ".join(checklist.QUESTION_BY_KEY[key].short for key in reason.questions)
        tag = f' <span class="from">(from: {escape.html(source)})</span>' if source else ""
        items.append(f"<li>{escape.html(reason.text)}{tag}</li>")
    return "<ul>" + "".join(items) + "</ul>"


def card_html(rec: checklist.Recommendation) -> str:
    border, background, badge = VERDICT_COLOURS[rec.kind]
    parts = [
        f'<div class="card" style="border-left: 8px solid {border}; background: {background};">',
        f'<span class="badge" style="background: {border};">{badge}</span>',
        f"<h3>{escape.html(rec.verdict)}</h3>",
        "<h4>Why</h4>",
        _reason_items(rec.reasons),
    ]
    if rec.supporting:
        parts += ["<h4>Already speaks for fine-tuning</h4>", _reason_items(rec.supporting)]
    if rec.notes:
        parts += ["<h4>Keep in mind</h4>", _reason_items(rec.notes)]
    steps = "".join(f"<li>{escape.html(step)}</li>" for step in rec.next_steps)
    parts += ["<h4>Next steps</h4>", f"<ol>{steps}</ol>", "</div>"]
    return "".join(parts)


def _manifest(folder) -> dict:
    """The saved dataset's manifest when the caller may use it (studio.data.store.find checks the caller's
    rights and, in public mode, confines the path), else {}: a crafted request learns nothing of another's."""
    if not folder:
        return {}
    try:
        return data_store.read_manifest(data_store.find(folder)) or {}
    except StudioError:  # not a saved dataset, or not the caller's
        return {}


def _dataset_name(folder) -> str | None:
    """The saved dataset's name from its manifest, if readable."""
    if not folder:
        return None
    return str(_manifest(folder).get("name") or Path(str(folder)).name or "") or None


def _split(values) -> tuple[dict, plan_mod.PlanInputs, dict | None, str | None]:
    answers = dict(zip(ANSWER_KEYS, values[: len(ANSWER_KEYS)]))
    form = dict(zip(INPUT_KEYS, values[len(ANSWER_KEYS) : len(ANSWER_KEYS) + len(INPUT_KEYS)]))
    stats, folder = values[len(ANSWER_KEYS) + len(INPUT_KEYS) :][:2]
    numbers = {
        key: form[key]
        for key in (
            "gpus",
            "tokens",
            "epochs",
            "batch_size",
            "max_length",
            "lora_r",
            "price_per_1k",
            "hosting_diff",
            "other_one_time",
        )
    }
    for key, value in numbers.items():
        if value is None:
            raise StudioError(f"The field “{key.replace('_', ' ')}” is empty.", "Type a number (0 where allowed).")
    inputs = plan_mod.PlanInputs(
        model=form["model"],
        params=form["params"] or "",
        hardware=form["hardware"],
        gpus=int(form["gpus"]),
        priority=form["priority"],
        technique=form["technique"],
        tokens=float(form["tokens"]),
        epochs=float(form["epochs"]),
        batch_size=int(form["batch_size"]),
        max_length=int(form["max_length"]),
        lora_r=int(form["lora_r"]),
        use_dataset=bool(form["use_dataset"]),
        price_per_1k=float(form["price_per_1k"]),
        hosting_diff=float(form["hosting_diff"]),
        other_one_time=float(form["other_one_time"]),
        include_this_machine=est.this_machine_measured(),  # until measured, this machine is the reference estimate
    )
    return answers, inputs, stats, folder


def compute_plan(*values) -> plan_mod.Plan:
    answers, inputs, stats, folder = _split(values)
    return plan_mod.compute(inputs, answers, stats, _dataset_name(folder), _manifest(folder).get("counts"))


def _dataset_line(label: str) -> str:
    return f"**Numbers from:** {escape.md(label)}"  # holds the dataset's name


def _advice_markdown(plan: plan_mod.Plan) -> str:
    notes = "".join(f"\n\n{note}" for note in plan.advice.notes)
    return f"**Suggested: {plan.advice.label}.** {plan.advice.reason}{notes}"


# What the tab shows for a plan (render and refresh return these names; build() registers the components).
ESTIMATES = (
    "card",
    "advice",
    "advice_table",
    "summary",
    "memory_table",
    "hardware_table",
    "break_even",
    "chart",
    "dataset_source",
)


def render(plan: plan_mod.Plan) -> dict[str, Any]:
    """What the tab shows for one Plan (ESTIMATES; the chart as a figure, or None without savings)."""
    has_savings = plan.break_even.monthly_saving > 0
    return {
        "card": card_html(plan.recommendation),
        "advice": _advice_markdown(plan),
        "advice_table": report.markdown_table(report.ADVICE_HEADERS, report.advice_rows(plan)),
        "summary": report.summary_markdown(plan),
        "memory_table": report.markdown_table(report.memory_headers(plan), report.memory_rows(plan)),
        "hardware_table": report.markdown_table(report.COMPARISON_HEADERS, report.comparison_rows(plan)),
        "break_even": report.break_even_markdown(plan),
        "chart": report.break_even_figure(plan) if has_savings else None,
        "dataset_source": _dataset_line(plan.dataset_label),
    }


def refresh(*values) -> dict[str, Any]:
    """Everything the tab shows, from the answers, the estimate form and the Data tab's dataset. A form value it
    cannot use: the message where the advice and the summary go; the card still follows the answers."""
    try:
        plan = compute_plan(*values)
    except StudioError as error:
        answers = dict(zip(ANSWER_KEYS, values[: len(ANSWER_KEYS)]))
        problem = message_markdown(error)
        return {"card": card_html(checklist.recommend(answers)), "advice": problem, "summary": problem}
    shown = render(plan)
    shown["chart"] = gr.Plot(shown["chart"], visible=shown["chart"] is not None)
    return shown


def recommendation_card(*answer_values) -> str:
    return card_html(checklist.recommend(dict(zip(ANSWER_KEYS, answer_values))))


def download_record(*values) -> dict[str, Any]:
    try:
        plan = compute_plan(*values)
        path = report.save_record(report.decision_record(plan), folder=_records_folder())
    except StudioError as error:
        return {"status": message_markdown(error)}
    except OSError as error:
        problem = StudioError(
            f"Could not write the decision record: {error.strerror}.",
            "Check that the studio's data folder is writable and not full.",
        )
        return {"status": message_markdown(problem)}
    return {
        "record_file": gr.File(download_copy(path), visible=True),
        "status": f"Decision record saved as {escape.md_code(path.name)}: download it above.",
    }


def _records_folder():
    """Decision records: the studio's decisions/ folder, per visitor in public mode."""
    identity = access.current()
    if access.is_public():
        return paths.home() / "visitors" / identity.namespace / "decisions"
    return paths.home() / "decisions"


def hand_over(*values) -> dict[str, Any]:
    """The one hand-over: the settings go to the Train form; the page opens Train when a dataset came from the
    Data tab, else Data first (a run needs one)."""
    folder = values[len(ANSWER_KEYS) + len(INPUT_KEYS) + 1]
    handed = use_settings(*values)
    if "tabs" in handed and not folder:
        handed["tabs"] = gr.Tabs(selected="data")
        handed["status"] = (
            handed["status"].replace("Sent to Train", "Kept for Train") + " Next: load or upload a dataset."
        )
    return handed


def use_settings(*values) -> dict[str, Any]:
    """Hand the model, technique and training settings to the Train tab (train_prefill), and switch to it."""
    try:
        plan = compute_plan(*values)
    except StudioError as error:
        return {"status": message_markdown(error)}
    folder = values[len(ANSWER_KEYS) + len(INPUT_KEYS) + 1]
    prefill = plan.train_prefill(folder or None)
    if prefill["model"] is None:
        problem = StudioError(
            "A custom model size has no model to train.",
            "Pick a model from the list, or load a dataset whose token counts name a model, then press the button "
            "again.",
        )
        return {"status": message_markdown(problem)}
    message = (
        f"Sent to Train: {prefill['model']}, {est.TECHNIQUE_LABELS[prefill['technique']]}, "
        f"{prefill['epochs']} epochs, max length {prefill['max_length']}, LoRA rank {prefill['lora_r']}."
    )
    if plan.recommendation.kind != checklist.GO:
        message += f" Note: the checklist says “{plan.recommendation.verdict}”."
    return {"train_prefill": prefill, "tabs": gr.Tabs(selected="train"), "status": message}


def on_dataset(stats, model, examples) -> dict[str, Any]:
    """A dataset arrived from the Data tab: follow its model, show its token count and max length in the form,
    and take its row count as the example count when none was typed."""
    numbers = est.stats_tokens(stats)
    if numbers is None:
        return {}
    followed = {"tokens": numbers["tokens"], "max_length": numbers["max_length"]}
    arch = est.find_architecture(numbers["model"])
    if arch:
        followed["model"] = arch.name
    if not examples and isinstance(numbers["rows"], int):
        followed["examples"] = numbers["rows"]
    return followed


# Decide's answers and numbers survive a reload: the browser keeps them (localStorage, this browser only) and
# hands them back on load; nothing is stored on the server.
FORM_STORAGE_KEY = "studio-decide-form"
SAVE_FORM_JS = (
    "(...values) => { try { window.localStorage.setItem('" + FORM_STORAGE_KEY + "', JSON.stringify(values)); }"
    " catch (error) {} }"
)
LOAD_FORM_JS = (
    "(carrier) => { try { return window.localStorage.getItem('" + FORM_STORAGE_KEY + "') || ''; }"
    " catch (error) { return ''; } }"
)


def restore_form(components: list, saved: str | None) -> list:
    """The saved values, each only if its field would accept it today (a value from an older version, or one a
    script put there, is skipped rather than refused)."""
    try:
        values = json.loads(saved) if saved else None
    except ValueError:
        values = None
    if not isinstance(values, list) or len(values) != len(components):
        return [gr.skip()] * len(components)
    return [value if _accepts(component, value) else gr.skip() for component, value in zip(components, values)]


def _accepts(component, value) -> bool:
    choices = (
        [choice[1] if isinstance(choice, (list, tuple)) else choice for choice in (component.choices or [])]
        if (hasattr(component, "choices"))
        else None
    )
    if isinstance(component, gr.CheckboxGroup):
        return isinstance(value, list) and all(item in choices for item in value)
    if choices is not None:
        return value in choices
    if isinstance(component, gr.Number):
        return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
    if isinstance(component, gr.Checkbox):
        return isinstance(value, bool)
    return isinstance(value, str) and len(value) <= 200


def measure():
    try:
        machine = est.measure_this_machine()
    except Exception as error:  # torch missing or broken: explain, keep the tab working
        return message_markdown(
            StudioError(f"Could not measure this machine: {error}", "The estimates for the other hardware still work.")
        )
    return (
        f"Measured **{machine.label}**: {machine.peak_tflops * 1000:,.0f} GFLOP/s peak ({machine.note}). "
        "It now appears in the hardware table. *(Measured while other work may be running: treat as a rough figure.)*"
    )


# --- Layout ------------------------------------------------------------------------------------------


def _question_component(question: checklist.Question):
    common = dict(label=question.label, info="Why this matters: " + question.why, elem_id=ELEM_IDS[question.key])
    if question.kind == "multi":
        return gr.CheckboxGroup(
            choices=[(label, value) for value, label in question.choices], value=list(question.default), **common
        )
    if question.kind == "choice":
        return gr.Radio(choices=[(label, value) for value, label in question.choices], value=question.default, **common)
    return gr.Number(
        value=question.default, minimum=0, precision=None if question.key == "baseline_score" else 0, **common
    )


def _hardware_choices() -> list[tuple[str, str]]:
    return [("This machine (measured on first use)", est.THIS_MACHINE)] + [
        (item.label, item.key) for item in est.HARDWARE
    ]


def build(shared: Shared) -> None:
    gr.Markdown(INTRO, elem_classes="tab-intro", elem_id="decide-intro")
    answers = {}
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, elem_id="decide-checklist"):
            for section, title, subtitle in checklist.SECTIONS:
                with gr.Group(elem_id=f"decide-section-{section}"):
                    gr.Markdown(f"### {title}\n{subtitle}", padding=True)
                    for question in checklist.QUESTIONS:
                        if question.section == section:
                            answers[question.key] = _question_component(question)
        with gr.Column(scale=2, elem_id="decide-card-column"):
            initial_plan = plan_mod.compute(
                plan_mod.PlanInputs(hardware=est.default_hardware_key(), include_this_machine=False),
                checklist.defaults(),
            )
            card = gr.HTML(
                card_html(initial_plan.recommendation), css_template=CARD_CSS, elem_id="decide-recommendation"
            )
            recommend_btn = gr.Button("Update recommendation", variant="primary", elem_id="decide-recommend-btn")

    first = render(initial_plan)
    gr.Markdown(
        "## 5 · Technique and estimates\nWhich technique fits, and what the run costs in memory, time and money.",
        elem_id="decide-estimates-heading",
    )
    dataset_source = gr.Markdown(first["dataset_source"], elem_id="decide-dataset-source", elem_classes="decide-source")
    with gr.Group():
        with gr.Row():
            model = gr.Dropdown(
                [arch.name for arch in est.ARCHITECTURES] + [plan_mod.CUSTOM_MODEL],
                value=est.ARCHITECTURES[0].name,
                label="Model",
                elem_id="decide-model",
                info="Known models have exact shapes; “Custom size” takes any parameter count.",
            )
            params = gr.Textbox(
                label="Custom size (parameters)",
                placeholder="e.g. 7B, 1.5B, 350M",
                visible=False,
                elem_id="decide-params",
            )
            hardware = gr.Dropdown(
                _hardware_choices(),
                value=est.default_hardware_key(),  # the machine the studio runs on
                label="Hardware",
                elem_id="decide-hardware",
                info="Its memory is the limit; its speed and price give time and cost.",
            )
            gpus = gr.Number(
                value=1,
                minimum=1,
                maximum=64,
                precision=0,
                label="GPUs",
                elem_id="decide-gpus",
                info="Several GPUs: DeepSpeed ZeRO-3 shards a model too big for one.",
            )
        with gr.Row():
            priority = gr.Radio(
                [(label, key) for key, label in tech.PRIORITY_LABELS.items()],
                value="balanced",
                label="Technique priority",
                elem_id="decide-priority",
            )
            technique = gr.Dropdown(
                [("Suggested (auto)", plan_mod.AUTO)] + [(label, key) for key, label in est.TECHNIQUE_LABELS.items()],
                value=plan_mod.AUTO,
                label="Technique to estimate",
                elem_id="decide-technique-choice",
            )
        with gr.Row():
            use_dataset = gr.Checkbox(
                value=True, label="Use the Data tab's dataset when one is loaded", elem_id="decide-use-dataset"
            )
            tokens = gr.Number(
                value=plan_mod.DEFAULT_TOKENS,
                minimum=1,
                label="Tokens per epoch",
                elem_id="decide-tokens",
                info="Typed; a loaded dataset's real count replaces it.",
            )
            max_length = gr.Number(
                value=1024,
                minimum=16,
                precision=0,
                label="Max length",
                elem_id="decide-max-length",
                info="Typed; a loaded dataset suggests its own.",
            )
            epochs = gr.Number(value=plan_mod.DEFAULT_EPOCHS, minimum=0.1, label="Epochs", elem_id="decide-epochs")
            batch_size = gr.Number(
                value=plan_mod.PlanInputs.batch_size,
                minimum=1,
                precision=0,
                label="Batch size",
                elem_id="decide-batch-size",
            )
            lora_r = gr.Number(
                value=plan_mod.PlanInputs.lora_r, minimum=1, precision=0, label="LoRA rank", elem_id="decide-lora-r"
            )
    with gr.Row(equal_height=False):
        with gr.Column():
            gr.Markdown("### Suggested technique")
            advice_md = gr.Markdown(first["advice"], elem_id="decide-technique")
        with gr.Column():
            gr.Markdown("### This run")
            summary = gr.Markdown(first["summary"], elem_id="decide-estimate-summary")
    with gr.Accordion("What each technique reduces, and where it works", open=True):
        advice_table = gr.Markdown(first["advice_table"], elem_id="decide-technique-table")
    with gr.Accordion("Memory by technique (GiB)", open=True):
        memory_table = gr.Markdown(first["memory_table"], elem_id="decide-memory-table")
    with gr.Accordion("Time and money on each hardware (the same run)", open=True):
        with gr.Row():
            measure_btn = gr.Button("Measure this machine", size="sm", elem_id="decide-measure-btn", scale=0)
            measure_md = gr.Markdown(
                "A short matmul benchmark (a few seconds the first time) adds this machine to the table.",
                elem_id="decide-measure-result",
            )
        hardware_table = gr.Markdown(first["hardware_table"], elem_id="decide-hardware-table")
        gr.Markdown(
            f"<small>{est.PRICES_SOURCE} Utilisation is an assumption; times exclude downloading and "
            "loading the model.</small>",
            elem_id="decide-prices-note",
        )

    gr.Markdown(
        "## 6 · Break-even: when does fine-tuning pay for itself?\nA tuned model needs no few-shot examples "
        "in its prompt. Tokens saved per request and requests per month come from section 4; the one-time "
        "cost is the training cost above plus other one-time costs.",
        elem_id="decide-breakeven-heading",
    )
    with gr.Row():
        price = gr.Number(
            value=plan_mod.DEFAULT_PRICE_PER_1K,
            minimum=0,
            label="Price per 1k prompt tokens (USD)",
            info="e.g. 0.0025 = $2.50 per million",
            elem_id="decide-price",
        )
        hosting = gr.Number(
            value=0,
            label="Extra hosting for the tuned model (USD/month)",
            info="0 if it runs where the base model runs",
            elem_id="decide-hosting",
        )
        other = gr.Number(
            value=0,
            minimum=0,
            label="Other one-time costs (USD)",
            info="data preparation, evaluation time",
            elem_id="decide-other-costs",
        )
    break_even_md = gr.Markdown(first["break_even"], elem_id="decide-breakeven")
    chart = gr.Plot(
        first["chart"], visible=first["chart"] is not None, label="Cumulative cost", elem_id="decide-breakeven-chart"
    )

    gr.Markdown("## 7 · Record and hand over", elem_id="decide-outputs-heading")
    with gr.Row():
        record_btn = gr.Button("Download decision record (Markdown)", elem_id="decide-record-btn")
        use_btn = gr.Button("Use these settings →", variant="primary", elem_id="decide-use-settings")
    gr.Markdown(
        "*Fills the Train form with the model, technique, epochs, max length and LoRA rank above. Without a "
        "dataset from the Data tab yet, it opens Data first; the settings wait in Train.*",
        elem_id="decide-handover-note",
    )
    status = gr.Markdown("", elem_id="decide-status")
    record_file = gr.File(label="Decision record", interactive=False, visible=False, elem_id="decide-record-file")

    answer_inputs = [answers[key] for key in ANSWER_KEYS]
    form_inputs = [
        model,
        params,
        hardware,
        gpus,
        priority,
        technique,
        tokens,
        epochs,
        batch_size,
        max_length,
        lora_r,
        use_dataset,
        price,
        hosting,
        other,
    ]
    all_inputs = answer_inputs + form_inputs + [shared.dataset_stats, shared.dataset]
    estimates = Parts(
        card=card,
        advice=advice_md,
        advice_table=advice_table,
        summary=summary,
        memory_table=memory_table,
        hardware_table=hardware_table,
        break_even=break_even_md,
        chart=chart,
        dataset_source=dataset_source,
    )
    assert estimates.names == ESTIMATES
    outputs = estimates.outputs()

    # The card follows every answer at once (pure Python, instant); the estimates follow too.
    g = guarded  # every handler goes through the guard (studio/ui/guard.py) with its rule
    look = wired(access.LOOK, estimates, refresh)
    for component in answer_inputs + form_inputs:
        event = component.input if isinstance(component, gr.Number) else component.change
        event(look, all_inputs, outputs, api_visibility="private", show_progress="hidden")
    recommend_btn.click(look, all_inputs, outputs, api_name="decide_recommend")
    # Kept in this browser after every change; handed back on load (the answers, then the estimates follow them).
    fields = answer_inputs + form_inputs
    for component in fields:
        event = component.input if isinstance(component, gr.Number) else component.change
        event(None, fields, None, js=SAVE_FORM_JS, api_visibility="private")
    saved_form = gr.Textbox(visible=False)
    gr.context.Context.root_block.load(None, saved_form, saved_form, js=LOAD_FORM_JS, api_visibility="private").then(
        g(access.LOOK, lambda saved: restore_form(fields, saved)), saved_form, fields, api_visibility="private"
    )
    model.change(
        g(access.LOOK, lambda name: gr.Textbox(visible=name == plan_mod.CUSTOM_MODEL)),
        model,
        params,
        api_visibility="private",
    )
    followed = Parts(model=model, examples=answers["examples"], tokens=tokens, max_length=max_length)
    shared.dataset_stats.change(
        wired(access.LOOK, followed, on_dataset),
        [shared.dataset_stats, model, answers["examples"]],
        followed.outputs(),
        api_visibility="private",
    ).then(look, all_inputs, outputs, api_visibility="private")
    measure_btn.click(g(access.LOOK, measure), None, measure_md, api_visibility="private").then(
        look, all_inputs, outputs, api_visibility="private"
    )
    recorded = Parts(record_file=record_file, status=status)
    record_btn.click(
        wired(access.LOOK, recorded, download_record), all_inputs, recorded.outputs(), api_name="decide_record"
    )
    handed = Parts(train_prefill=shared.train_prefill, tabs=shared.tabs, status=status)
    use_btn.click(wired(access.LOOK, handed, hand_over), all_inputs, handed.outputs(), api_name="decide_use_settings")
