"""Preflight: what a run will cost before it starts — steps, tokens, time on this hardware, memory.

Blocking errors (the run cannot work: invalid settings, no dataset, not enough memory, QLoRA without
CUDA, the trainer busy, a ZeroGPU Space) are separated from warnings (it will run, but probably not as
you want: truncation, no validation split, very long, overfitting risk). The UI offers "Start anyway"
for warnings only.

Throughput comes, in order of trust, from (1) this machine's earlier runs of the same model (their
tokens/s events), (2) a FLOP estimate: LoRA training costs about 4 × params FLOPs per token (forward,
plus the backward pass through the frozen weights); a CPU reaches about 31 % of its measured fp32
matmul peak (STACK-NOTES: 74 tokens/s for SmolLM2-135M on 2 cores at 127 GFLOP/s), a GPU about 25 %
of its bf16 tensor peak.

Also home of the small dataset adapter (`list_datasets`, `read_manifest`): studio.data.store when it
is installed, else the saved-dataset folders read directly per the contract.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio import escape, paths
from studio.errors import StudioError
from studio.train.config import suggested_learning_rate

# Fraction of the fp32 torch matmul peak a LoRA run reaches on a CPU, counting the padded tokens it processes.
# bench/train.py bundled: 186 real tokens/s (~250 with padding) × 0.538 GFLOP/token vs a 204 GFLOP/s peak ≈ 0.65;
# less in the app, where the browser and the server share the cores.
CPU_EFFICIENCY = 0.55
GPU_EFFICIENCY = 0.25
FLOPS_PER_PARAM_TOKEN = 4  # LoRA: forward 2N + backward through frozen weights 2N (no weight gradients)
CPU_GFLOPS_PER_CORE_FALLBACK = 63.5  # 127 GFLOP/s on 2 cores, this project's build machine
BUNDLED_PARAMS = 134_515_008

# Dense bf16/fp16 tensor peaks in TFLOP/s (vendor figures, no sparsity), matched on the device name.
GPU_TFLOPS = (
    ("H200", 989), ("H100", 989), ("A100", 312), ("L40S", 362), ("L40", 181), ("A6000", 155), ("A10G", 70),
    ("A10", 125), ("L4", 121), ("T4", 65), ("V100", 125), ("4090", 165), ("4080", 97), ("3090", 71),
    ("3080", 60), ("A4000", 77), ("P100", 19),
)


# ---------------------------------------------------------------- datasets (adapter over studio.data.store)


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of a saved dataset folder with "path" added, or None when it is not one."""
    try:
        from studio.data import store as data_store

        return data_store.read_manifest(folder)
    except ImportError:
        pass
    folder = Path(folder)
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not (folder / "train.jsonl").is_file():
        return None
    manifest["path"] = str(folder)
    return manifest


def list_datasets() -> list[dict[str, Any]]:
    """Every saved dataset (manifest dicts with "path"), newest first."""
    try:
        from studio.data import store as data_store

        return data_store.list_datasets()
    except ImportError:
        pass
    items = []
    for folder in paths.datasets_dir().iterdir():
        if folder.is_dir() and not folder.name.startswith("."):
            manifest = read_manifest(folder)
            if manifest is not None:
                items.append(manifest)
    return sorted(items, key=lambda m: (str(m.get("created_at", "")), m["path"]), reverse=True)


def dataset_label(manifest: dict[str, Any]) -> str:
    counts = manifest.get("counts") or {}
    name = manifest.get("name") or Path(manifest.get("path", "")).name
    created = str(manifest.get("created_at", ""))[:16].replace("T", " ")
    return f"{name} — {counts.get('train', '?')} train / {counts.get('validation', '?')} validation rows · {created}"


ROLES = ("system", "user", "assistant", "tool")
UPLOAD_SUFFIXES = (".jsonl", ".json")


