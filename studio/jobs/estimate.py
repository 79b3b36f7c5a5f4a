"""Preflight for a run on a Jobs flavour: time, memory and cost, checked against the operator's cost cap.

The time and memory come from the studio's one preflight (studio.train.preflight.run_preflight), called here
once with the flavour described as hardware (its GPUs and their memory, its vCPUs and RAM), without this
machine's run history (those rates were measured on other hardware) and without the local busy check (a
remote run does not use this machine's trainer); a CPU flavour's memory is its RAM and its speed the cost
model's reference per core. Checks that only concern this machine are dropped: a ZeroGPU Space can submit
jobs; bitsandbytes is installed in the job for QLoRA.

The cost is the flavour's price (from the API) × (setup + training). Setup — uv installing the pinned
packages, CUDA torch included, and downloading the inputs and the model — is taken as 5 minutes (3–10): a
guess, not measured on the service. A GPU time estimate is FLOPs at an assumed efficiency and can be off by
about 2× either way, so the cap is compared with both the central estimate (blocking) and the high end
(a warning). The cap is enforced by Jobs itself: the job's timeout is cap ÷ price, so a job can never cost
more than the cap even if the studio is gone.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from studio.errors import StudioError
from studio.jobs import package
from studio.jobs.flavors import Flavor
from studio.models import bundled, catalog, cost
from studio.train import preflight
from studio.units import format_duration, format_usd

SETUP_SECONDS = 300
SETUP_SECONDS_RANGE = (180, 600)
TIME_SPREAD = 2.0  # the training-time estimate may be this much too low or too high
MAX_COST_ENV = "STUDIO_JOBS_MAX_COST"
DEFAULT_MAX_COST = 5.0  # USD per run unless the operator sets another cap
NO_PRICE_TIMEOUT = 6 * 3600
SHORTEST_JOB_SECONDS = 60  # a cap that buys less is refused: such a job could only install packages
ZERO_GPU_ERROR = "ZeroGPU cannot train."  # preflight's local-only check (see studio.train.preflight)


def default_max_cost() -> float:
    try:
        value = float(os.environ.get(MAX_COST_ENV) or DEFAULT_MAX_COST)
    except ValueError:
        return DEFAULT_MAX_COST
    return value if value > 0 else DEFAULT_MAX_COST


@dataclass
class RemoteEstimate:
    flavor: Flavor
    report: object  # studio.train.preflight.Preflight for the flavour
    max_cost: float | None
    cost: float | None = None
    cost_high: float | None = None
    timeout_seconds: int | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> bool:
        return self.report.blocking

    def markdown(self) -> str:
        head = [f"**Runs on Hugging Face Jobs:** {self.flavor.label}"] + [f"- {line}" for line in self.lines]
        return "\n".join(head) + "\n\n" + self.report.markdown()


def estimate(config, flavor: Flavor, max_cost: float | None, manifest: dict | None = None) -> RemoteEstimate:
    """The remote preflight; `config` is a RunConfig, `max_cost` the cap in USD."""
    hardware = flavor.hardware()
    cpu_gflops = available_gib = None
    if hardware.kind != "cuda":
        cpu_gflops = cost.reference_cpu_gflops(hardware.cpu_cores)
        available_gib = flavor.ram_gb * 1e9 / cost.GIB if flavor.ram_gb else None  # the flavour's RAM, not ours
    report = preflight.run_preflight(
        config,
        hardware=hardware,
        manifest=manifest,
        runs=[],
        check_busy=False,
        cpu_gflops=cpu_gflops,
        available_gib=available_gib,
        cpu_elsewhere=hardware.kind != "cuda",
    )
    report.checks = [check for check in report.checks if not _local_only(check, hardware)]
    if hardware.kind != "cuda" and report.tokens_per_s:
        report.rate_source = (
            f"estimated for its {hardware.cpu_cores} vCPUs at the studio's reference "
            f"{cpu_gflops / hardware.cpu_cores:.0f} GFLOP/s per core; not measured on Jobs"
        )
    result = RemoteEstimate(flavor, report, max_cost)
    _describe_model(config, report)

    price = flavor.price_per_second
    train_seconds = report.seconds
    if train_seconds is not None:
        setup_low, setup_high = SETUP_SECONDS_RANGE
        low, high = setup_low + train_seconds / TIME_SPREAD, setup_high + train_seconds * TIME_SPREAD
        result.lines.append(
            f"Time: about {format_duration(SETUP_SECONDS + train_seconds)} "
            f"({format_duration(low)}–{format_duration(high)}): ~{format_duration(SETUP_SECONDS)} "
            "to install the pinned packages and fetch the inputs, then training"
        )
        if price:
            result.cost = price * (SETUP_SECONDS + train_seconds)
            result.cost_high = price * high
            result.lines.append(
                f"Cost: about **{format_usd(result.cost)}** (up to {format_usd(result.cost_high)}) at "
                f"{format_usd(flavor.price_per_hour)}/h, billed by the second"
            )
        report.seconds = SETUP_SECONDS + train_seconds  # the report's "Estimated time" is the job's, setup included
        report.time_parts = {"setup": float(SETUP_SECONDS), **(report.time_parts or {})}
    else:
        result.lines.append("Time and cost: unknown (no time estimate for this model or dataset)")
    if not price:
        report.warn(
            f"Hugging Face gave no price for '{flavor.name}', so the cost cannot be estimated or capped.",
            f"The job is limited to {format_duration(NO_PRICE_TIMEOUT)} instead.",
        )
        result.timeout_seconds = NO_PRICE_TIMEOUT
    elif not isinstance(max_cost, (int, float)) or not math.isfinite(max_cost) or max_cost <= 0:
        report.error(
            "Set a cost cap for the job (in US dollars).", "The job is stopped by Hugging Face when it reaches it."
        )
    elif max_cost / price < SHORTEST_JOB_SECONDS:
        shortest = price * SHORTEST_JOB_SECONDS
        needed = f"{format_usd(result.cost)} (the estimated cost)" if (result.cost or 0.0) > shortest else None
        report.error(
            f"A cap of {format_usd(max_cost)} buys only {format_duration(max_cost / price)} on '{flavor.name}' "
            f"(at {format_usd(flavor.price_per_hour)}/h), less than the {format_duration(SHORTEST_JOB_SECONDS)} "
            "the studio gives a job at least.",
            f"Raise the cap to at least {needed or format_usd(shortest)}.",
        )
    else:
        result.timeout_seconds = int(max_cost / price)
        result.lines.append(
            f"Cap: **{format_usd(max_cost)}** — Hugging Face stops the job after "
            f"{format_duration(result.timeout_seconds)} on this flavour, whatever happens here"
        )
        if result.cost is not None and result.cost > max_cost:
            report.error(
                f"The estimated cost {format_usd(result.cost)} is above the cap of {format_usd(max_cost)}.",
                "Raise the cap, pick a cheaper or faster flavour, or train fewer steps.",
            )
        elif result.cost_high is not None and result.cost_high > max_cost:
            report.warn(
                f"The job may reach the cap (up to {format_usd(result.cost_high)} if training is twice as slow "
                "as estimated); it would then be stopped with its last pushed checkpoint kept.",
                "Raise the cap for headroom, or start anyway.",
            )
    report.notes.append(
        "Remote runs bill the account of the operator's HF_TOKEN (Jobs need a PRO account or a "
        "Team/Enterprise organisation). The code, data and results go to private repos of that account."
    )
    return result


def _local_only(check, hardware) -> bool:
    """Preflight checks about this machine that do not apply to a job."""
    if check.message.startswith(ZERO_GPU_ERROR):
        return True
    if check.field == "qlora_4bit" and hardware.kind == "cuda":
        return True  # bitsandbytes is installed in the job (requirements.txt)
    return False


def _describe_model(config, report) -> None:
    try:
        kind = catalog.classify(str(config.model))
    except StudioError:
        return
    if kind == "bundled":
        report.notes.append(
            f"In the job the bundled model is loaded from the Hub as {bundled.HUB_ID} (the "
            "full-precision original of the bundled file); Compare here uses the bundled copy."
        )
    elif kind == "local":
        size = package.folder_bytes(package.local_model_folder(str(config.model)))
        report.notes.append(
            f"The local model folder ({size / 1024**3:.2f} GB) is uploaded to the run's private inputs repo first."
        )
