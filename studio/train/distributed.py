"""Runs of several processes: how many, the accelerate config and command, and the parent that watches the ranks.

A run with more than one process (RunConfig.processes, or one per visible GPU when it is 0) runs as

    python -m studio.train.distributed RUN_DIR              the parent: the supervisor starts it and records its pid
      python -m accelerate.commands.launch --config_file RUN_DIR/accelerate.json -m studio.train.worker RUN_DIR
        one worker per rank                          (torchrun starts each in a session of its own)

The supervisor writes RUN_DIR/accelerate.json at every start (a free port each time, so two runs never collide);
the Train tab shows the command. On a CPU the ranks talk over gloo and share the cores: that tests the
multi-process path end to end on any machine, it does not make a CPU run faster.

Why a parent of our own rather than accelerate's launcher alone:
- stop: torchrun answers SIGTERM by signalling its ranks and killing them 30 s later, which can cut a checkpoint
  or the adapter in half. The parent sends SIGTERM to each rank itself (each records its pid in RUN_DIR/ranks/),
  so every rank finishes its step and the run saves, and torchrun then sees clean exits;
- failure: only rank 0 writes status.json, and when one rank dies the others fail on the broken connection with a
  message that hides the cause. Each rank records how it ended (store.record_rank); the parent writes the first
  real cause into status.json.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from studio.errors import StudioError
from studio.models import cost, hardware
from studio.train import store
from studio.train.config import RunConfig

WORKER_MODULE = "studio.train.worker"
ACCELERATE_CONFIG = "accelerate.json"
POLL_SECONDS = 0.5

# Words of an error raised because another rank went away (gloo/NCCL), not a cause of its own.
PEER_LOST_WORDS = (
    "connection closed by peer",
    "connection reset by peer",
    "broken pipe",
    "nccl",
    "gloo",
    "distbackenderror",
    "distnetworkerror",
    "timed out",
)


# ---- how many and how -------------------------------------------------------------------------
def process_count(config: RunConfig, gpus: int) -> int:
    """Processes this run uses here: the number set, else one per visible GPU (one on a CPU)."""
    return config.processes or max(1, gpus)


def problem(config: RunConfig, gpus: int) -> tuple[str, str] | None:
    """Why this machine cannot run the config's processes and strategy (message, hint), or None."""
    processes = process_count(config, gpus)
    if gpus and processes > gpus:
        return (
            f"{processes} processes need {processes} GPUs; {gpus} are visible.",
            f"Set Processes to {gpus} or fewer (0 uses every visible GPU).",
        )
    cores = hardware.cpu_cores()
    if not gpus and processes > cores:  # more CPU ranks than cores only thrashes (and is a way to flood a Space)
        return (
            f"{processes} CPU processes on {cores} cores: at most one process per core.",
            f"Set Processes to {cores} or fewer (0 or 1 trains in one process, which is fastest on a CPU).",
        )
    if processes > 1 and config.strategy != "ddp" and not gpus:
        # accelerate 1.15's FSDP plugin refuses a machine without an accelerator ("no available devices found");
        # DeepSpeed needs a GPU build. Checked on a CPU with 2 processes.
        return (
            f"{cost.STRATEGY_LABELS[config.strategy]} runs on GPUs only.",
            "Use the DDP strategy on a CPU (every process holds the whole model), or train on a machine with GPUs.",
        )
    if processes > 1 and config.strategy.startswith("deepspeed") and not hardware.installed("deepspeed"):
        return (
            "The DeepSpeed strategies need the deepspeed package, which is not installed.",
            "Install it in the studio's environment (pip install deepspeed), or use FSDP, which shards too.",
        )
    return None


