"""Estimators: training compute, memory, time, money and break-even — before any run.

Every number here comes from a formula written next to it, so a reader can redo it by hand:

- FLOPs per training token: full fine-tuning 6·N (forward 2·N, backward 4·N: activation and weight
  gradients). LoRA-family 4·N + 6·A (forward 2·N, backward activation-gradients 2·N, no weight gradients
  for the frozen base; the A adapter parameters train fully). Gradient checkpointing recomputes the
  forward pass: +2·N. Attention's s² term is ignored (small for the sequence lengths fine-tuning uses).
- Memory (GB = 10⁹ bytes): weights + gradients + optimizer state + adapter + activations + runtime.
  Adam keeps 2 fp32 states (8 bytes/param); mixed precision adds a fp32 master copy (4 bytes/param):
  full fine-tuning in bf16 costs 2 + 2 + 12 = 16 bytes/param (ZeRO paper). Activations per layer
  34·s·b·h bytes in 16-bit (Korthikanti et al. 2022, memory-efficient attention so no s² term); with
  gradient checkpointing only each layer's input (2·s·b·h) is kept, plus one layer being recomputed.
- Time = FLOPs × technique overhead / (peak FLOP/s × utilisation × devices); money = hours × price.

Edit HARDWARE to change prices, peaks or the assumed utilisation.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import asdict, dataclass, field

from studio.errors import StudioError

GB = 1e9
TECHNIQUES = ("full", "lora", "qlora", "dora")
TECHNIQUE_LABELS = {"full": "Full fine-tuning", "lora": "LoRA", "qlora": "QLoRA (4-bit)", "dora": "DoRA"}
# Extra wall time per FLOP a technique pays (QLoRA dequantises 4-bit weights in every matmul; DoRA
# normalises the adapted weight every step). Counted as equivalent compute in the time estimate.
TIME_OVERHEAD = {"full": 1.0, "lora": 1.0, "qlora": 1.3, "dora": 1.2}
NF4_BITS_PER_PARAM = 4.127  # NF4 (4 bits) + double-quantised block constants (≈0.127 bits)
RUNTIME_OVERHEAD_GB = 0.5  # CUDA context / allocator slack / framework
# Plan to use at most 90% of a device: fragmentation and spikes make a 99%-full plan fail.
USABLE_FRACTION = 0.9
DEFAULT_LORA_R = 16


# --- Architectures -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Architecture:
    name: str
    params: float
    hidden: int
    layers: int
    intermediate: int  # MLP width (gated MLP: gate, up, down)
    kv_dim: int  # width of the key/value projections (grouped-query attention makes it < hidden)
    vocab: int
    hub_id: str = ""
    known: bool = True


# From each model's config.json (hidden_size, num_hidden_layers, intermediate_size,
# num_key_value_heads × head_dim, vocab_size) and its model card's parameter count.
ARCHITECTURES = (
    Architecture("SmolLM2-135M", 134_515_008, 576, 30, 1536, 192, 49152, "HuggingFaceTB/SmolLM2-135M-Instruct"),
    Architecture("SmolLM2-360M", 362e6, 960, 32, 2560, 320, 49152, "HuggingFaceTB/SmolLM2-360M-Instruct"),
    Architecture("SmolLM2-1.7B", 1.71e9, 2048, 24, 8192, 2048, 49152, "HuggingFaceTB/SmolLM2-1.7B-Instruct"),
    Architecture("Qwen2.5-0.5B", 494e6, 896, 24, 4864, 128, 151936, "Qwen/Qwen2.5-0.5B-Instruct"),
    Architecture("Qwen2.5-1.5B", 1.54e9, 1536, 28, 8960, 256, 151936, "Qwen/Qwen2.5-1.5B-Instruct"),
    Architecture("Qwen2.5-7B", 7.62e9, 3584, 28, 18944, 512, 152064, "Qwen/Qwen2.5-7B-Instruct"),
    Architecture("Llama-3.2-1B", 1.24e9, 2048, 16, 8192, 512, 128256, "meta-llama/Llama-3.2-1B-Instruct"),
    Architecture("Llama-3.2-3B", 3.21e9, 3072, 28, 8192, 1024, 128256, "meta-llama/Llama-3.2-3B-Instruct"),
    Architecture("Llama-3.1-8B", 8.03e9, 4096, 32, 14336, 1024, 128256, "meta-llama/Llama-3.1-8B-Instruct"),
    Architecture("Mistral-7B", 7.24e9, 4096, 32, 14336, 1024, 32768, "mistralai/Mistral-7B-Instruct-v0.3"),
)


def generic_architecture(params: float) -> Architecture:
    """Shape of a typical decoder with `params` parameters: N ≈ 12·L·h² with h ≈ 128·L (Llama-7B: 4096/32)."""
    hidden = max(64, round((params * 128 / 12) ** (1 / 3) / 64) * 64)
    layers = max(1, round(hidden / 128))
    return Architecture(f"generic {format_params(params)}", params, hidden, layers, round(hidden * 8 / 3),
                        hidden, 32000, known=False)


def find_architecture(name: str | None) -> Architecture | None:
    """The known architecture whose name appears in `name` (a catalog ref, Hub id or label), if any."""
    if not name:
        return None
    text = name.lower().replace("_", "-")
    if text.startswith("bundled"):
        return ARCHITECTURES[0]
    # Longest names first so "Qwen2.5-1.5B" is not taken for "Qwen2.5-0.5B" by a shorter match.
    for arch in sorted(ARCHITECTURES, key=lambda a: -len(a.name)):
        if arch.name.lower() in text:
            return arch
    return None


def architecture_for(params: float | None = None, name: str | None = None) -> Architecture:
    arch = find_architecture(name)
    if arch is not None:
        return arch
    if not params:
        raise StudioError("No model size given.", "Pick a known model or type its parameter count, e.g. 7B or 135M.")
    return generic_architecture(params)


_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_params(value) -> float:
    """'7B', '7e9', '135M', '1.5b', 7000000000 → parameters as a float."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        text = str(value or "").strip().lower().replace(",", "").replace("_", "")
        match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmbgt]?)", text)
        if not match:
            raise StudioError(f"'{value}' is not a parameter count.", "Write it like 7B, 135M, 1.5B or 7e9.")
        number = float(match.group(1)) * _SUFFIX[match.group(2)]
    if not math.isfinite(number) or number < 1e5:
        raise StudioError(f"{value} parameters is too small for a language model.",
                          "Write the full count, e.g. 135M or 7B (not 7).")
    if number > 5e12:
        raise StudioError(f"{value} parameters is more than any model this studio can estimate.",
                          "Write it like 7B or 70B.")
    return number


