"""Loading a 16-bit checkpoint into fp32 one tensor at a time: the same model as from_pretrained, a lower peak."""

import json

import pytest


@pytest.fixture(scope="module")
def bf16_checkpoint(tiny_model_dir, tmp_path_factory):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("tiny-bf16")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    return folder


def test_the_widened_model_equals_from_pretrained_in_fp32(bf16_checkpoint):
    import torch
    from transformers import AutoModelForCausalLM

    from studio.models import loading

    assert loading.stored_dtype(bf16_checkpoint) == "bfloat16"
    widened = loading.load_widened(bf16_checkpoint)
    stock = AutoModelForCausalLM.from_pretrained(bf16_checkpoint, dtype=torch.float32)
    assert widened is not None and not widened.training
    stock_state, widened_state = stock.state_dict(), widened.state_dict()
    assert stock_state.keys() == widened_state.keys()
    for key, value in stock_state.items():
        assert widened_state[key].dtype == torch.float32 and torch.equal(widened_state[key], value), key
    ids = torch.tensor([[1, 5, 9, 13]])
    with torch.no_grad():
        assert torch.equal(widened(ids).logits, stock(ids).logits)
    assert widened.generation_config.eos_token_id == stock.generation_config.eos_token_id


def test_a_checkpoint_the_fast_path_does_not_understand_falls_back_to_from_pretrained(bf16_checkpoint, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from studio.models import loading

    odd = tmp_path / "odd"
    shutil.copytree(bf16_checkpoint, odd)
    state = load_file(str(odd / "model.safetensors"))
    state["model.some_renamed.weight"] = torch.zeros(2, dtype=torch.bfloat16)
    save_file(state, str(odd / "model.safetensors"), metadata={"format": "pt"})
    assert loading.load_widened(odd) is None
    fp32 = tmp_path / "fp32"
    shutil.copytree(bf16_checkpoint, fp32)
    config = json.loads((fp32 / "config.json").read_text())
    config["dtype"] = "float32"
    (fp32 / "config.json").write_text(json.dumps(config))
    assert loading.load_widened(fp32) is None  # nothing to gain: loaded as stored
    assert loading.load_widened(tmp_path / "missing") is None
