"""The CLI contract, run as a user would: python -m studio train|runs|stop (subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from studio.train import store
from studio.train.config import RunConfig

ROOT = Path(__file__).resolve().parents[2]


def studio(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "studio", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def test_train_a_jsonl_file_waiting_with_json_output_then_list_and_stop(tiny_model_dir, tiny_dataset_dir, tmp_path):
    rows = (tiny_dataset_dir / "train.jsonl").read_text()
    data_file = tmp_path / "my sums!.jsonl"
    data_file.write_text(rows)
    result = studio(
        "train",
        "--model",
        str(tiny_model_dir),
        "--data",
        str(data_file),
        "--max-steps",
        "4",
        "--lr",
        "1e-3",
        "--lora-r",
        "4",
        "--max-length",
        "64",
        "--torch-threads",
        "1",
        "--wait",
        "--json",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1  # with --json, stdout is only the final JSON line; progress goes to stderr
    final = json.loads(lines[0])
    assert set(final) == {"run_id", "run_dir", "status", "steps", "final_loss", "adapter"}
    assert final["status"] == "completed" and final["steps"] == 4 and isinstance(final["final_loss"], float)
    assert Path(final["adapter"], "adapter_config.json").is_file()
    assert "step 4/4" in result.stderr
    config = json.loads(Path(final["run_dir"], "config.json").read_text())
    assert (config["lora_r"], config["max_length"], config["learning_rate"]) == (4, 64, 1e-3)
    dataset = Path(config["dataset"])  # the raw file was saved as a dataset folder, name sanitised
    assert (dataset / "train.jsonl").is_file() and (dataset / "validation.jsonl").is_file()
    assert " " not in dataset.name and "!" not in dataset.name

    listed = studio("runs", "--json")
    assert listed.returncode == 0
    runs = json.loads(listed.stdout)  # one JSON array
    mine = [r for r in runs if r["run_id"] == final["run_id"]]
    assert mine and mine[0]["run_dir"] == final["run_dir"] and mine[0]["status"] == "completed"

    stopped = studio("stop", final["run_id"])
    assert stopped.returncode == 1 and "not running" in stopped.stderr


def test_train_without_wait_prints_only_the_run_id_and_the_config_file_is_honoured(
    tiny_model_dir, tiny_dataset_dir, tmp_path
):
    run_json = tmp_path / "run.json"
    run_json.write_text(
        json.dumps(
            {
                "model": str(tiny_model_dir),
                "dataset": str(tiny_dataset_dir),
                "max_steps": 3,
                "torch_threads": 1,
                "max_length": 64,
                "lora_r": 2,
                "run_id": "ignored",
            }
        )
    )
    result = studio("train", "--config", str(run_json), "--lora-r", "6", "--name", "from json")
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip()
    record = store.get_run(run_id)
    assert record.config["lora_r"] == 6 and record.config["max_steps"] == 3 and record.config["name"] == "from json"
    waited = studio("train", "--resume", run_id)  # still running (or done): resume is refused with a reason
    assert waited.returncode == 1 and "error:" in waited.stderr
    from studio.train import supervisor

    assert supervisor.wait(run_id, timeout=300).state == "completed"


def test_bad_input_gives_messages_and_exit_codes():
    assert studio("train", "--lora-r", "abc").returncode == 2  # usage error
    missing = studio("train", "--data", "/no/such/data.jsonl")
    assert missing.returncode == 1 and "No dataset" in missing.stderr and "Traceback" not in missing.stderr
    invalid = studio("train", "--data", "/tmp", "--lr", "-1")
    assert invalid.returncode == 1 and "learning rate" in invalid.stderr
    assert studio("stop", "../../etc").returncode == 1
    assert studio("runs").returncode == 0


def test_dry_run_prints_the_preflight_and_starts_nothing(tiny_model_dir, tiny_dataset_dir, tmp_path, studio_home):
    data_file = tmp_path / "sums.jsonl"
    data_file.write_text((tiny_dataset_dir / "train.jsonl").read_text())
    datasets_before = sorted((studio_home / "datasets").glob("*")) if (studio_home / "datasets").exists() else []
    runs_before = {record.run_id for record in store.list_runs()}
    args = [
        "train",
        "--model",
        str(tiny_model_dir),
        "--data",
        str(data_file),
        "--max-steps",
        "6",
        "--max-length",
        "64",
        "--dry-run",
        "--cpu-gflops",
        "50",
    ]
    text = studio(*args)
    assert text.returncode == 0, text.stderr[-3000:]
    for expected in (
        "dry run: nothing was started",
        "estimated time",
        "memory",
        "GiB",
        "steps",
        "resolved config",
        '"max_steps": 6',
        "command: python -m studio train",
    ):
        assert expected in text.stdout, expected
    as_json = studio(*args, "--json")
    assert as_json.returncode == 0, as_json.stderr[-3000:]
    (line,) = as_json.stdout.strip().splitlines()
    preview = json.loads(line)
    assert preview["ready"] and preview["steps"] == 6 and preview["seconds"] > 0 and preview["memory_gib"] > 0
    parts = preview["time_parts_s"]
    # "precision": the CPU's fp32-vs-bf16 measurement, counted when this run would make it first (whether an earlier
    # test's run already made it depends on the order the tests ran in).
    assert set(parts) - {"precision"} == {"start", "warmup", "train", "evaluation", "checkpoints", "end"}
    assert parts.get("precision", 1) > 0
    assert preview["config"]["max_steps"] == 6 and preview["config"]["model"] == str(tiny_model_dir)
    assert isinstance(preview["warnings"], list) and isinstance(preview["errors"], list)
    # Nothing was saved or started: the file was linted and counted in memory.
    assert (
        sorted((studio_home / "datasets").glob("*")) if (studio_home / "datasets").exists() else []
    ) == datasets_before
    assert {record.run_id for record in store.list_runs()} == runs_before


def test_a_blocking_preflight_refuses_to_start_and_an_adjusted_one_starts_what_fits(
    tiny_dataset_dir, monkeypatch, capsys
):
    import argparse

    from studio.train import cli, preflight, supervisor

    config = RunConfig(dataset=str(tiny_dataset_dir), batch_size=8)
    fitted = config.replace(batch_size=2, grad_accum=4)
    launched = []
    monkeypatch.setattr(
        supervisor,
        "launch",
        lambda run_config, owner, **kwargs: (
            launched.append(run_config) or store.RunRecord("run-x", Path("/nowhere"), {}, {"status": "queued"})
        ),
    )
    monkeypatch.setattr(
        store, "get_run", lambda run_id: store.RunRecord(run_id, Path("/nowhere"), {}, {"status": "queued"})
    )
    args = argparse.Namespace(
        resume=None,
        config=None,
        dataset=str(tiny_dataset_dir),
        batch_size=8,
        json=False,
        wait=False,
        dry_run=False,
        cpu_gflops=None,
        executor="local",
        flavor=None,
        max_cost=None,
    )

    def refusing(run_config, **kwargs):
        report = preflight.Preflight(config=run_config)
        report.error("Not enough memory: about 30.0 GiB needed at the peak.", "Lower max length.", "max_length")
        return report

    monkeypatch.setattr(preflight, "run_preflight", refusing)
    assert cli.run_train(args) == 1 and not launched
    assert "Not enough memory" in capsys.readouterr().err

    def adjusting(run_config, **kwargs):
        return preflight.Preflight(config=fitted, adjustments=["batch size 8 → 2 with gradient accumulation 1 → 4"])

    monkeypatch.setattr(preflight, "run_preflight", adjusting)
    assert cli.run_train(args) == 0
    assert launched == [fitted] and "changed to fit in memory" in capsys.readouterr().err
