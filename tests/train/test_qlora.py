"""QLoRA for real on the CPU: bitsandbytes 0.50 has CPU 4-bit kernels, so the worker trains the tiny model with its
linear layers in NF4 (with DoRA too), the adapter loads on the full-precision base, and the cost model's 4-bit
weight memory matches what bitsandbytes allocates."""

from __future__ import annotations

import json

import pytest

from studio.models import cost, hardware
from studio.train import supervisor

pytestmark = pytest.mark.skipif(not hardware.bitsandbytes_installed(), reason="bitsandbytes is not installed")


@pytest.mark.parametrize("dora", [False, True], ids=["qlora", "qlora-dora"])
def test_the_worker_trains_a_4_bit_model_on_the_cpu_and_the_adapter_loads_on_the_full_base(
    tiny_config, tiny_model_dir, dora
):
    record = supervisor.launch(tiny_config(max_steps=12, qlora_4bit=True, use_dora=dora, learning_rate=1e-2), owner="q")
    record = supervisor.wait(record.run_id, timeout=300)
    log = (record.dir / "log.txt").read_text()
    assert record.state == "completed", (record.status.get("error"), log[-3000:])
    logs = [json.loads(line) for line in (record.dir / "events.jsonl").read_text().splitlines()]
    losses = [event["loss"] for event in logs if event.get("type") == "log"]
    assert len(losses) == 12 and sum(losses[-3:]) < sum(losses[:3])  # it learns
    assert "Traceback" not in log

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = record.dir / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["use_dora"] is dora
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)  # not quantised
    model = PeftModel.from_pretrained(base, adapter)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        tuned = model(ids).logits
        with model.disable_adapter():
            plain = model(ids).logits
    assert torch.isfinite(tuned).all() and (tuned - plain).abs().max() > 1e-4


def test_the_4_bit_weight_estimate_matches_what_bitsandbytes_allocates(tiny_model_dir, bundled_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    for model_dir in (tiny_model_dir, bundled_model_dir):
        config = json.loads((model_dir / "config.json").read_text())
        shape = cost.shape_from_config(config)
        predicted = cost.estimate_memory(shape, "qlora", dtype="bf16").weights
        quantised = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, quantization_config=quantised, dtype=torch.bfloat16, device_map={"": "cpu"}
        )
        measured = model.get_memory_footprint() / cost.GIB
        assert abs(predicted / measured - 1) < 0.15, (model_dir.name, predicted, measured)
