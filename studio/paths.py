"""Where the studio keeps its files.

STUDIO_HOME if set; else /data/studio when /data is a writable folder (persistent storage
on a Hugging Face Space); else ./studio_data. Hugging Face caches go under it too, unless
the user chose their own HF_HOME, so nothing lands in ~/.cache behind the user's back.

Writing files that several threads and processes share: atomic_write_text/bytes (a unique temp file,
fsync, os.replace: readers see the old or the new file, never half of one); file_lock around a
read-modify-write; locked_update(path, change) for JSON files (votes, status, manifests, queues), which
never replaces a file it cannot parse: that one is kept aside as <name>.corrupt-<time> (CorruptFile).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from studio.errors import StudioError

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


class CorruptFile(StudioError):
    """A saved JSON file did not parse. It was moved aside (kept_as), never overwritten."""

    def __init__(self, path: Path, kept_as: Path | None):
        where = f"kept as {kept_as.name}" if kept_as else "left in place"
        super().__init__(
            f"{Path(path).name} in {Path(path).parent.name} was damaged and could not be read ({where}).",
            "A fresh one is started from now on; the damaged copy stays next to it for inspection.",
        )
        self.path = Path(path)
        self.kept_as = kept_as


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write so readers never see half a file and concurrent writers never share a temp file:
    a unique temp file in the same folder (mkstemp), fsync, then os.replace (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_new_file(folder: Path, stem: str, suffix: str, text: str) -> Path:
    """Write `text` to a file that did not exist: <stem><suffix>, else <stem>_2<suffix>, … Never replaces a file,
    even when two writers pick the same name in the same second (os.link refuses an existing name). "_" sorts
    after ".", so a listing by name still shows the first one first."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=f".{stem}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(text.encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        for attempt in range(1, 10_000):
            target = folder / (f"{stem}{suffix}" if attempt == 1 else f"{stem}_{attempt}{suffix}")
            try:
                os.link(tmp, target)
                return target
            except FileExistsError:
                continue
        raise StudioError(f"Too many files called {stem}… in {folder.name}.", "Move some of them elsewhere.")
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


@contextlib.contextmanager
def staged(target: Path, directory: bool = False):
    """Yield a unique temp path next to `target` (a file, or a folder with directory=True) to write into;
    when the block ends without error it replaces `target` atomically, otherwise it is removed.

    For writers that need a path (zipfile, save_pretrained). Two writers never share a temp path; an
    existing folder is swapped out under the target's lock and deleted afterwards."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = f".{target.name}.", ".tmp"
    if directory:
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=prefix, suffix=suffix))
    else:
        handle, name = tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=suffix)
        os.close(handle)
        tmp = Path(name)
    try:
        yield tmp
        with file_lock(target):
            old = None
            if directory and target.exists():
                old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
                os.replace(target, old)  # onto the empty folder just made: atomic, and the name is ours
            os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise


@contextlib.contextmanager
def file_lock(path: Path):
    """Exclusive lock for a read-modify-write of `path`, across threads and processes.

    flock on a side file (.<name>.lock): `path` itself is replaced atomically, so it cannot carry
    the lock. Each call opens its own descriptor, so threads of one process exclude each other too."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def is_locked(path: Path) -> bool:
    """Someone holds file_lock(path) right now (asked without waiting)."""
    try:
        with open(Path(path).with_name(f".{Path(path).name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(lock, fcntl.LOCK_UN)
    except BlockingIOError:
        return True
    except OSError:  # no cache folder yet: nothing can hold it
        return False
    return False


def keep_aside(path: Path) -> Path | None:
    """Move a damaged file out of the way (name.corrupt-<UTC time>) so it is kept, not overwritten."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    counter = 1
    while target.exists():
        counter += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{counter}")
    try:
        os.replace(path, target)
    except OSError:
        return None
    return target


_MISSING = object()


def read_json_strict(path: Path, default=None):
    """The parsed JSON of `path`; `default` when it does not exist. A file that does not parse is moved
    aside and CorruptFile raised: the caller tells the user, and nothing silently replaces it."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return default
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise CorruptFile(path, keep_aside(path)) from None


def locked_update(path: Path, change, default=None, indent: int | None = 1):
    """Read-modify-write a JSON file under its lock and return the new value.

    change(value) returns the new value, or mutates `value` in place and returns None. `default`
    (a value or a zero-argument callable) stands in when the file does not exist yet. A damaged file
    raises CorruptFile (kept aside, never replaced); an exception from `change` leaves the file as it was."""
    path = Path(path)
    with file_lock(path):
        fallback = default() if callable(default) else copy.deepcopy(default)
        value = read_json_strict(path, fallback)
        result = change(value)
        value = value if result is None else result
        atomic_write_text(path, json.dumps(value, indent=indent, ensure_ascii=False, default=str) + "\n")
    return value
