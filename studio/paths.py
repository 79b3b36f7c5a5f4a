"""Where the studio keeps its files.

STUDIO_HOME if set; else /data/studio when /data is a writable folder (persistent storage
on a Hugging Face Space); else ./studio_data. Hugging Face caches go under it too, unless
the user chose their own HF_HOME, so nothing lands in ~/.cache behind the user's back.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

SPACES_STORAGE = Path("/data")


def studio_home(env: dict | None = None, spaces_storage: Path = SPACES_STORAGE) -> Path:
    env = os.environ if env is None else env
    if env.get("STUDIO_HOME"):
        return Path(env["STUDIO_HOME"]).expanduser().resolve()
    if spaces_storage.is_dir() and os.access(spaces_storage, os.W_OK):
        return spaces_storage / "studio"
    return Path("studio_data").resolve()


def home() -> Path:
    path = studio_home()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _subfolder(name: str) -> Path:
    path = home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def datasets_dir() -> Path:
    return _subfolder("datasets")


def runs_dir() -> Path:
    return _subfolder("runs")


def models_dir() -> Path:
    return _subfolder("models")


def uploads_dir() -> Path:
    return _subfolder("uploads")


def configure_caches(env: dict | None = None) -> None:
    """Point the Hugging Face caches into the studio folder unless the user set HF_HOME."""
    env = os.environ if env is None else env
    if not env.get("HF_HOME"):
        env["HF_HOME"] = str(home() / "hf_cache")
    env.setdefault("HF_DATASETS_CACHE", str(Path(env["HF_HOME"]) / "datasets"))


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str, default: str = "item", max_length: int = 60) -> str:
    """A user-supplied name made safe to use as one path component (never '..', never a slash)."""
    base = os.path.basename(str(name).replace("\\", "/"))
    cleaned = _UNSAFE.sub("-", base).strip(".-_")[:max_length].strip(".-_")
    return cleaned or default


def new_id(prefix: str = "") -> str:
    """An unguessable id, also safe as a folder name."""
    token = secrets.token_urlsafe(9).replace("-", "x").replace("_", "y")
    return f"{prefix}{token}"


def atomic_write_text(path: Path, text: str) -> None:
    """Write so readers never see half a file: temp file in the same folder, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
