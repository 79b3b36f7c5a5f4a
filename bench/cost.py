"""The cost model against the real worker: predicted vs measured time and peak memory (prints; asserts nothing).

    STUDIO_HOME=/tmp/h python bench/cost.py check                  # the table: predicted vs measured, 4 runs
    STUDIO_HOME=/tmp/h python bench/cost.py calibrate              # measure (each run twice), fit, print
    STUDIO_HOME=/tmp/h python bench/cost.py calibrate --write      # … and write studio/models/calibration.json
    STUDIO_HOME=/tmp/h python bench/cost.py calibrate --here       # … or STUDIO_HOME/calibration.json (this machine)
    options: --threads N  --only NAME[,NAME]  --repeat N  --bf16 | --fp32 (force the worker's precision; by default the
             worker's own automatic choice on this machine, measured once before the runs)

Each run is the real worker (the supervisor starts `python -m studio.train.worker`) on the bundled SmolLM2,
on 300 Alpaca-like rows (instruction / optional input / long-tailed answer, saved through the Data pipeline
so the manifest has the same token statistics the Data tab writes) or on the bundled sample. Measured:
wall time from launch to the end of the process, its parts from the run's events (start-up until the first
step, training steps, each evaluation, each checkpoint, the end), and the worker's peak RSS (VmHWM, polled).
Predicted: the Train tab's preflight for the same config, with the matmul peak measured just before.

Calibration fits, on its own runs (not the ones `check` reports): the CPU efficiency of training steps and
evaluations in the precision used, start-up / warm-up / checkpoint / end seconds, and the memory constants
(least squares over the runs' peaks minus their measured floor, weights and fixed part). The machine is
shared with other engineers: load averages are printed with every run, and timings under load are slower.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studio.models import cost  # noqa: E402 - after the sys.path entry above

SAMPLE = ROOT / "studio/data/samples/assistant_style.jsonl"
BUNDLED = "bundled:SmolLM2-135M-Instruct"

# Calibration runs: memory at different batch × length (b·s and b·s² apart), every part of the time.
# Few steps each: a step of 8 × 576 positions takes minutes on 2 shared cores.
CALIBRATION = {
    "cal-b8-576": dict(data="alpaca", batch_size=8, max_length=576, max_steps=3, eval_steps=3),
    "cal-b4-576": dict(data="alpaca", batch_size=4, max_length=576, max_steps=3, eval_steps=3),
    "cal-b16-256": dict(data="alpaca", batch_size=16, max_length=256, max_steps=2, eval_steps=2),
    "cal-b8-256": dict(data="alpaca", batch_size=8, max_length=256, max_steps=4, eval_steps=2),
    # A small step: without it the fixed part and the activations trade off freely in the fit, and small runs
    # were over-predicted by 21-26 %.
    "cal-b2-320": dict(data="alpaca", batch_size=2, max_length=320, max_steps=4, eval_steps=4),
    "cal-b8-576-checkpointing": dict(
        data="alpaca", batch_size=8, max_length=576, max_steps=2, eval_steps=2, gradient_checkpointing=True
    ),
}
# Benchmark runs: other batch sizes and lengths, with and without evaluation (automatic intervals: an
# evaluation and a checkpoint every ceil(steps / 5) steps), and a whole epoch of the sample.
CHECK = {
    "alpaca-b8-576-eval": dict(data="alpaca", batch_size=8, max_length=576, max_steps=5),
    "alpaca-b2-448-noeval": dict(data="alpaca-noval", batch_size=2, max_length=448, max_steps=10),
    "alpaca-b12-384-eval": dict(data="alpaca", batch_size=12, max_length=384, max_steps=3),
    "sample-b8-512-1epoch": dict(data="sample", batch_size=8, max_length=512, epochs=1.0),
    # What preflight switches on when nothing else fits: the memory of a checkpointed step.
    "alpaca-b8-576-checkpointing": dict(
        data="alpaca", batch_size=8, max_length=576, max_steps=2, eval_steps=2, gradient_checkpointing=True
    ),
}


# ---- data --------------------------------------------------------------------------------------------------
def alpaca_like_rows(words: list[str], n: int = 300, seed: int = 0) -> list[dict]:
    """Alpaca-shaped rows: a question, sometimes an input, an answer whose length is log-normal (median ~70
    words, a long tail) as in the Alpaca data; words drawn from the model's vocabulary."""
    rng = random.Random(seed)

    def sentences(count: int) -> str:
        out = []
        while count > 0:
            take = min(count, rng.randint(6, 16))
            text = " ".join(rng.choice(words) for _ in range(take))
            out.append(text[0].upper() + text[1:] + ".")
            count -= take
        return " ".join(out)

    rows = []
    for _ in range(n):
        answer = int(min(620, max(4, rng.lognormvariate(math.log(70), 0.9))))
        rows.append(
            {
                "instruction": sentences(rng.randint(6, 24)).rstrip(".") + "?",
                "input": sentences(rng.randint(8, 40)) if rng.random() < 0.4 else "",
                "output": sentences(answer),
            }
        )
    return rows


