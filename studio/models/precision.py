"""One precision decision for every device: the dtype a run loads its model in and trains with.

    decide(device, forced=None, cpu=None) -> Precision        pure: no torch, every input passed in

The rules (each with its reason):
- CUDA, compute capability >= 8.0 (A100, A10G, L4, L40S, H100, RTX 30xx/40xx): bf16 — native bf16 tensor cores,
  fp32's range, no loss scaling. `torch.cuda.is_bf16_supported()` is NOT used: in torch 2.13 it is True on a T4
  (7.5) by emulation, which is slower than fp16 there.
- CUDA 7.0–7.9 (V100, T4, RTX 20xx): fp16 mixed precision — fp16 tensor cores, a gradient scaler, the frozen
  weights loaded in fp16 and the LoRA weights kept in fp32 (their updates are too small for fp16).
- CUDA below 7.0: fp32 (no tensor cores; fp16 is slow or unsupported on most of these cards).
- Apple MPS: fp32 (autocast and bf16 support on MPS depend on the macOS version).
- CPU: measured, never assumed. bf16 (frozen weights in bf16, LoRA weights in fp32) only when a fp32-vs-bf16
  comparison on the model's own shapes (`CpuMeasurement`, see studio.models.precision_probe) found a bf16
  training step clearly faster (>= CPU_MIN_SPEEDUP) AND, at the same weights, its loss within CPU_MAX_LOSS_GAP
  of fp32's and its gradient within CPU_MIN_GRADIENT_COSINE of fp32's direction;
  otherwise, or before it is measured, fp32. CPUs differ: an Intel Xeon with AMX runs bf16 matmuls ~3.6x
  faster than fp32, an AMD EPYC without bf16 instructions (AVX2 only) ~60x slower. Where a first look at the
  model's matmuls finds bf16 emulated like that, the training steps are not timed at all (`steps_timed` False).
- `forced` (RunConfig.bf16, `--bf16/--no-bf16`) wins: True = bf16 everywhere (noted when it is emulated);
  False = no bf16: fp16 mixed precision on a CUDA GPU with tensor cores, fp32 elsewhere.

For generation (Compare), `inference_dtype(device)`: the GPU's half precision by the same capability rules, fp32 on
a CPU or an Apple GPU (answers on a CPU stay as they were measured).
The result says what to do (load dtype, the Trainer's bf16/fp16 flags, the adapter dtype), why, and with which
figures, so preflight, Decide, the cost model and the worker's log all show the same decision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# "Clearly faster": a bf16 step at least 1.2x the fp32 one. Below that the gain is within what a shared machine's
# timing noise and bf16's conversions at the edges of each step (embeddings, norms, loss in fp32) can eat.
CPU_MIN_SPEEDUP = 1.2
# Quality, at the same weights on the same batch: bf16 keeps 8 bits of mantissa (a relative rounding of 0.4 %), so a
# sound bf16 step (fp32 accumulation, fp32 norms, loss and LoRA weights) lands within a few tenths of a percent of
# fp32's loss, and a broken kernel or an overflow misses by far more. 2 % leaves room for the tenths to add up and
# stays well below the changes a run is judged by (fine-tuning moves the loss by 10-50 %).
CPU_MAX_LOSS_GAP = 0.02
# ... and the gradient points the same way: a cosine of 0.99 is 8 degrees apart, while the gradients of two different
# mini-batches of the same data typically agree far less (cosines well below 0.9) — batch noise dwarfs it.
CPU_MIN_GRADIENT_COSINE = 0.99
BF16_CAPABILITY = (8, 0)
FP16_CAPABILITY = (7, 0)
BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
LOAD_DTYPE = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


@dataclass(frozen=True)
class Device:
    """What the decision needs to know about the device a run trains on (probed elsewhere, passed in)."""

    kind: str  # "cuda" | "mps" | "cpu"
    name: str = ""
    capability: tuple[int, int] | None = None  # CUDA compute capability
    memory_gb: float | None = None  # GPU memory, or RAM on a CPU
    bf16_supported: bool | None = None  # torch's own claim (includes emulation on CUDA): recorded, never trusted


@dataclass(frozen=True)
class CpuMeasurement:
    """A fp32-vs-bf16 comparison of LoRA training steps on one model's shapes on one machine."""

    fp32_step_s: float  # fastest timed training step
    bf16_step_s: float
    fp32_losses: tuple[float, ...]  # the loss at each measured step (same batch, same starting adapter)
    bf16_losses: tuple[float, ...]
    gradient_cosine: float = 1.0  # cosine between the LoRA gradients of the first step (same weights) in each precision
    tokens_per_step: int = 0
    threads: int = 0
    machine: str = ""  # which CPU it was measured on (for the log)
    seconds: float = 0.0  # what the measurement itself cost
    busy: bool = False  # other work took the cores through the whole measurement: not cached, measured again next run
    matmul_fp32_gflops: float = 0.0  # the first look: a matmul of the model's own widths in each precision
    matmul_bf16_gflops: float = 0.0

    @property
    def steps_timed(self) -> bool:
        """False when the matmuls showed bf16 emulated, so no training step was timed (no losses either)."""
        return bool(self.fp32_losses)

    @property
    def matmul_ratio(self) -> float:
        return self.matmul_bf16_gflops / self.matmul_fp32_gflops if self.matmul_fp32_gflops > 0 else 0.0

    @property
    def speedup(self) -> float:
        return self.fp32_step_s / self.bf16_step_s if self.bf16_step_s > 0 else 0.0

    @property
    def loss_gap(self) -> float:
        """Relative difference of the bf16 loss from fp32's at the same weights (the first step); inf if unusable.

        Later steps are kept for the record but not judged: Adam's first updates are nearly sign(gradient), so a
        gradient component near zero that rounds the other way moves its weight a full step the other way, and the
        two runs part like two seeds would, whatever the precision's quality."""
        if not self.fp32_losses or not self.bf16_losses:
            return float("inf")
        fp32, bf16 = self.fp32_losses[0], self.bf16_losses[0]
        if not _finite(fp32) or not _finite(bf16):
            return float("inf")
        return abs(bf16 - fp32) / max(abs(fp32), 1e-6)

    def passes_quality(self) -> bool:
        return (
            self.loss_gap <= CPU_MAX_LOSS_GAP
            and _finite(self.gradient_cosine)
            and self.gradient_cosine >= CPU_MIN_GRADIENT_COSINE
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CpuMeasurement:
        return cls(
            float(data["fp32_step_s"]),
            float(data["bf16_step_s"]),
            tuple(map(float, data["fp32_losses"])),
            tuple(map(float, data["bf16_losses"])),
            float(data.get("gradient_cosine", 1.0)),
            int(data.get("tokens_per_step") or 0),
            int(data.get("threads") or 0),
            str(data.get("machine") or ""),
            float(data.get("seconds") or 0.0),
            bool(data.get("busy", False)),
            float(data.get("matmul_fp32_gflops") or 0.0),
            float(data.get("matmul_bf16_gflops") or 0.0),
        )

    def figures(self) -> str:
        """The measurement in one clause, for the decision's reason, preflight and the logs."""
        if not self.steps_timed:
            return (
                f"bf16 matmuls of this model's widths ran at {self.matmul_bf16_gflops:.1f} GFLOP/s against fp32's "
                f"{self.matmul_fp32_gflops:.1f} ({self.matmul_ratio:.2f}x): this CPU emulates bf16, so no training "
                "step was timed"
            )
        gap = "loss not finite in bf16" if self.loss_gap == float("inf") else f"loss within {self.loss_gap:.2%} of fp32"
        return (
            f"a bf16 training step {self.speedup:.2f}x as fast as fp32 ({self.bf16_step_s:.2f} s vs "
            f"{self.fp32_step_s:.2f} s), {gap}, gradient cosine {self.gradient_cosine:.4f}"
            + ("; measured while other work took the cores, so it is measured again next run" if self.busy else "")
        )


@dataclass(frozen=True)
class Precision:
    """What a run does: load the model in `load_dtype`, train with the Trainer's bf16/fp16 flags, LoRA in fp32."""

    name: str  # "bf16" | "fp16" | "fp32"
    reason: str  # one plain sentence: why this one
    device: str = "cpu"
    forced: bool = False
    measured: CpuMeasurement | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def load_dtype(self) -> str:
        """The torch dtype name the frozen weights are loaded in."""
        return LOAD_DTYPE[self.name]

    @property
    def trainer_bf16(self) -> bool:
        return self.name == "bf16"

    @property
    def trainer_fp16(self) -> bool:
        return self.name == "fp16"

    @property
    def adapter_dtype(self) -> str:
        return "float32"  # LoRA weights, their gradients and Adam state: fp32 whatever the base is in

    @property
    def bytes_per_weight(self) -> int:
        return BYTES[self.name]

    @property
    def bytes_per_activation(self) -> int:
        return BYTES[self.name]

    def summary(self) -> str:
        """One line for preflight and the run's log."""
        return f"{self.name}: {self.reason}"

    def facts(self) -> dict:
        """For status.json facts: the choice and its figures."""
        facts = {"precision": self.name, "precision_reason": self.reason, "precision_forced": self.forced}
        if self.measured is not None and not self.measured.steps_timed:
            facts["precision_measured"] = {
                "matmul_fp32_gflops": round(self.measured.matmul_fp32_gflops, 1),
                "matmul_bf16_gflops": round(self.measured.matmul_bf16_gflops, 1),
                "steps_timed": False,
                "threads": self.measured.threads,
            }
        elif self.measured is not None:
            facts["precision_measured"] = {
                "speedup": round(self.measured.speedup, 2),
                "loss_gap": _round(self.measured.loss_gap, 4),
                "gradient_cosine": _round(self.measured.gradient_cosine, 5),
                "fp32_step_s": round(self.measured.fp32_step_s, 3),
                "bf16_step_s": round(self.measured.bf16_step_s, 3),
                "tokens_per_step": self.measured.tokens_per_step,
                "threads": self.measured.threads,
            }
        return facts


def decide(device: Device, forced: bool | None = None, cpu: CpuMeasurement | None = None) -> Precision:
    """The precision a run uses on `device`; `forced` is RunConfig.bf16; `cpu` a measurement on this CPU."""
    if device.kind == "cuda":
        return _decide_cuda(device, forced)
    if device.kind == "mps":
        if forced:
            return Precision("bf16", "forced with --bf16 (MPS supports bf16 on recent macOS only)", "mps", True)
        return Precision(
            "fp32", "Apple MPS: fp32 (autocast and bf16 depend on the macOS version)", "mps", forced is False
        )
    return _decide_cpu(forced, cpu)


def _decide_cuda(device: Device, forced: bool | None) -> Precision:
    capability = device.capability or (0, 0)
    label = f"{device.name or 'CUDA GPU'} (compute capability {capability[0]}.{capability[1]})"
    native_bf16 = capability >= BF16_CAPABILITY
    tensor_cores = capability >= FP16_CAPABILITY
    if forced is True:
        if native_bf16:
            return Precision("bf16", f"forced with --bf16; {label} has native bf16", "cuda", True)
        return Precision(
            "bf16",
            f"forced with --bf16; {label} has no native bf16, so it is emulated and slow",
            "cuda",
            True,
            notes=("bf16 is emulated on this GPU: fp16 (the automatic choice) is faster",),
        )
    if forced is False:
        if tensor_cores:
            return Precision(
                "fp16",
                f"--no-bf16: fp16 mixed precision on the tensor cores of {label}, LoRA weights in fp32",
                "cuda",
                True,
            )
        return Precision("fp32", f"--no-bf16: fp32 on {label} (no tensor cores)", "cuda", True)
    if native_bf16:
        return Precision("bf16", f"{label} has native bf16 tensor cores", "cuda")
    if tensor_cores:
        note = ("torch reports bf16 as supported, but only by emulation",) if device.bf16_supported else ()
        return Precision(
            "fp16", f"{label} has no native bf16: fp16 mixed precision, LoRA weights in fp32", "cuda", notes=note
        )
    return Precision("fp32", f"{label} has no tensor cores: fp32", "cuda")


def _decide_cpu(forced: bool | None, cpu: CpuMeasurement | None) -> Precision:
    figures = cpu.figures() if cpu is not None else ""
    if forced is True:
        return Precision("bf16", "forced with --bf16" + (f" ({figures})" if figures else ""), "cpu", True, cpu)
    if forced is False:
        return Precision("fp32", "forced with --no-bf16" + (f" ({figures})" if figures else ""), "cpu", True, cpu)
    if cpu is None:
        return Precision("fp32", "this CPU's bf16 speed is not measured yet (the run measures it once at start)", "cpu")
    if not cpu.steps_timed:
        return Precision("fp32", figures, "cpu", measured=cpu)
    if not cpu.passes_quality():
        return Precision(
            "fp32",
            f"bf16 failed the quality check on this CPU ({figures}; allowed: loss within "
            f"{CPU_MAX_LOSS_GAP:.0%}, gradient cosine {CPU_MIN_GRADIENT_COSINE})",
            "cpu",
            measured=cpu,
        )
    if cpu.speedup < CPU_MIN_SPEEDUP:
        return Precision(
            "fp32",
            f"bf16 is not clearly faster on this CPU ({figures}; bf16 needs {CPU_MIN_SPEEDUP:.1f}x)",
            "cpu",
            measured=cpu,
        )
    return Precision("bf16", f"measured on this CPU: {figures}", "cpu", measured=cpu)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and value == value and abs(value) != float("inf")


def _round(value: float, digits: int):
    return round(value, digits) if _finite(value) else None


def inference_dtype(device: Device) -> str:
    """The dtype Compare loads the model in: bf16 on CUDA from compute capability 8.0, fp16 from 7.0 (tensor cores,
    no gradients, so no loss scaling to worry about), fp32 on older GPUs, Apple GPUs and CPUs."""
    if device.kind == "cuda" and device.capability is not None:
        if tuple(device.capability) >= BF16_CAPABILITY:
            return "bf16"
        if tuple(device.capability) >= FP16_CAPABILITY:
            return "fp16"
    return "fp32"
