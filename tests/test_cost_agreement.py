"""One cost model: the Decide tab, the Train tab's preflight, `estimate` and `train --dry-run` give the same
numbers for the same run (the bundled model on a saved dataset, this CPU at a fixed matmul peak)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from studio.decide import estimate as est
from studio.decide import plan
from studio.models import cost
from studio.models.hardware import Hardware
from studio.train import preflight
from studio.train.config import RunConfig

PEAK_GFLOPS = 127.0


@pytest.fixture(params=["not measured", "bf16 measured faster"])
def cpu_precision(request, cpu_not_measured, tmp_path, monkeypatch) -> str:
    """The precision a run will train in here: fp32 before this CPU is measured; bf16 once a run has measured bf16
    twice as fast (its cached measurement). Both tabs must follow it the same way."""
    from studio.models import hardware, precision_probe
    from studio.models.precision import CpuMeasurement, Device

    monkeypatch.setattr(precision_probe, "quick_device", lambda: Device("cpu", "test CPU"))
    monkeypatch.setattr(hardware, "cpu_cores", lambda: 2)
    if request.param == "not measured":
        return "fp32"
    model = tmp_path / "measured-model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 576}))
    monkeypatch.setattr(precision_probe, "model_dir_for", lambda ref: str(model) if ref else None)
    precision_probe._store(model, 2, CpuMeasurement(1.0, 0.5, (2.0,), (2.002,), 0.9999, 512, 2))
    return "bf16"


def saved_dataset(folder: Path) -> Path:
    """A saved dataset with the Data tab's statistics: 270 train and 30 validation rows of Alpaca-like lengths."""
    folder.mkdir(parents=True, exist_ok=True)
    row = {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Ahoy! Hello."}]}
    (folder / "train.jsonl").write_text((json.dumps(row) + "\n") * 270)
    (folder / "validation.jsonl").write_text((json.dumps(row) + "\n") * 30)
    stats = {
        "model": "bundled:SmolLM2-135M-Instruct",
        "max_length": 576,
        "rows": 270,
        "tokens": {"total": 48_269, "trainable": 31_975, "p50": 145, "p95": 394, "p99": 678, "max": 760},
        "suggested_max_length": 576,
    }
    (folder / "manifest.json").write_text(
        json.dumps(
            {
                "id": folder.name,
                "name": "alpaca-like",
                "stats": stats,
                "counts": {"train": 270, "validation": 30, "rejected": 0},
            }
        )
    )
    return folder


def test_decide_and_preflight_give_the_same_numbers_for_the_same_run(tmp_path, monkeypatch, cpu_precision):
    folder = saved_dataset(tmp_path / "alpaca")
    manifest = json.loads((folder / "manifest.json").read_text())
    # The calibration CPU's own measured step: where this CPU has one too (bf16 measured), both take its speed.
    calibrated = cost.calibration()
    with_step = dataclasses.replace(calibrated, cpu_measured_step_efficiency={"fp32": 0.3, "bf16": 0.2})
    monkeypatch.setattr(cost, "calibration", lambda: with_step)
    config = RunConfig(dataset=str(folder), epochs=2, batch_size=8, max_length=576)
    report = preflight.run_preflight(
        config,
        hardware=Hardware(kind="cpu", cpu_cores=2, ram_gb=24),
        runs=[],
        check_busy=False,
        cpu_gflops=PEAK_GFLOPS,
        available_gib=20.0,
    )
    # The Decide tab on "this machine" at the same peak, with the dataset the Data tab handed over.
    monkeypatch.setattr(
        est, "measure_this_machine", lambda dtype=None: cost.this_machine(dtype, peak_tflops=PEAK_GFLOPS / 1000)
    )
    inputs = plan.PlanInputs(
        model="SmolLM2-135M",
        hardware=est.THIS_MACHINE,
        technique="lora",
        epochs=2,
        batch_size=8,
        lora_r=8,
        include_this_machine=True,  # as the Decide tab asks when this machine is picked
    )
    decided = plan.compute(inputs, {}, manifest["stats"], "alpaca-like", manifest["counts"])
    assert decided.max_length == 576  # the data's suggested max length, as the Train form gets it
    run = decided.estimate.run
    assert report.precision.name == decided.estimate.dtype == cpu_precision
    assert run.workload.steps == report.steps == 68 and run.workload.evaluations == report.evaluations == 5
    assert run.memory.total == pytest.approx(report.memory_needed_gib)
    assert run.seconds == pytest.approx(report.time_parts)
    assert run.total_seconds == pytest.approx(report.seconds)
    assert run.tokens_per_s == pytest.approx(report.tokens_per_s)
    assert run.workload.train_tokens == pytest.approx(report.tokens, abs=1)
    assert decided.estimate.hours * 3600 == pytest.approx(report.seconds)
    assert run.speed_measured_here == (cpu_precision == "bf16")
    assert ("own bf16 LoRA step" in report.rate_source) == (cpu_precision == "bf16")


def studio(capsys, *args: str) -> dict:
    """`python -m studio ARGS --json` in this process (the command line's own code), its printed JSON."""
    from studio import cli

    assert cli.main(list(args)) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_estimate_and_train_dry_run_agree(tmp_path, monkeypatch, capsys, cpu_precision):
    home = tmp_path / "home"
    monkeypatch.setenv("STUDIO_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Free memory fixed as in the test above: with less, the dry run would (rightly) fit other settings.
    monkeypatch.setattr(preflight, "available_ram_gib", lambda: 20.0)
    folder = saved_dataset(home / "datasets" / "alpaca")
    common = [
        "--data",
        str(folder),
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--max-length",
        "576",
        "--cpu-gflops",
        str(PEAK_GFLOPS),
        "--json",
    ]
    estimate = studio(
        capsys,
        "estimate",
        "--model",
        "bundled",
        "--technique",
        "lora",
        "--gpu",
        "this-machine",
        "--lora-r",
        "8",
        *common,
    )
    preview = studio(capsys, "train", "--model", "bundled:SmolLM2-135M-Instruct", "--dry-run", *common)
    assert not preview["adjustments"] and preview["memory_available_gib"] == 20.0
    assert estimate["dtype"] == cpu_precision
    assert estimate["memory_gib"] == pytest.approx(preview["memory_gib"], abs=0.001)
    assert estimate["seconds"] == pytest.approx(preview["time_parts_s"], abs=0.1)
    assert estimate["hours"] * 3600 == pytest.approx(preview["seconds"], abs=0.5)
    assert estimate["tokens_per_s"] == pytest.approx(preview["tokens_per_s"], abs=0.01)
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())  # the dry run started nothing
