"""Start, stop, resume and reconcile training workers. Used by the Train tab and the CLI.

The worker is a separate process in its own session (process group), started with its output
going straight to RUN_DIR/log.txt: the app never holds a pipe to it, so a closed browser or a
restarted app cannot stall it. Everything the app knows about a run comes from the run folder.

Rules enforced here (so the UI and the CLI share them):
- one training job at a time on this machine's device(s): `busy()` says which run and until when;
  `launch` (the CLI) refuses while busy, `submit` (the pages) queues the run (studio.train.queue) and
  `dispatch` starts the next waiting run when the trainer is free — called on submit, on stop, and every
  few seconds by the app's background thread (`start_dispatcher`), so queued runs start with no browser open;
- a run is stopped, resumed or deleted only as studio.access allows: its owner (the id of the browser,
  visitor or "cli" that started it), an operator in public mode, or the admin password;
- the worker's environment holds the server's HF_TOKEN only for an operator's run on a Hub model, and
  remote code only when it was authorized (`worker_env`);
- on start-up `reconcile()` turns runs whose worker died into "interrupted" (resumable).

Runs on another executor (status.json "executor", see studio.train.executors) are handed to it at the
start of stop / resume / reconcile / delete, after the same ownership check. They have no local pid, so they
never make `busy()` true and never wait in the queue; the dispatcher's `reconcile()` keeps them followed.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from studio import access, limits, paths
from studio.data import store as data_store
from studio.errors import StudioError
from studio.models import catalog, hardware
from studio.train import distributed, executors, queue, store
from studio.train.archive import archive_quietly, restore_runs
from studio.train.config import RunConfig
from studio.train.store import ACTIVE, RunRecord
from studio.units import format_duration

ADMIN_ENV = "STUDIO_ADMIN_PASSWORD"
DEFAULT_STOP_TIMEOUT = 60.0
RESUMABLE = ("stopped", "failed", "interrupted")

_children: dict[int, subprocess.Popen] = {}  # workers started by this process, for reaping


# ---- ownership ---------------------------------------------------------------------------
def _identity(requester):
    """A requester is an access.Identity (the UI) or an owner id string (the CLI, tests, older callers)."""
    if isinstance(requester, access.Identity):
        return requester
    role = access.OPERATOR if not access.is_public() or requester == access.CLI_OWNER else access.ANONYMOUS
    return access.Identity(str(requester or ""), role)


def is_authorized(record: RunRecord, requester, admin_password: str | None = None) -> bool:
    """May `requester` stop, resume or delete this run? (studio.access decides; see authorize)."""
    try:
        authorize(record, requester, admin_password)
    except StudioError:
        return False
    return True


def authorize(record: RunRecord, requester, admin_password: str | None = None, action: str = "change"):
    """The owner may act on a run; anyone else needs operator rights (public mode) or the admin password.
    Returns the identity to act as (an operator when the admin password was right); raises access.AccessDenied."""
    return access.authorize(_identity(requester), access.CONTROL, record, admin_password=admin_password, verb=action)


# ---- processes ---------------------------------------------------------------------------
def reap() -> None:
    """Collect our exited workers so a dead worker is not left as a zombie that still 'exists'.

    Only pids we started: waitpid(-1) would steal the exit status of other code's subprocesses."""
    for pid, process in list(_children.items()):
        if process.poll() is not None:
            _children.pop(pid, None)


def pid_alive(pid: int | None, run_dir: Path | None = None) -> bool:
    """store.run_alive (store.worker_alive without a run folder), after collecting our own exited workers."""
    reap()
    return store.run_alive(pid, run_dir) if run_dir is not None else store.worker_alive(pid)


def launch_with(config: RunConfig, owner: str = "", choice: executors.Choice | None = None, identity=None) -> RunRecord:
    """Start a run now with the chosen executor; returns its RunRecord (the command line's way: a local run
    is refused while the trainer is busy; the Train tab queues local runs with `submit`).

    `identity` is the caller (studio.access; default: the current one, the operator at the command line):
    remote runs are for operators only."""
    choice = (choice or executors.Choice()).check()
    identity = identity or access.current()
    if choice.executor == executors.LOCAL:
        return launch(config, owner=owner, owner_role=identity.role)
    return executors.manager(choice.executor).submit(config, owner, choice.flavor, choice.max_cost, identity=identity)


TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_API_TOKEN", "HF_OIDC_RESOURCE")
REMOTE_CODE_FLAG = "STUDIO_WORKER_REMOTE_CODE"  # set to 1 by the supervisor only when remote code was authorized


