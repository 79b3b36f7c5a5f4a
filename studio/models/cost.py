"""The cost model: FLOPs, memory (GiB), hardware peaks and time of a fine-tuning run, before it starts.

One model for every estimate the studio shows — the Decide tab, the Train tab's preflight, `python -m studio
estimate`, `python -m studio train --dry-run` and bench/ — so they agree. Memory is in GiB (2**30 bytes)
everywhere and labelled so. Where each number comes from:

- **Model shape** (params, hidden, layers, MLP width, key/value width, heads, vocabulary): each model's
  config.json (`shape_from_config`); the table SHAPES holds the models the Decide tab lists, read from their
  config.json files and model cards. Unknown sizes get a generic decoder shape (`generic_shape`).
- **FLOPs per token** (`train_flops_per_token`): the matmuls of the transformer body (2 FLOPs per weight per
  token forward) plus attention scores (4·s·h per layer forward, s the padded length, non-causal convention).
  Training is forward + backward: full fine-tuning 3× forward (6·N); LoRA 2× forward for the frozen body
  (backward to the activations only, no weight gradients: 4·N) plus 6·A for the adapters; gradient
  checkpointing recomputes the forward (+2·N). The LM head runs only on the positions it scores: on a CPU the
  worker scores the labelled ones only (studio.train.worker.score_only_labelled_positions_on_cpu).
- **Peaks**: GPUs from NVIDIA datasheets (dense bf16/fp16 tensor TFLOP/s, no sparsity) in GPUS; a CPU's
  peak is measured on the machine (`measure_peak`: the best of short torch matmul bursts in the precision
  training uses, and the best seen on this CPU before: load only ever slows a burst). A time estimate is
  FLOPs / (peak × efficiency).
- **This CPU's own step**: once this CPU's precision measurement has timed the model's LoRA steps
  (studio.models.precision_probe), a run here is priced from that step's FLOP/s × how much faster the calibration
  CPU's runs went than the same step there (`efficiency_for`). The share of the matmul peak a step reaches does
  not carry over between CPU kinds; a run's speed relative to the same model's small step carries over better.
- **Efficiency, start-up, warm-up, evaluation and checkpoint seconds, memory constants**: measured by
  `bench/cost.py calibrate`, which runs the real worker on the bundled model and fits them; it writes
  calibration.json next to this module (the reference machine, committed with its machine, date, load and
  method) or, with `--here`, STUDIO_HOME/calibration.json, which the model prefers when present (another
  machine, or the same one after the worker changed). GPU efficiencies are assumptions (no GPU measured).
- **Memory** (`estimate_memory`), from parts: the process's import floor (torch, transformers, peft, trl,
  datasets; CPU) or CUDA context (GPU); weights in the dtype used; adapter weights, gradients and Adam states
  in fp32 (16 B/param); full fine-tuning's fp32 weights, gradients and Adam states (16 B/param);
  activations saved for the backward pass per token per layer (norms, q/k/v, attention output, residuals,
  4 MLP tensors: 7·h + 2·kv + 4·i values; with gradient checkpointing a GPU keeps each layer's input plus one
  layer, while a CPU process's RSS keeps a measured share of the full figure);
  the attention-score term when the kernel materialises the s×s scores; the LM head's chunked vocabulary
  buffers (TRL projects at most 4,096 positions × 32,768 vocabulary entries at a time). The per-token,
  vocabulary and fixed constants (allocator overhead included) are measured on peak RSS, per precision.
- **The worker's pass plan** (`plan_passes`): on a CPU the worker runs a batch above a token budget as
  micro-batches (and checkpoints only when one row alone is over it). The plan comes from the same per-token
  figure (`activation_bytes_per_token`), and the memory estimate peaks on one pass of it, so preflight, the
  Decide tab and the worker agree on what runs (studio.models.kernels only does the splitting).
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from studio import paths
from studio.errors import StudioError
from studio.models import bundled, catalog, hardware, kernels, precision, precision_probe

GIB = 1024**3
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
TECHNIQUES = ("full", "lora", "qlora", "dora")
TECHNIQUE_LABELS = {"full": "Full fine-tuning", "lora": "LoRA", "qlora": "QLoRA (4-bit)", "dora": "DoRA"}
# Extra wall time per FLOP a technique pays (QLoRA dequantises 4-bit weights in every matmul; DoRA normalises
# the adapted weight every step): counted as equivalent compute. Literature figures, not measured here.
TIME_OVERHEAD = {"full": 1.0, "lora": 1.0, "qlora": 1.3, "dora": 1.2}
NF4_BITS_PER_PARAM = 4.127  # NF4 (4 bits) + double-quantised block constants (≈0.127 bits)
ADAPTER_BYTES_PER_PARAM = 16  # fp32 weight 4 + gradient 4 + Adam m and v 8
# Plan for at most 90 % of a device's memory: fragmentation and other processes make a 99 %-full plan fail.
USABLE_FRACTION = 0.9
DEFAULT_LORA_R = 16
# TRL 1.16's chunked LM head (trl.kernels.chunked_logprob): positions and vocabulary entries per projected tile.
HEAD_TOKEN_CHUNK = 4096
HEAD_VOCAB_CHUNK = 32768
# HF Trainer's length-grouped sampler: mega-batches of min(rows // (4·batch), 50) batches, each sorted longest first.
MEGABATCH_MULT = 50
# Model loading beyond the calibrated start-up of the bundled model, per GiB of weights read (an assumption:
# a local SSD and safetensors; a Hub download is not counted).
LOAD_SECONDS_PER_GIB = 4.0
CALIBRATION_FILE = "calibration.json"
# How a run spreads over several processes (studio.train.launch), and which of each process's memory parts it
# splits between them; every part not listed is a whole copy in every process. Activations are always per process.
STRATEGY_SHARDS = {
    "ddp": (),
    "fsdp": ("weights", "gradients", "optimizer", "adapter"),
    "deepspeed-zero2": ("gradients", "optimizer"),
    "deepspeed-zero3": ("weights", "gradients", "optimizer", "adapter"),
}
STRATEGIES = tuple(STRATEGY_SHARDS)
# The Decide tab's plan for a model too big for one GPU: shard it over several (Train runs it where deepspeed is
# installed; the Decide tab checks).
SHARDED_STRATEGY = "deepspeed-zero3"
STRATEGY_LABELS = {
    "ddp": "DDP (a full copy per process)",
    "fsdp": "FSDP (weights, gradients and optimizer state sharded)",
    "deepspeed-zero2": "DeepSpeed ZeRO-2 (gradients and optimizer state sharded)",
    "deepspeed-zero3": "DeepSpeed ZeRO-3 (weights, gradients and optimizer state sharded)",
}


# --- Model shapes -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelShape:
    name: str
    params: float | None  # every parameter, tied embeddings counted once
    hidden: int | None = None
    layers: int | None = None
    intermediate: int | None = None  # MLP width (gated MLP: gate, up, down)
    kv_dim: int | None = None  # width of the key/value projections (grouped-query attention makes it < hidden)
    vocab: int | None = None
    heads: int | None = None
    tied: bool = True  # input embeddings shared with the LM head
    hub_id: str = ""
    known: bool = True  # a real model's shape, not a guess from the size
    source: str = "table"  # "table" | "config" | "name" | "generic" | "unknown"

    @property
    def complete(self) -> bool:
        return bool(self.params and self.hidden and self.layers and self.intermediate)

    @property
    def kv(self) -> int:
        return self.kv_dim or self.hidden or 0

    @property
    def head_params(self) -> float:
        """Weights of the LM head (vocabulary × hidden): a matmul per scored position."""
        return float((self.vocab or 0) * (self.hidden or 0))

    @property
    def body_params(self) -> float:
        """Weights the body's matmuls use per token: all parameters minus the embedding table(s)."""
        embeddings = self.head_params * (1 if self.tied else 2)
        return max(0.0, float(self.params or 0) - embeddings) if self.complete else float(self.params or 0)


