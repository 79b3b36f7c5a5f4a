"""One cost model: the Decide tab, the Train tab's preflight, `estimate` and `train --dry-run` give the same
numbers for the same run (the bundled model on a saved dataset, this CPU at a fixed matmul peak)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.decide import estimate as est
from studio.decide import plan
from studio.models import cost
from studio.models.hardware import Hardware
from studio.train import preflight
from studio.train.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
PEAK_GFLOPS = 127.0


def saved_dataset(folder: Path) -> Path:
    """A saved dataset with the Data tab's statistics: 270 train and 30 validation rows of Alpaca-like lengths."""
    folder.mkdir(parents=True, exist_ok=True)
    row = {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Ahoy! Hello."}]}
    (folder / "train.jsonl").write_text((json.dumps(row) + "\n") * 270)
    (folder / "validation.jsonl").write_text((json.dumps(row) + "\n") * 30)
    stats = {"model": "bundled:SmolLM2-135M-Instruct", "max_length": 576, "rows": 270,
             "tokens": {"total": 48_269, "trainable": 31_975, "p50": 145, "p95": 394, "p99": 678, "max": 760},
             "suggested_max_length": 576}
    (folder / "manifest.json").write_text(json.dumps({"id": folder.name, "name": "alpaca-like", "stats": stats,
                                                      "counts": {"train": 270, "validation": 30, "rejected": 0}}))
    return folder


def test_decide_and_preflight_give_the_same_numbers_for_the_same_run(tmp_path, monkeypatch):
    folder = saved_dataset(tmp_path / "alpaca")
    manifest = json.loads((folder / "manifest.json").read_text())
    config = RunConfig(dataset=str(folder), epochs=2, batch_size=8, max_length=576)
    report = preflight.run_preflight(config, hardware=Hardware(kind="cpu", cpu_cores=2, ram_gb=24), runs=[],
                                     check_busy=False, cpu_gflops=PEAK_GFLOPS, available_gib=20.0)
    # The Decide tab on "this machine" at the same peak, with the dataset the Data tab handed over.
    monkeypatch.setattr(est, "measure_this_machine", lambda: cost.this_machine(peak_tflops=PEAK_GFLOPS / 1000))
    inputs = plan.PlanInputs(model="SmolLM2-135M", hardware=est.THIS_MACHINE, technique="lora", epochs=2,
                             batch_size=8, lora_r=8, include_this_machine=False)
    decided = plan.compute(inputs, {}, manifest["stats"], "alpaca-like", manifest["counts"])
    assert decided.max_length == 576  # the data's suggested max length, as the Train form gets it
    run = decided.estimate.run
    assert run.workload.steps == report.steps == 68 and run.workload.evaluations == report.evaluations == 5
    assert run.memory.total == pytest.approx(report.memory_needed_gib)
    assert run.seconds == pytest.approx(report.time_parts)
    assert run.total_seconds == pytest.approx(report.seconds)
    assert run.tokens_per_s == pytest.approx(report.tokens_per_s)
    assert run.workload.train_tokens == pytest.approx(report.tokens, abs=1)
    assert decided.estimate.hours * 3600 == pytest.approx(report.seconds)


def studio(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), STUDIO_HOME=str(home), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "studio", *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)


def test_estimate_and_train_dry_run_agree(tmp_path):
    home = tmp_path / "home"
    folder = saved_dataset(home / "datasets" / "alpaca")
    common = ["--data", str(folder), "--epochs", "2", "--batch-size", "8", "--max-length", "576",
              "--cpu-gflops", str(PEAK_GFLOPS), "--json"]
    estimated = studio(home, "estimate", "--model", "bundled", "--technique", "lora", "--gpu", "this-machine",
                       "--lora-r", "8", *common)
    assert estimated.returncode == 0, estimated.stderr
    dry = studio(home, "train", "--model", "bundled:SmolLM2-135M-Instruct", "--dry-run", *common)
    assert dry.returncode == 0, dry.stderr
    estimate, preview = json.loads(estimated.stdout), json.loads(dry.stdout)
    assert estimate["memory_gib"] == pytest.approx(preview["memory_gib"], abs=0.001)
    assert estimate["seconds"] == pytest.approx(preview["time_parts_s"], abs=0.1)
    assert estimate["hours"] * 3600 == pytest.approx(preview["seconds"], abs=0.5)
    assert estimate["tokens_per_s"] == pytest.approx(preview["tokens_per_s"], abs=0.01)
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())  # the dry run started nothing
