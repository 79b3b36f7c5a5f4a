"""HF_TOKEN never reaches a file: a real tiny training run whose worker *holds* a (fake) token — the worst
case, an operator's run on a Hub model — then a zip, a merge, an evaluation and a report; every byte under
STUDIO_HOME is searched for the token."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from studio import paths
from studio.train import export, store, supervisor
from studio.train.config import RunConfig
from tests.train.conftest import write_dataset

pytestmark = pytest.mark.slow

TOKEN = "hf_fakeTokenThatMustNeverBeWritten0123456789"


def test_training_and_export_never_write_the_token(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(supervisor, "needs_hub_token", lambda record: True)  # the worker gets the token
    dataset = write_dataset(paths.datasets_dir() / "token-hygiene")
    config = RunConfig(
        model=str(tiny_model_dir),
        dataset=str(dataset),
        max_steps=6,
        learning_rate=2e-3,
        batch_size=8,
        max_length=64,
        torch_threads=1,
        save_steps=3,
        name="token hygiene",
    )
    record = supervisor.launch(config, owner="alice")
    environ = b""
    deadline = time.monotonic() + 60
    while not environ and time.monotonic() < deadline:
        pid = store.read_status(record.dir).get("pid")
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes() if pid else b""
        except OSError:
            environ = b""
        time.sleep(0.1)
    assert TOKEN.encode() in environ  # the worst case really happened: the worker held it
    done = supervisor.wait(record.run_id, timeout=600)
    assert done.state == "completed", (done.status, (done.dir / "log.txt").read_text()[-2000:])
    export.zip_adapter(done.dir)
    export.merge(done.dir)
    from studio.compare import report, runs

    report.write(runs.load_run(done.run_id))
    found = [str(path) for path in paths.home().rglob("*") if path.is_file() and TOKEN.encode() in path.read_bytes()]
    assert found == []
