"""Decide tab handlers, called directly as Gradio would call them."""

import json

import gradio as gr
import pytest

from studio.decide import checklist
from studio.ui import decide_tab as tab

FORM = dict(
    model="SmolLM2-135M",
    params="",
    hardware="t4",
    gpus=1,
    priority="balanced",
    technique="auto",
    tokens=200_000,
    epochs=3,
    batch_size=4,
    max_length=1024,
    lora_r=16,
    use_dataset=True,
    price_per_1k=0.0025,
    hosting_diff=0,
    other_one_time=0,
)
STATS = {
    "model": "bundled:SmolLM2-135M-Instruct",
    "max_length": 2048,
    "rows": 120,
    "tokens": {"total": 18_000, "trainable": 6_000, "p50": 140, "p95": 220, "p99": 250, "max": 300},
    "suggested_max_length": 256,
}


def values(answers=None, stats=None, folder=None, **form):
    merged_answers = dict(checklist.defaults(), **(answers or {}))
    merged_form = dict(FORM, **form)
    return (
        [merged_answers[key] for key in tab.ANSWER_KEYS]
        + [merged_form[key] for key in tab.INPUT_KEYS]
        + [stats, folder]
    )


def test_refresh_renders_the_recommendation_card_and_every_output():
    outputs = tab.refresh(*values({"goals": ["format_style"], "few_shot": "poor", "examples": 200}))
    card, advice, advice_table, summary, memory, hardware, break_even, chart, source = outputs
    assert "Fine-tune" in card and "#009E73" in card  # the green of the Okabe–Ito palette
    assert "(from: few-shot baseline)" in card
    assert advice.startswith("**Suggested: LoRA.**")
    assert "Multi-GPU DeepSpeed ZeRO-3" in advice_table and "NVIDIA H100" in hardware
    assert "typed numbers" in source and "200,000 tokens" in summary
    assert isinstance(chart, gr.Plot) and chart.visible is False  # no savings entered yet
    assert "**LoRA** on **SmolLM2-135M**" in summary


def test_dont_and_not_yet_cards():
    dont = tab.refresh(*values({"tunability": "closed"}))[0]
    assert "Don&#x27;t fine-tune: use prompt engineering" in dont and "#D55E00" in dont
    not_yet = tab.recommendation_card(*values()[: len(tab.ANSWER_KEYS)])
    assert "Not yet: try few-shot prompting" in not_yet


def test_dataset_stats_drive_the_estimates_and_name_the_dataset(tmp_path):
    folder = tmp_path / "ds1"
    folder.mkdir()
    (folder / "train.jsonl").write_text("{}\n")  # a saved dataset has its training split
    (folder / "manifest.json").write_text(json.dumps({"name": "pirate answers", "stats": STATS}))
    outputs = tab.refresh(*values(stats=STATS, folder=str(folder)))
    assert "pirate answers" in outputs[8] and "120 rows" in outputs[8] and "18,000 tokens" in outputs[8]
    assert "18,000 tokens" in outputs[3] and "length 256" in outputs[3]


def test_on_dataset_follows_the_model_and_fills_the_example_count_and_numbers():
    model, examples, tokens, max_length = tab.on_dataset(
        dict(STATS, model="Qwen/Qwen2.5-0.5B-Instruct"), "SmolLM2-135M", 0
    )
    assert model == "Qwen2.5-0.5B" and examples == 120 and tokens == 18_000 and max_length == 256
    _, examples, _, _ = tab.on_dataset(STATS, "SmolLM2-135M", 40)  # a typed count is kept
    assert not isinstance(examples, int)
    assert all(not isinstance(item, (str, int, float)) for item in tab.on_dataset(None, "SmolLM2-135M", 0))


def test_break_even_chart_appears_with_savings():
    outputs = tab.refresh(*values({"tokens_saved": 800, "requests_per_month": 50_000}))
    assert outputs[7].visible is True and "Break-even after" in outputs[6]


def test_bad_form_input_gives_message_and_hint_not_a_traceback():
    outputs = tab.refresh(*values(model="Custom size", params="seven"))
    assert "not a parameter count" in outputs[1] and "Hint" in outputs[1]
    assert "Not yet" in outputs[0]  # the card still follows the answers
    outputs = tab.refresh(*values(epochs=None))
    assert "empty" in outputs[3] and "Hint" in outputs[3]


