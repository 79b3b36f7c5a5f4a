"""Preflight: what a run will cost before it starts — steps, tokens, time on this hardware, memory.

Blocking errors (the run cannot work: invalid settings, no dataset, not enough memory even with the settings
below, QLoRA where it cannot run, the trainer busy, a ZeroGPU Space) are separated from warnings (it will run, but
probably not as you want: truncation, no validation split, very long, overfitting risk). Only errors block
Start; warnings are shown with the started run.

Every figure comes from the one cost model (studio.models.cost): memory in GiB from its parts, time from
start-up, warm-up, training steps, the evaluations and checkpoints the run's schedule makes, and the end.
Throughput comes, in order of trust, from (1) this machine's earlier run of the same model (its training
tokens/s), (2) the measured matmul peak of this CPU (or the GPU's datasheet peak) × the calibrated
efficiency. When the run would not fit in memory, preflight picks a smaller micro-batch with more gradient
accumulation (same effective batch) or gradient checkpointing, says so, and `Preflight.config` is what runs.

Also home of the small dataset adapter used by the Train tab (`list_datasets`, `read_manifest`, uploads).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from studio import access, escape, paths
from studio.data import pipeline
from studio.data import store as data_store
from studio.data.stats import suggested_max_length
from studio.errors import StudioError
from studio.models import catalog, cost, precision, precision_probe, templates
from studio.models import hardware as hardware_module
from studio.train import distributed, store, supervisor
from studio.train.config import RunConfig, field_label
from studio.units import format_duration

# ---------------------------------------------------------------- datasets (adapter over studio.data.store)


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of a saved dataset folder with "path" added, or None when it is not one."""
    return data_store.read_manifest(folder)


def list_datasets() -> list[dict[str, Any]]:
    """Every saved dataset (manifest dicts with "path"), newest first."""
    return data_store.list_datasets()


def dataset_label(manifest: dict[str, Any]) -> str:
    counts = manifest.get("counts") or {}
    name = manifest.get("name") or Path(manifest.get("path", "")).name
    created = str(manifest.get("created_at", ""))[:16].replace("T", " ")
    return f"{name} — {counts.get('train', '?')} train / {counts.get('validation', '?')} validation rows · {created}"


def dataset_from_upload(file_path: str | os.PathLike, seed: int = 42, owner: str = "") -> tuple[Path, str]:
    """Save an uploaded chat file as a dataset through the Data pipeline (refused while it has errors).

    Returns the folder and a Markdown summary. The uploaded name only ever appears sanitised."""
    folder = pipeline.save_file(Path(file_path), seed=seed, owner=owner or _current_owner())
    manifest = data_store.read_manifest(folder) or {}
    counts = manifest.get("counts") or {}
    name = manifest.get("name") or folder.name
    summary = (
        f"✅ **{escape.md_inline(name)}**: no errors; saved as a dataset with {counts.get('train', 0)} training "
        f"and {counts.get('validation', 0)} validation rows. For token statistics and fixes, use the Data tab."
    )
    return folder, summary


def _current_owner() -> str:
    return access.current().user_id or access.LOCAL_OWNER


# ---------------------------------------------------------------- throughput


def measured_rate(config: RunConfig, runs=None) -> tuple[float, str] | None:
    """Training tokens/s of the newest earlier run of this model on this machine (same technique and processes, same
    batch size and max length when it recorded them), with the run it came from: the status's figure over the
    training steps only (what a finished run writes), else the median of its per-step rates. Evaluations and
    checkpoints are counted apart."""
    if runs is None:
        try:
            runs = store.list_runs()
        except OSError:  # an unreadable runs folder: history is only a better estimate
            return None
    identity = access.current()
    for record in runs:
        if not access.can_see(identity, record):  # public mode: no other visitor's run is read or named
            continue
        earlier = record.config
        if earlier.get("model") != config.model or any(
            earlier.get(name) not in (None, getattr(config, name)) for name in ("batch_size", "max_length")
        ):
            continue
        if RunConfig.from_dict(earlier).technique() != config.technique() or (earlier.get("processes") or 0) != (
            config.processes or 0
        ):
            continue  # full fine-tuning or several processes run at other speeds
        label = earlier.get("name") or record.run_id
        rate = record.status.get("tokens_per_s")
        if isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0:
            return float(rate), label
        rates = [
            float(event["tokens_per_s"])
            for event in store.read_events(record.dir)[0]
            if isinstance(event.get("tokens_per_s"), (int, float))
            and event["tokens_per_s"] > 0
            and math.isfinite(event["tokens_per_s"])
        ]
        if len(rates) >= 2:
            return statistics.median(rates[1:]), label  # the first step warms up
    return None


