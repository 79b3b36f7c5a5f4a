"""Hardware flavours of Hugging Face Jobs, from `HfApi.list_jobs_hardware`, cached.

Prices are the API's own (`unit_cost_usd` per `unit_label`), turned into dollars per hour; nothing here is
hard-coded. The list is kept in memory for an hour and on disk (STUDIO_HOME/cache/jobs-hardware.json) so a
restarted studio shows it at once; when the Hub cannot be reached the last list is used and says how old it is.

`Flavor.hardware()` describes a flavour the way studio.models.hardware describes this machine, so the same
preflight estimates time and memory for it. The API gives VRAM as one figure per flavour ("Total VRAM"); for
multi-GPU flavours it is divided by the GPU count, which is conservative if the figure is per GPU.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from studio import paths
from studio.errors import StudioError
from studio.jobs import hub
from studio.models.hardware import Gpu, Hardware
from studio.train.store import now_iso
from studio.units import format_usd

CACHE_SECONDS = 3600
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600}
_memory: dict[str, tuple[float, list[Flavor], str]] = {}  # endpoint -> (fetched at, flavours, fetched iso)


@dataclass(frozen=True)
class Flavor:
    name: str
    pretty_name: str
    cpu: str = ""
    ram: str = ""
    storage: str = ""
    gpu_model: str | None = None
    gpu_count: int = 0
    vram: str = ""
    unit_cost_usd: float | None = None
    unit_label: str = ""

    @property
    def price_per_hour(self) -> float | None:
        seconds = _UNIT_SECONDS.get(str(self.unit_label).lower().rstrip("s"))
        if self.unit_cost_usd is None or seconds is None:
            return None
        return float(self.unit_cost_usd) * 3600 / seconds

    @property
    def price_per_second(self) -> float | None:
        per_hour = self.price_per_hour
        return per_hour / 3600 if per_hour is not None else None

    @property
    def cpu_cores(self) -> int:
        return int(_number(self.cpu) or 1)

    @property
    def ram_gb(self) -> float | None:
        return _number(self.ram)

    @property
    def gpu_memory_gb(self) -> float | None:
        total = _number(self.vram)
        return total / max(1, self.gpu_count) if total and self.gpu_count else None

    @property
    def label(self) -> str:
        price = f"{format_usd(self.price_per_hour)}/h" if self.price_per_hour is not None else "price not given"
        if self.gpu_model:
            gpus = f"{self.gpu_count}× {self.gpu_model}" + (f" {self.gpu_memory_gb:g} GB" if self.gpu_memory_gb else "")
        else:
            gpus = "no GPU"
        return f"{self.pretty_name} ({self.name}) · {gpus} · {self.cpu} · {self.ram} RAM · {price}"

    def hardware(self):
        """This flavour as a studio.models.hardware.Hardware, for the preflight estimates."""
        if self.gpu_model and self.gpu_count:
            gpus = [Gpu(self.gpu_model, self.gpu_memory_gb or 0.0) for _ in range(self.gpu_count)]
            return Hardware(kind="cuda", cpu_cores=self.cpu_cores, ram_gb=self.ram_gb or 0.0, gpus=gpus)
        return Hardware(kind="cpu", cpu_cores=self.cpu_cores, ram_gb=self.ram_gb or 0.0)


def _number(text: str | None) -> float | None:
    match = re.search(r"\d+(?:\.\d+)?", str(text or ""))
    return float(match.group()) if match else None


def from_api(info) -> Flavor:
    """A Flavor from a huggingface_hub JobHardwareInfo."""
    accelerator = getattr(info, "accelerator", None)
    count = int(_number(getattr(accelerator, "quantity", None)) or 1) if accelerator else 0
    return Flavor(
        name=info.name,
        pretty_name=info.pretty_name or info.name,
        cpu=info.cpu or "",
        ram=info.ram or "",
        storage=getattr(info, "ephemeral_storage", "") or "",
        gpu_model=getattr(accelerator, "model", None) if accelerator else None,
        gpu_count=count,
        vram=getattr(accelerator, "vram", "") if accelerator else "",
        unit_cost_usd=getattr(info, "unit_cost_usd", None),
        unit_label=getattr(info, "unit_label", "") or "",
    )


def _cache_file() -> Path:
    return paths.home() / "cache" / "jobs-hardware.json"


def _read_disk(endpoint: str) -> tuple[list[Flavor], str] | None:
    try:
        data = json.loads(_cache_file().read_text(encoding="utf-8"))
        entry = data[endpoint]
        return [Flavor(**item) for item in entry["flavors"]], entry["fetched_at"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_disk(endpoint: str, flavors: list[Flavor], fetched_at: str) -> None:
    try:
        data = json.loads(_cache_file().read_text(encoding="utf-8"))
        data = data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        data = {}
    data[endpoint] = {"fetched_at": fetched_at, "flavors": [asdict(flavor) for flavor in flavors]}
    paths.atomic_write_text(_cache_file(), json.dumps(data, indent=1) + "\n")


@dataclass
class FlavorList:
    flavors: list[Flavor]
    fetched_at: str
    stale_reason: str = ""  # set when the Hub could not be asked and an older list is shown

    def get(self, name: str | None) -> Flavor:
        for flavor in self.flavors:
            if flavor.name == name:
                return flavor
        names = ", ".join(flavor.name for flavor in self.flavors[:12])
        raise StudioError(f"'{name}' is not a Hugging Face Jobs flavour.", f"Pick one of: {names}.")


def list_flavors(refresh: bool = False) -> FlavorList:
    """Every flavour Jobs offers (cached); raises a StudioError only when there is no list at all."""
    endpoint = hub.endpoint()
    cached = _memory.get(endpoint)
    if cached and not refresh and time.monotonic() - cached[0] < CACHE_SECONDS:
        return FlavorList(cached[1], cached[2])
    try:
        client = hub.api()
        flavors = [from_api(info) for info in client.list_jobs_hardware()]
    except Exception as error:  # noqa: BLE001 - fall back to the last list we saw
        problem = hub.explain(error, "list the Jobs hardware")
        on_disk = _read_disk(endpoint)
        if on_disk:
            return FlavorList(on_disk[0], on_disk[1], stale_reason=problem.message)
        raise problem from error
    fetched_at = now_iso()
    _memory[endpoint] = (time.monotonic(), flavors, fetched_at)
    _write_disk(endpoint, flavors, fetched_at)
    return FlavorList(flavors, fetched_at)


def choices(flavor_list: FlavorList) -> list[tuple[str, str]]:
    """(label, name) pairs for a dropdown: GPUs first by price, then CPUs."""
    ordered = sorted(flavor_list.flavors, key=lambda f: (f.gpu_model is None, f.price_per_hour or 0.0, f.name))
    return [(flavor.label, flavor.name) for flavor in ordered]
