"""Remote runs end to end through the real huggingface_hub client against the local stand-in.

Each test submits a tiny-model run exactly as the Train tab and the CLI do (supervisor.launch_with): the studio
uploads its own code, the dataset and the model to a private inputs repo, starts a `uv run` job, and a
detached follower copies the job's log into the run folder. The stand-in runs the job's command as a local
process, so the studio's worker really trains inside it and really pushes to the outputs repo.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import pytest

from studio.jobs import package
from studio.train import executors, store, supervisor

pytestmark = pytest.mark.slow

CLI = "cli"


def submit(config, flavor: str = "cpu-basic", cap: float = 1.0):
    return supervisor.launch_with(config, owner=CLI, choice=executors.Choice(executors.HF_JOBS, flavor, cap))


def wait_until(run_id: str, predicate, timeout: float = 240.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        record = supervisor.reconcile_one(store.get_run(run_id))
        if predicate(record):
            return record
        if time.monotonic() > deadline:
            log = (record.dir / "log.txt").read_text(errors="replace")[-3000:]
            raise AssertionError(
                f"timed out waiting for {what}; state {record.state}, status "
                f"{json.dumps(record.status, default=str)[:1500]}\n--- log ---\n{log}"
            )
        time.sleep(0.5)


def finished(record) -> bool:
    return record.state not in store.ACTIVE


def log_events(record) -> list[dict]:
    events, _ = store.read_events(record.dir, 0)
    return [event for event in events if event.get("type") == "log"]


def standin_job(standin, record):
    return standin.jobs[record.status["job"]["id"]]


def test_a_run_trains_in_a_job_reattaches_after_losing_its_follower_and_opens_in_compare(
    remote_env, tiny_remote_config
):
    record = submit(tiny_remote_config(max_steps=120, name="remote tiny"))
    assert record.status["executor"] == "hf-jobs" and record.status["pid"] is None
    job = record.status["job"]
    assert job["id"] and job["flavor"] == "cpu-basic" and job["timeout_seconds"] == int(1.0 * 3600 / (0.000167 * 60))
    assert supervisor.busy() is None  # a remote run leaves this machine's trainer free

    # Lose the follower mid-run (as when the machine restarts); reconcile starts a new one that reattaches.
    running = wait_until(record.run_id, lambda r: len(log_events(r)) >= 5 or finished(r), what="5 logged steps")
    assert not finished(running), "the run ended before the follower could be stopped: make it longer"
    follower = running.status["follower_pid"]
    os.kill(follower, signal.SIGKILL)
    after = wait_until(
        record.run_id,
        lambda r: r.status.get("follower_pid") not in (None, follower) or finished(r),
        what="a new follower",
    )
    assert after.state in store.ACTIVE, "the run ended before a new follower took over: make it longer"

    done = wait_until(record.run_id, finished, what="the end of the run")
    assert done.state == "completed", done.status.get("error")
    assert done.status["job_stage"] == "COMPLETED" and done.status["step"] == 120
    assert done.adapter_dir is not None and (done.adapter_dir / "README.md").is_file()
    assert store.last_checkpoint(done.dir).name == "checkpoint-120"  # home too, so Resume and export work

    # The same events a local run writes, each once, in order, despite the replayed log.
    events, _ = store.read_events(done.dir, 0)
    seqs = [event["seq"] for event in events if "seq" in event]
    assert seqs == sorted(set(seqs)) and len(seqs) == len(events)
    steps = [event["step"] for event in log_events(done)]
    assert steps == sorted(set(steps)) and steps[-1] == 120
    assert any(event.get("type") == "eval" for event in events)
    assert events[-1]["type"] == "status" and events[-1]["status"] == "completed"
    log = (done.dir / "log.txt").read_text()
    assert log.count("[studio] training: step 0/120") == 1  # the job's log lines, copied once

    # Same code, same pins: the job was `uv run --python 3.11 --with <every pin>` of this studio's requirements.
    ran = standin_job(remote_env, done)
    assert ran.uv_python == package.PYTHON_VERSION and ran.uv_with == package.pinned_requirements()
    assert ran.spec["secrets"] == {"HF_TOKEN": os.environ["HF_TOKEN"]}
    inputs = remote_env.repos[("dataset", job["inputs_repo"])].commits[0][1]
    assert inputs["studio/train/worker.py"] == (package.project_root() / "studio/train/worker.py").read_bytes()
    assert json.loads(inputs["code-version.json"])["sha256"]
    assert remote_env.repos[("model", job["outputs_repo"])].private

    # The token is never written to the run folder.
    for path in done.dir.rglob("*"):
        if path.is_file():
            assert os.environ["HF_TOKEN"].encode() not in path.read_bytes(), path

    # Compare opens the returned adapter like any other run's.
    from studio.compare import engine

    session = engine.open_session(done.run_id)
    assert session.run.adapter_dir == done.dir / "adapter" and session.run.base_ref == str(tiny_remote_config().model)
    question = [{"role": "user", "content": "What is 2 + 3?"}]
    settings = engine.Settings(max_new_tokens=6)
    tuned = session.engine.generate(session.tuned, question, settings)
    base = session.engine.generate(None, question, settings)
    assert tuned != base  # the adapter that came home changes the model


def test_stop_saves_in_the_job_and_resume_continues_in_a_new_job(remote_env, tiny_remote_config):
    record = submit(tiny_remote_config(max_steps=150, name="remote stop"))
    wait_until(record.run_id, lambda r: len(log_events(r)) >= 3 or finished(r), what="3 logged steps")
    stopping = supervisor.stop(record.run_id, requester=CLI)
    assert stopping.state == "stopping"
    inputs_repo = record.status["job"]["inputs_repo"]
    revision = record.status["job"]["inputs_revision"]
    assert f"control/stop-{revision}" in remote_env.repos[("dataset", inputs_repo)].commits[-1][1]  # asked, not killed

    stopped = wait_until(record.run_id, finished, what="the graceful stop")
    assert stopped.state == "stopped", stopped.status.get("error")
    assert stopped.status["job_stage"] == "COMPLETED"  # the job ended by itself after saving
    assert stopped.adapter_dir is not None
    checkpoint = store.last_checkpoint(stopped.dir)
    assert checkpoint is not None and 3 <= stopped.status["step"] < 150
    first_job = stopped.status["job"]["id"]

    resumed = supervisor.resume(record.run_id, requester=CLI)
    assert resumed.status["job"]["id"] != first_job
    assert [entry["id"] for entry in resumed.status["job_history"]] == [first_job]
    done = wait_until(record.run_id, finished, what="the resumed run")
    assert done.state == "completed", done.status.get("error")
    events, _ = store.read_events(done.dir, 0)
    resumed_event = [e for e in events if e.get("type") == "status" and e.get("status") == "resumed"]
    assert resumed_event and resumed_event[0]["step"] == int(checkpoint.name.split("-")[1])
    # The resumed job got the checkpoint with its inputs and numbered its events after the first job's.
    seqs = [event["seq"] for event in events if "seq" in event]
    assert seqs == sorted(set(seqs))


def test_a_run_that_fails_in_the_job_shows_the_workers_reason(remote_env, tiny_remote_config, tiny_model_dir, tmp_path):
    broken = tmp_path / "no-weights"
    shutil.copytree(tiny_model_dir, broken)
    for weights in broken.glob("*.safetensors"):
        weights.unlink()
    record = submit(tiny_remote_config(model=str(broken)))
    done = wait_until(record.run_id, finished, what="the failure")
    assert done.state == "failed" and done.status["job_stage"] == "ERROR"
    message = done.status["error"]["message"]
    assert "failed on Hugging Face" not in message  # the run's own explanation, relayed from the job
    assert message and done.status["error"]["hint"]
    assert done.adapter_dir is None


def _running(record) -> bool:
    return bool(log_events(record)) or finished(record)


def test_force_stop_cancels_the_job(remote_env, tiny_remote_config):
    record = submit(tiny_remote_config(max_steps=5000, name="remote force"))
    wait_until(record.run_id, _running, what="training")
    supervisor.stop(record.run_id, requester=CLI, force=True)
    done = wait_until(record.run_id, finished, what="the cancellation")
    assert done.state == "stopped" and done.status["job_stage"] == "CANCELED"
    assert "force-stopped from the studio" in done.status["error"]["message"]
    assert standin_job(remote_env, done).stage == "CANCELED"


def test_a_job_cancelled_outside_the_studio_says_so(remote_env, tiny_remote_config):
    record = submit(tiny_remote_config(max_steps=5000, name="remote cancelled elsewhere"))
    wait_until(record.run_id, _running, what="training")
    from huggingface_hub import HfApi

    job = record.status["job"]
    HfApi(endpoint=remote_env.url, token=os.environ["HF_TOKEN"]).cancel_job(
        job_id=job["id"], namespace=job["namespace"]
    )
    done = wait_until(record.run_id, finished, what="the cancellation")
    assert done.state == "stopped" and "outside the studio" in done.status["error"]["message"]


def test_deleting_a_run_cancels_its_job(remote_env, tiny_remote_config):
    record = submit(tiny_remote_config(max_steps=5000, name="remote deleted"))
    running = wait_until(
        record.run_id,
        lambda r: r.status.get("follower_pid") and r.status.get("job_stage") == "RUNNING",
        what="the job to run",
    )
    job = standin_job(remote_env, running)
    supervisor.delete(record.run_id, requester=CLI)
    assert not running.dir.exists()
    deadline = time.monotonic() + 20
    while job.stage != "CANCELED" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.stage == "CANCELED"


def test_a_stop_the_job_does_not_obey_in_time_becomes_a_cancel(remote_env, tiny_remote_config, monkeypatch):
    monkeypatch.setenv("STUDIO_JOBS_CONTROL_POLL_SECONDS", "3600")  # the job will not see the stop file
    monkeypatch.setenv("STUDIO_JOBS_STOP_TIMEOUT", "2")  # the follower's patience
    record = submit(tiny_remote_config(max_steps=5000, name="remote stop too slow"))
    wait_until(record.run_id, _running, what="training")
    assert supervisor.stop(record.run_id, requester=CLI).state == "stopping"
    done = wait_until(record.run_id, finished, what="the escalated stop")
    assert done.status["job_stage"] == "CANCELED" and standin_job(remote_env, done).stage == "CANCELED"
    assert "the graceful stop took longer than 2 s" in done.status["cancel_reason"]
    assert done.state == "stopped" and "took longer than 2 s" in done.status["error"]["message"]
