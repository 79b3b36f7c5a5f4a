"""The real worker subprocess on the tiny model: a full run, a graceful stop, a stop while loading."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from studio.train import store, supervisor

WAIT = 300  # seconds: generous, the machine is shared


def wait_for(predicate, timeout: float = WAIT, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError("timed out")


def events_of(record) -> list[dict]:
    return [json.loads(line) for line in (record.dir / "events.jsonl").read_text().splitlines()]


def test_run_completes_with_falling_loss_events_checkpoints_and_a_loadable_adapter(tiny_config, tiny_model_dir):
    record = supervisor.launch(tiny_config(max_steps=24, name="full run"), owner="alice")
    record = supervisor.wait(record.run_id, timeout=WAIT)
    status = record.status
    assert record.state == "completed", (status, (record.dir / "log.txt").read_text()[-3000:])
    assert status["step"] == status["total_steps"] == 24 and status["error"] is None
    assert status["best_eval_loss"] is not None and (record.dir / status["best_checkpoint"]).is_dir()
    assert "assistant-only loss on" in " ".join(status["notes"])

    events = events_of(record)
    logs = [e for e in events if e["type"] == "log"]
    evals = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in logs] == list(range(1, 25))  # auto logging: every step on a short run
    for event in logs:
        assert event["total"] == 24 and 0 <= event["step"] <= event["total"]
        assert event["eta"] is None or event["eta"] >= 0
        for key in ("loss", "learning_rate", "grad_norm", "mean_token_accuracy", "tokens_per_s", "elapsed", "memory_gb", "epoch"):
            assert event[key] is not None, key
    first, last = sum(e["loss"] for e in logs[:3]) / 3, sum(e["loss"] for e in logs[-3:]) / 3
    assert last < first - 0.3, (first, last)
    assert evals and evals[-1]["eval_loss"] < evals[0]["eval_loss"]
    assert any(e["type"] == "checkpoint" for e in events) and events[-1]["status"] == "completed"
    assert store.last_checkpoint(record.dir) is not None

    readme = (record.dir / "README.md").read_text()
    assert str(tiny_model_dir) in readme and "tiny sums" in readme and "Final train loss" in readme
    assert "Traceback" not in (record.dir / "log.txt").read_text()

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert (record.dir / "adapter" / "adapter_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(record.dir / "adapter")
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), record.dir / "adapter")
    ids = tokenizer("What is 2 + 3?", return_tensors="pt").input_ids
    with torch.no_grad():
        tuned = model(ids).logits
        with model.disable_adapter():
            base = model(ids).logits
    assert (tuned - base).abs().max() > 1e-3  # the adapter learned something


def test_graceful_stop_saves_a_checkpoint_and_the_adapter(tiny_config):
    record = supervisor.launch(tiny_config(max_steps=400), owner="alice")
    wait_for(lambda: store.get_run(record.run_id).status.get("step", 0) >= 3)
    supervisor.stop(record.run_id, requester="alice")
    record = supervisor.wait(record.run_id, timeout=WAIT)
    assert record.state == "stopped", record.status
    step = record.status["step"]
    assert 3 <= step < 400
    assert store.last_checkpoint(record.dir).name == f"checkpoint-{step}"
    assert record.adapter_dir is not None and (record.dir / "README.md").is_file()
    assert events_of(record)[-1]["status"] == "stopped"
    wait_for(lambda: not supervisor.pid_alive(record.status["pid"]), timeout=60)  # and the process exits


def test_a_signal_while_loading_stops_at_once(tiny_config):
    record = store.create_run(tiny_config(), "alice")
    process = subprocess.Popen([sys.executable, "-m", "studio.train.worker", str(record.dir)], start_new_session=True)
    wait_for(lambda: store.read_status(record.dir).get("status") == "starting", timeout=60, poll=0.02)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    status = store.read_status(record.dir)
    assert status["status"] == "stopped" and "before training" in status["error"]["message"]
    assert store.last_checkpoint(record.dir) is None


def test_worker_usage_errors():
    result = subprocess.run([sys.executable, "-m", "studio.train.worker"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "usage" in result.stderr
    result = subprocess.run([sys.executable, "-m", "studio.train.worker", os.devnull], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "not a run folder" in result.stderr