def format_params(params: float) -> str:
    if params >= 1e9:
        return f"{params / 1e9:.3g}B"
    return f"{params / 1e6:.3g}M"


def lora_params(arch: Architecture, r: int = DEFAULT_LORA_R) -> int:
    """Trainable LoRA parameters with all linear layers targeted: r·(in + out) per matrix.

    Per layer: q (h→h), k and v (h→kv), o (h→h), gate and up (h→i), down (i→h): in+out sums to 9h + 2kv + 3i.
    """
    return int(r * arch.layers * (9 * arch.hidden + 2 * arch.kv_dim + 3 * arch.intermediate))


def dora_extra_params(arch: Architecture) -> int:
    """DoRA adds one magnitude per output feature of each adapted matrix: 3h + 2kv + 2i per layer."""
    return int(arch.layers * (3 * arch.hidden + 2 * arch.kv_dim + 2 * arch.intermediate))


def adapter_params(arch: Architecture, technique: str, r: int = DEFAULT_LORA_R) -> int:
    if technique == "full":
        return 0
    extra = dora_extra_params(arch) if technique == "dora" else 0
    return lora_params(arch, r) + extra


# --- Compute -----------------------------------------------------------------------------------------

def check_technique(technique: str) -> str:
    technique = (technique or "").strip().lower()
    if technique not in TECHNIQUES:
        raise StudioError(f"Unknown technique '{technique}'.", f"Use one of: {', '.join(TECHNIQUES)}.")
    return technique


