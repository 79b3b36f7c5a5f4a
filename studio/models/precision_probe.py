"""Probing the device for the precision decision (studio.models.precision), and measuring a CPU's bf16.

    quick_device()              the device without importing torch (nvidia-smi for GPUs): preflight, Decide
    probe_device()              the device as torch sees it: the worker
    cached_cpu_measurement(m)   the measurement for model folder m on this machine, or None (no torch)
    default_threads(p)          a training process's threads when p processes share the cores (what the worker uses)
    measure_cpu(m, threads)     time fp32 vs bf16 LoRA training steps on m's own shapes; cached under STUDIO_HOME
    choose(forced, m, threads)  the worker's whole decision: probe, measure once if needed, decide
    expected(forced, m, threads) the same decision without torch and without measuring
    expected_for_model(forced, ref, threads)  the same for a model as the Train form names it (preflight, Decide)

The CPU measurement first times a matmul of the model's widths in both precisions (about a second): a CPU that
emulates bf16 (no bf16 instructions) is decided there, fp32, with no training step timed (only by a look taken while
other processes left the cores alone: a busy one decides the run that made it, and the next run looks again).
Otherwise it trains the real model with a rank-8 LoRA on all linear layers for a few steps on a fixed English text,
in fp32 and with the frozen weights in bf16 (LoRA weights in fp32, autocast to bf16 — and the same leaner step
pieces (studio.models.kernels) — exactly what a bf16 run does), taking turns step by step, on the same batch from
the same starting adapter. It times the steps after the first (warm-up), and compares the two precisions' first loss
and gradient (same weights, same batch), so the decision gets both the speed-up and the quality gap. It costs a few
seconds, once per machine, model shape and thread count: the result is cached in STUDIO_HOME/cache/precision.json,
keyed by the CPU's name and bf16-related flags, torch's version, the thread count and the model's shape (its
config's sizes)."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

from studio import paths
from studio.errors import StudioError
from studio.models import bundled, catalog, hardware, kernels, loading
from studio.models.precision import CpuMeasurement, Device, Precision, decide

CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")
SHAPE_KEYS = (
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
    "tie_word_embeddings",
)
# Part of the cache key: raised when the step a run takes changes (studio.models.kernels), so that machines measure
# again instead of deciding from the old step's speed. 2: bf16 attention as plain matmuls (cpu_bf16_attention).
MEASURED_STEP_VERSION = 2
# The measured step: 4 rows of 128 tokens (about one default batch of the bundled sample's rows), the second half of
# each row labelled (an answer after its prompt), 1 warm-up step + 2 timed steps per precision, taking turns.
MEASURE_BATCH, MEASURE_LENGTH, MEASURE_STEPS = 4, 128, 3
# A timed step counts only when other processes used at most this share of the measured threads meanwhile (from
# /proc/stat): a lint or a browser on the same 2 cores adds about the same seconds to both precisions' steps and
# squeezed a 1.7x speed-up to 1.07x in a walk. Steps go on, taking turns, until both precisions have
# MEASURE_STEPS - 1 quiet ones, or MAX_TIMED_STEPS each, or MAX_EXTRA_SECONDS; a measurement without them is used
# by the run that made it (or waited for it) and measured again by the next one.
QUIET_OTHERS_SHARE = 0.15
MAX_TIMED_STEPS = 8
MAX_EXTRA_SECONDS = 60  # ... and no more turns after this long: a run waiting on a busy machine is not kept waiting
MEASURE_LEARNING_RATE = 1e-3
# Before any training step, a first look at the matmuls that dominate a step, on the model's own widths (rows of
# SCREEN_ROWS tokens × hidden size @ hidden × MLP size), SCREEN_SECONDS per precision. A CPU without bf16
# instructions (no AVX512_BF16, no AMX) emulates bf16: measured on a 2-core AMD EPYC with AVX2 only, 1.1 against
# 67 GFLOP/s, and a bf16 training step of the bundled model took 93 s against fp32's 3.8 s, so timing the steps cost
# every first run about 6 minutes to learn what the matmul shows in a second. Below SCREEN_MIN_RATIO no bf16 step
# can come near CPU_MIN_SPEEDUP (matmuls are three quarters of a fp32 step: at half fp32's speed they alone would
# take 1.5x fp32's whole step), and none is timed. CPUs with bf16 instructions measured 2.1x (AMD EPYC with
# AVX512_BF16) and 3.6x (Intel Xeon with AMX) fp32's matmul speed, far from the line, and go on to the steps.
SCREEN_ROWS = 128
SCREEN_SECONDS = 0.3
SCREEN_MIN_RATIO = 0.5
SCREEN_TRIES = 3  # looks while other processes have the cores, before a busy one is kept (flagged busy)
TEXT = (
    "A river starts as rain on a hillside. The water runs down through small streams, which join into larger ones, "
    "and after many miles they meet the sea. Along the way the river carries sand and stones, cuts valleys into "
    "the land and feeds the fields on its banks. People have built towns beside rivers for thousands of years, "
    "because the water gave them something to drink, a way to travel and fish to eat. Today engineers measure how "
    "much water flows past a bridge every second, and farmers plan their planting around the spring floods. "
    "When you explain a process like this to a child, start with what they can see: clouds, rain, a puddle that "
    "grows into a stream. Then ask a question that makes them think, such as where the water goes when the sun "
    "comes out again. Good explanations move from the familiar to the new, one small step at a time, and they "
    "check often that the listener is still following. Write short sentences, choose plain words and give one "
    "example for every idea. If a reader must remember a list, keep it to three items; if there are more, group "
    "them. Finally, end with a summary that repeats the main point in different words, so the idea stays. "
)


# ---- the device ------------------------------------------------------------------------------------------------
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> tuple[str, ...]:
    """The bf16-related instruction-set flags of this CPU (Linux; empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return tuple(flag for flag in CPU_FLAGS if flag in present)
    except OSError:
        pass
    return ()


def describe_cpu() -> str:
    flags = cpu_flags()
    return f"{cpu_name()} ({', '.join(flags) if flags else 'no AVX-512/AMX flags'})"


def _ram_gb() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 1024**3, 1)
    except ImportError:  # pragma: no cover - psutil is a requirement
        return None


