"""The model card, and the adapter folder as the Hugging Face ecosystem reads it.

`build_card(run_dir)` makes a `huggingface_hub.ModelCard`: YAML metadata the Hub understands (base_model as
a Hub id, library_name peft, pipeline_tag, tags, datasets from the Hub, the base model's license when
known), the training settings and results (loss table, the held-out verdict when Compare saved one in
compare/eval.json), and how to load it. It holds nothing from the server: no local paths, no token.

`finalize_adapter(run_dir)` runs once the worker saved adapter/: the card becomes adapter/README.md
(replacing PEFT's blank template), adapter_config.json names the base model's Hub id when one is known
(the bundled model's included), and training_args.bin — a pickle — is replaced by training_args.json.
Export (zip, push) calls `write_card` again so a verdict added later is in the shipped card.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from studio import escape, paths
from studio.data import store as data_store
from studio.errors import StudioError
from studio.models import bundled, catalog
from studio.train import store

CARD_NAME = "README.md"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
TRAINING_ARGS_JSON = "training_args.json"
# Licenses of the models the catalog offers (the bundled one: SmolLM2 is Apache-2.0).
KNOWN_LICENSES = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": "apache-2.0",
    "HuggingFaceTB/SmolLM2-360M-Instruct": "apache-2.0",
    "Qwen/Qwen2.5-0.5B-Instruct": "apache-2.0",
    "Qwen/Qwen2.5-1.5B-Instruct": "apache-2.0",
    "meta-llama/Llama-3.2-1B-Instruct": "llama3.2",
}
TAGS = ["lora", "sft", "trl", "fine-tune-studio"]
_CACHE_SNAPSHOT = re.compile(r"models--([^/\\]+?)--([^/\\]+)[/\\]snapshots[/\\]")
_SECRET_ARGS = re.compile(r"token|password|secret|hub_model_id", re.I)
_PATH_ARGS = ("output_dir", "logging_dir", "resume_from_checkpoint", "deepspeed", "fsdp_config", "accelerator_config")


# ---------------------------------------------------------------- base model and data


def base_hub_id(model_ref: str) -> str | None:
    """The Hub id of a catalog reference: the bundled model's, a Hub id itself, a local folder that is the
    converted bundled model or a Hugging Face cache snapshot; None for other local folders."""
    ref = str(model_ref or "").strip()
    try:
        kind = catalog.classify(ref)
    except StudioError:
        kind = "hub" if "/" in ref and not ref.startswith(("/", ".", "~")) else "unknown"
    if kind == "bundled":
        return bundled.HUB_ID
    if kind == "hub":
        return ref
    if kind != "local":
        return None
    folder = Path(ref).expanduser().resolve()
    if folder == bundled.converted_dir().resolve() or (folder / "STUDIO_SOURCE.txt").is_file():
        return bundled.HUB_ID
    match = _CACHE_SNAPSHOT.search(str(folder) + "/")
    return f"{match.group(1)}/{match.group(2)}" if match else None


def base_license(model_ref: str, hub_id: str | None) -> str | None:
    """The base model's license when it can be known without the network: the catalog's, or the card
    next to a local folder or in the Hugging Face cache."""
    if hub_id in KNOWN_LICENSES:
        return KNOWN_LICENSES[hub_id]
    candidates = []
    folder = Path(str(model_ref)).expanduser()
    if folder.is_dir():
        candidates.append(folder / CARD_NAME)
    if hub_id:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(hub_id, CARD_NAME)
            if isinstance(cached, str):
                candidates.append(Path(cached))
        except Exception:  # noqa: BLE001 - the license is optional
            pass
    for path in candidates:
        try:
            from huggingface_hub import ModelCard

            license_ = ModelCard.load(path).data.license
        except Exception:  # noqa: BLE001 - a card that cannot be read names no licence
            continue
        if isinstance(license_, str) and license_:
            return license_
    return None


def _manifest(config: dict) -> dict:
    dataset = config.get("dataset")
    return (data_store.read_manifest(dataset) if dataset else None) or {}


def dataset_hub_ids(manifest: dict) -> list[str]:
    hub_id = manifest.get("source_hub_id")
    return [hub_id] if isinstance(hub_id, str) and re.match(r"^[\w.-]+(/[\w.-]+)?$", hub_id) else []


# ---------------------------------------------------------------- card


def _cell(value: Any) -> str:
    """A table cell; the user's text in it (names, paths typed as settings) shows as text, not Markdown."""
    return escape.md_cell("" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value)))


def loss_table(run_dir: Path, rows: int = 12) -> list[str]:
    """A markdown table of train and eval loss, at most `rows` lines (evenly spread, last one kept)."""
    events, _ = store.read_events(run_dir)
    points: dict[int, dict] = {}
    for event in store.events_for_charts(events):
        step = event.get("step")
        if not isinstance(step, int):
            continue
        if event.get("type") == "log" and event.get("loss") is not None:
            points.setdefault(step, {})["loss"] = event["loss"]
        elif event.get("type") == "eval" and event.get("eval_loss") is not None:
            points.setdefault(step, {})["eval_loss"] = event["eval_loss"]
    steps = sorted(points)
    if not steps:
        return []
    if len(steps) > rows:
        stride = (len(steps) - 1) / (rows - 1)
        steps = sorted({steps[round(i * stride)] for i in range(rows)})
    lines = ["| step | train loss | eval loss |", "|---:|---:|---:|"]
    lines += [
        f"| {step} | {_cell(points[step].get('loss'))} | {_cell(points[step].get('eval_loss'))} |" for step in steps
    ]
    return lines