# From each model's config.json (hidden_size, num_hidden_layers, intermediate_size, num_key_value_heads ×
# head_dim, vocab_size, num_attention_heads, tie_word_embeddings) and its model card's parameter count. The
# first is the bundled model (its converted config.json gives the same shape: tests check it).
SHAPES = (
    ModelShape("SmolLM2-135M", 134_515_008, 576, 30, 1536, 192, 49152, 9, True, "HuggingFaceTB/SmolLM2-135M-Instruct"),
    ModelShape("SmolLM2-360M", 362e6, 960, 32, 2560, 320, 49152, 15, True, "HuggingFaceTB/SmolLM2-360M-Instruct"),
    ModelShape("SmolLM2-1.7B", 1.71e9, 2048, 24, 8192, 2048, 49152, 32, True, "HuggingFaceTB/SmolLM2-1.7B-Instruct"),
    ModelShape("Qwen2.5-0.5B", 494e6, 896, 24, 4864, 128, 151936, 14, True, "Qwen/Qwen2.5-0.5B-Instruct"),
    ModelShape("Qwen2.5-1.5B", 1.54e9, 1536, 28, 8960, 256, 151936, 12, True, "Qwen/Qwen2.5-1.5B-Instruct"),
    ModelShape("Qwen2.5-7B", 7.62e9, 3584, 28, 18944, 512, 152064, 28, False, "Qwen/Qwen2.5-7B-Instruct"),
    ModelShape("Llama-3.2-1B", 1.24e9, 2048, 16, 8192, 512, 128256, 32, True, "meta-llama/Llama-3.2-1B-Instruct"),
    ModelShape("Llama-3.2-3B", 3.21e9, 3072, 28, 8192, 1024, 128256, 24, True, "meta-llama/Llama-3.2-3B-Instruct"),
    ModelShape("Llama-3.1-8B", 8.03e9, 4096, 32, 14336, 1024, 128256, 32, False, "meta-llama/Llama-3.1-8B-Instruct"),
    ModelShape("Mistral-7B", 7.24e9, 4096, 32, 14336, 1024, 32768, 32, False, "mistralai/Mistral-7B-Instruct-v0.3"),
)
BUNDLED_SHAPE = SHAPES[0]