def quick_device() -> Device:
    """The training device without importing torch: the first GPU nvidia-smi lists, else the CPU."""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,memory.total,compute_cap", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout
            first = out.strip().splitlines()[0]
            name, memory_mb, capability = (part.strip() for part in first.rsplit(",", 2))
            major, minor = capability.split(".")
            return Device("cuda", name, (int(major), int(minor)), round(float(memory_mb) / 1024, 1))
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            pass
    return Device("cpu", describe_cpu(), None, _ram_gb())


def probe_device() -> Device:
    """The training device as torch sees it (imports torch)."""
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return Device(
            "cuda",
            props.name,
            (props.major, props.minor),
            round(props.total_memory / 1024**3, 1),
            bool(torch.cuda.is_bf16_supported()),
        )
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return Device("mps", "Apple MPS", None, _ram_gb())
    return Device("cpu", describe_cpu(), None, _ram_gb())


# ---- the CPU measurement's cache -----------------------------------------------------------------------------------
def cache_path() -> Path:
    return paths.home() / "cache" / "precision.json"


def measurement_lock() -> Path:
    """What one measurement at a time locks (paths.file_lock's side file: cache/.precision-measurement.lock)."""
    return cache_path().with_name("precision-measurement")


def _model_config(model_dir: str | os.PathLike) -> dict | None:
    """The model's config.json (a multimodal model's text part), or None without one."""
    if not model_dir:
        return None
    config_path = Path(model_dir) / "config.json"
    if not config_path.is_file():  # a Hub id: its config in the local Hugging Face cache, if it is there
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(str(model_dir), "config.json")
        except Exception:  # noqa: BLE001 - not a Hub id, or no cache
            cached = None
        config_path = Path(cached) if isinstance(cached, str) else config_path
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    config = config.get("text_config", config) if isinstance(config, dict) else {}
    return config if isinstance(config, dict) else {}


def model_shape_key(model_dir: str | os.PathLike) -> str | None:
    """The model's sizes from its config.json (what the step's speed depends on), or None without one."""
    config = _model_config(model_dir)
    if config is None:
        return None
    return ",".join(f"{key}={config.get(key)}" for key in SHAPE_KEYS)


