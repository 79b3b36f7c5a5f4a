"""Measuring a CPU's bf16 once, caching it per machine and model shape, and the worker's decision from it."""

import json

import pytest

from studio.models import precision_probe
from studio.models.precision import CpuMeasurement, Device


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _model_folder(tmp_path, hidden=64, name="m"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "hidden_size": hidden,
                "num_hidden_layers": 2,
                "intermediate_size": 4 * hidden,
                "vocab_size": 100,
            }
        )
    )
    return folder


FAST = CpuMeasurement(1.0, 0.5, (2.0,), (2.001,), 0.9999, 512, 2, "test CPU", 3.0)


def test_a_measurement_is_stored_once_and_found_again_by_machine_shape_and_threads(home, tmp_path, monkeypatch):
    folder = _model_folder(tmp_path)
    assert precision_probe.cached_cpu_measurement(folder, 2) is None
    precision_probe._store(folder, 2, FAST)
    assert precision_probe.cached_cpu_measurement(folder, 2) == FAST
    assert precision_probe.cached_cpu_measurement(folder, 1) is None  # another thread count is another measurement
    other_shape = _model_folder(tmp_path, hidden=128, name="bigger")
    assert precision_probe.cached_cpu_measurement(other_shape, 2) is None
    same_shape_elsewhere = _model_folder(tmp_path, name="copy")
    assert precision_probe.cached_cpu_measurement(same_shape_elsewhere, 2) == FAST  # keyed by shape, not by path
    monkeypatch.setattr(precision_probe, "cpu_name", lambda: "another CPU")
    assert precision_probe.cached_cpu_measurement(folder, 2) is None


def test_a_broken_cache_file_means_measure_again(home, tmp_path):
    folder = _model_folder(tmp_path)
    precision_probe.cache_path().parent.mkdir(parents=True, exist_ok=True)
    precision_probe.cache_path().write_text("{not json")
    assert precision_probe.cached_cpu_measurement(folder, 2) is None
    precision_probe._store(folder, 2, FAST)  # and the next measurement replaces it
    assert precision_probe.cached_cpu_measurement(folder, 2) == FAST


def test_the_worker_measures_on_a_cpu_once_then_reads_the_cache(home, tmp_path, monkeypatch):
    folder = _model_folder(tmp_path)
    monkeypatch.setattr(precision_probe, "probe_device", lambda: Device("cpu", "test CPU"))
    calls, lines = [], []

    def measure(model_dir, threads):
        calls.append((str(model_dir), threads))
        precision_probe._store(model_dir, threads, FAST)
        return FAST

    first = precision_probe.choose(None, folder, 2, measure=measure, log=lines.append)
    second = precision_probe.choose(None, folder, 2, measure=measure, log=lines.append)
    assert calls == [(str(folder), 2)] and len(lines) == 1 and "measuring" in lines[0]
    assert first.name == second.name == "bf16" and second.measured == FAST


def test_a_forced_choice_is_never_measured(home, tmp_path, monkeypatch):
    folder = _model_folder(tmp_path)
    monkeypatch.setattr(precision_probe, "probe_device", lambda: Device("cpu", "test CPU"))

    def measure(model_dir, threads):
        raise AssertionError("a forced precision must not cost a measurement")

    assert precision_probe.choose(False, folder, 2, measure=measure).name == "fp32"
    assert precision_probe.choose(True, folder, 2, measure=measure).name == "bf16"


def test_a_gpu_is_decided_by_its_capability_without_measuring(home, tmp_path, monkeypatch):
    monkeypatch.setattr(precision_probe, "probe_device", lambda: Device("cuda", "Tesla T4", (7, 5), 16, True))
    choice = precision_probe.choose(None, _model_folder(tmp_path), 1, measure=lambda *a: pytest.fail("measured a GPU"))
    assert choice.name == "fp16" and choice.device == "cuda"


def test_quick_device_reads_nvidia_smi_without_torch(monkeypatch):
    import subprocess

    monkeypatch.setattr(precision_probe.shutil, "which", lambda name: "/usr/bin/nvidia-smi")

    def fake_run(command, **kwargs):
        assert "compute_cap" in " ".join(command)
        return subprocess.CompletedProcess(command, 0, stdout="Tesla T4, 15360, 7.5\nTesla T4, 15360, 7.5\n")

    monkeypatch.setattr(precision_probe.subprocess, "run", fake_run)
    assert precision_probe.quick_device() == Device("cuda", "Tesla T4", (7, 5), 15.0)
    monkeypatch.setattr(precision_probe.shutil, "which", lambda name: None)
    assert precision_probe.quick_device().kind == "cpu"


WITH_BF16_INSTRUCTIONS = (60.0, 90.0)  # matmul GFLOP/s (fp32, bf16) where bf16 is native: the steps are timed
EMULATED_BF16 = (67.0, 1.1)  # an AMD EPYC with AVX2 only, measured


