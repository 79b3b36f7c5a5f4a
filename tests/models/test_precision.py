"""The one precision decision, over a table of devices (no torch, no GPU: every probe result is passed in)."""

import pytest

from studio.models.precision import (
    CPU_MAX_LOSS_GAP,
    CPU_MIN_GRADIENT_COSINE,
    CPU_MIN_SPEEDUP,
    CpuMeasurement,
    Device,
    decide,
    inference_dtype,
)


def cpu(speedup: float, gap: float = 0.002, cosine: float = 0.9995) -> CpuMeasurement:
    fp32 = (2.0, 1.9, 1.8)
    return CpuMeasurement(
        fp32_step_s=1.0,
        bf16_step_s=1.0 / speedup,
        fp32_losses=fp32,
        bf16_losses=tuple(loss * (1 + gap) for loss in fp32),
        gradient_cosine=cosine,
        tokens_per_step=512,
        threads=2,
    )


INTEL_AMX = cpu(3.1)  # Xeon with AMX: bf16 matmuls ~3.6x fp32
ZEN4 = cpu(1.6)  # EPYC with avx512_bf16
AMD_NO_BF16 = cpu(0.1)  # EPYC without bf16 instructions: ~10x slower
BROKEN_BF16 = cpu(2.0, gap=0.08)  # fast but wrong
WRONG_GRADIENT = cpu(2.0, cosine=0.7)  # the loss agrees, the backward pass does not
NAN_BF16 = CpuMeasurement(1.0, 0.5, (2.0, 1.9), (float("nan"), 1.9), gradient_cosine=float("nan"))

# (device, forced, measurement) -> (precision, load dtype, Trainer bf16, Trainer fp16)
TABLE = [
    (
        "A100 80 GB",
        Device("cuda", "NVIDIA A100-SXM4-80GB", (8, 0), 80, True),
        None,
        None,
        ("bf16", "bfloat16", True, False),
    ),
    ("H100", Device("cuda", "NVIDIA H100 80GB HBM3", (9, 0), 80, True), None, None, ("bf16", "bfloat16", True, False)),
    ("L4", Device("cuda", "NVIDIA L4", (8, 9), 24, True), None, None, ("bf16", "bfloat16", True, False)),
    ("A10G", Device("cuda", "NVIDIA A10G", (8, 6), 24, True), None, None, ("bf16", "bfloat16", True, False)),
    # torch 2.13 says bf16 is supported on a T4 (emulation): the capability decides, not that claim
    (
        "T4 (torch claims bf16)",
        Device("cuda", "Tesla T4", (7, 5), 16, True),
        None,
        None,
        ("fp16", "float16", False, True),
    ),
    ("V100", Device("cuda", "Tesla V100-SXM2-16GB", (7, 0), 16, False), None, None, ("fp16", "float16", False, True)),
    ("P100", Device("cuda", "Tesla P100-PCIE-16GB", (6, 0), 16, False), None, None, ("fp32", "float32", False, False)),
    ("T4 --bf16", Device("cuda", "Tesla T4", (7, 5), 16, True), True, None, ("bf16", "bfloat16", True, False)),
    ("A100 --no-bf16", Device("cuda", "A100", (8, 0), 40, True), False, None, ("fp16", "float16", False, True)),
    ("P100 --no-bf16", Device("cuda", "P100", (6, 0), 16, False), False, None, ("fp32", "float32", False, False)),
    ("MPS", Device("mps", "Apple M2", None, 16), None, None, ("fp32", "float32", False, False)),
    ("CPU not measured", Device("cpu", "AMD EPYC", None, 24), None, None, ("fp32", "float32", False, False)),
    ("CPU Intel AMX", Device("cpu", "Intel Xeon", None, 16), None, INTEL_AMX, ("bf16", "bfloat16", True, False)),
    ("CPU Zen 4 avx512_bf16", Device("cpu", "AMD EPYC", None, 24), None, ZEN4, ("bf16", "bfloat16", True, False)),
    ("CPU AMD without bf16", Device("cpu", "AMD EPYC", None, 16), None, AMD_NO_BF16, ("fp32", "float32", False, False)),
    ("CPU bf16 fast but wrong", Device("cpu", "x", None, 16), None, BROKEN_BF16, ("fp32", "float32", False, False)),
    ("CPU bf16 gradient off", Device("cpu", "x", None, 16), None, WRONG_GRADIENT, ("fp32", "float32", False, False)),
    ("CPU bf16 NaN", Device("cpu", "x", None, 16), None, NAN_BF16, ("fp32", "float32", False, False)),
    (
        "CPU --bf16 where it is slow",
        Device("cpu", "AMD EPYC", None, 16),
        True,
        AMD_NO_BF16,
        ("bf16", "bfloat16", True, False),
    ),
    (
        "CPU --no-bf16 where it is fast",
        Device("cpu", "Intel Xeon", None, 16),
        False,
        INTEL_AMX,
        ("fp32", "float32", False, False),
    ),
]