def generic_shape(params: float) -> ModelShape:
    """Shape of a typical decoder with `params` parameters: N ≈ 12·L·h² with h ≈ 128·L (Llama-7B: 4096/32)."""
    hidden = max(64, round((params * 128 / 12) ** (1 / 3) / 64) * 64)
    layers = max(1, round(hidden / 128))
    return ModelShape(
        f"generic {format_params(params)}",
        params,
        hidden,
        layers,
        round(hidden * 8 / 3),
        hidden,
        32000,
        max(1, hidden // 128),
        False,
        known=False,
        source="generic",
    )


def find_shape(name: str | None) -> ModelShape | None:
    """The known shape whose name appears in `name` (a catalog ref, Hub id or label), if any."""
    if not name:
        return None
    text = name.lower().replace("_", "-")
    if text.startswith("bundled"):
        return BUNDLED_SHAPE
    # Longest names first so "Qwen2.5-1.5B" is not taken for "Qwen2.5-0.5B" by a shorter match.
    for shape in sorted(SHAPES, key=lambda s: -len(s.name)):
        if shape.name.lower() in text:
            return shape
    return None


def shape_for(params: float | None = None, name: str | None = None) -> ModelShape:
    shape = find_shape(name)
    if shape is not None:
        return shape
    if not params:
        raise StudioError("No model size given.", "Pick a known model or type its parameter count, e.g. 7B or 135M.")
    return generic_shape(params)


def params_from_config(config: dict) -> int | None:
    """Parameter count of a decoder from its config.json (Llama/Qwen/Mistral-style layouts)."""
    config = config.get("text_config", config)
    try:
        hidden = int(config["hidden_size"])
        layers = int(config["num_hidden_layers"])
        vocab = int(config["vocab_size"])
        inter = int(config.get("intermediate_size") or 4 * hidden)
        heads = int(config.get("num_attention_heads") or max(1, hidden // 64))
    except (KeyError, TypeError, ValueError):
        return None
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    per_layer = attention + 3 * hidden * inter + 2 * hidden
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings", False) else 2)
    return layers * per_layer + embeddings + hidden


def shape_from_config(config: dict, name: str = "", source: str = "config") -> ModelShape:
    text = config.get("text_config", config)
    heads = text.get("num_attention_heads") or 1
    head_dim = text.get("head_dim") or (text.get("hidden_size", 0) // max(1, heads))
    return ModelShape(
        name or str(text.get("model_type") or "model"),
        params_from_config(config),
        text.get("hidden_size"),
        text.get("num_hidden_layers"),
        text.get("intermediate_size"),
        (text.get("num_key_value_heads") or heads) * head_dim,
        text.get("vocab_size"),
        heads,
        bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", False))),
        source=source,
    )


def params_from_name(name: str) -> float | None:
    match = re.search(r"(?<![\d.])(\d+(?:\.\d+)?)\s*([MB])(?![A-Za-z])", name, re.IGNORECASE)
    if not match:
        return None
    return float(match.group(1)) * (1e6 if match.group(2).upper() == "M" else 1e9)


def model_shape(ref: str) -> ModelShape:
    """A model's shape without loading it: its config.json (local, bundled, or the Hub cache), else its name."""
    kind = catalog.classify(ref)
    config_path = None
    if kind == "bundled":
        folder = bundled.converted_dir() if bundled.is_converted() else None
        config_path = folder / "config.json" if folder else None
        if config_path is None or not config_path.is_file():
            return BUNDLED_SHAPE
    elif kind == "local":
        config_path = Path(ref).expanduser() / "config.json"
    else:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(ref.strip(), "config.json")
            config_path = Path(cached) if isinstance(cached, str) else None
        except Exception:  # noqa: BLE001 - the cache lookup is best effort
            config_path = None
    if config_path is not None and config_path.is_file():
        try:
            return shape_from_config(json.loads(config_path.read_text(encoding="utf-8")), name=str(ref))
        except (OSError, ValueError):
            pass
    known = find_shape(ref)
    if known is not None:
        return known
    guess = params_from_name(ref)
    return ModelShape(str(ref), float(guess) if guess else None, known=False, source="name" if guess else "unknown")


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
        raise StudioError(
            f"{value} parameters is too small for a language model.", "Write the full count, e.g. 135M or 7B (not 7)."
        )
    if number > 5e12:
        raise StudioError(
            f"{value} parameters is more than any model this studio can estimate.", "Write it like 7B or 70B."
        )
    return number


def format_params(params: float) -> str:
    if params >= 1e9:
        return f"{params / 1e9:.3g}B"
    return f"{params / 1e6:.3g}M"


def check_technique(technique: str) -> str:
    technique = (technique or "").strip().lower()
    if technique not in TECHNIQUES:
        raise StudioError(f"Unknown technique '{technique}'.", f"Use one of: {', '.join(TECHNIQUES)}.")
    return technique


def lora_params(shape: ModelShape, r: int = DEFAULT_LORA_R) -> int:
    """Trainable LoRA parameters with all linear layers of every block targeted: r·(in + out) per matrix.

    Per layer: q (h→h), k and v (h→kv), o (h→h), gate and up (h→i), down (i→h): in+out sums to 9h + 2kv + 3i.
    Unknown shape: about 1 % of the parameters per rank-16 adapter (a typical ratio)."""
    if not shape.complete:
        return int((shape.params or 0) * 0.01 * r / 16)
    return int(r * shape.layers * (9 * shape.hidden + 2 * shape.kv + 3 * shape.intermediate))


def dora_extra_params(shape: ModelShape) -> int:
    """DoRA adds one magnitude per output feature of each adapted matrix: 3h + 2kv + 2i per layer."""
    if not shape.complete:
        return 0
    return int(shape.layers * (3 * shape.hidden + 2 * shape.kv + 2 * shape.intermediate))


def adapter_params(shape: ModelShape, technique: str, r: int = DEFAULT_LORA_R) -> int:
    if technique == "full":
        return 0
    extra = dora_extra_params(shape) if technique == "dora" else 0
    return lora_params(shape, r) + extra


# --- FLOPs --------------------------------------------------------------------------------------------------


def attention_flops_per_token(shape: ModelShape, length: float) -> float:
    """Forward attention scores and weighted values: 2·s·h each per layer per token (s = padded length)."""
    if not shape.complete:
        return 0.0
    return 4.0 * shape.layers * length * shape.hidden


def forward_flops_per_token(shape: ModelShape, length: float, scored_fraction: float = 1.0) -> float:
    """One forward pass (evaluation): body 2·N_body + attention + LM head 2·vocab·h on the scored positions."""
    return 2 * shape.body_params + attention_flops_per_token(shape, length) + 2 * shape.head_params * scored_fraction


def train_flops_per_token(
    shape: ModelShape,
    technique: str = "lora",
    *,
    adapter: int = 0,
    length: float = 0.0,
    scored_fraction: float = 1.0,
    gradient_checkpointing: bool = False,
) -> float:
    """Forward + backward FLOPs per position. Full: 3× forward. LoRA family: body and head forward + backward to
    the activations (2× forward, no weight gradients for frozen weights), + 6·A for the adapters."""
    technique = check_technique(technique)
    body = 2 * shape.body_params + attention_flops_per_token(shape, length)
    head = 2 * shape.head_params * scored_fraction
    if technique == "full":
        per_token = 3 * (body + head)
    else:
        per_token = 2 * (body + head) + 6 * adapter
    if gradient_checkpointing:
        per_token += body  # the forward pass of the body runs twice
    return per_token


def flops_formula(technique: str, gradient_checkpointing: bool) -> str:
    base = "6·N·T" if technique == "full" else "(4·N + 6·A)·T"
    text = base + " + attention 12·L·s·h·T (N weights in matmuls, A adapter params, T tokens computed, padding included"
    if gradient_checkpointing:
        text += "; +2·N·T: gradient checkpointing recomputes the forward"
    return text + ")"


# --- Hardware -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuSpec:
    match: str  # matched against the device name, upper case
    tflops: float  # dense bf16/fp16 tensor peak (NVIDIA datasheets, no sparsity)
    capability: tuple[int, int]  # CUDA compute capability (NVIDIA's table): what studio.models.precision decides on
    efficiency: float = 0.30  # ASSUMED share of the peak a LoRA step reaches (no GPU was measured for this studio)

    @property
    def dtype(self) -> str:
        """The precision a run trains in on this GPU (the one decision: studio.models.precision)."""
        return precision.decide(precision.Device("cuda", self.match, self.capability)).name

    @property
    def bf16(self) -> bool:
        return self.dtype == "bf16"


# Longest match strings first where one contains another ("L40S" before "L40", "A10G" before "A10").
GPUS = (
    GpuSpec("H200", 989, (9, 0), efficiency=0.40),
    GpuSpec("H100", 989, (9, 0), efficiency=0.40),
    GpuSpec("A100", 312, (8, 0), efficiency=0.40),
    GpuSpec("L40S", 362, (8, 9), efficiency=0.35),
    GpuSpec("L40", 181, (8, 9), efficiency=0.35),
    GpuSpec("A6000", 155, (8, 6)),
    GpuSpec("A10G", 70, (8, 6), efficiency=0.35),
    GpuSpec("A10", 125, (8, 6)),
    GpuSpec("L4", 121, (8, 9), efficiency=0.35),
    GpuSpec("T4", 65, (7, 5)),
    GpuSpec("V100", 125, (7, 0)),
    GpuSpec("4090", 165, (8, 9)),
    GpuSpec("4080", 97, (8, 9)),
    GpuSpec("3090", 71, (8, 6)),
    GpuSpec("3080", 60, (8, 6)),
    GpuSpec("A4000", 77, (8, 6)),
    GpuSpec("P100", 19, (6, 0)),
)
UNKNOWN_GPU_EFFICIENCY = 0.25


def gpu_spec(name: str) -> GpuSpec | None:
    upper = (name or "").upper()
    for spec in GPUS:
        if spec.match in upper:
            return spec
    return None


@dataclass(frozen=True)
class Device:
    """Where a run trains: its memory, its peak in the precision used there, and its price."""

    key: str
    label: str
    kind: str  # "cpu" | "gpu"
    memory_gib: float  # memory one training process can use (GPU memory, or RAM on a CPU)
    peak_tflops: float  # dense matmul peak in `dtype`
    dtype: str  # the precision training uses there
    price_per_hour: float = 0.0  # USD
    efficiency: float | None = None  # share of the peak a LoRA step reaches; None: the CPU calibration
    bf16: bool = True
    note: str = ""


PRICES_SOURCE = (
    "Hugging Face Spaces hardware prices (huggingface.co/docs/hub/spaces-gpus and /pricing), read "
    "November 2026; GPU peaks from NVIDIA datasheets (dense, no sparsity); CPU efficiency measured by "
    "bench/cost.py, GPU efficiency assumed. Prices change: edit SPACES in studio/models/cost.py."
)


def _gpu(key: str, label: str, memory_gib: float, match: str, price: float, note: str = "") -> Device:
    spec = gpu_spec(match)
    return Device(key, label, "gpu", memory_gib, spec.tflops, spec.dtype, price, spec.efficiency, spec.bf16, note)


# Hugging Face Spaces hardware (the Decide tab's table). GPU memory as sold (16 GB cards hold 16 GiB).
SPACES = (
    Device(
        "cpu-basic",
        "Spaces CPU basic (2 vCPU, 16 GB)",
        "cpu",
        16,
        0.13,
        "fp32",
        0.0,
        None,
        False,
        "free; peak from a 2-core fp32 matmul",
    ),
    Device("cpu-upgrade", "Spaces CPU upgrade (8 vCPU, 32 GB)", "cpu", 32, 0.50, "fp32", 0.03, None, False),
    _gpu("t4", "NVIDIA T4 (16 GB)", 16, "T4", 0.40, "fp16 only (no bf16)"),
    _gpu("l4", "NVIDIA L4 (24 GB)", 24, "L4", 0.80),
    _gpu("a10g", "NVIDIA A10G (24 GB)", 24, "A10G", 1.00),
    _gpu("l40s", "NVIDIA L40S (48 GB)", 48, "L40S", 1.80),
    _gpu("a100", "NVIDIA A100 (80 GB)", 80, "A100", 2.50),
    _gpu("h100", "NVIDIA H100 (80 GB)", 80, "H100", 4.50),
)
THIS_MACHINE = "this-machine"
PEAK_CACHE_FILE = "matmul-peak.json"


@functools.lru_cache(maxsize=4)
def measure_peak(dtype: str = "fp32", seconds: float = 0.6) -> float:
    """This machine's matmul peak in TFLOP/s for `dtype` (CUDA when present, else the CPU with torch's threads).

    The best of short bursts: other work on the machine only ever slows a burst down. Once per process; on a
    CPU, also the best any earlier process measured (`remembered_cpu_peak`)."""
    import torch

    measured = hardware.matmul_tflops(dtype, seconds)
    return measured if torch.cuda.is_available() else remembered_cpu_peak(dtype, measured)


def remembered_cpu_peak(dtype: str, measured_tflops: float) -> float:
    """The best CPU matmul peak this machine has shown (STUDIO_HOME/cache/matmul-peak.json), this measurement
    included. A burst taken while other work holds a core reads low — 206 GFLOP/s beside a worker that was
    still ending, 413 a minute later — and a time estimate built on it came out 89 % too long; since load only
    ever slows a burst, the best seen on the same CPU, thread count and torch is the machine's peak."""
    import torch

    key = f"{precision_probe.machine_key(torch.get_num_threads(), torch.__version__)}|{dtype}"

    def keep_the_best(seen):
        seen = seen if isinstance(seen, dict) else {}
        best = seen.get(key)
        if not (isinstance(best, (int, float)) and math.isfinite(best) and best >= measured_tflops):
            seen[key] = measured_tflops
        return seen

    try:
        return float(paths.locked_update(paths.home() / "cache" / PEAK_CACHE_FILE, keep_the_best, default=dict)[key])
    except (OSError, paths.CorruptFile):  # a read-only home, or a damaged file (kept aside): use this measurement
        return measured_tflops


def this_machine(dtype: str | None = None, peak_tflops: float | None = None) -> Device:
    """This machine as a Device: its GPU (table efficiency) or its CPU (calibrated), peak measured unless given."""
    found = hardware.detect(probe_torch=peak_tflops is None)
    if found.kind == "cuda" and found.gpus:
        gpu = found.gpus[0]
        spec = gpu_spec(gpu.name)
        dtype = dtype or (spec.dtype if spec else "bf16")
        peak = peak_tflops or measure_peak(dtype)
        return Device(
            THIS_MACHINE,
            f"This machine: {gpu.name} (measured)",
            "gpu",
            round(gpu.memory_gb, 1),
            peak,
            dtype,
            0.0,
            spec.efficiency if spec else UNKNOWN_GPU_EFFICIENCY,
            dtype == "bf16",
            f"{dtype} matmul measured; own hardware, price 0",
        )
    dtype = dtype or "fp32"
    peak = peak_tflops or measure_peak(dtype)
    return Device(
        THIS_MACHINE,
        f"This machine: {found.cpu_cores} CPU cores (measured)",
        "cpu",
        round(found.ram_gb, 1),
        peak,
        dtype,
        0.0,
        None,
        dtype == "bf16",
        f"{dtype} matmul measured; own hardware, price 0",
    )


def find_device(key: str) -> Device:
    text = (key or "").strip().lower()
    if text in (THIS_MACHINE, "this", "local"):
        return this_machine()
    for item in SPACES:
        if text in (item.key, item.label.lower()):
            return item
    raise StudioError(
        f"Unknown hardware '{key}'.", f"Use one of: {', '.join([THIS_MACHINE] + [item.key for item in SPACES])}."
    )


# --- Calibration --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """Constants measured by bench/cost.py calibrate (see calibration.json for the machine, date and method)."""

    # Share of the measured matmul peak a CPU reaches, per precision: training steps and evaluation batches.
    cpu_train_efficiency: dict = field(default_factory=lambda: {"fp32": 0.55})
    cpu_eval_efficiency: dict = field(default_factory=lambda: {"fp32": 0.55})
    # Per precision, on the same machine and the same scale: the share of the peak reached by the precision
    # measurement's own LoRA step (studio.models.precision_probe, 4 × 128 tokens). Another CPU's runs are priced
    # from its own measured step × (run efficiency / this), not from its matmul peak (`measured_step_efficiency`).
    cpu_measured_step_efficiency: dict = field(default_factory=dict)
    # The matmul peak (GFLOP/s) measured on the calibration machine, per precision: a stand-in where only
    # memory matters and measuring would waste a second (starting a run from the CLI).
    reference_peak_gflops: dict = field(default_factory=lambda: {"fp32": 127.0})
    reference_cores: int = 2  # the cores that peak was measured on (the build machine)
    start_seconds: float = 15.0  # launch to the first step: process start, imports, model load, tokenising the data
    # Per precision: the first step's extra time beyond its padded positions' share (allocations, kernel choice).
    warmup_seconds: dict = field(default_factory=lambda: {"fp32": 3.0})
    save_seconds: float = 1.0  # one checkpoint: adapter + optimizer state + trainer state
    end_seconds: float = 3.0  # the final adapter, model card and process exit
    # Memory, GiB unless named otherwise.
    import_floor_gib: float = 0.37  # RSS of a process that imported torch, transformers, peft, trl and datasets
    fixed_gib: float = 0.3  # everything else that does not grow with the batch (tokenised data, buffers)
    # Per precision, allocator overhead included: × (7h + 2kv + 4i) values saved per token per layer; × heads·s²
    # values per row per layer (0: torch's CPU attention kernel keeps no scores); × the LM head's tile of
    # positions × vocabulary. activation_factor is the one per-token figure of a training pass: the memory
    # estimate and the worker's pass plan (`plan_passes`) both use it. Measured on the worker with its lean
    # kernels (bench/train.py memory, bundled model, 8 × 576): autograd saves 1.08 × those values, and a pass
    # adds 1.1 B of RSS per saved byte in fp32 (1.9 in bf16: fp32 temporaries beside 16-bit saved tensors),
    # 1.08 × 1.1 = 1.188; calibration.json says where its figures come from.
    activation_factor: dict = field(default_factory=lambda: {"fp32": 1.188})
    # CPU with gradient checkpointing: the peak's activation part as a share of the same batch's without it
    # (glibc keeps much of what the recomputed layers free; measured, not derived: bench/cost.py).
    checkpoint_ratio: dict = field(default_factory=lambda: {"fp32": 0.45})
    attention_factor: dict = field(default_factory=lambda: {"fp32": 0.0})
    head_buffers: dict = field(default_factory=lambda: {"fp32": 2.0})
    cuda_context_gib: float = 0.5  # GPU: CUDA context and allocator slack (an assumption, no GPU measured)
    # GPU: what autograd saves (the saved-tensor count above), no CPU allocator on top: PyTorch's caching
    # allocator reuses freed blocks (an assumption, no GPU measured).
    gpu_activation_factor: float = 1.15
    machine: str = "built-in defaults (not measured)"
    date: str = ""
    method: str = ""
    source: str = "defaults"

    def cpu_efficiency(self, dtype: str, kind: str = "train") -> tuple[float, bool]:
        """(efficiency, calibrated?) for a CPU in `dtype`; an uncalibrated precision borrows fp32's figure."""
        return self.per_dtype("cpu_train_efficiency" if kind == "train" else "cpu_eval_efficiency", dtype)

    def per_dtype(self, name: str, dtype: str) -> tuple[float, bool]:
        """(value, measured in this precision?) of a per-precision constant; else fp32's value."""
        table = getattr(self, name)
        if dtype in table:
            return float(table[dtype]), True
        defaults = type(self)().__getattribute__(name)
        return float(table.get("fp32", defaults["fp32"])), False

    @classmethod
    def from_dict(cls, data: dict, source: str) -> Calibration:
        known = {name for name in cls.__dataclass_fields__}
        values = {key: value for key, value in data.items() if key in known}
        values["source"] = source
        return cls(**values)

    def as_dict(self) -> dict:
        return asdict(self)


def packaged_calibration_path() -> Path:
    return Path(__file__).with_name(CALIBRATION_FILE)


def machine_calibration_path() -> Path:
    return paths.studio_home() / CALIBRATION_FILE


def load_calibration() -> Calibration:
    """STUDIO_HOME/calibration.json (measured on this machine) when present, else the committed one."""
    for path in (machine_calibration_path(), packaged_calibration_path()):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return Calibration.from_dict(data.get("constants", data), str(path))
    return Calibration()


@functools.lru_cache(maxsize=1)
def reference_cpu_gflops(cores: int, dtype: str = "fp32") -> float:
    """A CPU's matmul peak estimated from the calibration machine's, per core: for a machine we cannot measure
    (a Jobs CPU flavour) or when measuring is not worth a second (memory-only checks)."""
    found = calibration()
    peak = found.reference_peak_gflops.get(dtype) or found.reference_peak_gflops["fp32"]
    return peak / max(1, found.reference_cores) * max(1, cores)


def calibration() -> Calibration:
    return load_calibration()


# --- Token statistics and padding ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenStats:
    """Tokens per row after the chat template (the Data tab's statistics), and the share that carries a label."""

    mean: float
    p50: float
    p95: float
    p99: float
    max: float
    labelled_fraction: float = 1.0
    rough: bool = False  # estimated from characters, not counted with a tokenizer

    @classmethod
    def from_stats(cls, stats: dict | None) -> TokenStats | None:
        """From a dataset manifest's "stats" dict; None when it has no token counts."""
        if not isinstance(stats, dict):
            return None
        tokens = stats.get("tokens") or {}
        total, rows = tokens.get("total"), stats.get("rows")
        if not isinstance(total, (int, float)) or total <= 0 or not isinstance(rows, (int, float)) or rows <= 0:
            return None
        mean = total / rows
        trainable = tokens.get("trainable")
        fraction = min(1.0, trainable / total) if isinstance(trainable, (int, float)) and trainable > 0 else 1.0
        return cls(
            mean,
            tokens.get("p50") or mean,
            tokens.get("p95") or mean,
            tokens.get("p99") or mean,
            tokens.get("max") or mean,
            fraction,
        )

    @classmethod
    def uniform(cls, length: float, labelled_fraction: float = 1.0) -> TokenStats:
        """Every row the same length (typed numbers, no dataset)."""
        return cls(length, length, length, length, length, labelled_fraction)

    def _curve(self, q0: float, u: float) -> float:
        points = ((0.0, q0), (0.5, self.p50), (0.95, self.p95), (0.99, self.p99), (1.0, self.max))
        for (u0, v0), (u1, v1) in zip(points, points[1:]):
            if u <= u1:  # geometric between the percentiles: token lengths have a long right tail
                t = (u - u0) / (u1 - u0)
                return math.exp(math.log(max(v0, 1.0)) * (1 - t) + math.log(max(v1, 1.0)) * t)
        return self.max

    @functools.cached_property
    def _q0(self) -> float:
        """The shortest row: chosen so that the curve's mean is the measured mean (bisection)."""
        grid = [(i + 0.5) / 200 for i in range(200)]
        low, high = 1.0, max(1.0, self.p50)
        for _ in range(40):
            middle = (low + high) / 2
            if sum(self._curve(middle, u) for u in grid) / 200 < self.mean:
                low = middle
            else:
                high = middle
        return (low + high) / 2

    def quantile(self, u: float) -> float:
        """Row length at quantile u, through p50, p95, p99 and max; the shortest row makes the mean right."""
        return self._curve(self._q0, u)


@dataclass(frozen=True)
class Batches:
    """What the batches of a run hold: real tokens, computed positions (padding included) and the longest row."""

    real_per_row: float
    padded_per_row: float
    longest: float  # the longest padded row of the run: memory peaks on its batch
    mean_padded_length: float  # the padded length a typical position sits in (attention's s)


def batches(
    tokens: TokenStats,
    *,
    rows: int,
    batch: int,
    max_length: int,
    rows_seen: int | None = None,
    grouped: bool = True,
    packing: bool = False,
    bins: int = 400,
) -> Batches:
    """Real and padded tokens per row over the rows a run takes, rows truncated at max_length.

    Length-grouped (the worker's default): the HF sampler sorts each mega-batch of rows longest first, so a
    batch is padded to the longest of a narrow band of lengths and a run shorter than an epoch takes the
    longest rows of each mega-batch first. Random batches (evaluation) are padded to the expected longest of
    `batch` random rows. Packing computes no padding (rows packed into max_length sequences)."""

    def length(u: float) -> float:
        return min(float(max_length), tokens.quantile(u))

    # Mean real length of a truncated row, corrected so the untruncated mean equals the measured one.
    grid = [(i + 0.5) / bins for i in range(bins)]
    raw = sum(tokens.quantile(u) for u in grid) / bins
    scale = tokens.mean / raw if raw > 0 else 1.0
    real = sum(length(u) for u in grid) / bins * scale
    longest = min(float(max_length), tokens.max)
    if packing:
        return Batches(real, real, float(max_length), float(max_length))
    if batch <= 1:
        return Batches(real, real, longest, real)
    if not grouped:  # the expected longest of `batch` random rows: ∫ Q(u) d(u^batch)
        padded = sum(length(u) * batch * u ** (batch - 1) for u in grid) / bins * scale
        return Batches(real, max(real, padded), longest, max(real, padded))
    rows = max(rows, batch)
    mult = max(1, min(rows // (batch * 4), MEGABATCH_MULT))
    mega = min(rows, mult * batch)
    per_mega = max(1, math.ceil(mega / batch))
    band_real, band_padded = [], []
    for j in range(per_mega):
        top, bottom = 1 - j * batch / mega, max(0.0, 1 - (j + 1) * batch / mega)
        samples = [bottom + (top - bottom) * (k + 0.5) / 8 for k in range(8)]
        band_real.append(sum(length(u) for u in samples) / 8 * scale)
        band_padded.append(min(float(max_length), tokens.quantile(top) * scale) if j else longest)

    def over(counts: list[int]) -> tuple[float, float]:
        total = sum(counts) or 1
        return (
            sum(c * r for c, r in zip(counts, band_real)) / total,
            sum(c * p for c, p in zip(counts, band_padded)) / total,
        )

    # Whole epochs cover every band; the rows of a last partial epoch are the longest bands of its mega-batches.
    seen = rows if rows_seen is None else max(batch, rows_seen)
    epochs, remainder = divmod(seen, rows)
    epoch_real, epoch_padded = over([1] * per_mega)
    epoch_real = real  # a whole epoch's rows average exactly the measured (truncated) mean
    whole, partial = divmod(math.ceil(remainder / batch), per_mega)
    part_real, part_padded = over([whole + (1 if j < partial else 0) for j in range(per_mega)])
    real_seen = (epochs * rows * epoch_real + remainder * part_real) / seen
    padded_seen = (epochs * rows * epoch_padded + remainder * part_padded) / seen
    padded_seen = max(real_seen, padded_seen)
    return Batches(real_seen, padded_seen, longest, padded_seen)


# --- Memory -------------------------------------------------------------------------------------------------

MEMORY_PARTS = (
    ("floor", "Process floor (imports / CUDA context)"),
    ("weights", "Model weights"),
    ("gradients", "Gradients (base)"),
    ("optimizer", "Optimizer state (Adam)"),
    ("adapter", "Adapter (weights + grads + Adam)"),
    ("activations", "Activations (saved for backward)"),
    ("head", "LM head buffers (vocabulary)"),
    ("other", "Other (data, allocator)"),
)


@dataclass
class Memory:
    """Peak memory of one training process, in GiB, by part."""

    technique: str
    floor: float
    weights: float
    gradients: float
    optimizer: float
    adapter: float
    activations: float
    head: float
    other: float
    notes: dict = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(getattr(self, part) for part, _ in MEMORY_PARTS)

    def as_dict(self) -> dict:
        return {
            "technique": self.technique,
            "total_gib": round(self.total, 3),
            "parts_gib": {part: round(getattr(self, part), 3) for part, _ in MEMORY_PARTS},
            "notes": self.notes,
        }


def estimate_memory(
    shape: ModelShape,
    technique: str = "lora",
    *,
    dtype: str = "fp32",
    micro_batch: int = 1,
    length: float = 1024,
    lora_r: int = DEFAULT_LORA_R,
    gradient_checkpointing: bool = False,
    scored_fraction: float = 1.0,
    kind: str = "cpu",
    devices: int = 1,
    strategy: str = "ddp",
    max_tokens_per_pass: int | None = None,
    calibration_: Calibration | None = None,
) -> Memory:
    """Peak memory of one process (RSS on a CPU, allocated memory on a GPU), in GiB.

    With devices > 1 the `strategy` says which parts are split between the processes (STRATEGY_SHARDS).
    `scored_fraction`: share of positions the LM head projects (labelled ones on a CPU, see the module doc).
    `max_tokens_per_pass`: the worker's pass plan (`plan_passes`): a batch above it runs as micro-batches of
    whole rows, so the activations peak on one pass, not on the whole batch."""
    technique = check_technique(technique)
    if dtype not in DTYPE_BYTES:
        raise StudioError(f"Unknown dtype '{dtype}'.", "Use bf16, fp16 or fp32.")
    cal = calibration_ or calibration()
    n = float(shape.params or 0)
    width = DTYPE_BYTES[dtype]
    mixed = width == 2
    notes = {}
    gradients = optimizer = 0.0
    if technique == "full":
        # The worker trains the weights themselves in fp32 (16-bit runs compute under autocast): weights, gradients
        # and Adam's m and v, 16 B/param whatever the precision.
        weights = 4 * n
        gradients = 4 * n
        optimizer = 8 * n
        notes["weights"] = "trained weights in fp32" + (f", computing in {dtype}" if mixed else "")
        notes["optimizer"] = "Adam m+v fp32 (8 B/param)"
    elif technique == "qlora":
        # bitsandbytes quantises the linear layers; the embedding table (and an untied LM head) stay in `dtype`.
        kept = n - shape.body_params if shape.complete else 0.0
        weights = (n - kept) * NF4_BITS_PER_PARAM / 8 + kept * width
        notes["weights"] = "linear layers in 4-bit NF4 + double-quantised constants (4.127 bits/param)" + (
            f", embeddings in {dtype}" if kept else ""
        )
    else:
        weights = width * n
        notes["weights"] = f"frozen base in {dtype}"
    adapter = ADAPTER_BYTES_PER_PARAM * adapter_params(shape, technique, lora_r)
    if strategy not in STRATEGY_SHARDS:
        raise StudioError(f"Unknown strategy '{strategy}'.", f"Use one of {', '.join(STRATEGIES)}.")
    sharded = STRATEGY_SHARDS[strategy] if devices > 1 else ()

    def share(part: str) -> float:
        return 1 / devices if part in sharded else 1.0

    act_bytes = (
        width  # QLoRA too: its layers compute in the run's dtype (bf16/fp16 on a GPU, the CPU's choice on a CPU)
    )
    rows_per_pass = rows_in_pass(micro_batch, length, max_tokens_per_pass)
    positions = rows_per_pass * length
    if shape.complete:
        per_layer = 7 * shape.hidden + 2 * shape.kv + 4 * shape.intermediate  # values saved per token per layer
        if kind == "cpu":
            activations = positions * activation_bytes_per_token(
                shape, dtype, gradient_checkpointing=gradient_checkpointing, cal=cal
            )
            scores = rows_per_pass * (shape.heads or 1) * length**2  # of one layer
            activations += (
                (cal.per_dtype("attention_factor", dtype)[0] + kernels.cpu_attention_keeps(dtype, scores))
                * scores
                * act_bytes
                * shape.layers
                * (cal.per_dtype("checkpoint_ratio", dtype)[0] if gradient_checkpointing else 1.0)
            )
        else:  # fused attention kernels keep no s×s scores on a GPU; checkpointing keeps each layer's input + one layer
            values = (
                positions * (shape.layers * shape.hidden + per_layer)
                if gradient_checkpointing
                else positions * shape.layers * per_layer
            )
            activations = values * act_bytes * cal.gpu_activation_factor
        scored = min(HEAD_TOKEN_CHUNK, positions * scored_fraction)
        head = (
            cal.per_dtype("head_buffers", dtype)[0] * scored * min(HEAD_VOCAB_CHUNK, shape.vocab or 32000) * act_bytes
        )
        split = f" (a pass of {rows_per_pass} of the batch's {micro_batch} rows)" if rows_per_pass < micro_batch else ""
        notes["activations"] = (
            f"{'checkpointed ' if gradient_checkpointing else ''}{shape.layers} layers × "
            f"{rows_per_pass} rows{split} × length {length:.0f} × {per_layer:,} values × "
            f"{act_bytes} B"
        )
    else:
        activations = n * act_bytes * positions / 2048  # no shape: a rough ratio
        head = 0.0
        notes["activations"] = "no model shape: a rough ratio to the parameter count"
    if kind == "cpu":
        floor, other = cal.import_floor_gib, cal.fixed_gib
        notes["floor"] = "torch, transformers, peft, trl and datasets imported"
    else:
        floor, other = cal.cuda_context_gib, 0.0
        notes["floor"] = "CUDA context and allocator slack (assumed)"
    if devices > 1:
        notes["sharding"] = f"{STRATEGY_LABELS[strategy]} over {devices} processes"
    return Memory(
        technique,
        floor,
        weights * share("weights") / GIB,
        gradients * share("gradients") / GIB,
        optimizer * share("optimizer") / GIB,
        adapter * share("adapter") / GIB,
        activations / GIB,
        head / GIB,
        other,
        notes,
    )


def fits_in(needed_gib: float, available_gib: float) -> bool:
    return needed_gib <= available_gib * USABLE_FRACTION


# --- The worker's pass plan (CPU) ---------------------------------------------------------------------------
# What one training pass may add to a CPU worker's RSS (its saved activations and what the allocator keeps
# beside them). With the rest of the worker (imports ~0.4 GiB, the model, optimizer state, the data: 0.6 GiB
# in bf16, 1.1 GiB in fp32 for the bundled model) this keeps its run at batch 8 × 576 under 5 GiB.
ACTIVATION_BUDGET_GIB = 3.3


def activation_bytes_per_token(
    shape: ModelShape,
    dtype: str,
    *,
    gradient_checkpointing: bool = False,
    cal: Calibration | None = None,
) -> float:
    """What one token of a CPU training pass adds to the process's RSS, in bytes: the values autograd saves for
    the backward pass (7h + 2kv + 4i per layer, see the module doc) × the activation's bytes × the calibrated
    `activation_factor` (saved-tensor overhead and the allocator's kept memory, per precision); with gradient
    checkpointing the calibrated share of that (`checkpoint_ratio`). The one figure both the memory estimate
    and the worker's pass plan use."""
    if not shape.complete:
        return 0.0
    cal = cal or calibration()
    act_bytes = DTYPE_BYTES[dtype]  # every technique, QLoRA too: it computes in the run's dtype
    per_layer = 7 * shape.hidden + 2 * shape.kv + 4 * shape.intermediate
    per_token = shape.layers * per_layer * act_bytes * cal.per_dtype("activation_factor", dtype)[0]
    if gradient_checkpointing:
        per_token *= cal.per_dtype("checkpoint_ratio", dtype)[0]
    return per_token


def rows_in_pass(batch_size: int, length: float, max_tokens_per_pass: int | None) -> int:
    """Rows of a batch padded to `length` that one pass takes (the worker's split_batch: whole rows, at least one)."""
    if not max_tokens_per_pass or batch_size * length <= max_tokens_per_pass:
        return max(1, int(batch_size))
    return max(1, min(int(batch_size), int(max_tokens_per_pass // max(1.0, length))))


@dataclass(frozen=True)
class PassPlan:
    """How the worker runs each training batch on a CPU: passes of at most `max_tokens_per_pass` padded tokens
    (None: every batch whole) and whether gradient checkpointing is on."""

    max_tokens_per_pass: int | None
    gradient_checkpointing: bool

    @property
    def note(self) -> str:
        """What the run's log and the preflight say about it ("" when batches run whole)."""
        if not self.max_tokens_per_pass:
            return ""
        return (
            f"batches above {self.max_tokens_per_pass:,} padded tokens run as micro-batches (the same update, "
            "less memory)" + (" with gradient checkpointing" if self.gradient_checkpointing else "")
        )


def plan_passes(
    shape: ModelShape,
    dtype: str,
    batch_size: int,
    max_length: int,
    budget_gib: float = ACTIVATION_BUDGET_GIB,
    cal: Calibration | None = None,
) -> PassPlan:
    """The worker's pass plan on a CPU (when the run leaves gradient checkpointing automatic); preflight and the
    Decide tab call it with the same inputs, so the memory they predict is that of the passes the worker runs.

    A batch within the budget runs whole. A longer one runs as micro-batches (same update, about the same speed
    on a CPU, where a pass of a few thousand tokens already keeps the matmuls busy). Checkpointing, which costs a
    third more compute, only when a single row at max length would not fit."""
    per_token = activation_bytes_per_token(shape, dtype, cal=cal)
    if per_token <= 0:
        return PassPlan(None, False)
    budget_tokens = int(budget_gib * GIB / per_token)
    if batch_size * max_length <= budget_tokens:
        return PassPlan(None, False)
    if max_length <= budget_tokens:
        return PassPlan(budget_tokens, False)
    checkpointed = activation_bytes_per_token(shape, dtype, gradient_checkpointing=True, cal=cal)
    return PassPlan(max(int(max_length), int(budget_gib * GIB / checkpointed)), True)


# --- A whole run --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One training run in the units the cost model counts. RunConfig.workload builds it from a run's settings,
    for the Train tab's preflight and the Decide tab alike, so both give the same numbers for the same run."""

    shape: ModelShape
    technique: str = "lora"
    lora_r: int = 8
    dtype: str = "fp32"
    micro_batch: int = 8  # rows per forward/backward pass
    grad_accum: int = 1
    devices: int = 1
    strategy: str = "ddp"  # how the devices share the run (STRATEGY_SHARDS)
    gradient_checkpointing: bool = False
    steps: int = 0  # optimizer steps
    train_tokens: float = 0.0  # real (non-padding) tokens trained on
    train_positions: float = 0.0  # positions computed, padding included
    scored_tokens: float = 0.0  # positions the LM head projects (the labelled ones)
    attention_length: float = 0.0  # padded length a typical position sits in (attention's s)
    longest: float = 0.0  # the longest padded row: memory peaks on its batch
    scored_fraction_peak: float = 1.0  # labelled share of the positions in the peak batch
    evaluations: int = 0
    eval_positions: float = 0.0  # positions one evaluation computes
    eval_scored: float = 0.0  # positions one evaluation's LM head projects
    saves: int = 0  # checkpoints written during the run
    max_tokens_per_pass: int | None = None  # the worker's pass plan on a CPU (plan_passes): None runs batches whole


def workload(
    shape: ModelShape,
    tokens: TokenStats,
    *,
    train_rows: int,
    validation_rows: int,
    steps: int,
    rows_seen: int,
    evaluations: int,
    saves: int,
    micro_batch: int,
    grad_accum: int = 1,
    max_length: int,
    grouped: bool = True,
    packing: bool = False,
    labelled_only: bool = True,
    dtype: str = "fp32",
    technique: str = "lora",
    lora_r: int = 8,
    gradient_checkpointing: bool = False,
    devices: int = 1,
    strategy: str = "ddp",
    max_tokens_per_pass: int | None = None,
) -> Workload:
    """A run over a dataset with these token statistics (steps, evaluations and saves from RunConfig.schedule)."""
    seen = batches(
        tokens,
        rows=train_rows,
        batch=micro_batch * devices,
        max_length=max_length,
        rows_seen=rows_seen,
        grouped=grouped,
        packing=packing,
    )
    labelled = tokens.labelled_fraction if labelled_only else 1.0
    evaluation = (
        batches(tokens, rows=validation_rows, batch=micro_batch, max_length=max_length, grouped=False, packing=False)
        if validation_rows
        else None
    )
    return Workload(
        shape,
        check_technique(technique),
        int(lora_r),
        dtype,
        int(micro_batch),
        int(grad_accum),
        int(devices),
        strategy,
        bool(gradient_checkpointing),
        int(steps),
        seen.real_per_row * rows_seen,
        seen.padded_per_row * rows_seen,
        seen.real_per_row * rows_seen * labelled,
        seen.mean_padded_length,
        seen.longest,
        labelled,
        int(evaluations) if evaluation else 0,
        evaluation.padded_per_row * validation_rows if evaluation else 0.0,
        evaluation.real_per_row * validation_rows * labelled if evaluation else 0.0,
        int(saves),
        int(max_tokens_per_pass) if max_tokens_per_pass else None,
    )


@dataclass
class RunCost:
    workload: Workload
    device: Device
    memory: Memory
    flops: float  # training steps
    eval_flops: float  # all evaluations
    efficiency: float
    efficiency_note: str
    tokens_per_s: float | None  # real tokens per second while training steps run
    seconds: dict  # start, warmup, train, evaluation, checkpoints, end
    cost_usd: float
    speed_measured_here: bool = False  # the speed comes from this CPU's own measured step (`efficiency_for`)

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    @property
    def fits(self) -> bool:
        return fits_in(self.memory.total, self.device.memory_gib)

    def as_dict(self) -> dict:
        return {
            "memory_gib": round(self.memory.total, 3),
            "memory_parts_gib": self.memory.as_dict()["parts_gib"],
            "memory_available_gib": self.device.memory_gib,
            "fits": self.fits,
            "flops": self.flops,
            "eval_flops": self.eval_flops,
            "peak_tflops": self.device.peak_tflops,
            "dtype": self.workload.dtype,
            "efficiency": round(self.efficiency, 4),
            "efficiency_source": self.efficiency_note,
            "tokens_per_s": round(self.tokens_per_s, 2) if self.tokens_per_s else None,
            "seconds": {key: round(value, 1) for key, value in self.seconds.items()},
            "total_seconds": round(self.total_seconds, 1),
            "cost_usd": round(self.cost_usd, 4),
            "speed_measured_here": self.speed_measured_here,
        }


def measured_step_flops(shape: ModelShape) -> float:
    """FLOPs of one step of the precision measurement (studio.models.precision_probe): a rank-8 LoRA on every
    linear layer, MEASURE_BATCH rows of MEASURE_LENGTH tokens, the LM head on the answer half plus one."""
    length = precision_probe.MEASURE_LENGTH
    scored = (length // 2 + 1) / length
    per_position = train_flops_per_token(
        shape, "lora", adapter=lora_params(shape, 8), length=length, scored_fraction=scored
    )
    return per_position * precision_probe.MEASURE_BATCH * length


def measured_step_rate(shape: ModelShape, dtype: str, measured) -> float | None:
    """FLOP/s of this CPU's measured LoRA step of `shape` in `dtype` (a precision.CpuMeasurement), or None when
    no such step was timed quietly (bf16 ruled out by its matmuls, a busy measurement, an unknown shape)."""
    if measured is None or measured.busy or not measured.steps_timed or not shape.complete:
        return None
    seconds = {"fp32": measured.fp32_step_s, "bf16": measured.bf16_step_s}.get(dtype) or 0.0
    return measured_step_flops(shape) / seconds if seconds > 0 else None


def step_scaling(device: Device, dtype: str, cal: Calibration, step_rate: float | None) -> float | None:
    """How this CPU's measured step did against the calibration CPU's, as shares of their peaks; None when
    either is missing (bench/cost.py records the calibration CPU's step only beside its run efficiency)."""
    reference_step = cal.cpu_measured_step_efficiency.get(dtype)
    if device.kind != "cpu" or not step_rate or not reference_step or device.peak_tflops <= 0:
        return None
    return step_rate / (device.peak_tflops * 1e12) / reference_step


def efficiency_for(
    device: Device,
    dtype: str,
    kind: str = "train",
    cal: Calibration | None = None,
    step_rate: float | None = None,
) -> tuple[float, str]:
    """Share of the device's peak a run reaches, and where that figure comes from.

    On this CPU with its own measured LoRA step (`step_rate`, FLOP/s), the calibrated efficiency is scaled by how
    that step did here against the calibration CPU: the share of the matmul peak a step reaches does not carry
    over between CPU kinds (a bf16 step reached 26 % of an AMD EPYC's peak and 8 % of an AMX Xeon's), while a run's
    speed relative to the same model's small step does much better."""
    cal = cal or calibration()
    if device.kind == "gpu" or device.efficiency is not None:
        return float(device.efficiency or UNKNOWN_GPU_EFFICIENCY), "assumed for this GPU (not measured)"
    value, measured = cal.cpu_efficiency(dtype, kind)
    scaling = step_scaling(device, dtype, cal, step_rate)
    if scaling:
        return value * scaling, (
            f"this CPU's own {dtype} LoRA step, measured at {step_rate / 1e9:,.0f} GFLOP/s, × "
            f"{value / cal.cpu_measured_step_efficiency[dtype]:.2f}: how much faster a run went than that step on "
            f"the calibration CPU ({cal.machine}, {cal.date or 'undated'})"
        )
    if measured:
        return value, f"calibrated {dtype} CPU efficiency ({cal.machine}, {cal.date or 'undated'})"
    return value, f"fp32 CPU efficiency borrowed: {dtype} not calibrated yet ({cal.machine})"


def estimate_run(load: Workload, device: Device, cal: Calibration | None = None, measured=None) -> RunCost:
    """Memory, FLOPs, time (start-up, warm-up, steps, evaluations, checkpoints, end) and money of a run.

    `measured`: this CPU's precision measurement of the run's model (precision.CpuMeasurement), when `device` is
    the CPU it was taken on: its timed step sets the speed (`efficiency_for`)."""
    cal = cal or calibration()
    shape = load.shape
    adapter = adapter_params(shape, load.technique, load.lora_r)
    positions = max(1.0, load.train_positions)
    per_position = train_flops_per_token(
        shape,
        load.technique,
        adapter=adapter,
        length=load.attention_length,
        scored_fraction=load.scored_tokens / positions,
        gradient_checkpointing=load.gradient_checkpointing,
    )
    flops = per_position * load.train_positions
    eval_per_position = forward_flops_per_token(
        shape, load.attention_length, load.eval_scored / max(1.0, load.eval_positions)
    )
    eval_flops = eval_per_position * load.eval_positions * load.evaluations
    memory = estimate_memory(
        shape,
        load.technique,
        dtype=load.dtype,
        micro_batch=load.micro_batch,
        length=load.longest,
        lora_r=load.lora_r,
        gradient_checkpointing=load.gradient_checkpointing,
        scored_fraction=load.scored_fraction_peak,
        kind=device.kind,
        devices=load.devices,
        strategy=load.strategy,
        max_tokens_per_pass=load.max_tokens_per_pass,
        calibration_=cal,
    )
    step_rate = measured_step_rate(shape, load.dtype, measured)
    efficiency, note = efficiency_for(device, load.dtype, "train", cal, step_rate)
    eval_efficiency, _ = efficiency_for(device, load.dtype, "eval", cal, step_rate)
    # Data parallel on GPUs: ~90 % scaling. CPU processes share the same cores: no faster than one process.
    scaling = 1.0 if load.devices == 1 or device.kind == "cpu" else 0.9 * load.devices
    rate = device.peak_tflops * 1e12 * scaling
    train = flops * TIME_OVERHEAD[load.technique] / (rate * efficiency) if rate else 0.0
    evaluation = eval_flops / (rate * eval_efficiency) if rate else 0.0
    sharded_weights = load.devices > 1 and "weights" in STRATEGY_SHARDS[load.strategy]
    weights_gib = memory.weights * (load.devices if sharded_weights else 1)  # one whole copy is read
    start = cal.start_seconds + max(0.0, weights_gib - BUNDLED_SHAPE.params * 4 / GIB) * LOAD_SECONDS_PER_GIB
    seconds = {
        "start": start,
        "warmup": cal.per_dtype("warmup_seconds", load.dtype)[0] if load.steps else 0.0,
        "train": train,
        "evaluation": evaluation,
        "checkpoints": cal.save_seconds * load.saves,
        "end": cal.end_seconds,
    }
    tokens_per_s = load.train_tokens / train if train > 0 else None
    hours = sum(seconds.values()) / 3600
    return RunCost(
        load,
        device,
        memory,
        flops,
        eval_flops,
        efficiency,
        note,
        tokens_per_s,
        seconds,
        hours * device.price_per_hour * load.devices,
        step_scaling(device, load.dtype, cal, step_rate) is not None,
    )


@dataclass(frozen=True)
class Fit:
    """Settings that give the same training (same effective batch and steps) in less memory."""

    micro_batch: int
    grad_accum: int
    gradient_checkpointing: bool
    memory_gib: float
    changes: tuple[str, ...]


def settings_that_fit(
    load: Workload, available_gib: float, cal: Calibration | None = None, kind: str = "cpu"
) -> Fit | None:
    """The largest micro-batch (then gradient checkpointing) whose peak fits in `available_gib`.

    The effective batch (micro-batch × accumulation) stays the same, so the optimizer sees the same batches'
    worth of examples per step and the same number of steps: the results are equivalent (the loss is
    normalised over the whole accumulated batch). None when nothing fits.

    The peak of each candidate is that of the passes the worker will run: the workload's pass plan holds for a
    smaller batch too (its token limit does not depend on the batch size), so a batch the plan already splits
    is only made smaller when one pass still does not fit; turning checkpointing on is an explicit setting, and
    the worker plans no passes then (whole micro-batches)."""
    cal = cal or calibration()
    effective = load.micro_batch * load.grad_accum

    def peak(micro: int, checkpointing: bool) -> float:
        planned = load.max_tokens_per_pass if checkpointing == load.gradient_checkpointing else None
        return estimate_memory(
            load.shape,
            load.technique,
            dtype=load.dtype,
            micro_batch=micro,
            length=load.longest,
            lora_r=load.lora_r,
            gradient_checkpointing=checkpointing,
            scored_fraction=load.scored_fraction_peak,
            kind=kind,
            devices=load.devices,
            strategy=load.strategy,
            max_tokens_per_pass=planned,
            calibration_=cal,
        ).total

    divisors = [d for d in range(load.micro_batch, 0, -1) if load.micro_batch % d == 0]
    for checkpointing in (load.gradient_checkpointing,) if load.gradient_checkpointing else (False, True):
        for micro in divisors:
            needed = peak(micro, checkpointing)
            if fits_in(needed, available_gib):
                changes = []
                if micro != load.micro_batch:
                    changes.append(
                        f"batch size {load.micro_batch} → {micro} with gradient accumulation "
                        f"{load.grad_accum} → {effective // micro} (same effective batch of {effective})"
                    )
                if checkpointing != load.gradient_checkpointing:
                    changes.append("gradient checkpointing on (recomputes activations: about a third more compute)")
                return Fit(micro, effective // micro, checkpointing, needed, tuple(changes))
    return None
