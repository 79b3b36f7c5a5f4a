"""The run store: one folder per run under paths.runs_dir(), and the only code that knows its files
(docs/formats.md describes them for readers outside the studio). Everything else goes through here.

    <run_id>/config.json    RunConfig JSON, written once at creation
    <run_id>/status.json    atomic; read-modify-write under its lock (paths.locked_update; worker and app both
                            update it); holds "owner" (never empty), "owner_role", "shared" and the queue fields
    <run_id>/events.jsonl   one JSON object per line, appended by the worker
    <run_id>/log.txt        the worker's stdout/stderr and tracebacks
    <run_id>/checkpoints/checkpoint-N/, adapter/ (with its model card, README.md)
    <run_id>/accelerate.json, ranks/rank-N.json   only for a run of several processes (studio.train.distributed):
                            accelerate's config, and each rank's pid and how it ended

events.jsonl is append-only. After a resume the worker appends {"type": "status", "status": "resumed",
"step": N} where N is the checkpoint it continued from: log/eval events written before it with a
step above N belong to the abandoned stretch (after the last checkpoint) and should be dropped
when drawing charts (`events_for_charts` does that).

Run ids come from paths.new_id (unguessable) and are checked with RUN_ID_PATTERN before they
are ever joined to a path, so a run id from a URL or a form cannot point outside runs_dir().
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from studio import access, paths
from studio.errors import StudioError
from studio.train.config import RunConfig

STATUSES = ("queued", "starting", "running", "stopping", "completed", "stopped", "failed", "interrupted")
ACTIVE = ("starting", "running", "stopping")  # a worker process should be alive
FINISHED = ("completed", "stopped", "failed", "interrupted")
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{3,80}$")
RUN_PREFIX = "run-"
CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
EVENTS_FILE = "events.jsonl"
LOG_FILE = "log.txt"
ADAPTER_DIR = "adapter"
CHECKPOINTS_DIR = "checkpoints"
RANKS_DIR = "ranks"


@dataclass
class RunRecord:
    run_id: str
    dir: Path
    config: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return self.status.get("status", "queued")

    @property
    def name(self) -> str:
        return self.config.get("name") or self.run_id

    @property
    def owner(self) -> str:
        return self.status.get("owner") or ""

    @property
    def shared(self) -> bool:
        """An operator marked this run as a demo every visitor may see and chat with."""
        return bool(self.status.get("shared"))

    @property
    def adapter_dir(self) -> Path | None:
        """The run's output folder once it holds weights: a LoRA adapter, or a whole model (full fine-tuning)."""
        adapter = self.dir / ADAPTER_DIR
        return adapter if holds_weights(adapter) else None

    def run_config(self) -> RunConfig:
        return RunConfig.from_dict(self.config)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_run_id(run_id: str) -> str:
    run_id = str(run_id or "").strip()
    if not RUN_ID_PATTERN.match(run_id) or ".." in run_id:
        raise StudioError(
            f"'{run_id[:80]}' is not a run id.", "Pick a run from the history table or `python -m studio runs`."
        )
    return run_id


def run_dir(run_id: str) -> Path:
    return paths.runs_dir() / check_run_id(run_id)


def create_run(config: RunConfig, owner: str = "", owner_role: str = "operator") -> RunRecord:
    """Create the folder of a new run (status "queued"). Assigns config.run_id; the config must be valid.

    A run's owner is never empty: without one it belongs to the local user ("local"). owner_role is the role
    of whoever started it ("operator" or a visitor's): it decides whether the worker may use the server's
    Hugging Face token."""
    owner = str(owner or "").strip() or access.LOCAL_OWNER
    config = config.replace(run_id=paths.new_id(RUN_PREFIX))
    if not config.name:
        config = config.replace(name=f"{_short_model(config.model)} {datetime.now().strftime('%Y-%m-%d %H:%M')}")
    config.check()
    folder = paths.runs_dir() / config.run_id
    folder.mkdir(parents=False, exist_ok=False)
    (folder / CHECKPOINTS_DIR).mkdir()
    paths.atomic_write_text(folder / CONFIG_FILE, config.to_json() + "\n")
    (folder / EVENTS_FILE).touch()
    (folder / LOG_FILE).touch()
    status = {
        "status": "queued",
        "pid": None,
        "step": 0,
        "total_steps": None,
        "created_at": now_iso(),
        "started_at": None,
        "ended_at": None,
        "error": None,
        "best_eval_loss": None,
        "best_checkpoint": None,
        "owner": owner,
        "owner_role": owner_role,
        "notes": [],
    }
    paths.atomic_write_text(folder / STATUS_FILE, json.dumps(status, indent=2) + "\n")
    return RunRecord(config.run_id, folder, config.to_dict(), status)