def worker_env(
    config: RunConfig, base: dict | None = None, hub_token: bool = True, remote_code: bool = True
) -> dict[str, str]:
    """The worker's environment: the app's plus thread limits. Without `hub_token` every Hugging Face token
    is taken out and huggingface_hub is told to send none (not even a token file's), so a visitor's model id
    never reaches a gated or private repository with the server's token."""
    env = dict(os.environ if base is None else base)
    if not hub_token:
        for name in TOKEN_VARIABLES:
            env.pop(name, None)
        env["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"
        env["HF_TOKEN_PATH"] = os.devnull
    env[REMOTE_CODE_FLAG] = "1" if remote_code and config.trust_remote_code else "0"
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
    return hardware.visible_gpu_count()


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
        return datetime.now(UTC) + timedelta(seconds=self.eta_seconds)

    @property
    def message(self) -> str:
        until = self.until
        when = (
            f"until about {until.astimezone().strftime('%H:%M')} (ETA {format_duration(self.eta_seconds)})"
            if until
            else "(ETA not known yet)"
        )
        return (
            f"The trainer is busy with run '{self.name}' ({self.status}, step "
            f"{self.step}/{self.total_steps or '?'}) {when}."
        )


def busy() -> Busy | None:
    """The run currently using the device (a live worker), or None."""
    for record in store.list_runs():
        if record.state in ACTIVE and pid_alive(record.status.get("pid"), record.dir):
            last = store.last_event(record.dir, ("log", "eval", "status"))
            eta = last.get("eta") if last else None
            if isinstance(eta, (int, float)) and last.get("time"):
                eta = max(0.0, eta - (time.time() - last["time"]))  # the ETA counted on since it was written
            return Busy(
                record.run_id,
                record.name,
                record.owner,
                record.state,
                int(record.status.get("step") or 0),
                record.status.get("total_steps"),
                eta if isinstance(eta, (int, float)) else None,
            )
    return None


def _refuse_if_busy() -> None:
    current = busy()
    if current is not None:
        raise StudioError(current.message, "Wait for it to finish, or stop it (its owner or the admin can).")


# ---- lifecycle ---------------------------------------------------------------------------
def prepared(config: RunConfig, local: bool = True) -> RunConfig:
    """The config checked (settings, a saved dataset, and for this machine its caps on epochs and steps —
    a remote run is capped by its cost instead) with its local paths made absolute."""
    config.check()
    _check_dataset(config.dataset)
    if local:
        check_limits(config)
        cannot = distributed.problem(config, _gpu_count())  # the processes and strategy this machine can run
        if cannot:
            raise StudioError(*cannot)
    # The worker runs inside the run folder: make local paths absolute so they still point at the same place.
    config = config.replace(dataset=str(Path(config.dataset).expanduser().resolve()))
    if Path(config.model).expanduser().is_dir():
        config = config.replace(model=str(Path(config.model).expanduser().resolve()))
    return config


def launch(config: RunConfig, owner: str = "", owner_role: str = "operator") -> RunRecord:
    """Validate, create the run folder and start its worker. Refuses while another run is training
    (the CLI's behaviour; the studio's pages use `submit`, which queues instead)."""
    config = prepared(config)
    with _launch_lock():  # two sessions pressing Start at once must not both pass the busy check
        _refuse_if_busy()
        record = store.create_run(config, owner, owner_role=owner_role)
        store.update_status(record.dir, time_limit_s=time_limit_s())
        start(record)
    return store.get_run(record.run_id)


def submit(
    config: RunConfig, owner: str, owner_role: str = "operator", estimated_seconds: float | None = None
) -> RunRecord:
    """Create the run and put it in the queue; it starts at once when the trainer is free and nobody waits
    ahead of it. Returns the run (status "queued" while it waits)."""
    config = prepared(config)
    with _launch_lock():
        if owner_role != access.OPERATOR and access.is_public():
            waiting_visitors = [r for r in queue.waiting() if r.status.get("owner_role") != access.OPERATOR]
            if len(waiting_visitors) >= access.quota("STUDIO_QUEUE_MAX"):
                raise access.AccessDenied(
                    f"the training queue is full ({len(waiting_visitors)} runs wait).", "Try again later."
                )
        record = store.create_run(config, owner, owner_role=owner_role)
        store.update_status(record.dir, time_limit_s=time_limit_s())
        queue.enqueue(record, estimated_seconds)
        _dispatch_locked()
    return store.get_run(record.run_id)


def dispatch() -> RunRecord | None:
    """Start the first waiting run when the trainer is free. Safe to call from anywhere, any time."""
    with _launch_lock():
        return _dispatch_locked()


def _dispatch_locked() -> RunRecord | None:
    if busy() is not None:
        return None
    for record in queue.waiting():
        queue.leave(record)
        try:
            start(store.get_run(record.run_id))
        except StudioError:
            continue  # start() marked it failed with the reason; the next one may start
        return store.get_run(record.run_id)
    return None


_dispatcher: threading.Thread | None = None
_dispatcher_stop = threading.Event()


def start_dispatcher(interval: float = 3.0) -> threading.Thread:
    """The app's background thread: notices finished or dead workers and starts the next queued run, whether
    or not any browser is watching. Idempotent; `stop_dispatcher()` ends it."""
    global _dispatcher
    if _dispatcher is not None and _dispatcher.is_alive():
        return _dispatcher
    _dispatcher_stop.clear()

    def loop():
        while not _dispatcher_stop.is_set():
            try:
                reconcile()
                dispatch()
            except Exception:  # noqa: BLE001 - a broken run folder must not stop the queue
                import logging

                logging.getLogger(__name__).exception("queue dispatcher")
            _dispatcher_stop.wait(interval)

    _dispatcher = threading.Thread(target=loop, name="studio-queue", daemon=True)
    _dispatcher.start()
    return _dispatcher


def stop_dispatcher(timeout: float = 10.0) -> None:
    _dispatcher_stop.set()
    if _dispatcher is not None:
        _dispatcher.join(timeout)


def time_limit_s() -> float | None:
    """Training seconds a run may use in all (STUDIO_MAX_RUN_MINUTES); the worker stops it gracefully there."""
    minutes = limits.value("run_minutes")
    return None if minutes is None else minutes * 60


def check_limits(config: RunConfig) -> None:
    """Refuse a run over this studio's caps on epochs and steps (studio.limits), before anything is created."""
    limits.check_at_most("epochs", config.epochs, "The number of epochs", "Use fewer epochs, or set Max steps.")
    if config.max_steps:
        limits.check_at_most("steps", config.max_steps, "Max steps", "Set fewer steps.")
        return
    rows = _train_rows(Path(str(config.dataset)).expanduser())
    if rows:
        steps, cap = config.total_steps(rows), limits.whole("steps")
        if cap is not None and steps > cap:
            raise StudioError(
                f"This run would take about {steps:,} steps ({rows:,} rows × {config.epochs:g} epochs at batch "
                f"{config.batch_size}), over this studio's limit of {cap:,} steps.",
                f"Set Max steps to {cap:,} or fewer, or use fewer epochs. " + limits.raise_hint("steps"),
            )


def _train_rows(folder: Path) -> int | None:
    """Rows of a saved dataset's training split (data.store)."""
    return data_store.train_rows(folder)


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
    if not data_store.has_train_split(folder):
        raise StudioError(
            f"The dataset '{dataset}' is not a saved dataset folder (no train.jsonl).",
            "Save the dataset in the Data tab first, or pass a .jsonl file to the CLI.",
        )


def needs_hub_token(record: RunRecord) -> bool:
    """The worker gets the server's HF_TOKEN only for an operator's run on a Hub model (it may be gated);
    visitors' runs, the bundled model and local folders never see it."""
    if record.status.get("owner_role", access.OPERATOR) != access.OPERATOR:
        return False
    try:
        return catalog.classify(str(record.config.get("model") or "")) == "hub"
    except StudioError:
        return False


def remote_code_allowed(record: RunRecord) -> bool:
    """trust_remote_code runs only when it was authorized for an operator (public mode) or locally."""
    if not record.config.get("trust_remote_code"):
        return False
    if not access.is_public():
        return True
    return record.status.get("owner_role") == access.OPERATOR and access.settings().allow_remote_code


def start(record: RunRecord, resume: bool = False) -> int:
    """Start the worker for an existing run folder; returns its pid. Never holds a pipe."""
    config = record.run_config()
    gpus = _gpu_count()
    processes = distributed.process_count(config, gpus)
    if processes > 1:
        distributed.write_accelerate_config(record.dir, config, processes)
    command = distributed.command(record.dir, processes)
    store.update_status(
        record.dir,
        status="starting",
        pid=None,
        error=None,
        ended_at=None,
        started_at=record.status.get("started_at") or store.now_iso(),
        resumed_at=store.now_iso() if resume else None,
        gpus=gpus,
        processes=processes,
    )
    with open(record.dir / "log.txt", "ab") as log:
        log.write(f"\n=== {'resume' if resume else 'start'} {store.now_iso()}: {' '.join(command)}\n".encode())
        log.flush()
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=worker_env(config, hub_token=needs_hub_token(record), remote_code=remote_code_allowed(record)),
                cwd=str(record.dir),
                start_new_session=True,
                close_fds=True,
            )
        except OSError as error:
            store.update_status(
                record.dir,
                status="failed",
                ended_at=store.now_iso(),
                error={
                    "message": f"Could not start the training process: {error}",
                    "hint": "Check that the studio's Python environment is intact.",
                },
            )
            raise StudioError(
                f"Could not start the training process: {error}",
                "Check that the studio's Python environment is intact.",
            ) from error
    _children[process.pid] = process
    # The worker writes its own status from here on; record the pid unless it already finished.
    current = store.read_status(record.dir)
    if current.get("status") == "starting" and not current.get("pid"):
        store.update_status(record.dir, pid=process.pid)
    return process.pid


