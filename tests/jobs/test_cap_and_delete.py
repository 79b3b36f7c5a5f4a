"""The cost cap covers a whole run (a resumed job gets only what is left of it), and deleting a run that is
being sent never leaves a job running that nobody follows."""

from __future__ import annotations

import time

import pytest

from studio.errors import StudioError
from studio.jobs import executor, hub
from studio.train import store, supervisor

CLI = "cli"
PRICE_PER_HOUR = 3.6  # one cent a second: the figures below are easy to check by hand


def stopped_remote_run(tiny_remote_config, job_cost: float, earlier_cost: float | None = None):
    record = store.create_run(tiny_remote_config(name="capped"), owner=CLI)
    checkpoint = record.dir / store.CHECKPOINTS_DIR / "checkpoint-4"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text("{}")
    job = {
        "executor": executor.EXECUTOR,
        "id": "job-1",
        "namespace": "someone",
        "flavor": "cpu-basic",
        "max_cost_usd": 1.0,
        "price_per_hour": PRICE_PER_HOUR,
        "timeout_seconds": 100,
    }
    store.update_status(
        record.dir,
        status="stopped",
        executor=executor.EXECUTOR,
        job=job,
        job_stage="COMPLETED",
        job_cost_usd=job_cost,
        earlier_jobs_cost_usd=earlier_cost,
    )
    return store.get_run(record.run_id)


def test_a_resumed_job_gets_only_what_is_left_of_the_runs_cap(remote_env, tiny_remote_config, monkeypatch):
    launched = []
    monkeypatch.setattr(executor, "_launch", lambda client, record, job, resume_checkpoint: launched.append(job))
    record = stopped_remote_run(tiny_remote_config, job_cost=0.4, earlier_cost=0.2)

    executor.resume(record)

    assert launched[0]["timeout_seconds"] == 400  # $1 cap − $0.60 spent = $0.40 = 400 s at one cent a second
    status = store.read_status(record.dir)
    assert status["earlier_jobs_cost_usd"] == pytest.approx(0.6) and status["job_cost_usd"] is None
    store.update_status(record.dir, job_cost_usd=0.05, job_running_seconds=50, status="running")
    shown = executor.describe(store.read_status(record.dir))
    assert "cost so far ≈ $0.65" in shown and "$0.60 in the run's earlier jobs" in shown and "$1.00 cap" in shown


def test_no_job_is_resumed_once_the_cap_is_spent(remote_env, tiny_remote_config, monkeypatch):
    monkeypatch.setattr(executor, "_launch", lambda *args, **kwargs: pytest.fail("a job was started"))
    record = stopped_remote_run(tiny_remote_config, job_cost=0.7, earlier_cost=0.29)

    with pytest.raises(StudioError) as refused:
        executor.resume(record)

    assert "$0.99 of its $1.00 cap" in refused.value.message and "higher cost cap" in refused.value.hint
    assert store.read_status(record.dir)["status"] == "stopped"  # nothing changed


def test_a_run_still_being_sent_is_not_deleted(remote_env, tiny_remote_config):
    record = store.create_run(tiny_remote_config(name="sending"), owner=CLI)
    store.update_status(record.dir, status="starting", executor=executor.EXECUTOR, job={"id": None})

    with pytest.raises(StudioError) as refused:
        supervisor.delete(record.run_id, requester=CLI)

    assert "still being sent" in refused.value.message
    assert record.dir.exists()


def test_a_run_deleted_while_its_job_starts_cancels_that_job(remote_env, tiny_remote_config, monkeypatch):
    """The delete lands between the upload and the job's start (it got past the check above just before)."""
    real_api = hub.api

    class DeletedMidway:
        def __init__(self, client):
            self.client = client

        def __getattr__(self, name):
            return getattr(self.client, name)

        def run_uv_job(self, *args, labels, **kwargs):
            store.delete_run(labels["fine-tune-studio-run"])
            return self.client.run_uv_job(*args, labels=labels, **kwargs)

    monkeypatch.setattr(hub, "api", lambda: DeletedMidway(real_api()))
    jobs_before = set(remote_env.jobs)

    with pytest.raises(StudioError) as refused:
        supervisor.launch_with(
            tiny_remote_config(name="deleted midway"),
            owner=CLI,
            choice=supervisor.executors.Choice(executor.EXECUTOR, "cpu-basic", 1.0),
        )

    assert "was deleted while it was being sent" in refused.value.message
    (job,) = [job for job_id, job in remote_env.jobs.items() if job_id not in jobs_before]
    deadline = time.monotonic() + 20
    while job.stage != "CANCELED" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.stage == "CANCELED"


def test_while_a_resume_uploads_nobody_follows_the_previous_job(remote_env, tiny_remote_config, monkeypatch):
    """Seen in the browser: the page's poll reconciled the run during the upload, followed the old job again,
    and its end marked the resumed run stopped; the new job then ran with no follower."""
    record = stopped_remote_run(tiny_remote_config, job_cost=0.1)
    followed = []
    monkeypatch.setattr(executor, "start_follower", lambda run_dir: followed.append(run_dir) or 1)
    monkeypatch.setattr(
        executor, "_launch", lambda client, run, job, resume_checkpoint: executor.reconcile(store.get_run(run.run_id))
    )

    executor.resume(record)

    assert followed == []
    status = store.read_status(record.dir)
    assert status["job"]["id"] is None and [entry["id"] for entry in status["job_history"]] == ["job-1"]
