"""The training worker: `python -m studio.train.worker RUN_DIR` (one process per run).

Reads RUN_DIR/config.json, trains with TRL SFTTrainer + PEFT LoRA, and reports only through
files in RUN_DIR: status.json (atomic), events.jsonl (appended), log.txt (its stdout/stderr,
redirected by the supervisor), checkpoints/checkpoint-N, and at the end adapter/ with its model card
(studio.train.card).

Signals: SIGTERM/SIGINT while importing or loading -> exit at once with status "stopped";
during training -> finish the current step, save a checkpoint and the adapter, status "stopped".
A run time limit (status "time_limit_s", written by the supervisor from STUDIO_MAX_RUN_MINUTES; the
training time of earlier attempts counts) ends the run the same graceful way: status "stopped" with
stop_reason "time_limit" and a message saying so in status.error.
Faults end with status "failed" and a one-line cause + hint in status.error; the traceback
goes to log.txt only. A run folder with checkpoints resumes from its last complete one.
The Hugging Face token is read from the environment (HF_TOKEN) by huggingface_hub; it is never
written anywhere.
"""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path

from studio import paths
from studio.errors import StudioError
from studio.models import catalog, cost, hardware, kernels, precision_probe
from studio.models.loading import explain_load_error
from studio.models.precision import Precision
from studio.models.templates import choose_template
from studio.train import store
from studio.train.archive import archive_quietly
from studio.train.card import finalize_adapter
from studio.train.config import RunConfig
from studio.train.divergence import Divergence, DivergenceWatch

_state = {"phase": "import", "stop": False, "stop_reason": None}


class StopBeforeTraining(BaseException):
    """Raised by the signal handler while nothing worth saving exists yet."""


class TrainingDiverged(Exception):
    """The loss or gradient went NaN/infinite, froze at zero gradient, or exploded (see divergence.py)."""

    def __init__(self, divergence: Divergence):
        super().__init__(divergence.message)
        self.divergence = divergence
        self.step = divergence.step


def _on_signal(signum, frame):  # noqa: ARG001 - a signal handler's signature
    if _state["phase"] == "import":
        raise StopBeforeTraining()
    _state["stop"] = True


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def under_launcher() -> bool:
    return "LOCAL_RANK" in os.environ


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


# ---- failures ----------------------------------------------------------------------------
def explain_failure(error: BaseException, config: RunConfig | None = None) -> tuple[str, str]:
    """One-line cause and a hint for a failed run (the traceback goes to log.txt)."""
    if isinstance(error, StudioError):
        return error.message, error.hint or "Details are in the run's log.txt."
    if isinstance(error, TrainingDiverged):
        return error.divergence.message, error.divergence.hint(config.learning_rate if config else None)
    text = f"{type(error).__name__}: {error}"
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    if "out of memory" in text.lower() and ("cuda" in text.lower() or type(error).__name__ == "OutOfMemoryError"):
        return (
            "The GPU ran out of memory.",
            "Lower the batch size or max length, turn on gradient checkpointing, or use QLoRA 4-bit / a smaller model.",
        )
    if isinstance(error, MemoryError) or "can't allocate memory" in text or "not enough memory" in text.lower():
        return (
            "The machine ran out of memory (RAM).",
            "Lower the batch size or max length, close other runs, or pick a smaller model.",
        )
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return (
            "The disk is full: the run could not write its checkpoints or logs.",
            "Free some disk space (e.g. delete old runs), then resume the run.",
        )
    if type(error).__name__ in ("TemplateError", "TemplateSyntaxError", "UndefinedError"):
        return (
            f"The model's chat template could not render the data: {first_line}",
            "Check that every row has system/user/assistant messages with text content, or pick another model.",
        )
    return (f"Training failed: {type(error).__name__}: {first_line}", "The full error is in the run's log.txt.")


