"""Supervisor rules with stand-in processes (no training): ownership, busy, stop escalation,
reconcile after a dead worker or an app restart, zombie reaping, the multi-GPU command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio.errors import StudioError
from studio.train import distributed, store, supervisor
from studio.train.config import RunConfig

# A process whose command line names the run folder, like a real worker; it ignores SIGTERM when asked.
SLEEPER = (
    "import signal, sys, time\n"
    "if sys.argv[2] == 'stubborn': signal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(120)"
)


@pytest.fixture
def dataset(tmp_path) -> Path:
    (tmp_path / "train.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    return tmp_path


@pytest.fixture
def fake_worker(dataset):
    started = []

    def start(owner: str = "alice", status: str = "running", stubborn: bool = False):
        record = store.create_run(RunConfig(dataset=str(dataset)), owner)
        process = subprocess.Popen(
            [sys.executable, "-c", SLEEPER, str(record.dir), "stubborn" if stubborn else "meek"], start_new_session=True
        )
        supervisor._children[process.pid] = process
        started.append(process)
        store.update_status(record.dir, status=status, pid=process.pid, step=3, total_steps=10)
        store.append_event(record.dir, {"type": "log", "step": 3, "total": 10, "eta": 120.0})
        return store.get_run(record.run_id), process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.fixture(autouse=True)
def quiet_runs():
    """Each test starts with no active run left over by another test."""
    supervisor.reconcile()
    for record in store.list_runs():
        if record.state in store.ACTIVE:
            store.update_status(record.dir, status="interrupted")
    yield


def test_owner_may_act_others_need_the_admin_password(monkeypatch, dataset):
    record = store.create_run(RunConfig(dataset=str(dataset)), "alice")
    monkeypatch.delenv(supervisor.ADMIN_ENV, raising=False)
    assert supervisor.is_authorized(record, "alice")
    assert not supervisor.is_authorized(record, "bob")
    assert not supervisor.is_authorized(record, "bob", "anything")  # no admin password configured
    assert not supervisor.is_authorized(record, None)
    monkeypatch.setenv(supervisor.ADMIN_ENV, "s3cret")
    assert supervisor.is_authorized(record, "bob", "s3cret")
    assert not supervisor.is_authorized(record, "bob", "wrong")
    assert not supervisor.is_authorized(record, "bob", "")
    with pytest.raises(StudioError) as caught:
        supervisor.delete(record.run_id, "bob", "wrong")
    assert "another session" in caught.value.message and "admin password" in caught.value.hint
    supervisor.delete(record.run_id, "bob", "s3cret")
    assert not record.dir.exists()


def test_busy_names_the_active_run_and_refuses_a_second_start(fake_worker, dataset):
    record, _ = fake_worker()
    busy = supervisor.busy()
    assert busy is not None and busy.run_id == record.run_id
    assert 100 < busy.eta_seconds <= 120 and busy.until is not None
    assert "busy" in busy.message and "until" in busy.message
    before = {r.run_id for r in store.list_runs()}
    with pytest.raises(StudioError) as caught:
        supervisor.launch(RunConfig(dataset=str(dataset)), "bob")
    assert "busy" in caught.value.message
    assert {r.run_id for r in store.list_runs()} == before  # nothing created


def test_stop_by_another_session_is_refused_and_the_run_keeps_going(fake_worker):
    record, process = fake_worker(owner="alice")
    with pytest.raises(StudioError):
        supervisor.stop(record.run_id, requester="mallory")
    time.sleep(0.2)
    assert process.poll() is None and store.get_run(record.run_id).state == "running"


def test_graceful_stop_sends_sigterm_to_the_process_group(fake_worker):
    record, process = fake_worker()
    after = supervisor.stop(record.run_id, requester="alice")
    assert after.state == "stopping"
    process.wait(timeout=10)
    assert process.returncode == -15


def test_stop_escalates_to_kill_after_the_timeout(fake_worker):
    record, process = fake_worker(stubborn=True)
    time.sleep(0.5)  # let it install its SIGTERM handler
    started = time.monotonic()
    after = supervisor.stop(record.run_id, requester="alice", timeout=1.0)
    assert time.monotonic() - started < 8
    assert process.wait(timeout=5) == -9
    assert after.state == "stopped" and after.status["forced"] is True
    assert "Force-stopped" in after.status["error"]["message"]


def test_force_stop_kills_at_once(fake_worker):
    record, process = fake_worker(stubborn=True)
    after = supervisor.stop(record.run_id, requester="alice", force=True)
    assert process.wait(timeout=5) == -9 and after.state == "stopped"


def test_dead_worker_is_reaped_and_reconciled_as_interrupted(fake_worker):
    record, process = fake_worker()
    checkpoint = record.dir / "checkpoints" / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text("{}")
    os.kill(process.pid, 9)
    time.sleep(0.3)  # the child is now a zombie until reaped: it must not count as alive
    assert not supervisor.pid_alive(process.pid, record.dir)
    changed = supervisor.reconcile()
    assert record.run_id in [r.run_id for r in changed]
    after = store.get_run(record.run_id)
    assert after.state == "interrupted" and "checkpoint-2" in after.status["error"]["hint"]
    assert supervisor.busy() is None


def test_restarted_app_reconciles_dead_runs_and_leaves_live_ones(fake_worker, dataset):
    live, _ = fake_worker()
    dead = store.create_run(RunConfig(dataset=str(dataset)), "alice")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    store.update_status(dead.dir, status="running", pid=gone.pid)
    # A new process = the app after a restart: it only knows what is on disk.
    script = "from studio.train import supervisor; print(sorted(r.run_id for r in supervisor.reconcile()))"
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert dead.run_id in result.stdout and live.run_id not in result.stdout
    assert store.get_run(dead.run_id).state == "interrupted"
    assert store.get_run(live.run_id).state == "running"


def test_a_reused_pid_of_another_program_is_not_our_worker(dataset):
    record = store.create_run(RunConfig(dataset=str(dataset)), "alice")
    assert supervisor.pid_alive(os.getpid())  # alive...
    assert not supervisor.pid_alive(os.getpid(), record.dir)  # ...but not this run's worker


def test_an_unreaped_zombie_is_not_alive(dataset):
    import psutil

    record = store.create_run(RunConfig(dataset=str(dataset)), "alice")
    child = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(60)  # {record.dir.name}"])
    try:
        deadline = time.monotonic() + 10
        while not supervisor.pid_alive(child.pid, record.dir) and time.monotonic() < deadline:
            time.sleep(0.05)  # until the child has exec'd Python
        assert supervisor.pid_alive(child.pid, record.dir)  # our worker's command line names the run
        child.kill()
        deadline = time.monotonic() + 10
        while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.05)
        assert psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE  # not reaped: supervisor did not start it
        assert not supervisor.pid_alive(child.pid) and not supervisor.pid_alive(child.pid, record.dir)
    finally:
        child.kill()
        child.wait()


def test_pid_checks_go_through_psutil_so_they_hold_beyond_linux(monkeypatch, dataset):
    import psutil

    record = store.create_run(RunConfig(dataset=str(dataset)), "alice")

    class Process:  # what psutil reports on macOS, where there is no /proc
        def __init__(self, pid):
            self.pid = pid

        def status(self):
            return statuses[self.pid]

        def cmdline(self):
            return ["python", "-m", "studio.train.worker", str(record.dir)]

    statuses = {101: psutil.STATUS_RUNNING, 102: psutil.STATUS_ZOMBIE}
    monkeypatch.setattr(psutil, "Process", Process)
    assert supervisor.pid_alive(101, record.dir)
    assert not supervisor.pid_alive(102, record.dir)
    assert not supervisor.pid_alive(101, record.dir.with_name("run-someone-else"))


def test_delete_refuses_while_the_worker_lives(fake_worker):
    record, _ = fake_worker()
    with pytest.raises(StudioError):
        supervisor.delete(record.run_id, "alice")
    assert record.dir.exists()


def test_resume_needs_a_checkpoint(dataset):
    record = store.create_run(RunConfig(dataset=str(dataset)), "alice")
    store.update_status(record.dir, status="interrupted")
    with pytest.raises(StudioError) as caught:
        supervisor.resume(record.run_id, "alice")
    assert "checkpoint" in caught.value.message


def test_several_processes_run_under_the_studios_parent_and_one_runs_the_worker_itself(tmp_path, tiny_config):
    assert distributed.command(tmp_path, 1, python="py") == ["py", "-m", "studio.train.worker", str(tmp_path)]
    assert distributed.command(tmp_path, 4, python="py") == ["py", "-m", "studio.train.distributed", str(tmp_path)]
    assert distributed.process_count(tiny_config(), gpus=0) == 1
    assert distributed.process_count(tiny_config(), gpus=4) == 4  # 0 = one per visible GPU
    assert distributed.process_count(tiny_config(processes=2), gpus=4) == 2
    written = json.loads(distributed.write_accelerate_config(tmp_path, tiny_config(), 2).read_text())
    with socket.socket() as probe:  # each start picks a port nobody holds, so two runs never collide
        probe.bind(("127.0.0.1", written["main_process_port"]))


def test_worker_env_limits_threads_and_never_adds_secrets():
    env = supervisor.worker_env(RunConfig(dataset="/d", torch_threads=1), base={"HF_TOKEN": "hf_x", "PATH": "/bin"})
    assert env["OMP_NUM_THREADS"] == "1" and env["HF_TOKEN"] == "hf_x"  # passed through the environment only
    assert "studio" in os.listdir(env["PYTHONPATH"].split(os.pathsep)[0])


def test_launch_makes_local_paths_absolute(monkeypatch, dataset, tmp_path):
    started = []
    monkeypatch.setattr(supervisor, "start", lambda record, resume=False: started.append(record) or 0)
    model = tmp_path / "my-model"
    model.mkdir()
    monkeypatch.chdir(tmp_path)
    record = supervisor.launch(RunConfig(dataset=os.path.relpath(dataset, tmp_path), model="my-model"), "alice")
    assert record.config["model"] == str(model) and record.config["dataset"] == str(dataset.resolve())
    assert started and started[0].run_id == record.run_id


# ---- limits (studio.limits) ----------------------------------------------------------------


@pytest.fixture
def public_mode(monkeypatch):
    for name in ("STUDIO_MAX_EPOCHS", "STUDIO_MAX_STEPS", "STUDIO_MAX_RUN_MINUTES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STUDIO_MODE", "public")


def test_local_runs_have_no_caps(monkeypatch, dataset):
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("STUDIO_MODE", raising=False)
    supervisor.check_limits(RunConfig(dataset=str(dataset), epochs=500))
    supervisor.check_limits(RunConfig(dataset=str(dataset), max_steps=1_000_000))
    assert supervisor.time_limit_s() is None


def test_public_mode_caps_epochs_and_steps_with_the_variable_named(public_mode, monkeypatch, tmp_path):
    from tests.train.conftest import write_dataset

    folder = write_dataset(tmp_path / "d", train_rows=800)
    with pytest.raises(StudioError) as caught:
        supervisor.check_limits(RunConfig(dataset=str(folder), epochs=11))
    assert "10 epochs" in caught.value.message and "STUDIO_MAX_EPOCHS" in caught.value.hint
    with pytest.raises(StudioError, match="Max steps is 2,001 steps"):
        supervisor.check_limits(RunConfig(dataset=str(folder), max_steps=2001))
    supervisor.check_limits(RunConfig(dataset=str(folder), max_steps=2000, epochs=10))
    monkeypatch.setenv("STUDIO_MAX_STEPS", "500")
    with pytest.raises(StudioError) as caught:  # 800 rows × 10 epochs / batch 8 = 1,000 steps
        supervisor.check_limits(RunConfig(dataset=str(folder), epochs=10, batch_size=8))
    assert "about 1,000 steps" in caught.value.message and "Max steps to 500" in caught.value.hint


def test_launch_refuses_over_a_cap_before_creating_anything(public_mode, monkeypatch, dataset):
    before = len(store.list_runs())
    monkeypatch.setattr(supervisor, "start", lambda record, resume=False: pytest.fail("must not start"))
    with pytest.raises(StudioError):
        supervisor.launch(RunConfig(dataset=str(dataset), epochs=50), "alice")
    assert len(store.list_runs()) == before


def test_launch_records_the_time_limit_and_resume_refuses_a_run_that_used_it(public_mode, monkeypatch, dataset):
    monkeypatch.setenv("STUDIO_MAX_RUN_MINUTES", "30")
    monkeypatch.setattr(supervisor, "start", lambda record, resume=False: 0)
    record = supervisor.launch(RunConfig(dataset=str(dataset), max_steps=10), "alice")
    assert record.status["time_limit_s"] == 1800
    (record.dir / "checkpoints" / "checkpoint-5").mkdir()
    (record.dir / "checkpoints" / "checkpoint-5" / "trainer_state.json").write_text("{}")
    store.update_status(record.dir, status="stopped", elapsed=1800.5, stop_reason="time_limit")
    with pytest.raises(StudioError) as caught:
        supervisor.resume(record.run_id, "alice")
    assert "used its 30 minutes" in caught.value.message and "STUDIO_MAX_RUN_MINUTES" in caught.value.hint
    monkeypatch.setenv("STUDIO_MAX_RUN_MINUTES", "60")  # the operator raised it: the run may go on
    assert supervisor.resume(record.run_id, "alice").status["time_limit_s"] == 3600