def resume(run_id: str, requester=None, admin_password: str | None = None) -> RunRecord:
    """Continue a stopped/failed/interrupted run from its last complete checkpoint (same config).

    A remote run resumes as a new job of its executor, which asks for an operator (it spends the operator's
    money); this machine's run time limit is for this machine's trainer and does not apply to it."""
    record = store.get_run(run_id)
    acting = authorize(record, requester, admin_password, "resume")
    if record.config.get("trust_remote_code"):
        access.require_remote_code_allowed(acting)
    if record.state in ACTIVE and pid_alive(record.status.get("pid"), record.dir):
        raise StudioError(f"The run '{record.name}' is still {record.state}.", "Wait for it, or stop it first.")
    if record.state not in RESUMABLE:
        raise StudioError(
            f"The run '{record.name}' is {record.state}; only stopped, failed or interrupted runs resume.",
            "Use 'train again' to start a new run with the same settings.",
        )
    if store.last_checkpoint(record.dir) is None:
        raise StudioError(
            f"The run '{record.name}' has no complete checkpoint to resume from.",
            "Start it again with the same settings instead.",
        )
    remote = executors.remote_for(record)
    if remote:
        return remote.resume(record, acting)
    limit = time_limit_s()
    used = record.status.get("elapsed")
    if limit is not None and isinstance(used, (int, float)) and used >= limit:
        raise StudioError(
            f"The run '{record.name}' has used its {limit / 60:.0f} minutes of training, this studio's limit per run.",
            "Its adapter and checkpoints are kept: compare or export it, or start a shorter run. "
            + limits.raise_hint("run_minutes"),
        )
    with _launch_lock():
        _refuse_if_busy()
        store.update_status(record.dir, time_limit_s=limit)
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