def test_use_settings_fills_train_prefill_and_switches_tab():
    prefill, tabs, message = tab.use_settings(
        *values({"goals": ["format_style"], "few_shot": "poor", "examples": 200}, stats=STATS, folder="/data/ds1")
    )
    assert prefill["model"] == "bundled:SmolLM2-135M-Instruct" and prefill["technique"] == "lora"
    assert prefill["max_length"] == 256 and prefill["epochs"] == 3 and prefill["dataset"] == "/data/ds1"
    assert isinstance(tabs, gr.Tabs) and tabs.selected == "train"
    assert "Sent to Train" in message and "Note" not in message
    _, _, warned = tab.use_settings(*values())
    assert "the checklist says “Not yet" in warned


def test_one_hand_over_goes_to_data_first_without_a_dataset_and_to_train_with_one():
    answers = {"goals": ["format_style"], "few_shot": "poor", "examples": 200}
    prefill, tabs, message = tab.hand_over(*values(answers))
    assert prefill["model"] == "bundled:SmolLM2-135M-Instruct"
    assert isinstance(tabs, gr.Tabs) and tabs.selected == "data"
    assert "Kept for Train" in message and "dataset" in message
    prefill, tabs, message = tab.hand_over(*values(answers, stats=STATS, folder="/data/ds1"))
    assert tabs.selected == "train" and "Sent to Train" in message and prefill["dataset"] == "/data/ds1"
    _, tabs, message = tab.hand_over(*values(model="Custom size", params="7B"))
    assert not isinstance(tabs, gr.Tabs) and "Hint" in message  # an error stays on Decide


def test_hardware_starts_on_this_machine_without_measuring_it():
    """On a CPU-only machine the default is this machine (not a T4), from the reference CPU speed until measured:
    nothing heavy at start-up."""
    from studio.decide import estimate as est
    from studio.decide import plan

    assert est.default_hardware_key() == est.THIS_MACHINE  # the test machine has no GPU
    measured = est.this_machine_measured()
    computed = plan.compute(
        plan.PlanInputs(hardware=est.THIS_MACHINE, include_this_machine=False), checklist.defaults()
    )
    assert computed.hardware.key == est.THIS_MACHINE and computed.hardware.price_per_hour == 0
    if not measured:
        assert "not measured yet" in computed.hardware.label and est.this_machine_measured() is False
    assert computed.estimate.hours > 0


def test_use_settings_refuses_a_custom_size_without_a_model():
    prefill, tabs, message = tab.use_settings(*values(model="Custom size", params="7B"))
    assert "custom model size" in message.lower() and "Hint" in message


def test_download_record_writes_markdown(studio_home):
    file, message = tab.download_record(*values({"goals": ["format_style"], "few_shot": "poor", "examples": 200}))
    assert file.visible is True and file.value["orig_name"].startswith("decision-record-")
    saved = sorted((studio_home / "decisions").glob("decision-record-*.md"))[-1]
    text = saved.read_text(encoding="utf-8")
    assert text.startswith("# Fine-tuning decision record") and "[GO] Fine-tune" in text
    assert "saved" in message


@pytest.mark.parametrize(
    "key",
    ["decide-usecase", "decide-recommend-btn", "decide-recommendation", "decide-record-btn", "decide-use-settings"],
)
def test_elem_ids_for_browser_tests_exist(key):
    import app

    ids = {getattr(block, "elem_id", None) for block in app.demo.blocks.values()}
    assert key in ids


def test_a_saved_form_comes_back_only_with_values_its_fields_accept():
    import json

    fields = [
        gr.Radio(choices=[("Yes", "yes"), ("No", "no")]),
        gr.CheckboxGroup(choices=[("A", "a"), ("B", "b")]),
        gr.Number(),
        gr.Checkbox(),
        gr.Textbox(),
    ]
    saved = json.dumps(["no", ["a", "b"], 300, True, "7B"])
    assert tab.restore_form(fields, saved) == ["no", ["a", "b"], 300, True, "7B"]
    tampered = tab.restore_form(fields, json.dumps(["maybe", ["a", "zzz"], "300", "yes", "x" * 500]))
    assert all(not isinstance(value, (str, list, int, bool)) for value in tampered)  # each skipped
    assert all(value == tampered[0] for value in tab.restore_form(fields, "not json") + tab.restore_form(fields, "[1]"))
