"""Fixtures for remote runs: the local Hub/Jobs stand-in (hub_standin.py) and the environment pointing at it.

The studio talks to the stand-in through the real huggingface_hub client (HF_ENDPOINT), with a token the
stand-in checks on every request, so a job that pushes its results proves it received the token as a secret.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from hub_standin import StandIn  # noqa: E402 - after the sys.path entry above

from studio.jobs import executor  # noqa: E402, F401 - registers the hf-jobs executor, as the app and the CLI do

TOKEN = "hf_standin_secret_token_0123456789"


@pytest.fixture(scope="module")
def standin():
    server = StandIn(token=TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def remote_env(standin, monkeypatch):
    """HF_ENDPOINT at the stand-in, the operator's token, online; fast stop polling inside the job."""
    monkeypatch.setenv("HF_ENDPOINT", standin.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("STUDIO_JOBS_CONTROL_POLL_SECONDS", "1")
    monkeypatch.delenv("STUDIO_AUTH", raising=False)
    monkeypatch.delenv("STUDIO_JOBS_NAMESPACE", raising=False)
    yield standin
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def write_sums_dataset(folder: Path, train_rows: int = 64, validation_rows: int = 8) -> Path:
    """A saved-dataset folder of tiny chat rows (train.jsonl, validation.jsonl, manifest.json)."""
    import json
    import random

    rng = random.Random(0)

    def row():
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        return {
            "messages": [
                {"role": "user", "content": f"What is {a} + {b}?"},
                {"role": "assistant", "content": f"Arr, matey! {a} + {b} = {a + b}."},
            ]
        }

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(row()) + "\n" for _ in range(train_rows)))
    (folder / "validation.jsonl").write_text("".join(json.dumps(row()) + "\n" for _ in range(validation_rows)))
    manifest = {
        "id": folder.name,
        "name": "tiny sums",
        "format": "messages",
        "created_at": "2026-01-01T00:00:00+00:00",
        "counts": {"train": train_rows, "validation": validation_rows, "rejected": 0},
        "stats": {},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope="session")
def sums_dataset(tmp_path_factory) -> Path:
    return write_sums_dataset(tmp_path_factory.mktemp("sums"))


@pytest.fixture
def tiny_remote_config(tiny_model_dir, sums_dataset):
    from studio.train.config import RunConfig

    def make(**changes):
        values = dict(
            model=str(tiny_model_dir),
            dataset=str(sums_dataset),
            max_steps=20,
            learning_rate=2e-3,
            batch_size=8,
            max_length=64,
            torch_threads=1,
        )
        values.update(changes)
        return RunConfig(**values)

    return make