def held_out_lines(run_dir: Path) -> list[str]:
    """What Compare measured on held-out prompts (compare/eval.json), read tolerantly: the verdict when one
    was saved, the loss summary otherwise; nothing when Compare has not evaluated the run."""
    try:
        data = json.loads((Path(run_dir) / "compare" / "eval.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict):
        return []
    lines = []
    verdict = data.get("verdict")
    if isinstance(verdict, dict):
        text = next(
            (verdict.get(key) for key in ("headline", "summary", "text", "label") if isinstance(verdict.get(key), str)),
            None,
        )
        if text:
            lines.append(f"**Verdict:** {text}")
    elif isinstance(verdict, str) and verdict:
        lines.append(f"**Verdict:** {verdict}")
    summary = data.get("summary") if isinstance(data.get("summary"), dict) else {}
    base, tuned = summary.get("base_loss"), summary.get("tuned_loss")
    if isinstance(base, (int, float)) and isinstance(tuned, (int, float)):
        lines.append(
            f"- Mean loss on the reference answers: base {base:.3f} → tuned {tuned:.3f} "
            f"(lower is better; {summary.get('improved', '?')} of {summary.get('with_reference', '?')} prompts "
            f"improved)"
        )
    if isinstance(summary.get("prompts"), int):
        lines.append(
            f"- Prompts compared: {summary['prompts']}"
            + (f" ({summary['in_training']} also in the training data)" if summary.get("in_training") else "")
        )
    return lines


def _training_settings(config: dict, status: dict, base_label: str, dataset_label: str) -> list[tuple[str, Any]]:
    facts = status.get("facts") or {}
    settings = {key: value for key, value in config.items() if key not in ("run_id", "name", "model", "dataset")}
    settings["learning_rate"] = facts.get("learning_rate") or config.get("learning_rate")  # the resolved "auto"
    for key in ("bf16", "gradient_checkpointing", "assistant_only_loss"):
        if key in facts:
            settings[key if key != "assistant_only_loss" else "assistant_only_loss (applied)"] = facts[key]
    return [("base model", base_label), ("dataset", dataset_label)] + sorted(settings.items())


def build_card(run_dir: Path, repo_id: str | None = None, merged: bool = False, status: dict | None = None):
    """The run's model card (huggingface_hub.ModelCard). `repo_id` fills the loading example when known;
    `status` stands in for status.json (the worker's final status, before it writes it)."""
    from huggingface_hub import ModelCard, ModelCardData

    run_dir = Path(run_dir)
    config = store.read_config(run_dir) or {}
    status = status if status is not None else store.read_status(run_dir)
    hub_id = base_hub_id(config.get("model", ""))
    license_ = base_license(config.get("model", ""), hub_id)
    manifest = _manifest(config)
    datasets = dataset_hub_ids(manifest)
    name = str(config.get("name") or run_dir.name)
    base_label = hub_id or "a local model (not on the Hugging Face Hub)"
    dataset_label = datasets[0] if datasets else (manifest.get("name") or "a private dataset")
    full = bool(config.get("full_finetune"))  # a whole model, trained weight by weight: no adapter
    whole = merged or full
    tags = (["full-fine-tuning", *TAGS[1:]] if full else TAGS) + (["merged"] if merged else [])
    data = ModelCardData(
        base_model=hub_id,
        library_name="transformers" if whole else "peft",
        pipeline_tag="text-generation",
        license=license_,
        datasets=datasets or None,
        tags=tags,
        model_name=name,
    )
    counts = manifest.get("counts") or {}
    facts = status.get("facts") or {}
    where = repo_id or "path/to/this/folder"
    kind = "A model" if whole else "A LoRA adapter"
    how = "full fine-tuning, every weight trained" if full else "PEFT LoRA"
    md_inline = escape.md_inline  # names, notes and dataset labels are the user's: text on the Hub, not Markdown
    lines = [
        f"# {md_inline(name)}",
        "",
        f"{kind} fine-tuned from **{md_inline(base_label)}** with Fine-Tune Studio "
        f"(TRL `SFTTrainer`, {how})" + (", merged into full weights." if merged else "."),
        "",
        "## Data",
        "",
        f"- Dataset: {md_inline(dataset_label)}",
        f"- Rows: {facts.get('train_rows', counts.get('train', '?'))} train, "
        f"{facts.get('eval_rows', counts.get('validation', '?'))} validation",
        "",
        "## Training",
        "",
        f"- Status: {status.get('status')} after {status.get('step')} of {status.get('total_steps')} steps",
        f"- Final train loss: {_cell(status.get('final_loss')) or '—'}; best eval loss: "
        f"{_cell(status.get('best_eval_loss')) or '—'}",
        f"- Training tokens: {status.get('train_tokens') or '—'}",
    ]
    lines += [f"- Note: {md_inline(note)}" for note in status.get("notes") or [] if not _mentions_a_path(str(note))]
    table = loss_table(run_dir)
    if table:
        lines += ["", "### Loss", ""] + table
    held_out = held_out_lines(run_dir)
    lines += ["", "## Evaluation on held-out prompts", ""]
    lines += held_out or ["Not evaluated yet (Compare → Evaluate saves a base-vs-tuned evaluation)."]
    lines += ["", "### Settings", "", "| setting | value |", "|---|---|"]
    lines += [
        f"| {key} | {'automatic' if value is None else _cell(value)} |"
        for key, value in _training_settings(config, status, base_label, dataset_label)
    ]
    lines += ["", "## How to use it", "", "```python"]
    if whole:
        lines += [
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f"model = AutoModelForCausalLM.from_pretrained({where!r})",
            f"tokenizer = AutoTokenizer.from_pretrained({where!r})",
        ]
    else:
        lines += [
            "from peft import AutoPeftModelForCausalLM",
            "from transformers import AutoTokenizer",
            "",
            f"model = AutoPeftModelForCausalLM.from_pretrained({where!r})  # loads the base model too",
            f"tokenizer = AutoTokenizer.from_pretrained({where!r})",
        ]
    lines += [
        "messages = [{'role': 'user', 'content': 'Hello!'}]",
        "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors='pt', "
        "return_dict=True)",
        "output = model.generate(**inputs, max_new_tokens=64)",
        "print(tokenizer.decode(output[0][inputs['input_ids'].shape[1]:], skip_special_tokens=True))",
        "```",
        "",
    ]
    if not hub_id and not whole:
        lines.insert(
            -1,
            "The base model is a local folder: load it and attach the adapter with "
            "`PeftModel.from_pretrained(base, folder)`.",
        )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def _mentions_a_path(text: str) -> bool:
    return bool(re.search(r"(^|\s)(/|~/|[A-Za-z]:\\)\S", text)) or str(paths.studio_home()) in text


def write_card(
    run_dir: Path, folder: Path, repo_id: str | None = None, merged: bool = False, status: dict | None = None
) -> Path:
    target = Path(folder) / CARD_NAME
    paths.atomic_write_text(target, str(build_card(run_dir, repo_id, merged, status)))
    return target


# ---------------------------------------------------------------- the adapter folder


def portable_base_reference(model_ref: str) -> str:
    """What adapter_config.json should name: the Hub id, else only the folder's name (never a server path)."""
    hub_id = base_hub_id(model_ref)
    return hub_id or Path(str(model_ref)).name or "local-model"


def set_adapter_base(folder: Path, model_ref: str) -> None:
    """Name the base model's Hub id in the run's adapter_config.json when one is known. A local folder with
    no Hub id keeps its path here (it loads on this machine); exports reduce it to the folder's name."""
    hub_id = base_hub_id(model_ref)
    path = Path(folder) / "adapter_config.json"
    try:
        adapter_config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not hub_id:
        return
    adapter_config["base_model_name_or_path"] = hub_id
    paths.atomic_write_text(path, json.dumps(adapter_config, indent=2, sort_keys=True) + "\n")


def training_args_json(args) -> str:
    """The trainer's settings as JSON, without local paths or anything secret."""
    values = args.to_dict() if hasattr(args, "to_dict") else dict(args)
    clean = {
        key: value
        for key, value in values.items()
        if key not in _PATH_ARGS and not _SECRET_ARGS.search(key) and not key.startswith("_")
    }
    return json.dumps(clean, indent=2, sort_keys=True, default=str) + "\n"


def is_pickle(path: Path) -> bool:
    """Python pickles and torch.save archives (a zip holding a data.pkl), by content."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    if head[:1] == b"\x80":  # pickle protocol 2+
        return True
    if head == b"PK\x03\x04":
        import zipfile

        try:
            return any(name.endswith(".pkl") for name in zipfile.ZipFile(path).namelist())
        except zipfile.BadZipFile:
            return False
    return path.suffix in (".pkl", ".pickle")


def finalize_adapter(run_dir: Path, args=None, chat_template: str | None = None, status: dict | None = None) -> Path:
    """Make RUN_DIR/adapter/ what the Hub expects (see the module docstring). Returns the adapter folder.
    `status`: the run's final status when status.json does not hold it yet (the worker writes it last)."""
    run_dir = Path(run_dir)
    adapter = run_dir / store.ADAPTER_DIR
    config = store.read_config(run_dir) or {}
    set_adapter_base(adapter, config.get("model", ""))
    pickled = adapter / "training_args.bin"
    if args is not None:
        paths.atomic_write_text(adapter / TRAINING_ARGS_JSON, training_args_json(args))
    pickled.unlink(missing_ok=True)
    if chat_template and (adapter / "chat_template.jinja").is_file():
        # The model's own template, not the answer-marked one used for training (they render the same text).
        paths.atomic_write_text(adapter / "chat_template.jinja", chat_template)
    write_card(run_dir, adapter, status=status)
    return adapter
