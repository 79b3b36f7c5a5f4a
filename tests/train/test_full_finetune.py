"""Full fine-tuning for real on the tiny model: every weight trains, the output is a whole model that loads
without PEFT, Compare puts it beside the base, export ships it as it is, and preflight refuses what cannot fit."""

from __future__ import annotations

import json
import zipfile

import pytest

from studio.compare import engine as compare_engine
from studio.compare import runs as compare_runs
from studio.errors import StudioError
from studio.train import card, export, preflight, store, supervisor
from studio.train.config import RunConfig
from tests.train.conftest import WAIT


@pytest.fixture(scope="module")
def full_run(tiny_config):
    # learning_rate None: full fine-tuning's automatic rate (the factory's 2e-3 is for LoRA)
    config = tiny_config(max_steps=4, full_finetune=True, learning_rate=None, name="full ft")
    record = supervisor.launch(config, owner="alice")
    return supervisor.wait(record.run_id, timeout=WAIT)


def test_every_weight_trains_and_the_output_is_a_whole_model(full_run, tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    log = (full_run.dir / "log.txt").read_text()[-3000:]
    assert full_run.state == "completed", (full_run.status, log)
    output = full_run.dir / store.ADAPTER_DIR
    assert store.is_whole_model(output) and not (output / "adapter_config.json").exists()
    assert full_run.adapter_dir == output and store.usable_adapter(full_run.dir) == output
    assert full_run.status["facts"]["learning_rate"] == 5e-5  # full fine-tuning's automatic rate, not LoRA's 1e-3
    assert any("full fine-tuning" in note for note in full_run.status["notes"])

    tuned = AutoModelForCausalLM.from_pretrained(output)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    changed = [
        name
        for (name, after), (_, before) in zip(tuned.state_dict().items(), base.state_dict().items(), strict=True)
        if not torch.equal(after, before)
    ]
    assert any("mlp" in name for name in changed) and any("self_attn" in name for name in changed)
    assert str(tiny_model_dir) not in (output / "config.json").read_text()  # no server path ships with it


def test_the_card_and_export_ship_a_whole_model(full_run):
    built = str(card.build_card(full_run.dir))
    assert "library_name: transformers" in built and "full fine-tuning, every weight trained" in built
    assert "AutoModelForCausalLM.from_pretrained" in built and "AutoPeftModel" not in built
    zipped = export.zip_adapter(full_run.dir)
    assert zipped.name == "full-ft-model.zip"
    names = zipfile.ZipFile(zipped).namelist()
    assert any(name.endswith("model.safetensors") for name in names) and not any(
        name.endswith(("adapter_config.json", ".bin")) for name in names
    )
    with pytest.raises(StudioError, match="already a whole model"):
        export.merge(full_run.dir)


def test_compare_loads_the_tuned_model_beside_the_base(full_run):
    info = compare_runs.load_run(full_run.dir)
    engine = compare_engine.Engine(info.base_ref)
    name = engine.attach(info.adapter_dir)
    assert name in engine.whole_models and engine.model is None  # no PEFT wrapper: the base stays as it is
    settings = engine.default_settings(max_new_tokens=4, temperature=0)
    answers = {label: engine.generate(label, [{"role": "user", "content": "Hi"}], settings) for label in (None, name)}
    assert all(isinstance(text, str) for text in answers.values())
    with engine.using(None) as base_model, engine.using(name) as tuned_model:
        assert base_model is engine.base and tuned_model is engine.whole_models[name]


def test_preflight_counts_every_weight_and_refuses_what_cannot_fit(tiny_config, tiny_dataset_dir):
    def check(**changes):
        config = RunConfig(dataset=str(tiny_dataset_dir), **changes)  # the bundled SmolLM2: 135 M parameters
        return preflight.run_preflight(config, check_busy=False, runs=[], cpu_gflops=100.0, available_gib=16.0)

    lora, full = check(), check(full_finetune=True)
    params = full.params
    assert params > 100e6 and not full.blocking
    assert full.memory_parts_gib["optimizer"] == pytest.approx(8 * params / 1024**3, rel=0.01)
    assert full.memory_parts_gib["gradients"] == pytest.approx(4 * params / 1024**3, rel=0.01)
    assert lora.memory_parts_gib.get("optimizer", 0) == 0
    assert "every one trainable" in dict(full.summary_rows())["Model size"]
    seven_b = preflight.run_preflight(
        RunConfig(model="Qwen/Qwen2.5-7B-Instruct", dataset=str(tiny_dataset_dir), full_finetune=True),
        check_busy=False,
        runs=[],
        cpu_gflops=100.0,
        available_gib=16.0,
    )
    assert seven_b.blocking and any("memory" in check.message.lower() for check in seven_b.errors)
    both = RunConfig(dataset="x", full_finetune=True, use_dora=True).validate()
    assert "full_finetune" in both and "DoRA" in both["full_finetune"]
    assert json.loads(tiny_config(full_finetune=True).to_json())["full_finetune"] is True