def _upload_rows(path: Path) -> tuple[list[tuple[int, Any]], list[tuple[int, str]]]:
    """(line number, parsed row) for every row of a JSONL file or JSON array, and the rows that are not JSON."""
    text = path.read_text(encoding="utf-8-sig", errors="strict")
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except ValueError as error:
            return [], [(1, f"the file is not valid JSON ({error})")]
        data = data if isinstance(data, list) else [data]
        return list(enumerate(data, start=1)), []
    rows, broken = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except ValueError:
            broken.append((number, "not valid JSON"))
    return rows, broken


def _row_problem(row: Any) -> str | None:
    """Why a row cannot be trained on as chat (an E finding), or None."""
    if not isinstance(row, dict):
        return "not a JSON object"
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        return 'no "messages" list (other formats: convert them in the Data tab)'
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f"a message has no valid role (one of {', '.join(ROLES)})"
        if not isinstance(message.get("content"), str):
            return "a message's content is not text"
    if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
        return "no assistant answer to learn from"
    return None


def lint_upload(file_path: str | os.PathLike) -> tuple[list[dict], list[tuple[int, str]]]:
    """Usable chat records and the blocking problems (line, message) of an uploaded file.

    Uses the Data tab's linter (studio.data.lint: every format, every rule) when it is installed;
    otherwise checks the chat structure of JSONL/JSON itself.
    """
    path = Path(file_path)
    try:
        from studio.data.lint import lint_file
    except ImportError:
        lint_file = None
    if lint_file is not None:
        report = lint_file(str(path), paths.safe_name(path.name, default="upload"), tokenizer=None)
        problems = [(finding.row or 0, f"{finding.message} [{finding.rule}]") for finding in report.findings
                    if finding.severity == "E"]
        records = [{"messages": [{"role": m["role"], "content": m["content"]} for m in row.messages]}
                   for row in report.valid_rows() if row.messages]
        return records, sorted(problems)
    if path.suffix.lower() not in UPLOAD_SUFFIXES:
        raise StudioError(f"'{path.name}' is not a JSONL or JSON file.",
                          "Load CSV, Parquet or Hub datasets in the Data tab; it converts and saves them.")
    try:
        parsed, problems = _upload_rows(path)
    except UnicodeDecodeError as error:
        raise StudioError(f"'{path.name}' is not UTF-8 text.", "Save it as UTF-8, or load it in the Data tab.") from error
    except OSError as error:
        raise StudioError(f"Could not read '{path.name}': {error.strerror or error}.", "Upload it again.") from error
    records = []
    for number, row in parsed:
        problem = _row_problem(row)
        if problem:
            problems.append((number, problem))
        else:
            records.append({"messages": [{"role": m["role"], "content": m["content"]} for m in row["messages"]]})
    return records, sorted(problems)