def flops_per_token(params: float, technique: str, adapter: int = 0, gradient_checkpointing: bool = False) -> float:
    technique = check_technique(technique)
    per_token = 6 * params if technique == "full" else 4 * params + 6 * adapter
    if gradient_checkpointing:
        per_token += 2 * params  # the forward pass runs twice
    return per_token


def flops_formula(technique: str, gradient_checkpointing: bool) -> str:
    base = "6·N·T·E" if technique == "full" else "(4·N + 6·A)·T·E"
    if gradient_checkpointing:
        base = base.replace("6·N", "(6+2)·N") if technique == "full" else base.replace("4·N", "(4+2)·N")
    return base + " (N params, A adapter params, T tokens per epoch, E epochs" + (
        "; +2·N recomputed forward with gradient checkpointing)" if gradient_checkpointing else ")")


# --- Memory ------------------------------------------------------------------------------------------

DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass
class Memory:
    technique: str
    weights: float
    gradients: float
    optimizer: float
    adapter: float
    activations: float
    runtime: float = RUNTIME_OVERHEAD_GB
    notes: dict = field(default_factory=dict)

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.adapter + self.activations + self.runtime

    def as_dict(self) -> dict:
        parts = {key: round(getattr(self, key), 3) for key in
                 ("weights", "gradients", "optimizer", "adapter", "activations", "runtime")}
        return {"technique": self.technique, "total_gb": round(self.total, 3), "parts_gb": parts, "notes": self.notes}


def activation_bytes(arch: Architecture, batch_size: int, max_length: int, dtype: str,
                     gradient_checkpointing: bool) -> float:
    """Activations kept for the backward pass, plus the fp32 logits the loss needs."""
    scale = DTYPE_BYTES[dtype] / 2  # the 34·s·b·h formula counts 16-bit activations
    tokens = batch_size * max_length
    per_layer_full = 34 * tokens * arch.hidden * scale
    if gradient_checkpointing:
        layers = arch.layers * 2 * tokens * arch.hidden * scale + per_layer_full
    else:
        layers = arch.layers * per_layer_full
    logits = tokens * arch.vocab * 4
    return layers + logits


def estimate_memory(params: float, technique: str, *, arch: Architecture | None = None, batch_size: int = 1,
                    max_length: int = 1024, gradient_checkpointing: bool = True, lora_r: int = DEFAULT_LORA_R,
                    dtype: str = "bf16", devices: int = 1) -> Memory:
    """Memory on one device. devices > 1 shards weights, gradients and optimizer state (DeepSpeed ZeRO-3)."""
    technique = check_technique(technique)
    arch = arch or architecture_for(params)
    if dtype not in DTYPE_BYTES:
        raise StudioError(f"Unknown dtype '{dtype}'.", "Use bf16, fp16 or fp32.")
    n = params
    width = DTYPE_BYTES[dtype]
    mixed = width == 2
    notes = {}
    if technique == "full":
        weights = width * n
        gradients = width * n
        # Adam: m and v in fp32 (8 bytes); mixed precision also keeps fp32 master weights (4 bytes).
        optimizer = (8 + (4 if mixed else 0)) * n
        notes["optimizer"] = "Adam m+v fp32 (8 B/param)" + (" + fp32 master weights (4 B/param)" if mixed else "")
    else:
        weights = n * NF4_BITS_PER_PARAM / 8 if technique == "qlora" else width * n
        gradients = optimizer = 0.0
        notes["weights"] = ("4-bit NF4 + double-quantised constants (4.127 bits/param)" if technique == "qlora"
                            else f"frozen base in {dtype}")
    adapter = adapter_params(arch, technique, lora_r)
    # Adapter weights, gradients and Adam states in fp32: 4 + 4 + 8 = 16 bytes per trainable param.
    adapter_bytes = 16 * adapter
    sharded = 1 / max(1, devices)
    activations = activation_bytes(arch, batch_size, max_length, dtype, gradient_checkpointing)
    notes["activations"] = (f"{'checkpointed ' if gradient_checkpointing else ''}{arch.layers} layers × "
                            f"batch {batch_size} × length {max_length} × hidden {arch.hidden}, plus fp32 logits")
    if devices > 1:
        notes["sharding"] = f"ZeRO-3: weights, gradients and optimizer state split over {devices} devices"
    return Memory(technique, weights * sharded / GB, gradients * sharded / GB, optimizer * sharded / GB,
                  adapter_bytes * sharded / GB, activations / GB, notes=notes)


