"""The model card: Hub metadata parsed back with ModelCard.load, results and verdict, nothing from the server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio import paths
from studio.models import bundled, catalog
from studio.train import card, store
from studio.train.config import RunConfig

SECRET = "hf_cardTestSecretToken0987654321"


@pytest.fixture
def run_dir(tmp_path, monkeypatch) -> Path:
    """A finished run on the bundled model, trained on a dataset that came from the Hub."""
    monkeypatch.setenv("HF_TOKEN", SECRET)
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "train.jsonl").write_text("")  # a saved dataset folder (data.store) has its training split
    (dataset / "manifest.json").write_text(
        json.dumps(
            {"name": "pirate chat", "source_hub_id": "someone/pirate-chat", "counts": {"train": 117, "validation": 13}}
        )
    )
    record = store.create_run(
        RunConfig(model=catalog.BUNDLED, dataset=str(dataset), name="captain byte", max_steps=30), "alice"
    )
    for step, loss in enumerate([2.5, 2.1, 1.7, 1.4, 1.2, 1.1], start=1):
        store.append_event(record.dir, {"type": "log", "step": step * 5, "loss": loss})
    store.append_event(record.dir, {"type": "eval", "step": 30, "eval_loss": 1.3})
    store.update_status(
        record.dir,
        status="completed",
        step=30,
        total_steps=30,
        final_loss=1.1,
        best_eval_loss=1.3,
        facts={"train_rows": 117, "eval_rows": 13, "learning_rate": 0.001, "assistant_only_loss": True},
        notes=[
            "assistant-only loss on: using the studio's ChatML template with answer markers",
            f"resumed from {record.dir}/checkpoints/checkpoint-10",
        ],
    )
    return record.dir


def test_card_metadata_parses_back_with_model_card_load(run_dir):
    from huggingface_hub import ModelCard

    (run_dir / "adapter").mkdir()
    path = card.write_card(run_dir, run_dir / "adapter")
    loaded = ModelCard.load(path)
    assert loaded.data.base_model == bundled.HUB_ID == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert loaded.data.library_name == "peft" and loaded.data.pipeline_tag == "text-generation"
    assert loaded.data.license == "apache-2.0"
    assert loaded.data.datasets == ["someone/pirate-chat"]
    assert {"lora", "sft", "trl"} <= set(loaded.data.tags)
    text = loaded.text
    assert "# captain byte" in text and "117 train, 13 validation" in text
    assert "| 30 | 1.1 | 1.3 |" in text  # the loss table ends on the last step, train and eval
    assert "AutoPeftModelForCausalLM.from_pretrained(" in text and "learning_rate | 0.001" in text
    assert "Not evaluated yet" in text


def test_card_holds_nothing_from_the_server(run_dir):
    content = str(card.build_card(run_dir))
    assert SECRET not in content
    assert str(paths.studio_home()) not in content and str(run_dir) not in content and "/tmp" not in content
    assert "checkpoint-10" not in content  # a note naming a server path is left out


def test_the_held_out_verdict_is_in_the_card_when_compare_saved_one(run_dir):
    (run_dir / "compare").mkdir()
    evaluation = {
        "summary": {"prompts": 13, "with_reference": 13, "base_loss": 2.41, "tuned_loss": 1.02, "improved": 12},
        "verdict": {"headline": "The tuned model is better on 12 of 13 held-out prompts (95 % interval 0.7–1.6)."},
    }
    (run_dir / "compare" / "eval.json").write_text(json.dumps(evaluation))
    text = str(card.build_card(run_dir))
    assert "**Verdict:** The tuned model is better on 12 of 13" in text
    assert "base 2.410 → tuned 1.020" in text and "12 of 13 prompts improved" in text


@pytest.mark.parametrize("content", ["not json", "[]", json.dumps({"verdict": 3, "summary": "x"})])
def test_a_missing_or_odd_eval_file_never_breaks_the_card(run_dir, content):
    (run_dir / "compare").mkdir()
    (run_dir / "compare" / "eval.json").write_text(content)
    assert "## Evaluation on held-out prompts" in str(card.build_card(run_dir))


def test_merged_card_loads_with_transformers(run_dir):
    from huggingface_hub import ModelCard

    loaded = ModelCard(str(card.build_card(run_dir, repo_id="someone/captain-byte", merged=True)))
    assert loaded.data.library_name == "transformers" and "merged" in loaded.data.tags
    assert "AutoModelForCausalLM.from_pretrained('someone/captain-byte')" in loaded.text


def test_base_hub_id_for_every_kind_of_reference(tmp_path):
    assert card.base_hub_id(catalog.BUNDLED) == bundled.HUB_ID
    assert card.base_hub_id("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    snapshot = tmp_path / "hub" / "models--meta-llama--Llama-3.2-1B-Instruct" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    assert card.base_hub_id(str(snapshot)) == "meta-llama/Llama-3.2-1B-Instruct"
    converted = tmp_path / "converted"
    converted.mkdir()
    (converted / "STUDIO_SOURCE.txt").write_text("Converted from the bundled GGUF")
    assert card.base_hub_id(str(converted)) == bundled.HUB_ID
    assert card.base_hub_id(str(tmp_path)) is None
    assert card.portable_base_reference(str(tmp_path)) == tmp_path.name


def test_finalize_adapter_replaces_peft_template_names_hub_base_and_drops_the_pickle(run_dir):
    import torch
    from huggingface_hub import ModelCard

    adapter = run_dir / "adapter"
    adapter.mkdir()
    (adapter / "README.md").write_text(
        "---\nlibrary_name: peft\n---\n# Model Card for Model ID\n[More Information Needed]\n"
    )
    (adapter / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "/somewhere/models/SmolLM2", "r": 8})
    )
    torch.save({"x": 1}, adapter / "training_args.bin")

    class Args:
        def to_dict(self):
            return {"learning_rate": 0.001, "output_dir": str(run_dir / "checkpoints"), "hub_token": SECRET, "seed": 42}

    card.finalize_adapter(run_dir, Args())
    assert "More Information Needed" not in (adapter / "README.md").read_text()
    assert ModelCard.load(adapter / "README.md").data.base_model == bundled.HUB_ID
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == bundled.HUB_ID
    assert not (adapter / "training_args.bin").exists()
    saved = json.loads((adapter / "training_args.json").read_text())
    assert saved == {"learning_rate": 0.001, "seed": 42}  # no paths, no token
