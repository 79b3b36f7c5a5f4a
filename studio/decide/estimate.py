"""The Decide tab's estimates: a planned run on each hardware, and when fine-tuning pays for itself.

Every figure of memory (GiB), FLOPs and time comes from the one cost model, studio.models.cost — the same one
the Train tab's preflight uses, so the same run gets the same numbers in both tabs. The run's steps,
evaluations and checkpoints come from RunConfig's schedule (the Train tab's defaults and the worker's rule).
This module adds what only Decide needs: the run described by typed numbers or the Data tab's statistics,
money, and the break-even. The names the Decide modules use (ARCHITECTURES, HARDWARE, …) are the cost
model's, under the names the tab has always used.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, replace

from studio.data.clean import DEFAULT_VALIDATION_FRACTION
from studio.errors import StudioError
from studio.models import cost, hardware, precision_probe
from studio.train.config import RunConfig

# The cost model's tables and helpers under the Decide tab's names.
Architecture = cost.ModelShape
ARCHITECTURES = cost.SHAPES
Hardware = cost.Device
HARDWARE = cost.SPACES
THIS_MACHINE = cost.THIS_MACHINE
PRICES_SOURCE = cost.PRICES_SOURCE
TECHNIQUES = cost.TECHNIQUES
TECHNIQUE_LABELS = cost.TECHNIQUE_LABELS
TIME_OVERHEAD = cost.TIME_OVERHEAD
USABLE_FRACTION = cost.USABLE_FRACTION
SHARDED_STRATEGY = cost.SHARDED_STRATEGY
DEFAULT_LORA_R = cost.DEFAULT_LORA_R
find_architecture = cost.find_shape
generic_architecture = cost.generic_shape
architecture_for = cost.shape_for
parse_params = cost.parse_params
format_params = cost.format_params
lora_params = cost.lora_params
adapter_params = cost.adapter_params
check_technique = cost.check_technique
fits_in = cost.fits_in
# Typed numbers without a dataset: rows average half the max length, and half of each row is the answer
# (the labelled part assistant-only loss trains on) — typical of chat data.
TYPED_ROW_SHARE_OF_MAX_LENGTH = 0.5
TYPED_LABELLED_FRACTION = 0.5


@functools.lru_cache(maxsize=4)
def measure_this_machine(dtype: str | None = None) -> cost.Device:
    """This machine, its matmul peak measured once per process and precision (by default fp32 on a CPU, the
    GPU's precision on CUDA)."""
    return cost.this_machine(dtype)


def local_precision(arch: cost.ModelShape | None):
    """The precision a run of `arch` will train in on this machine: the worker's decision, which on a CPU rests on
    its measurement of the model (cached once a run has made it; only the bundled model's shape is known here
    without a download). The Train tab's preflight asks the same function, so the two estimates agree."""
    model = "bundled" if arch is not None and arch.name == cost.BUNDLED_SHAPE.name else None
    return precision_probe.expected_for_model(None, model, hardware.cpu_cores())


def local_training_dtype(arch: cost.ModelShape | None) -> str | None:
    return local_precision(arch).name


def measured_step_here(device: cost.Device, arch: cost.ModelShape | None):
    """This CPU's precision measurement of `arch` when `device` is this CPU: its timed step sets the speed, as in
    preflight."""
    if device.key != THIS_MACHINE or device.kind != "cpu":
        return None
    return local_precision(arch).measured


def with_first_run_measurement(planned: Estimate) -> Estimate:
    """On this CPU, a first run measures fp32 against bf16 before it trains: its time counts, as in preflight."""
    if planned.hardware.key == THIS_MACHINE and planned.hardware.kind == "cpu":
        if precision_probe.measures_first(local_precision(planned.arch)):
            planned.run.seconds["precision"] = precision_probe.measuring_seconds(
                planned.run.seconds, planned.run.workload.train_positions
            )
    return planned


def default_hardware_key() -> str:
    """What the Decide tab starts on: the machine the studio runs on — its GPU's row when the table knows it
    (nvidia-smi, no torch), else "this machine"."""
    found = hardware.detect_quick()
    if found.gpus:
        spec = cost.gpu_spec(found.gpus[0].name)
        if spec is not None and spec.key in {item.key for item in HARDWARE}:
            return spec.key
    return THIS_MACHINE


def this_machine_measured() -> bool:
    return measure_this_machine.cache_info().currsize > 0


def reference_this_machine(dtype: str | None = None) -> cost.Device:
    """This CPU before it is measured: the calibration machine's matmul peak per core × this machine's cores
    (no torch at start-up). Said so in its label; measuring replaces it."""
    dtype = dtype or "fp32"
    device = cost.this_machine(dtype, peak_tflops=cost.reference_cpu_gflops(hardware.cpu_cores(), dtype) / 1000)
    return replace(
        device,
        label=f"This machine: {hardware.cpu_cores()} CPU cores (not measured yet: reference CPU speed)",
        note=f"{dtype} speed from the reference CPU per core until measured; own hardware, price 0",
    )


def this_machine_for(arch: cost.ModelShape | None, measure: bool = True) -> cost.Device:
    """This machine at the precision a run of `arch` trains in here; with measure=False and nothing measured
    yet, the reference estimate instead of a measurement."""
    if not measure and not this_machine_measured():
        found = hardware.detect_quick()
        spec = cost.gpu_spec(found.gpus[0].name) if found.gpus else None
        if spec is not None and spec.key in {item.key for item in HARDWARE}:
            return replace(cost.find_device(spec.key), key=THIS_MACHINE, price_per_hour=0.0)
        return reference_this_machine(local_training_dtype(arch))
    device = measure_this_machine()
    if device.kind != "cpu":
        return device
    return measure_this_machine(local_training_dtype(arch))


def hardware_list(include_this_machine: bool = False, arch: cost.ModelShape | None = None) -> list[cost.Device]:
    items = list(HARDWARE)
    if include_this_machine:
        items.insert(0, this_machine_for(arch))
    return items


def find_hardware(key: str, arch: cost.ModelShape | None = None, measure: bool = True) -> cost.Device:
    text = (key or "").strip().lower()
    if text in (THIS_MACHINE, "this", "local"):
        return this_machine_for(arch, measure)
    return cost.find_device(text)


def training_dtype(hardware: cost.Device) -> str:
    return hardware.dtype


def estimate_memory(
    params: float,
    technique: str,
    *,
    arch: cost.ModelShape | None = None,
    batch_size: int = 1,
    max_length: int = 1024,
    gradient_checkpointing: bool = True,
    lora_r: int = DEFAULT_LORA_R,
    dtype: str = "bf16",
    devices: int = 1,
    kind: str | None = None,
    max_tokens_per_pass: int | None = None,
) -> cost.Memory:
    """Peak memory (GiB) of one device for a batch of rows at max length (the worst batch a run meets);
    `max_tokens_per_pass`: the worker's pass plan on a CPU (cost.plan_passes)."""
    arch = arch or cost.shape_for(params)
    if arch.params != params:
        arch = replace(arch, params=params)
    return cost.estimate_memory(
        arch,
        technique,
        dtype=dtype,
        micro_batch=int(batch_size),
        length=int(max_length),
        lora_r=int(lora_r),
        gradient_checkpointing=gradient_checkpointing,
        kind=kind or ("cpu" if dtype == "fp32" else "gpu"),
        devices=int(devices),
        strategy=SHARDED_STRATEGY if int(devices) > 1 else "ddp",
        max_tokens_per_pass=max_tokens_per_pass,
    )


@dataclass(frozen=True)
class DatasetNumbers:
    """What the Decide tab knows of the data: tokens per row and how many rows train and validate."""

    tokens: cost.TokenStats
    train_rows: int
    validation_rows: int
    tokens_per_epoch: float  # real tokens of the training rows

    @classmethod
    def typed(cls, tokens_per_epoch: float, max_length: int) -> DatasetNumbers:
        mean = max(1.0, max_length * TYPED_ROW_SHARE_OF_MAX_LENGTH)
        stats = cost.TokenStats(mean, 0.9 * mean, 1.8 * mean, 2.0 * mean, 2.0 * mean, TYPED_LABELLED_FRACTION)
        train = max(1, round(tokens_per_epoch / mean))
        validation = max(1, round(train * DEFAULT_VALIDATION_FRACTION / (1 - DEFAULT_VALIDATION_FRACTION)))
        return cls(stats, train, validation, tokens_per_epoch)


# --- The whole estimate ------------------------------------------------------------------------------


@dataclass
class Estimate:
    technique: str
    params: float
    arch: cost.ModelShape
    tokens: float  # per epoch
    epochs: float
    hardware: cost.Device
    devices: int
    batch_size: int
    max_length: int
    gradient_checkpointing: bool
    lora_r: int
    dtype: str
    run: cost.RunCost

    @property
    def memory(self) -> cost.Memory:
        return self.run.memory

    @property
    def adapter_params(self) -> int:
        return cost.adapter_params(self.arch, self.technique, self.lora_r)

    @property
    def flops(self) -> float:
        return self.run.flops

    @property
    def hours(self) -> float:
        return self.run.total_seconds / 3600

    @property
    def train_hours(self) -> float:
        return self.run.seconds["train"] / 3600

    @property
    def cost_usd(self) -> float:
        return self.run.cost_usd

    @property
    def fits(self) -> bool:
        return cost.fits_in(self.memory.total, self.hardware.memory_gib)

    @property
    def unavailable(self) -> str | None:
        """Why this technique cannot run on this hardware at all, if it cannot."""
        if self.technique != "qlora":
            return None
        # Another row is a Space or a Linux machine running the studio: its requirements bring bitsandbytes.
        installed = None if self.hardware.key == THIS_MACHINE else True
        return hardware.four_bit_reason("cuda" if self.hardware.kind == "gpu" else self.hardware.kind, installed)

    @property
    def formula(self) -> str:
        return cost.flops_formula(self.technique, self.gradient_checkpointing)

    def as_dict(self) -> dict:
        return {
            "technique": self.technique,
            "params": self.params,
            "architecture": asdict(self.arch),
            "tokens_per_epoch": self.tokens,
            "epochs": self.epochs,
            "hardware": self.hardware.key,
            "hardware_label": self.hardware.label,
            "devices": self.devices,
            "batch_size": self.batch_size,
            "max_length": self.max_length,
            "gradient_checkpointing": self.gradient_checkpointing,
            "lora_r": self.lora_r,
            "dtype": self.dtype,
            "adapter_params": self.adapter_params,
            "trainable_params": self.params if self.technique == "full" else self.adapter_params,
            "memory_gib": round(self.memory.total, 3),
            "memory_breakdown_gib": self.memory.as_dict()["parts_gib"],
            "memory_notes": self.memory.notes,
            "available_memory_gib": self.hardware.memory_gib,
            "fits": self.fits,
            "unavailable": self.unavailable,
            "flops": self.flops,
            "flops_formula": self.formula,
            "time_overhead": TIME_OVERHEAD[self.technique],
            "peak_tflops": self.hardware.peak_tflops,
            "efficiency": self.run.efficiency,
            "efficiency_source": self.run.efficiency_note,
            "price_per_hour": self.hardware.price_per_hour,
            "seconds": self.run.as_dict()["seconds"],
            "tokens_per_s": self.run.as_dict()["tokens_per_s"],
            "hours": self.hours,
            "cost_usd": round(self.cost_usd, 4),
            "time_formula": (
                "seconds = start-up + warm-up + FLOPs × overhead / (peak × efficiency × devices) "
                "+ evaluations + checkpoints + end"
            ),
        }


def estimate(
    params: float,
    tokens: float,
    epochs: float,
    technique: str,
    *,
    hardware: str | cost.Device = "a10g",
    batch_size: int = 4,
    max_length: int = 1024,
    gradient_checkpointing: bool | None = None,
    lora_r: int = DEFAULT_LORA_R,
    arch: cost.ModelShape | None = None,
    devices: int = 1,
    dtype: str | None = None,
    dataset: DatasetNumbers | None = None,
) -> Estimate:
    """A planned run on one hardware. With `dataset` (the Data tab's statistics), the same run the Train tab's
    preflight estimates; with typed numbers, rows of a typical shape (see DatasetNumbers.typed)."""
    technique = check_technique(technique)
    device = hardware if isinstance(hardware, cost.Device) else find_hardware(hardware)
    for name, value in (("tokens", tokens), ("epochs", epochs)):
        if not value or value <= 0 or not math.isfinite(value):
            raise StudioError(
                f"The number of {name} must be above 0 (got {value}).",
                "Load a dataset in the Data tab, or type the token count and epochs.",
            )
    for name, value in (
        ("batch size", batch_size),
        ("max length", max_length),
        ("LoRA rank", lora_r),
        ("devices", devices),
    ):
        if int(value) < 1:
            raise StudioError(f"The {name} must be at least 1 (got {value}).", "Use a whole number of 1 or more.")
    arch = arch or cost.shape_for(params)
    if arch.params != params:
        arch = replace(arch, params=params)
    dtype = dtype or device.dtype
    if device.dtype != dtype:
        device = replace(device, dtype=dtype)
    numbers = dataset or DatasetNumbers.typed(tokens, int(max_length))
    config = RunConfig(
        epochs=float(epochs),
        batch_size=int(batch_size),
        max_length=int(max_length),
        lora_r=int(lora_r),
        use_dora=technique == "dora",
        qlora_4bit=technique == "qlora",
        gradient_checkpointing=gradient_checkpointing,
        strategy=SHARDED_STRATEGY if int(devices) > 1 else "ddp",
    )
    # Left automatic, a CPU worker plans its passes (micro-batches, checkpointing only when one row does not fit)
    # and a GPU checkpoints: the same plan as the Train tab's preflight.
    passes = config.pass_plan(arch, dtype, on_cpu=device.kind == "cpu")
    if gradient_checkpointing is None:
        gradient_checkpointing = passes.gradient_checkpointing if passes else device.kind == "gpu"
    load = config.workload(
        arch,
        numbers.tokens,
        numbers.train_rows,
        numbers.validation_rows,
        dtype=dtype,
        gradient_checkpointing=gradient_checkpointing,
        world_size=int(devices),
        technique=technique,
        max_tokens_per_pass=passes.max_tokens_per_pass if passes else None,
    )
    return Estimate(
        technique,
        params,
        arch,
        tokens,
        epochs,
        device,
        int(devices),
        int(batch_size),
        int(max_length),
        gradient_checkpointing,
        int(lora_r),
        dtype,
        cost.estimate_run(load, device, measured=measured_step_here(device, arch)),
    )


def stats_tokens(stats: dict | None) -> dict | None:
    """The numbers the estimators need from a Data-tab dataset's stats dict, or None."""
    if not isinstance(stats, dict):
        return None
    tokens = stats.get("tokens") or {}
    total = tokens.get("total")
    if not isinstance(total, (int, float)) or total <= 0:
        return None
    max_length = stats.get("suggested_max_length") or stats.get("max_length") or tokens.get("max") or 1024
    return {
        "tokens": float(total),
        "trainable": tokens.get("trainable"),
        "rows": stats.get("rows"),
        "max_length": int(max_length),
        "model": stats.get("model"),
    }


def dataset_numbers(stats: dict | None, counts: dict | None = None) -> DatasetNumbers | None:
    """The run's data from the Data tab's statistics and, once saved, the dataset's train/validation counts (else
    the Data tab's default split of the rows counted)."""
    tokens = cost.TokenStats.from_stats(stats)
    if tokens is None:
        return None
    counts = counts or {}
    if counts.get("train"):
        train, validation = int(counts["train"]), int(counts.get("validation") or 0)
    else:
        rows = int(stats["rows"])
        validation = round(rows * DEFAULT_VALIDATION_FRACTION) if rows >= 10 else 0
        train = rows - validation
    return DatasetNumbers(tokens, train, validation, tokens.mean * train)


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


def break_even(
    tokens_saved_per_request: float,
    requests_per_month: float,
    price_per_1k_tokens: float,
    one_time_cost: float,
    hosting_diff_per_month: float = 0.0,
    horizon_months: int | None = None,
) -> BreakEven:
    """saving/month = tokens saved per request × requests/month × price per 1k / 1000;
    months to break even = one-time cost / (saving/month − extra hosting/month)."""
    for name, value in (
        ("tokens saved per request", tokens_saved_per_request),
        ("requests per month", requests_per_month),
        ("price per 1k tokens", price_per_1k_tokens),
        ("one-time cost", one_time_cost),
    ):
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


def hardware_rows(
    params: float, tokens: float, epochs: float, technique: str, *, hardware: list[cost.Device], **kwargs
) -> list[Estimate]:
    """The same training job on every hardware in the list (precision and checkpointing follow each device;
    several devices only for GPUs)."""
    devices = kwargs.pop("devices", 1)
    return [
        estimate(
            params, tokens, epochs, technique, hardware=item, devices=devices if item.kind == "gpu" else 1, **kwargs
        )
        for item in hardware
    ]
