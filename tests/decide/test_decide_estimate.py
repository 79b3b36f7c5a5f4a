"""Estimators checked against hand calculations (the arithmetic is written out in each test). Memory in GiB."""

import pytest

from studio.decide import estimate as est
from studio.errors import StudioError
from studio.models import cost

GIB = 1024**3

MISTRAL = est.find_architecture("Mistral-7B")  # h=4096, 32 layers, i=14336, kv=1024, vocab 32768, 7.24e9 params


@pytest.mark.parametrize(
    "text, expected",
    [
        ("7B", 7e9),
        ("7e9", 7e9),
        ("135M", 135e6),
        ("1.5b", 1.5e9),
        (7_000_000_000, 7e9),
        ("7,000,000,000", 7e9),
    ],
)
def test_parse_params(text, expected):
    assert est.parse_params(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["abc", "7", "", "-7B", "9000T"])
def test_parse_params_rejects_with_a_hint(text):
    with pytest.raises(StudioError) as caught:
        est.parse_params(text)
    assert caught.value.hint


def test_full_fine_tuning_7b_mixed_precision_needs_over_100_gib():
    memory = est.estimate_memory(7e9, "full", batch_size=1, max_length=1024, gradient_checkpointing=True)
    # the worker trains fp32 weights under bf16 autocast: weights 4 B + gradients 4 B + Adam m,v 8 B = 16 B/param
    # → 7e9 × 16 = 104.3 GiB
    assert memory.weights == pytest.approx(28e9 / GIB)
    assert memory.gradients == pytest.approx(28e9 / GIB)
    assert memory.optimizer == pytest.approx(56e9 / GIB)
    assert memory.total > 112e9 / GIB


def test_lora_7b_bf16_by_hand():
    cal = cost.calibration()
    memory = est.estimate_memory(
        MISTRAL.params, "lora", arch=MISTRAL, batch_size=1, max_length=1024, gradient_checkpointing=True, lora_r=16
    )
    weights = 7.24e9 * 2  # frozen bf16 base: 13.5 GiB
    adapter = 16 * 32 * (9 * 4096 + 2 * 1024 + 3 * 14336)  # r · layers · (in+out of q,k,v,o,gate,up,down) = 41,943,040
    assert est.lora_params(MISTRAL, 16) == adapter == 41_943_040
    adapter_bytes = adapter * 16  # fp32 weights 4 + grads 4 + Adam 8
    # checkpointed: every layer keeps its input (h values per token) + one layer recomputed in full (7h + 2kv + 4i)
    saved = 1024 * (32 * 4096 + 7 * 4096 + 2 * 1024 + 4 * 14336) * 2 * cal.gpu_activation_factor
    head = cal.per_dtype("head_buffers", "bf16")[0] * 1024 * 32768 * 2  # the LM head's bf16 tile: 1024 × 32,768
    expected = (weights + adapter_bytes + saved + head) / GIB + cal.cuda_context_gib
    assert memory.total == pytest.approx(expected, rel=1e-9)
    assert 14 <= memory.total <= 40


def test_lora_7b_without_checkpointing_at_batch_4_still_in_the_15_to_40_gib_band():
    memory = est.estimate_memory(
        MISTRAL.params, "lora", arch=MISTRAL, batch_size=4, max_length=1024, gradient_checkpointing=False
    )
    checkpointed = est.estimate_memory(
        MISTRAL.params, "lora", arch=MISTRAL, batch_size=4, max_length=1024, gradient_checkpointing=True
    )
    assert memory.activations > 10 * checkpointed.activations  # 32 layers saved instead of ~2
    assert 15 <= memory.total <= 40


def test_qlora_7b_by_hand():
    memory = est.estimate_memory(
        MISTRAL.params, "qlora", arch=MISTRAL, batch_size=1, max_length=1024, gradient_checkpointing=True
    )
    # Linear layers in NF4 + double-quant constants; the two 32,000 × 4,096 embedding tables stay in bf16: 3.85 GiB
    tables = 2 * 32_000 * 4_096
    assert memory.weights == pytest.approx(((7.24e9 - tables) * 4.127 / 8 + tables * 2) / GIB, rel=0.01)
    assert memory.gradients == memory.optimizer == 0
    assert 4 <= memory.total <= 16


def test_full_fine_tuning_keeps_fp32_weights_and_halves_only_the_activations_in_bf16():
    bf16 = est.estimate_memory(1e9, "full", batch_size=2, max_length=512, gradient_checkpointing=False, kind="gpu")
    fp32 = est.estimate_memory(
        1e9, "full", batch_size=2, max_length=512, gradient_checkpointing=False, dtype="fp32", kind="gpu"
    )
    assert fp32.weights == bf16.weights == pytest.approx(4e9 / GIB)  # the worker trains fp32 weights either way
    assert fp32.optimizer == bf16.optimizer == pytest.approx(8e9 / GIB)  # Adam m, v: 8 B × 1e9
    assert fp32.activations == pytest.approx(2 * bf16.activations)  # bf16 autocast halves what the steps save


def test_zero3_divides_model_state_by_devices():
    one = est.estimate_memory(7e9, "full", gradient_checkpointing=True)
    eight = est.estimate_memory(7e9, "full", gradient_checkpointing=True, devices=8)
    assert eight.optimizer == pytest.approx(one.optimizer / 8)
    assert eight.activations == pytest.approx(one.activations)  # each GPU still holds its own batch


