"""Finished runs copied to a mounted bucket (STUDIO_ARCHIVE_DIR) and restored after a restart."""

from __future__ import annotations

import json
import shutil

import pytest

from studio.train import archive, store, supervisor
from studio.train.config import RunConfig


@pytest.fixture
def bucket(tmp_path, monkeypatch):
    monkeypatch.setenv(archive.ARCHIVE_ENV, str(tmp_path / "bucket"))
    return tmp_path / "bucket" / "runs"


def finished_run(tmp_path, status="completed"):
    record = store.create_run(RunConfig(dataset=str(tmp_path)), "alice")
    (record.dir / "adapter").mkdir()
    (record.dir / "adapter" / "adapter_model.safetensors").write_bytes(b"weights" * 100)
    store.append_event(record.dir, {"type": "log", "step": 1, "loss": 2.0})
    store.update_status(record.dir, status=status, step=1, total_steps=1)
    return record


def test_a_finished_run_is_archived_whole_with_its_marker_last_and_restored(tmp_path, bucket):
    record = finished_run(tmp_path)
    target = archive.archive_run(record.dir)
    assert target == bucket / record.run_id and archive.is_complete(target)
    listing = json.loads((target / archive.MARKER).read_text())["files"]
    assert {"config.json", "status.json", "events.jsonl", "adapter/adapter_model.safetensors"} <= set(listing)
    assert not any(name.endswith(".lock") for name in listing)
    before = store.get_run(record.run_id)
    shutil.rmtree(record.dir)  # the Space restarted: its local disk is empty
    # Restoring is not a change of state (the session's other tests may leave runs that reconcile does change).
    changed = {changed.run_id for changed in supervisor.reconcile()}
    assert record.run_id not in changed and store.get_run(record.run_id).status == before.status
    assert (record.dir / "adapter" / "adapter_model.safetensors").read_bytes() == b"weights" * 100
    assert not (record.dir / archive.MARKER).exists()


def test_live_runs_and_unconfigured_archives_copy_nothing(tmp_path, bucket, monkeypatch):
    record = finished_run(tmp_path, status="running")
    assert archive.archive_run(record.dir) is None and not bucket.exists()
    monkeypatch.delenv(archive.ARCHIVE_ENV)
    assert archive.archive_run(finished_run(tmp_path).dir) is None and archive.restore_runs() == []


def test_an_incomplete_copy_is_never_restored(tmp_path, bucket):
    record = finished_run(tmp_path)
    target = archive.archive_run(record.dir)
    (target / "adapter" / "adapter_model.safetensors").write_bytes(b"cut")  # the upload stopped half-way
    shutil.rmtree(record.dir)
    assert archive.restore_runs() == [] and not record.dir.exists()


def test_an_interrupted_run_is_archived_when_reconciled(tmp_path, bucket):
    record = finished_run(tmp_path, status="running")
    store.update_status(record.dir, pid=999_999_999)
    supervisor.reconcile()
    assert store.get_run(record.run_id).state == "interrupted"
    assert archive.is_complete(bucket / record.run_id)