def test_measuring_the_tiny_model_compares_the_same_first_step_in_both_precisions(home, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(precision_probe, "matmul_speeds", lambda model_dir: WITH_BF16_INSTRUCTIONS)
    monkeypatch.setattr(precision_probe, "MEASURE_LENGTH", 32)  # a few tenths of a second on the tiny model
    monkeypatch.setattr(precision_probe, "_cpu_seconds_of_others", lambda: 0.0)  # a quiet machine (see below)
    measured = precision_probe.measure_cpu(tiny_model_dir, 1)
    assert len(measured.fp32_losses) == len(measured.bf16_losses) == precision_probe.MEASURE_STEPS
    assert measured.fp32_step_s > 0 and measured.bf16_step_s > 0 and measured.threads == 1
    assert measured.loss_gap < 0.02 and measured.gradient_cosine > 0.99  # bf16 is sound here, whatever its speed
    assert measured.fp32_losses[-1] < measured.fp32_losses[0]  # the steps really train
    assert precision_probe.cached_cpu_measurement(tiny_model_dir, 1) == measured


def test_steps_taken_while_other_work_has_the_cores_do_not_count(home, tiny_model_dir, monkeypatch):
    """Another process using the cores during every step: the probe keeps taking turns up to its limit, then uses
    what it has once and does not cache it, and the decision says so."""
    monkeypatch.setattr(precision_probe, "matmul_speeds", lambda model_dir: WITH_BF16_INSTRUCTIONS)
    monkeypatch.setattr(precision_probe, "MEASURE_LENGTH", 32)
    clock = iter(range(0, 10_000, 5))  # others gain 5 CPU-seconds between any two readings: always busy
    monkeypatch.setattr(precision_probe, "_cpu_seconds_of_others", lambda: float(next(clock)))
    measured = precision_probe.measure_cpu(tiny_model_dir, 1)
    steps = 1 + precision_probe.MAX_TIMED_STEPS
    assert measured.busy and len(measured.fp32_losses) == len(measured.bf16_losses) == steps
    assert precision_probe.cached_cpu_measurement(tiny_model_dir, 1) is None  # the next run measures again
    assert precision_probe.cached_cpu_measurement(tiny_model_dir, 1, busy_too=True) == measured  # (for a waiter)
    decision = precision_probe.decide(Device("cpu"), None, measured)
    assert "measured again next run" in decision.reason


def test_a_cpu_that_emulates_bf16_is_told_by_its_matmuls_without_timing_a_step(home, tiny_model_dir, monkeypatch):
    """Where bf16 matmuls run at a fiftieth of fp32 (no bf16 instructions), timing bf16 training steps cost a first
    run about 6 minutes on the bundled model; the matmul shows it in a second."""
    monkeypatch.setattr(precision_probe, "matmul_speeds", lambda model_dir: EMULATED_BF16)
    monkeypatch.setattr(precision_probe, "_cpu_seconds_of_others", lambda: 0.0)  # a quiet machine

    def no_steps(*args, **kwargs):
        raise AssertionError("no training step is timed once the matmuls show bf16 emulated")

    monkeypatch.setattr(precision_probe, "_Steps", no_steps)
    measured = precision_probe.measure_cpu(tiny_model_dir, 1)
    assert not measured.steps_timed and measured.matmul_ratio == pytest.approx(1.1 / 67.0)
    assert precision_probe.cached_cpu_measurement(tiny_model_dir, 1) == measured  # once per machine, like the steps
    choice = precision_probe.decide(Device("cpu"), None, measured)
    assert (
        choice.name == "fp32"
        and "emulates bf16" in choice.reason
        and "1.1 GFLOP/s against fp32's 67.0" in choice.reason
    )
    assert choice.facts()["precision_measured"] == {
        "matmul_fp32_gflops": 67.0,
        "matmul_bf16_gflops": 1.1,
        "steps_timed": False,
        "threads": 1,
    }
    forced = precision_probe.decide(Device("cpu"), True, measured)
    assert forced.name == "bf16" and "emulates bf16" in forced.reason  # --bf16 still forces, with the figures


def test_a_matmul_look_taken_while_others_have_the_cores_rules_bf16_out_for_this_run_only(
    home, tiny_model_dir, monkeypatch
):
    """A busy look can read bf16 far below its speed (35 against 110 GFLOP/s on an AMX Xeon that reads 1,400
    against 330 when quiet): it looks again, and a look that was never quiet decides this run only."""
    looks = []

    def busy_look(model_dir):
        looks.append(model_dir)
        return EMULATED_BF16

    monkeypatch.setattr(precision_probe, "matmul_speeds", busy_look)
    clock = iter(range(0, 10_000, 5))  # others gain 5 CPU-seconds between any two readings: always busy
    monkeypatch.setattr(precision_probe, "_cpu_seconds_of_others", lambda: float(next(clock)))
    monkeypatch.setattr(precision_probe, "_Steps", lambda *args, **kwargs: pytest.fail("no step is timed"))
    measured = precision_probe.measure_cpu(tiny_model_dir, 1)
    assert len(looks) == precision_probe.SCREEN_TRIES
    assert measured.busy and not measured.steps_timed
    assert precision_probe.cached_cpu_measurement(tiny_model_dir, 1) is None  # the next run looks again
    assert precision_probe.decide(Device("cpu"), None, measured).name == "fp32"


def test_the_matmul_look_measures_both_precisions_on_the_models_widths(tiny_model_dir):
    fp32, bf16 = precision_probe.matmul_speeds(tiny_model_dir)
    assert fp32 > 0 and bf16 > 0


def test_the_cpu_used_by_other_processes_is_seen():
    import subprocess
    import sys

    before = precision_probe._cpu_seconds_of_others()
    spin = "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"
    subprocess.run([sys.executable, "-c", spin], check=True)
    after = precision_probe._cpu_seconds_of_others()
    assert after - before >= 1.0  # the other process's 1.5 s of CPU (minus start-up and rounding)
