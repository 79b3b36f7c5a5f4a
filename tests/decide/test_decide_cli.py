"""`python -m studio estimate`: the command-line contract, run as a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "studio", "estimate", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def estimate_json(*args):
    result = run(*args, "--json")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


@pytest.mark.parametrize("technique, low, high", [("full", 100, None), ("lora", 15, 40), ("qlora", 4, 16)])
def test_7b_memory_bands(technique, low, high):
    data = estimate_json(
        "--params",
        "7B",
        "--tokens",
        "1000000",
        "--epochs",
        "3",
        "--technique",
        technique,
        "--gpu",
        "a100",
        "--batch-size",
        "2",
        "--max-length",
        "1024",
    )
    for key in ("memory_gib", "flops", "hours", "cost_usd", "memory_breakdown_gib"):
        assert key in data
    assert data["memory_gib"] > low and (high is None or data["memory_gib"] < high)
    assert sum(data["memory_breakdown_gib"].values()) == pytest.approx(data["memory_gib"], abs=0.01)


def test_full_flops_and_cost_match_hand_calculation():
    data = estimate_json(
        "--params",
        "7e9",
        "--tokens",
        "1e6",
        "--epochs",
        "3",
        "--technique",
        "full",
        "--gpu",
        "h100",
        "--no-gradient-checkpointing",
    )
    # 6·N·T·E = 1.26e17 for the real tokens; padding and attention scores come on top (at most a few tens of %).
    assert 6 * 7e9 * 1e6 * 3 < data["flops"] < 1.6 * 6 * 7e9 * 1e6 * 3
    assert data["seconds"]["train"] == pytest.approx(data["flops"] / (989e12 * 0.40), abs=0.1)
    hours = sum(data["seconds"].values()) / 3600  # start-up, steps, evaluations, checkpoints, end
    assert data["hours"] == pytest.approx(hours, abs=1e-4)
    assert data["cost_usd"] == pytest.approx(data["hours"] * 4.50, abs=1e-4)


def test_text_output_without_json():
    result = run("--params", "135M", "--tokens", "2M", "--epochs", "1", "--technique", "lora", "--gpu", "cpu-basic")
    assert result.returncode == 0
    assert "memory" in result.stdout and "flops" in result.stdout and "cost" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--params", "seven", "--tokens", "1e6", "--epochs", "1", "--technique", "lora"],
        ["--params", "7B", "--tokens", "1e6", "--epochs", "1", "--technique", "prefix"],
        ["--params", "7B", "--tokens", "1e6", "--epochs", "0", "--technique", "lora"],
        ["--params", "7B", "--tokens", "1e6", "--epochs", "1", "--technique", "lora", "--gpu", "tpu"],
        ["--params", "7B", "--tokens", "1e6", "--epochs", "1", "--technique", "lora", "--batch-size", "1.5"],
        ["--tokens", "1e6", "--epochs", "1", "--technique", "lora"],
        ["--params", "7B", "--epochs", "1", "--technique", "lora"],
    ],
)
def test_usage_errors_exit_2(args):
    result = run(*args)
    assert result.returncode == 2
    assert "error" in result.stderr and result.stdout == ""
