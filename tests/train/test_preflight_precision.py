"""Preflight shows the precision the worker will train in: the same decision, from the cached CPU measurement."""

import json

import pytest

from studio.models import precision_probe
from studio.models.hardware import Hardware
from studio.models.precision import CpuMeasurement, Device
from studio.train import preflight
from studio.train.config import RunConfig

CPU = Hardware(kind="cpu", cpu_cores=2, ram_gb=16)


@pytest.fixture
def model_and_data(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(precision_probe, "quick_device", lambda: Device("cpu", "test CPU"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "hidden_size": 64,
                "num_hidden_layers": 2,
                "intermediate_size": 256,
                "vocab_size": 100,
                "num_attention_heads": 4,
            }
        )
    )
    data = tmp_path / "ds"
    data.mkdir()
    (data / "train.jsonl").write_text(
        json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ahoy"}]}) + "\n"
    )
    (data / "manifest.json").write_text(json.dumps({"name": "ds", "counts": {"train": 1, "validation": 0}}))
    return model, data


def _precision_row(report) -> str:
    return dict(report.summary_rows())["Precision"]


def test_before_the_first_run_preflight_says_the_cpu_will_be_measured(model_and_data):
    model, data = model_and_data
    report = preflight.run_preflight(
        RunConfig(model=str(model), dataset=str(data)), hardware=CPU, runs=[], check_busy=False, cpu_gflops=100.0
    )
    assert report.precision.name == "fp32" and "measures it once" in _precision_row(report)


def test_after_a_measurement_preflight_shows_the_measured_choice_and_a_forced_one_wins(model_and_data):
    model, data = model_and_data
    precision_probe._store(model, 2, CpuMeasurement(1.0, 0.5, (2.0,), (2.002,), 0.9999, 512, 2))
    config = RunConfig(model=str(model), dataset=str(data))
    report = preflight.run_preflight(config, hardware=CPU, runs=[], check_busy=False, cpu_gflops=100.0)
    assert report.precision.name == "bf16" and "2.00x as fast" in _precision_row(report)
    assert "Precision" in report.markdown()
    forced = preflight.run_preflight(
        config.replace(bf16=False), hardware=CPU, runs=[], check_busy=False, cpu_gflops=100.0
    )
    assert forced.precision.name == "fp32" and "--no-bf16" in _precision_row(forced)
