"""`python -m studio export`: the browser's export on the command line, with --json and clear errors."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from studio import cli
from studio.train import card, store
from studio.train.config import RunConfig
from tests.train.test_export import TOKEN, _lora_adapter, _pickle_file


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir, tiny_dataset_dir):
    record = store.create_run(
        RunConfig(model=str(tiny_model_dir), dataset=str(tiny_dataset_dir), name="cli export"), "cli"
    )
    _lora_adapter(tiny_model_dir, record.dir / "adapter")
    _pickle_file(record.dir / "adapter" / "training_args.bin")
    store.update_status(record.dir, status="completed", step=10, total_steps=10)
    return record


def export(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(["export", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_default_is_the_zip_with_json_output(finished_run, capsys):
    code, out, err = export(capsys, finished_run.run_id, "--json")
    assert code == 0, err
    result = json.loads(out)  # stdout is one JSON document
    assert result == {
        "run_id": finished_run.run_id,
        "source": "adapter",
        "zip": result["zip"],
        "merged": None,
        "pushed": None,
    }
    names = zipfile.ZipFile(result["zip"]).namelist()
    assert "cli-export/adapter_model.safetensors" in names and "cli-export/README.md" in names
    assert not any(name.endswith(".bin") for name in names)


def test_zip_to_a_path_and_merge_into_a_folder(finished_run, capsys, tmp_path):
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM

    code, out, err = export(
        capsys, finished_run.run_id, "--zip", str(tmp_path / "out" / "a.zip"), "--merge", str(tmp_path / "merged")
    )
    assert code == 0, err
    assert f"zip: {tmp_path / 'out' / 'a.zip'}" in out and f"merged: {tmp_path / 'merged'}" in out
    assert zipfile.is_zipfile(tmp_path / "out" / "a.zip")
    merged = tmp_path / "merged"
    assert AutoModelForCausalLM.from_pretrained(merged).config.vocab_size > 0
    assert ModelCard.load(merged / "README.md").data.library_name == "transformers"
    assert not [path for path in merged.rglob("*") if path.is_file() and card.is_pickle(path)]
    code, _, err = export(capsys, finished_run.run_id, "--merge", str(merged))  # never over existing files
    assert code == 1 and "not an empty folder" in err


def test_push_without_a_token_fails_before_any_work(finished_run, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    code, out, err = export(
        capsys, finished_run.run_id, "--push", "someone/adapter", "--zip", str(tmp_path / "z.zip"), "--json"
    )
    assert code == 1 and "error: A Hugging Face token is needed to push." in err
    assert "HF_TOKEN" in err and "hf auth login" in err
    assert json.loads(out)["error"].startswith("A Hugging Face token")
    assert not (tmp_path / "z.zip").exists()


def test_push_offline_is_a_clear_error_and_the_token_is_never_printed(finished_run, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = export(capsys, finished_run.run_id, "--push", "someone/adapter")
    assert code == 1 and "offline" in err and TOKEN not in out + err


def test_push_sends_the_merged_model_when_merging_too(finished_run, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    pushed = {}

    class RecordingApi:
        def __init__(self, token):
            pass

        def create_repo(self, repo_id, private, exist_ok):
            pushed["private"] = private
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, repo_id, folder_path, commit_message, ignore_patterns):
            pushed["files"] = sorted(p.name for p in Path(folder_path).iterdir())

    monkeypatch.setattr("huggingface_hub.HfApi", RecordingApi)
    code, out, err = export(
        capsys,
        finished_run.run_id,
        "--merge",
        str(tmp_path / "m"),
        "--push",
        "someone/merged",
        "--no-private",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["pushed"] == "https://huggingface.co/someone/merged" and pushed["private"] is False
    assert "model.safetensors" in pushed["files"] and "adapter_config.json" not in pushed["files"]


def test_a_run_without_an_adapter_and_a_bad_run_id(tiny_model_dir, tiny_dataset_dir, capsys):
    record = store.create_run(RunConfig(model=str(tiny_model_dir), dataset=str(tiny_dataset_dir)), "cli")
    code, _, err = export(capsys, record.run_id)
    assert code == 1 and "no adapter yet" in err and "hint:" in err
    code, _, err = export(capsys, "../../etc")
    assert code == 1 and "not a run id" in err