def cache_key(model_dir: str | os.PathLike, threads: int, torch_version: str | None = None) -> str | None:
    shape = model_shape_key(model_dir)
    if shape is None:
        return None
    if torch_version is None:
        try:
            from importlib.metadata import version

            torch_version = version("torch")
        except Exception:  # noqa: BLE001 - no torch: nothing can have been measured with it
            return None
    key = f"{machine_key(threads, torch_version)}|{shape}|step={MEASURED_STEP_VERSION}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def default_threads(processes: int = 1) -> int:
    """Torch threads of each of `processes` training processes on this machine: their share of the usable cores."""
    return max(1, hardware.cpu_cores() // max(1, processes))


def machine_key(threads: int, torch_version: str) -> str:
    """What a CPU measurement depends on besides the model: the CPU, its bf16 flags, the threads, torch."""
    return f"{cpu_name()}|{'+'.join(cpu_flags())}|threads={threads}|torch={torch_version}"


def _read_cache() -> dict:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_cpu_measurement(model_dir: str | os.PathLike, threads: int, busy_too: bool = False) -> CpuMeasurement | None:
    """The stored measurement for this machine, model shape and thread count (no torch needed). One made while
    other work took the cores counts as none, unless `busy_too` (a run that waited for it uses it)."""
    key = cache_key(model_dir, threads)
    entry = _read_cache().get(key) if key else None
    if not isinstance(entry, dict):
        return None
    try:
        measurement = CpuMeasurement.from_dict(entry)
    except (KeyError, TypeError, ValueError):
        return None
    return measurement if busy_too or not measurement.busy else None


def _store(model_dir, threads: int, measurement: CpuMeasurement) -> None:
    key = cache_key(model_dir, threads)
    if key is None:
        return
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _read_cache()
    data[key] = measurement.to_dict()
    paths.atomic_write_text(path, json.dumps(data, indent=1) + "\n")


# ---- the measurement ------------------------------------------------------------------------------------------------
def measure_cpu(model_dir: str | os.PathLike, threads: int, use_cache: bool = True) -> CpuMeasurement:
    """fp32 vs bf16 LoRA training steps of this model on this CPU (a few seconds; cached per machine and shape).

    The two precisions run side by side on two copies of the model, step for step (fp32, bf16, fp32, ...), so a
    machine whose load changes during the measurement slows both alike; each keeps its fastest timed step."""
    if use_cache:
        cached = cached_cpu_measurement(model_dir, threads)
        if cached is not None:
            return cached
    # One measurement at a time on a machine: two at once would share the cores and both come out wrong. A run
    # that starts while the app's start-up measurement (studio.models.prepare) is going waits for it, then uses it.
    asked = time.monotonic()
    with paths.file_lock(measurement_lock()):
        # Waited for another process's measurement: use it, even one made on a busy machine (a second one now would
        # be made on the same busy machine and keep the run waiting twice).
        waited = time.monotonic() - asked > 1.0
        cached = cached_cpu_measurement(model_dir, threads, busy_too=waited) if use_cache else None
        return cached or _measure_cpu(model_dir, threads)


def _measure_cpu(model_dir: str | os.PathLike, threads: int) -> CpuMeasurement:
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        # Only a quiet look may rule bf16 out: a walk's screen read 35 against 110 GFLOP/s on an AMX Xeon whose quiet
        # reading is 1,400 against 330, while the page and the data preparation had the cores.
        for _ in range(SCREEN_TRIES):
            others_before, looked_from = _cpu_seconds_of_others(), time.perf_counter()
            fp32_gflops, bf16_gflops = matmul_speeds(model_dir)
            quiet_look = _others_were_quiet(others_before, time.perf_counter() - looked_from, threads)
            if quiet_look or bf16_gflops >= SCREEN_MIN_RATIO * fp32_gflops:
                break
        if bf16_gflops < SCREEN_MIN_RATIO * fp32_gflops:
            measurement = CpuMeasurement(
                0.0,
                0.0,
                (),
                (),
                gradient_cosine=0.0,
                threads=threads,
                machine=describe_cpu(),
                seconds=round(time.perf_counter() - started, 1),
                matmul_fp32_gflops=fp32_gflops,
                matmul_bf16_gflops=bf16_gflops,
                busy=not quiet_look,  # fp32 for this run; the next one looks again
            )
            _store(model_dir, threads, measurement)
            return measurement
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
        needed = MEASURE_BATCH * MEASURE_LENGTH
        ids = (ids * (needed // max(1, len(ids)) + 1))[:needed]
        batch = torch.tensor(ids).view(MEASURE_BATCH, MEASURE_LENGTH)
        base = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        base.config.use_cache = False
        frozen_bf16 = copy.deepcopy(base).to(torch.bfloat16)  # the frozen weights in bf16, as a bf16 run loads them
        runs = {"fp32": _Steps(base, batch, bf16=False), "bf16": _Steps(frozen_bf16, batch, bf16=True)}
        for run in runs.values():
            run.step(timed=False)  # the first step warms up (allocations, kernel selection)
        timed_from = time.perf_counter()
        for turn in range(MAX_TIMED_STEPS):
            for run in runs.values():
                run.step(timed=True, threads=threads)
            if all(len(run.quiet_times) >= MEASURE_STEPS - 1 for run in runs.values()):
                break
            if turn >= MEASURE_STEPS - 2 and time.perf_counter() - timed_from > MAX_EXTRA_SECONDS:
                break
        fp32, bf16 = runs["fp32"], runs["bf16"]
        measurement = CpuMeasurement(
            fp32_step_s=min(fp32.quiet_times or fp32.times),
            bf16_step_s=min(bf16.quiet_times or bf16.times),
            fp32_losses=tuple(fp32.losses),
            bf16_losses=tuple(bf16.losses),
            gradient_cosine=_cosine(fp32.first_gradient, bf16.first_gradient),
            tokens_per_step=MEASURE_BATCH * MEASURE_LENGTH,
            threads=threads,
            machine=describe_cpu(),
            seconds=round(time.perf_counter() - started, 1),
            busy=not all(len(run.quiet_times) >= MEASURE_STEPS - 1 for run in runs.values()),
            matmul_fp32_gflops=fp32_gflops,
            matmul_bf16_gflops=bf16_gflops,
        )
        # The run that measured trains next in this process: hand the two models' memory back first (measured: a
        # worker that measured started training at 2.7 GiB instead of 0.6, and peaked 0.7 GiB higher).
        del runs, fp32, bf16, base, frozen_bf16
        gc.collect()
        loading.release_freed_memory()
    finally:
        torch.set_num_threads(previous_threads)
    _store(model_dir, threads, measurement)  # a busy one too: for a run waiting on it (cached_cpu_measurement)
    return measurement


def matmul_speeds(model_dir: str | os.PathLike) -> tuple[float, float]:
    """GFLOP/s of a matmul of the model's widths (SCREEN_ROWS tokens × hidden @ hidden × MLP size) in fp32 and in
    bf16, with torch's current threads."""
    config = _model_config(model_dir) or {}
    hidden = int(config.get("hidden_size") or 576)
    shape = (SCREEN_ROWS, hidden, int(config.get("intermediate_size") or 4 * hidden))
    fp32, bf16 = (hardware.matmul_tflops(dtype, SCREEN_SECONDS, shape) * 1000 for dtype in ("fp32", "bf16"))
    return round(fp32, 1), round(bf16, 1)


class _Steps:
    """One model with a fresh rank-8 LoRA on all linear layers (fp32 weights, the same seed for every copy)."""

    def __init__(self, model, batch, bf16: bool):
        import torch
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(0)
        self.model = get_peft_model(
            model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
        )
        kernels.apply(self.model, autocast=bf16, on_cpu=True)  # the step a run of this precision takes
        self.model.train()
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.trainable, lr=MEASURE_LEARNING_RATE)
        self.batch, self.bf16 = batch, bf16
        self.keep = batch.shape[1] // 2  # score the answer half of each row: the worker scores only labelled positions
        self.times, self.quiet_times, self.losses, self.first_gradient = [], [], [], None

    def step(self, timed: bool, threads: int = 1) -> None:
        import contextlib

        import torch

        others_before = _cpu_seconds_of_others()
        began = time.perf_counter()
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        with autocast:
            logits = self.model(input_ids=self.batch, logits_to_keep=self.keep + 1).logits[:, :-1]
        targets = self.batch[:, -self.keep :]
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))
        loss.backward()
        if self.first_gradient is None:  # the same weights in both precisions: the gradient to compare
            self.first_gradient = torch.cat([p.grad.detach().float().reshape(-1) for p in self.trainable])
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if timed:
            seconds = time.perf_counter() - began
            self.times.append(seconds)
            if _others_were_quiet(others_before, seconds, threads):
                self.quiet_times.append(seconds)
        self.losses.append(float(loss.detach()))


