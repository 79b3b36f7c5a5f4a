"""What the studio is running on: CUDA GPUs, Apple MPS, or the CPU."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class Gpu:
    name: str
    memory_gb: float


@dataclass
class Hardware:
    kind: str  # "cuda" | "mps" | "cpu"
    cpu_cores: int
    ram_gb: float
    gpus: list[Gpu] = field(default_factory=list)

    @property
    def summary(self) -> str:
        if self.kind == "cuda":
            names = ", ".join(f"{gpu.name} ({gpu.memory_gb:.0f} GB)" for gpu in self.gpus)
            return f"{len(self.gpus)} × GPU: {names}"
        if self.kind == "mps":
            return f"Apple GPU (MPS), {self.cpu_cores} CPU cores, {self.ram_gb:.0f} GB RAM"
        return f"CPU only: {self.cpu_cores} cores, {self.ram_gb:.0f} GB RAM"


BITSANDBYTES_PIN = "bitsandbytes==0.50.2"  # as in requirements.txt


def installed(package: str) -> bool:
    """Whether a package is installed, without importing it (bitsandbytes and deepspeed import torch)."""
    import importlib.util

    return importlib.util.find_spec(package) is not None


def bitsandbytes_installed() -> bool:
    return installed("bitsandbytes")


def four_bit_reason(kind: str, bitsandbytes: bool | None = None) -> str | None:
    """Why 4-bit QLoRA cannot run on a device of this kind ("cuda" | "mps" | "cpu"), or None when it can:
    bitsandbytes 0.50 has 4-bit kernels for CUDA GPUs and for CPUs, none for Apple's MPS."""
    if kind == "mps":
        return "QLoRA 4-bit does not run on Apple GPUs (bitsandbytes has no MPS kernels); use LoRA."
    if not (bitsandbytes_installed() if bitsandbytes is None else bitsandbytes):
        return (
            f"QLoRA 4-bit needs the bitsandbytes package, which is not installed here: pip install {BITSANDBYTES_PIN} "
            "(wheels for Linux and Windows)."
        )
    return None


def _ram_gb() -> float:
    try:
        import psutil

        return psutil.virtual_memory().total / 1024**3
    except ImportError:  # pragma: no cover - psutil is a requirement
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def detect(probe_torch: bool = True) -> Hardware:
    """Detect hardware. probe_torch=False skips importing torch (fast, CPU facts only)."""
    hardware = Hardware(kind="cpu", cpu_cores=cpu_cores(), ram_gb=_ram_gb())
    if not probe_torch:
        return hardware
    import torch

    if torch.cuda.is_available():
        hardware.kind = "cuda"
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            hardware.gpus.append(Gpu(props.name, props.total_memory / 1024**3))
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        hardware.kind = "mps"
    return hardware


def _visible_indices() -> set[int] | None:
    """The GPUs CUDA_VISIBLE_DEVICES leaves to this process, by nvidia-smi's index (None: all of them; UUIDs are
    not matched here, so they count as all)."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    parts = [part.strip() for part in value.split(",") if part.strip()]
    if not all(part.isdigit() for part in parts):
        return None
    return {int(part) for part in parts}


def visible_gpu_count() -> int:
    """CUDA devices this process may use: torch's count, which honours CUDA_VISIBLE_DEVICES (nvidia-smi lists every
    GPU of the machine). Without nvidia-smi there is no CUDA driver to ask: 0, without importing torch."""
    import shutil

    if not shutil.which("nvidia-smi"):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def detect_quick() -> Hardware:
    """Hardware facts without importing torch, for the app shell's footer.

    Uses nvidia-smi when present so a GPU Space still shows its GPU without paying for torch.
    """
    import shutil
    import subprocess

    hardware = detect(probe_torch=False)
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout
            visible = _visible_indices()
            for index, line in enumerate(out.strip().splitlines()):
                name, memory_mb = (part.strip() for part in line.rsplit(",", 1))
                if visible is None or index in visible:
                    hardware.gpus.append(Gpu(name, float(memory_mb) / 1024))
            if hardware.gpus:
                hardware.kind = "cuda"
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    return hardware


MATMUL_BURST_S = 0.1


def matmul_tflops(dtype: str, seconds: float, shape: tuple[int, int, int] | None = None) -> float:
    """The best of MATMUL_BURST_S bursts of one matmul for `seconds`, in TFLOP/s, with torch's current threads (on
    CUDA when present). `shape` (rows, inner, columns); by default square: 4096 on a GPU, 1024 on a CPU. Load on
    the machine only ever slows a burst, so the best one is the machine's speed."""
    import time

    import torch

    on_cuda = torch.cuda.is_available()
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    device, size = ("cuda", 4096) if on_cuda else ("cpu", 1024)
    rows, inner, columns = shape or (size, size, size)
    a = torch.randn(rows, inner, device=device, dtype=torch_dtype)
    b = torch.randn(inner, columns, device=device, dtype=torch_dtype)
    a @ b  # warm-up
    best, deadline = 0.0, time.perf_counter() + seconds
    while True:
        runs, started = 0, time.perf_counter()
        while time.perf_counter() - started < MATMUL_BURST_S:
            a @ b
            runs += 1
        if on_cuda:
            torch.cuda.synchronize()
        best = max(best, 2 * rows * inner * columns * runs / (time.perf_counter() - started) / 1e12)
        if time.perf_counter() >= deadline:
            return best
