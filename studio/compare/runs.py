"""Read finished training runs (the run-folder contract) for comparison.

A run folder is `paths.runs_dir()/<run_id>/` with config.json ("model", "dataset", ...),
status.json, events.jsonl and, once the run completed or stopped gracefully, adapter/.
Compare also accepts a bare PEFT adapter folder (adapter_config.json + weights).

Who may open what is studio.access's decision: in public mode a run is named by its id (or its folder inside
the runs folder, symlinks resolved), never another server path, and only the caller's own runs, the shared
ones, or any for the operator. Compare's results (eval.json, votes.json, report.*) are written only inside
the run folder, in the viewer's namespace: `compare/` for the run's owner (and everyone in private mode),
`compare/visitors/<viewer>/` for anyone else, so each voter has their own ballot and nobody writes into
another's results.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from studio import access, paths
from studio.errors import StudioError
from studio.train import store

MAX_VISITOR_FOLDERS = 500  # visitors with their own evaluation, ballot or report in one shared run


@dataclass
class RunInfo:
    run_id: str
    dir: Path  # the run folder (or the adapter folder itself for a bare adapter)
    adapter_dir: Path
    base_ref: str  # catalog reference of the base model
    config: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)
    is_bare_adapter: bool = False
    viewer_dir: Path | None = None  # the viewer's namespace inside the run folder (None: the run's own)

    @property
    def name(self) -> str:
        return self.config.get("name") or self.run_id

    @property
    def owner(self) -> str:
        return str(self.status.get("owner") or "")

    @property
    def compare_dir(self) -> Path:
        """Where Compare keeps this viewer's results (eval.json, votes.json, report.*)."""
        return self.viewer_dir or self.dir / "compare"

    def writable_compare_dir(self) -> Path:
        """compare_dir, before anything is written there: a shared run keeps at most MAX_VISITOR_FOLDERS visitors'
        folders (visitor ids are free to make; each would otherwise add a folder to the operator's run)."""
        folder = self.compare_dir
        if self.viewer_dir is not None and not folder.is_dir():
            visitors = folder.parent
            count = sum(1 for child in visitors.iterdir() if child.is_dir()) if visitors.is_dir() else 0
            if count >= MAX_VISITOR_FOLDERS:
                raise StudioError(
                    f"This shared run already keeps the results of {count} visitors, the most it takes.",
                    "Chatting and the owner's evaluation still work; ask the operator for a new round of votes.",
                )
        return folder

    @property
    def owner_compare_dir(self) -> Path:
        """The run's own results (its owner's): others may read them, e.g. a shared demo's evaluation."""
        return self.dir / "compare"

    @property
    def from_checkpoint(self) -> bool:
        """The run has no final adapter: its last checkpoint stands in (a failed, diverged or killed run)."""
        return not self.is_bare_adapter and self.adapter_dir.name != store.ADAPTER_DIR

    @property
    def dataset_dir(self) -> Path | None:
        dataset = self.config.get("dataset")
        return Path(dataset) if dataset else None


def read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def is_adapter_dir(folder: Path) -> bool:
    folder = Path(folder)
    return (folder / "adapter_config.json").is_file() and any(
        (folder / name).is_file() for name in ("adapter_model.safetensors", "adapter_model.bin")
    )


def _locate(run_id_or_dir: str) -> Path:
    text = str(run_id_or_dir or "").strip()
    if not text:
        raise StudioError("No run was picked.", "Pick a finished run from the list, or paste an adapter folder path.")
    if access.is_public():
        # A run id, or a run's own folder inside the runs folder: never another server path (nor a hint of one).
        root = paths.runs_dir().resolve()
        if access.PATH_LIKE.search(text):
            folder = access.inside(text, root)
            if folder is None or folder.parent != root or not folder.is_dir():
                raise access.not_found(Path(text).name or text)
            return folder
        name = paths.safe_name(text, default="")
        folder = access.inside(root / name, root) if name and name == text else None
        if folder is not None and folder.parent == root and folder.is_dir():
            return folder
        raise access.not_found(text)
    candidate = Path(text).expanduser()
    if candidate.is_dir():
        return candidate.resolve()
    by_id = paths.runs_dir() / paths.safe_name(text, default="")
    if paths.safe_name(text, default="") and by_id.is_dir():
        return by_id
    raise StudioError(
        f"No run called '{text}' was found.",
        f"Runs live in {paths.runs_dir()}; pick one from the list or paste the path of a run or adapter folder.",
    )


def load_run(run_id_or_dir: str | Path, action: str = "view") -> RunInfo:
    """A run id, a run folder or a PEFT adapter folder → RunInfo; plain errors when it cannot be compared.
    The caller (studio.access.current) must be allowed `action` on it."""
    folder = _locate(str(run_id_or_dir))
    if access.is_public():
        record = _Visible(folder.name, store.read_status(folder))
        identity = access.current()
        try:
            access.authorize(identity, action, record)
        except access.AccessDenied:
            raise access.not_found(folder.name) from None
        info = _load_folder(folder)
        if not access.owns(identity, record):
            info.viewer_dir = folder / "compare" / "visitors" / identity.namespace
        return info
    return _load_folder(folder)


@dataclass
class _Visible:
    run_id: str
    status: dict