def fits_in(needed_gb: float, available_gb: float) -> bool:
    return needed_gb <= available_gb * USABLE_FRACTION


# --- Hardware ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hardware:
    key: str
    label: str
    memory_gb: float  # memory one training process can use (GPU memory, or RAM on CPU)
    peak_tflops: float  # dense peak in the precision training uses (bf16/fp16 tensor cores; fp32 on CPU)
    utilisation: float  # assumed fraction of the peak a fine-tuning run reaches
    price_per_hour: float  # USD
    kind: str = "gpu"  # "gpu" | "cpu"
    bf16: bool = True
    note: str = ""


PRICES_SOURCE = ("Hugging Face Spaces hardware prices (huggingface.co/docs/hub/spaces-gpus and /pricing), "
                 "read November 2026; peaks from NVIDIA datasheets (dense, no sparsity). Prices change: edit "
                 "HARDWARE in studio/decide/estimate.py.")

HARDWARE = (
    Hardware("cpu-basic", "Spaces CPU basic (2 vCPU, 16 GB)", 16, 0.13, 0.30, 0.00, "cpu", False,
             "free; peak taken from a 2-core fp32 matmul"),
    Hardware("cpu-upgrade", "Spaces CPU upgrade (8 vCPU, 32 GB)", 32, 0.50, 0.30, 0.03, "cpu", False),
    Hardware("t4", "NVIDIA T4 (16 GB)", 16, 65, 0.30, 0.40, bf16=False, note="fp16 only (no bf16)"),
    Hardware("l4", "NVIDIA L4 (24 GB)", 24, 121, 0.35, 0.80),
    Hardware("a10g", "NVIDIA A10G (24 GB)", 24, 70, 0.35, 1.00),
    Hardware("l40s", "NVIDIA L40S (48 GB)", 48, 362, 0.35, 1.80),
    Hardware("a100", "NVIDIA A100 (80 GB)", 80, 312, 0.40, 2.50),
    Hardware("h100", "NVIDIA H100 (80 GB)", 80, 989, 0.40, 4.50),
)
THIS_MACHINE = "this-machine"
MATMUL_BURST_S = 0.1


@functools.lru_cache(maxsize=1)
def measure_this_machine(seconds: float = 0.6) -> Hardware:
    """A short matmul benchmark (fp32 on CPU, bf16 on CUDA), run once per process and cached."""
    import time

    import torch

    from studio.models import hardware as detect_hardware

    found = detect_hardware.detect()
    on_cuda = found.kind == "cuda"
    device, dtype, size = ("cuda", torch.bfloat16, 4096) if on_cuda else ("cpu", torch.float32, 1024)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b  # warm-up
    tflops, deadline = 0.0, time.perf_counter() + seconds
    while True:  # the best of short bursts: other work on the machine only ever slows a burst down
        runs, started = 0, time.perf_counter()
        while time.perf_counter() - started < MATMUL_BURST_S:
            a @ b
            runs += 1
        if on_cuda:
            torch.cuda.synchronize()
        tflops = max(tflops, 2 * size**3 * runs / (time.perf_counter() - started) / 1e12)
        if time.perf_counter() >= deadline:
            break
    if on_cuda:
        gpu = found.gpus[0]
        label, memory, note = f"This machine: {gpu.name} (measured)", gpu.memory_gb, "bf16 matmul measured"
    else:
        label = f"This machine: {found.cpu_cores} CPU cores (measured)"
        memory, note = found.ram_gb, f"fp32 matmul measured with {torch.get_num_threads()} threads"
    return Hardware(THIS_MACHINE, label, round(memory, 1), round(tflops, 4), 0.30, 0.0,
                    "gpu" if on_cuda else "cpu", on_cuda, note + "; own hardware, price 0")


def hardware_list(include_this_machine: bool = False) -> list[Hardware]:
    items = list(HARDWARE)
    if include_this_machine:
        items.insert(0, measure_this_machine())
    return items