def make_datasets(model_dir: str, scratch: Path) -> dict[str, str]:
    """Saved dataset folders (with the Data tab's statistics): alpaca, alpaca without validation, sample."""
    from transformers import AutoTokenizer

    from studio.train.cli import save_with_data_pipeline

    vocab = AutoTokenizer.from_pretrained(model_dir).get_vocab()
    words = sorted(
        t[1:] for t in vocab if t.startswith("Ġ") and t[1:].isalpha() and t[1:].islower() and 3 <= len(t) - 1 <= 9
    )
    raw = scratch / "alpaca300.jsonl"
    raw.write_text("".join(json.dumps(row) + "\n" for row in alpaca_like_rows(words)))
    alpaca = save_with_data_pipeline(raw, 42, BUNDLED, None)
    no_validation = alpaca.with_name(alpaca.name + "-noval")
    shutil.copytree(alpaca, no_validation)
    (no_validation / "validation.jsonl").write_text("")
    manifest = json.loads((no_validation / "manifest.json").read_text())
    manifest["counts"]["validation"] = 0
    (no_validation / "manifest.json").write_text(json.dumps(manifest))
    sample = save_with_data_pipeline(SAMPLE, 42, BUNDLED, None)
    return {"alpaca": str(alpaca), "alpaca-noval": str(no_validation), "sample": str(sample)}


# ---- one measured run --------------------------------------------------------------------------------------
def _proc_memory_gib(pid: int) -> tuple[float, float] | None:
    """(VmHWM, VmRSS) of a process in GiB."""
    try:
        fields = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
        )
        return int(fields["VmHWM"].split()[0]) / 1024**2, int(fields["VmRSS"].split()[0]) / 1024**2
    except (OSError, KeyError, ValueError):
        return None


def _proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class Timeline:
    """CPU seconds of the worker against the wall clock (time.time(), as the worker stamps its events)."""

    def __init__(self):
        self.points: list[tuple[float, float]] = []

    def add(self, cpu: float | None) -> None:
        if cpu is not None:
            self.points.append((time.time(), cpu))

    def cpu_at(self, when: float) -> float:
        points = self.points
        if not points:
            return 0.0
        if when <= points[0][0]:
            return points[0][1]
        for (t0, c0), (t1, c1) in zip(points, points[1:]):
            if when <= t1:
                return c0 + (c1 - c0) * (when - t0) / (t1 - t0) if t1 > t0 else c1
        return points[-1][1]

    def cpu_between(self, start: float, end: float) -> float:
        return max(0.0, self.cpu_at(end) - self.cpu_at(start))