# ---- data --------------------------------------------------------------------------------
def read_messages(path: Path, required: bool = True) -> list[dict]:
    """Rows of a dataset file as [{"messages": [...]}], with a clear error naming the bad line."""
    if not path.is_file():
        if required:
            raise StudioError(f"The dataset file {path} is missing.", "Save the dataset again in the Data tab.")
        return []
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as error:
                raise StudioError(
                    f"Line {number} of {path.name} is not valid JSON ({error}).",
                    "Save the dataset again in the Data tab; it lints and cleans every row.",
                ) from error
            messages = row.get("messages") if isinstance(row, dict) else None
            if (
                not isinstance(messages, list)
                or not messages
                or not all(
                    isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                    for m in messages
                )
            ):
                raise StudioError(
                    f"Line {number} of {path.name} is not a chat row (a 'messages' list of role/content texts).",
                    "Save the dataset through the Data tab, which converts rows to the chat format.",
                )
            rows.append({"messages": [{"role": m["role"], "content": m["content"]} for m in messages]})
    if required and not rows:
        raise StudioError(f"{path.name} has no rows.", "Add examples to the dataset (a few dozen at least).")
    return rows


# ---- events ------------------------------------------------------------------------------
def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _memory_gb() -> float | None:
    try:
        import torch

        if torch.cuda.is_available():
            return round(torch.cuda.max_memory_allocated() / 1024**3, 3)
        import psutil

        return round(psutil.Process().memory_info().rss / 1024**3, 3)
    except Exception:  # noqa: BLE001 - the memory figure is optional
        return None


