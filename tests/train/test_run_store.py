"""The run store: folder layout, unguessable ids, atomic status, incremental event reading."""

from __future__ import annotations

import json

import pytest

from studio import paths
from studio.errors import StudioError
from studio.train import store
from studio.train.config import RunConfig


def make_run(owner: str = "alice", **changes) -> store.RunRecord:
    return store.create_run(RunConfig(dataset="/data/ds", **changes), owner)


def test_create_run_writes_the_contract_files():
    record = make_run(name="first")
    assert record.dir.parent == paths.runs_dir()
    assert record.run_id.startswith("run-") and len(record.run_id) >= 12
    for name in ("config.json", "status.json", "events.jsonl", "log.txt"):
        assert (record.dir / name).is_file()
    config = json.loads((record.dir / "config.json").read_text())
    assert config["run_id"] == record.run_id and config["name"] == "first" and config["dataset"] == "/data/ds"
    status = json.loads((record.dir / "status.json").read_text())
    assert status["status"] == "queued" and status["owner"] == "alice" and status["error"] is None
    assert store.get_run(record.run_id).config == config


def test_run_ids_are_unguessable_and_distinct():
    ids = {make_run().run_id for _ in range(5)}
    assert len(ids) == 5


def test_invalid_config_creates_nothing():
    before = set(paths.runs_dir().iterdir())
    with pytest.raises(StudioError):
        store.create_run(RunConfig(dataset=""), "x")
    assert set(paths.runs_dir().iterdir()) == before


@pytest.mark.parametrize("bad", ["../etc", "..", "a/b", "/tmp/x", "", "run-nope-does-not-exist"])
def test_get_run_rejects_paths_and_unknown_ids(bad):
    with pytest.raises(StudioError):
        store.get_run(bad)


def test_update_status_merges_and_never_leaves_a_partial_file():
    record = make_run()
    store.update_status(record.dir, status="running", step=3)
    status = store.update_status(record.dir, step=4)
    assert status["status"] == "running" and status["step"] == 4 and status["owner"] == "alice"
    assert json.loads((record.dir / "status.json").read_text()) == status
    assert not [p for p in record.dir.iterdir() if p.name.endswith(".tmp")]


def test_read_events_is_incremental_and_tolerates_a_half_written_line():
    record = make_run()
    store.append_event(record.dir, {"type": "log", "step": 1, "loss": 2.0})
    events, offset = store.read_events(record.dir, 0)
    assert [e["step"] for e in events] == [1] and "time" in events[0]
    with open(record.dir / "events.jsonl", "a") as handle:
        handle.write('{"type": "log", "step": 2, "lo')  # the worker is mid-write
    events, offset2 = store.read_events(record.dir, offset)
    assert events == [] and offset2 == offset
    with open(record.dir / "events.jsonl", "a") as handle:
        handle.write('ss": 1.5}\nnot json\n')
    events, offset3 = store.read_events(record.dir, offset2)
    assert [e["step"] for e in events] == [2] and offset3 > offset2
    assert store.read_events(record.dir, offset3) == ([], offset3)


def test_non_finite_numbers_never_reach_the_events_file():
    record = make_run()
    with pytest.raises(ValueError):
        store.append_event(record.dir, {"type": "log", "loss": float("nan")})
    assert (record.dir / "events.jsonl").read_text() == ""


def test_list_runs_newest_first_and_skips_junk_folders():
    first = make_run(name="older")
    store.update_status(first.dir, created_at="2000-01-01T00:00:00+00:00")
    second = make_run(name="newer")
    (paths.runs_dir() / "not-a-run").mkdir(exist_ok=True)
    (paths.runs_dir() / ".deleting-x").mkdir(exist_ok=True)
    ids = [r.run_id for r in store.list_runs()]
    assert ids.index(second.run_id) < ids.index(first.run_id)
    assert "not-a-run" not in ids and ".deleting-x" not in ids


def test_runs_created_within_one_second_list_in_creation_order():
    import os

    first, second = make_run(name="first this second"), make_run(name="second this second")
    same_second = "2001-01-01T00:00:00+00:00"
    for record in (first, second):
        store.update_status(record.dir, created_at=same_second)
    written = (first.dir / "config.json").stat().st_mtime_ns
    os.utime(second.dir / "config.json", ns=(written + 1_000, written + 1_000))
    ids = [r.run_id for r in store.list_runs() if r.status.get("created_at") == same_second]
    assert ids == [second.run_id, first.run_id]


def test_delete_run_removes_the_folder():
    record = make_run()
    store.delete_run(record.run_id)
    assert not record.dir.exists()
    with pytest.raises(StudioError):
        store.get_run(record.run_id)


def test_only_complete_checkpoints_count():
    record = make_run()
    for step, complete in ((5, True), (10, True), (15, False)):
        folder = record.dir / "checkpoints" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert store.last_checkpoint(record.dir).name == "checkpoint-10"
    assert [p.name for p in store.checkpoints(record.dir)] == ["checkpoint-5", "checkpoint-10"]


def test_events_for_charts_drops_the_stretch_abandoned_by_a_resume():
    events = [{"type": "log", "step": s} for s in (1, 2, 3, 4, 5, 6, 7)]
    events += [
        {"type": "checkpoint", "step": 5},
        {"type": "status", "status": "interrupted", "step": 7},
        {"type": "status", "status": "resumed", "step": 5},
        {"type": "log", "step": 6},
        {"type": "log", "step": 7},
    ]
    kept = store.events_for_charts(events)
    assert [e["step"] for e in kept if e["type"] == "log"] == [1, 2, 3, 4, 5, 6, 7]
    assert [e.get("status") for e in kept if e["type"] == "status"] == ["interrupted", "resumed"]


def test_a_run_whose_parent_died_is_alive_while_a_rank_still_trains(tmp_path):
    import subprocess
    import sys

    folder = tmp_path / "run-orphan-ranks"
    folder.mkdir()
    rank = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(folder)])
    try:
        store.record_rank(folder, 1, pid=rank.pid)
        assert store.run_alive(None, folder)  # the parent is gone; rank 1 trains on
        store.record_rank(folder, 1, ended="failed")
        assert not store.run_alive(None, folder)  # a rank that recorded its end does not count
    finally:
        rank.kill()
        rank.wait()
