"""Faults: NaN loss, a killed worker (then resume), a missing model, bad data, memory and disk errors."""

from __future__ import annotations

import errno
import json
import os
import signal

import pytest

from studio.errors import StudioError
from studio.train import export, store, supervisor, worker
from studio.train.divergence import Divergence
from tests.train.conftest import WAIT
from tests.train.conftest import wait_for as wait_for_every


def wait_for(predicate, timeout: float = WAIT):
    return wait_for_every(predicate, timeout, poll=0.05)  # fault injection needs the moment, not 0.1 s later


def test_an_absurd_learning_rate_ends_failed_however_the_cpu_rounds_it(tiny_config):
    # Depending on the CPU's arithmetic the run goes NaN, freezes with a zero gradient, or explodes: each
    # must end failed with a plain message and a learning-rate hint, never "completed" with a dead adapter.
    record = supervisor.launch(tiny_config(learning_rate=1e6, max_steps=30, warmup=0, save_steps=1), owner="alice")
    record = supervisor.wait(record.run_id, timeout=WAIT)
    assert record.state == "failed", record.status
    error = record.status["error"]
    assert error["message"].startswith("Training ") and "\n" not in error["message"]
    assert any(word in error["message"] for word in ("NaN", "zero", "far above")), error["message"]
    assert "learning rate (it was 1e+06)" in error["hint"]
    assert record.adapter_dir is None  # diverged weights are never saved as the result
    events = [json.loads(line) for line in (record.dir / "events.jsonl").read_text().splitlines()]
    assert events[-1]["status"] == "failed"
    kinds = {e["diverged"] for e in events if e.get("diverged")}
    assert len(kinds) == 1 and kinds <= {"nonfinite", "frozen", "exploding"}
    assert record.status["step"] < 30
    # Every checkpoint left is from before the divergence (each step was saved): none after its first step.
    diverged = record.status["diverged"]
    assert diverged["kind"] in kinds and diverged["since_step"] <= diverged["step"] == record.status["step"]
    kept = [int(path.name.split("-")[1]) for path in store.checkpoints(record.dir)]
    assert all(step < diverged["since_step"] - 1 for step in kept), (kept, diverged)
    if kept:  # what is left is a usable, earlier checkpoint
        assert record.status["last_checkpoint"] == f"checkpoints/checkpoint-{kept[-1]}"
    else:  # nothing usable: Compare and export say why, not "no adapter yet"
        with pytest.raises(StudioError, match="diverged from step"):
            export.adapter_source(record.dir)


def test_sigkill_leaves_an_interrupted_run_whose_checkpoint_resumes_the_step_count(tiny_config, tiny_model_dir):
    record = supervisor.launch(tiny_config(max_steps=60, save_steps=5), owner="alice")
    wait_for(lambda: store.last_checkpoint(record.dir))
    pid = store.get_run(record.run_id).status["pid"]
    os.killpg(os.getpgid(pid), signal.SIGKILL)
    wait_for(lambda: not supervisor.pid_alive(pid), timeout=30)
    supervisor.reconcile()
    killed = store.get_run(record.run_id)
    assert killed.state == "interrupted"
    checkpoint = store.last_checkpoint(record.dir)
    assert checkpoint.name in killed.status["error"]["hint"]
    assert killed.adapter_dir is None

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), checkpoint)  # usable as an adapter

    with pytest.raises(StudioError):
        supervisor.resume(record.run_id, requester="mallory")
    resumed_from = int(checkpoint.name.split("-")[1])
    supervisor.resume(record.run_id, requester="alice")
    record = supervisor.wait(record.run_id, timeout=WAIT)
    assert record.state == "completed", record.status
    assert record.status["step"] == 60 and record.status["resumed_from"] == checkpoint.name
    events = [json.loads(line) for line in (record.dir / "events.jsonl").read_text().splitlines()]
    resumed_at = [i for i, e in enumerate(events) if e.get("status") == "resumed"]
    assert resumed_at and events[resumed_at[-1]]["step"] == resumed_from
    after = [e["step"] for e in events[resumed_at[-1] :] if e["type"] == "log"]
    assert after[0] == resumed_from + 1 and after[-1] == 60  # the step count continues
    assert record.adapter_dir is not None


def test_a_missing_model_fails_with_a_one_line_cause_and_the_trace_only_in_the_log(tiny_config, tmp_path):
    record = supervisor.launch(tiny_config(model=str(tmp_path / "no-such-model")), owner="alice")
    record = supervisor.wait(record.run_id, timeout=WAIT)
    assert record.state == "failed"
    error = record.status["error"]
    assert "no-such-model" in error["message"] and "\n" not in error["message"] and error["hint"]
    assert "Traceback" not in json.dumps(record.status)
    assert "Traceback" in (record.dir / "log.txt").read_text()


def test_bad_dataset_rows_are_named(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"text": "plain"}\n')
    with pytest.raises(StudioError) as caught:
        worker.read_messages(tmp_path / "train.jsonl")
    assert "Line 2" in caught.value.message
    (tmp_path / "broken.jsonl").write_text("{oops\n")
    with pytest.raises(StudioError) as caught:
        worker.read_messages(tmp_path / "broken.jsonl")
    assert "Line 1" in caught.value.message and "JSON" in caught.value.message
    assert worker.read_messages(tmp_path / "missing.jsonl", required=False) == []


@pytest.mark.parametrize(
    "error, words, hint_words",
    [
        (MemoryError(), "out of memory (RAM)", "batch size"),
        (
            RuntimeError(
                "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to "
                "allocate 8 GB"
            ),
            "out of memory (RAM)",
            "max length",
        ),
        (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "GPU ran out of memory", "batch size"),
        (OSError(errno.ENOSPC, "No space left on device"), "disk is full", "Free some disk space"),
        (
            worker.TrainingDiverged(
                Divergence("nonfinite", 7, 7, "Training diverged: the loss became NaN/infinite at step 7.")
            ),
            "step 7",
            "learning rate",
        ),
        (StudioError("The model is gone.", "Pick another."), "The model is gone.", "Pick another."),
        (ValueError("first line\nsecond line"), "ValueError: first line", "log.txt"),
    ],
)
def test_failures_become_one_line_causes_with_hints(error, words, hint_words):
    message, hint = worker.explain_failure(error)
    assert words in message and hint_words in hint and "\n" not in message


def test_template_errors_are_explained():
    from jinja2 import TemplateError

    message, hint = worker.explain_failure(TemplateError("unknown role 'narrator'"))
    assert "chat template" in message and "narrator" in message and hint
