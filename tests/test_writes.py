"""Writes that cannot tear: real threads (and processes) on real files. Atomic replaces never share a temp file,
read-modify-writes under the lock lose nothing, damaged files are kept aside and reported, never replaced."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from pathlib import Path

import pytest

from studio import paths
from studio.compare import votes
from studio.compare.runs import RunInfo
from studio.errors import StudioError
from studio.train import store
from studio.train.config import RunConfig


def _run(folder: Path) -> RunInfo:
    return RunInfo(run_id=folder.name, dir=folder, adapter_dir=folder / "adapter", base_ref="x")


def _evaluation(prompts: int) -> dict:
    return {"created_at": 1.0, "rows": [{"prompt": f"p{i}", "base": "b", "tuned": "t"} for i in range(prompts)]}


def test_four_writers_and_four_voters_at_once_lose_nothing(tmp_path):
    """4 threads replace one JSON file as fast as they can while 2 readers check every read, and 4 threads cast
    200 votes into one voter's ballot (one voter in four tabs) while another voter's ballot is opened: no error,
    no torn read, every vote counted."""
    shared = tmp_path / "shared.json"
    paths.atomic_write_text(shared, json.dumps({"writer": -1, "n": 0, "pad": "x" * 4000}))
    run, evaluation = _run(tmp_path / "run"), _evaluation(200)
    votes.ballot_for(run, evaluation, "voter-tabs", seed=1)
    errors: list[BaseException] = []
    counts = {"writes": 0, "reads": 0, "invalid": 0}
    stop = threading.Event()
    lock = threading.Lock()

    def writer(number: int) -> None:
        try:
            for n in range(400):
                paths.atomic_write_text(shared, json.dumps({"writer": number, "n": n, "pad": "x" * 4000}))
                with lock:
                    counts["writes"] += 1
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    def reader() -> None:
        while not stop.is_set():
            try:
                json.loads(shared.read_text(encoding="utf-8"))
                with lock:
                    counts["reads"] += 1
            except ValueError:
                with lock:
                    counts["invalid"] += 1
            except BaseException as error:  # noqa: BLE001 - collected, and asserted empty below
                errors.append(error)

    def voter(number: int) -> None:
        try:
            for index in range(number, 200, 4):
                votes.cast(run, evaluation, "voter-tabs", index, ("A", "B", "tie")[index % 3])
            if number == 0:
                votes.ballot_for(run, evaluation, "voter-other")
        except BaseException as error:  # noqa: BLE001 - collected, and asserted empty below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=voter, args=(i,)) for i in range(4)]
    readers = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads + readers:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()

    print(
        f"\n{counts['writes']} writes, {counts['reads']} reads, {counts['invalid']} invalid reads, {len(errors)} errors"
    )
    assert errors == [] and counts["invalid"] == 0 and counts["writes"] == 1600 and counts["reads"] > 0
    box = json.loads(votes.votes_path(run).read_text())
    assert sorted(box["ballots"]) == ["voter-other", "voter-tabs"]
    ballot = box["ballots"]["voter-tabs"]
    assert len(ballot["votes"]) == 200
    assert all(ballot["votes"][str(i)] == ("A", "B", "tie")[i % 3] for i in range(200))
    assert votes.tally(ballot)["total"] == 200
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]  # no temp file left behind


def _add_one(path: str, times: int) -> None:
    for _ in range(times):
        paths.locked_update(Path(path), lambda value: {"n": value["n"] + 1}, default=lambda: {"n": 0})


def test_locked_update_counts_exactly_across_threads_and_processes(tmp_path):
    counter = tmp_path / "counter.json"
    threads = [threading.Thread(target=_add_one, args=(str(counter), 50)) for _ in range(4)]
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_add_one, args=(str(counter), 50)) for _ in range(2)]
    for worker in threads + processes:
        worker.start()
    for worker in threads + processes:
        worker.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]
    assert json.loads(counter.read_text()) == {"n": 300}


def test_status_updates_from_many_threads_all_land(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path))
    dataset = tmp_path / "data"
    dataset.mkdir()
    (dataset / "train.jsonl").write_text("{}\n")
    record = store.create_run(RunConfig(dataset=str(dataset)), "alice")

    def mark(number: int) -> None:
        for step in range(25):
            store.update_status(record.dir, **{f"thread_{number}": step})

    threads = [threading.Thread(target=mark, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    status = store.read_status(record.dir)
    assert [status[f"thread_{i}"] for i in range(4)] == [24] * 4 and status["owner"] == "alice"


def test_a_damaged_ballot_is_kept_aside_and_reported_not_replaced(tmp_path):
    run, evaluation = _run(tmp_path), _evaluation(3)
    path = votes.votes_path(run)
    path.parent.mkdir(parents=True)
    path.write_text('{"votes": {"0": "A"', encoding="utf-8")  # cut off
    with pytest.raises(StudioError) as caught:
        votes.cast(run, evaluation, "voter-1", 1, "B")
    assert isinstance(caught.value, paths.CorruptFile) and "votes.json" in caught.value.message
    kept = list(path.parent.glob("votes.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text() == '{"votes": {"0": "A"' and not path.exists()
    assert kept[0].name in caught.value.message
    # The user was told; the next ballot starts fresh next to the kept copy.
    votes.ballot_for(run, evaluation, "voter-1")
    assert votes.cast(run, evaluation, "voter-1", 1, "B")["votes"] == {"1": "B"}


def test_a_damaged_status_is_kept_aside_and_noted(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path))
    dataset = tmp_path / "data"
    dataset.mkdir()
    (dataset / "train.jsonl").write_text("{}\n")
    record = store.create_run(RunConfig(dataset=str(dataset)), "alice")
    (record.dir / "status.json").write_text("{not json")
    status = store.update_status(record.dir, status="running", step=3)
    assert status["status"] == "running" and status["step"] == 3
    assert any("status.json" in note and "damaged" in note for note in status["notes"])
    assert [p.read_text() for p in record.dir.glob("status.json.corrupt-*")] == ["{not json"]


def test_write_new_file_never_overwrites_even_in_the_same_second(tmp_path):
    made: list[Path] = []

    def save(number: int) -> None:
        made.append(paths.write_new_file(tmp_path, "decision-record-20261201-120000", ".md", f"record {number}"))

    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({p.name for p in made}) == 8
    assert sorted(p.read_text() for p in made) == sorted(f"record {i}" for i in range(8))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in made)  # no temp files left


def test_decision_records_saved_in_the_same_second_are_both_kept(monkeypatch, tmp_path):
    import datetime as dt

    from studio.decide import report

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path))
    now = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)
    first, second = report.save_record("first", now), report.save_record("second", now)
    assert first != second and first.read_text() == "first" and second.read_text() == "second"
    assert sorted(p.name for p in first.parent.glob("decision-record-*.md")) == [first.name, second.name]  # name order


def test_staged_swaps_whole_files_and_folders_and_cleans_up_on_failure(tmp_path):
    target = tmp_path / "merged"
    with paths.staged(target, directory=True) as folder:
        (folder / "a.txt").write_text("one")
    with paths.staged(target, directory=True) as folder:
        (folder / "b.txt").write_text("two")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]  # the new folder whole, nothing of the old
    with pytest.raises(RuntimeError):
        with paths.staged(target, directory=True) as folder:
            (folder / "c.txt").write_text("half")
            raise RuntimeError("disk full")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    file_target = tmp_path / "x.zip"
    results = []

    def write(number: int) -> None:
        with paths.staged(file_target) as tmp:
            tmp.write_text(f"zip {number}" * 1000)
            time.sleep(0.01)
        results.append(number)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6 and file_target.read_text() in {f"zip {i}" * 1000 for i in range(6)}
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["merged", "x.zip"]


def test_atomic_write_uses_a_fresh_temp_file_per_call(tmp_path, monkeypatch):
    seen = []
    real = paths.tempfile.mkstemp

    def spy(*args, **kwargs):
        handle, name = real(*args, **kwargs)
        seen.append(name)
        return handle, name

    monkeypatch.setattr(paths.tempfile, "mkstemp", spy)
    for _ in range(3):
        paths.atomic_write_text(tmp_path / "f.json", "{}")
    assert len(set(seen)) == 3 and all(Path(name).parent == tmp_path for name in seen)
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
