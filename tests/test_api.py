"""The named API (studio/ui/api.py, docs/api.md) through gradio_client against the running app, as a script
would use it: lint a file, save it as a dataset, estimate and start a run, follow it to the end, ask both
models, evaluate; stop another run; bad input comes back as a message, not a traceback."""

from __future__ import annotations

import json
import time

import pytest

from tests.compare.conftest import style_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def style_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("api") / "captain style.jsonl"
    again = [
        {
            "messages": [
                {**row["messages"][0], "content": row["messages"][0]["content"] + " Tell me again."},
                row["messages"][1],
            ]
        }
        for row in style_rows()
    ]
    rows = style_rows() + again  # 24 different rows: a validation split and a training split
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def settings_for(model_dir, dataset: str, **changes) -> dict:
    return {
        "model": str(model_dir),
        "dataset": dataset,
        "max_steps": 4,
        "batch_size": 2,
        "max_length": 64,
        "learning_rate": 0.01,
        "torch_threads": 1,
        "name": "from a script",
        **changes,
    }


def wait_for(client, run_id: str, states: set[str], timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.predict(run_id, api_name="/run_status")
        if status["status"] in states:
            return status
        time.sleep(1)
    raise AssertionError(f"run {run_id} not in {states} after {timeout} s: {status}")


def test_a_script_lints_trains_follows_asks_and_evaluates(client, style_file, tiny_model_dir):
    from gradio_client import handle_file

    checked = client.predict(handle_file(str(style_file)), str(tiny_model_dir), 0, api_name="/lint")
    assert checked["format"] == "messages" and checked["rows"] == 24 and checked["counts"]["E"] == 0
    assert checked["verdict"] in {"ready", "ready with warnings"}

    added = client.predict(handle_file(str(style_file)), api_name="/add_dataset")
    assert added["train_rows"] + added["validation_rows"] == 24
    assert added["dataset"] in [item["dataset"] for item in client.predict(api_name="/datasets")]

    settings = settings_for(tiny_model_dir, added["dataset"])
    estimate = client.predict(settings, api_name="/estimate")
    assert estimate["ready"] and estimate["steps"] == 4 and estimate["seconds"] > 0

    started = client.predict(settings, api_name="/start_run")
    assert started["started"] and started["status"] in {"queued", "starting", "running"}
    run_id = started["run_id"]
    final = wait_for(client, run_id, {"completed", "failed", "stopped"})
    assert final["status"] == "completed" and final["steps"] == 4 and final["adapter"]
    assert final["name"] == "from a script"
    assert run_id in [run["run_id"] for run in client.predict(api_name="/runs")]

    answers = client.predict(run_id, "What is Python?", 8, 0, api_name="/ask")
    assert answers["base"] and answers["tuned"] and answers["settings"]

    evaluated = client.predict(run_id, 2, 8, api_name="/evaluate")
    assert len(evaluated["rows"]) == 2
    assert evaluated["verdict"]["conclusion"] == "inconclusive"  # two prompts cannot carry a conclusion


def test_a_script_stops_a_run_and_gets_messages_for_bad_input(client, style_file, tiny_model_dir):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    added = client.predict(handle_file(str(style_file)), api_name="/add_dataset")
    long_run = settings_for(tiny_model_dir, added["dataset"], max_steps=2000, name="to be stopped")
    run_id = client.predict(long_run, api_name="/start_run")["run_id"]
    wait_for(client, run_id, {"running"})
    stopping = client.predict(run_id, api_name="/stop")
    assert stopping["run_id"] == run_id
    stopped = wait_for(client, run_id, {"stopped", "completed", "failed"})
    assert stopped["status"] == "stopped" and stopped["steps"] < 2000

    with pytest.raises(AppError, match="not a saved dataset"):
        client.predict(settings_for(tiny_model_dir, "no-such-dataset"), api_name="/start_run")
    with pytest.raises(AppError, match="batch_size"):
        client.predict(settings_for(tiny_model_dir, added["dataset"], batch_size=0), api_name="/estimate")
    with pytest.raises(AppError, match="not a run id"):
        client.predict("../../etc", api_name="/run_status")
    with pytest.raises(AppError, match="max_length: between 16"):
        client.predict(settings_for(tiny_model_dir, added["dataset"], max_length=2), api_name="/start_run")
