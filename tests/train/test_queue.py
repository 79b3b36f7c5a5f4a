"""The training queue: FIFO on disk, positions and estimated starts, cancel, move to the front, and the
dispatcher that starts the next run by itself (stand-in starts: no training here)."""

from __future__ import annotations

import time

import pytest

from studio import access
from studio.errors import StudioError
from studio.train import queue, store, supervisor
from studio.train.config import RunConfig


@pytest.fixture(autouse=True)
def empty_queue():
    """Each test starts with nobody waiting and the trainer free."""
    for record in store.list_runs():
        if queue.is_waiting(record) or record.state in store.ACTIVE:
            store.update_status(record.dir, status="stopped", queue_key=None)
    yield
    for record in queue.waiting():
        store.update_status(record.dir, status="stopped", queue_key=None)


@pytest.fixture
def dataset(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    return tmp_path


@pytest.fixture
def started(monkeypatch):
    """supervisor.start recorded instead of run; the trainer looks busy while `busy_with` holds a run."""
    calls, state = [], {"busy": None}

    def fake_start(record, resume=False):
        calls.append(record.run_id)
        store.update_status(record.dir, status="running", pid=None)
        state["busy"] = record.run_id
        return 0

    monkeypatch.setattr(supervisor, "start", fake_start)
    monkeypatch.setattr(
        supervisor,
        "busy",
        lambda: supervisor.Busy(state["busy"], "x", "o", "running", 1, 10, 300.0) if state["busy"] else None,
    )
    return calls, state


def test_submit_starts_at_once_when_free_and_queues_in_order_when_busy(dataset, started):
    calls, state = started
    first = supervisor.submit(RunConfig(dataset=str(dataset), name="first"), "alice")
    assert calls == [first.run_id] and not queue.is_waiting(store.get_run(first.run_id))
    second = supervisor.submit(RunConfig(dataset=str(dataset), name="second"), "bob", estimated_seconds=120)
    third = supervisor.submit(RunConfig(dataset=str(dataset), name="third"), "carol", estimated_seconds=60)
    assert calls == [first.run_id]
    assert [r.run_id for r in queue.waiting()] == [second.run_id, third.run_id]
    places = queue.places(300.0, True)
    assert (places[second.run_id].position, places[second.run_id].of) == (1, 2)
    assert places[second.run_id].starts_in == 300.0 and places[third.run_id].starts_in == 420.0
    assert "starts at about" in places[third.run_id].start_text
    # The first one finishes: the next in line starts, without anybody asking for it.
    state["busy"] = None
    assert supervisor.dispatch().run_id == second.run_id
    assert calls == [first.run_id, second.run_id] and [r.run_id for r in queue.waiting()] == [third.run_id]


def test_move_to_front_and_cancel(dataset, started):
    calls, state = started
    state["busy"] = "someone"
    a = supervisor.submit(RunConfig(dataset=str(dataset), name="a"), "alice")
    b = supervisor.submit(RunConfig(dataset=str(dataset), name="b"), "bob")
    queue.move_to_front(b.run_id)
    assert [r.run_id for r in queue.waiting()] == [b.run_id, a.run_id]
    with pytest.raises(StudioError):
        supervisor.stop(a.run_id, requester="bob")  # not bob's run
    cancelled = supervisor.stop(a.run_id, requester="alice")  # the owner cancels a waiting run
    assert cancelled.state == "stopped" and "Cancelled" in cancelled.status["error"]["message"]
    assert [r.run_id for r in queue.waiting()] == [b.run_id]
    with pytest.raises(StudioError):
        queue.move_to_front(a.run_id)


def test_the_queue_survives_a_restart_and_the_dispatcher_starts_runs_by_itself(dataset, started):
    calls, state = started
    state["busy"] = "someone"
    waiting = supervisor.submit(RunConfig(dataset=str(dataset), name="after restart"), "alice")
    # A restarted app knows the queue from the run folders alone (no in-memory state).
    assert [r.run_id for r in queue.waiting()] == [waiting.run_id]
    state["busy"] = None
    thread = supervisor.start_dispatcher(interval=0.1)
    try:
        deadline = time.monotonic() + 10
        while waiting.run_id not in calls and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiting.run_id in calls and thread.is_alive()
    finally:
        supervisor.stop_dispatcher()
    assert not thread.is_alive()


def test_a_full_queue_refuses_visitors_with_a_clear_message(dataset, started, monkeypatch):
    calls, state = started
    state["busy"] = "someone"
    monkeypatch.setenv("SPACE_ID", "me/studio")
    monkeypatch.setenv("STUDIO_QUEUE_MAX", "1")
    supervisor.submit(RunConfig(dataset=str(dataset)), "browser-v1aaaaaaaaaaaa", owner_role=access.ANONYMOUS)
    with pytest.raises(access.AccessDenied) as refused:
        supervisor.submit(RunConfig(dataset=str(dataset)), "browser-v2aaaaaaaaaaaa", owner_role=access.ANONYMOUS)
    assert "queue is full" in refused.value.message
    supervisor.submit(RunConfig(dataset=str(dataset)), "hf-alice", owner_role=access.OPERATOR)  # the operator may
