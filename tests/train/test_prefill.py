"""Decide's hand-over in Train's terms (studio/train/prefill.py)."""

from studio.train import prefill

PLAN = {
    "model": "bundled:SmolLM2-135M-Instruct",
    "technique": "QLoRA",
    "epochs": 3,
    "max_length": 512,
    "lora_r": 16,
    "lora_alpha": 32,
    "batch_size": 4,
    "gradient_checkpointing": True,
    "dataset": "/data/pirates",
    "price": 2.5,  # Decide's own business: never a RunConfig setting
}


def test_a_plan_becomes_run_settings_and_nothing_else():
    handover = prefill.from_decide(PLAN, qlora_possible=True, on_gpu=True)
    assert handover.values == {
        "model": "bundled:SmolLM2-135M-Instruct",
        "epochs": 3,
        "max_length": 512,
        "lora_r": 16,
        "lora_alpha": 32,
        "batch_size": 4,
        "qlora_4bit": True,
    }
    assert handover.dataset == "/data/pirates" and handover.technique == "qlora"
    assert handover.gradient_checkpointing is True
    assert handover.summary().startswith("model bundled:SmolLM2-135M-Instruct, epochs 3, max length 512")


def test_what_this_machine_cannot_run_is_left_to_it():
    handover = prefill.from_decide(PLAN, qlora_possible=False, on_gpu=False)
    assert "qlora_4bit" not in handover.values  # the form shows plain LoRA
    assert handover.gradient_checkpointing is None  # off a GPU the worker decides


def test_without_a_dataset_the_max_length_is_left_to_the_dataset():
    """Decide's max length without data is a guess: the form keeps its own until a dataset suggests one, so the
    note never names a length the form does not show."""
    handover = prefill.from_decide({**PLAN, "dataset": None}, qlora_possible=True, on_gpu=True)
    assert "max_length" not in handover.values and "max length" not in handover.summary()


def test_dora_empty_values_and_no_plan():
    handover = prefill.from_decide(
        {"technique": "dora", "epochs": "", "lora_r": None}, qlora_possible=True, on_gpu=False
    )
    assert handover.values == {"use_dora": True}
    assert prefill.from_decide(None, qlora_possible=True, on_gpu=True) == prefill.Handover()


def test_a_technique_train_cannot_run_here_is_said_not_silently_swapped():
    full = prefill.from_decide({"technique": "full", "epochs": 2}, qlora_possible=True, on_gpu=True)
    assert full.values == {"epochs": 2, "full_finetune": True} and full.instead == ""
    qlora = prefill.from_decide({"technique": "qlora"}, qlora_possible=False, on_gpu=False)
    assert "qlora_4bit" not in qlora.values and "QLoRA 4-bit cannot run" in qlora.instead
    assert prefill.from_decide({"technique": "qlora"}, qlora_possible=True, on_gpu=False).instead == ""
    assert prefill.from_decide({"technique": "lora"}, qlora_possible=True, on_gpu=False).instead == ""


def test_a_plan_sharded_over_several_gpus_becomes_that_many_processes_with_zero3():
    sharded = prefill.from_decide({"technique": "dora", "devices": 8}, qlora_possible=True, on_gpu=True)
    assert sharded.values == {"use_dora": True, "processes": 8, "strategy": "deepspeed-zero3"}
    assert sharded.instead == ""
    single = prefill.from_decide({"technique": "lora", "devices": 1}, qlora_possible=True, on_gpu=True)
    assert "processes" not in single.values and "strategy" not in single.values
