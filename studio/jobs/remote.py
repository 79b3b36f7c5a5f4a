"""Runs INSIDE a Hugging Face Job: the studio's own worker, relayed to the studio through the job's log.

Started by package.BOOTSTRAP as `main([INPUTS_REPO, REVISION])` from the downloaded inputs commit (this very
file is part of it). It:

1. makes an ordinary run folder in a scratch STUDIO_HOME from run/config.json, pointing the dataset (and a
   local model) at the downloaded copies, and puts back the checkpoint to resume from, if any;
2. starts the worker exactly as the studio does locally (`supervisor.start`: `python -m studio.train.worker`,
   or `accelerate launch` on a multi-GPU flavour);
3. relays, as protocol lines on stdout, every new events.jsonl line (numbered), the status.json fields that
   changed, and the worker's log.txt as plain lines;
4. pushes each complete checkpoint to the run's private outputs repo as it appears (background thread),
   and at the end the adapter, the model card, status.json, events.jsonl and log.txt, then prints "final";
5. stops the worker gracefully (SIGTERM: it finishes the step and saves) when `control/stop-<its inputs
   revision>` appears in the inputs repo (the studio's Stop; named per job, so a resumed run's new job does
   not obey an old request), and does the same on a SIGTERM it receives itself.

The token comes from the job's HF_TOKEN secret. Exit code 0 when the run completed or stopped, 1 otherwise
(the job then ends in ERROR and the studio shows the run's own message).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from studio.jobs import protocol
from studio.train import store, supervisor
from studio.train.card import CARD_NAME


def control_file(revision: str) -> str:
    """The file whose appearance in the inputs repo asks this job (started from `revision`) to stop."""
    return f"control/stop-{revision}"


CONTROL_POLL_ENV = "STUDIO_JOBS_CONTROL_POLL_SECONDS"
STATUS_EVERY_SECONDS = 5.0
JOB_OWNER = "job"


def say(kind: str, **payload) -> None:
    print(protocol.encode(kind, **payload), flush=True)


def _client():
    from huggingface_hub import HfApi

    return HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=os.environ.get("HF_TOKEN") or None)


class Relay:
    """Turns what the worker writes into stdout lines: numbered events, changed status fields, log text."""

    def __init__(self, run_dir: Path, first_seq: int):
        self.run_dir = run_dir
        self.seq = first_seq
        self.events_offset = 0
        self.log_offset = 0
        self.sent_status: dict = {}
        self.last_status_time = 0.0

    def pump(self, force_status: bool = False) -> None:
        self._log_lines()
        events, self.events_offset = store.read_events(self.run_dir, self.events_offset)
        for event in events:
            self.seq += 1
            say("event", seq=self.seq, event=event)
        status = protocol.relayed_status(store.read_status(self.run_dir))
        changed = {key: value for key, value in status.items() if self.sent_status.get(key) != value}
        now = time.monotonic()
        state_moved = "status" in changed
        # With new events the status goes too (at most once a pump), so the progress bar keeps up with the charts;
        # without, other changes (memory, speed) every STATUS_EVERY_SECONDS.
        due = force_status or state_moved or bool(events) or now - self.last_status_time >= STATUS_EVERY_SECONDS
        if changed and due:
            say("status", status=changed)
            self.sent_status.update(changed)
            self.last_status_time = now

    def _log_lines(self) -> None:
        try:
            with open(self.run_dir / "log.txt", "rb") as handle:
                handle.seek(self.log_offset)
                chunk = handle.read()
        except OSError:
            return
        end = chunk.rfind(b"\n")
        if end < 0:
            return
        self.log_offset += end + 1
        for line in chunk[: end + 1].decode("utf-8", errors="replace").splitlines():
            if not line.startswith(protocol.PREFIX):  # never let log text pose as telemetry
                print(line, flush=True)


class Uploader:
    """Pushes checkpoint folders to the outputs repo one at a time, in a background thread."""

    def __init__(self, client, repo_id: str):
        self.client = client
        self.repo_id = repo_id
        self.pending: queue.Queue = queue.Queue()
        self.done: set[str] = set()
        self.thread = threading.Thread(target=self._work, name="checkpoint-uploads", daemon=True)
        self.thread.start()

    def add(self, folder: Path) -> None:
        if folder.name not in self.done:
            self.done.add(folder.name)
            self.pending.put(folder)

    def _work(self) -> None:
        while True:
            folder = self.pending.get()
            if folder is None:
                return
            path = f"checkpoints/{folder.name}"
            try:
                info = self.client.upload_folder(
                    repo_id=self.repo_id, folder_path=str(folder), path_in_repo=path, commit_message=f"{folder.name}"
                )
                say("upload", path=path, commit=info.oid)
            except Exception as error:  # noqa: BLE001 - a missed checkpoint upload must not end the run
                print(f"[studio job] could not push {path}: {type(error).__name__}: {error}", flush=True)

    def finish(self) -> None:
        self.pending.put(None)
        self.thread.join()


def prepare_run(root: Path, job: dict):
    """The run folder inside the job (store.create_run in a scratch STUDIO_HOME)."""
    config = store.read_run_config(root / "run")
    changes = {"dataset": str(root / "data")}
    if job.get("model_source") == "uploaded":
        changes["model"] = str(root / "model")
    record = store.create_run(config.replace(**changes), owner=JOB_OWNER)
    checkpoint = job.get("resume_checkpoint")
    if checkpoint:
        shutil.copytree(root / "resume" / checkpoint, record.dir / "checkpoints" / checkpoint)
    seed = {key: value for key, value in (job.get("status_seed") or {}).items() if key in ("elapsed", "notes")}
    if seed:
        store.update_status(record.dir, **seed)
    return store.get_run(record.run_id)


def push_results(client, repo_id: str, run_dir: Path) -> str | None:
    """One commit with the adapter, the model card and the run's record; returns its sha."""
    from huggingface_hub import CommitOperationAdd

    operations = []
    adapter = run_dir / "adapter"
    if adapter.is_dir():
        for path in sorted(adapter.rglob("*")):
            if path.is_file():
                operations.append(CommitOperationAdd(f"adapter/{path.relative_to(adapter).as_posix()}", str(path)))

    if (adapter / CARD_NAME).is_file():  # the model card is also the repo's own page
        operations.append(CommitOperationAdd(CARD_NAME, str(adapter / CARD_NAME)))
    for name in (store.STATUS_FILE, store.EVENTS_FILE, store.LOG_FILE):
        if (run_dir / name).is_file():
            operations.append(CommitOperationAdd(name, str(run_dir / name)))
    info = client.create_commit(repo_id, operations, commit_message="Run result (adapter, model card, record)")
    return info.oid