def _load_folder(folder: Path) -> RunInfo:
    if is_adapter_dir(folder) and not is_adapter_dir(folder / store.ADAPTER_DIR):
        adapter_config = read_json(folder / "adapter_config.json", {}) or {}
        base = adapter_config.get("base_model_name_or_path") or ""
        if not base:
            raise StudioError(
                f"The adapter in {folder} does not say which base model it was trained on.",
                "Open it through its run folder, whose config.json names the model.",
            )
        return RunInfo(
            run_id=folder.name,
            dir=folder,
            adapter_dir=folder,
            base_ref=base,
            config={"model": base},
            status={},
            is_bare_adapter=True,
        )
    config = store.read_config(folder)
    if config is None:
        raise StudioError(
            f"{folder} is neither a training run folder nor a PEFT adapter folder.",
            "A run folder has config.json and adapter/; an adapter folder has adapter_config.json.",
        )
    status = store.read_status(folder)
    adapter_dir = store.usable_adapter(folder) or folder / store.ADAPTER_DIR  # a failed run: its last checkpoint
    if not (is_adapter_dir(adapter_dir) or store.is_whole_model(adapter_dir)):
        state = status.get("status", "unknown")
        raise StudioError(
            f"Run '{config.get('name') or folder.name}' has no adapter yet (status: {state}).",
            "Compare needs a run that completed or was stopped gracefully; wait for it to finish, or resume it in "
            "Train.",
        )
    base = config.get("model") or (read_json(adapter_dir / "adapter_config.json", {}) or {}).get(
        "base_model_name_or_path"
    )
    if not base:
        raise StudioError(
            f"Run '{folder.name}' does not name its base model.", 'Its config.json needs a "model" entry.'
        )
    return RunInfo(
        run_id=config.get("run_id") or folder.name,
        dir=folder,
        adapter_dir=adapter_dir,
        base_ref=base,
        config=config,
        status=status,
    )


def list_comparable_runs() -> list[dict]:
    """Runs with an adapter that the caller may open (studio.access), newest first: {"run_id", "label", "dir",
    "status"}."""
    identity = access.current()
    found = []
    for folder in paths.runs_dir().iterdir():
        adapter = store.usable_adapter(folder) if folder.is_dir() else None
        if adapter is None or not (is_adapter_dir(adapter) or store.is_whole_model(adapter)):
            continue
        config, status = store.read_config(folder) or {}, store.read_status(folder)
        if not access.can_see(identity, _Visible(folder.name, status)):
            continue
        name = config.get("name") or folder.name
        state = status.get("status", "unknown")
        when = status.get("ended_at") or status.get("started_at") or ""
        model = str(config.get("model", "?")).replace("bundled:", "")
        label = f"{name} · {model} · {state}" + (f" · {str(when)[:16]}" if when else "")
        if adapter.name != store.ADAPTER_DIR:
            label += f" · its last checkpoint ({adapter.name})"
        if status.get("shared") and access.is_public():
            label += " · shared demo"
        label = access.redact(label)
        found.append(
            {
                "run_id": folder.name,
                "label": label,
                "dir": str(folder),
                "status": state,
                "mtime": adapter.stat().st_mtime,
            }
        )
    found.sort(key=lambda item: item["mtime"], reverse=True)
    return found


def training_active() -> bool:
    """True while a training run's worker is alive (starting, running or still saving): the trainer's threads."""
    return store.training_active()


# ---- prompts: the run's validation split or an uploaded JSONL of chat rows ----


def split_row(messages: list[dict]) -> tuple[list[dict], str | None] | None:
    """Chat row → (prompt messages ending with the last user turn, reference answer or None)."""
    messages = [
        {"role": m.get("role"), "content": flatten_content(m.get("content"))} for m in messages if isinstance(m, dict)
    ]
    reference = None
    if messages and messages[-1]["role"] == "assistant":
        reference = messages[-1]["content"]
        messages = messages[:-1]
    if not messages or messages[-1]["role"] != "user":
        return None
    return messages, reference


def flatten_content(content) -> str:
    """Gradio 6 hands message content as a list of {"type": "text", "text": ...} parts: join them."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or "")
    if isinstance(content, (list, tuple)):
        return "".join(flatten_content(part) for part in content)
    return str(content)


def read_prompt_file(path: str | Path, limit: int | None = None) -> list[dict]:
    """JSONL of chat rows → [{"messages": prompt messages, "prompt": last user text, "reference": str|None}]."""
    path = Path(path)
    if not path.is_file():
        raise StudioError(
            f"Prompt file {path} was not found.", 'Give a JSONL file with one {"messages": [...]} per line.'
        )
    rows, bad = [], 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                bad += 1
                continue
            messages = record.get("messages") if isinstance(record, dict) else None
            if messages is None and isinstance(record, dict) and "prompt" in record:
                messages = [{"role": "user", "content": record["prompt"]}]
                if record.get("completion") or record.get("reference"):
                    messages.append(
                        {"role": "assistant", "content": record.get("completion") or record.get("reference")}
                    )
            split = split_row(messages) if isinstance(messages, list) else None
            if split is None:
                bad += 1
                continue
            prompt_messages, reference = split
            rows.append({"messages": prompt_messages, "prompt": prompt_messages[-1]["content"], "reference": reference})
            if limit and len(rows) >= limit:
                break
    if not rows:
        raise StudioError(
            f"No usable prompts in {path.name}" + (f" ({bad} lines were not chat rows)." if bad else "."),
            'Each line should be {"messages": [{"role": "user", "content": ...}, {"role": "assistant", ...}]}.',
        )
    return rows


def validation_file(run: RunInfo) -> Path | None:
    dataset = run.dataset_dir
    if dataset and (dataset / "validation.jsonl").is_file():
        return dataset / "validation.jsonl"
    return None


def validation_prompts(run: RunInfo, limit: int | None = None) -> list[dict]:
    file = validation_file(run)
    if file is None:
        raise StudioError(
            f"Run '{run.name}' has no validation split to evaluate on.",
            "Upload a prompt file (JSONL chat rows) instead.",
        )
    return read_prompt_file(file, limit)