def measure(config) -> dict:
    """Run the worker; wall time and CPU seconds of each part (from the events' timestamps), peak RSS."""
    from studio.train import store, supervisor

    load_before = os.getloadavg()[0]
    launched = time.time()
    record = supervisor.launch(config, owner="bench")
    pid, peak, rss_at_start = None, 0.0, None
    timeline = Timeline()
    rss_points: list[tuple[float, float]] = []  # (time, RSS GiB): which part of the run the peak fell in
    while True:
        status = store.read_status(record.dir)
        pid = status.get("pid") or pid
        if pid:
            memory = _proc_memory_gib(pid)
            timeline.add(_proc_cpu_seconds(pid))
            if memory:
                peak = max(peak, memory[0])
                rss_points.append((time.time(), memory[1]))
                if rss_at_start is None and status.get("status") == "running":
                    rss_at_start = memory[1]
        state = store.get_run(record.run_id).state
        if state not in store.ACTIVE and state != "queued":
            break
        time.sleep(0.2)
    while pid and _proc_memory_gib(pid):  # the process still exiting: wait for it
        memory = _proc_memory_gib(pid)
        peak = max(peak, memory[0] if memory else 0.0)
        timeline.add(_proc_cpu_seconds(pid))
        time.sleep(0.05)
    ended = time.time()
    supervisor.reap()
    record = store.get_run(record.run_id)
    if record.state != "completed":
        raise SystemExit(f"run {record.state}: {record.status.get('error')} (see {record.dir}/log.txt)")
    events = store.read_events(record.dir)[0]
    began = next(e["time"] for e in events if e.get("type") == "status" and e.get("status") == "running")
    # Walk the loop's events: each log closes a step, each eval an evaluation, each checkpoint a save.
    parts = {"steps": [], "evals": [], "saves": []}
    kinds = {"log": "steps", "eval": "evals", "checkpoint": "saves"}
    mark = began
    ends: list[tuple[float, str]] = []  # (end time, part) of each stretch, for the RSS by part
    for event in events:
        kind = kinds.get(event.get("type"))
        if kind is None or event["time"] < began:
            continue
        ends.append((event["time"], kind))
        # A step's compute follows its padded positions (the worker's count), not its real tokens: the length-grouped
        # sampler puts the longest batch first, and per real token it costs the most.
        work = event.get("num_positions") or event.get("num_tokens")
        parts[kind].append((event["time"] - mark, timeline.cpu_between(mark, event["time"]), work))
        mark = event["time"]
    steps = parts["steps"]
    return {
        "rss_by_part": rss_by_part(rss_points, ends, began),
        "wall": ended - launched,
        "start": began - launched,
        "start_cpu": timeline.cpu_between(launched, began),
        "train": sum(w for w, _, _ in steps),
        "train_cpu": sum(c for _, c, _ in steps),
        "first_step": steps[0][:2] if steps else (0.0, 0.0),
        "step_positions": [
            (t - (steps[i - 1][2] if i else 0), w, c)
            for i, (w, c, t) in enumerate(steps)
            if isinstance(t, (int, float))
        ],
        "evals": [w for w, _, _ in parts["evals"]],
        "evals_cpu": [c for _, c, _ in parts["evals"]],
        "saves": [w for w, _, _ in parts["saves"]],
        "end": ended - mark,
        "peak_gib": peak,
        "rss_at_start_gib": rss_at_start,
        "steps": record.status.get("step"),
        "tokens": record.status.get("train_tokens"),
        "load": (load_before, os.getloadavg()[0]),
        "dir": str(record.dir),
        "precision": (record.status.get("facts") or {}).get("precision"),
    }


def rss_by_part(points: list[tuple[float, float]], ends: list[tuple[float, str]], began: float) -> dict[str, float]:
    """The highest RSS sampled in each part of the run (start-up, steps, evals, saves, the end; `ends`: when each
    stretch of the loop ended, in order), so a peak that differs between runs of one config can be placed."""
    highest: dict[str, float] = {}
    for when, rss in points:
        part = "start-up" if when < began else next((kind for end, kind in ends if when <= end), "end")
        highest[part] = max(highest.get(part, 0.0), rss)
    return highest


