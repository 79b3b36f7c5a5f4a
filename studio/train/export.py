"""Take a trained adapter out of the studio: a zip download, merged full weights, or a push to the Hub.

Works on a run folder (see the run-folder contract): `adapter/` once the run completed or stopped
gracefully, otherwise the newest `checkpoints/checkpoint-N/` (a run that was killed still has those).
A Hugging Face token is only ever held in memory for the one call that needs it: never written to the
run folder, config, logs or events, and scrubbed from any error message.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from studio import paths
from studio.errors import StudioError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
MERGED_DIR = "merged"
EXPORTS_DIR = "exports"
_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")


@dataclass
class AdapterSource:
    folder: Path
    from_checkpoint: bool  # True when the run has no final adapter/ and a checkpoint stands in

    @property
    def note(self) -> str:
        if not self.from_checkpoint:
            return "the final adapter"
        return f"the last checkpoint ({self.folder.name}); the run has no final adapter"


def _config(run_dir: Path) -> dict:
    try:
        return json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise StudioError(f"The run folder {run_dir} has no readable config.json.",
                          "Pick another run; this one may have been deleted.") from error


def _checkpoint_number(folder: Path) -> int:
    try:
        return int(folder.name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def adapter_source(run_dir: Path) -> AdapterSource:
    run_dir = Path(run_dir)
    final = run_dir / "adapter"
    if (final / "adapter_config.json").is_file():
        return AdapterSource(final, False)
    checkpoints = sorted(
        (folder for folder in (run_dir / "checkpoints").glob("checkpoint-*") if (folder / "adapter_config.json").is_file()),
        key=_checkpoint_number,
    )
    if checkpoints:
        return AdapterSource(checkpoints[-1], True)
    raise StudioError(
        "This run has no adapter yet.",
        "An adapter is saved when a run completes, is stopped with Stop, or reaches its first checkpoint.",
    )


def zip_adapter(run_dir: Path) -> Path:
    """RUN_DIR/exports/<run name>-adapter.zip with the adapter, its tokenizer and the model card."""
    run_dir = Path(run_dir)
    source = adapter_source(run_dir)
    config = _config(run_dir)
    name = paths.safe_name(config.get("name") or run_dir.name, default="run")
    target = run_dir / EXPORTS_DIR / f"{name}-adapter.zip"
    files = sorted(path for path in source.folder.rglob("*") if path.is_file())
    with paths.staged(target) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            # Optimizer/scheduler/RNG state is only for resuming; it is not part of the adapter.
            if source.from_checkpoint and path.name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json", "training_args.bin"):
                continue
            archive.write(path, f"{name}/{path.relative_to(source.folder)}")
        card = run_dir / "README.md"
        if card.is_file() and not (source.folder / "README.md").is_file():
            archive.write(card, f"{name}/README.md")
    return target


# ---------------------------------------------------------------- merge


def _folder_bytes(folder: Path, suffixes=WEIGHT_SUFFIXES) -> int:
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file() and path.suffix in suffixes)


def _base_source(config: dict) -> str:
    from studio.models import catalog

    return catalog.resolve(config.get("model") or catalog.BUNDLED)


def merge_disk_needed(run_dir: Path) -> dict:
    """{"needed_bytes", "free_bytes", "enough", "text"}: merged weights are about the size of the base weights."""
    run_dir = Path(run_dir)
    config = _config(run_dir)
    needed = None
    try:
        source = Path(_base_source(config))
        if source.is_dir():
            needed = _folder_bytes(source)
    except StudioError:
        needed = None
    if not needed:
        params = _params_from_name(str(config.get("model", "")))
        needed = int(params * 2) if params else None  # bf16
    free = shutil.disk_usage(run_dir).free
    enough = needed is None or needed * 1.1 < free
    if needed is None:
        text = f"Disk needed: about the size of the base model's weights (unknown here). Free: {_gb(free)}."
    else:
        text = f"Disk needed: about {_gb(needed)} (the size of the base model). Free: {_gb(free)}."
    return {"needed_bytes": needed, "free_bytes": free, "enough": enough, "text": text}


def _params_from_name(name: str) -> float | None:
    match = re.search(r"(\d+(?:\.\d+)?)\s*([MB])\b", name.replace("-", " "), re.IGNORECASE)
    if not match:
        return None
    return float(match.group(1)) * (1e6 if match.group(2).upper() == "M" else 1e9)


def _gb(size: int) -> str:
    return f"{size / 1024**3:.2f} GB" if size >= 100 * 1024**2 else f"{size / 1024**2:.0f} MB"


def merge(run_dir: Path, progress=None, token: bool | str | None = None) -> Path:
    """Base + adapter merged into plain full weights in RUN_DIR/merged/ (PEFT merge_and_unload).

    `token` is handed to the Hub downloads: False (no token) for a visitor's run, None (the server's) for an
    operator's. A run that asks for remote code merges only as studio.access allows (public mode: operators,
    with STUDIO_ALLOW_REMOTE_CODE=1)."""
    run_dir = Path(run_dir)
    config = _config(run_dir)
    source = adapter_source(run_dir)
    disk = merge_disk_needed(run_dir)
    if not disk["enough"]:
        raise StudioError(f"Not enough disk space to merge. {disk['text']}",
                          "Free some space (delete old runs or merged models) and try again.")
    ref = config.get("model") or ""
    trust = bool(config.get("trust_remote_code", False))
    if trust:
        from studio import access

        access.require_remote_code_allowed(access.current())
    if progress:
        progress(0.1, "Loading the base model…")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.models.loading import explain_load_error

    base_source = _base_source(config)
    try:
        base = AutoModelForCausalLM.from_pretrained(base_source, dtype="auto", trust_remote_code=trust, token=token)
    except Exception as error:  # noqa: BLE001 - every failure becomes a plain message
        raise explain_load_error(ref, error) from error
    if progress:
        progress(0.5, "Merging the adapter into the weights…")
    try:
        merged = PeftModel.from_pretrained(base, str(source.folder)).merge_and_unload()
    except Exception as error:  # noqa: BLE001
        raise StudioError(f"Could not apply the adapter to {ref}: {error}",
                          "The adapter must come from a run on this same base model.") from error
    target = run_dir / MERGED_DIR
    if progress:
        progress(0.8, "Saving the merged model…")
    try:
        # A folder of its own per merge, swapped in whole: two merges at once never mix their files.
        with paths.staged(target, directory=True) as tmp:
            merged.save_pretrained(tmp, safe_serialization=True)
            tokenizer_source = source.folder if (source.folder / "tokenizer_config.json").is_file() else base_source
            AutoTokenizer.from_pretrained(str(tokenizer_source), trust_remote_code=trust, token=token).save_pretrained(tmp)
            card = run_dir / "README.md"
            if card.is_file():
                shutil.copyfile(card, tmp / "README.md")
    except OSError as error:
        raise StudioError(f"Could not save the merged model: {error.strerror or error}",
                          "Check free disk space and that the data folder is writable.") from error
    return target


# ---------------------------------------------------------------- push


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "hf_***") if token else text


def push_to_hub(run_dir: Path, repo_id: str, token: str, what: str = "adapter", private: bool = True) -> str:
    """Upload the adapter (or the merged model) to a Hub repo; returns the repo URL.

    `token` lives only in this call's memory (HfApi(token=...)).
    """
    run_dir = Path(run_dir)
    repo_id = (repo_id or "").strip()
    token = (token or "").strip()
    if not _REPO_ID.match(repo_id):
        raise StudioError(f"'{repo_id}' is not a valid Hub repository name.",
                          "Use your-username/my-adapter (letters, digits, '-', '_', '.').")
    if not token:
        raise StudioError("A Hugging Face token is needed to push.",
                          "Create a token with write access at huggingface.co/settings/tokens and paste it here. "
                          "It is used for this upload only and never saved.")
    if what == "merged":
        folder = run_dir / MERGED_DIR
        if not (folder / "config.json").is_file():
            raise StudioError("There is no merged model for this run yet.", "Click 'Merge into full weights' first.")
    else:
        folder = adapter_source(run_dir).folder
    if _offline():
        raise StudioError("The studio is offline, so nothing can be pushed to the Hugging Face Hub.",
                          "Download the adapter zip instead, or restart the studio with internet access "
                          "(HF_HUB_OFFLINE unset).")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=f"Upload {what} from Fine-Tune Studio",
                          ignore_patterns=["optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"])
        card = run_dir / "README.md"
        if card.is_file() and not (folder / "README.md").is_file():
            api.upload_file(path_or_fileobj=str(card), path_in_repo="README.md", repo_id=repo_id,
                            commit_message="Add model card")
    except Exception as error:  # noqa: BLE001 - mapped to a plain message without the token
        raise _explain_push_error(error, repo_id, token) from None
    return str(url)


def _explain_push_error(error: Exception, repo_id: str, token: str) -> StudioError:
    text = _scrub(f"{type(error).__name__}: {error}", token)
    lowered = text.lower()
    if "offline" in lowered or "connection" in lowered or "resolve" in lowered or "timed out" in lowered:
        return StudioError("Could not reach the Hugging Face Hub.",
                           "Check the internet connection, or download the adapter zip instead.")
    if "401" in lowered or "invalid" in lowered and "token" in lowered or "unauthorized" in lowered:
        return StudioError("The Hugging Face token was refused.",
                           "Paste a valid token with write access (huggingface.co/settings/tokens).")
    if "403" in lowered or "forbidden" in lowered:
        return StudioError(f"The token may not write to {repo_id}.",
                           "Use a token with write access, and a repository under your user or an organisation you belong to.")
    return StudioError(f"The push to {repo_id} failed: {text[:300]}", "Try again; if it keeps failing, download the zip.")
