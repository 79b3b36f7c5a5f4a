"""Preparing the machine at app start: the bundled model converted and this CPU measured, in a background process,
one measurement at a time."""

import dataclasses
import json
import threading
import time

import pytest

from studio.models import bundled, precision, precision_probe, prepare
from studio.ui import model_status


def _measurement(seconds: float) -> precision.CpuMeasurement:
    return precision.CpuMeasurement(
        fp32_step_s=2.0,
        bf16_step_s=1.0,
        fp32_losses=(3.0,),
        bf16_losses=(3.0,),
        gradient_cosine=1.0,
        tokens_per_step=512,
        threads=2,
        machine="test CPU",
        seconds=seconds,
    )


@pytest.mark.parametrize("busy", [False, True])
def test_a_second_measurement_waits_for_the_first_and_uses_it(cpu_not_measured, tiny_model_dir, monkeypatch, busy):
    """Even one made on a busy machine: a second would be made on the same busy machine."""
    made = []

    def slow_measurement(model_dir, threads):
        made.append(threads)
        time.sleep(2.0)
        measured = dataclasses.replace(_measurement(2.0), busy=busy)
        precision_probe._store(model_dir, threads, measured)
        return measured

    monkeypatch.setattr(precision_probe, "_measure_cpu", slow_measurement)
    results = []
    workers = [
        threading.Thread(target=lambda: results.append(precision_probe.measure_cpu(tiny_model_dir, 2)))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert made == [2] and len(results) == 2 and results[0] == results[1]


def test_nothing_starts_when_turned_off_or_already_done(cpu_not_measured, monkeypatch):
    monkeypatch.setenv(prepare.ENV, "0")
    monkeypatch.setattr(prepare, "needed", lambda: True)
    assert prepare.start_in_background() is None
    monkeypatch.delenv(prepare.ENV)
    monkeypatch.setattr(prepare, "needed", lambda: False)
    assert prepare.start_in_background() is None


@pytest.mark.slow
def test_the_app_start_measures_this_cpu_in_the_background(bundled_model_dir, studio_home, monkeypatch):
    """The real process, on the session's home: afterwards a run of the bundled model finds its measurement."""
    threads = precision_probe.default_threads()
    key = precision_probe.cache_key(bundled_model_dir, threads)
    cache = precision_probe.cache_path()
    if cache.is_file():  # a measurement earlier tests made: forget it, so there is something to prepare
        data = json.loads(cache.read_text())
        data.pop(key, None)
        cache.write_text(json.dumps(data))
    monkeypatch.delenv(prepare.ENV)
    assert prepare.needed()
    process = prepare.start_in_background()
    assert process is not None and prepare.running()
    footer = model_status.refresh()
    assert "being prepared in the background" in footer["status"] and footer["timer"].active  # it keeps looking
    assert process.wait(timeout=300) == 0
    footer = model_status.refresh()
    assert not prepare.running() and "ready" in footer["status"] and not footer["timer"].active
    measured = precision_probe.cached_cpu_measurement(bundled_model_dir, threads)
    assert measured is not None and measured.threads == threads and measured.matmul_fp32_gflops > 0
    assert (measured.fp32_step_s > 0) == measured.steps_timed  # steps timed unless this CPU emulates bf16
    assert f"this CPU: {measured.figures()}" in (studio_home / "cache" / "prepare.log").read_text()
    assert not prepare.needed() and bundled.is_converted()


def test_preflight_says_a_measurement_is_going_on(cpu_not_measured, tiny_model_dir):
    """While another process measures, the expected precision says so (and the run will wait for it)."""
    from studio import paths

    assert "not measured yet" in precision_probe.expected(None, tiny_model_dir, 2).reason
    with paths.file_lock(precision_probe.measurement_lock()):
        waiting = threading.Event()
        seen = []

        def ask():  # another thread opens its own descriptor, as another process would
            seen.append(precision_probe.expected(None, tiny_model_dir, 2).reason)
            waiting.set()

        threading.Thread(target=ask).start()
        assert waiting.wait(10)
    assert "being measured now" in seen[0]
    assert not precision_probe.measuring_now()
