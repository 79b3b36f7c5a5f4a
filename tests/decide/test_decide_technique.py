"""Technique advisor: which technique for which model size, memory and hardware."""

import pytest

from studio.decide import estimate as est
from studio.decide import technique as tech

MISTRAL = est.find_architecture("Mistral-7B")
COMMON = dict(arch=MISTRAL, batch_size=1, max_length=1024)


LORA_GIB = est.estimate_memory(MISTRAL.params, "lora", gradient_checkpointing=True, **COMMON).total


def test_7b_on_a_24_gb_gpu_gets_lora():
    advice = tech.advise(MISTRAL.params, 24, **COMMON)
    assert advice.technique == "lora"
    assert 14.5 < LORA_GIB < 16 * 0.9 * 1.1  # 13.5 GiB bf16 weights + 0.6 adapter + activations + CUDA context
    assert f"{LORA_GIB:.1f} GiB of 24 GiB" in advice.reason


def test_7b_on_a_16_gb_gpu_gets_qlora_because_lora_does_not_fit():
    advice = tech.advise(MISTRAL.params, 16, **COMMON)  # LoRA > 90% of 16 GiB
    assert LORA_GIB > 16 * 0.9 and advice.technique == "qlora"
    assert f"LoRA would need {LORA_GIB:.1f} GiB" in advice.reason


def test_qlora_needs_bitsandbytes_and_runs_on_a_cpu_too():
    advice = tech.advise(MISTRAL.params, 16, bitsandbytes=False, **COMMON)
    assert advice.technique is None and "pip install bitsandbytes==" in advice.unavailable["qlora"]
    assert "Nothing fits" in advice.reason and "bitsandbytes" in advice.reason
    cpu = tech.advise(MISTRAL.params, 16, cuda=False, bitsandbytes=True, **COMMON)
    assert "qlora" not in cpu.unavailable  # bitsandbytes 0.50 has CPU 4-bit kernels
    assert any("CPU" in note for note in cpu.notes)
    assert "Apple" in tech.hardware.four_bit_reason("mps", bitsandbytes=True)


def test_small_model_on_cpu_gets_lora_and_mentions_that_full_fits():
    smol = est.find_architecture("SmolLM2-135M")
    advice = tech.advise(smol.params, 16, cuda=False, bitsandbytes=False, arch=smol)
    assert advice.technique == "lora" and "Full fine-tuning would fit too" in advice.reason
    assert "qlora" in advice.unavailable


def test_quality_priority_picks_full_when_it_fits_else_dora():
    qwen = est.find_architecture("Qwen2.5-1.5B")
    assert tech.advise(qwen.params, 80, priority="quality", arch=qwen).technique == "full"
    advice = tech.advise(MISTRAL.params, 80, priority="quality", **COMMON)  # full needs ~117 GB
    assert advice.technique == "dora" and "full fine-tuning needs" in advice.reason


def test_memory_priority_picks_qlora():
    assert tech.advise(MISTRAL.params, 80, priority="memory", **COMMON).technique == "qlora"


def test_many_gpus_shard_with_zero3_when_nothing_fits_on_one():
    seventy = 70e9
    advice = tech.advise(seventy, 80, gpus=8, priority="quality", batch_size=1, max_length=1024)
    # Full: 16 B × 70e9 = 1120 GB / 8 = 140 GB per GPU: too much. DoRA: 140 GB bf16 base / 8 = 17.5 GB: fits.
    assert advice.technique == "zero" and advice.wraps == "dora"
    assert advice.memory_gib["zero"] < 80 * 0.9
    # On 8 GPUs sharded DoRA beats single-GPU QLoRA for quality; on one GPU QLoRA is all that fits.
    single = tech.advise(seventy, 80, gpus=1, priority="quality")
    assert single.technique == "qlora" and "2 or more" in single.unavailable["zero"]
    none = tech.advise(seventy, 80, gpus=1, bitsandbytes=False, priority="quality")
    assert none.technique is None


def test_table_rows_mark_the_recommendation_and_unavailable_techniques():
    advice = tech.advise(MISTRAL.params, 24, cuda=False, bitsandbytes=False, **COMMON)
    rows = advice.rows(24)
    assert [row[0].split(" ←")[0] for row in rows] == [t.label for t in tech.TECHNIQUES]
    qlora = next(row for row in rows if row[0].startswith("QLoRA"))
    assert qlora[2].startswith("unavailable: QLoRA 4-bit needs the bitsandbytes package")
    gpu_rows = tech.advise(MISTRAL.params, 24, **COMMON).rows(24)
    assert any(row[0] == "LoRA ← recommended" for row in gpu_rows)


def test_every_technique_row_says_what_it_reduces_and_when_unavailable():
    for technique in tech.TECHNIQUES:
        assert technique.compute and technique.memory and technique.trainable and technique.unavailable_when


def test_on_a_cpu_the_advice_counts_the_workers_micro_batches():
    """A CPU worker runs a long batch as micro-batches within its activation budget (cost.plan_passes): the
    technique table must price that run, not the whole batch at once (21.5 GiB for LoRA at 8 × 1024 before)."""
    from studio.models import cost

    smol = est.find_architecture("SmolLM2-135M")
    advice = tech.advise(smol.params, 24, cuda=False, bitsandbytes=True, arch=smol, batch_size=8, max_length=1024)
    plan = cost.plan_passes(smol, "fp32", 8, 1024)
    assert plan.max_tokens_per_pass is not None  # the batch is split

    def lora_peak(**passes):
        return est.estimate_memory(
            smol.params, "lora", arch=smol, batch_size=8, max_length=1024, dtype="fp32", kind="cpu", **passes
        ).total

    planned = lora_peak(
        gradient_checkpointing=plan.gradient_checkpointing, max_tokens_per_pass=plan.max_tokens_per_pass
    )
    assert advice.technique == "lora" and advice.memory_gib["lora"] == pytest.approx(planned)
    whole = lora_peak(gradient_checkpointing=False)
    assert planned < whole / 2
