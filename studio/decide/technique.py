"""Technique advisor: LoRA, QLoRA, DoRA, full fine-tuning or multi-GPU DeepSpeed ZeRO, from model size and memory."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

from studio.decide import estimate as est
from studio.models import cost, hardware


@dataclass(frozen=True)
class Technique:
    key: str
    label: str
    trains: str
    compute: str
    memory: str
    trainable: str
    unavailable_when: str


# What each technique reduces, and when it cannot be used. Shown as a table in the Decide tab.
TECHNIQUES = (
    Technique(
        "full",
        "Full fine-tuning",
        "every weight",
        "none: 6·N FLOPs per token",
        "none: ~16 bytes/param (bf16 weights + grads, fp32 Adam + master)",
        "100%",
        "the model + gradients + optimizer state do not fit (7B needs > 100 GB)",
    ),
    Technique(
        "lora",
        "LoRA",
        "small low-rank matrices beside frozen weights",
        "~1/3 less: 4·N per token (no weight gradients for the frozen base)",
        "no gradients or optimizer state for the base: ~2 bytes/param + adapter",
        "~0.1–1% (rank r)",
        "never (CPU, Apple and CUDA GPUs)",
    ),
    Technique(
        "qlora",
        "QLoRA",
        "LoRA on a 4-bit (NF4) quantised base",
        "like LoRA, but ~30% slower (4-bit weights are dequantised in every matmul)",
        "base in ~0.5 bytes/param: ~4× less than LoRA's bf16 base",
        "~0.1–1%",
        "on Apple GPUs, or when the bitsandbytes package is missing (it runs on CUDA GPUs and CPUs)",
    ),
    Technique(
        "dora",
        "DoRA",
        "LoRA plus a learned magnitude per output feature",
        "like LoRA, ~20% slower (weight normalisation each step)",
        "like LoRA, slightly more",
        "LoRA + one value per output feature",
        "never where LoRA works (PEFT use_dora=True); usually closer to full fine-tuning at low rank",
    ),
    Technique(
        "zero",
        "Multi-GPU DeepSpeed ZeRO-3",
        "any of the above, split across GPUs",
        "same FLOPs, spread over n GPUs (plus communication)",
        "weights, gradients and optimizer state divided by the number of GPUs",
        "as the technique it wraps",
        "fewer than 2 CUDA GPUs, or the deepspeed package is missing",
    ),
)
TECHNIQUE_BY_KEY = {technique.key: technique for technique in TECHNIQUES}

PRIORITIES = {
    # Which technique to try first for each priority; the first one that is available and fits wins.
    "balanced": ("lora", "qlora", "dora", "full"),
    "quality": ("full", "dora", "lora", "qlora"),
    "memory": ("qlora", "lora", "dora", "full"),
}
PRIORITY_LABELS = {
    "balanced": "Balanced (LoRA first)",
    "quality": "Best quality (full or DoRA if it fits)",
    "memory": "Lowest memory (QLoRA first)",
}


def unavailable_reasons(cuda: bool, bitsandbytes: bool, gpus: int, deepspeed: bool = True) -> dict[str, str]:
    reasons = {}
    four_bit = hardware.four_bit_reason("cuda" if cuda else "cpu", bitsandbytes)
    if four_bit:
        reasons["qlora"] = four_bit
    if not cuda or gpus < 2:
        reasons["zero"] = "needs 2 or more CUDA GPUs"
    elif not deepspeed:
        reasons["zero"] = "needs the deepspeed package (pip install deepspeed)"
    return reasons


@functools.lru_cache(maxsize=1)
def detect_capabilities() -> dict:
    """CUDA, GPU count and memory, bitsandbytes and deepspeed on this machine (imports torch)."""
    found = hardware.detect()
    return {
        "cuda": found.kind == "cuda",
        "gpus": len(found.gpus),
        "memory_gib": found.gpus[0].memory_gb if found.gpus else found.ram_gb,
        "bitsandbytes": hardware.bitsandbytes_installed(),
        "deepspeed": hardware.installed("deepspeed"),
        "summary": found.summary,
    }


@dataclass
class Advice:
    technique: str | None  # None: nothing fits
    label: str
    reason: str
    memory_gib: dict[str, float]
    fits: dict[str, bool]
    unavailable: dict[str, str]
    wraps: str | None = None  # for "zero": the technique sharded across GPUs
    notes: list[str] = field(default_factory=list)

    def rows(self, available_gib: float) -> list[list]:
        """Table rows: technique, memory needed, fits?, reduces compute / memory, trainable, availability."""
        rows = []
        for technique in TECHNIQUES:
            key = technique.key
            needed = self.memory_gib.get(key)
            if key in self.unavailable:
                status = "unavailable: " + self.unavailable[key]
            elif needed is None:
                status = "—"
            else:
                status = "fits" if self.fits.get(key) else f"does not fit in {available_gib:.0f} GiB"
            mark = " ← recommended" if key == self.technique else ""
            rows.append(
                [
                    technique.label + mark,
                    "—" if needed is None else f"{needed:.1f} GiB",
                    status,
                    technique.compute,
                    technique.memory,
                    technique.trainable,
                ]
            )
        return rows


def advise(
    params: float,
    memory_gib: float,
    *,
    gpus: int = 1,
    cuda: bool = True,
    bitsandbytes: bool = True,
    deepspeed: bool = True,
    priority: str = "balanced",
    arch: est.Architecture | None = None,
    batch_size: int = 1,
    max_length: int = 1024,
    lora_r: int = est.DEFAULT_LORA_R,
    gradient_checkpointing: bool | None = None,
    dtype: str | None = None,
) -> Advice:
    """Pick the first technique in the priority order that is available here and fits in memory_gib."""
    if priority not in PRIORITIES:
        priority = "balanced"
    arch = arch or est.architecture_for(params)
    if dtype is None:
        dtype = "bf16" if cuda else "fp32"
    passes = None
    if gradient_checkpointing is None:
        gradient_checkpointing = cuda
        if not cuda:  # the worker's pass plan on a CPU: micro-batches (or checkpointing) within its budget
            shape = arch if arch.params == params else replace(arch, params=params)
            passes = cost.plan_passes(shape, dtype, int(batch_size), int(max_length))
            gradient_checkpointing = passes.gradient_checkpointing
    unavailable = unavailable_reasons(cuda, bitsandbytes, gpus, deepspeed)

    def memory_for(key: str, devices: int = 1) -> float:
        return est.estimate_memory(
            params,
            key,
            arch=arch,
            batch_size=batch_size,
            max_length=max_length,
            gradient_checkpointing=gradient_checkpointing,
            lora_r=lora_r,
            dtype=dtype,
            devices=devices,
            kind="gpu" if cuda else "cpu",
            max_tokens_per_pass=passes.max_tokens_per_pass if passes else None,
        ).total

    memory = {key: memory_for(key) for key in est.TECHNIQUES}
    fits = {key: est.fits_in(memory[key], memory_gib) and key not in unavailable for key in est.TECHNIQUES}
    notes = []
    if not cuda:
        notes.append("No CUDA GPU: training runs in fp32 on the CPU — fine for models up to ~0.5B, slow beyond.")
    size = arch.name if arch.known else est.format_params(params)
    can_shard = "zero" not in unavailable
    # In priority order: the technique on one device if it fits; else, with several GPUs, the same technique
    # sharded by ZeRO-3 (so "best quality" on 8 GPUs prefers sharded DoRA to single-GPU QLoRA).
    for key in PRIORITIES[priority]:
        if fits[key]:
            reason = _reason(key, size, memory, memory_gib, unavailable)
            return Advice(key, TECHNIQUE_BY_KEY[key].label, reason, memory, fits, unavailable, notes=notes)
        if can_shard and key != "qlora":  # 4-bit weights and ZeRO-3 sharding do not combine in this studio
            sharded = memory_for(key, gpus)
            if est.fits_in(sharded, memory_gib):
                memory["zero"], fits["zero"] = sharded, True
                reason = (
                    f"{size} with {TECHNIQUE_BY_KEY[key].label} needs {memory[key]:.1f} GiB, more than one GPU's "
                    f"{memory_gib:.0f} GiB; ZeRO-3 splits weights, gradients and optimizer state over {gpus} GPUs: "
                    f"{sharded:.1f} GiB each."
                )
                return Advice(
                    "zero",
                    f"{TECHNIQUE_BY_KEY['zero'].label} + {TECHNIQUE_BY_KEY[key].label}",
                    reason,
                    memory,
                    fits,
                    unavailable,
                    wraps=key,
                    notes=notes,
                )
    smallest = min((key for key in est.TECHNIQUES if key not in unavailable), key=memory.get)
    reason = (
        f"Nothing fits: even {TECHNIQUE_BY_KEY[smallest].label} needs {memory[smallest]:.1f} GiB and this "
        f"hardware has {memory_gib:.0f} GiB. Use a smaller model, batch size 1, a shorter max length, "
        "gradient checkpointing, or a GPU with more memory."
    )
    if "qlora" in unavailable:
        reason += f" QLoRA would need {memory['qlora']:.1f} GiB but {unavailable['qlora']}."
    return Advice(None, "Nothing fits", reason, memory, fits, unavailable, notes=notes)


def _reason(key: str, size: str, memory: dict, memory_gib: float, unavailable: dict) -> str:
    need = f"needs about {memory[key]:.1f} GiB of {memory_gib:.0f} GiB"
    if key == "lora":
        text = f"LoRA on {size} {need}: the base stays frozen, only small adapters train."
        if est.fits_in(memory["full"], memory_gib):
            text += " Full fine-tuning would fit too, but costs more compute and storage per model."
        return text
    if key == "qlora":
        why = (
            f"LoRA would need {memory['lora']:.1f} GiB"
            if not est.fits_in(memory["lora"], memory_gib)
            else "you asked for the lowest memory"
        )
        return f"QLoRA on {size} {need}: {why}; the 4-bit base cuts weight memory about 4×."
    if key == "dora":
        return (
            f"DoRA on {size} {need}: full fine-tuning needs {memory['full']:.1f} GiB, and DoRA usually gets "
            "closer to it than plain LoRA at the same rank."
        )
    if key == "full":
        return f"Full fine-tuning of {size} {need}: small enough to train every weight."
    return need


def advice_for_hardware(
    params: float, hardware: est.Hardware, *, gpus: int = 1, bitsandbytes: bool | None = None, **kwargs
) -> Advice:
    """Advice for a row of the hardware list. A row other than this machine is a Space or a Linux box the studio
    is installed on: its requirements bring bitsandbytes, whose 4-bit kernels run on CUDA GPUs and CPUs."""
    cuda = hardware.kind == "gpu"
    if bitsandbytes is None:
        bitsandbytes = True
    kwargs.setdefault("dtype", est.training_dtype(hardware))
    return advise(params, hardware.memory_gib, gpus=gpus, cuda=cuda, bitsandbytes=bitsandbytes, **kwargs)