def make_callback(run_dir: Path, config: RunConfig):
    from transformers import TrainerCallback

    class StudioCallback(TrainerCallback):
        """Writes status/events; turns a stop request or a diverged run into a clean end of training."""

        def __init__(self):
            self.main = is_main_process()
            self.session_start = time.monotonic()
            self.first_step = 0
            self.previous_seconds = 0.0
            self.train_seconds = 0.0  # time inside steps (excludes eval and saving): for tokens/s
            self.step_began = None
            self.last_tokens = None
            self.last_train_seconds = 0.0
            self.last_status_write = 0.0
            self.time_limit_s = None  # from status.json (supervisor): training seconds this run may use in all
            self.watch = DivergenceWatch()  # every rank watches, so all stop at the same step
            self.final_loss = None
            self.trainer = None  # set by the worker: its padded-position counter goes into the log events

        def _elapsed(self) -> float:
            return self.previous_seconds + time.monotonic() - self.session_start

        def _eta(self, state) -> float | None:
            done = state.global_step - self.first_step
            if done <= 0 or not state.max_steps:
                return None
            per_step = (time.monotonic() - self.session_start) / done
            return max(0.0, per_step * max(0, state.max_steps - state.global_step))

        def _base(self, state, kind: str) -> dict:
            total = state.max_steps or None
            step = min(state.global_step, total) if total else state.global_step
            return {
                "type": kind,
                "step": step,
                "total": total,
                "epoch": _finite(round(state.epoch or 0.0, 4)),
                "elapsed": round(self._elapsed(), 2),
                "eta": _round(self._eta(state)),
                "memory_gb": _memory_gb(),
            }

        def on_train_begin(self, args, state, control, **kwargs):
            self.session_start = time.monotonic()
            self.first_step = state.global_step
            status = store.read_status(run_dir)
            self.previous_seconds = float(status.get("elapsed") or 0.0) if state.global_step else 0.0
            limit = status.get("time_limit_s")
            self.time_limit_s = float(limit) if isinstance(limit, (int, float)) and limit > 0 else None
            if self.main:
                store.update_status(run_dir, status="running", step=state.global_step, total_steps=state.max_steps)
                event = self._base(state, "status")
                event["status"] = "resumed" if state.global_step else "running"
                store.append_event(run_dir, event)
                print(f"[studio] training: step {state.global_step}/{state.max_steps}", flush=True)
            if _state["stop"]:
                control.should_training_stop = True

        def on_step_begin(self, args, state, control, **kwargs):
            self.step_began = time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):
            if self.step_began is not None:
                self.train_seconds += time.monotonic() - self.step_began
                self.step_began = None
            if self.time_limit_s is not None and self._elapsed() >= self.time_limit_s and not _state["stop"]:
                _state["stop"], _state["stop_reason"] = True, "time_limit"  # every rank sees its own clock pass
                print(
                    f"[studio] run time limit of {self.time_limit_s / 60:.0f} min reached: stopping with a checkpoint",
                    flush=True,
                )
            if _stop_requested(args):
                control.should_training_stop = True
                control.should_save = True
            now = time.monotonic()
            if self.main and (now - self.last_status_write > 1.0 or control.should_training_stop):
                self.last_status_write = now
                status = "stopping" if _state["stop"] else "running"
                store.update_status(
                    run_dir,
                    status=status,
                    step=state.global_step,
                    total_steps=state.max_steps,
                    elapsed=round(self._elapsed(), 2),
                )

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            if "loss" in logs:
                if self.watch.observe(state.global_step, logs.get("loss"), logs.get("grad_norm")):
                    control.should_training_stop = True
                    control.should_save = False  # never checkpoint diverged weights
                else:
                    self.final_loss = logs["loss"]
            if not self.main:
                return
            if "eval_loss" in logs:
                event = self._base(state, "eval")
                event.update(
                    eval_loss=_finite(logs.get("eval_loss")),
                    mean_token_accuracy=_finite(logs.get("eval_mean_token_accuracy")),
                )
                store.append_event(run_dir, event)
                print(f"[studio] step {event['step']}/{event['total']} eval_loss {logs.get('eval_loss')}", flush=True)
            elif "loss" in logs:
                event = self._base(state, "log")
                tokens = logs.get("num_tokens")
                tokens_per_s = None
                if isinstance(tokens, (int, float)) and self.last_tokens is not None and tokens > self.last_tokens:
                    seconds = self.train_seconds - self.last_train_seconds
                    tokens_per_s = (tokens - self.last_tokens) / seconds if seconds > 0 else None
                elif isinstance(tokens, (int, float)) and self.train_seconds > 0:
                    tokens_per_s = tokens / self.train_seconds
                if isinstance(tokens, (int, float)):
                    self.last_tokens, self.last_train_seconds = tokens, self.train_seconds
                event.update(
                    loss=_finite(logs.get("loss")),
                    learning_rate=_finite(logs.get("learning_rate")),
                    grad_norm=_finite(logs.get("grad_norm")),
                    mean_token_accuracy=_finite(logs.get("mean_token_accuracy")),
                    tokens_per_s=_round(tokens_per_s),
                    num_tokens=tokens,
                    num_positions=getattr(self.trainer, "positions_seen", None),
                )
                if self.watch.found:
                    event["diverged"] = self.watch.found.kind
                store.append_event(run_dir, event)
                store.update_status(run_dir, step=event["step"])  # the history's step column follows the run
                print(
                    f"[studio] step {event['step']}/{event['total']} loss {logs.get('loss')} lr "
                    f"{logs.get('learning_rate')} tokens/s {event['tokens_per_s']} eta {event['eta']}",
                    flush=True,
                )

        def on_save(self, args, state, control, **kwargs):
            if not self.main:
                return
            event = self._base(state, "checkpoint")
            event["checkpoint"] = f"checkpoints/checkpoint-{state.global_step}"
            store.append_event(run_dir, event)
            changes = {"step": state.global_step, "last_checkpoint": event["checkpoint"]}
            if state.best_model_checkpoint and state.best_metric is not None:
                changes.update(
                    best_eval_loss=_finite(state.best_metric),
                    best_checkpoint=f"checkpoints/{Path(state.best_model_checkpoint).name}",
                )
            store.update_status(run_dir, **changes)

    return StudioCallback()