def accelerate_config(config: RunConfig, processes: int, port: int) -> dict:
    """The accelerate config of a multi-process run. Mixed precision stays with the Trainer (the worker's one
    precision decision); LoRA leaves the frozen body's parameters without gradients, so DDP is told not to look
    for unused ones (studio.train.worker sets that in the Trainer's arguments)."""
    distributed = {"ddp": "MULTI_GPU", "fsdp": "FSDP"}.get(config.strategy, "DEEPSPEED")
    settings = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": distributed,
        "num_machines": 1,
        "machine_rank": 0,
        "num_processes": processes,
        "main_process_ip": "127.0.0.1",
        "main_process_port": port,
        "rdzv_backend": "static",
        "same_network": True,
        "mixed_precision": "no",
        "use_cpu": False,
    }
    if config.strategy == "fsdp":
        # PEFT's recipe: the decoder layers wrapped one by one (accelerate reads their class from the model),
        # and a full state dict for saving, so the adapter and checkpoints are ordinary files.
        settings["fsdp_config"] = {
            "fsdp_version": 1,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_sharding_strategy": "FULL_SHARD",
            "fsdp_backward_prefetch": "BACKWARD_PRE",
            "fsdp_state_dict_type": "FULL_STATE_DICT",
            "fsdp_offload_params": False,
            "fsdp_sync_module_states": True,
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_use_orig_params": False,
        }
    elif config.strategy.startswith("deepspeed"):
        stage = 3 if config.strategy == "deepspeed-zero3" else 2
        settings["deepspeed_config"] = {
            "zero_stage": stage,
            "gradient_accumulation_steps": config.grad_accum,
            "offload_optimizer_device": "none",
            "offload_param_device": "none",
            "zero3_init_flag": False,  # PEFT adds adapters after loading: the model is loaded whole, then split
            "zero3_save_16bit_model": stage == 3,
        }
    return settings


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_accelerate_config(run_dir: Path, config: RunConfig, processes: int) -> Path:
    path = Path(run_dir) / ACCELERATE_CONFIG
    path.write_text(json.dumps(accelerate_config(config, processes, free_port()), indent=2) + "\n")
    return path


def command(run_dir: Path, processes: int, python: str | None = None) -> list[str]:
    """What the supervisor starts: the worker itself, or this module's parent for several processes."""
    python = python or sys.executable
    if processes > 1:
        return [python, "-m", __name__, str(run_dir)]
    return [python, "-m", WORKER_MODULE, str(run_dir)]


def accelerate_command(run_dir: Path, python: str | None = None) -> list[str]:
    """What the parent starts: accelerate's launcher with the run's config file, running the worker on every rank."""
    return [
        python or sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(Path(run_dir) / ACCELERATE_CONFIG),
        "-m",
        WORKER_MODULE,
        str(run_dir),
    ]


def describe(config: RunConfig, gpus: int) -> str:
    """One line for preflight and the command preview: processes, strategy, device."""
    processes = process_count(config, gpus)
    if processes == 1:
        return "one process"
    where = (
        f"{processes} GPUs" if gpus else f"{processes} CPU processes (gloo, sharing the cores: a test, not a speed-up)"
    )
    return f"{where}, {cost.STRATEGY_LABELS[config.strategy]}"


# ---- the parent -------------------------------------------------------------------------------
def signal_ranks(run_dir: Path, sig: int) -> list[int]:
    """Send `sig` to every live rank of the run (pids from the rank records, checked to run this run's worker)."""
    sent = []
    for rank, record in sorted(store.read_ranks(run_dir).items()):
        pid = record.get("pid")
        if "ended" not in record and store.worker_alive(pid, run_dir):
            try:
                os.kill(int(pid), sig)
                sent.append(rank)
            except (ProcessLookupError, PermissionError):
                pass
    return sent


def peer_lost(error: dict | None) -> bool:
    text = json.dumps(error or {}).lower()
    return any(word in text for word in PEER_LOST_WORDS)


