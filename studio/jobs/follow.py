"""`python -m studio.jobs.follow RUN_DIR`: follow a Hugging Face Job into its run folder.

A detached local process per remote run (started by executor.py like the local worker: own session, output
to RUN_DIR/log.txt, no pipe to the app), so a closed browser or a restarted app does not stop it; when it is
gone anyway (the machine restarted), `executor.reconcile` starts a new one, which continues where the last
one stopped. Only one follows a run at a time: each holds an exclusive lock on RUN_DIR/.follower.lock.

What it writes, so the Train tab, the CLI, history and Compare need nothing new:
- the job's log lines → log.txt (lines already copied are counted in RUN_DIR/.job-log-position and skipped
  when the log is replayed after a reconnect);
- protocol "event" lines → events.jsonl (skipped when their number is not above the newest one there);
- protocol "status" lines → status.json (a local "stopping" is never turned back into "running"; a terminal
  status waits until the results are home, so "completed" always means the adapter is in the folder);
- the job's stage, cost so far (running seconds × the flavour's price) and latest metrics → status.json;
- at the end: the adapter, the model card and the last checkpoint downloaded from the outputs repo, and the
  final status — including why a job that failed or was cancelled ended.

It also escalates a Stop: when the graceful stop takes longer than STOP_TIMEOUT_ENV seconds (default 600:
the step, the checkpoint and the push must fit), it cancels the job.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from studio.jobs import hub, protocol
from studio.train import store
from studio.units import format_usd

LOCK_FILE = ".follower.lock"
POSITION_FILE = ".job-log-position"  # "<job id> <lines copied>": cheap to rewrite after every line
STOP_TIMEOUT_ENV = "STUDIO_JOBS_STOP_TIMEOUT"
DEFAULT_STOP_TIMEOUT = 600.0
WATCH_SECONDS = 10.0
TERMINAL = ("COMPLETED", "CANCELED", "ERROR", "DELETED")
CHECKPOINT_PATH = re.compile(r"checkpoints/checkpoint-\d{1,9}")
HELD_UNTIL_HOME = ("completed", "stopped", "failed", "interrupted")


def stop_timeout() -> float:
    try:
        return float(os.environ.get(STOP_TIMEOUT_ENV) or DEFAULT_STOP_TIMEOUT)
    except ValueError:
        return DEFAULT_STOP_TIMEOUT


def say(text: str) -> None:
    """A line of the follower's own in log.txt (its stdout)."""
    print(f"[studio] {hub.scrub(text)}", flush=True)


def max_seq(run_dir: Path) -> int:
    """The newest event number already in events.jsonl (0 when none came from a job)."""
    events, _ = store.read_events(run_dir, 0)
    return max((event.get("seq") for event in events if isinstance(event.get("seq"), int)), default=0)


def follower_running(run_dir: Path) -> bool:
    """True while some process holds the run's follower lock."""
    try:
        with open(Path(run_dir) / LOCK_FILE, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False
    except OSError:
        return False


def epoch_seconds(iso: str | None) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(iso)).timestamp()
    except (TypeError, ValueError):
        return None


def read_position(run_dir: Path, job_id: str) -> int:
    """How many lines of this job's log are already in log.txt."""
    try:
        owner, lines = (Path(run_dir) / POSITION_FILE).read_text().split()
        return int(lines) if owner == job_id else 0
    except (OSError, ValueError):
        return 0


def write_position(run_dir: Path, job_id: str, lines: int) -> None:
    # Replaced, not rewritten in place: a follower killed mid-write (a restart, SIGKILL) must not leave it empty,
    # which reads as "nothing copied" and replays the job's whole log into log.txt. (No fsync: it is written after
    # every line, and only a killed process, not a power cut, has to be survived.)
    target = Path(run_dir) / POSITION_FILE
    partial = target.with_name(f"{POSITION_FILE}.{os.getpid()}.tmp")
    partial.write_text(f"{job_id} {lines}\n")
    os.replace(partial, target)


def _stage(info) -> str:
    stage = getattr(getattr(info, "status", None), "stage", None)
    return str(getattr(stage, "value", stage) or "")