def stop(
    run_id: str,
    requester: str | None = None,
    admin_password: str | None = None,
    force: bool = False,
    timeout: float | None = None,
) -> RunRecord:
    """Stop a run. Graceful: SIGTERM, the worker finishes its step, saves a checkpoint and the adapter.

    force=True kills the worker's whole process group at once. With a timeout, waits that long
    for a graceful stop and then kills. Without one, returns right after signalling."""
    record = store.get_run(run_id)
    authorize(record, requester, admin_password, "stop")
    if queue.is_waiting(record):
        return queue.cancel(run_id)
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
    distributed.signal_ranks(record.dir, signal.SIGKILL)  # ranks of a multi-process run live in sessions of their own
    deadline = time.monotonic() + 10
    while pid_alive(pid, record.dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    last = store.last_checkpoint(record.dir)
    store.update_status(
        record.dir,
        status="stopped",
        ended_at=store.now_iso(),
        forced=True,
        error={
            "message": "Force-stopped: the worker was killed before it could save an adapter.",
            "hint": store.resume_sentence(last.name if last else None),
        },
    )
    return store.get_run(run_id)


def wait(run_id: str, timeout: float | None = None, poll: float = 0.5) -> RunRecord:
    """Block until the run leaves the active states (or its worker dies: then reconcile)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        record = store.get_run(run_id)
        # The parent of a multi-process run may still be writing which rank failed and why (studio.train.distributed)
        parent_busy = (record.status.get("processes") or 1) > 1 and pid_alive(record.status.get("pid"), record.dir)
        if record.state not in ACTIVE and record.state != "queued" and not parent_busy:
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
    hint = store.resume_sentence(last.name if last else None)
    store.update_status(
        record.dir,
        status="interrupted",
        ended_at=store.now_iso(),
        error={
            "message": "The training process ended unexpectedly (killed, crashed or the app restarted).",
            "hint": hint,
        },
    )
    store.append_event(record.dir, {"type": "status", "status": "interrupted", "step": fresh.get("step")})

    archive_quietly(record.dir)
    return store.get_run(record.run_id)


def reconcile() -> list[RunRecord]:
    """Call on app start-up: bring back archived runs after a Space restart (studio.train.archive), then fix
    the status of every run whose worker died. Returns the runs changed."""
    restore_runs()
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
