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
    assert tuple(outputs) == tab.ESTIMATES  # every part, in the order build() registers them
    card, advice, advice_table, summary, memory, hardware, break_even, chart, source = outputs.values()
    assert "Fine-tune" in card and "#009E73" in card  # the green of the Okabe–Ito palette
    assert "(from: few-shot baseline)" in card
    assert advice.startswith("**Suggested: LoRA.**")
    assert "Multi-GPU DeepSpeed ZeRO-3" in advice_table and "NVIDIA H100" in hardware
    assert "typed numbers" in source and "200,000 tokens" in summary
    assert isinstance(chart, gr.Plot) and chart.visible is False  # no savings entered yet
    assert "**LoRA** on **SmolLM2-135M**" in summary


def test_dont_and_not_yet_cards():
    dont = tab.refresh(*values({"tunability": "closed"}))["card"]
    assert "Don&#x27;t fine-tune: use prompt engineering" in dont and "#D55E00" in dont
    not_yet = tab.recommendation_card(*values()[: len(tab.ANSWER_KEYS)])
    assert "Not yet: try few-shot prompting" in not_yet


def test_dataset_stats_drive_the_estimates_and_name_the_dataset(tmp_path):
    folder = tmp_path / "ds1"
    folder.mkdir()
    (folder / "train.jsonl").write_text("{}\n")  # a saved dataset has its training split
    (folder / "manifest.json").write_text(json.dumps({"name": "pirate answers", "stats": STATS}))
    outputs = tab.refresh(*values(stats=STATS, folder=str(folder)))
    source = outputs["dataset_source"]
    assert "pirate answers" in source and "120 rows" in source and "18,000 tokens" in source
    assert "18,000 tokens" in outputs["summary"] and "length 256" in outputs["summary"]


def test_on_dataset_follows_the_model_and_fills_the_example_count_and_numbers():
    followed = tab.on_dataset(dict(STATS, model="Qwen/Qwen2.5-0.5B-Instruct"), "SmolLM2-135M", 0)
    assert followed == {"model": "Qwen2.5-0.5B", "examples": 120, "tokens": 18_000, "max_length": 256}
    assert "examples" not in tab.on_dataset(STATS, "SmolLM2-135M", 40)  # a typed count is kept
    assert tab.on_dataset(None, "SmolLM2-135M", 0) == {}  # no statistics: nothing changes


def test_break_even_chart_appears_with_savings():
    outputs = tab.refresh(*values({"tokens_saved": 800, "requests_per_month": 50_000}))
    assert outputs["chart"].visible is True and "Break-even after" in outputs["break_even"]


def test_bad_form_input_gives_message_and_hint_not_a_traceback():
    outputs = tab.refresh(*values(model="Custom size", params="seven"))
    assert "not a parameter count" in outputs["advice"] and "Hint" in outputs["advice"]
    assert "Not yet" in outputs["card"]  # the card still follows the answers
    assert "memory_table" not in outputs  # the last good estimates stay
    outputs = tab.refresh(*values(epochs=None))
    assert "empty" in outputs["summary"] and "Hint" in outputs["summary"]


def test_use_settings_fills_train_prefill_and_switches_tab():
    handed = tab.use_settings(
        *values({"goals": ["format_style"], "few_shot": "poor", "examples": 200}, stats=STATS, folder="/data/ds1")
    )
    prefill, tabs, message = handed["train_prefill"], handed["tabs"], handed["status"]
    assert prefill["model"] == "bundled:SmolLM2-135M-Instruct" and prefill["technique"] == "lora"
    assert prefill["max_length"] == 256 and prefill["epochs"] == 3 and prefill["dataset"] == "/data/ds1"
    assert isinstance(tabs, gr.Tabs) and tabs.selected == "train"
    assert "Sent to Train" in message and "Note" not in message
    warned = tab.use_settings(*values())["status"]
    assert "the checklist says “Not yet" in warned


def test_one_hand_over_goes_to_data_first_without_a_dataset_and_to_train_with_one():
    answers = {"goals": ["format_style"], "few_shot": "poor", "examples": 200}
    handed = tab.hand_over(*values(answers))
    prefill, tabs, message = handed["train_prefill"], handed["tabs"], handed["status"]
    assert prefill["model"] == "bundled:SmolLM2-135M-Instruct"
    assert isinstance(tabs, gr.Tabs) and tabs.selected == "data"
    assert "Kept for Train" in message and "dataset" in message
    handed = tab.hand_over(*values(answers, stats=STATS, folder="/data/ds1"))
    prefill, tabs, message = handed["train_prefill"], handed["tabs"], handed["status"]
    assert tabs.selected == "train" and "Sent to Train" in message and prefill["dataset"] == "/data/ds1"
    refused = tab.hand_over(*values(model="Custom size", params="7B"))
    assert set(refused) == {"status"} and "Hint" in refused["status"]  # an error stays on Decide


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
    message = tab.use_settings(*values(model="Custom size", params="7B"))["status"]
    assert "custom model size" in message.lower() and "Hint" in message


def test_download_record_writes_markdown(studio_home):
    recorded = tab.download_record(*values({"goals": ["format_style"], "few_shot": "poor", "examples": 200}))
    file, message = recorded["record_file"], recorded["status"]
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
