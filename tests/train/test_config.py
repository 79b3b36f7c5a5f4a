"""RunConfig: validation with field-level messages, JSON round-trip, the equivalent CLI command."""

from __future__ import annotations

import argparse
import json

import pytest

from studio.errors import StudioError
from studio.train.config import RunConfig


def valid(**changes) -> RunConfig:
    return RunConfig(**{"dataset": "/data/ds", **changes})


def test_defaults_with_a_dataset_are_valid_and_cpu_friendly():
    config = valid()
    assert config.validate() == {}
    assert config.trust_remote_code is False
    assert config.target_modules == "all-linear"
    assert config.bf16 is None and config.gradient_checkpointing is None  # decided per hardware by the worker
    assert config.assistant_only_loss is True


def test_missing_dataset_and_bad_values_get_field_level_messages():
    config = RunConfig(
        dataset="",
        learning_rate=-1.0,
        lora_r=0,
        scheduler="wobbly",
        batch_size=0,
        max_length=4,
        lora_dropout=1.5,
        warmup=2.5,
        target_modules="q_proj, ../x",
    )
    errors = config.validate()
    assert set(errors) == {
        "dataset",
        "learning_rate",
        "lora_r",
        "scheduler",
        "batch_size",
        "max_length",
        "lora_dropout",
        "warmup",
        "target_modules",
    }
    assert "cosine" in errors["scheduler"]
    with pytest.raises(StudioError) as caught:
        config.check()
    assert "learning rate" in caught.value.message and caught.value.hint


def test_nan_learning_rate_is_refused_and_dora_with_qlora_allowed():
    assert "learning_rate" in valid(learning_rate=float("nan")).validate()
    assert valid(use_dora=True, qlora_4bit=True).validate() == {}  # PEFT 0.21 trains DoRA on 4-bit layers


def test_from_dict_coerces_form_values_and_reports_what_it_cannot():
    config = RunConfig.from_dict(
        {
            "dataset": "/d",
            "epochs": "2",
            "lora_r": 16.0,
            "max_steps": "",
            "packing": "yes",
            "bf16": "auto",
            "unknown_key": 1,
        }
    )
    assert (config.epochs, config.lora_r, config.max_steps, config.packing, config.bf16) == (2.0, 16, None, True, None)
    assert config.validate() == {}
    broken = RunConfig.from_dict({"dataset": "/d", "lora_r": "sixteen", "epochs": 1.5, "batch_size": 2.5})
    errors = broken.validate()
    assert "whole number" in errors["lora_r"] and "batch_size" in errors and "epochs" not in errors


def test_json_round_trip_is_exact():
    config = valid(
        name="pirate v1",
        epochs=3,
        max_steps=120,
        learning_rate=1e-4,
        lora_r=32,
        use_dora=True,
        packing=True,
        bf16=False,
        torch_threads=2,
        target_modules="q_proj,v_proj",
    )
    text = config.to_json()
    assert json.loads(text)["model"] == config.model
    assert RunConfig.from_json(text) == config


def test_bad_json_is_a_plain_error():
    with pytest.raises(StudioError):
        RunConfig.from_json("{not json")
    with pytest.raises(StudioError):
        RunConfig.from_json("[1, 2]")


def test_cli_command_rebuilds_the_same_config():
    from studio.train.cli import add_config_flags, config_from_args

    config = valid(
        name="my run: 'quoted'",
        epochs=2.5,
        learning_rate=3e-4,
        lora_r=4,
        packing=True,
        assistant_only_loss=False,
        gradient_checkpointing=True,
        max_steps=7,
        dataset="/a folder/ds",
    )
    command = config.to_cli_command()
    assert command.startswith("python -m studio train ")
    assert "--lr 0.0003" in command and "--no-assistant-only-loss" in command and "--data '/a folder/ds'" in command
    import shlex

    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    args = parser.parse_args(shlex.split(command)[4:])
    assert config_from_args(args) == config


def test_automatic_learning_rate_depends_on_model_size():
    from studio.train.config import suggested_learning_rate

    assert RunConfig().learning_rate is None and "learning_rate" not in valid().validate()
    assert suggested_learning_rate(135_000_000) == 1e-3  # the bundled SmolLM2: a style in two epochs
    assert suggested_learning_rate(7_000_000_000) == 2e-4
    assert suggested_learning_rate(None) == 2e-4  # unknown size: the usual LoRA rate
    assert "--lr" not in valid().to_cli_args() and valid(learning_rate=5e-4).to_cli_args()[-2:] == ["--lr", "0.0005"]
    assert RunConfig.from_json(valid().to_json()).learning_rate is None
