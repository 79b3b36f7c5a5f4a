"""Runs of several processes, for real: the studio's own launch path (studio.train.launch → accelerate → torchrun)
forced to 2 CPU processes talking over gloo, on the tiny model. What a multi-GPU Space does, minus the GPUs."""

from __future__ import annotations

import json
import os
import signal

import psutil
import pytest

from studio.errors import StudioError
from studio.train import distributed, store, supervisor
from tests.train.conftest import WAIT, events_of, wait_for


def log_of(record) -> str:
    return (record.dir / "log.txt").read_text()[-4000:]


def no_rank_left(record) -> bool:
    ranks = store.read_ranks(record.dir)
    return not any(store.worker_alive(r.get("pid"), record.dir) for r in ranks.values())


def load_adapter(record, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    return PeftModel.from_pretrained(base, str(record.dir / "adapter"))


def test_two_cpu_processes_train_as_ddp_with_one_set_of_telemetry(tiny_config, tiny_model_dir):
    record = supervisor.launch(tiny_config(max_steps=6, processes=2, name="two ranks"), owner="alice")
    config_file = json.loads((record.dir / distributed.ACCELERATE_CONFIG).read_text())
    assert config_file["num_processes"] == 2 and config_file["distributed_type"] == "MULTI_GPU"
    record = supervisor.wait(record.run_id, timeout=WAIT)
    status = record.status
    assert record.state == "completed", (status, log_of(record))
    assert status["processes"] == 2 and status["step"] == status["total_steps"] == 6
    ranks = store.read_ranks(record.dir)
    assert sorted(ranks) == [0, 1] and {r["ended"] for r in ranks.values()} == {"completed"}
    assert ranks[0]["pid"] != ranks[1]["pid"]
    logs = [e["step"] for e in events_of(record) if e["type"] == "log"]
    assert logs == list(range(1, 7))  # rank 0 alone writes telemetry: each step once
    assert status["facts"]["threads"] == 1  # the two ranks share the cores (torch_threads=1 here)
    assert (
        f"2 processes: {' '.join(distributed.accelerate_command(record.dir))}" in (record.dir / "log.txt").read_text()
    )
    assert load_adapter(record, tiny_model_dir) is not None


def test_stop_reaches_every_rank_leaves_a_usable_adapter_and_the_run_resumes(tiny_config, tiny_model_dir):
    record = supervisor.launch(tiny_config(max_steps=400, processes=2, name="stop two"), owner="alice")
    wait_for(lambda: store.read_status(record.dir).get("step", 0) >= 3)
    supervisor.stop(record.run_id, requester="alice")
    record = supervisor.wait(record.run_id, timeout=WAIT)
    assert record.state == "stopped", (record.status, log_of(record))
    stopped_at = record.status["step"]
    assert 3 <= stopped_at < 400
    assert {r["ended"] for r in store.read_ranks(record.dir).values()} == {"stopped"}
    assert store.last_checkpoint(record.dir).name == f"checkpoint-{stopped_at}"
    assert load_adapter(record, tiny_model_dir) is not None
    wait_for(lambda: no_rank_left(record), timeout=30)

    # Resume: both ranks continue from the checkpoint; a fresh rank record and a fresh port for this attempt.
    supervisor.resume(record.run_id, requester="alice")
    wait_for(lambda: store.read_status(record.dir).get("step", 0) > stopped_at)
    supervisor.stop(record.run_id, requester="alice")
    record = supervisor.wait(record.run_id, timeout=WAIT)
    assert record.state == "stopped" and record.status["step"] > stopped_at, (record.status, log_of(record))
    resumed = [e for e in events_of(record) if e["type"] == "status" and e.get("status") == "resumed"]
    assert resumed and resumed[-1]["step"] == stopped_at
    assert {r["ended"] for r in store.read_ranks(record.dir).values()} == {"stopped"}


def test_a_killed_rank_fails_the_run_with_that_rank_named(tiny_config):
    record = supervisor.launch(tiny_config(max_steps=400, processes=2, name="kill rank 1"), owner="alice")
    wait_for(lambda: store.read_status(record.dir).get("step", 0) >= 2)
    os.kill(store.read_ranks(record.dir)[1]["pid"], signal.SIGKILL)
    record = supervisor.wait(record.run_id, timeout=WAIT)
    assert record.state == "failed", (record.status, log_of(record))
    assert record.status["failed_rank"] == 1, (record.status, store.read_ranks(record.dir), log_of(record))
    assert "rank 1" in record.status["error"]["message"] and "killed" in record.status["error"]["message"]
    last = store.last_checkpoint(record.dir)
    assert record.status["error"]["hint"].endswith(store.resume_sentence(last.name if last else None))
    assert record.status["error"]["hint"].lower().count("resume") == 1, record.status["error"]["hint"]
    wait_for(lambda: no_rank_left(record), timeout=60)
    assert not psutil.pid_exists(record.status["pid"]) or not store.worker_alive(record.status["pid"], record.dir)


def _failed(at: float, message: str) -> dict:
    return {"pid": 1, "ended": "failed", "time": at, "error": {"message": message, "hint": "h"}}


def test_the_earliest_failure_is_the_cause_whatever_words_the_others_use():
    """A killed rank's peers fail a moment later, not always with words that say they lost it (CI once saw rank 0
    named for a SIGKILL of rank 1): the order in time decides."""
    unclear = "Training failed: RuntimeError: Expected to have finished reduction in the prior iteration"
    rank, message, _ = distributed.root_cause({0: _failed(101.0, unclear), 1: {"pid": 2}}, {1: 100.6}, 2)
    assert rank == 1 and "rank 1" in message and "killed" in message
    # A rank's own error before another rank vanished (the launcher's SIGKILL 30 s later) stays the cause.
    rank, message, _ = distributed.root_cause({0: _failed(100.0, "The disk is full"), 1: {"pid": 2}}, {1: 130.0}, 2)
    assert (rank, message) == (0, "The disk is full")
    # Lost peers are the cause only when nothing else failed; then the earliest of them.
    lost = "RuntimeError: [gloo/pair.cc:553] Connection closed by peer"
    ranks = {0: _failed(100.0, lost), 1: _failed(99.0, lost), 2: _failed(101.0, "ValueError: bad row")}
    assert distributed.root_cause(ranks, {}, 3)[0] == 2
    assert distributed.root_cause({0: _failed(100.0, lost), 1: _failed(99.0, lost)}, {}, 2)[0] == 1
    assert distributed.root_cause({0: {"pid": 1, "ended": "completed"}}, {}, 1) is None


@pytest.mark.parametrize("strategy", ["deepspeed-zero2", "deepspeed-zero3"])
def test_deepspeed_configs_and_the_command_that_runs_them(tmp_path, tiny_config, strategy):
    """DeepSpeed does not run on these CPU machines (no GPU; not installed): the config and command are checked."""
    config = tiny_config(processes=4, strategy=strategy, grad_accum=2)
    settings = distributed.accelerate_config(config, 4, 29555)
    assert settings["distributed_type"] == "DEEPSPEED" and settings["num_processes"] == 4
    assert settings["main_process_port"] == 29555
    assert settings["deepspeed_config"]["zero_stage"] == int(strategy[-1])
    assert settings["deepspeed_config"]["gradient_accumulation_steps"] == 2
    path = distributed.write_accelerate_config(tmp_path, config, 4)
    assert distributed.accelerate_command(tmp_path, python="py") == [
        "py",
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(path),
        "-m",
        "studio.train.worker",
        str(tmp_path),
    ]
    assert "GPUs only" in distributed.problem(config.replace(processes=2), gpus=0)[0]
    assert "pip install deepspeed" in distributed.problem(config, gpus=4)[1]  # not installed on these machines


def test_fsdp_is_configured_for_peft_and_refused_on_a_cpu_where_accelerate_cannot_run_it(tiny_config):
    """accelerate's FSDP plugin needs an accelerator device (tried here: 'no available devices found' on both ranks),
    so a CPU gets a clear refusal before anything starts; the config is what a GPU machine runs."""
    config = tiny_config(processes=2, strategy="fsdp")
    settings = distributed.accelerate_config(config, 2, 29556)
    assert settings["distributed_type"] == "FSDP"
    assert settings["fsdp_config"]["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert settings["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # the adapter is an ordinary file
    message, hint = distributed.problem(config, gpus=0)
    assert "GPUs only" in message and "DDP" in hint
    assert distributed.problem(config, gpus=2) is None
    assert distributed.problem(tiny_config(processes=2), gpus=0) is None  # DDP runs on a CPU
    assert "4 processes need 4 GPUs; 2 are visible" in distributed.problem(tiny_config(processes=4), gpus=2)[0]
    assert "at most one process per core" in distributed.problem(tiny_config(processes=64), gpus=0)[0]
    with pytest.raises(StudioError, match="GPUs only"):  # the start itself refuses, whatever the page showed
        supervisor.launch(config, owner="alice")