class Follower:
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        status = store.read_status(run_dir)
        self.job = dict(status.get("job") or {})
        self.job_id = self.job["id"]
        self.namespace = self.job["namespace"]
        self.client = hub.api()
        self.seen_seq = max_seq(run_dir)
        self.lines_seen = read_position(run_dir, self.job_id)
        self.lines = 0
        self.final: dict | None = None
        self.saw_output = False
        self.done = threading.Event()
        self.lock = threading.Lock()  # status writes from the log, watch and metrics threads

    # ---- the log ------------------------------------------------------------------------
    def handle(self, line: str) -> None:
        self.lines += 1
        if not self.saw_output:
            self.saw_output = True  # output means the job runs, whatever the last stage check said
            if store.read_status(self.run_dir).get("job_stage") == "SCHEDULING":
                self.update(job_stage="RUNNING")
        if self.lines <= self.lines_seen:
            return  # copied before a reconnect or a restart
        message = protocol.decode(line)
        if message is None:
            print(line, flush=True)
        else:
            self.apply(message)
        write_position(self.run_dir, self.job_id, self.lines)

    def apply(self, message: dict) -> None:
        kind = message["kind"]
        if kind == "event":
            seq = message.get("seq")
            event = message.get("event")
            if isinstance(seq, int) and seq > self.seen_seq and isinstance(event, dict):
                self.seen_seq = seq
                store.append_event(self.run_dir, {**event, "seq": seq})
        elif kind == "status":
            self.relay_status(message.get("status") or {})
        elif kind == "phase":
            self.update(job_phase=str(message.get("message") or message.get("phase") or ""))
        elif kind == "upload":
            say(f"pushed {message.get('path')} to {self.job.get('outputs_repo')}")
            self.update(job_last_upload=message.get("path"))
        elif kind == "final":
            self.final = message
            self.relay_status(message.get("status") or {})

    def relay_status(self, changes: dict) -> None:
        changes = {key: value for key, value in changes.items() if key in protocol.RELAYED_STATUS_FIELDS}
        for key in ("last_checkpoint", "best_checkpoint"):  # later joined to the run folder: only checkpoint names
            if key in changes and changes[key] is not None and not CHECKPOINT_PATH.fullmatch(str(changes[key])):
                changes.pop(key)
        with self.lock:
            local = store.read_status(self.run_dir).get("status")
            remote = changes.get("status")
            if remote in HELD_UNTIL_HOME:
                changes["job_result"] = changes.pop("status")  # applied by finish(), once the results are home
            elif remote in ("starting", "running") and local == "stopping":
                changes.pop("status")
            elif remote == "running":
                changes["job_phase"] = None  # training: the phase note has done its job
            if changes:
                store.update_status(self.run_dir, **changes)

    def update(self, **changes) -> None:
        with self.lock:
            store.update_status(self.run_dir, **changes)

    def read_rest(self) -> None:
        """The job ended without its last lines reaching us (a broken stream): read the whole log once more."""
        self.lines = 0
        try:
            for line in self.client.fetch_job_logs(job_id=self.job_id, namespace=self.namespace, follow=False):
                self.handle(line)
        except Exception as error:  # noqa: BLE001 - finish with what we have
            say(f"could not read the end of the job's log ({type(error).__name__})")

    # ---- the job ------------------------------------------------------------------------
    def inspect(self):
        return self.client.inspect_job(job_id=self.job_id, namespace=self.namespace)

    def record_stage(self, info) -> str:
        stage = _stage(info)
        durations = getattr(info, "durations", None)
        running = getattr(durations, "running_secs", None)
        price = self.job.get("price_per_hour")
        changes = {"job_stage": stage, "job_message": getattr(info.status, "message", None), "job_contact": None}
        if isinstance(running, (int, float)):
            changes["job_running_seconds"] = running
            if isinstance(price, (int, float)):
                changes["job_cost_usd"] = round(running * price / 3600, 4)
        local = store.read_status(self.run_dir).get("status")
        if stage == "RUNNING" and local == "starting" and not store.read_status(self.run_dir).get("job_phase"):
            changes["job_phase"] = "Installing the pinned packages and downloading the inputs."
        self.update(**changes)
        return stage

    def watch(self) -> None:
        """Every few seconds: the stage and cost, a lost follower's duty of escalating a slow stop."""
        while not self.done.wait(WATCH_SECONDS):
            try:
                self.record_stage(self.inspect())
            except Exception as error:  # noqa: BLE001 - contact problems are shown, then retried
                self.update(job_contact=hub.explain(error, "ask Hugging Face about the job").message)
                continue
            status = store.read_status(self.run_dir)
            requested = status.get("stop_requested_at")
            if requested and not status.get("cancel_requested_at"):
                started = epoch_seconds(requested)
                if started and time.time() - started > stop_timeout():
                    self.cancel(f"the graceful stop took longer than {stop_timeout():.0f} s")

    def cancel(self, reason: str) -> None:
        say(f"cancelling the job: {reason}")
        try:
            self.client.cancel_job(job_id=self.job_id, namespace=self.namespace)
            self.update(cancel_requested_at=store.now_iso(), cancel_reason=reason)
        except Exception as error:  # noqa: BLE001 - any Hub client failure becomes a plain message
            say(hub.explain(error, "cancel the job").message)

    def metrics(self) -> None:
        last = 0.0
        try:
            for sample in self.client.fetch_job_metrics(job_id=self.job_id, namespace=self.namespace, follow=True):
                if self.done.is_set():
                    return
                if time.monotonic() - last >= WATCH_SECONDS and isinstance(sample, dict):
                    last = time.monotonic()
                    self.update(job_metrics=summarize_metrics(sample))
        except Exception as error:  # noqa: BLE001 - metrics are informative only
            say(f"job metrics unavailable: {type(error).__name__}")

    def run(self) -> int:
        self.update(follower_pid=os.getpid())
        say(f"following job {self.job_id} ({self.job.get('url')})")
        threading.Thread(target=self.watch, name="job-watch", daemon=True).start()
        threading.Thread(target=self.metrics, name="job-metrics", daemon=True).start()
        backoff = 2.0
        while True:
            self.lines = 0
            try:
                for line in self.client.fetch_job_logs(job_id=self.job_id, namespace=self.namespace, follow=True):
                    self.handle(line)
                backoff = 2.0
            except Exception as error:  # noqa: BLE001 - reconnect; the log replays and copied lines are skipped
                self.update(job_contact=hub.explain(error, "read the job's log").message)
                say(f"log stream interrupted ({type(error).__name__}); reconnecting")
            self.lines_seen = max(self.lines, self.lines_seen)
            try:
                info = self.inspect()
                stage = self.record_stage(info)
            except Exception as error:  # noqa: BLE001 - any Hub client failure becomes a plain message
                if getattr(getattr(error, "response", None), "status_code", None) == 404:
                    info, stage = _gone(), "DELETED"  # the job no longer exists on Hugging Face
                else:
                    self.update(job_contact=hub.explain(error, "ask Hugging Face about the job").message)
                    stage = ""
            if stage in TERMINAL:
                if self.final is None:
                    self.read_rest()
                self.done.set()
                self.finish(info, stage)
                return 0
            if not self.run_dir.is_dir():
                self.done.set()
                return 0
            time.sleep(backoff)
            backoff = min(60.0, backoff * 2)

    # ---- the end ------------------------------------------------------------------------
    def fetch_results(self, commit: str | None) -> bool:
        """Download the adapter (its model card inside) and the last checkpoint from the outputs repo; True when
        done."""
        repo = self.job.get("outputs_repo")
        status = store.read_status(self.run_dir)
        checkpoint = str(status.get("last_checkpoint") or "")
        checkpoint = checkpoint if CHECKPOINT_PATH.fullmatch(checkpoint) else ""
        patterns = ["adapter/*"] + ([f"{checkpoint}/*"] if checkpoint else [])
        from huggingface_hub import snapshot_download

        staging = Path(tempfile.mkdtemp(prefix=".results-", dir=self.run_dir))
        try:
            snapshot_download(
                repo,
                revision=commit or "main",
                allow_patterns=patterns,
                local_dir=str(staging),
                endpoint=hub.endpoint(),
                token=self.client.token,
            )
            for name in ("adapter", checkpoint):
                source = staging / name if name else None
                if source is not None and name and source.is_dir() and any(source.iterdir()):
                    target = self.run_dir / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if target.exists():
                        shutil.rmtree(target)
                    os.replace(source, target)
            return store.holds_weights(self.run_dir / store.ADAPTER_DIR)
        except Exception as error:  # noqa: BLE001 - any Hub client failure becomes a plain message
            say(hub.explain(error, f"download the results from {repo}").message)
            return False
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def finish(self, info, stage: str) -> None:
        status = store.read_status(self.run_dir)
        result = status.get("job_result")
        final = self.final or {}
        commit = final.get("commit")
        home = self.fetch_results(commit) if (commit or stage != "DELETED") else False
        message = getattr(info.status, "message", None) or ""
        error = status.get("error") if isinstance(status.get("error"), dict) else None
        expects_adapter = bool((final.get("status") or {}).get("adapter")) or result == "completed"
        if stage == "COMPLETED" and result in ("completed", "stopped"):
            state = result
            if expects_adapter and not home:
                state, error = (
                    "failed",
                    {
                        "message": "The job finished, but its adapter could not be downloaded.",
                        "hint": f"It is in the private repo {self.job.get('outputs_repo')}; "
                        "check the token and the network, then delete and re-run, or download it by hand.",
                    },
                )
        elif stage == "CANCELED":
            state = "stopped"
            reason = status.get("cancel_reason")
            last = store.last_checkpoint(self.run_dir)
            error = {
                "message": f"The job was cancelled ({reason})."
                if reason
                else "The job was cancelled on Hugging Face (outside the studio).",
                "hint": store.resume_sentence(last.name if last else None),
            }
        elif stage == "DELETED":
            state, error = (
                "failed",
                {
                    "message": "The job no longer exists on Hugging Face (deleted before the studio saw it finish).",
                    "hint": "Start the run again.",
                },
            )
        else:  # ERROR, or COMPLETED without a result
            state = "failed"
            if result == "failed" and error:
                pass  # the run's own message and hint, relayed from the worker
            elif self.timed_out(info):
                last = store.last_checkpoint(self.run_dir)
                error = {
                    "message": f"The job reached its time limit ({self.job.get('timeout_seconds')} s, set from the "
                    f"cost cap of {format_usd(self.job.get('max_cost_usd'))}) and was stopped by Hugging Face.",
                    "hint": "Raise the cost cap, or train fewer steps. "
                    + store.resume_sentence(last.name if last else None),
                }
            else:
                error = {
                    "message": f"The job failed on Hugging Face: {message or 'no reason given'}.",
                    "hint": "The job's own log is in the run's log (below); a failure before training usually "
                    "means the packages could not be installed or the inputs downloaded.",
                }
        ended = store.now_iso()
        self.update(
            status=state,
            ended_at=ended,
            error=error if state != "completed" else None,
            job_stage=stage,
            job_phase=None,
            follower_pid=None,
        )
        if not (final and result in ("completed", "stopped", "failed") and state == result):
            store.append_event(
                self.run_dir,
                {
                    "type": "status",
                    "status": state,
                    "step": status.get("step"),
                    "total": status.get("total_steps"),
                    "message": (error or {}).get("message"),
                },
            )
        say(f"job {self.job_id} ended: {stage}; run {state}")

    def timed_out(self, info) -> bool:
        timeout = self.job.get("timeout_seconds")
        running = getattr(getattr(info, "durations", None), "running_secs", None)
        return isinstance(timeout, (int, float)) and isinstance(running, (int, float)) and running >= timeout - 5


