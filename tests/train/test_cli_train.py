"""The CLI contract, run as a user would: python -m studio train|runs|stop (subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from studio.train import store

ROOT = Path(__file__).resolve().parents[2]


def studio(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "studio", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_train_a_jsonl_file_waiting_with_json_output_then_list_and_stop(tiny_model_dir, tiny_dataset_dir, tmp_path):
    rows = (tiny_dataset_dir / "train.jsonl").read_text()
    data_file = tmp_path / "my sums!.jsonl"
    data_file.write_text(rows)
    result = studio("train", "--model", str(tiny_model_dir), "--data", str(data_file), "--max-steps", "4",
                    "--lr", "1e-3", "--lora-r", "4", "--max-length", "64", "--torch-threads", "1", "--wait", "--json")
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


def test_train_without_wait_prints_only_the_run_id_and_the_config_file_is_honoured(tiny_model_dir, tiny_dataset_dir, tmp_path):
    run_json = tmp_path / "run.json"
    run_json.write_text(json.dumps({"model": str(tiny_model_dir), "dataset": str(tiny_dataset_dir), "max_steps": 3,
                                    "torch_threads": 1, "max_length": 64, "lora_r": 2, "run_id": "ignored"}))
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