def find_hardware(key: str) -> Hardware:
    text = (key or "").strip().lower()
    if text in (THIS_MACHINE, "this", "local"):
        return measure_this_machine()
    for item in HARDWARE:
        if text in (item.key, item.label.lower()):
            return item
    raise StudioError(f"Unknown hardware '{key}'.",
                      f"Use one of: {', '.join([THIS_MACHINE] + [item.key for item in HARDWARE])}.")


def training_dtype(hardware: Hardware) -> str:
    if hardware.kind == "cpu":
        return "fp32"  # bf16 on CPUs without AVX-512 is ~10x slower (STACK-NOTES)
    return "bf16" if hardware.bf16 else "fp16"


# --- The whole estimate ------------------------------------------------------------------------------

@dataclass
class Estimate:
    technique: str
    params: float
    arch: Architecture
    tokens: float  # per epoch
    epochs: float
    hardware: Hardware
    devices: int
    batch_size: int
    max_length: int
    gradient_checkpointing: bool
    lora_r: int
    dtype: str
    memory: Memory
    adapter_params: int
    flops: float
    effective_flops: float
    hours: float
    cost_usd: float

    @property
    def fits(self) -> bool:
        return fits_in(self.memory.total, self.hardware.memory_gb)

    @property
    def unavailable(self) -> str | None:
        """Why this technique cannot run on this hardware at all, if it cannot."""
        if self.technique == "qlora" and self.hardware.kind != "gpu":
            return "QLoRA needs a CUDA GPU"
        return None

    @property
    def formula(self) -> str:
        return flops_formula(self.technique, self.gradient_checkpointing)

    def as_dict(self) -> dict:
        return {
            "technique": self.technique, "params": self.params, "architecture": asdict(self.arch),
            "tokens_per_epoch": self.tokens, "epochs": self.epochs, "hardware": self.hardware.key,
            "hardware_label": self.hardware.label, "devices": self.devices, "batch_size": self.batch_size,
            "max_length": self.max_length, "gradient_checkpointing": self.gradient_checkpointing,
            "lora_r": self.lora_r, "dtype": self.dtype, "adapter_params": self.adapter_params,
            "trainable_params": self.params if self.technique == "full" else self.adapter_params,
            "memory_gb": round(self.memory.total, 3), "memory_breakdown_gb": self.memory.as_dict()["parts_gb"],
            "memory_notes": self.memory.notes, "available_memory_gb": self.hardware.memory_gb, "fits": self.fits,
            "unavailable": self.unavailable,
            "flops": self.flops, "flops_formula": self.formula, "time_overhead": TIME_OVERHEAD[self.technique],
            "effective_flops": self.effective_flops, "peak_tflops": self.hardware.peak_tflops,
            "utilisation": self.hardware.utilisation, "price_per_hour": self.hardware.price_per_hour,
            "hours": self.hours, "cost_usd": round(self.cost_usd, 4),
            "time_formula": "hours = flops × overhead / (peak TFLOP/s × 1e12 × utilisation × devices) / 3600",
        }


