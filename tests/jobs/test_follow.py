"""The follower's bookkeeping, fed log lines directly: de-duplication, status rules, replay after a restart."""

from __future__ import annotations

from studio.jobs import follow, protocol
from studio.train import store


def make_run(tiny_remote_config, status: str = "running"):
    record = store.create_run(tiny_remote_config(name="followed"), owner="cli")
    store.update_status(record.dir, status=status, executor="hf-jobs", job={"id": "job123", "namespace": "someone"})
    return record


def line(kind: str, **payload) -> str:
    return protocol.encode(kind, **payload)


def test_events_are_appended_once_in_order_and_plain_lines_go_to_the_log(remote_env, tiny_remote_config, capsys):
    record = make_run(tiny_remote_config)
    follower = follow.Follower(record.dir)
    follower.handle("[studio] training: step 0/20")
    follower.handle(line("event", seq=1, event={"type": "log", "step": 1, "loss": 2.0}))
    follower.handle(line("event", seq=2, event={"type": "log", "step": 2, "loss": 1.5}))
    events, _ = store.read_events(record.dir, 0)
    assert [(e["seq"], e["step"]) for e in events] == [(1, 1), (2, 2)]
    assert capsys.readouterr().out == "[studio] training: step 0/20\n"

    # A new follower (after a restart) replays the job's log from the start: nothing is copied twice.
    again = follow.Follower(record.dir)
    for text in (
        "[studio] training: step 0/20",
        line("event", seq=1, event={"type": "log", "step": 1}),
        line("event", seq=2, event={"type": "log", "step": 2}),
        "[studio] step 3/20 loss 1.2",
        line("event", seq=3, event={"type": "log", "step": 3, "loss": 1.2}),
    ):
        again.handle(text)
    events, _ = store.read_events(record.dir, 0)
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert capsys.readouterr().out == "[studio] step 3/20 loss 1.2\n"


def test_a_local_stop_is_not_undone_and_the_end_waits_for_the_results(remote_env, tiny_remote_config):
    record = make_run(tiny_remote_config, status="stopping")
    follower = follow.Follower(record.dir)
    follower.handle(line("status", status={"status": "running", "step": 7, "pid": 999}))
    status = store.read_status(record.dir)
    assert status["status"] == "stopping" and status["step"] == 7 and status["pid"] is None  # pid stays local
    follower.handle(line("final", status={"status": "stopped", "step": 8, "adapter": "adapter"}, commit="abc"))
    status = store.read_status(record.dir)
    assert status["status"] == "stopping" and status["job_result"] == "stopped"  # until the adapter is home
    assert follower.final["commit"] == "abc"


def test_training_clears_the_setup_note(remote_env, tiny_remote_config):
    record = make_run(tiny_remote_config, status="starting")
    store.update_status(record.dir, job_phase="Installing the pinned packages.")
    follower = follow.Follower(record.dir)
    follower.handle(line("status", status={"status": "running", "step": 1, "total_steps": 20}))
    status = store.read_status(record.dir)
    assert status["status"] == "running" and status["job_phase"] is None


def test_a_job_that_no_longer_exists_ends_the_run_with_a_reason(remote_env, tiny_remote_config):
    record = make_run(tiny_remote_config)  # job "job123" was never submitted to the stand-in: 404
    assert follow.Follower(record.dir).run() == 0
    status = store.read_status(record.dir)
    assert status["status"] == "failed" and status["job_stage"] == "DELETED"
    assert "no longer exists on Hugging Face" in status["error"]["message"]
    events, _ = store.read_events(record.dir, 0)
    assert events[-1]["type"] == "status" and events[-1]["status"] == "failed"


def test_a_job_stopped_at_its_time_limit_says_whether_it_can_resume(remote_env, tiny_remote_config):
    from types import SimpleNamespace

    record = make_run(tiny_remote_config)
    job = {"id": "job123", "namespace": "someone", "timeout_seconds": 60, "max_cost_usd": 0.0005}
    store.update_status(record.dir, job=job)
    ended = SimpleNamespace(
        status=SimpleNamespace(stage="ERROR", message=""), durations=SimpleNamespace(running_secs=60)
    )

    follow.Follower(record.dir).finish(ended, "ERROR")
    error = store.read_status(record.dir)["error"]
    assert "time limit (60 s, set from the cost cap of $0.0005)" in error["message"]
    assert "cannot resume" in error["hint"]  # no checkpoint came home: no promise of Resume

    (record.dir / "checkpoints" / "checkpoint-4").mkdir(parents=True)
    (record.dir / "checkpoints" / "checkpoint-4" / "trainer_state.json").write_text("{}")  # written last: complete
    follow.Follower(record.dir).finish(ended, "ERROR")
    assert "Resume continues from checkpoint-4" in store.read_status(record.dir)["error"]["hint"]


def test_checkpoint_names_from_the_job_never_become_other_paths(remote_env, tiny_remote_config):
    record = make_run(tiny_remote_config)
    follower = follow.Follower(record.dir)
    follower.handle(
        line(
            "status",
            status={"last_checkpoint": "../../../etc", "best_checkpoint": "checkpoints/checkpoint-4", "step": 5},
        )
    )
    status = store.read_status(record.dir)
    assert "last_checkpoint" not in status and status["best_checkpoint"] == "checkpoints/checkpoint-4"


def test_the_log_position_is_never_seen_half_written(tmp_path):
    """The follower rewrites its position after every copied line. A reader (a new follower after a restart)
    must see the old or the new count, never an empty file, which reads as 0 and replays the whole log."""
    import threading

    follow.write_position(tmp_path, "job-1", 1)
    seen, done = [], threading.Event()

    def read_while_written():
        while not done.is_set():
            seen.append(follow.read_position(tmp_path, "job-1"))

    reader = threading.Thread(target=read_while_written)
    reader.start()
    for lines in range(2, 3000):
        follow.write_position(tmp_path, "job-1", lines)
    done.set()
    reader.join()
    assert seen and min(seen) >= 1 and seen == sorted(seen)
    assert follow.read_position(tmp_path, "job-1") == 2999
    assert [path.name for path in tmp_path.iterdir()] == [follow.POSITION_FILE]  # no temporary file left
