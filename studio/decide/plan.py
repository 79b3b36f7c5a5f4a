"""Everything the Decide tab shows, computed in one place: recommendation, technique, estimates, break-even.

The UI collects the form values into PlanInputs and renders the Plan; the CLI and the decision record
use the same functions, so the numbers are the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from studio.decide import checklist
from studio.decide import estimate as est
from studio.decide import technique as tech
from studio.errors import StudioError
from studio.models import catalog
from studio.models.hardware import bitsandbytes_installed
from studio.train.config import RunConfig

CUSTOM_MODEL = "Custom size"
AUTO = "auto"
DEFAULT_PRICE_PER_1K = 0.0025  # USD per 1k input tokens: $2.50 per million, a common hosted-model price
DEFAULT_TOKENS = 200_000.0
DEFAULT_EPOCHS = float(RunConfig.epochs)  # the Train tab's default, so "keep these settings" changes nothing


@dataclass
class PlanInputs:
    model: str = est.ARCHITECTURES[0].name  # a known architecture name, or CUSTOM_MODEL
    params: str = ""  # typed size for CUSTOM_MODEL, e.g. "7B"
    tokens: float = DEFAULT_TOKENS  # per epoch (overridden by the dataset when one is loaded)
    epochs: float = DEFAULT_EPOCHS
    technique: str = AUTO  # AUTO (the advisor's pick) or one of est.TECHNIQUES
    priority: str = "balanced"
    hardware: str = "t4"
    gpus: int = 1
    batch_size: int = RunConfig.batch_size  # the Train tab's defaults, so "keep these settings" changes nothing
    max_length: int = 1024
    lora_r: int = RunConfig.lora_r
    price_per_1k: float = DEFAULT_PRICE_PER_1K
    hosting_diff: float = 0.0  # extra USD per month to host the tuned model
    other_one_time: float = 0.0  # data preparation, evaluation (USD)
    use_dataset: bool = True
    include_this_machine: bool = True


@dataclass
class Plan:
    inputs: PlanInputs
    recommendation: checklist.Recommendation
    arch: est.Architecture
    params: float
    dataset: dict | None  # est.stats_tokens() of the Data tab's dataset, when used
    dataset_label: str
    tokens: float
    max_length: int
    hardware: est.Hardware
    advice: tech.Advice
    technique: str  # the technique the estimate is for
    devices: int
    estimate: est.Estimate
    comparison: list[est.Estimate]
    break_even: est.BreakEven
    warnings: list[str] = field(default_factory=list)

    def train_prefill(self, dataset_folder: str | None = None) -> dict:
        """Settings for the Train tab (Shared.train_prefill)."""
        if self.arch.name == est.ARCHITECTURES[0].name:
            model = catalog.BUNDLED
        elif self.arch.known:
            model = self.arch.hub_id
        else:
            model = (self.dataset or {}).get("model")
        return {
            "model": model,
            "technique": self.technique,
            "epochs": _whole(self.inputs.epochs),
            "max_length": self.max_length,
            "lora_r": self.inputs.lora_r,
            "lora_alpha": 2 * self.inputs.lora_r,
            "use_dora": self.technique == "dora",
            "load_in_4bit": self.technique == "qlora",
            "batch_size": self.inputs.batch_size,
            "gradient_checkpointing": self.estimate.gradient_checkpointing,
            "devices": self.devices,
            "dataset": dataset_folder,
            "source": "decide",
        }


def _whole(number):
    number = float(number)
    return int(number) if number.is_integer() else number


def resolve_model(inputs: PlanInputs) -> tuple[est.Architecture, float]:
    if inputs.model and inputs.model != CUSTOM_MODEL:
        arch = est.find_architecture(inputs.model)
        if arch is None:
            raise StudioError(f"Unknown model '{inputs.model}'.", f"Pick one from the list or '{CUSTOM_MODEL}'.")
        return arch, arch.params
    if not str(inputs.params or "").strip():
        raise StudioError("Type the model size for a custom model.", "For example 7B, 1.5B or 350M.")
    params = est.parse_params(inputs.params)
    return est.generic_architecture(params), params


def dataset_label(stats: dict | None, name: str | None = None) -> str:
    numbers = est.stats_tokens(stats)
    if numbers is None:
        return "typed numbers (no dataset loaded in the Data tab)"
    rows = numbers["rows"]
    what = f"dataset “{name}”" if name else "the dataset loaded in the Data tab"
    parts = [
        f"{rows:,} rows" if isinstance(rows, int) else None,
        f"{numbers['tokens']:,.0f} tokens",
        f"max length {numbers['max_length']}",
        f"counted with {numbers['model']}" if numbers["model"] else None,
    ]
    return f"{what}: " + ", ".join(part for part in parts if part)


def compute(
    inputs: PlanInputs,
    answers: dict | None,
    stats: dict | None = None,
    dataset_name: str | None = None,
    counts: dict | None = None,
) -> Plan:
    """The plan; `stats` and `counts` are the Data tab's token statistics and the saved dataset's row counts."""
    recommendation = checklist.recommend(answers)
    arch, params = resolve_model(inputs)
    warnings = []
    numbers = est.stats_tokens(stats) if inputs.use_dataset else None
    dataset = est.dataset_numbers(stats, counts) if numbers else None
    if numbers:
        tokens, max_length = numbers["tokens"], numbers["max_length"]
        label = dataset_label(stats, dataset_name)
        counted_with = est.find_architecture(numbers["model"])
        if numbers["model"] and (counted_with is None or counted_with.name != arch.name):
            warnings.append(
                f"Token counts come from {numbers['model']}'s tokenizer; another model's tokenizer "
                "can count 10–30% differently."
            )
    else:
        tokens, max_length = float(inputs.tokens or 0), int(inputs.max_length or 0)
        label = dataset_label(None)
    hardware = est.find_hardware(inputs.hardware, arch, measure=inputs.include_this_machine)
    gpus = max(1, int(inputs.gpus or 1))
    if hardware.kind == "cpu":
        gpus = 1
    bitsandbytes = None
    if hardware.key == est.THIS_MACHINE:
        bitsandbytes = bitsandbytes_installed()
    # Memory peaks on the batch of the longest rows: max length, or the longest row when the data is shorter.
    peak_length = max(1, int(min(max_length, dataset.tokens.max) if dataset else max_length))
    advice = tech.advice_for_hardware(
        params,
        hardware,
        gpus=gpus,
        bitsandbytes=bitsandbytes,
        priority=inputs.priority,
        arch=arch,
        batch_size=int(inputs.batch_size),
        max_length=peak_length,
        lora_r=int(inputs.lora_r),
    )
    devices = 1
    if inputs.technique == AUTO:
        if advice.technique == "zero":
            technique, devices = advice.wraps, gpus
        elif advice.technique is None:
            technique = "lora" if "qlora" in advice.unavailable else "qlora"
        else:
            technique = advice.technique
    else:
        technique = est.check_technique(inputs.technique)
        if technique in advice.unavailable:
            warnings.append(f"{est.TECHNIQUE_LABELS[technique]} {advice.unavailable[technique]}.")
    common = dict(
        batch_size=int(inputs.batch_size), max_length=max_length, lora_r=int(inputs.lora_r), arch=arch, dataset=dataset
    )
    chosen = est.with_first_run_measurement(
        est.estimate(params, tokens, inputs.epochs, technique, hardware=hardware, devices=devices, **common)
    )
    if not chosen.fits:
        warnings.append(
            f"{est.TECHNIQUE_LABELS[technique]} needs {chosen.memory.total:.1f} GiB; "
            f"{hardware.label} has {hardware.memory_gib:.0f} GiB (plan for at most "
            f"{est.USABLE_FRACTION:.0%} of it)."
        )
    comparison = est.hardware_rows(
        params,
        tokens,
        inputs.epochs,
        technique,
        devices=devices,
        hardware=est.hardware_list(inputs.include_this_machine, arch),
        **common,
    )
    comparison = [est.with_first_run_measurement(row) for row in comparison]
    a = recommendation.answers
    one_time = chosen.cost_usd + float(inputs.other_one_time or 0)
    breakeven = est.break_even(
        a["tokens_saved"],
        a["requests_per_month"],
        float(inputs.price_per_1k or 0),
        one_time,
        float(inputs.hosting_diff or 0),
    )
    return Plan(
        inputs,
        recommendation,
        arch,
        params,
        numbers,
        label,
        tokens,
        max_length,
        hardware,
        advice,
        technique,
        devices,
        chosen,
        comparison,
        breakeven,
        warnings,
    )