def import_floor_gib() -> float:
    """Peak RSS of a fresh process that imports what the worker imports (no model). Its own VmHWM: Linux carries
    ru_maxrss over from the parent through fork and exec, so after this process has held a model (the precision
    measurement) ru_maxrss would report this process's peak instead."""
    code = (
        "import torch, transformers, peft, trl, datasets; "
        "print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout.strip().splitlines()[-1]) / 1024**2  # kB


# ---- predictions -------------------------------------------------------------------------------------------
def run_config(name: str, spec: dict, datasets: dict, model_dir: str, threads: int, bf16: bool | None = None):
    from studio.train.config import RunConfig

    values = {key: value for key, value in spec.items() if key != "data"}
    return RunConfig(
        name=name, model=BUNDLED, dataset=datasets[spec["data"]], torch_threads=threads, bf16=bf16, **values
    )


def predict(config, peak_tflops: float):
    """(preflight report, workload) for a config, at a given matmul peak, with plenty of memory."""
    from studio.train import preflight

    report = preflight.run_preflight(
        config, runs=[], check_busy=False, cpu_gflops=peak_tflops * 1000, available_gib=1000.0
    )
    manifest = preflight.read_manifest(config.dataset)
    tokens = cost.TokenStats.from_stats(manifest.get("stats"))
    counts = manifest["counts"]
    passes = report.pass_plan  # the worker's pass plan (micro-batches), as preflight computed it
    checkpointing = bool(config.gradient_checkpointing or (passes and passes.gradient_checkpointing))
    load = config.workload(
        cost.model_shape(config.model),
        tokens,
        counts["train"],
        counts["validation"],
        dtype=report.dtype,
        gradient_checkpointing=checkpointing,
        max_tokens_per_pass=passes.max_tokens_per_pass if passes else None,
    )
    return report, load


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fmt_s(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


# ---- modes -------------------------------------------------------------------------------------------------
def resolve_precision(forced: bool | None, model_dir: str, threads: int):
    """(precision name, this CPU's measurement): the precision every run of this bench trains in — the forced one,
    or the worker's automatic choice on this machine — measured here once, before the runs, and cached in the
    scratch home, so preflight's prediction and the worker both read the same decision (the first run does not
    measure it in the middle of being timed)."""
    from studio.models import precision_probe

    # Measured even when the precision is forced: its timed steps set preflight's speed on this CPU, and the
    # calibration records how a run's speed compares with them (cpu_measured_step_efficiency).
    measurement = precision_probe.measure_cpu(model_dir, threads)
    print(f"  precision measurement: {measurement.figures()}", flush=True)
    precision = precision_probe.choose(
        forced, model_dir, threads, measure=lambda *_: measurement, log=lambda text: print(f"  {text}", flush=True)
    )
    print(f"precision: {precision.summary()}", flush=True)
    return precision.name, measurement


def run_all(
    specs: dict, datasets: dict, model_dir: str, threads: int, dtype: str, bf16: bool | None = None, repeat: int = 1
) -> list[dict]:
    """Each spec's run (the one with the highest peak RSS of `repeat` runs: the same run's peak falls in one of a
    few modes of glibc's heap — 3.8 or 4.7 GiB for fp32 at 8 × 576 — and preflight must not promise the lower)."""
    results = []
    for name, spec in specs.items():
        config = run_config(name, spec, datasets, model_dir, threads, bf16)
        peak = cost.measure_peak.__wrapped__(dtype, 1.0)  # measured now, as preflight would
        report, load = predict(config, peak)
        attempts = [measure(config.replace(name=f"{name}-{attempt}")) for attempt in range(repeat)]
        measured = max(attempts, key=lambda m: m["peak_gib"])
        if repeat > 1:
            peaks = ", ".join(f"{m['peak_gib']:.2f}" for m in attempts)
            print(f"  {name}: peak RSS of {repeat} runs {peaks} GiB (the highest kept)")
        if report.dtype != dtype or measured["precision"] != dtype:
            raise SystemExit(
                f"{name}: predicted in {report.dtype}, trained in {measured['precision']}, bench precision {dtype}"
            )
        peak_after = cost.measure_peak.__wrapped__(dtype, 1.0)
        results.append(
            {
                "name": name,
                "spec": spec,
                "config": config,
                "report": report,
                "load": load,
                "measured": measured,
                "peak_tflops": peak,
                "peak_after_tflops": peak_after,
            }
        )
        m = measured
        print(
            f"  {name}: wall {fmt_s(m['wall'])} (start {m['start']:.1f} s, steps {m['train']:.1f} s / "
            f"{m['train_cpu']:.0f} CPU-s, {len(m['evals'])} evals {sum(m['evals']):.1f} s / {sum(m['evals_cpu']):.0f} "
            f"CPU-s, {len(m['saves'])} saves {sum(m['saves']):.1f} s, end {m['end']:.1f} s); peak RSS "
            f"{m['peak_gib']:.2f} GiB (when training began {m['rss_at_start_gib'] or 0:.2f}); predicted "
            f"{fmt_s(report.seconds)}, {report.memory_needed_gib:.2f} GiB; matmul {peak * 1000:.0f} GFLOP/s before, "
            f"{peak_after * 1000:.0f} after; load "
            f"{m['load'][0]:.1f}→{m['load'][1]:.1f}",
            flush=True,
        )
    return results


def table(results: list[dict], threads: int) -> None:
    """Predicted vs measured: the whole run's wall time (preflight at the matmul peak measured just before), the
    compute in CPU-seconds (preflight's warm-up, steps and evaluations on `threads` busy cores vs the worker's CPU
    time in them: what the model predicts, apart from how busy the cores were), and peak memory."""
    print(
        "\n| run | steps | batch × max length | evaluations | predicted time | measured time | error | "
        "compute CPU-s predicted / measured | error | predicted peak | measured peak RSS | error | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    errors = {"time": [], "cpu": [], "memory": []}
    for r in results:
        report, m = r["report"], r["measured"]
        predicted_cpu = sum(report.time_parts.get(part, 0.0) for part in ("warmup", "train", "evaluation")) * threads
        measured_cpu = m["train_cpu"] + sum(m["evals_cpu"])
        errors["time"].append(report.seconds / m["wall"] - 1)
        errors["cpu"].append(predicted_cpu / measured_cpu - 1)
        errors["memory"].append(report.memory_needed_gib / m["peak_gib"] - 1)
        print(
            f"| {r['name']} | {report.steps} | {r['config'].batch_size} × {r['config'].max_length} | "
            f"{report.evaluations} | {fmt_s(report.seconds)} | {fmt_s(m['wall'])} | {errors['time'][-1]:+.0%} | "
            f"{predicted_cpu:.0f} / {measured_cpu:.0f} | {errors['cpu'][-1]:+.0%} | "
            f"{report.memory_needed_gib:.2f} GiB | {m['peak_gib']:.2f} GiB | {errors['memory'][-1]:+.0%} | "
            f"{m['load'][0]:.1f}→{m['load'][1]:.1f} |"
        )
    print(
        f"\nworst error: wall time {max(map(abs, errors['time'])):.0%}, compute CPU-seconds "
        f"{max(map(abs, errors['cpu'])):.0%}, peak memory {max(map(abs, errors['memory'])):.0%} (target ±15 %)"
    )
    print("\npredicted time parts vs measured (seconds of wall time):")
    for r in results:
        p, m = r["report"].time_parts, r["measured"]
        print(
            f"  {r['name']}: start {p['start']:.0f}/{m['start']:.0f}, steps "
            f"{p['warmup'] + p['train']:.0f}/{m['train']:.0f} (first step's extra "
            f"{p['warmup']:.1f}/{first_step_extra(m)[0]:.1f}), evaluations "
            f"{p['evaluation']:.0f}/{sum(m['evals']):.0f}, checkpoints {p['checkpoints']:.0f}/{sum(m['saves']):.0f}, "
            f"end {p['end']:.0f}/{m['end']:.0f}"
        )
    print("\nhighest RSS sampled (every 0.2 s) in each part of the run, GiB:")
    for r in results:
        parts = ", ".join(f"{part} {gib:.2f}" for part, gib in r["measured"]["rss_by_part"].items())
        print(f"  {r['name']}: {parts}")


def first_step_extra(m: dict) -> tuple[float, float]:
    """(wall seconds, CPU-seconds) the first step took beyond the per-position rate of the steps after it."""
    first_positions, first_wall, first_cpu = m["step_positions"][0]
    later = m["step_positions"][1:]
    positions = max(1, sum(t for t, _, _ in later))
    wall = first_wall - first_positions * sum(w for _, w, _ in later) / positions
    cpu = first_cpu - first_positions * sum(c for _, _, c in later) / positions
    return max(0.0, wall), max(0.0, cpu)


def compute_flops(load: cost.Workload) -> tuple[float, float]:
    """(training FLOPs, FLOPs of all evaluations) the cost model counts for a workload."""
    shape = load.shape
    adapter = cost.adapter_params(shape, load.technique, load.lora_r)
    per_position = cost.train_flops_per_token(
        shape,
        load.technique,
        adapter=adapter,
        length=load.attention_length,
        scored_fraction=load.scored_tokens / load.train_positions,
        gradient_checkpointing=load.gradient_checkpointing,
    )
    evals = 0.0
    if load.evaluations:
        evals = (
            cost.forward_flops_per_token(shape, load.attention_length, load.eval_scored / load.eval_positions)
            * load.eval_positions
            * load.evaluations
        )
    return per_position * load.train_positions, evals


def best_peak(result: dict) -> float:
    """FLOP/s: the best matmul peak measured around one run (before and after it)."""
    return max(result["peak_tflops"], result["peak_after_tflops"]) * 1e12


def fit(results: list[dict], floor: float, threads: int, measurement=None) -> dict:
    """Calibration constants from measured runs (see the module docstring).

    Times are fitted in CPU-seconds, hardly changed by other work on the cores (a quiet machine runs them on
    `threads` cores at once), against the best matmul peak this CPU has shown with `threads` threads (what preflight
    prices a run with; `cost.remembered_cpu_peak`). Not against matmul FLOPs per CPU-second × threads: on a 2-core
    AMX Xeon a bf16 matmul ran at 1,545 GFLOP/s per CPU-second and at 1,553 GFLOP/s on both threads (the second
    added nothing), so that scale priced bf16 runs at half their speed. `measurement`: this CPU's precision
    measurement (its timed LoRA steps), on the same scale as the runs' efficiency."""
    import numpy as np

    shape = cost.BUNDLED_SHAPE
    dtype = results[0]["report"].dtype
    step_rate = cost.measured_step_rate(shape, dtype, measurement)
    peak = statistics.median(best_peak(r) for r in results)
    step_efficiency = {dtype: round(step_rate / peak, 4)} if step_rate else {}
    print(
        f"  the precision measurement's {dtype} step: "
        + (f"{step_rate / 1e9:.1f} GFLOP/s" if step_rate else "not timed quietly (no step efficiency recorded)")
    )
    train_flops = eval_flops = train_cpu = eval_cpu = 0.0
    warmups, starts, fixed, rows, targets, checkpointed = [], [], [], [], [], []
    for r in results:
        load, m = r["load"], r["measured"]
        per_cpu = best_peak(r) / threads  # each busy thread's share
        flops, evals = compute_flops(load)
        # The first step's extra CPU time: beyond the CPU-seconds per token of the steps after it.
        warmup_cpu = first_step_extra(m)[1]
        warmups.append(warmup_cpu / threads)
        later = m["step_positions"][1:]
        print(
            f"  {r['name']}: first step's extra {warmup_cpu / threads:.1f} s; a later step "
            f"{sum(w for _, w, _ in later) / max(1, len(later)):.1f} s"
        )
        train_flops += flops / per_cpu
        train_cpu += m["train_cpu"] - warmup_cpu
        if evals and m["evals_cpu"]:
            eval_flops += evals / load.evaluations * len(m["evals_cpu"]) / per_cpu
            eval_cpu += sum(m["evals_cpu"])
        starts.append(min(m["start"], m["start_cpu"]))  # imports and loading: mostly one core
        weights = shape.params * cost.DTYPE_BYTES[dtype] / cost.GIB
        adapter_gib = cost.ADAPTER_BYTES_PER_PARAM * cost.adapter_params(shape, load.technique, load.lora_r) / cost.GIB
        fixed.append((m["rss_at_start_gib"] or 0) - floor - weights - adapter_gib)
        # The activations of one pass: the worker runs a batch above its plan's token limit as micro-batches.
        positions = cost.rows_in_pass(load.micro_batch, load.longest, load.max_tokens_per_pass) * load.longest
        per_layer = 7 * shape.hidden + 2 * shape.kv + 4 * shape.intermediate
        width = cost.DTYPE_BYTES[dtype]
        # The s×s attention term is left out: torch's CPU attention kernel keeps no scores (counted with
        # saved-tensor hooks: what autograd saves grows with b·s, not b·s²).
        row = [
            positions * shape.layers * per_layer * width / cost.GIB,
            min(cost.HEAD_TOKEN_CHUNK, positions * load.scored_fraction_peak)
            * cost.HEAD_VOCAB_CHUNK
            * width
            / cost.GIB,
        ]
        target = m["peak_gib"] - floor - weights - adapter_gib
        if load.gradient_checkpointing:
            checkpointed.append((row, target))
            continue
        rows.append(row)
        targets.append(target)
    fixed_gib = max(0.0, statistics.median(fixed))
    a = np.array(rows)
    b = np.array(targets) - fixed_gib
    active = [0, 1]
    while True:  # non-negative least squares by dropping negative terms
        solution, *_ = np.linalg.lstsq(a[:, active], b, rcond=None)
        if (solution >= 0).all() or len(active) == 1:
            break
        active = [col for col, value in zip(active, solution) if value >= 0]
    factors = [0.0, 0.0]
    for col, value in zip(active, solution):
        factors[col] = max(0.0, float(value))
    residuals = a @ np.array(factors) + fixed_gib - np.array(targets)
    print("memory fit residuals (GiB):", [round(float(x), 2) for x in residuals])
    # Checkpointed runs: their activation part over what the same batch needs without checkpointing.
    ratios = [(target - fixed_gib - row[1] * factors[1]) / (row[0] * factors[0]) for row, target in checkpointed]
    saves = [s for r in results for s in r["measured"]["saves"]]
    return {
        "cpu_train_efficiency": {dtype: round(train_flops / train_cpu, 4)},
        "cpu_eval_efficiency": {dtype: round(eval_flops / eval_cpu, 4)} if eval_cpu else {},
        "cpu_measured_step_efficiency": step_efficiency,
        "reference_peak_gflops": {dtype: round(peak / 1e9, 1)},
        "start_seconds": round(statistics.median(starts), 2),
        "warmup_seconds": {dtype: round(statistics.median(warmups), 2)},
        "save_seconds": round(statistics.median(saves), 2) if saves else 1.0,
        "end_seconds": round(statistics.median(r["measured"]["end"] for r in results), 2),
        "import_floor_gib": round(floor, 3),
        "fixed_gib": round(fixed_gib, 3),
        "activation_factor": {dtype: round(factors[0], 4)},
        "attention_factor": {dtype: 0.0},
        **({"checkpoint_ratio": {dtype: round(statistics.median(ratios), 3)}} if ratios else {}),
        "head_buffers": {dtype: round(factors[1], 3)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["check", "calibrate"])
    parser.add_argument("--write", action="store_true", help="calibrate: write studio/models/calibration.json")
    parser.add_argument("--here", action="store_true", help="calibrate: write STUDIO_HOME/calibration.json")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--only", help="comma-separated run names")
    parser.add_argument(
        "--repeat", type=int, default=None, help="runs of each config, the highest peak kept (calibrate: 2, check: 1)"
    )
    forced = parser.add_mutually_exclusive_group()
    forced.add_argument(
        "--bf16", dest="bf16", action="store_true", default=None, help="force bf16 (the worker's --bf16)"
    )
    forced.add_argument("--fp32", dest="bf16", action="store_false", help="force fp32 (the worker's --no-bf16)")
    opts = parser.parse_args()
    opts.repeat = opts.repeat or (2 if opts.mode == "calibrate" else 1)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(opts.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(opts.threads)
    from studio.models import bundled, catalog

    model_dir = catalog.resolve(BUNDLED)  # the caller's STUDIO_HOME holds the converted model
    home = Path(os.environ.get("STUDIO_HOME", "studio_data")).resolve()
    print(
        f"machine: {cpu_name()}, {len(os.sched_getaffinity(0))} cores, "
        f"torch {torch.__version__}, {opts.threads} threads; load average {os.getloadavg()[0]:.1f} "
        "(shared with other engineers: timings under load are slower)"
    )
    specs = CALIBRATION if opts.mode == "calibrate" else CHECK
    if opts.only:
        specs = {name: spec for name, spec in specs.items() if name in opts.only.split(",")}
    with tempfile.TemporaryDirectory(prefix="studio-bench-cost-") as scratch_name:
        scratch = Path(scratch_name)
        models = scratch / "home" / "models"
        models.mkdir(parents=True)
        (models / bundled.FOLDER_NAME).symlink_to(Path(model_dir))
        os.environ["STUDIO_HOME"] = str(scratch / "home")  # bench runs never land in the user's run history
        if opts.mode == "check" and (home / cost.CALIBRATION_FILE).is_file():
            shutil.copy(home / cost.CALIBRATION_FILE, scratch / "home" / cost.CALIBRATION_FILE)
        cal = cost.calibration()  # read from disk at every call: the scratch home's copy from here on
        print(f"calibration in use: {cal.source} ({cal.machine}, {cal.date})")
        datasets = make_datasets(model_dir, scratch)
        dtype, measurement = resolve_precision(opts.bf16, model_dir, opts.threads)
        results = run_all(specs, datasets, model_dir, opts.threads, dtype, opts.bf16, opts.repeat)
        table(results, opts.threads)
        if opts.mode == "calibrate":
            floor = import_floor_gib()
            constants = fit(results, floor, opts.threads, measurement)
            print(f"\nimport floor {floor:.3f} GiB")
            print(json.dumps(constants, indent=1))
            document = {
                "machine": f"{len(os.sched_getaffinity(0))}-core {cpu_name()} (torch {torch.__version__}, "
                f"{opts.threads} threads)",
                "date": dt.date.today().isoformat(),
                "method": (
                    "bench/cost.py calibrate: the worker on the bundled SmolLM2 and 300 Alpaca-like rows, "
                    + ", ".join(
                        f"{name} ({spec['batch_size']}×{spec['max_length']}, {spec.get('max_steps')} steps)"
                        for name, spec in specs.items()
                    )
                    + f", each run {opts.repeat} times (the one with the highest peak RSS kept)"
                    + "; efficiency = the cost model's FLOPs / the worker's CPU-seconds in training steps (or "
                    "evaluations, from the events' timestamps) × threads / the best torch matmul FLOP/s this CPU "
                    "showed on those threads (before and after each run), so other work on the cores hardly moves "
                    "it; measured step efficiency = the precision measurement's fastest quiet LoRA step (4 × 128 "
                    "tokens) in FLOP/s / that matmul peak; start-up, "
                    "checkpoint and end seconds: medians; memory constants by least squares on peak RSS "
                    "(VmHWM) minus the import floor, weights, adapter and the RSS when training began"
                ),
                f"load_average_{results[0]['report'].dtype}": [round(r["measured"]["load"][0], 1) for r in results],
                f"runs_{results[0]['report'].dtype}": [
                    {
                        "name": r["name"],
                        "wall_s": round(r["measured"]["wall"], 1),
                        "peak_rss_gib": round(r["measured"]["peak_gib"], 3),
                        "matmul_gflops_before_after": [
                            round(r["peak_tflops"] * 1000, 1),
                            round(r["peak_after_tflops"] * 1000, 1),
                        ],
                    }
                    for r in results
                ],
                **constants,
            }
            target = None
            if opts.here:
                target = home / cost.CALIBRATION_FILE
            elif opts.write:
                target = cost.packaged_calibration_path()
            if target:
                # Another precision's constants measured earlier stay: this run adds its own per-precision entries
                # and evidence; the precision-free constants (seconds, floor) come from the fp32 calibration.
                try:
                    previous = json.loads(target.read_text())
                except (OSError, ValueError):
                    previous = {}
                dtype = results[0]["report"].dtype
                if dtype != "fp32" and previous:
                    keep = {
                        key: value
                        for key, value in previous.items()
                        if not isinstance(value, dict) and not key.startswith(("runs_", "load_average_"))
                    }
                    document = {
                        **document,
                        **keep,
                        "method": previous.get("method", "") + f" | {dtype} "
                        f"({document['date']}): " + document["method"],
                    }
                for key, value in document.items():
                    if isinstance(value, dict) and isinstance(previous.get(key), dict):
                        document[key] = {**previous[key], **value}
                document = {
                    **{key: value for key, value in previous.items() if key.startswith(("runs_", "load_average_"))},
                    **document,
                }
                target.write_text(json.dumps(document, indent=1) + "\n")
                print(f"written to {target}")


if __name__ == "__main__":
    main()