def main(argv: list[str]) -> int:
    try:
        return run(argv)
    except BaseException as error:  # noqa: BLE001 - say why in the protocol, so the studio shows it
        traceback.print_exc()
        say(
            "final",
            status={
                "status": "failed",
                "error": {
                    "message": f"The job could not run the studio's worker: {type(error).__name__}: {str(error)[:300]}",
                    "hint": "The job's log (in the run's log) has the traceback.",
                },
            },
            commit=None,
        )
        return 1


def run(argv: list[str]) -> int:
    inputs_repo, revision = argv[0], argv[1]
    root = Path(__file__).resolve().parents[2]
    job = json.loads((root / "run" / "job.json").read_text(encoding="utf-8"))
    os.environ["STUDIO_HOME"] = tempfile.mkdtemp(prefix="studio-home-")

    say("phase", phase="preparing", message="Inputs downloaded; starting the studio's worker.")
    record = prepare_run(root, job)
    client = _client()
    relay = Relay(record.dir, int(job.get("first_seq") or 0))
    uploader = Uploader(client, job["outputs_repo"])
    stop = {"requested": False, "sent": False}

    def on_signal(signum, frame):  # noqa: ARG001 - the platform stopping the job: save what we can
        stop["requested"] = True

    signal.signal(signal.SIGTERM, on_signal)
    pid = supervisor.start(record, resume=bool(job.get("resume_checkpoint")))
    poll = float(os.environ.get(CONTROL_POLL_ENV) or 15)
    next_control = time.monotonic() + poll
    while supervisor.pid_alive(pid, record.dir):
        relay.pump()
        for checkpoint in store.checkpoints(record.dir):
            uploader.add(checkpoint)
        if not stop["requested"] and time.monotonic() >= next_control:
            next_control = time.monotonic() + poll
            try:
                stop["requested"] = client.file_exists(inputs_repo, control_file(revision), repo_type="dataset")
            except Exception as error:  # noqa: BLE001 - keep training; try again next time
                print(f"[studio job] could not check for a stop request: {type(error).__name__}", flush=True)
        if stop["requested"] and not stop["sent"]:
            stop["sent"] = True
            say("phase", phase="stopping", message="Stop requested: finishing the step, then saving.")
            supervisor.stop(record.run_id, requester=JOB_OWNER)
        time.sleep(1.0)
    time.sleep(0.5)  # the worker's last writes
    supervisor.reconcile_one(store.get_run(record.run_id))  # a worker that died without a word: interrupted
    relay.pump(force_status=True)
    for checkpoint in store.checkpoints(record.dir):
        uploader.add(checkpoint)
    say("phase", phase="uploading", message="Pushing the checkpoints and the adapter to the outputs repo.")
    uploader.finish()
    status = store.read_status(record.dir)
    commit = None
    try:
        commit = push_results(client, job["outputs_repo"], record.dir)
    except Exception as error:  # noqa: BLE001 - any upload failure is recorded in the run's status
        traceback.print_exc()
        status = {
            **status,
            "status": "failed",
            "error": {
                "message": f"The run ended ({status.get('status')}) but its adapter could not be pushed to "
                f"{job['outputs_repo']}: {type(error).__name__}.",
                "hint": "The job's log (log.txt) has the details.",
            },
        }
    say("final", status=protocol.relayed_status(status), commit=commit)
    sys.stdout.flush()
    return 0 if status.get("status") in ("completed", "stopped") else 1