def _stop_requested(args) -> bool:
    """The stop flag, agreed across processes under DDP so every rank stops at the same step.

    A failed all_reduce is not swallowed: it means a peer is gone, the process group is broken, and its error
    ("Connection closed by peer") names the cause better than the next collective's would."""
    flag = _state["stop"]
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        import torch

        tensor = torch.tensor([1 if flag else 0], device=args.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        flag = bool(tensor.item())
        _state["stop"] = _state["stop"] or flag
    return flag


def _round(value, digits: int = 2):
    return round(value, digits) if isinstance(value, (int, float)) and math.isfinite(value) else None


# ---- the run -----------------------------------------------------------------------------
def hardware_choices(config: RunConfig, model_dir: str | None = None, log=None) -> tuple[dict, Precision]:
    """Device, precision and gradient checkpointing ("auto" resolved) for this machine.

    The precision comes from the one decision for every device (studio.models.precision); on a CPU that means a
    measured fp32-vs-bf16 comparison on this model's shapes, made once per machine and cached. Returns the facts
    (JSON-friendly, for status.json) and the Precision itself."""
    precision = precision_probe.choose(
        config.bf16, model_dir, _threads(config), log=log or (lambda text: print(f"[studio] {text}", flush=True))
    )
    cuda = precision.device == "cuda"
    checkpointing = config.gradient_checkpointing if config.gradient_checkpointing is not None else cuda
    facts = {
        "cuda": cuda,
        "bf16": precision.trainer_bf16,
        "fp16": precision.trainer_fp16,
        "gradient_checkpointing": checkpointing,
        "use_cpu": not cuda,
        **precision.facts(),
    }
    return facts, precision


def _threads(config: RunConfig) -> int:
    """Threads for this process: the number set, else its share of the cores (CPU ranks of one run share them)."""
    if config.torch_threads:
        return config.torch_threads
    return precision_probe.default_threads(local_processes())


def local_processes() -> int:
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def score_only_labelled_positions_on_cpu() -> bool:
    """TRL's fused LM head projects only the positions that carry a label when it runs on CUDA/XPU with
    Triton; elsewhere it projects every position (prompt and padding too) through the whole vocabulary,
    only to mask them out. On a CPU there is no recompilation to avoid, so score only the labelled ones:
    the same loss and metrics, and about 25 % more tokens/s for the bundled model (6-step worker runs:
    151 → 185–196 tokens/s, identical losses). Returns whether the switch was applied."""
    import trl.trainer.utils as trl_utils

    stock = getattr(trl_utils, "_use_triton", None)  # the compact-path switch of TRL 1.16's fused head
    if stock is None or getattr(stock, "studio_cpu_compact", False):
        return stock is not None

    def compact_on_cpu(device) -> bool:
        return device.type == "cpu" or stock(device)

    compact_on_cpu.studio_cpu_compact = True
    trl_utils._use_triton = compact_on_cpu
    return True


def pass_plan(config: RunConfig, model_config, dtype: str, on_cpu: bool) -> cost.PassPlan | None:
    """How this worker runs each batch: the cost model's plan for the loaded model's shape (preflight predicts the
    memory of the same plan, from the same function with the model's config.json); None when it plans nothing."""
    return config.pass_plan(cost.shape_from_config(model_config.to_dict()), dtype, on_cpu)


def check_rows_left(trainer, rows: int, config: RunConfig, assistant_only: bool, notes: list[str]) -> None:
    """TRL drops the rows whose every answer token lies past the max length (nothing left to learn from). When it
    drops them all the Trainer would fail later on an empty dataset with an IndexError: say why, and what to do."""
    left = len(trainer.train_dataset)
    if left == rows:
        return
    why = f"their answer starts after the first {config.max_length} tokens: truncated, nothing is left to learn"
    if left == 0:
        raise StudioError(
            f"No training row is left: in all {rows:,} rows {why}.",
            "Raise Max length (the Data tab suggests one from the rows' lengths)"
            + (", or turn off 'Train only on answers'." if assistant_only else "."),
        )
    notes.append(f"{rows - left:,} of {rows:,} training rows were left out: {why}. Raise Max length to keep them.")


def build_trainer(run_dir: Path, config: RunConfig, notes: list[str]):
    """Load the model, tokenizer and data and return (trainer, callback, facts)."""
    # Cheap checks first, so a wrong dataset or model fails in a second, not after the heavy imports.
    dataset_dir = Path(config.dataset).expanduser()
    if not dataset_dir.is_dir():
        raise StudioError(f"The dataset folder {dataset_dir} does not exist.", "Pick a saved dataset in the Data tab.")
    train_rows = read_messages(dataset_dir / "train.jsonl")
    eval_rows = read_messages(dataset_dir / "validation.jsonl", required=False)
    # The supervisor sets this flag to 0 unless remote code was authorized for this run (studio.access).
    if config.trust_remote_code and os.environ.get("STUDIO_WORKER_REMOTE_CODE", "1") != "1":
        raise StudioError(
            "This run asks to run the model's own Python code (trust_remote_code), which is not allowed for it here.",
            "Pick a model that works without remote code.",
        )
    source = catalog.resolve(config.model)

    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, set_seed
    from trl import SFTConfig, SFTTrainer

    torch.set_num_threads(_threads(config))
    hw, precision = hardware_choices(config, source)
    notes.append(f"precision {precision.summary()}")
    notes.extend(precision.notes)
    if hw["use_cpu"]:
        score_only_labelled_positions_on_cpu()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=config.trust_remote_code)
    except Exception as error:  # noqa: BLE001 - any load failure gets a plain explanation
        raise explain_load_error(config.model, error) from error
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    _state["model_chat_template"] = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    choice = choose_template(tokenizer, [row["messages"] for row in train_rows])
    notes.extend(choice.notes)  # e.g. system prompts merged into the first user turn
    train_rows, eval_rows = choice.prepare(train_rows), choice.prepare(eval_rows)
    assistant_only = config.assistant_only_loss and choice.enabled
    if config.assistant_only_loss:
        notes.append(choice.note)
        if choice.template:
            tokenizer.chat_template = choice.template
    elif not getattr(tokenizer, "chat_template", None):
        raise StudioError(
            "The model has no chat template, so chat rows cannot be formatted.",
            "Pick an instruct/chat model (e.g. one ending in -Instruct).",
        )

    # The frozen weights in the chosen precision; PEFT keeps the LoRA weights (and so Adam's state) in fp32. Full
    # fine-tuning trains the weights themselves: they stay in fp32 and the steps run under the precision's autocast.
    load_dtype = "float32" if config.full_finetune else precision.load_dtype
    load_kwargs = {"trust_remote_code": config.trust_remote_code, "dtype": getattr(torch, load_dtype)}
    if config.full_finetune:
        notes.append(
            "full fine-tuning: every weight trains (fp32 weights and Adam states); the output is a whole model"
        )
    if config.qlora_4bit:
        load_kwargs.update(four_bit_loading(precision, hw["cuda"]))
        notes.append(f"QLoRA: linear layers in 4-bit NF4 (bitsandbytes), computing in {precision.load_dtype}")
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **load_kwargs)
    except Exception as error:  # noqa: BLE001 - any load failure gets a plain explanation
        raise explain_load_error(config.model, error) from error

    # Long batches run as micro-batches; checkpointing only when one row at max length would not fit. The cost
    # model's plan, from the model's shape: preflight predicts the memory of the same plan.
    plan = pass_plan(config, model.config, precision.name, on_cpu=hw["use_cpu"])
    hw["max_tokens_per_pass"] = plan.max_tokens_per_pass if plan else None
    if plan:
        hw["gradient_checkpointing"] = plan.gradient_checkpointing
        if plan.note:
            notes.append(plan.note)

    learning_rate = config.learning_rate_for(model.num_parameters())
    if config.learning_rate is None:
        notes.append(
            f"learning rate {learning_rate:g}: automatic for a model of "
            f"{model.num_parameters() / 1e6:,.0f} M parameters"
        )

    from datasets import Dataset

    train_dataset = Dataset.from_list(train_rows)
    eval_dataset = Dataset.from_list(eval_rows) if eval_rows else None
    world = int(os.environ.get("WORLD_SIZE", "1"))
    total = config.total_steps(len(train_rows), world)
    logging_steps, eval_steps, save_steps = config.intervals(total, eval_dataset is not None)
    target = config.target_modules.strip()
    target_modules = target if target == "all-linear" else [m.strip() for m in target.split(",") if m.strip()]

    args = SFTConfig(
        output_dir=str(run_dir / "checkpoints"),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=learning_rate,
        lr_scheduler_type=config.scheduler,
        warmup_steps=config.warmup if config.warmup < 1 else int(config.warmup),
        weight_decay=config.weight_decay,
        seed=config.seed,
        logging_steps=logging_steps,
        logging_first_step=True,
        logging_nan_inf_filter=False,  # otherwise a NaN loss is silently replaced by an average
        eval_strategy="steps" if eval_dataset is not None else "no",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=5,
        metric_for_best_model="eval_loss" if eval_dataset is not None else None,
        greater_is_better=False if eval_dataset is not None else None,
        max_length=config.max_length,
        packing=config.packing,
        train_sampling_strategy="group_by_length" if config.group_by_length and not config.packing else "random",
        assistant_only_loss=assistant_only,
        bf16=precision.trainer_bf16,
        fp16=precision.trainer_fp16,
        activation_checkpointing=hw["gradient_checkpointing"],  # transformers 5's name for gradient checkpointing
        use_cpu=hw["use_cpu"],
        # LoRA leaves the frozen body without gradients: looking for unused parameters costs DDP a graph walk a step
        ddp_find_unused_parameters=False if world > 1 else None,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    peft_config = None
    if not config.full_finetune:
        peft_config = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=target_modules,
            use_dora=config.use_dora,
            task_type="CAUSAL_LM",
        )
    # The adapter's initial weights come from the global RNG before the Trainer seeds it: seed first, so
    # the same config gives the same run.
    set_seed(config.seed)
    trainer = kernels.micro_batching_trainer(SFTTrainer)(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    check_rows_left(trainer, len(train_rows), config, assistant_only, notes)
    hw["lean_step"] = kernels.apply(
        trainer.model, autocast=precision.trainer_bf16 or precision.trainer_fp16, on_cpu=hw["use_cpu"]
    )
    trainer.max_tokens_per_pass = hw["max_tokens_per_pass"]
    trainer.remove_callback(PrinterCallback)
    callback = make_callback(run_dir, config)
    callback.trainer = trainer
    trainer.add_callback(callback)
    facts = {
        "train_rows": len(train_rows),
        "eval_rows": len(eval_rows),
        "assistant_only_loss": assistant_only,
        "threads": torch.get_num_threads(),
        "learning_rate": learning_rate,
        **hw,
        "logging_steps": logging_steps,
        "eval_steps": eval_steps,
        "save_steps": save_steps,
    }
    return trainer, callback, facts


def four_bit_loading(precision: Precision, cuda: bool) -> dict:
    """from_pretrained arguments for QLoRA: the linear layers in 4-bit NF4 (bitsandbytes, on a GPU or a CPU),
    computing in the run's precision, and the whole model on this process's own device — each rank of a
    multi-process run on its own GPU, not every rank's copy on GPU 0."""
    import torch
    from transformers import BitsAndBytesConfig

    reason = hardware.four_bit_reason("cuda" if cuda else "cpu")
    if reason:
        raise StudioError(reason, "Turn QLoRA 4-bit off (LoRA in full precision works everywhere).")
    compute = getattr(torch, precision.load_dtype)
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if cuda else "cpu"
    return {
        "quantization_config": BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute,
        ),
        "device_map": {"": device},
    }