def _gone():
    """Stands in for the JobInfo of a job Hugging Face no longer knows (inspect answered 404)."""
    from types import SimpleNamespace

    return SimpleNamespace(status=SimpleNamespace(stage="DELETED", message="not found on Hugging Face"), durations=None)


def summarize_metrics(sample: dict) -> dict:
    """The numbers worth showing from one metrics sample (GPU utilisation and memory, CPU, RAM)."""
    gpus = sample.get("gpus") or {}
    summary = {
        "cpu_percent": sample.get("cpu_usage_pct"),
        "ram_used_gb": round(sample["memory_used_bytes"] / 1024**3, 2) if sample.get("memory_used_bytes") else None,
        "ram_total_gb": round(sample["memory_total_bytes"] / 1024**3, 2) if sample.get("memory_total_bytes") else None,
    }
    if isinstance(gpus, dict) and gpus:
        values = [gpu for gpu in gpus.values() if isinstance(gpu, dict)]
        if values:
            summary["gpu_percent"] = round(sum(g.get("utilization") or 0 for g in values) / len(values), 1)
            summary["gpu_used_gb"] = round(sum(g.get("memory_used_bytes") or 0 for g in values) / 1024**3, 2)
            summary["gpu_total_gb"] = round(sum(g.get("memory_total_bytes") or 0 for g in values) / 1024**3, 2)
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m studio.jobs.follow RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(argv[0]).resolve()
    if not (run_dir / store.STATUS_FILE).is_file():
        print(f"{run_dir} is not a run folder", file=sys.stderr)
        return 2
    with open(run_dir / LOCK_FILE, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # another follower has it
        try:
            return Follower(run_dir).run()
        except Exception as error:  # noqa: BLE001 - say why in the run's log and status, then let reconcile retry
            traceback.print_exc()
            message = hub.explain(error, "follow the job").message
            store.update_status(run_dir, job_contact=message, follower_pid=None)
            return 1


if __name__ == "__main__":
    raise SystemExit(main())