def _short_model(ref: str) -> str:
    ref = str(ref).rstrip("/")
    return ref.split(":")[-1].split("/")[-1] or "run"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def read_status(folder: Path) -> dict[str, Any]:
    return _read_json(Path(folder) / STATUS_FILE)


def read_config(folder: Path) -> dict[str, Any] | None:
    """The run's config.json as a dict; None when it is missing or not a JSON object (not a run folder)."""
    try:
        data = json.loads((Path(folder) / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_run_config(folder: Path) -> RunConfig:
    """The run's config.json as a RunConfig (raises when it is missing or invalid)."""
    return RunConfig.from_json((Path(folder) / CONFIG_FILE).read_text(encoding="utf-8"))


def update_status(folder: Path, **changes: Any) -> dict[str, Any]:
    """Merge changes into status.json under its lock (worker and app both write it) and return it.

    A status.json that does not parse is kept aside (status.json.corrupt-<time>), never silently replaced:
    the new status starts from the changes and its notes say what happened."""
    path = Path(folder) / STATUS_FILE

    def merge(status):
        if not isinstance(status, dict):
            status = {}
        status.update(changes)
        return status

    try:
        return paths.locked_update(path, merge, default=dict, indent=2)
    except paths.CorruptFile as damaged:
        note = f"{damaged.message} {damaged.hint}"
        return paths.locked_update(
            path,
            lambda status: {**merge(status), "notes": [*(changes.get("notes") or []), note]},
            default=dict,
            indent=2,
        )


def record_rank(folder: Path, rank: int, **changes: Any) -> None:
    """Merge changes into one rank's record (ranks/rank-N.json: its pid, then how it ended and when)."""
    path = Path(folder) / RANKS_DIR / f"rank-{int(rank)}.json"
    path.parent.mkdir(exist_ok=True)
    paths.locked_update(path, lambda record: {**(record if isinstance(record, dict) else {}), **changes}, default=dict)


def read_ranks(folder: Path) -> dict[int, dict[str, Any]]:
    """Rank → its record, for the ranks of the current attempt."""
    ranks = {}
    for path in (Path(folder) / RANKS_DIR).glob("rank-*.json"):
        number = path.stem.removeprefix("rank-")
        if number.isdigit():
            ranks[int(number)] = _read_json(path)
    return ranks


def clear_ranks(folder: Path) -> None:
    shutil.rmtree(Path(folder) / RANKS_DIR, ignore_errors=True)


def append_event(folder: Path, event: dict[str, Any]) -> None:
    """Append one event line; a single write so a reader sees whole lines or nothing new."""
    event = {"time": time.time(), **event}
    line = json.dumps(event, default=_json_default, allow_nan=False) + "\n"
    with open(Path(folder) / EVENTS_FILE, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()


def _json_default(value: Any) -> Any:
    return str(value)


def read_events(folder: Path, since_offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Events appended since `since_offset` (bytes) and the offset to pass next time.

    Only complete lines are returned: a half-written last line is left for the next call.
    Lines that are not JSON objects are skipped.
    """
    path = Path(folder) / EVENTS_FILE
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if since_offset > size:  # the file was replaced: start again
                since_offset = 0
            handle.seek(since_offset)
            chunk = handle.read()
    except FileNotFoundError:
        return [], since_offset
    end = chunk.rfind(b"\n")
    if end < 0:
        return [], since_offset
    events = []
    for raw in chunk[: end + 1].splitlines():
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events, since_offset + end + 1


def load_record(folder: Path) -> RunRecord | None:
    folder = Path(folder)
    config = read_config(folder)
    if not config:
        return None
    return RunRecord(folder.name, folder, config, read_status(folder))


def get_run(run_id: str) -> RunRecord:
    folder = run_dir(run_id)
    record = load_record(folder) if folder.is_dir() else None
    if record is None:
        raise StudioError(f"There is no run '{run_id}'.", "It may have been deleted; see the runs history.")
    return record


def list_runs() -> list[RunRecord]:
    """All runs, newest first. Folders without a readable config.json are skipped."""
    records = []
    for folder in paths.runs_dir().iterdir():
        if folder.is_dir() and RUN_ID_PATTERN.match(folder.name):
            record = load_record(folder)
            if record is not None:
                records.append(record)
    records.sort(key=_creation_order, reverse=True)
    return records


def _creation_order(record: RunRecord) -> tuple[str, int]:
    """created_at has whole seconds; the config file's write time orders runs created within one second."""
    try:
        written = (record.dir / CONFIG_FILE).stat().st_mtime_ns
    except OSError:
        written = 0
    return record.status.get("created_at") or "", written


def delete_run(run_id: str) -> None:
    """Remove a run folder. Callers check ownership and that no worker is alive (supervisor.delete)."""
    folder = run_dir(run_id)
    if not folder.is_dir():
        raise StudioError(f"There is no run '{run_id}'.", "It may have been deleted already.")
    # Rename first so a half-deleted folder never shows up as a broken run.
    trash = folder.with_name(f".deleting-{folder.name}-{os.getpid()}")
    os.replace(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints (trainer_state.json is written last), oldest first."""
    root = Path(folder) / CHECKPOINTS_DIR
    found = []
    if root.is_dir():
        for child in root.iterdir():
            match = re.fullmatch(r"checkpoint-(\d+)", child.name)
            if match and (child / "trainer_state.json").is_file():
                found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def usable_adapter(folder: Path) -> Path | None:
    """The adapter a run can be used with: its final adapter/, else its last checkpoint holding adapter weights
    (a run that failed, diverged — diverged weights are never saved — or was killed); None without either."""
    final = Path(folder) / ADAPTER_DIR
    if holds_weights(final):
        return final
    with_weights = [checkpoint for checkpoint in checkpoints(folder) if holds_weights(checkpoint)]
    return with_weights[-1] if with_weights else None


def is_whole_model(folder: Path) -> bool:
    """A full fine-tune's output (or checkpoint): a model's config.json and weights, no adapter."""
    folder = Path(folder)
    return (
        not (folder / "adapter_config.json").is_file()
        and (folder / "config.json").is_file()
        and any(folder.glob("model*.safetensors"))
    )


def holds_weights(folder: Path) -> bool:
    """A LoRA adapter (adapter_config.json) or a whole model: what Compare and export can use."""
    return (Path(folder) / "adapter_config.json").is_file() or is_whole_model(folder)


def last_checkpoint(folder: Path) -> Path | None:
    found = checkpoints(folder)
    return found[-1] if found else None


def resume_sentence(checkpoint: str | None) -> str:
    """What Resume will do, for a hint: continue from the named checkpoint, or nothing when there is none."""
    if checkpoint:
        return f"Resume continues from {checkpoint}."
    return "No checkpoint was saved, so it cannot resume: start it again."


def last_event(folder: Path, types: tuple[str, ...] = ("log", "eval", "checkpoint", "status")) -> dict[str, Any] | None:
    """The newest event of the given types (reads the file tail only)."""
    path = Path(folder) / EVENTS_FILE
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - 65536))
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return None
    for raw in reversed(lines):
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("type") in types:
            return event
    return None


def events_for_charts(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events with the stretches abandoned by a resume removed (steps after the resumed checkpoint)."""
    kept: list[dict[str, Any]] = []
    for event in events:
        if event.get("type") == "status" and event.get("status") == "resumed" and isinstance(event.get("step"), int):
            resumed_at = event["step"]
            kept = [
                e
                for e in kept
                if not (
                    e.get("type") in ("log", "eval", "checkpoint")
                    and isinstance(e.get("step"), int)
                    and e["step"] > resumed_at
                )
            ]
        kept.append(event)
    return kept


def chart_events(folder: Path) -> list[dict[str, Any]]:
    """All complete events of a run, without the stretches a resume abandoned (what charts and reports draw)."""
    return events_for_charts(read_events(folder)[0])


# ---- liveness: is a run's worker still there? ----------------------------------------------------------------------
def worker_alive(pid: int | None, folder: Path | None = None) -> bool:
    """True when pid is a live (non-zombie) process; with `folder`, also that it runs this run's worker (guards
    against the pid having been reused by another program after a reboot). psutil, so the zombie and
    command-line checks hold on macOS as on Linux."""
    if not pid:
        return False
    import psutil

    try:
        process = psutil.Process(int(pid))
        if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
        if folder is not None and Path(folder).name not in " ".join(process.cmdline()):
            return False
    except psutil.NoSuchProcess:  # gone, or a zombie (ZombieProcess is a NoSuchProcess)
        return False
    except (psutil.AccessDenied, ValueError, OSError):  # another user's process: alive, command line unreadable
        return True
    return True


def run_alive(pid: int | None, folder: Path) -> bool:
    """The run's worker is alive: its recorded process, or — for a run of several processes whose parent is gone —
    a rank that has not ended yet (the ranks train on, and rank 0 records the end)."""
    if worker_alive(pid, folder):
        return True
    return any("ended" not in rank and worker_alive(rank.get("pid"), folder) for rank in read_ranks(folder).values())


def training_active() -> bool:
    """True while any run's worker is alive and starting, running or still saving (stopping)."""
    return any(record.state in ACTIVE and run_alive(record.status.get("pid"), record.dir) for record in list_runs())
