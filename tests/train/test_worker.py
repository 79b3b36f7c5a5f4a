"""The real worker subprocess on the tiny model: a full run, a graceful stop, a stop while loading."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from studio.train import store, supervisor
from tests.train.conftest import WAIT, events_of, wait_for


def test_run_completes_with_falling_loss_events_checkpoints_and_a_loadable_adapter(tiny_config, tiny_model_dir):
    record = supervisor.launch(tiny_config(max_steps=24, name="full run"), owner="alice")
    record = supervisor.wait(record.run_id, timeout=WAIT)
    status = record.status
    assert record.state == "completed", (status, (record.dir / "log.txt").read_text()[-3000:])
    assert status["step"] == status["total_steps"] == 24 and status["error"] is None
    assert status["best_eval_loss"] is not None and (record.dir / status["best_checkpoint"]).is_dir()
    assert "assistant-only loss on" in " ".join(status["notes"])
    assert status["train_tokens"] > 0 and status["tokens_per_s"] > 0  # read from SFTTrainer._total_train_tokens

    events = events_of(record)
    logs = [e for e in events if e["type"] == "log"]
    evals = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in logs] == list(range(1, 25))  # auto logging: every step on a short run
    for event in logs:
        assert event["total"] == 24 and 0 <= event["step"] <= event["total"]
        assert event["eta"] is None or event["eta"] >= 0
        for key in (
            "loss",
            "learning_rate",
            "grad_norm",
            "mean_token_accuracy",
            "tokens_per_s",
            "elapsed",
            "memory_gb",
            "epoch",
        ):
            assert event[key] is not None, key
    first, last = sum(e["loss"] for e in logs[:3]) / 3, sum(e["loss"] for e in logs[-3:]) / 3
    assert last < first - 0.3, (first, last)
    assert evals and evals[-1]["eval_loss"] < evals[0]["eval_loss"]
    assert any(e["type"] == "checkpoint" for e in events) and events[-1]["status"] == "completed"
    assert store.last_checkpoint(record.dir) is not None

    from huggingface_hub import ModelCard

    adapter = record.dir / "adapter"
    card = ModelCard.load(adapter / "README.md")  # the studio's card replaced PEFT's blank template
    assert card.data.library_name == "peft" and card.data.pipeline_tag == "text-generation"
    assert (
        "tiny sums" in card.text
        and "Final train loss" in card.text
        and "| step | train loss | eval loss |" in card.text
    )
    assert str(tiny_model_dir) not in card.content and str(record.dir) not in card.content
    assert not (adapter / "training_args.bin").exists()  # no pickle: the settings are JSON
    assert json.loads((adapter / "training_args.json").read_text())["max_steps"] == 24
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
    assert record.adapter_dir is not None and (record.adapter_dir / "README.md").is_file()
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
    result = subprocess.run(
        [sys.executable, "-m", "studio.train.worker", os.devnull], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "not a run folder" in result.stderr


SMOLLM_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CONVERSATION = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "Arr, 4."}]


@pytest.fixture
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.mark.parametrize("template", ["tiny", SMOLLM_TEMPLATE])
def test_chatml_models_get_a_marked_template_that_renders_identically(tokenizer, template):
    from studio.models.templates import choose_template, has_generation_markers

    if template != "tiny":
        tokenizer.chat_template = template
    original = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    choice = choose_template(tokenizer, [CONVERSATION])
    assert choice.enabled and has_generation_markers(choice.template) and "assistant-only loss on" in choice.note
    assert tokenizer.apply_chat_template(CONVERSATION, chat_template=choice.template, tokenize=False) == original
    encoded = tokenizer.apply_chat_template(
        CONVERSATION, chat_template=choice.template, return_dict=True, return_assistant_tokens_mask=True
    )
    trained = [t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"]) if m]
    assert tokenizer.decode(trained) == "Arr, 4.<|im_end|>"  # only the answer and its end-of-turn token


def test_unknown_templates_turn_assistant_only_loss_off_with_a_reason(tokenizer):
    from studio.models.templates import choose_template

    tokenizer.chat_template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    choice = choose_template(tokenizer, [CONVERSATION])
    assert not choice.enabled and choice.template is None and "not a family the studio knows" in choice.note
    tokenizer.chat_template = None
    assert "no chat template" in choose_template(tokenizer, [CONVERSATION]).note


def test_auto_intervals_and_step_estimate():
    from studio.train.config import RunConfig

    config = RunConfig(dataset="/d", batch_size=8, grad_accum=2, epochs=3)
    assert config.total_steps(100) == 21  # ceil(ceil(100 / 8) / 2) = 7 per epoch
    assert config.replace(max_steps=5).total_steps(100) == 5
    assert config.intervals(1000, True) == (10, 200, 200)
    assert config.intervals(8, True) == (1, 2, 2)
    assert config.replace(eval_steps=3, save_steps=7, logging_steps=2).intervals(1000, True) == (2, 3, 7)


def test_the_run_time_limit_stops_gracefully_with_a_checkpoint_and_says_why(tiny_config, monkeypatch):
    monkeypatch.setenv("STUDIO_MAX_RUN_MINUTES", "0.02")  # 1.2 s of training
    record = supervisor.launch(tiny_config(max_steps=2000), owner="alice")
    record = supervisor.wait(record.run_id, timeout=WAIT)
    status = record.status
    assert record.state == "stopped" and status["stop_reason"] == "time_limit", status
    assert "run time limit" in status["error"]["message"] and "STUDIO_MAX_RUN_MINUTES" in status["error"]["message"]
    assert 1 <= status["step"] < 2000 and status["elapsed"] >= 1.2
    assert store.last_checkpoint(record.dir).name == f"checkpoint-{status['step']}"
    assert record.adapter_dir is not None and events_of(record)[-1]["status"] == "stopped"


def test_a_max_length_that_cuts_every_answer_fails_with_the_reason_and_the_fix(tiny_config, tmp_path):
    """TRL drops rows whose answer lies wholly past the max length; with none left the Trainer used to fail on an
    empty dataset ("IndexError: Invalid key: 0 is out of bounds for size 0")."""
    dataset = tmp_path / "long-prompts"
    dataset.mkdir()
    row = {
        "messages": [
            {"role": "user", "content": "Please explain this at length: " + "why the sky is blue " * 20},
            {"role": "assistant", "content": "Rayleigh scattering."},
        ]
    }
    (dataset / "train.jsonl").write_text((json.dumps(row) + "\n") * 8)
    (dataset / "manifest.json").write_text(json.dumps({"name": "long prompts", "counts": {"train": 8}}))
    record = supervisor.launch(tiny_config(dataset=str(dataset), max_length=16, max_steps=2), owner="alice")
    record = supervisor.wait(record.run_id, timeout=WAIT)
    error = record.status["error"]
    assert record.state == "failed" and "No training row is left" in error["message"], record.status
    assert "first 16 tokens" in error["message"] and "Raise Max length" in error["hint"]