def root_cause(ranks: dict[int, dict], vanished: dict[int, float], processes: int) -> tuple[int, str, str] | None:
    """The rank whose failure ended the run and why: (rank, message, hint), or None when no rank failed.

    `vanished` maps a rank that ended without recording how (killed, or the machine ran out of memory) to the last
    time it was seen alive. The earliest failure is the cause: a rank's own error at the time it recorded it, a
    vanished rank at the last time it was seen alive. When a rank dies, its peers fail a moment later with errors
    that do not always name the lost connection (a collective that was already under way, DDP's reducer), so the
    order in time decides, not the words. A rank whose error only says it lost its peers is the cause only when
    nothing else failed."""
    own, lost = [], []
    for rank, record in ranks.items():
        if record.get("ended") != "failed":
            continue
        error = record.get("error") or {}
        (lost if peer_lost(error) else own).append((record.get("time", 0.0), rank, error))
    first_own = min(own) if own else None
    first_vanished = min(vanished, key=vanished.get) if vanished else None
    if first_vanished is not None and (first_own is None or vanished[first_vanished] < first_own[0]):
        return (
            first_vanished,
            f"Process {first_vanished + 1} of {processes} (rank {first_vanished}) ended without a word: it was "
            "killed, or the machine ran out of memory.",
            "If memory is short, lower the batch size or max length.",
        )
    if first_own is not None or lost:
        _, rank, error = first_own or min(lost)
        return rank, error.get("message") or "Training failed.", error.get("hint") or "The details are in log.txt."
    return None


def supervise(run_dir: Path) -> int:
    """Run accelerate's launcher for this run, forward a stop to every rank, and make status.json tell the cause
    when a rank fails. Returns the launcher's exit code."""
    run_dir = Path(run_dir).resolve()
    config = store.read_run_config(run_dir)
    store.clear_ranks(run_dir)  # a resumed run's old rank records must not speak for this attempt
    gpus = int(store.read_status(run_dir).get("gpus") or 0)

    def on_stop(signum, frame):  # noqa: ARG001 - a signal handler's signature
        if not signal_ranks(run_dir, signal.SIGTERM):  # no rank has started yet: end the launcher itself
            try:
                os.killpg(launcher.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError, NameError):
                pass

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    started = accelerate_command(run_dir)
    print(f"[studio] {process_count(config, gpus)} processes: {' '.join(started)}", flush=True)
    launcher = subprocess.Popen(started, stdin=subprocess.DEVNULL, start_new_session=True)
    seen_alive: dict[int, float] = {}  # rank → the last time it was seen alive
    vanished: dict[int, float] = {}  # rank → the last time it was seen alive before it was found gone
    while True:
        running = launcher.poll() is None
        for rank, record in store.read_ranks(run_dir).items():
            if rank in vanished or "ended" in record:
                continue
            looked_at = time.time()
            if store.worker_alive(record.get("pid"), run_dir):
                seen_alive[rank] = looked_at
            else:
                vanished[rank] = seen_alive.get(rank, record.get("started", looked_at))
        if not running:
            break
        time.sleep(POLL_SECONDS)
    code = launcher.returncode
    ranks = store.read_ranks(run_dir)
    vanished = {rank: at for rank, at in vanished.items() if "ended" not in ranks.get(rank, {})}
    status = store.read_status(run_dir)
    processes = process_count(config, gpus)
    cause = root_cause(ranks, vanished, processes)
    if cause is None and code == 0:
        return 0
    if cause is None and status.get("status") not in store.ACTIVE:
        return code  # rank 0 recorded the end itself (stopped before training, say)
    rank, message, hint = cause or (None, f"The launcher ended with exit code {code}.", "The details are in log.txt.")
    if rank is not None and not message.startswith("Process "):
        message = f"Process {rank + 1} of {processes} (rank {rank}): {message}"
    last = store.last_checkpoint(run_dir)
    store.update_status(
        run_dir,
        status="failed",
        ended_at=store.now_iso(),
        error={"message": message, "hint": f"{hint} {store.resume_sentence(last.name if last else None)}"},
        failed_rank=rank,
    )
    store.append_event(run_dir, {"type": "status", "status": "failed", "message": message, "step": status.get("step")})
    print(f"[studio] failed: {message}", flush=True)
    return code or 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(f"usage: python -m {__name__} RUN_DIR", file=sys.stderr)
        return 2
    try:
        return supervise(Path(argv[0]))
    except StudioError as error:
        print(f"[studio] {error.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
