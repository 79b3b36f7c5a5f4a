"""Export: adapter zip, merge into full weights, push (offline → plain message; the token never touches disk)."""

import json
import zipfile
from pathlib import Path

import pytest

from studio import paths
from studio.errors import StudioError
from studio.train import export

TOKEN = "hf_exportTestSecretToken1234567890"


def _lora_adapter(model_dir: Path, folder: Path) -> None:
    """A real PEFT adapter on the tiny model, with non-zero B so that merging changes the weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(folder)


def _pickle_file(path: Path) -> None:
    import torch

    torch.save({"args": [1, 2, 3]}, path)  # what the Trainer writes as training_args.bin


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir) -> Path:
    run_dir = paths.runs_dir() / paths.new_id("export-")
    run_dir.mkdir()
    config = {"run_id": run_dir.name, "name": "pirate style", "model": str(tiny_model_dir), "dataset": "x"}
    (run_dir / "config.json").write_text(json.dumps(config))
    _lora_adapter(tiny_model_dir, run_dir / "adapter")
    _pickle_file(run_dir / "adapter" / "training_args.bin")
    return run_dir


def test_zip_contains_adapter_tokenizer_and_card(tiny_run, tiny_model_dir):
    from huggingface_hub import ModelCard

    target = export.zip_adapter(tiny_run)
    assert target.name == "pirate-style-adapter.zip" and target.parent == tiny_run / "exports"
    archive = zipfile.ZipFile(target)
    names = archive.namelist()
    assert "pirate-style/adapter_config.json" in names
    assert "pirate-style/adapter_model.safetensors" in names
    assert "pirate-style/tokenizer.json" in names
    card = archive.read("pirate-style/README.md").decode()
    assert ModelCard(card).data.library_name == "peft" and "# pirate style" in card
    # A local base model without a Hub id: named by its folder name only, never by a server path.
    adapter_config = json.loads(archive.read("pirate-style/adapter_config.json"))
    assert adapter_config["base_model_name_or_path"] == tiny_model_dir.name
    for name in names:
        if not name.endswith(".safetensors"):
            text = archive.read(name).decode("utf-8", "replace")
            assert str(tiny_model_dir) not in text and str(paths.studio_home()) not in text, name


def test_nothing_exported_is_a_pickle(tiny_run, tmp_path):
    from studio.train import card

    assert card.is_pickle(tiny_run / "adapter" / "training_args.bin")
    archive = zipfile.ZipFile(export.zip_adapter(tiny_run))
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl")) for name in archive.namelist())
    archive.extractall(tmp_path)
    assert not [path for path in tmp_path.rglob("*") if path.is_file() and card.is_pickle(path)]


def test_checkpoint_stands_in_when_no_final_adapter(tiny_run, tmp_path):
    run_dir = tmp_path / "killed-run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.json").write_text((tiny_run / "config.json").read_text())
    for step in (5, 10):
        folder = run_dir / "checkpoints" / f"checkpoint-{step}"
        __import__("shutil").copytree(tiny_run / "adapter", folder)
        (folder / "optimizer.pt").write_bytes(b"resume-only")
        (folder / "trainer_state.json").write_text("{}")  # written last: a complete checkpoint
    # A checkpoint the trainer did not finish writing (no trainer_state.json) is never used.
    __import__("shutil").copytree(tiny_run / "adapter", run_dir / "checkpoints" / "checkpoint-15")
    source = export.adapter_source(run_dir)
    assert source.from_checkpoint and source.folder.name == "checkpoint-10"
    assert "checkpoint-10" in source.note
    names = zipfile.ZipFile(export.zip_adapter(run_dir)).namelist()
    assert not any(name.endswith("optimizer.pt") for name in names)


def test_run_without_adapter_gets_a_plain_message(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(StudioError) as caught:
        export.zip_adapter(tmp_path)
    assert "no adapter" in caught.value.message and caught.value.hint


def test_merge_disk_needed_is_base_weight_size(tiny_run, tiny_model_dir):
    info = export.merge_disk_needed(tiny_run)
    weights = sum(path.stat().st_size for path in tiny_model_dir.glob("*.safetensors"))
    assert info["needed_bytes"] == weights
    assert info["enough"] and "Disk needed" in info["text"] and "Free" in info["text"]


@pytest.mark.slow
def test_merge_gives_plain_model_equal_to_base_plus_adapter(tiny_run, tiny_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    from huggingface_hub import ModelCard

    from studio.train import card

    target = export.merge(tiny_run)
    assert (target / "config.json").is_file() and (target / "tokenizer.json").is_file()
    assert not (target / "adapter_config.json").exists()
    assert ModelCard.load(target / "README.md").data.library_name == "transformers"
    assert not [path for path in target.rglob("*") if path.is_file() and card.is_pickle(path)]
    merged = AutoModelForCausalLM.from_pretrained(target)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with_adapter = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(tiny_run / "adapter")
    )
    ids = torch.tensor([[1, 5, 9, 42, 7]])
    with torch.no_grad():
        merged_logits = merged(ids).logits
        adapter_logits = with_adapter(ids).logits
        base_logits = base(ids).logits
    assert torch.allclose(merged_logits, adapter_logits, atol=1e-4)
    assert not torch.allclose(merged_logits, base_logits, atol=1e-4)  # the adapter really is in the weights


def test_push_offline_is_a_plain_message_and_token_is_nowhere_on_disk(tiny_run, studio_home, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(StudioError) as caught:
        export.push_to_hub(tiny_run, "someone/pirate-adapter", TOKEN)
    assert "offline" in caught.value.message.lower()
    assert TOKEN not in str(caught.value) and TOKEN not in caught.value.hint
    for path in Path(studio_home).rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert TOKEN.encode() not in path.read_bytes(), f"token leaked into {path}"


def test_push_validates_repo_and_token_before_anything(tiny_run):
    with pytest.raises(StudioError, match="not a valid Hub repository"):
        export.push_to_hub(tiny_run, "../../etc", TOKEN)
    with pytest.raises(StudioError, match="token is needed"):
        export.push_to_hub(tiny_run, "someone/adapter", "  ")
    with pytest.raises(StudioError, match="no merged model"):
        export.push_to_hub(tiny_run / "nonexistent", "someone/adapter", TOKEN, what="merged")


def test_push_errors_never_contain_the_token(tiny_run, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")

    class FailingApi:
        def __init__(self, token):
            self.token = token

        def create_repo(self, *args, **kwargs):
            raise RuntimeError(f"401 Unauthorized for token {self.token}")

    monkeypatch.setattr("huggingface_hub.HfApi", FailingApi)
    with pytest.raises(StudioError) as caught:
        export.push_to_hub(tiny_run, "someone/adapter", TOKEN)
    assert "refused" in caught.value.message
    assert TOKEN not in str(caught.value)


def test_merge_into_a_folder_of_the_users_never_overwrites_files(tiny_run, tmp_path):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    with pytest.raises(StudioError, match="not an empty folder"):
        export.merge(tiny_run, target=occupied)
    assert (occupied / "keep.txt").read_text() == "mine"


def test_push_uploads_the_zips_files_with_a_card_naming_the_repo(tiny_run, monkeypatch):
    from huggingface_hub import ModelCard

    from studio.train import card

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    uploaded = {}

    class RecordingApi:
        def __init__(self, token):
            assert token == TOKEN

        def create_repo(self, repo_id, private, exist_ok):
            uploaded["private"] = private
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, repo_id, folder_path, commit_message, ignore_patterns):
            folder = Path(folder_path)
            uploaded["files"] = {
                p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
            }

    monkeypatch.setattr("huggingface_hub.HfApi", RecordingApi)
    url = export.push_to_hub(tiny_run, "someone/pirate-adapter", TOKEN, private=True)
    assert url == "https://huggingface.co/someone/pirate-adapter" and uploaded["private"] is True
    files = uploaded["files"]
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "tokenizer.json"} <= set(files)
    assert "training_args.bin" not in files
    assert "'someone/pirate-adapter'" in files["README.md"].decode()  # the loading example names the repo
    assert ModelCard(files["README.md"].decode()).data.library_name == "peft"
    assert not any(TOKEN.encode() in content for content in files.values())
    assert not list(tiny_run.glob(".push-*"))  # the staging folder is gone
    assert card.is_pickle(tiny_run / "adapter" / "training_args.bin")  # the run folder itself is untouched