@pytest.mark.parametrize("label, device, forced, measured, expected", TABLE, ids=[row[0] for row in TABLE])
def test_the_precision_for_each_device(label, device, forced, measured, expected):
    choice = decide(device, forced=forced, cpu=measured)
    assert (choice.name, choice.load_dtype, choice.trainer_bf16, choice.trainer_fp16) == expected
    assert choice.adapter_dtype == "float32"  # LoRA weights and their optimizer state never drop below fp32
    assert choice.forced == (forced is not None)
    assert choice.reason and "\n" not in choice.reason
    assert choice.bytes_per_weight == {"bf16": 2, "fp16": 2, "fp32": 4}[choice.name]


def test_the_cpu_thresholds_sit_where_the_docstring_says():
    just_fast_enough = cpu(CPU_MIN_SPEEDUP)
    assert decide(Device("cpu"), cpu=just_fast_enough).name == "bf16"
    assert decide(Device("cpu"), cpu=cpu(CPU_MIN_SPEEDUP * 0.98)).name == "fp32"
    assert decide(Device("cpu"), cpu=cpu(2.0, gap=CPU_MAX_LOSS_GAP * 0.9)).name == "bf16"
    assert decide(Device("cpu"), cpu=cpu(2.0, gap=CPU_MAX_LOSS_GAP * 1.1)).name == "fp32"
    assert decide(Device("cpu"), cpu=cpu(2.0, cosine=CPU_MIN_GRADIENT_COSINE)).name == "bf16"
    assert decide(Device("cpu"), cpu=cpu(2.0, cosine=CPU_MIN_GRADIENT_COSINE - 0.001)).name == "fp32"


def test_only_the_first_step_is_judged_later_steps_part_like_two_seeds():
    # Same weights at the first step; after Adam's sign-like first updates the runs part whatever the precision.
    parted = CpuMeasurement(1.0, 0.5, (3.46, 3.13, 2.74), (3.46, 3.27, 2.85), gradient_cosine=0.9998)
    assert parted.loss_gap < 0.001 and decide(Device("cpu"), cpu=parted).name == "bf16"


def test_the_reason_carries_the_measured_figures_and_the_facts_carry_the_numbers():
    choice = decide(Device("cpu"), cpu=ZEN4)
    assert "1.60x" in choice.reason and "within 0.20% of fp32" in choice.reason and "cosine 0.9995" in choice.reason
    facts = choice.facts()
    assert facts["precision"] == "bf16" and facts["precision_measured"]["speedup"] == 1.6
    assert facts["precision_measured"]["gradient_cosine"] == 0.9995
    slow = decide(Device("cpu"), cpu=AMD_NO_BF16)
    assert "not clearly faster" in slow.reason and "0.10x" in slow.reason
    assert "quality check" in decide(Device("cpu"), cpu=BROKEN_BF16).reason
    assert decide(Device("cpu"), cpu=NAN_BF16).facts()["precision_measured"]["loss_gap"] is None


def test_a_t4_notes_that_torch_claims_bf16_only_by_emulation():
    t4 = decide(Device("cuda", "Tesla T4", (7, 5), 16, bf16_supported=True))
    assert "emulation" in " ".join(t4.notes)
    forced = decide(Device("cuda", "Tesla T4", (7, 5), 16, True), forced=True)
    assert "emulated" in forced.reason


def test_the_measurement_round_trips_through_json():
    import json

    again = CpuMeasurement.from_dict(json.loads(json.dumps(ZEN4.to_dict())))
    assert again == ZEN4 and isinstance(again.fp32_losses, tuple)
    screened = CpuMeasurement(0.0, 0.0, (), (), 0.0, matmul_fp32_gflops=67.0, matmul_bf16_gflops=1.1)
    assert CpuMeasurement.from_dict(json.loads(json.dumps(screened.to_dict()))) == screened
    older = {k: v for k, v in ZEN4.to_dict().items() if not k.startswith("matmul")}
    assert CpuMeasurement.from_dict(older) == ZEN4  # a cache written before the matmul look still reads


def test_the_decision_module_imports_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; import studio.models.precision as p; "
        "p.decide(p.Device('cpu')); assert 'torch' not in sys.modules, 'torch imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "device, expected",
    [
        (Device("cuda", "NVIDIA H100", capability=(9, 0)), "bf16"),
        (Device("cuda", "NVIDIA A10G", capability=(8, 6)), "bf16"),
        (Device("cuda", "Tesla T4", capability=(7, 5), bf16_supported=True), "fp16"),  # emulated bf16 is not used
        (Device("cuda", "Tesla P100", capability=(6, 0)), "fp32"),
        (Device("mps"), "fp32"),
        (Device("cpu"), "fp32"),  # Compare's answers on a CPU stay as they were
    ],
    ids=["h100", "a10g", "t4", "p100", "mps", "cpu"],
)
def test_compare_generates_in_the_gpus_half_precision(device, expected):
    assert inference_dtype(device) == expected


def test_compare_uses_the_gpu_when_there_is_one(monkeypatch):
    import torch

    from studio.compare import engine

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert engine.generation_device() == (("cuda", "bfloat16") if torch.cuda.is_available() else ("cpu", "float32"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: (7, 5))
    assert engine.generation_device() == ("cuda", "float16")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")  # the GPU exists only inside each @spaces.GPU call
    assert engine.generation_device() == ("cuda", "bfloat16")
