"""A remote run and this machine's training queue (studio.train.queue) leave each other alone: a run on
Hugging Face Jobs never makes the local trainer busy and never waits in the queue, so local runs start (and
queue behind each other) exactly as if it were not there.

The local "worker" here is a sleeping process whose command line names the run folder (what
supervisor.pid_alive checks), so no model is loaded.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from studio.train import queue, store, supervisor
from studio.train.config import RunConfig


@pytest.fixture
def sleeping_workers(monkeypatch):
    started: list[subprocess.Popen] = []

    def fake_start(record, resume: bool = False) -> int:
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", str(record.dir)])
        started.append(process)
        store.update_status(record.dir, status="running", pid=process.pid, started_at=store.now_iso())
        return process.pid

    monkeypatch.setattr(supervisor, "start", fake_start)
    yield started
    for process in started:
        process.kill()
        process.wait()


def test_a_remote_run_neither_blocks_nor_joins_the_local_queue(sums_dataset, sleeping_workers):
    remote = store.create_run(RunConfig(dataset=str(sums_dataset), name="on jobs"), owner="cli")
    store.update_status(
        remote.dir,
        status="running",
        executor="hf-jobs",
        pid=None,
        follower_started_at=time.time(),
        job={"id": "job-1", "namespace": "someone", "flavor": "t4-small"},
        job_stage="RUNNING",
    )
    made = [remote.run_id]
    try:
        assert supervisor.busy() is None
        assert remote.run_id not in [record.run_id for record in queue.waiting()]

        first = supervisor.submit(RunConfig(dataset=str(sums_dataset), name="local one", max_steps=5), owner="cli")
        made.append(first.run_id)
        assert first.state == "running" and not queue.is_waiting(first)  # started at once, remote or not
        assert supervisor.busy().run_id == first.run_id

        second = supervisor.submit(RunConfig(dataset=str(sums_dataset), name="local two", max_steps=5), owner="cli")
        made.append(second.run_id)
        assert queue.is_waiting(second)  # the local trainer is busy with the local run: the queue holds it
        assert [record.run_id for record in queue.waiting()] == [second.run_id]

        sleeping_workers[0].kill()
        sleeping_workers[0].wait()
        store.update_status(first.dir, status="completed")
        assert supervisor.dispatch().run_id == second.run_id
        assert store.get_run(remote.run_id).state == "running"  # the remote run was not touched
    finally:
        for run_id in made:
            store.update_status(store.run_dir(run_id), status="failed", pid=None)
            store.delete_run(run_id)
