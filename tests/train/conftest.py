"""Fixtures for the training engine tests: a tiny chat dataset folder and a fast RunConfig."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest


def _row(rng: random.Random) -> dict:
    a, b = rng.randint(0, 9), rng.randint(0, 9)
    return {
        "messages": [
            {"role": "user", "content": f"What is {a} + {b}?"},
            {"role": "assistant", "content": f"Arr, matey! {a} + {b} = {a + b}."},
        ]
    }


def write_dataset(folder: Path, train_rows: int = 64, validation_rows: int = 8, seed: int = 0) -> Path:
    """A saved-dataset folder (train.jsonl, validation.jsonl, manifest.json) per the contract."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    train = [_row(rng) for _ in range(train_rows)]
    validation = [_row(rng) for _ in range(validation_rows)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (folder / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in validation))
    manifest = {
        "id": folder.name,
        "name": "tiny sums",
        "source_name": "sums.jsonl",
        "source_sha256": "0" * 64,
        "format": "messages",
        "created_at": "2026-01-01T00:00:00+00:00",
        "counts": {"train": train_rows, "validation": validation_rows, "rejected": 0},
        "findings_summary": {},
        "stats": {},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope="session")
def tiny_dataset_dir(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("tiny-dataset"))


WAIT = 300  # seconds a test run may take: generous, the machine is shared


def wait_for(predicate, timeout: float = WAIT, poll: float = 0.1):
    """The predicate's first truthy value, polled until `timeout` seconds (then the test fails)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError("timed out")


def events_of(record) -> list[dict]:
    return [json.loads(line) for line in (record.dir / "events.jsonl").read_text().splitlines()]


@pytest.fixture(scope="session")
def tiny_config(tiny_model_dir, tiny_dataset_dir):
    """A RunConfig factory for few-step runs on the tiny model with one torch thread."""
    from studio.train.config import RunConfig

    def make(**changes):
        values = dict(
            model=str(tiny_model_dir),
            dataset=str(tiny_dataset_dir),
            max_steps=20,
            learning_rate=2e-3,
            batch_size=8,
            max_length=64,
            torch_threads=1,
        )
        values.update(changes)
        return RunConfig(**values)

    return make
