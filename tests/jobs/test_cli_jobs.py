"""The command line: `train --executor hf-jobs`, its refusals, and `jobs flavors` (against the stand-in)."""

from __future__ import annotations

import json

import pytest

from studio import cli


def test_jobs_flavors_lists_prices(remote_env, capsys):
    assert cli.main(["jobs", "flavors", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)  # one JSON array
    t4 = next(row for row in rows if row["name"] == "t4-small")
    assert t4["gpu"] == "T4" and t4["price_per_hour_usd"] == pytest.approx(0.40002)


def test_flavor_without_the_jobs_executor_is_refused(remote_env, tiny_remote_config, capsys):
    config = tiny_remote_config()
    code = cli.main(["train", "--model", config.model, "--data", config.dataset, "--flavor", "t4-small"])
    assert code == 1 and "--executor hf-jobs" in capsys.readouterr().err


def test_a_run_the_cap_cannot_pay_for_is_refused_before_anything_is_uploaded(remote_env, tiny_remote_config, capsys):
    repos_before = set(remote_env.repos)
    config = tiny_remote_config()
    code = cli.main(
        [
            "train",
            "--model",
            config.model,
            "--data",
            config.dataset,
            "--max-steps",
            "10",
            "--executor",
            "hf-jobs",
            "--flavor",
            "cpu-basic",
            "--max-cost",
            "0.00001",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1 and "buys only" in captured.err  # $0.00001 buys 4 s: refused whatever the estimate
    assert "Runs on Hugging Face Jobs" in captured.out  # the estimate was shown first
    assert set(remote_env.repos) == repos_before


@pytest.mark.slow
def test_train_on_jobs_from_the_cli_and_wait(remote_env, tiny_remote_config, capsys):
    config = tiny_remote_config()
    code = cli.main(
        [
            "train",
            "--model",
            config.model,
            "--data",
            config.dataset,
            "--max-steps",
            "10",
            "--executor",
            "hf-jobs",
            "--flavor",
            "cpu-basic",
            "--max-cost",
            "1",
            "--wait",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["steps"] == 10 and summary["adapter"]
    assert "step 10/10" in captured.err
    assert cli.main(["runs", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)  # one JSON array
    assert next(row for row in rows if row["run_id"] == summary["run_id"])["executor"] == "hf-jobs"