def _cpu_seconds_of_others() -> float | None:
    """CPU seconds every other process has used so far: the machine's busy time (/proc/stat, steal included: a
    hypervisor taking the core is contention too) minus this process's own; None where /proc/stat is missing."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    except (OSError, ValueError):
        return None
    own = os.times()
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK") - own.user - own.system


def _others_were_quiet(others_before: float | None, seconds: float, threads: int) -> bool:
    """Whether other processes used at most QUIET_OTHERS_SHARE of `threads` cores over the last `seconds`, since
    `_cpu_seconds_of_others()` read `others_before` (True where /proc/stat cannot tell)."""
    others = _cpu_seconds_of_others()
    allowed = QUIET_OTHERS_SHARE * threads * seconds + 2 / os.sysconf("SC_CLK_TCK")  # + 2 ticks of rounding
    return others is None or others_before is None or others - others_before <= allowed


def _cosine(a, b) -> float:
    import torch

    value = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
    return value if value == value else 0.0  # NaN (a non-finite gradient) fails the check


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


# ---- the worker's decision ------------------------------------------------------------------------------------------
def choose(forced: bool | None, model_dir: str | os.PathLike, threads: int, measure=None, log=print) -> Precision:
    """Probe the device; on a CPU without a forced choice, measure bf16 once (cached); decide."""
    device = probe_device()
    measured = None
    if device.kind == "cpu" and forced is None and model_dir:
        measured = cached_cpu_measurement(model_dir, threads)
        if measured is None:
            log("measuring fp32 vs bf16 training steps on this CPU (once per machine and model shape)")
            measured = (measure or measure_cpu)(model_dir, threads)
    elif device.kind == "cpu":
        measured = cached_cpu_measurement(model_dir, threads)  # only for the log: a forced choice is not measured
    return decide(device, forced, measured)


def expected(forced: bool | None, model_dir: str | os.PathLike | None, threads: int) -> Precision:
    """What the worker will choose, without importing torch or measuring: from nvidia-smi and the cache."""
    device = quick_device()
    measured = cached_cpu_measurement(model_dir, threads) if device.kind == "cpu" and model_dir else None
    if device.kind == "cpu" and measured is None and forced is None and measuring_now():
        reason = "this CPU's bf16 speed is being measured now (the app's start-up preparation); the run waits for it"
        return Precision("fp32", reason, "cpu")
    return decide(device, forced, measured)


def measuring_now() -> bool:
    """Another process is measuring (the app's start-up preparation, or a run)."""
    return paths.is_locked(measurement_lock())


def measures_first(precision: Precision) -> bool:
    """A run with this expected precision measures the CPU before it trains (nothing cached, nothing forced)."""
    return precision.device == "cpu" and precision.measured is None and not precision.forced


def measuring_seconds(run_seconds: dict, train_positions: float) -> float:
    """What that measurement adds to a run, from the same estimate: a second copy of the model loaded, and
    MEASURE_STEPS steps of MEASURE_BATCH × MEASURE_LENGTH positions in each precision at the run's own speed per
    position (bf16 counted like fp32: its speed is what is being measured)."""
    per_position = run_seconds.get("train", 0.0) / max(1.0, train_positions)
    return run_seconds.get("start", 0.0) + 2 * MEASURE_STEPS * MEASURE_BATCH * MEASURE_LENGTH * per_position


def model_dir_for(model_ref: str | None) -> str | None:
    """The folder (or Hub id) whose shape keys the CPU measurement, for a model as the Train form names it:
    the converted bundled model, a local folder, a Hub id; None when nothing can have been measured."""
    if model_ref is None:
        return None
    try:
        kind = catalog.classify(str(model_ref))
    except StudioError:
        return None
    if kind == "bundled":
        return str(bundled.converted_dir()) if bundled.is_converted() else None
    return str(model_ref)


def expected_for_model(forced: bool | None, model_ref: str | None, threads: int) -> Precision:
    """What the worker will choose for this model here: the one answer the Train tab's preflight and the Decide
    tab's "this machine" both use, so their estimates agree."""
    return expected(forced, model_dir_for(model_ref), threads)
