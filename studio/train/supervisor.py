"""Start, stop, resume and reconcile training workers. Used by the Train tab and the CLI.

The worker is a separate process in its own session (process group), started with its output
going straight to RUN_DIR/log.txt: the app never holds a pipe to it, so a closed browser or a
restarted app cannot stall it. Everything the app knows about a run comes from the run folder.

Rules enforced here (so the UI and the CLI share them):
- one training job at a time on this machine's device(s): `busy()` says which run and until when;
- a run is stopped, resumed or deleted only by its owner (the id of the browser or "cli" that
  started it) or with the admin password (env STUDIO_ADMIN_PASSWORD, when set);
- on start-up `reconcile()` turns runs whose worker died into "interrupted" (resumable).

Runs on another executor (status.json "executor", see studio.train.executors) are handed to it at the
start of stop / resume / reconcile / delete, after the same ownership check.
"""

from __future__ import annotations

import fcntl
import hmac
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from studio import paths
from studio.errors import StudioError
from studio.train import executors, store
from studio.train.config import RunConfig
from studio.train.store import ACTIVE, RunRecord

ADMIN_ENV = "STUDIO_ADMIN_PASSWORD"
DEFAULT_STOP_TIMEOUT = 60.0
WORKER_MODULE = "studio.train.worker"
RESUMABLE = ("stopped", "failed", "interrupted")

_children: dict[int, subprocess.Popen] = {}  # workers started by this process, for reaping


# ---- ownership ---------------------------------------------------------------------------
def is_authorized(record: RunRecord, requester: str | None, admin_password: str | None = None) -> bool:
    """The owner may act on a run; anyone else needs the admin password (when one is configured).

    Runs with no recorded owner are open to everyone (e.g. runs made by older versions)."""
    owner = record.owner
    if not owner or (requester and hmac.compare_digest(str(requester).encode(), owner.encode())):
        return True
    expected = os.environ.get(ADMIN_ENV, "")
    return bool(expected) and bool(admin_password) and hmac.compare_digest(str(admin_password).encode(), expected.encode())


def authorize(record: RunRecord, requester: str | None, admin_password: str | None = None, action: str = "change") -> None:
    if not is_authorized(record, requester, admin_password):
        hint = ("Ask the person who started it, or enter the admin password."
                if os.environ.get(ADMIN_ENV) else "Only the browser session that started it can do that.")
        raise StudioError(f"You cannot {action} the run '{record.name}': another session started it.", hint)


# ---- processes ---------------------------------------------------------------------------
def reap() -> None:
    """Collect our exited workers so a dead worker is not left as a zombie that still 'exists'.

    Only pids we started: waitpid(-1) would steal the exit status of other code's subprocesses."""
    for pid, process in list(_children.items()):
        if process.poll() is not None:
            _children.pop(pid, None)


