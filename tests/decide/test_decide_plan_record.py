"""The plan (one computation for UI, CLI and record), the decision record and the break-even chart."""

import datetime as dt
import re

import pytest

from studio.decide import checklist, plan, report
from studio.decide import estimate as est
from studio.errors import StudioError

STATS = {
    "model": "bundled:SmolLM2-135M-Instruct",
    "max_length": 2048,
    "rows": 120,
    "tokens": {"total": 18_000, "trainable": 6_000, "p50": 140, "p95": 220, "p99": 250, "max": 300},
    "suggested_max_length": 256,
}
GO_ANSWERS = dict(
    goals=["format_style"],
    few_shot="partial",
    rag="not_relevant",
    examples=120,
    tokens_saved=800,
    requests_per_month=50_000,
)


def make(inputs=None, answers=GO_ANSWERS, stats=STATS, name="assistant_style"):
    return plan.compute(inputs or plan.PlanInputs(include_this_machine=False), answers, stats, name)


def test_dataset_numbers_replace_typed_ones_and_are_named():
    p = make(plan.PlanInputs(tokens=999, max_length=4096, include_this_machine=False))
    assert p.tokens == 18_000 and p.max_length == 256
    assert "assistant_style" in p.dataset_label and "120 rows" in p.dataset_label and "18,000 tokens" in p.dataset_label
    assert p.estimate.tokens == 18_000 and p.estimate.max_length == 256


def test_typed_numbers_without_a_dataset_or_when_switched_off():
    p = make(plan.PlanInputs(tokens=5e5, max_length=512, include_this_machine=False), stats=None)
    assert p.tokens == 5e5 and "typed numbers" in p.dataset_label
    off = make(plan.PlanInputs(tokens=5e5, max_length=512, use_dataset=False, include_this_machine=False))
    assert off.tokens == 5e5


def test_estimate_is_the_advisors_pick_and_matches_the_estimator():
    p = make()
    assert p.technique == p.advice.technique == "lora"
    direct = est.estimate(
        p.params,
        18_000,
        plan.DEFAULT_EPOCHS,
        "lora",
        hardware="t4",
        batch_size=8,
        max_length=256,
        lora_r=8,
        arch=p.arch,
        dataset=est.dataset_numbers(STATS),
    )
    assert p.estimate.flops == pytest.approx(direct.flops) and p.estimate.cost_usd == pytest.approx(direct.cost_usd)
    assert len(p.comparison) == len(est.HARDWARE)


def test_train_prefill_contract():
    prefill = make().train_prefill("/data/studio/datasets/abc")
    assert prefill["model"] == "bundled:SmolLM2-135M-Instruct"
    assert prefill["technique"] == "lora" and prefill["epochs"] == 2 and isinstance(prefill["epochs"], int)
    assert prefill["max_length"] == 256 and prefill["lora_r"] == 8 and prefill["lora_alpha"] == 16
    assert prefill["dataset"] == "/data/studio/datasets/abc"
    qwen = make(plan.PlanInputs(model="Qwen2.5-7B", technique="qlora", include_this_machine=False)).train_prefill()
    assert qwen["model"] == "Qwen/Qwen2.5-7B-Instruct" and qwen["load_in_4bit"] is True


def test_custom_size_needs_a_number_and_warns_about_another_tokenizer():
    with pytest.raises(StudioError, match="custom model"):
        make(plan.PlanInputs(model=plan.CUSTOM_MODEL, params="", include_this_machine=False))
    p = make(plan.PlanInputs(model=plan.CUSTOM_MODEL, params="7B", include_this_machine=False))
    assert p.arch.name == "generic 7B" and any("tokenizer" in warning for warning in p.warnings)


def test_forced_technique_that_does_not_fit_is_flagged():
    p = make(plan.PlanInputs(model="Mistral-7B", technique="full", include_this_machine=False))
    assert not p.estimate.fits and any("does not fit" in w or "needs" in w for w in p.warnings)


def test_break_even_uses_the_checklist_and_the_training_cost():
    p = make(plan.PlanInputs(other_one_time=100, hosting_diff=20, include_this_machine=False))
    # 800 tokens × 50,000 × $0.0025/1k = $100/month; net 100 − 20 = $80; (training + 100) / 80 months
    assert p.break_even.monthly_saving == pytest.approx(100)
    assert p.break_even.months == pytest.approx((p.estimate.cost_usd + 100) / 80)


def test_decision_record_has_date_answers_verdict_reasons_and_estimates():
    p = make()
    text = report.decision_record(p, now=dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC))
    assert text.startswith("# Fine-tuning decision record")
    assert "2026-11-22 03:00 UTC" in text
    assert "### [GO] Fine-tune" in text
    for question in checklist.QUESTIONS:
        assert question.label in text
    for reason in p.recommendation.reasons:
        assert reason.text in text
    assert f"{p.estimate.memory.total:.1f} GiB of 16 GiB" in text  # same number as the plan
    assert "assistant_style" in text and "Break-even after" in text
    assert re.search(r"\| NVIDIA H100 \(80 GB\) \|", text)


def test_not_yet_record_lists_next_steps():
    text = report.decision_record(make(answers={}))
    assert "[NOT YET] Not yet: try few-shot prompting" in text
    assert "**Next steps**" in text and "1. " in text


def test_save_record_writes_under_the_studio_home(studio_home):
    path = report.save_record("# hello\n")
    assert path.read_text() == "# hello\n"
    assert path.parent == studio_home / "decisions" and path.suffix == ".md"


def test_break_even_chart_uses_colour_blind_safe_colours_and_marks_the_point():
    fig = report.break_even_figure(make())
    assert [trace.line.color for trace in fig.data] == [report.ORANGE, report.BLUE]
    assert fig.data[0].line.dash == "dash"  # told apart by line style too, not only colour
    assert any("break-even" in (annotation.text or "") for annotation in fig.layout.annotations)


def test_tables_have_one_row_per_item():
    p = make()
    assert len(report.memory_rows(p)) == len(report.MEMORY_PARTS) + 2
    assert len(report.comparison_rows(p)) == len(p.comparison)
    table = report.markdown_table(["a", "b"], [["x|y", 1]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| x/y | 1 |"]


def test_hardware_table_offers_qlora_on_gpu_and_cpu_rows():
    p = make(plan.PlanInputs(model="Qwen2.5-0.5B", technique="qlora", include_this_machine=False))
    rows = {row[0]: row for row in report.comparison_rows(p)}
    assert rows["Spaces CPU basic (2 vCPU, 16 GB)"][2] == "yes"  # bitsandbytes has CPU 4-bit kernels
    assert rows["NVIDIA T4 (16 GB)"][2] == "yes"


def test_multi_gpu_plan_shards_with_zero3_and_multiplies_the_price():
    p = make(
        plan.PlanInputs(
            model=plan.CUSTOM_MODEL,
            params="70B",
            hardware="a100",
            gpus=8,
            priority="quality",
            include_this_machine=False,
        ),
        stats=None,
    )
    assert p.advice.technique == "zero" and p.technique == "dora" and p.devices == 8
    assert p.estimate.cost_usd == pytest.approx(p.estimate.hours * 2.50 * 8)
    assert "DoRA + DeepSpeed ZeRO-3" in report.summary_markdown(p)
    rows = {row[0]: row for row in report.comparison_rows(p)}
    assert "NVIDIA A100 (80 GB) × 8" in rows and "Spaces CPU basic (2 vCPU, 16 GB)" in rows
    assert p.train_prefill()["devices"] == 8