def estimate(params: float, tokens: float, epochs: float, technique: str, *, hardware: str | Hardware = "a10g",
             batch_size: int = 4, max_length: int = 1024, gradient_checkpointing: bool | None = None,
             lora_r: int = DEFAULT_LORA_R, arch: Architecture | None = None, devices: int = 1,
             dtype: str | None = None) -> Estimate:
    technique = check_technique(technique)
    device = hardware if isinstance(hardware, Hardware) else find_hardware(hardware)
    for name, value in (("tokens", tokens), ("epochs", epochs)):
        if not value or value <= 0 or not math.isfinite(value):
            raise StudioError(f"The number of {name} must be above 0 (got {value}).",
                              "Load a dataset in the Data tab, or type the token count and epochs.")
    for name, value in (("batch size", batch_size), ("max length", max_length), ("LoRA rank", lora_r),
                        ("devices", devices)):
        if int(value) < 1:
            raise StudioError(f"The {name} must be at least 1 (got {value}).", "Use a whole number of 1 or more.")
    arch = arch or architecture_for(params)
    dtype = dtype or training_dtype(device)
    if gradient_checkpointing is None:
        gradient_checkpointing = device.kind == "gpu"  # on CPU it costs ~1.5x time (STACK-NOTES)
    memory = estimate_memory(params, technique, arch=arch, batch_size=int(batch_size), max_length=int(max_length),
                             gradient_checkpointing=gradient_checkpointing, lora_r=int(lora_r), dtype=dtype,
                             devices=int(devices))
    adapter = adapter_params(arch, technique, int(lora_r))
    flops = flops_per_token(params, technique, adapter, gradient_checkpointing) * tokens * epochs
    effective = flops * TIME_OVERHEAD[technique]
    # Several devices: data parallel with ~90% scaling efficiency.
    scaling = 1.0 if devices == 1 else 0.9 * devices
    seconds = effective / (device.peak_tflops * 1e12 * device.utilisation * scaling)
    hours = seconds / 3600
    cost = hours * device.price_per_hour * devices
    return Estimate(technique, params, arch, tokens, epochs, device, int(devices), int(batch_size), int(max_length),
                    gradient_checkpointing, int(lora_r), dtype, memory, adapter, flops, effective, hours, cost)


def stats_tokens(stats: dict | None) -> dict | None:
    """The numbers the estimators need from a Data-tab dataset's stats dict (contract 2), or None."""
    if not isinstance(stats, dict):
        return None
    tokens = stats.get("tokens") or {}
    total = tokens.get("total")
    if not isinstance(total, (int, float)) or total <= 0:
        return None
    max_length = stats.get("suggested_max_length") or stats.get("max_length") or tokens.get("max") or 1024
    return {"tokens": float(total), "trainable": tokens.get("trainable"), "rows": stats.get("rows"),
            "max_length": int(max_length), "model": stats.get("model")}


# --- Break-even --------------------------------------------------------------------------------------

@dataclass
class BreakEven:
    monthly_saving: float  # prompt tokens no longer sent
    net_monthly: float  # saving minus the extra hosting cost of the tuned model
    one_time: float
    months: float | None  # None: never breaks even
    horizon: list[int]
    without_tuning: list[float]  # cumulative cost of the few-shot tokens
    with_tuning: list[float]  # one-time cost plus cumulative hosting difference

    def as_dict(self) -> dict:
        return asdict(self)


def break_even(tokens_saved_per_request: float, requests_per_month: float, price_per_1k_tokens: float,
               one_time_cost: float, hosting_diff_per_month: float = 0.0, horizon_months: int | None = None) -> BreakEven:
    """saving/month = tokens saved per request × requests/month × price per 1k / 1000;
    months to break even = one-time cost / (saving/month − extra hosting/month)."""
    for name, value in (("tokens saved per request", tokens_saved_per_request),
                        ("requests per month", requests_per_month), ("price per 1k tokens", price_per_1k_tokens),
                        ("one-time cost", one_time_cost)):
        if value is None or value < 0 or not math.isfinite(value):
            raise StudioError(f"The {name} cannot be negative or empty (got {value}).", "Type 0 or a positive number.")
    saving = tokens_saved_per_request * requests_per_month * price_per_1k_tokens / 1000
    net = saving - (hosting_diff_per_month or 0.0)
    months = one_time_cost / net if net > 0 else None
    if months == 0:
        months = 0.0
    if horizon_months is None:
        horizon_months = 12 if months is None else int(min(60, max(12, math.ceil(months * 2))))
    horizon = list(range(horizon_months + 1))
    without = [saving * m for m in horizon]
    with_tuning = [one_time_cost + (hosting_diff_per_month or 0.0) * m for m in horizon]
    return BreakEven(saving, net, one_time_cost, months, horizon, without, with_tuning)


def hardware_rows(params: float, tokens: float, epochs: float, technique: str, *, hardware: list[Hardware],
                  **kwargs) -> list[Estimate]:
    """The same training job on every hardware in the list (precision and checkpointing follow each device;
    several devices only for GPUs)."""
    devices = kwargs.pop("devices", 1)
    return [estimate(params, tokens, epochs, technique, hardware=item, devices=devices if item.kind == "gpu" else 1,
                     **kwargs) for item in hardware]
