"""Getting this machine ready for the bundled model while the first visitor reads: one background process at app
start converts the bundled GGUF (studio.models.bundled) and, on a CPU, makes the once-per-machine fp32-vs-bf16
measurement (studio.models.precision_probe) a first run would otherwise make before its first step.

    start_in_background()   from the app's start-up; does nothing when both are done or STUDIO_PREPARE_AT_START=0
    running()               that process is still going
    prepare()               the same work in this process (python -m studio.models.prepare)

Both steps hold their own file locks, so a run started meanwhile waits for them instead of repeating them; the
measurement is the one the worker makes (same model, same thread count), so the worker finds it in the cache.
"""

from __future__ import annotations

import os
import subprocess
import sys

from studio import paths
from studio.models import bundled, precision_probe

ENV = "STUDIO_PREPARE_AT_START"
_started: subprocess.Popen | None = None  # this app's preparation process, if it started one


def needed() -> bool:
    """The bundled model is installed but not yet converted, or this CPU not yet measured with it."""
    if bundled.gguf_path() is None:
        return False
    if not bundled.is_converted():
        return True
    if precision_probe.quick_device().kind != "cpu":
        return False
    return precision_probe.cached_cpu_measurement(bundled.converted_dir(), precision_probe.default_threads()) is None


def start_in_background() -> subprocess.Popen | None:
    """Start `python -m studio.models.prepare` (its output in STUDIO_HOME/cache/prepare.log), unless turned off or
    there is nothing to do."""
    global _started
    if os.environ.get(ENV, "1").strip() == "0" or not needed():
        return None
    log_path = paths.home() / "cache" / "prepare.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        _started = subprocess.Popen(
            [sys.executable, "-m", "studio.models.prepare"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the app's terminal stops the app, not a conversion half-way
        )
    return _started


def running() -> bool:
    """This app's preparation is still going (for the footer)."""
    return _started is not None and _started.poll() is None


def prepare() -> None:
    model_dir = bundled.ensure_converted()
    if precision_probe.quick_device().kind == "cpu":
        measured = precision_probe.measure_cpu(model_dir, precision_probe.default_threads())
        print(f"[studio] this CPU: {measured.figures()}; measured in {measured.seconds:.0f} s", flush=True)


if __name__ == "__main__":
    prepare()
