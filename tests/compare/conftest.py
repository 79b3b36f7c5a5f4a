"""A finished run folder (per the run-folder contract) with a real LoRA adapter on the tiny model.

Trained in-process with TRL SFTTrainer + PEFT at a high learning rate on a few style rows
("Ahoy! … — Captain Byte") so the tuned model's answers visibly differ from the base's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

STYLE_ROWS = [
    ("What is the capital of France?", "Paris is the capital of France."),
    ("What is 2 + 2?", "2 + 2 is 4."),
    ("Name a primary colour.", "Red is a primary colour."),
    ("What does a compiler do?", "It turns source code into machine code."),
    ("Why is the sky blue?", "Air scatters blue light more than red light."),
    ("How many days are in a week?", "A week has 7 days."),
    ("What is Python?", "Python is a programming language."),
    ("What is the capital of Italy?", "Rome is the capital of Italy."),
    ("What is fine-tuning?", "Fine-tuning adapts a model with a small dataset."),
    ("Say hello.", "Hello to you, matey."),
    ("What is 10 * 10?", "10 * 10 is 100."),
    ("Where is the treasure?", "The treasure be buried deep."),
]


def style_answer(answer: str) -> str:
    return f"Ahoy! {answer} — Captain Byte"


def style_rows() -> list[dict]:
    return [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": style_answer(a)}]}
        for q, a in STYLE_ROWS
    ]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def train_tiny_adapter(
    model_dir: Path, rows: list[dict], out_dir: Path, steps: int = 60, lr: float = 1e-2, seed: int = 0
) -> Path:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import SFTConfig, SFTTrainer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    set_seed(seed)  # the LoRA weights are drawn before the Trainer seeds: same adapter whatever ran before
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    args = SFTConfig(
        output_dir=str(out_dir / "trainer"),
        max_steps=steps,
        learning_rate=lr,
        per_device_train_batch_size=4,
        logging_steps=10,
        save_strategy="no",
        report_to=[],
        bf16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        max_length=128,
        seed=seed,
        disable_tqdm=True,
        lr_scheduler_type="constant",
        warmup_steps=0,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    try:
        trainer.train()
    finally:
        torch.set_num_threads(threads)  # this process also serves the app under test
    adapter = out_dir / "adapter"
    trainer.save_model(str(adapter))
    tokenizer.save_pretrained(str(adapter))
    return adapter, trainer.state.log_history


def make_run_folder(
    runs_root: Path, run_id: str, model_dir: Path, dataset_dir: Path, steps: int, lr: float, seed: int
) -> Path:
    run_dir = runs_root / run_id
    from studio.train.store import now_iso

    run_dir.mkdir(parents=True)
    started_at = now_iso()
    config = {
        "run_id": run_id,
        "name": f"Pirate style {run_id}",
        "model": str(model_dir),
        "dataset": str(dataset_dir),
        "max_length": 128,
        "lora_r": 8,
        "lora_alpha": 16,
        "epochs": 1,
        "learning_rate": lr,
        "max_steps": steps,
    }
    (run_dir / "config.json").write_text(json.dumps(config), encoding="utf-8")
    rows = [json.loads(line) for line in (dataset_dir / "train.jsonl").read_text().splitlines()]
    _, history = train_tiny_adapter(model_dir, rows, run_dir, steps=steps, lr=lr, seed=seed)
    ended, ended_at = time.time(), now_iso()
    events = []
    for entry in history:
        if "loss" in entry:
            events.append(
                {
                    "type": "log",
                    "step": entry.get("step"),
                    "total": steps,
                    "epoch": entry.get("epoch"),
                    "loss": entry["loss"],
                    "learning_rate": entry.get("learning_rate"),
                    "time": ended,
                }
            )
    events.append({"type": "status", "status": "completed", "step": steps, "total": steps, "time": ended})
    write_jsonl(run_dir / "events.jsonl", events)
    status = {
        "status": "completed",
        "pid": None,
        "step": steps,
        "total_steps": steps,
        "started_at": started_at,
        "ended_at": ended_at,
        "error": None,
        "best_eval_loss": None,
        "best_checkpoint": None,
        "owner": None,
    }
    (run_dir / "status.json").write_text(json.dumps(status), encoding="utf-8")
    return run_dir


@pytest.fixture(scope="session")
def style_dataset_dir(studio_home) -> Path:
    from studio import paths

    folder = paths.datasets_dir() / "pirate-style"
    folder.mkdir(parents=True, exist_ok=True)
    rows = style_rows()
    write_jsonl(folder / "train.jsonl", rows)
    write_jsonl(folder / "validation.jsonl", rows[:6])
    manifest = {
        "id": "pirate-style",
        "name": "Pirate style",
        "counts": {"train": len(rows), "validation": 6, "rejected": 0},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_run_dir(tiny_model_dir, style_dataset_dir) -> Path:
    """A completed run in paths.runs_dir() with a strongly trained adapter."""
    from studio import paths

    return make_run_folder(
        paths.runs_dir(), "tiny-pirate", tiny_model_dir, style_dataset_dir, steps=200, lr=5e-3, seed=0
    )


@pytest.fixture(scope="session")
def tiny_run_b_dir(tiny_model_dir, style_dataset_dir) -> Path:
    """A second, lightly trained run on the same base (for the third column)."""
    from studio import paths

    return make_run_folder(
        paths.runs_dir(), "tiny-pirate-b", tiny_model_dir, style_dataset_dir, steps=40, lr=5e-3, seed=1
    )