# ---------------------------------------------------------------- the report


@dataclass
class Check:
    severity: str  # "error" | "warning"
    message: str
    hint: str = ""
    field: str | None = None  # the form field it is about, when there is one


TIME_PARTS = (
    ("setup", "installing the pinned packages and fetching the inputs (a Jobs guess)"),
    ("start", "start-up"),
    ("precision", "measuring the CPU's bf16 speed (once per machine)"),
    ("warmup", "warm-up"),
    ("train", "training steps"),
    ("evaluation", "evaluations"),
    ("checkpoints", "checkpoints"),
    ("end", "saving the adapter"),
)


@dataclass
class Preflight:
    steps: int | None = None
    steps_per_epoch: int | None = None
    evaluations: int = 0
    checkpoints: int = 0
    tokens: int | None = None  # real (non-padding) tokens the run will process
    processed_tokens: int | None = None  # including padding
    tokens_per_s: float | None = None  # real tokens per second while training steps run
    rate_source: str = ""
    time_caveat: str = ""  # why the time is rougher than the usual margin (a CPU unlike the calibration's)
    seconds: float | None = None  # the whole run, launch to the saved adapter
    time_parts: dict[str, float] = field(default_factory=dict)  # seconds by TIME_PARTS key
    memory_needed_gib: float | None = None  # peak of the worker process (RSS on a CPU, GPU memory on a GPU)
    memory_parts_gib: dict[str, float] = field(default_factory=dict)
    memory_available_gib: float | None = None
    memory_kind: str = "RAM"
    dtype: str = "fp32"
    precision: Any = None  # studio.models.precision.Precision: what the worker will train in (dtype is its name)
    params: int | None = None
    lora_params: int | None = None
    learning_rate: float | None = None
    learning_rate_auto: bool = False
    device: str = "CPU"
    processes: str = "one process"  # studio.train.distributed.describe
    checks: list[Check] = field(default_factory=list)
    field_errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # facts about the estimate itself; never block or warn
    pass_plan: cost.PassPlan | None = None  # how the worker will run each batch (CPU, checkpointing automatic)
    adjustments: list[str] = field(default_factory=list)  # settings preflight changed so the run fits in memory
    config: RunConfig | None = None  # what will run: the form's settings with the adjustments applied
    cli_command: str = ""
    config_json: str = ""

    @property
    def errors(self) -> list[Check]:
        return [check for check in self.checks if check.severity == "error"]

    @property
    def warnings(self) -> list[Check]:
        return [check for check in self.checks if check.severity == "warning"]

    @property
    def blocking(self) -> bool:
        return bool(self.errors)

    def error(self, message: str, hint: str = "", field_name: str | None = None) -> None:
        self.checks.append(Check("error", message, hint, field_name))

    def warn(self, message: str, hint: str = "", field_name: str | None = None) -> None:
        self.checks.append(Check("warning", message, hint, field_name))

    def time_breakdown(self) -> str:
        """ "start-up 15 s, training steps 3 min 10 s, 5 evaluations 1 min 30 s, …"."""
        counted = {"evaluation": self.evaluations, "checkpoints": self.checkpoints}
        parts = []
        for key, label in TIME_PARTS:
            value = self.time_parts.get(key, 0.0)
            if value >= 0.5:
                parts.append(f"{str(counted[key]) + ' ' if counted.get(key) else ''}{label} {format_duration(value)}")
        return ", ".join(parts)

    def summary_rows(self) -> list[tuple[str, str]]:
        def number(value) -> str:
            return f"{value:,}" if isinstance(value, int) else "—"

        steps = number(self.steps) + (f" ({number(self.steps_per_epoch)} per epoch)" if self.steps_per_epoch else "")
        tokens = number(self.tokens) + (
            f" ({number(self.processed_tokens)} with padding)"
            if self.processed_tokens and self.processed_tokens != self.tokens
            else ""
        )
        speed = (
            f"about {self.tokens_per_s:,.0f} tokens/s in {self.dtype} on {self.device} ({self.rate_source})"
            if self.tokens_per_s
            else "unknown"
        )
        memory = (
            f"about {self.memory_needed_gib:.1f} GiB at the peak of {self.memory_available_gib:.1f} GiB "
            f"{self.memory_kind} available (estimate ±15 %)"
            if self.memory_needed_gib is not None and self.memory_available_gib is not None
            else "unknown"
        )
        time = "unknown"
        if self.seconds is not None:
            # bench/cost.py check (2-core AMX Xeon, 2026-12-03): time -20 % … +17 %, memory -15 % … +22 %
            margin = f"a rough estimate: {self.time_caveat}" if self.time_caveat else "estimate ±30 %"
            time = f"about {format_duration(self.seconds)} ({margin}; longer when other work shares the machine)"
            if self.time_parts:
                time += f": {self.time_breakdown()}"
        rows = [
            ("Estimated time", time),
            ("Steps", steps),
            ("Tokens to process", tokens),
            ("Memory", memory),
            ("Speed", speed),
        ]
        if self.processes != "one process":
            rows.append(("Processes", f"{self.processes}; started by accelerate launch with the run's accelerate.json"))
        if self.precision is not None:
            rows.append(("Precision", self.precision.summary()))
        if self.params:
            technique = cost.TECHNIQUE_LABELS.get(self.config.technique(), "LoRA") if self.config else "LoRA"
            trainable = f", {self.lora_params / 1e6:.2f} M trainable ({technique})" if self.lora_params else ""
            if self.config and self.config.full_finetune:
                trainable = ", every one trainable (full fine-tuning)"
            rows.append(("Model size", f"{self.params / 1e6:,.0f} M parameters{trainable}"))
        if self.learning_rate:
            how = " (automatic for this model's size)" if self.learning_rate_auto else ""
            rows.append(("Learning rate", f"{self.learning_rate:g}{how}"))
        return rows

    def markdown(self) -> str:
        md = escape.md_inline  # values and messages name the user's model, dataset and rows
        lines = [f"- **{md(name)}:** {md(value)}" for name, value in self.summary_rows()]
        if self.adjustments:
            lines.append("\n**Changed so the run fits in memory** (same effective batch, same results):")
            lines += [f"- {md(change)}" for change in self.adjustments]
        lines += [f"\n*{md(note)}*" for note in self.notes]
        if self.errors:
            lines.append("\n**Must fix before starting:**")
            lines += [f"- ✕ **{md(c.message)}**" + (f" — {md(c.hint)}" if c.hint else "") for c in self.errors]
        if self.warnings:
            lines.append("\n**Worth a look (they do not stop the run):**")
            lines += [f"- ⚠ {md(c.message)}" + (f" — *{md(c.hint)}*" if c.hint else "") for c in self.warnings]
        if not self.checks:
            lines.append("\n✓ **Ready to start.**")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """Everything `train --dry-run --json` prints."""
        return {
            "ready": not self.blocking,
            "device": self.device,
            "processes": self.processes,
            "dtype": self.dtype,
            "seconds": round(self.seconds, 1) if self.seconds is not None else None,
            "time_parts_s": {key: round(value, 1) for key, value in self.time_parts.items()},
            "steps": self.steps,
            "steps_per_epoch": self.steps_per_epoch,
            "evaluations": self.evaluations,
            "checkpoints": self.checkpoints,
            "tokens": self.tokens,
            "processed_tokens": self.processed_tokens,
            "tokens_per_s": round(self.tokens_per_s, 2) if self.tokens_per_s else None,
            "rate_source": self.rate_source,
            "time_caveat": self.time_caveat,
            "memory_gib": round(self.memory_needed_gib, 3) if self.memory_needed_gib is not None else None,
            "memory_parts_gib": self.memory_parts_gib,
            "memory_available_gib": round(self.memory_available_gib, 3) if self.memory_available_gib else None,
            "memory_kind": self.memory_kind,
            "params": self.params,
            "lora_params": self.lora_params,
            "learning_rate": self.learning_rate,
            "learning_rate_auto": self.learning_rate_auto,
            "errors": [asdict_check(c) for c in self.errors],
            "warnings": [asdict_check(c) for c in self.warnings],
            "notes": self.notes,
            "adjustments": self.adjustments,
            "pass_plan": dataclasses.asdict(self.pass_plan) if self.pass_plan else None,
            "config": self.config.to_dict() if self.config is not None else None,
            "cli_command": self.cli_command,
        }


