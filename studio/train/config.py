"""RunConfig: everything that defines a training run, validated, with a JSON round-trip.

The Train form, the CLI and the worker all speak RunConfig. `validate()` returns field-level
messages (field name -> message) so the UI can show them next to the inputs; `check()` raises
one StudioError listing them. `to_cli_command()` prints the exact equivalent CLI command: every
field has a flag (see FLAG_NAMES) and flags are emitted only for values that differ from the
defaults, which the CLI shares with this class.

"Auto" values: bf16 / gradient_checkpointing None = decided by the worker from the hardware
(off on CPU; bf16 on GPUs that support it); eval_steps / save_steps / logging_steps 0 = derived
from the total number of steps; torch_threads 0 = all cores available to the worker;
learning_rate None = suggested_learning_rate() for the model's size, resolved by the worker;
processes 0 = one per visible GPU (one on a CPU), resolved by studio.train.distributed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shlex
from dataclasses import dataclass, fields
from typing import Any

from studio.errors import StudioError
from studio.models import cost

DEFAULT_MODEL = (
    "bundled:SmolLM2-135M-Instruct"  # same as studio.models.catalog.BUNDLED (not imported: keeps this module light)
)
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")

# CLI flag for each field; fields not listed use --field-name-with-dashes.
FLAG_NAMES = {"dataset": "--data", "learning_rate": "--lr"}
# The automatic learning rate. Rank-8 adapters on small models need large steps: the bundled SmolLM2
# on the bundled sample (117 rows, 2 epochs, 30 steps) learns the whole "Ahoy! … — Captain Byte" style
# at 1e-3 (13/13 held-out answers) but only the opening at 1 epoch; at 2e-4 it barely moves. Models of a
# billion parameters and more get the usual LoRA rate: 1e-3 makes them unstable.
SMALL_MODEL_PARAMS = 1_000_000_000
SMALL_MODEL_LEARNING_RATE = 1e-3
LARGE_MODEL_LEARNING_RATE = 2e-4
# Full fine-tuning moves every weight: the usual SFT rates, far below LoRA's (1e-3 would wreck a model). Small
# models take the higher one (the bundled SmolLM2's own SFT used 3e-4 at a far larger batch).
SMALL_MODEL_FULL_LEARNING_RATE = 5e-5
LARGE_MODEL_FULL_LEARNING_RATE = 1e-5

MAX_PROCESSES = 64  # one machine's processes (a node has at most 8 or 16 GPUs; CPU test runs use 2)

# Fields the CLI never takes as flags: run_id is assigned by the store.
NOT_FLAGS = ("run_id",)


@dataclass
class RunConfig:
    run_id: str = ""
    name: str = ""
    model: str = DEFAULT_MODEL
    dataset: str = ""  # a saved dataset folder (train.jsonl + validation.jsonl + manifest.json)
    trust_remote_code: bool = False
    # schedule
    epochs: float = 2.0  # two passes: enough for a style on a small dataset (see SMALL_MODEL_LEARNING_RATE)
    max_steps: int | None = None  # overrides epochs when set
    learning_rate: float | None = None  # None = automatic: suggested_learning_rate(model size)
    warmup: float = 0.03  # < 1: fraction of the steps; >= 1: a number of steps
    scheduler: str = "cosine"
    weight_decay: float = 0.0
    seed: int = 42
    # LoRA
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0  # dropout costs an extra pass over every LoRA input; off by default on small data
    target_modules: str = "all-linear"  # or a comma-separated list such as "q_proj,v_proj"
    use_dora: bool = False
    # every weight trainable, no adapter: the run's output is a whole model (LoRA settings do not apply)
    full_finetune: bool = False
    # batches
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 512
    packing: bool = False
    # CPU defaults from bench/train.py on the bundled model + sample data (shared, contended machine):
    # length-grouped batches of 8: 32 tok/s vs 25 random (padding 89% vs 80% real tokens); batch 16: 23 tok/s;
    # packing (padding-free) was far slower on CPU (over 4 min/step, not finished). LoRA dropout 0 skips a pass.
    group_by_length: bool = True
    assistant_only_loss: bool = True
    # evaluation / checkpoints / logging (0 = automatic from the number of steps)
    eval_steps: int = 0
    save_steps: int = 0
    logging_steps: int = 0
    # hardware
    qlora_4bit: bool = False
    bf16: bool | None = None
    gradient_checkpointing: bool | None = None
    torch_threads: int = 0
    # several processes (studio.train.distributed): 0 = one per visible GPU, one on a CPU; more than 1 on a CPU runs
    # that many CPU processes (gloo), which tests the multi-process path rather than speeding anything up
    processes: int = 0
    strategy: str = "ddp"  # how the processes share the run: cost.STRATEGIES

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build from a dict (config.json, a form). Unknown keys are ignored; values are coerced
        to the field types where that is unambiguous ("8" -> 8, 8.0 -> 8); values that cannot be
        coerced are kept as given so that validate() reports them against their field."""
        known = {f.name: f for f in fields(cls)}
        values = {}
        for key, value in (data or {}).items():
            if key in known:
                values[key] = _coerce(value, _field_kind(known[key]))
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise StudioError(
                f"The run configuration is not valid JSON: {error.msg} (line {error.lineno}).",
                "Fix the JSON, or start from `python -m studio train --help`.",
            ) from error
        if not isinstance(data, dict):
            raise StudioError("The run configuration must be a JSON object.", 'Use {"model": ..., "dataset": ...}.')
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def replace(self, **changes) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def learning_rate_for(self, params: int | float | None) -> float:
        """The rate a run uses: the one set, else the automatic one for a model of `params` parameters."""
        return self.learning_rate or suggested_learning_rate(params, self.full_finetune)

    # ---- schedule and cost --------------------------------------------------------------
    def total_steps(self, train_rows: int, world_size: int = 1) -> int:
        """Optimizer steps, as the HF Trainer counts them."""
        if self.max_steps:
            return self.max_steps
        return max(1, math.ceil(self.steps_per_epoch(train_rows, world_size) * self.epochs))

    def steps_per_epoch(self, train_rows: int, world_size: int = 1) -> int:
        batches = math.ceil(train_rows / (self.batch_size * world_size)) if train_rows else 0
        return max(1, math.ceil(batches / self.grad_accum)) if batches else 0

    def intervals(self, total_steps: int, has_eval: bool) -> tuple[int, int, int]:
        """Logging, evaluation and checkpoint intervals in steps; 0 in the config means derived from the total."""
        logging = self.logging_steps or max(1, min(25, total_steps // 100))
        evaluate = self.eval_steps or max(1, math.ceil(total_steps / 5))  # about 5 evaluations per run
        save = self.save_steps or (evaluate if has_eval else max(1, math.ceil(total_steps / 5)))
        return logging, evaluate, save

    def schedule(self, train_rows: int, validation_rows: int, world_size: int = 1) -> Schedule:
        """Steps, evaluations and checkpoints of this run over a dataset of that many rows (what the worker does:
        the Trainer evaluates and saves every interval and at the last step; the worker evaluates at the end
        when the last step had no evaluation)."""
        steps = self.total_steps(train_rows, world_size) if train_rows else 0
        _, evaluate, save = self.intervals(steps, validation_rows > 0)
        evaluations = (steps // evaluate + (1 if steps % evaluate else 0)) if validation_rows and steps else 0
        saves = (steps // save + (1 if steps % save else 0)) if steps else 0
        rows_seen = steps * self.batch_size * self.grad_accum * world_size
        if not self.max_steps:
            rows_seen = min(rows_seen, math.ceil(train_rows * self.epochs))
        return Schedule(
            steps, self.steps_per_epoch(train_rows, world_size), evaluate, save, evaluations, saves, rows_seen
        )

    def technique(self) -> str:
        if self.full_finetune:
            return "full"
        return "qlora" if self.qlora_4bit else "dora" if self.use_dora else "lora"

    def workload(
        self,
        shape: cost.ModelShape,
        tokens: cost.TokenStats,
        train_rows: int,
        validation_rows: int,
        *,
        dtype: str,
        gradient_checkpointing: bool,
        world_size: int = 1,
        technique: str | None = None,
        max_tokens_per_pass: int | None = None,
    ) -> cost.Workload:
        """This run over a dataset with these token statistics, in the cost model's units (`max_tokens_per_pass`:
        the worker's pass plan, `pass_plan`)."""
        plan = self.schedule(train_rows, validation_rows, world_size)
        return cost.workload(
            shape,
            tokens,
            train_rows=train_rows,
            validation_rows=validation_rows,
            steps=plan.steps,
            rows_seen=plan.rows_seen,
            evaluations=plan.evaluations,
            saves=plan.saves,
            micro_batch=self.batch_size,
            grad_accum=self.grad_accum,
            max_length=self.max_length,
            grouped=self.group_by_length and not self.packing,
            packing=self.packing,
            labelled_only=self.assistant_only_loss,
            dtype=dtype,
            technique=technique or self.technique(),
            lora_r=self.lora_r,
            gradient_checkpointing=gradient_checkpointing,
            devices=world_size,
            strategy=self.strategy,
            max_tokens_per_pass=max_tokens_per_pass,
        )

    def pass_plan(self, shape: cost.ModelShape, dtype: str, on_cpu: bool) -> cost.PassPlan | None:
        """How the worker will run each batch (cost.plan_passes), or None when it plans nothing: on a GPU, or when
        gradient checkpointing is set by hand. The worker, preflight and the Decide tab all ask here."""
        if not on_cpu or self.gradient_checkpointing is not None:
            return None
        return cost.plan_passes(shape, dtype, self.batch_size, self.max_length)

    # ---- validation ---------------------------------------------------------------------
    def validate(self) -> dict[str, str]:
        """Field name -> plain-language message, for every invalid field (empty when valid)."""
        errors: dict[str, str] = {}

        def need(name: str, ok: bool, message: str) -> None:
            if name not in errors and not ok:
                errors[name] = message

        for f in fields(self):
            kind = _field_kind(f)
            value = getattr(self, f.name)
            if not _has_kind(value, kind):
                errors[f.name] = f"must be {_KIND_WORDS[kind]}, not {value!r}"

        def ok_number(name: str) -> bool:
            return name not in errors

        need("model", bool(str(self.model).strip()), "choose a model")
        need("dataset", bool(str(self.dataset).strip()), "choose a dataset")
        if ok_number("name"):
            need("name", len(self.name) <= 120, "keep the name under 120 characters")
        if ok_number("epochs"):
            need("epochs", 0 < self.epochs <= 1000, "must be more than 0 (e.g. 1–5)")
        if ok_number("max_steps") and self.max_steps is not None:
            need("max_steps", self.max_steps >= 1, "must be at least 1, or empty to use epochs")
        if ok_number("learning_rate") and self.learning_rate is not None:
            need(
                "learning_rate",
                math.isfinite(self.learning_rate) and self.learning_rate > 0,
                "must be a positive number (LoRA usually 1e-4 to 5e-4)",
            )
        if ok_number("warmup"):
            need(
                "warmup",
                self.warmup >= 0 and (self.warmup < 1 or float(self.warmup).is_integer()),
                "a fraction below 1 (e.g. 0.03) or a whole number of steps",
            )
        need("scheduler", self.scheduler in SCHEDULERS, f"one of {', '.join(SCHEDULERS)}")
        if ok_number("weight_decay"):
            need("weight_decay", 0 <= self.weight_decay < 1, "between 0 and 1 (usually 0 or 0.01)")
        if ok_number("seed"):
            need("seed", 0 <= self.seed < 2**32, "a whole number between 0 and 4294967295")
        if ok_number("lora_r"):
            need("lora_r", 1 <= self.lora_r <= 1024, "between 1 and 1024 (8–64 is typical)")
        if ok_number("lora_alpha"):
            need("lora_alpha", 1 <= self.lora_alpha <= 4096, "between 1 and 4096 (usually 2 × rank)")
        if ok_number("lora_dropout"):
            need("lora_dropout", 0 <= self.lora_dropout < 1, "between 0 and 1 (0 to 0.1 is typical)")
        if ok_number("target_modules"):
            modules = [m.strip() for m in str(self.target_modules).split(",") if m.strip()]
            need(
                "target_modules",
                bool(modules) and all(m.replace("_", "").replace(".", "").replace("-", "").isalnum() for m in modules),
                "'all-linear' or comma-separated module names such as q_proj,v_proj",
            )
        if ok_number("batch_size"):
            need("batch_size", 1 <= self.batch_size <= 4096, "at least 1")
        if ok_number("grad_accum"):
            need("grad_accum", 1 <= self.grad_accum <= 4096, "at least 1")
        if ok_number("max_length"):
            need("max_length", 16 <= self.max_length <= 262144, "between 16 and 262144 tokens")
        for name in ("eval_steps", "save_steps", "logging_steps"):
            if ok_number(name):
                need(name, getattr(self, name) >= 0, "0 (automatic) or a positive number of steps")
        if ok_number("torch_threads"):
            need("torch_threads", 0 <= self.torch_threads <= 1024, "0 (all cores) or a positive number")
        if ok_number("processes"):
            need("processes", 0 <= self.processes <= MAX_PROCESSES, f"0 (one per GPU) or 1 to {MAX_PROCESSES}")
        need("strategy", self.strategy in cost.STRATEGIES, f"one of {', '.join(cost.STRATEGIES)}")
        if self.full_finetune and (self.qlora_4bit or self.use_dora):
            need(
                "full_finetune",
                False,
                "trains every weight: turn off QLoRA 4-bit and DoRA (adapters), or turn this off",
            )
        if self.qlora_4bit and self.strategy != "ddp":
            need("strategy", False, "QLoRA runs with DDP only here (4-bit weights are not sharded)")
        return errors

    def check(self) -> RunConfig:
        """Raise a StudioError naming every invalid field; return self when valid."""
        errors = self.validate()
        if errors:
            first, message = next(iter(errors.items()))
            listed = "; ".join(f"{field_label(name)}: {text}" for name, text in errors.items())
            raise StudioError(f"Invalid run settings — {listed}.", f"Fix {field_label(first)} first.")
        return self

    # ---- the equivalent command ---------------------------------------------------------
    def to_cli_args(self) -> list[str]:
        """CLI arguments that rebuild this config exactly (defaults omitted)."""
        defaults = RunConfig()
        args: list[str] = []
        for f in fields(self):
            if f.name in NOT_FLAGS:
                continue
            value, default = getattr(self, f.name), getattr(defaults, f.name)
            if f.name in ("model", "dataset") or value != default:
                flag = flag_name(f.name)
                if isinstance(value, bool):
                    args.append(flag if value else "--no-" + flag[2:])
                elif value is None:  # every field whose value can be None defaults to None
                    continue
                else:
                    args += [flag, _format_value(value)]
        return args

    def to_cli_command(self) -> str:
        return " ".join(shlex.quote(part) for part in ["python", "-m", "studio", "train", *self.to_cli_args()])


@dataclass(frozen=True)
class Schedule:
    steps: int
    steps_per_epoch: int
    eval_every: int
    save_every: int
    evaluations: int
    saves: int
    rows_seen: int  # training rows the run processes (repeats over epochs included)


def suggested_learning_rate(params: int | float | None, full_finetune: bool = False) -> float:
    """The automatic learning rate for a model of `params` parameters (unknown size: the usual rate of a large one)."""
    small = bool(params) and params < SMALL_MODEL_PARAMS
    if full_finetune:
        return SMALL_MODEL_FULL_LEARNING_RATE if small else LARGE_MODEL_FULL_LEARNING_RATE
    return SMALL_MODEL_LEARNING_RATE if small else LARGE_MODEL_LEARNING_RATE


def flag_name(field_name: str) -> str:
    return FLAG_NAMES.get(field_name, "--" + field_name.replace("_", "-"))


def field_kinds() -> dict[str, str]:
    """Field name -> "str" | "bool" | "int" | "float" | "int?" | "float?" | "bool?" (for the CLI parser)."""
    return {f.name: _field_kind(f) for f in fields(RunConfig)}


_LABELS = {
    "learning_rate": "learning rate",
    "lora_r": "LoRA rank",
    "lora_alpha": "LoRA alpha",
    "lora_dropout": "LoRA dropout",
    "max_length": "max length",
    "max_steps": "max steps",
    "grad_accum": "gradient accumulation",
    "batch_size": "batch size",
}


def field_label(name: str) -> str:
    """A setting's name as people say it ("LoRA rank"), for messages."""
    return _LABELS.get(name, name.replace("_", " "))


_KIND_WORDS = {
    "str": "text",
    "bool": "true or false",
    "int": "a whole number",
    "float": "a number",
    "int?": "a whole number or empty",
    "float?": "a number or empty (automatic)",
    "bool?": "true, false or empty (automatic)",
}


def _field_kind(f: dataclasses.Field) -> str:
    annotation = str(f.type).replace(" ", "")
    return {
        "str": "str",
        "bool": "bool",
        "int": "int",
        "float": "float",
        "int|None": "int?",
        "float|None": "float?",
        "bool|None": "bool?",
    }[annotation]


def _has_kind(value: Any, kind: str) -> bool:
    if kind.endswith("?"):
        return value is None or _has_kind(value, kind[:-1])
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, str)


def _coerce(value: Any, kind: str) -> Any:
    """Best-effort conversion of form/JSON values; anything ambiguous is returned unchanged."""
    if kind.endswith("?"):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto", "none", "null")):
            return None
        return _coerce(value, kind[:-1])
    if kind == "bool":
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.strip().lower() in ("true", "yes", "on", "1")
        if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
            return bool(value)
        return value
    if kind == "int":
        if isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                return value
            return int(number) if number.is_integer() else value
        return value
    if kind == "float":
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                return value
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    if kind == "str" and value is None:
        return ""
    return value


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value)) if abs(value) < 1e15 else repr(value)
    return str(value)