def test_flops_full_is_3_forward_passes_and_lora_2_plus_the_adapter():
    full = est.estimate(7e9, 1e6, 3, "full", hardware="a100", gradient_checkpointing=False)
    load, arch = full.run.workload, full.arch
    # Per computed position: forward = 2·(weights in matmuls) + attention 4·L·s·h; full fine-tuning 3 × that.
    forward = 2 * arch.body_params + 4 * arch.layers * load.attention_length * arch.hidden
    head = 2 * arch.head_params * load.scored_tokens / load.train_positions
    assert full.flops == pytest.approx(3 * (forward + head) * load.train_positions)
    assert load.train_tokens == pytest.approx(3e6, rel=0.01)  # 1e6 tokens × 3 epochs (typed rows: ±1 row)
    lora = est.estimate(7e9, 1e6, 3, "lora", hardware="a100", gradient_checkpointing=False)
    assert lora.flops == pytest.approx((2 * (forward + head) + 6 * lora.adapter_params) * load.train_positions)
    assert lora.flops < full.flops * 0.7
    checkpointed = est.estimate(7e9, 1e6, 3, "lora", hardware="a100", gradient_checkpointing=True)
    assert checkpointed.flops - lora.flops == pytest.approx(forward * load.train_positions)  # forward recomputed


def test_time_and_cost_by_hand():
    result = est.estimate(7e9, 1e6, 3, "full", hardware="a100", gradient_checkpointing=False)
    seconds = result.flops / (312e12 * 0.40)  # FLOPs / (peak × efficiency)
    assert result.run.seconds["train"] == pytest.approx(seconds)
    assert result.hours == pytest.approx(sum(result.run.seconds.values()) / 3600)  # + start, evaluations, saves…
    assert result.run.seconds["evaluation"] > 0 and result.run.seconds["checkpoints"] > 0
    assert result.cost_usd == pytest.approx(result.hours * 2.50)
    qlora = est.estimate(7e9, 1e6, 3, "qlora", hardware="a100", gradient_checkpointing=False)
    assert qlora.run.seconds["train"] == pytest.approx(qlora.flops * 1.3 / (312e12 * 0.40))  # dequantisation


def test_estimate_dict_has_the_cli_contract_fields():
    data = est.estimate(135e6, 2e5, 2, "lora", hardware="cpu-basic").as_dict()
    for key in (
        "memory_gib",
        "flops",
        "hours",
        "cost_usd",
        "memory_breakdown_gib",
        "flops_formula",
        "fits",
        "seconds",
        "efficiency_source",
    ):
        assert key in data
    assert data["dtype"] == "fp32" and data["gradient_checkpointing"] is False  # CPU defaults
    assert data["cost_usd"] == 0  # the free CPU Space
    assert "calibrated" in data["efficiency_source"]


def test_known_architectures_and_generic_shape():
    assert est.find_architecture("Qwen/Qwen2.5-1.5B-Instruct").name == "Qwen2.5-1.5B"
    assert est.find_architecture("bundled:SmolLM2-135M-Instruct").name == "SmolLM2-135M"
    assert est.find_architecture("someone/unknown-model") is None
    generic = est.generic_architecture(7e9)
    assert (generic.hidden, generic.layers) == (4224, 33)  # (7e9·128/12)^(1/3) = 4211 → 4224; 4224/128 = 33
    assert 12 * generic.layers * generic.hidden**2 == pytest.approx(7e9, rel=0.05)


def test_fits_keeps_ten_percent_headroom():
    assert est.fits_in(14.4, 16) and not est.fits_in(14.5, 16)


def test_unknown_hardware_and_bad_numbers_explain_themselves():
    with pytest.raises(StudioError, match="Unknown hardware"):
        est.estimate(7e9, 1e6, 1, "lora", hardware="tpu-v9")
    with pytest.raises(StudioError, match="tokens"):
        est.estimate(7e9, 0, 1, "lora")
    with pytest.raises(StudioError, match="technique"):
        est.estimate(7e9, 1e6, 1, "prefix-tuning")


def test_break_even_by_hand():
    b = est.break_even(800, 50_000, 0.0025, one_time_cost=250, hosting_diff_per_month=20)
    # 800 tokens × 50,000 requests × $0.0025 / 1000 = $100/month saved; net $80/month; 250 / 80 = 3.125 months
    assert b.monthly_saving == pytest.approx(100)
    assert b.months == pytest.approx(3.125)
    assert b.without_tuning[3] == pytest.approx(300) and b.with_tuning[3] == pytest.approx(310)
    assert b.horizon[-1] >= 12


def test_break_even_never_when_hosting_costs_more_than_it_saves():
    b = est.break_even(100, 1000, 0.0025, one_time_cost=10, hosting_diff_per_month=5)
    assert b.months is None  # saves $0.25/month, costs $5/month


def test_stats_tokens_reads_the_data_tab_contract():
    stats = {
        "model": "bundled:SmolLM2-135M-Instruct",
        "max_length": 2048,
        "rows": 120,
        "tokens": {"total": 18_000, "trainable": 6_000, "p50": 140, "p95": 220, "p99": 250, "max": 300},
        "suggested_max_length": 256,
    }
    numbers = est.stats_tokens(stats)
    assert numbers["tokens"] == 18_000 and numbers["max_length"] == 256 and numbers["rows"] == 120
    assert est.stats_tokens(None) is None and est.stats_tokens({"tokens": {"total": 0}}) is None


def test_this_machine_benchmark_measures_a_positive_peak():
    import torch

    torch.set_num_threads(1)
    machine = est.measure_this_machine()
    assert machine.key == est.THIS_MACHINE and machine.peak_tflops > 0 and machine.price_per_hour == 0
    assert est.measure_this_machine() is machine  # cached