def dataset_from_upload(file_path: str | os.PathLike, validation_fraction: float = 0.1, seed: int = 42,
                        owner: str = "") -> tuple[Path, str]:
    """Lint an uploaded chat file; refuse it while it has errors; else save it as a dataset folder.

    Returns the folder and a Markdown summary. The uploaded name only ever appears sanitised.
    """
    import hashlib
    import random
    from datetime import datetime, timezone

    path = Path(file_path)
    records, problems = lint_upload(path)
    if problems:
        shown = "; ".join(f"row {number}: {text}" if number else f"file: {text}" for number, text in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise StudioError(f"Not used: {len(problems)} row(s) have errors — {shown}{more}.",
                          "Open the file in the Data tab: it lists every problem, fixes many automatically and "
                          "saves a clean dataset for training.")
    if not records:
        raise StudioError(f"'{path.name}' has no rows.", "Upload a file with one {\"messages\": [...]} object per line.")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_validation = max(1, round(len(records) * validation_fraction)) if len(records) >= 10 else 0
    validation = [records[i] for i in sorted(order[:n_validation])]
    train = [records[i] for i in sorted(order[n_validation:])]
    name = paths.safe_name(path.stem, default="upload", max_length=40)
    folder_id = f"{name}-{paths.new_id()}"
    root = paths.datasets_dir()
    staging, final = root / f".staging-{folder_id}", root / folder_id
    manifest = {
        "id": folder_id, "name": name, "source_name": paths.safe_name(path.name, default="upload"),
        "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "format": "messages",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "counts": {"train": len(train), "validation": len(validation), "rejected": 0},
        "findings_summary": {}, "stats": {}, "origin": "train-tab upload",
        "owner": owner or _current_owner(),
    }
    try:
        staging.mkdir(parents=True)
        for split, rows in (("train", train), ("validation", validation)):
            paths.atomic_write_text(staging / f"{split}.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        paths.atomic_write_text(staging / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        os.rename(staging, final)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise StudioError(f"Could not save the dataset: {error.strerror or error}.",
                          "Check free disk space and that the data folder is writable.") from error
    summary = (f"✅ **{escape.md_inline(name)}**: no errors in {len(records)} rows; saved as a dataset with {len(train)} training and "
               f"{len(validation)} validation rows. For token statistics and fixes, use the Data tab.")
    return final, summary


def _current_owner() -> str:
    from studio import access

    return access.current().user_id or access.LOCAL_OWNER


# ---------------------------------------------------------------- model size


def _params_from_config(config: dict[str, Any]) -> int | None:
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


@dataclass
class ModelShape:
    params: int | None
    hidden: int | None = None
    layers: int | None = None
    vocab: int | None = None
    intermediate: int | None = None
    kv_dim: int | None = None
    source: str = "unknown"  # "config" | "name" | "unknown"

    def lora_params(self, rank: int) -> int | None:
        """Trainable parameters of LoRA on all linear layers of every block."""
        if not (self.hidden and self.layers and self.intermediate):
            return None
        hidden, inter, kv = self.hidden, self.intermediate, self.kv_dim or self.hidden
        per_layer = rank * ((hidden + hidden) * 2 + (hidden + kv) * 2 + (hidden + inter) * 3)
        return self.layers * per_layer


def _shape_from_config(config: dict[str, Any], source: str = "config") -> ModelShape:
    text = config.get("text_config", config)
    params = _params_from_config(config)
    heads = text.get("num_attention_heads") or 1
    head_dim = text.get("head_dim") or (text.get("hidden_size", 0) // max(1, heads))
    return ModelShape(params, text.get("hidden_size"), text.get("num_hidden_layers"), text.get("vocab_size"),
                      text.get("intermediate_size"), (text.get("num_key_value_heads") or heads) * head_dim, source)


def params_from_name(name: str) -> float | None:
    match = re.search(r"(?<![\d.])(\d+(?:\.\d+)?)\s*([MB])(?![A-Za-z])", name, re.IGNORECASE)
    if not match:
        return None
    return float(match.group(1)) * (1e6 if match.group(2).upper() == "M" else 1e9)


def model_shape(ref: str) -> ModelShape:
    """Size of the model without loading it: its config.json (local, bundled, or the Hub cache), else its name."""
    from studio.models import bundled, catalog

    kind = catalog.classify(ref)
    config_path = None
    if kind == "bundled":
        folder = bundled.converted_dir() if bundled.is_converted() else None
        config_path = folder / "config.json" if folder else None
        if config_path is None or not config_path.is_file():
            return ModelShape(BUNDLED_PARAMS, 576, 30, 49152, 1536, 192, "catalog")
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
            return _shape_from_config(json.loads(config_path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            pass
    guess = params_from_name(ref)
    return ModelShape(int(guess) if guess else None, source="name" if guess else "unknown")


# ---------------------------------------------------------------- throughput


def measure_cpu_gflops() -> float:
    """fp32 torch matmul speed of this machine (the Decide tab's measurement, once per process)."""
    try:
        from studio.decide.estimate import measure_this_machine

        return measure_this_machine().peak_tflops * 1000
    except Exception:  # noqa: BLE001 - fall back to the reference machine's figure
        from studio.models.hardware import cpu_cores

        return CPU_GFLOPS_PER_CORE_FALLBACK * cpu_cores()


def gpu_tflops(name: str) -> float | None:
    upper = name.upper()
    for key, tflops in GPU_TFLOPS:
        if key in upper:
            return float(tflops)
    return None


def measured_rate(model: str, runs=None) -> tuple[float, str] | None:
    """Tokens/s of the newest earlier run of this model on this machine, with the run it came from.

    A finished run's whole training loop (evaluations, checkpoints and warm-up included) is the best
    predictor of the next run's time; otherwise the median of its per-step rates."""
    if runs is None:
        try:
            from studio.train import store

            runs = store.list_runs()
        except Exception:  # noqa: BLE001 - history is only a better estimate
            return None
    for record in runs:
        if record.config.get("model") != model:
            continue
        label = record.config.get("name") or record.run_id
        tokens, runtime = record.status.get("train_tokens"), record.status.get("train_runtime")
        if all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in (tokens, runtime)):
            return tokens / runtime, label
        rates = []
        try:
            with open(Path(record.dir) / "events.jsonl", encoding="utf-8") as handle:
                for line in handle:
                    try:
                        value = json.loads(line).get("tokens_per_s")
                    except ValueError:
                        continue
                    if isinstance(value, (int, float)) and value > 0 and math.isfinite(value):
                        rates.append(float(value))
        except OSError:
            continue
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


@dataclass
class Preflight:
    steps: int | None = None
    steps_per_epoch: int | None = None
    tokens: int | None = None  # real (non-padding) tokens the run will process
    processed_tokens: int | None = None  # including padding
    tokens_per_s: float | None = None
    rate_source: str = ""
    seconds: float | None = None
    memory_needed_gb: float | None = None
    memory_available_gb: float | None = None
    memory_kind: str = "RAM"
    params: int | None = None
    lora_params: int | None = None
    learning_rate: float | None = None
    learning_rate_auto: bool = False
    device: str = "CPU"
    checks: list[Check] = field(default_factory=list)
    field_errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # facts about the estimate itself; never block or warn
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

    def summary_rows(self) -> list[tuple[str, str]]:
        from studio.train.charts import format_duration

        def number(value) -> str:
            return f"{value:,}" if isinstance(value, int) else "—"

        steps = number(self.steps) + (f" ({number(self.steps_per_epoch)} per epoch)" if self.steps_per_epoch else "")
        tokens = number(self.tokens) + (f" ({number(self.processed_tokens)} with padding)"
                                        if self.processed_tokens and self.processed_tokens != self.tokens else "")
        speed = (f"about {self.tokens_per_s:,.0f} tokens/s on {self.device} ({self.rate_source})"
                 if self.tokens_per_s else "unknown")
        memory = (f"about {self.memory_needed_gb:.1f} GB needed of {self.memory_available_gb:.1f} GB {self.memory_kind} available"
                  if self.memory_needed_gb is not None and self.memory_available_gb is not None else "unknown")
        rows = [("Estimated time", f"about {format_duration(self.seconds)}" if self.seconds is not None else "unknown"),
                ("Steps", steps), ("Tokens to process", tokens), ("Memory", memory), ("Speed", speed)]
        if self.params:
            trainable = f", {self.lora_params / 1e6:.2f} M trainable (LoRA)" if self.lora_params else ""
            rows.append(("Model size", f"{self.params / 1e6:,.0f} M parameters{trainable}"))
        if self.learning_rate:
            how = " (automatic for this model's size)" if self.learning_rate_auto else ""
            rows.append(("Learning rate", f"{self.learning_rate:g}{how}"))
        return rows

    def markdown(self) -> str:
        md = escape.md_inline  # values and messages name the user's model, dataset and rows
        lines = [f"- **{md(name)}:** {md(value)}" for name, value in self.summary_rows()]
        lines += [f"\n*{md(note)}*" for note in self.notes]
        if self.errors:
            lines.append("\n**Must fix before starting:**")
            lines += [f"- ✕ **{md(c.message)}**" + (f" — {md(c.hint)}" if c.hint else "") for c in self.errors]
        if self.warnings:
            lines.append("\n**Worth a look (you can start anyway):**")
            lines += [f"- ⚠ {md(c.message)}" + (f" — *{md(c.hint)}*" if c.hint else "") for c in self.warnings]
        if not self.checks:
            lines.append("\n✓ **Ready to start.**")
        return "\n".join(lines)


def _steps(rows: int, batch: int, accum: int, epochs: float, max_steps: int | None, world: int = 1) -> tuple[int, int]:
    """Optimizer steps per epoch and in total, as the HF Trainer counts them."""
    batches = math.ceil(rows / (batch * world)) if rows else 0
    per_epoch = max(1, math.ceil(batches / accum)) if batches else 0
    if max_steps:
        return per_epoch, int(max_steps)
    return per_epoch, math.ceil(per_epoch * epochs) if per_epoch else 0


def _dataset_tokens(manifest: dict[str, Any], train_rows: int) -> dict[str, float] | None:
    stats = manifest.get("stats") or {}
    tokens = stats.get("tokens") or {}
    rows = stats.get("rows") or 0
    if not tokens.get("total") or not rows:
        return None
    mean = tokens["total"] / rows
    return {"mean": mean, "p50": tokens.get("p50") or mean, "p95": tokens.get("p95") or mean,
            "p99": tokens.get("p99") or mean, "max": tokens.get("max") or mean, "rows": rows,
            "train_total": mean * train_rows, "model": stats.get("model")}


def _rough_tokens(dataset_folder: Path, limit: int = 2000) -> dict[str, float] | None:
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

    mean = sum(ordered) / len(ordered)
    return {"mean": mean, "p50": pct(50), "p95": pct(95), "p99": pct(99), "max": ordered[-1], "rows": len(ordered),
            "train_total": None, "model": None, "rough": True}


def memory_needed_gb(shape: ModelShape, batch: int, seq: int, bytes_per_weight: float, bytes_per_act: int,
                     checkpointing: bool, lora_rank: int, overhead_gb: float) -> float | None:
    """Weights + LoRA optimizer state + saved activations + logits, plus the framework's own overhead."""
    if not shape.params:
        return None
    weights = shape.params * bytes_per_weight
    lora = (shape.lora_params(lora_rank) or shape.params * 0.01) * 4 * 4  # fp32 weights, grads, Adam m and v
    tokens = batch * seq
    if shape.hidden and shape.layers and shape.intermediate:
        # Saved per token per block (Llama-style): norms, q/k/v, attention out, residuals, 4 MLP tensors.
        per_layer = 7 * shape.hidden + 2 * (shape.kv_dim or shape.hidden) + 4 * shape.intermediate
        if checkpointing:
            activations = tokens * (shape.layers * shape.hidden + per_layer) * bytes_per_act
        else:
            activations = tokens * shape.layers * per_layer * bytes_per_act
        logits = tokens * (shape.vocab or 32000) * 4 * 4  # fp32 logits, log-softmax, its gradient, accuracy metrics
    else:
        activations = shape.params * bytes_per_act * batch * seq / 2048  # no shape: a rough ratio
        logits = 0
    return (weights + lora + activations + logits) / 1024**3 + overhead_gb


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def _available_ram_gb() -> float:
    try:
        import psutil

        return psutil.virtual_memory().available / 1024**3
    except ImportError:  # pragma: no cover
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") / 1024**3


def bitsandbytes_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("bitsandbytes") is not None


def qlora_reason(hardware) -> str | None:
    """Why 4-bit QLoRA is not available here (None when it is)."""
    if hardware.kind != "cuda":
        return "QLoRA 4-bit needs an NVIDIA GPU (CUDA); this machine has none."
    if not bitsandbytes_available():
        return "QLoRA 4-bit needs the bitsandbytes package (pip install bitsandbytes)."
    return None


def zero_gpu_message() -> str | None:
    if not os.environ.get("SPACES_ZERO_GPU"):
        return None
    return ("This Space runs on ZeroGPU, which lends a GPU for a few minutes per call and cannot run a training job. "
            "In the Space settings pick dedicated hardware — e.g. 'Nvidia T4 small' for models up to ~1B "
            "parameters, 'L4' or 'A10G' for larger ones (or 'CPU upgrade' for the bundled model) — or train locally "
            "and upload the adapter. The Compare tab works on ZeroGPU.")


def run_preflight(config, hardware=None, manifest: dict[str, Any] | None = None, runs=None, check_busy: bool = True,
                  cpu_gflops: float | None = None) -> Preflight:
    """Everything the Start button needs to know. `config` is a studio.train.config.RunConfig."""
    from studio.models import catalog, hardware as hardware_module
    from studio.train.charts import format_duration

    report = Preflight()
    report.field_errors = config.validate()
    try:
        report.cli_command = config.to_cli_command()
    except Exception:  # noqa: BLE001 - an invalid value may not print; the field errors say why
        report.cli_command = ""
    report.config_json = config.to_json()
    for name, text in report.field_errors.items():
        report.error(f"{name.replace('_', ' ').capitalize()}: {text}.", "Fix the field marked in the form.", name)

    zero_gpu = zero_gpu_message()
    if zero_gpu:
        report.error("ZeroGPU cannot train.", zero_gpu)

    hardware = hardware or hardware_module.detect_quick()
    gpu = hardware.gpus[0] if hardware.kind == "cuda" and hardware.gpus else None
    report.device = f"{len(hardware.gpus)} × {gpu.name}" if gpu else f"CPU ({hardware.cpu_cores} cores)"

    # model
    shape = ModelShape(None)
    try:
        kind = catalog.classify(str(config.model))
        if kind == "hub" and os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
            shape = model_shape(str(config.model))
            if shape.source != "config":
                report.error(f"'{config.model}' would be downloaded from the Hub, but the studio is offline.",
                             "Pick the bundled model or a local model folder.", "model")
        elif kind == "local" and not (Path(config.model).expanduser() / "config.json").is_file():
            report.error(f"The folder {config.model} has no config.json, so it is not a model folder.",
                         "Pick the folder that holds config.json and the weights.", "model")
        else:
            shape = model_shape(str(config.model))
    except StudioError as error:
        report.error(error.message, error.hint, "model")
    report.params = shape.params
    report.lora_params = shape.lora_params(config.lora_r if isinstance(config.lora_r, int) else 8)
    report.learning_rate_auto = config.learning_rate is None
    if report.learning_rate_auto:  # the worker resolves it the same way from the loaded model
        report.learning_rate = suggested_learning_rate(shape.params)
    elif isinstance(config.learning_rate, (int, float)):
        report.learning_rate = config.learning_rate
    if getattr(config, "trust_remote_code", False):
        report.warn("This model's own Python code will run (trust remote code is on).",
                    "Only do this for models whose authors you trust.")

    # dataset
    manifest = manifest if manifest is not None else (read_manifest(config.dataset) if str(config.dataset).strip() else None)
    train_rows = validation_rows = 0
    token_info = None
    if not str(config.dataset).strip():
        if "dataset" not in report.field_errors:
            report.error("No dataset chosen.", "Pick a saved dataset, or upload a file.", "dataset")
    elif manifest is None:
        report.error(f"'{config.dataset}' is not a saved dataset folder.",
                     "Prepare and save the dataset in the Data tab first.", "dataset")
    else:
        counts = manifest.get("counts") or {}
        train_rows = int(counts.get("train") or 0)
        validation_rows = int(counts.get("validation") or 0)
        if train_rows == 0:
            report.error("The dataset has no training rows.", "Fix the dataset in the Data tab (all rows were rejected?).", "dataset")
        elif train_rows < 20:
            report.warn(f"Only {train_rows} training rows: the model may learn little or memorise them.",
                        "50–100+ varied examples usually work much better.")
        if validation_rows == 0 and train_rows:
            report.warn("No validation rows, so there will be no eval loss and no overfitting warning.",
                        "Save the dataset again with a validation split in the Data tab.")
        token_info = _dataset_tokens(manifest, train_rows) or _rough_tokens(Path(manifest["path"]))
        if token_info and token_info.get("rough"):
            report.notes.append("This dataset has no token statistics: tokens are estimated at about 4 characters each.")
        if token_info and isinstance(config.max_length, int):
            if token_info["p99"] > config.max_length:
                share = "more than 5 %" if token_info["p95"] > config.max_length else "between 1 and 5 %"
                report.warn(f"Max length {config.max_length} cuts {share} of the examples (p99 is {int(token_info['p99'])} tokens).",
                            f"Raise max length to about {suggested_length(token_info['p99'])} (costs memory and time).", "max_length")
            elif token_info["max"] > config.max_length:
                report.warn(f"A few examples (under 1 %) are longer than max length {config.max_length} and will be cut.",
                            "Usually fine; raise max length if their endings matter.")
        stats_model = token_info.get("model") if token_info else None
        if stats_model and stats_model != config.model:
            report.notes.append("The token counts were measured with another model's tokenizer, so these figures are "
                                "approximate (the Data tab gives exact ones for this model).")

    # steps and tokens
    numbers_ok = not any(name in report.field_errors for name in ("batch_size", "grad_accum", "epochs", "max_steps"))
    world = max(1, len(hardware.gpus)) if gpu else 1
    if train_rows and numbers_ok:
        report.steps_per_epoch, report.steps = _steps(train_rows, config.batch_size, config.grad_accum,
                                                      config.epochs, config.max_steps, world)
    if token_info and report.steps and numbers_ok:
        max_length = config.max_length if isinstance(config.max_length, int) else 512
        mean = min(token_info["mean"], max_length)
        rows_seen = report.steps * config.batch_size * config.grad_accum * world
        if not config.max_steps:
            rows_seen = min(rows_seen, math.ceil(train_rows * config.epochs))
        report.tokens = int(mean * rows_seen)
        if config.packing or config.batch_size == 1:
            report.processed_tokens = report.tokens
        else:
            # Each batch is padded to its longest row: roughly the p95 row for batches of 8 or more.
            longest = token_info["p95"] if config.batch_size >= 4 else token_info["p50"] + (token_info["p95"] - token_info["p50"]) / 2
            report.processed_tokens = int(max(mean, min(longest, max_length)) * rows_seen)
        if config.epochs and config.epochs > 5 and not config.max_steps and train_rows < 1000:
            report.warn(f"{config.epochs:g} epochs over {train_rows} rows risks overfitting.",
                        "Watch the eval loss; the best checkpoint is marked on the chart.", "epochs")

    # speed and time
    flop_params = shape.params  # the tied/untied embedding difference is within the estimate's error
    measured = measured_rate(str(config.model), runs) if report.tokens else None
    if measured:
        report.tokens_per_s, run_name = measured
        report.rate_source = f"measured in your run '{run_name}'"
    elif flop_params:
        if gpu:
            peak = gpu_tflops(gpu.name)
            if peak:
                report.tokens_per_s = GPU_EFFICIENCY * peak * 1e12 / (FLOPS_PER_PARAM_TOKEN * flop_params) * world
                report.rate_source = f"estimated from the {gpu.name}'s {peak:g} TFLOP/s"
        else:
            peak_gflops = cpu_gflops or measure_cpu_gflops()
            report.tokens_per_s = CPU_EFFICIENCY * peak_gflops * 1e9 / (FLOPS_PER_PARAM_TOKEN * flop_params)
            report.rate_source = f"estimated from this CPU's {peak_gflops:.0f} GFLOP/s matmul speed, measured now"
            load = _load_average()
            if cpu_gflops is None and load is not None and load > hardware.cpu_cores:
                report.rate_source += (f"; the machine is busy (load {load:.0f} on {hardware.cpu_cores} cores), "
                                       "so expect it to be faster when it is quiet")
    if report.tokens_per_s and report.processed_tokens:
        # Measured rates count real tokens; FLOP estimates count everything the model processes.
        work = report.tokens if measured else report.processed_tokens
        report.seconds = work / report.tokens_per_s
        if not gpu and report.seconds > 4 * 3600:
            report.warn(f"This run would take about {format_duration(report.seconds)} on this CPU.",
                        "Set 'Max steps' for a short trial, use fewer epochs or a smaller max length, or a GPU.")

    # memory
    if shape.params and numbers_ok and not any(name in report.field_errors for name in ("max_length",)):
        seq = config.max_length
        if token_info and not config.packing:
            seq = int(min(config.max_length, token_info["max"]))
        qlora = bool(config.qlora_4bit) and bool(gpu)
        if gpu:
            bytes_weight = 0.55 if qlora else 2
            checkpointing = config.gradient_checkpointing if config.gradient_checkpointing is not None else True
            report.memory_needed_gb = memory_needed_gb(shape, config.batch_size, seq, bytes_weight, 2, checkpointing,
                                                       config.lora_r, overhead_gb=0.6)
            report.memory_available_gb = gpu.memory_gb
            report.memory_kind = "GPU memory"
        else:
            checkpointing = bool(config.gradient_checkpointing)
            report.memory_needed_gb = memory_needed_gb(shape, config.batch_size, seq, 4, 4, checkpointing,
                                                       config.lora_r, overhead_gb=1.0)
            report.memory_available_gb = _available_ram_gb()
            report.memory_kind = "RAM"
        if report.memory_needed_gb and report.memory_available_gb:
            ratio = report.memory_needed_gb / report.memory_available_gb
            if ratio > 1.0:
                report.error(f"Not enough memory: about {report.memory_needed_gb:.1f} GB needed, "
                             f"{report.memory_available_gb:.1f} GB {report.memory_kind} available.",
                             "Lower the batch size (raise gradient accumulation to keep the same effective batch), "
                             "lower max length, or use a smaller model" + (" or QLoRA 4-bit." if gpu else "."), "batch_size")
            elif ratio > 0.8:
                report.warn(f"Memory is tight: about {report.memory_needed_gb:.1f} GB of {report.memory_available_gb:.1f} GB.",
                            "If it runs out of memory, lower the batch size or max length.", "batch_size")

    # hardware features
    if getattr(config, "qlora_4bit", False):
        reason = qlora_reason(hardware)
        if reason:
            report.error(reason, "Turn QLoRA 4-bit off (LoRA in full precision works everywhere).", "qlora_4bit")
    try:
        free = shutil.disk_usage(paths.runs_dir()).free / 1024**3
        if free < 1.0:
            report.error(f"Only {free:.2f} GB of disk left for checkpoints.", "Delete old runs or free disk space.")
        elif free < 5.0:
            report.warn(f"Only {free:.1f} GB of disk left; checkpoints may fill it.", "Delete old runs you no longer need.")
    except OSError:
        pass
    if check_busy:
        try:
            from studio.train import supervisor

            current = supervisor.busy()
        except Exception:  # noqa: BLE001 - no supervisor means nothing is running
            current = None
        if current is not None:
            report.error(current.message, "Wait for it to finish, or stop it (its owner or the admin can).")
    if isinstance(config.learning_rate, (int, float)) and config.learning_rate > 1e-3 and "learning_rate" not in report.field_errors:
        report.warn(f"Learning rate {config.learning_rate:g} is high for LoRA; the loss may jump or become NaN.",
                    "1e-4 to 5e-4 is the usual range.", "learning_rate")
    if not getattr(config, "assistant_only_loss", True):
        report.warn("The loss is computed on the whole conversation (prompts too), not only the answers.",
                    "Fine for plain-text data; for chat data 'assistant-only loss' usually learns the answers better.")
    return report


def suggested_length(p99: float, step: int = 64) -> int:
    return int(max(step, math.ceil(p99 / step) * step))