def importlib_missing(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


def train(run_dir: Path) -> str:
    """Run the training described by run_dir/config.json; returns the final status."""
    main = is_main_process()
    config = store.read_run_config(run_dir).check()
    notes: list[str] = []

    paths.configure_caches()
    trainer, callback, facts = build_trainer(run_dir, config, notes)
    resume_from = store.last_checkpoint(run_dir)
    if main:
        previous = store.read_status(run_dir).get("notes") or []
        store.update_status(
            run_dir,
            notes=list(dict.fromkeys(previous + notes)),
            facts=facts,
            resumed_from=resume_from.name if resume_from else None,
        )
        print(f"[studio] {json.dumps(facts)}", flush=True)
        for note in notes:
            print(f"[studio] {note}", flush=True)

    _state["phase"] = "train"  # from here on a signal means: stop gracefully at the end of the step
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    state = trainer.state
    if callback.watch.found:
        if main:
            drop_diverged_checkpoints(run_dir, callback.watch.found)
        raise TrainingDiverged(callback.watch.found)
    # A stop that arrives after the last step changes nothing: the run completed.
    stopped = _state["stop"] and state.global_step < state.max_steps
    if not stopped and trainer.eval_dataset is not None:  # every rank: evaluate is collective under DDP
        last_eval = max((e.get("step", -1) for e in state.log_history if "eval_loss" in e), default=-1)
        if last_eval != state.global_step:
            trainer.evaluate()
    adapter_dir = run_dir / "adapter"
    if config.full_finetune:
        trainer.model.config.use_cache = True  # a whole model ships: generation should use its KV cache
    trainer.save_model(str(adapter_dir))
    if not main:
        return "stopped" if stopped else "completed"
    tokens = getattr(trainer, "_total_train_tokens", None)
    runtime = (result.metrics or {}).get("train_runtime")
    best = {}
    if state.best_model_checkpoint and state.best_metric is not None:
        best = {
            "best_eval_loss": _finite(state.best_metric),
            "best_checkpoint": f"checkpoints/{Path(state.best_model_checkpoint).name}",
        }
    final = "stopped" if stopped else "completed"
    reason = {}
    if stopped and _state["stop_reason"] == "time_limit":
        minutes = (callback.time_limit_s or 0) / 60
        reason = {
            "stop_reason": "time_limit",
            "error": {
                "message": (
                    f"It reached this studio's run time limit ({minutes:.0f} min of training, STUDIO_MAX_RUN_MINUTES)."
                ),
                "hint": (
                    "The adapter and a checkpoint were saved: open it in Compare or export it. Fewer steps fit "
                    "the limit."
                ),
            },
        }
    ending = dict(
        status=final,
        step=state.global_step,
        total_steps=state.max_steps,
        ended_at=store.now_iso(),
        **reason,
        final_loss=callback.final_loss,
        train_tokens=tokens,
        train_runtime=_round(runtime),
        train_seconds=_round(callback.train_seconds),
        tokens_per_s=_round(tokens / callback.train_seconds) if tokens and callback.train_seconds else None,
        adapter="adapter",
        elapsed=round(callback._elapsed(), 2),
        **best,
    )

    # status.json says the run ended only once the adapter is final (card, Hub base id, no pickles) and the
    # last event is written: whoever waits for that status (supervisor.wait, Compare, export) finds both.
    finalize_adapter(
        run_dir, trainer.args, _state.get("model_chat_template"), status={**store.read_status(run_dir), **ending}
    )
    event = callback._base(state, "status")
    event.update(status=final, loss=callback.final_loss, eta=0.0 if final == "completed" else None)
    store.append_event(run_dir, event)
    store.update_status(run_dir, **ending)
    print(f"[studio] {final} at step {state.global_step}/{state.max_steps}; adapter saved to {adapter_dir}", flush=True)
    return final


def drop_diverged_checkpoints(run_dir: Path, divergence: Divergence) -> None:
    """Delete checkpoints holding the diverged weights, so Resume and export only ever see good ones.

    The loss logged at step N comes from the weights after N-1 updates: a pattern that starts at step
    N already held in checkpoint-(N-1)."""
    import shutil

    first_bad = divergence.since_step - 1
    removed = []
    for checkpoint in store.checkpoints(run_dir):
        step = int(checkpoint.name.rsplit("-", 1)[-1])
        if step >= first_bad:
            shutil.rmtree(checkpoint, ignore_errors=True)
            removed.append(checkpoint.name)
    if not removed:
        return
    last = store.last_checkpoint(run_dir)
    status = store.read_status(run_dir)
    changes = {
        "last_checkpoint": f"checkpoints/{last.name}" if last else None,
        "notes": (status.get("notes") or []) + [f"removed {', '.join(removed)}: saved after the run diverged"],
    }
    if str(status.get("best_checkpoint") or "").split("/")[-1] in removed:
        changes.update(best_checkpoint=None, best_eval_loss=None)
    store.update_status(run_dir, **changes)
    print(f"[studio] removed {', '.join(removed)}: saved after the run diverged", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    # TRL and PEFT still read transformers 5's deprecated `is_gradient_checkpointing` on every run: a warning the
    # user can do nothing about, which filled the log panel's first lines.
    warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*deprecated", category=FutureWarning)
    if len(argv) != 1:
        print("usage: python -m studio.train.worker RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(argv[0]).resolve()
    if not (run_dir / store.CONFIG_FILE).is_file():
        print(f"{run_dir} is not a run folder (no {store.CONFIG_FILE})", file=sys.stderr)
        return 2
    main_process = is_main_process()
    config = None
    if under_launcher():  # studio.train.distributed signals and watches each rank through this record
        store.record_rank(run_dir, rank(), pid=os.getpid(), started=time.time())
    try:
        if main_process:
            changes = {"status": "starting", "error": None}
            if not under_launcher():
                changes["pid"] = os.getpid()
            store.update_status(run_dir, **changes)
        config = store.read_run_config(run_dir)
        final = train(run_dir)
        if under_launcher():
            store.record_rank(run_dir, rank(), ended=final, time=time.time())
        return 0
    except StopBeforeTraining:
        if under_launcher():
            store.record_rank(run_dir, rank(), ended="stopped", time=time.time())
        if main_process:
            store.update_status(
                run_dir,
                status="stopped",
                ended_at=store.now_iso(),
                error={"message": "Stopped before training began.", "hint": "Resume or start again when ready."},
            )
            store.append_event(run_dir, {"type": "status", "status": "stopped"})
        print("[studio] stopped before training began", flush=True)
        return 0
    except BaseException as error:  # noqa: BLE001 - every failure is recorded as a plain message
        traceback.print_exc()
        message, hint = explain_failure(error, config)
        if under_launcher():
            store.record_rank(
                run_dir, rank(), ended="failed", time=time.time(), error={"message": message, "hint": hint}
            )
        if main_process:
            try:
                changes = {}
                if isinstance(error, TrainingDiverged):
                    found = error.divergence
                    changes = {
                        "step": found.step,
                        "diverged": {"kind": found.kind, "step": found.step, "since_step": found.since_step},
                    }
                status = store.update_status(
                    run_dir,
                    status="failed",
                    ended_at=store.now_iso(),
                    error={"message": message, "hint": hint},
                    **changes,
                )
                store.append_event(
                    run_dir,
                    {
                        "type": "status",
                        "status": "failed",
                        "message": message,
                        "step": status.get("step"),
                        "total": status.get("total_steps"),
                    },
                )
            except OSError:
                traceback.print_exc()
        print(f"[studio] failed: {message} Hint: {hint}", flush=True)
        return 1
    finally:
        if main_process:
            archive_quietly(run_dir)  # a finished run to the mounted bucket, when STUDIO_ARCHIVE_DIR is set
        sys.stdout.flush()
        sys.stderr.flush()


if __name__ == "__main__":
    raise SystemExit(main())
