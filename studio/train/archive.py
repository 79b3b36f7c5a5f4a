"""Finished runs kept in a mounted storage bucket (STUDIO_ARCHIVE_DIR), and restored after a restart.

A storage bucket mounted on a Hugging Face Space is object storage, not a POSIX disk: a file is uploaded
when it is closed, an existing file can only be overwritten whole (no appends), and there are no locks
and no atomic renames. A live run needs all three (events.jsonl appends, status.json replaced under a
lock), so live runs stay on local disk (STUDIO_HOME) and a run is copied to the bucket once it has
finished: every file written whole, then ARCHIVED.json (the files and their sizes) last. A folder whose
ARCHIVED.json is missing or does not match its files is an incomplete copy and is never restored.
`restore_runs()` copies archived runs that the local disk lacks back into it (after a Space restart);
the local copy is written under a temporary name and renamed into place (the local disk renames atomically).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from studio import paths
from studio.train import store

ARCHIVE_ENV = "STUDIO_ARCHIVE_DIR"
MARKER = "ARCHIVED.json"
_SKIPPED = (".lock", ".tmp")  # lock files and half-written temporaries never leave the local disk


def archive_dir() -> Path | None:
    value = os.environ.get(ARCHIVE_ENV, "").strip()
    return Path(value).expanduser() / "runs" if value else None


def _files(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and not path.name.endswith(_SKIPPED) and not path.name.startswith(".") and path.name != MARKER
    )


def archive_run(run_dir: Path) -> Path | None:
    """Copy a finished run to the archive (None when no archive is configured or the run is still live)."""
    target_root = archive_dir()
    run_dir = Path(run_dir)
    if target_root is None or store.read_status(run_dir).get("status") not in store.FINISHED:
        return None
    target = target_root / run_dir.name
    (target / MARKER).unlink(missing_ok=True)  # an older copy is incomplete until the new marker is written
    listing = {}
    for path in _files(run_dir):
        name = path.relative_to(run_dir).as_posix()
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)  # one whole write, closed: what a mounted bucket supports
        listing[name] = path.stat().st_size
    (target / MARKER).write_text(json.dumps({"files": listing}, indent=1), encoding="utf-8")
    return target


def is_complete(folder: Path) -> bool:
    try:
        listing = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return all(
        (Path(folder) / name).is_file() and (Path(folder) / name).stat().st_size == size
        for name, size in listing.items()
    )


def restore_runs() -> list[str]:
    """Copy complete archived runs missing from the local disk back; returns their run ids."""
    source_root = archive_dir()
    if source_root is None or not source_root.is_dir():
        return []
    restored = []
    local_root = paths.runs_dir()
    for folder in sorted(source_root.iterdir()):
        if (
            not store.RUN_ID_PATTERN.match(folder.name)
            or (local_root / folder.name).exists()
            or not is_complete(folder)
        ):
            continue
        staging = local_root / f".restore-{folder.name}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(folder, staging, ignore=shutil.ignore_patterns(MARKER))
        os.replace(staging, local_root / folder.name)
        restored.append(folder.name)
    return restored


def archive_quietly(run_dir: Path) -> None:
    """archive_run for the worker and the supervisor: a failed copy is reported, never raised."""
    try:
        archive_run(run_dir)
    except Exception as error:  # noqa: BLE001 - the run itself is safe on local disk
        print(f"[studio] could not archive {Path(run_dir).name} to {archive_dir()}: {error}", flush=True)