def asdict_check(check: Check) -> dict[str, Any]:
    return {"message": check.message, "hint": check.hint, "field": check.field}


def rough_token_stats(dataset_folder: Path, limit: int = 2000) -> cost.TokenStats | None:
    """No token statistics in the manifest: about 4 characters per token over the first rows."""
    lengths = []
    try:
        with open(dataset_folder / "train.jsonl", encoding="utf-8") as handle:
            for index, line in enumerate(handle):
                if index >= limit:
                    break
                try:
                    messages = json.loads(line).get("messages") or []
                except (ValueError, AttributeError):
                    continue
                chars = sum(len(str(m.get("content") or "")) + 12 for m in messages if isinstance(m, dict))
                lengths.append(max(1, chars // 4))
    except OSError:
        return None
    if not lengths:
        return None
    ordered = sorted(lengths)

    def pct(q):
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]

    # Assistant-only loss labels the answers: about half the tokens of a typical chat row.
    return cost.TokenStats(sum(ordered) / len(ordered), pct(50), pct(95), pct(99), ordered[-1], 0.5, rough=True)


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def available_ram_gib() -> float:
    import psutil

    return psutil.virtual_memory().available / cost.GIB


def qlora_reason(hardware) -> str | None:
    """Why 4-bit QLoRA is not available here (None when it is)."""
    return hardware_module.four_bit_reason(hardware.kind)


def zero_gpu_message() -> str | None:
    if not os.environ.get("SPACES_ZERO_GPU"):
        return None
    return (
        "This Space runs on ZeroGPU, which lends a GPU for a few minutes per call and cannot run a training job. "
        "In the Space settings pick dedicated hardware — e.g. 'Nvidia T4 small' for models up to ~1B "
        "parameters, 'L4' or 'A10G' for larger ones (or 'CPU upgrade' for the bundled model) — or train locally "
        "and upload the adapter. The Compare tab works on ZeroGPU."
    )


def run_preflight(
    config: RunConfig,
    hardware=None,
    manifest: dict[str, Any] | None = None,
    runs=None,
    check_busy: bool = True,
    cpu_gflops: float | None = None,
    available_gib: float | None = None,
    cpu_elsewhere: bool = False,
) -> Preflight:
    """Everything the Start button needs to know. `cpu_gflops` and `available_gib` replace this machine's
    measured matmul peak and free memory (tests, and `--dry-run` for another machine); `cpu_elsewhere`: the run
    trains on another machine's CPU (a Jobs flavour), where this CPU's bf16 measurement says nothing."""
    report = Preflight(config=config)
    report.field_errors = config.validate()
    for name, text in report.field_errors.items():
        label = field_label(name)
        report.error(f"{_capitalized(label)}: {text}.", f"Change {label} in the settings, then check again.", name)

    zero_gpu = zero_gpu_message()
    if zero_gpu:
        report.error("ZeroGPU cannot train.", zero_gpu)

    hardware = hardware or hardware_module.detect_quick()
    gpu = hardware.gpus[0] if hardware.kind == "cuda" and hardware.gpus else None
    report.device = f"{len(hardware.gpus)} × {gpu.name}" if gpu else f"CPU ({hardware.cpu_cores} cores)"

    shape = _check_model(config, report)
    report.precision = expected_precision(config, hardware, cpu_elsewhere)
    manifest = (
        manifest if manifest is not None else (read_manifest(config.dataset) if str(config.dataset).strip() else None)
    )
    train_rows, validation_rows, tokens = _check_dataset(config, manifest, report)

    numbers_ok = not any(
        name in report.field_errors
        for name in ("batch_size", "grad_accum", "epochs", "max_steps", "max_length", "lora_r")
    )
    if train_rows and numbers_ok:
        if config.epochs and config.epochs > 5 and not config.max_steps and train_rows < 1000:
            report.warn(
                f"{config.epochs:g} epochs over {train_rows} rows risks overfitting.",
                "Watch the eval loss; the best checkpoint is marked on the chart.",
                "epochs",
            )
        _estimate(
            config, report, hardware, gpu, shape, tokens, train_rows, validation_rows, runs, cpu_gflops, available_gib
        )
    config = report.config
    try:
        report.cli_command = config.to_cli_command()
    except Exception:  # noqa: BLE001 - an invalid value may not print; the field errors say why
        report.cli_command = ""
    report.config_json = config.to_json()

    # hardware features
    gpus = len(hardware.gpus) if gpu else 0
    report.processes = distributed.describe(config, gpus)
    cannot = distributed.problem(config, gpus)
    if cannot:
        report.error(*cannot, "processes" if "processes need" in cannot[0] else "strategy")
    if getattr(config, "qlora_4bit", False):
        reason = qlora_reason(hardware)
        if reason:
            report.error(reason, "Turn QLoRA 4-bit off (LoRA in full precision works everywhere).", "qlora_4bit")
    try:
        free = shutil.disk_usage(paths.runs_dir()).free / cost.GIB
        if free < 1.0:
            report.error(f"Only {free:.2f} GiB of disk left for checkpoints.", "Delete old runs or free disk space.")
        elif free < 5.0:
            report.warn(
                f"Only {free:.1f} GiB of disk left; checkpoints may fill it.", "Delete old runs you no longer need."
            )
    except OSError:
        pass
    if check_busy:
        current = supervisor.busy()
        if current is not None:
            report.error(current.message, "Wait for it to finish, or stop it (its owner or the admin can).")
    if (
        isinstance(config.learning_rate, (int, float))
        and config.learning_rate > 1e-3
        and "learning_rate" not in report.field_errors
    ):
        report.warn(
            f"Learning rate {config.learning_rate:g} is high for LoRA; the loss may jump or become NaN.",
            "1e-4 to 5e-4 is the usual range.",
            "learning_rate",
        )
    if not getattr(config, "assistant_only_loss", True):
        report.warn(
            "The loss is computed on the whole conversation (prompts too), not only the answers.",
            "Fine for plain-text data; for chat data 'assistant-only loss' usually learns the answers better.",
        )
    elif "model" not in report.field_errors:
        chat_template_checks(report, config, manifest)
    return report


def chat_template_checks(report: Preflight, config, manifest: dict[str, Any] | None) -> None:
    """Say before the run what the worker will decide about the chat template (studio.models.templates)."""
    dataset = str(manifest.get("path") or config.dataset) if manifest else ""
    choice = templates.preflight_choice(str(config.model), dataset, bool(getattr(config, "trust_remote_code", False)))
    if choice is None:
        try:
            if catalog.classify(str(config.model)) == "bundled":
                return  # converted on first use; its ChatML template is one the studio marks (tested)
        except StudioError:
            return  # not a model reference at all: the model check above already says so
        report.notes.append(
            "The chat template is checked when the run starts (the model is not on disk yet): "
            "if it cannot mark the answers, the run says so and trains on whole conversations."
        )
        return
    if not choice.enabled:
        report.warn(
            "Assistant-only loss is not possible with this model's chat template: the run will train on the "
            "whole conversation, prompts included.",
            _capitalized(choice.note) + ". Pick a model of a supported family, or turn "
            "'assistant-only loss' off to train on whole conversations knowingly.",
            "assistant_only_loss",
        )
    for note in choice.notes:
        report.notes.append(_capitalized(note) + ".")


def _check_model(config: RunConfig, report: Preflight) -> cost.ModelShape:
    """The model's shape (from its config.json without loading it); errors for a model that cannot load."""
    shape = cost.ModelShape(str(config.model), None, known=False, source="unknown")
    try:
        kind = catalog.classify(str(config.model))
        if kind == "hub" and os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
            shape = cost.model_shape(str(config.model))
            if shape.source != "config":
                report.error(
                    f"'{config.model}' would be downloaded from the Hub, but the studio is offline.",
                    "Pick the bundled model or a local model folder.",
                    "model",
                )
        elif kind == "local" and not (Path(config.model).expanduser() / "config.json").is_file():
            report.error(
                f"The folder {config.model} has no config.json, so it is not a model folder.",
                "Pick the folder that holds config.json and the weights.",
                "model",
            )
        else:
            shape = cost.model_shape(str(config.model))
    except StudioError as error:
        report.error(error.message, error.hint, "model")
    report.params = int(shape.params) if shape.params else None
    if shape.params and "lora_r" not in report.field_errors:
        report.lora_params = cost.adapter_params(shape, config.technique(), config.lora_r)
    report.learning_rate_auto = config.learning_rate is None
    if report.learning_rate_auto:  # the worker resolves it the same way from the loaded model
        report.learning_rate = config.learning_rate_for(shape.params)
    elif isinstance(config.learning_rate, (int, float)):
        report.learning_rate = config.learning_rate
    if getattr(config, "trust_remote_code", False):
        report.warn(
            "This model's own Python code will run (trust remote code is on).",
            "Only do this for models whose authors you trust.",
        )
    return shape


def _check_dataset(
    config: RunConfig, manifest: dict[str, Any] | None, report: Preflight
) -> tuple[int, int, cost.TokenStats | None]:
    """Train and validation rows and token statistics of the chosen dataset, with its warnings."""
    if not str(config.dataset).strip():
        if "dataset" not in report.field_errors:
            report.error("No dataset chosen.", "Pick a saved dataset, or upload a file.", "dataset")
        return 0, 0, None
    if manifest is None:
        report.error(
            f"'{config.dataset}' is not a saved dataset folder.",
            "Prepare and save the dataset in the Data tab first.",
            "dataset",
        )
        return 0, 0, None
    counts = manifest.get("counts") or {}
    train_rows = int(counts.get("train") or 0)
    validation_rows = int(counts.get("validation") or 0)
    if train_rows == 0:
        report.error(
            "The dataset has no training rows.", "Fix the dataset in the Data tab (all rows were rejected?).", "dataset"
        )
    elif train_rows < 20:
        report.warn(
            f"Only {train_rows} training rows: the model may learn little or memorise them.",
            "50–100+ varied examples usually work much better.",
        )
    if validation_rows == 0 and train_rows:
        report.warn(
            "No validation rows, so there will be no eval loss and no overfitting warning.",
            "Save the dataset again with a validation split in the Data tab.",
        )
    stats = manifest.get("stats") or {}
    tokens = cost.TokenStats.from_stats(stats) or rough_token_stats(Path(manifest["path"]))
    if tokens and tokens.rough:
        report.notes.append("This dataset has no token statistics: tokens are estimated at about 4 characters each.")
    if tokens and isinstance(config.max_length, int):
        if tokens.p99 > config.max_length:
            share = "more than 5 %" if tokens.p95 > config.max_length else "between 1 and 5 %"
            report.warn(
                f"Max length {config.max_length} cuts {share} of the examples (p99 is {int(tokens.p99)} tokens).",
                f"Raise max length to about {suggested_max_length(tokens.p99)} (costs memory and time).",
                "max_length",
            )
        elif tokens.max > config.max_length:
            report.warn(
                f"A few examples (under 1 %) are longer than max length {config.max_length} and will be cut.",
                "Usually fine; raise max length if their endings matter.",
            )
    if stats.get("model") and stats.get("model") != config.model and not (tokens and tokens.rough):
        report.notes.append(
            "The token counts were measured with another model's tokenizer, so these figures are "
            "approximate (the Data tab gives exact ones for this model)."
        )
    return train_rows, validation_rows, tokens


def this_device(hardware, gpu, dtype: str, cpu_gflops: float | None, available_gib: float | None) -> cost.Device:
    """The machine a run started here trains on, as the cost model's Device (memory: what is free now)."""
    if gpu:
        spec = cost.gpu_spec(gpu.name)
        return cost.Device(
            "this-gpu",
            gpu.name,
            "gpu",
            available_gib or gpu.memory_gb,
            spec.tflops if spec else 0.0,
            dtype,
            0.0,
            spec.efficiency if spec else cost.UNKNOWN_GPU_EFFICIENCY,
            dtype == "bf16",
        )
    peak = cpu_gflops / 1000 if cpu_gflops else cost.measure_peak(dtype)
    return cost.Device(
        cost.THIS_MACHINE,
        f"CPU ({hardware.cpu_cores} cores)",
        "cpu",
        available_gib if available_gib is not None else available_ram_gib(),
        peak,
        dtype,
        bf16=dtype == "bf16",
    )


def _estimate(
    config: RunConfig,
    report: Preflight,
    hardware,
    gpu,
    shape: cost.ModelShape,
    tokens: cost.TokenStats | None,
    train_rows: int,
    validation_rows: int,
    runs,
    cpu_gflops: float | None,
    available_gib: float | None,
) -> None:
    """Steps, tokens, time and memory from the cost model; smaller micro-batches or checkpointing when needed."""
    world = distributed.process_count(config, len(hardware.gpus) if gpu else 0)
    plan = config.schedule(train_rows, validation_rows, world)
    report.steps_per_epoch, report.steps = plan.steps_per_epoch, plan.steps
    report.evaluations, report.checkpoints = plan.evaluations, plan.saves
    if tokens is None or not shape.params:
        return
    report.dtype = report.precision.name
    checkpointing = config.gradient_checkpointing if config.gradient_checkpointing is not None else bool(gpu)
    # The passes the worker will run (same function, same inputs): the peak is that of one pass, not the batch.
    passes = report.pass_plan = config.pass_plan(shape, report.dtype, on_cpu=not gpu)
    if passes:
        checkpointing = passes.gradient_checkpointing
        if passes.note:
            report.notes.append(_capitalized(passes.note) + ".")
    device = this_device(hardware, gpu, report.dtype, cpu_gflops, available_gib)
    # This CPU's precision measurement of the model sets the speed (none for a GPU or another machine's CPU).
    measured_step = report.precision.measured if not gpu and report.precision is not None else None
    if world > 1 and not gpu:  # CPU processes share the machine's memory: each may use its share
        device = replace(device, memory_gib=device.memory_gib / world)
        report.notes.append(f"{world} CPU processes share the RAM: the memory shown is one process's, of 1/{world}.")
    report.memory_kind = "GPU memory" if gpu else "RAM"
    report.memory_available_gib = device.memory_gib
    load = config.workload(
        shape,
        tokens,
        train_rows,
        validation_rows,
        dtype=report.dtype,
        gradient_checkpointing=checkpointing,
        world_size=world,
        max_tokens_per_pass=passes.max_tokens_per_pass if passes else None,
    )
    estimate = cost.estimate_run(load, device, measured=measured_step)
    if not estimate.fits:
        fit = cost.settings_that_fit(load, device.memory_gib, kind=device.kind)
        if fit is None:
            report.error(
                f"Not enough memory: about {estimate.memory.total:.1f} GiB needed at the peak, "
                f"{device.memory_gib:.1f} GiB {report.memory_kind} available, even with a batch size of 1 "
                "and gradient checkpointing.",
                "Lower max length or use a smaller model"
                + ("" if config.qlora_4bit else ", or turn on QLoRA 4-bit (weights in about a quarter of the memory)")
                + ("." if gpu else ", or use a GPU."),
                "max_length",
            )
        else:
            # Checkpointing the fit turns on is set explicitly (the worker then plans no passes); the pass plan of
            # a smaller batch keeps the same token limit, so the worker's plan and this estimate stay the same.
            turned_on = fit.gradient_checkpointing and not checkpointing
            report.config = config.replace(
                batch_size=fit.micro_batch,
                grad_accum=fit.grad_accum,
                gradient_checkpointing=True if turned_on else config.gradient_checkpointing,
            )
            report.adjustments = [
                *fit.changes,
                f"needs about {estimate.memory.total:.1f} GiB as set, "
                f"{fit.memory_gib:.1f} GiB now, of {device.memory_gib:.1f} GiB {report.memory_kind} available",
            ]
            passes = report.pass_plan = report.config.pass_plan(shape, report.dtype, on_cpu=not gpu)
            load = report.config.workload(
                shape,
                tokens,
                train_rows,
                validation_rows,
                dtype=report.dtype,
                gradient_checkpointing=fit.gradient_checkpointing,
                world_size=world,
                max_tokens_per_pass=passes.max_tokens_per_pass if passes else None,
            )
            estimate = cost.estimate_run(load, device, measured=measured_step)
    report.tokens, report.processed_tokens = int(load.train_tokens), int(load.train_positions)
    report.memory_needed_gib = estimate.memory.total
    report.memory_parts_gib = estimate.memory.as_dict()["parts_gib"]
    if estimate.fits and estimate.memory.total > 0.8 * device.memory_gib * cost.USABLE_FRACTION:
        report.warn(
            f"Memory is tight: about {estimate.memory.total:.1f} GiB of {device.memory_gib:.1f} GiB.",
            "If other programs need memory too, lower the batch size or max length.",
            "batch_size",
        )
    measured = measured_rate(report.config, runs)
    time_parts = dict(estimate.seconds)
    if measured:
        report.tokens_per_s, run_name = measured
        time_parts["train"] = load.train_tokens / report.tokens_per_s
        report.rate_source = f"measured in your run '{run_name}'"
    else:
        report.tokens_per_s = estimate.tokens_per_s
        measured_here = estimate.speed_measured_here
        peak = (
            f"the {gpu.name}'s {device.peak_tflops:g} TFLOP/s"
            if gpu
            else f"this CPU's {device.peak_tflops * 1000:.0f} GFLOP/s {report.dtype} matmul peak"
            + ("" if cpu_gflops else ", measured now")
        )
        report.rate_source = (
            estimate.efficiency_note
            if measured_here
            else f"{peak} × {estimate.efficiency:.0%} ({estimate.efficiency_note})"
        )
        if not gpu and cpu_gflops is None and not measured_here:  # this CPU's peak, not its step or a Jobs flavour's
            report.time_caveat = cpu_unlike_calibration(device.peak_tflops * 1000, report.dtype, hardware.cpu_cores)
        load_average = _load_average()
        if not gpu and cpu_gflops is None and load_average is not None and load_average > hardware.cpu_cores:
            report.rate_source += (
                f"; the machine is busy (load {load_average:.0f} on {hardware.cpu_cores} cores), "
                "so expect it to be faster when it is quiet"
            )
    if not gpu and report.precision is not None and precision_probe.measures_first(report.precision):
        time_parts["precision"] = precision_probe.measuring_seconds(time_parts, load.train_positions)
    report.time_parts = time_parts
    report.seconds = sum(time_parts.values())
    if not gpu and report.seconds > 4 * 3600:
        report.warn(
            f"This run would take about {format_duration(report.seconds)} on this CPU.",
            "Set 'Max steps' for a short trial, use fewer epochs or a smaller max length, or a GPU.",
        )


# The share of the matmul peak a step reaches does not carry over between CPU kinds: the bundled model's bf16 step
# reached 26 % of a 423 GFLOP/s peak on an AMD EPYC with AVX512_BF16 (the calibration) and 8 % of a 2,710 GFLOP/s
# AMX peak on an Intel Xeon, where preflight said 30 s for a run of 61 s. Beyond this ratio the time is called rough.
CALIBRATION_PEAK_RATIO = 1.5


def _capitalized(text: str) -> str:
    """A clause as the start of a sentence ("LoRA rank" stays "LoRA rank", "max steps" becomes "Max steps")."""
    return text[:1].upper() + text[1:]


def cpu_unlike_calibration(peak_gflops: float, dtype: str, cores: int) -> str:
    """Why a CPU time estimate is rougher than usual, or "": this CPU's matmul peak far from what the calibration
    CPU would reach with as many cores."""
    calibrated = cost.calibration()
    reference = cost.reference_cpu_gflops(cores, dtype)
    if not reference or not peak_gflops:
        return ""
    ratio = peak_gflops / reference
    if 1 / CALIBRATION_PEAK_RATIO <= ratio <= CALIBRATION_PEAK_RATIO:
        return ""
    return (
        f"this CPU's {dtype} matmul peak per core is {ratio:.1f}x that of the CPU the speed was calibrated on "
        f"({calibrated.machine}), and the share of the peak a step reaches differs between CPU kinds, so this may "
        "be far off; a finished run here gives the next estimate its measured speed"
    )


def expected_precision(config: RunConfig, hardware, cpu_elsewhere: bool = False) -> Any:
    """The precision the worker will choose (studio.models.precision), from what is known without torch: the
    GPU of `hardware` (its compute capability from the cost model's table), else this CPU's cached measurement
    (another machine's CPU: unmeasured, the run measures it at start)."""
    forced = config.bf16 if isinstance(config.bf16, bool) else None
    gpu = hardware.gpus[0] if hardware.kind == "cuda" and hardware.gpus else None
    if gpu:
        spec = cost.gpu_spec(gpu.name)
        device = precision.Device("cuda", gpu.name, spec.capability if spec else None, gpu.memory_gb)
        return precision.decide(device, forced)
    if cpu_elsewhere:
        chosen = precision.decide(precision.Device("cpu"), forced)
        if forced is None:
            reason = "the job measures its CPU's bf16 speed at start and trains in bf16 only if it is clearly faster"
            chosen = replace(chosen, reason=reason)
        return chosen
    threads = (
        config.torch_threads
        if isinstance(config.torch_threads, int) and config.torch_threads > 0
        else hardware.cpu_cores
    )
    return precision_probe.expected_for_model(forced, str(config.model), threads)