def pid_alive(pid: int | None, run_dir: Path | None = None) -> bool:
    """True when pid is a live (non-zombie) process; with run_dir, also that it runs this run's worker
    (guards against the pid having been reused by another program after a reboot)."""
    if not pid:
        return False
    reap()
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    proc = Path(f"/proc/{int(pid)}")
    if proc.is_dir():
        try:
            stat = (proc / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return False
            if run_dir is not None:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if str(Path(run_dir).name) not in cmdline:
                    return False
        except (OSError, IndexError):
            return False
    return True


def worker_command(run_dir: Path, gpu_count: int = 0, python: str | None = None) -> list[str]:
    """The command that runs the worker: plain Python, or `accelerate launch` (DDP) with >1 CUDA device."""
    python = python or sys.executable
    if gpu_count > 1:
        return [python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(gpu_count),
                "-m", WORKER_MODULE, str(run_dir)]
    return [python, "-m", WORKER_MODULE, str(run_dir)]


def worker_env(config: RunConfig, base: dict | None = None) -> dict[str, str]:
    """The worker's environment: the app's (HF_TOKEN passes through the environment only) plus thread limits."""
    env = dict(os.environ if base is None else base)
    threads = config.torch_threads if isinstance(config.torch_threads, int) and config.torch_threads > 0 else 0
    if threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"
    # Make `python -m studio.train.worker` importable wherever the app was started from.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _gpu_count() -> int:
    from studio.models import hardware

    return len(hardware.detect_quick().gpus)


# ---- busy --------------------------------------------------------------------------------
@dataclass
class Busy:
    run_id: str
    name: str
    owner: str
    status: str
    step: int
    total_steps: int | None
    eta_seconds: float | None

    @property
    def until(self) -> datetime | None:
        if self.eta_seconds is None:
            return None
        return datetime.now(timezone.utc) + timedelta(seconds=self.eta_seconds)

    @property
    def message(self) -> str:
        until = self.until
        when = f"until about {until.astimezone().strftime('%H:%M')} (ETA {format_duration(self.eta_seconds)})" if until else "(ETA not known yet)"
        return f"The trainer is busy with run '{self.name}' ({self.status}, step {self.step}/{self.total_steps or '?'}) {when}."


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def busy() -> Busy | None:
    """The run currently using the device (a live worker), or None."""
    for record in store.list_runs():
        if record.state in ACTIVE and pid_alive(record.status.get("pid"), record.dir):
            last = store.last_event(record.dir, ("log", "eval", "status"))
            eta = last.get("eta") if last else None
            if isinstance(eta, (int, float)) and last.get("time"):
                eta = max(0.0, eta - (time.time() - last["time"]))  # the ETA counted on since it was written
            return Busy(record.run_id, record.name, record.owner, record.state, int(record.status.get("step") or 0),
                        record.status.get("total_steps"), eta if isinstance(eta, (int, float)) else None)
    return None


def _refuse_if_busy() -> None:
    current = busy()
    if current is not None:
        raise StudioError(current.message, "Wait for it to finish, or stop it (its owner or the admin can).")


# ---- lifecycle ---------------------------------------------------------------------------
def launch(config: RunConfig, owner: str = "") -> RunRecord:
    """Validate, create the run folder and start its worker. Refuses while another run is training."""
    config.check()
    _check_dataset(config.dataset)
    # The worker runs inside the run folder: make local paths absolute so they still point at the same place.
    config = config.replace(dataset=str(Path(config.dataset).expanduser().resolve()))
    if Path(config.model).expanduser().is_dir():
        config = config.replace(model=str(Path(config.model).expanduser().resolve()))
    with _launch_lock():  # two sessions pressing Start at once must not both pass the busy check
        _refuse_if_busy()
        record = store.create_run(config, owner)
        start(record)
    return store.get_run(record.run_id)


@contextmanager
def _launch_lock():
    with open(paths.runs_dir() / ".launch.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _check_dataset(dataset: str) -> None:
    folder = Path(str(dataset)).expanduser()
    if not (folder / "train.jsonl").is_file():
        raise StudioError(f"The dataset '{dataset}' is not a saved dataset folder (no train.jsonl).",
                          "Save the dataset in the Data tab first, or pass a .jsonl file to the CLI.")


def start(record: RunRecord, resume: bool = False) -> int:
    """Start the worker for an existing run folder; returns its pid. Never holds a pipe."""
    config = record.run_config()
    gpus = _gpu_count()
    command = worker_command(record.dir, gpus)
    store.update_status(record.dir, status="starting", pid=None, error=None, ended_at=None,
                        started_at=record.status.get("started_at") or store.now_iso(),
                        resumed_at=store.now_iso() if resume else None, gpus=gpus)
    with open(record.dir / "log.txt", "ab") as log:
        log.write(f"\n=== {'resume' if resume else 'start'} {store.now_iso()}: {' '.join(command)}\n".encode())
        log.flush()
        try:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       env=worker_env(config), cwd=str(record.dir), start_new_session=True, close_fds=True)
        except OSError as error:
            store.update_status(record.dir, status="failed", ended_at=store.now_iso(),
                                error={"message": f"Could not start the training process: {error}",
                                       "hint": "Check that the studio's Python environment is intact."})
            raise StudioError(f"Could not start the training process: {error}",
                              "Check that the studio's Python environment is intact.") from error
    _children[process.pid] = process
    # The worker writes its own status from here on; record the pid unless it already finished.
    current = store.read_status(record.dir)
    if current.get("status") == "starting" and not current.get("pid"):
        store.update_status(record.dir, pid=process.pid)
    return process.pid


def resume(run_id: str, requester: str | None = None, admin_password: str | None = None,
           username: str | None = None, from_cli: bool = False) -> RunRecord:
    """Continue a stopped/failed/interrupted run from its last complete checkpoint (same config)."""
    record = store.get_run(run_id)
    authorize(record, requester, admin_password, "resume")
    remote = executors.remote_for(record)
    if record.state in ACTIVE and pid_alive(record.status.get("pid"), record.dir):
        raise StudioError(f"The run '{record.name}' is still {record.state}.", "Wait for it, or stop it first.")
    if record.state not in RESUMABLE:
        raise StudioError(f"The run '{record.name}' is {record.state}; only stopped, failed or interrupted runs resume.",
                          "Use 'train again' to start a new run with the same settings.")
    if store.last_checkpoint(record.dir) is None:
        raise StudioError(f"The run '{record.name}' has no complete checkpoint to resume from.",
                          "Start it again with the same settings instead.")
    if remote:
        return remote.resume(record, username=username, from_cli=from_cli)
    with _launch_lock():
        _refuse_if_busy()
        start(record, resume=True)
    return store.get_run(run_id)


def _signal_group(pid: int, sig: int) -> bool:
    try:
        os.killpg(os.getpgid(pid), sig)
        return True
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False


def stop(run_id: str, requester: str | None = None, admin_password: str | None = None, force: bool = False,
         timeout: float | None = None) -> RunRecord:
    """Stop a run. Graceful: SIGTERM, the worker finishes its step, saves a checkpoint and the adapter.

    force=True kills the worker's whole process group at once. With a timeout, waits that long
    for a graceful stop and then kills. Without one, returns right after signalling."""
    record = store.get_run(run_id)
    authorize(record, requester, admin_password, "stop")
    remote = executors.remote_for(record)
    if remote:
        return remote.stop(record, force=force, timeout=timeout)
    pid = record.status.get("pid")
    if record.state not in ACTIVE and record.state != "queued":
        raise StudioError(f"The run '{record.name}' is not running (it is {record.state}).", "Nothing to stop.")
    if not pid_alive(pid, record.dir):
        reconcile_one(record)
        return store.get_run(run_id)
    if not force:
        store.update_status(record.dir, status="stopping", stop_requested_at=store.now_iso())
        _signal_group(int(pid), signal.SIGTERM)
        if timeout is None:
            return store.get_run(run_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid, record.dir):
                return store.get_run(run_id)
            time.sleep(0.2)
    _signal_group(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid, record.dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    last = store.last_checkpoint(record.dir)
    store.update_status(record.dir, status="stopped", ended_at=store.now_iso(), forced=True,
                        error={"message": "Force-stopped: the worker was killed before it could save an adapter.",
                               "hint": f"Resume continues from {last.name}." if last else "No checkpoint was saved; start again."})
    return store.get_run(run_id)


def wait(run_id: str, timeout: float | None = None, poll: float = 0.5) -> RunRecord:
    """Block until the run leaves the active states (or its worker dies: then reconcile)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        record = store.get_run(run_id)
        if record.state not in ACTIVE and record.state != "queued":
            return record
        if executors.remote_for(record):
            reconcile_one(record)  # restarts the job's follower if it died
        elif record.status.get("pid") and not pid_alive(record.status["pid"], record.dir):
            time.sleep(0.3)  # let a worker that just exited finish its status write
            return reconcile_one(store.get_run(run_id))
        if deadline is not None and time.monotonic() > deadline:
            return record
        time.sleep(poll)


def reconcile_one(record: RunRecord) -> RunRecord:
    """A run marked active whose worker is gone becomes "interrupted" (its checkpoints stay usable)."""
    remote = executors.remote_for(record)
    if remote:
        return remote.reconcile(record)
    if record.state not in ACTIVE:
        return record
    if pid_alive(record.status.get("pid"), record.dir):
        return record
    fresh = store.read_status(record.dir)  # the worker may have written its final status meanwhile
    if fresh.get("status") not in ACTIVE:
        return store.get_run(record.run_id)
    last = store.last_checkpoint(record.dir)
    hint = (f"Resume continues from its last checkpoint ({last.name})." if last
            else "No checkpoint was saved before it stopped; start it again.")
    store.update_status(record.dir, status="interrupted", ended_at=store.now_iso(),
                        error={"message": "The training process ended unexpectedly (killed, crashed or the app restarted).",
                               "hint": hint})
    store.append_event(record.dir, {"type": "status", "status": "interrupted", "step": fresh.get("step")})
    return store.get_run(record.run_id)


def reconcile() -> list[RunRecord]:
    """Call on app start-up: fix the status of every run whose worker died. Returns the runs changed."""
    changed = []
    for record in store.list_runs():
        if record.state in ACTIVE:
            after = reconcile_one(record)
            if after.state != record.state:
                changed.append(after)
    return changed


def delete(run_id: str, requester: str | None = None, admin_password: str | None = None) -> None:
    """Delete a run folder (owner or admin only; never while its worker is alive)."""
    record = store.get_run(run_id)
    authorize(record, requester, admin_password, "delete")
    remote = executors.remote_for(record)
    if remote:
        remote.before_delete(record)  # cancels a job that may still run; raises when it cannot
    if record.state in ACTIVE and pid_alive(record.status.get("pid"), record.dir):
        raise StudioError(f"The run '{record.name}' is still {record.state}.", "Stop it first, then delete it.")
    store.delete_run(run_id)
