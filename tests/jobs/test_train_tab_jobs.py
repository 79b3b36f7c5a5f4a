"""The Train tab's Hugging Face Jobs controls, called directly: flavours, the remote preflight, who may send."""

from __future__ import annotations

import types

from studio.train import store
from studio.ui import train_tab

OWNER = "browser-jobs-owner-1234"


def form(config) -> list:
    return train_tab.form_values(config.to_dict())


def test_choosing_jobs_shows_the_flavours_with_prices(remote_env):
    box, flavor, note, start = train_tab.choose_where("hf-jobs", None)
    assert box["visible"] is True and start["interactive"] is True
    names = [name for _, name in flavor["choices"]]
    assert names[0] == "t4-small" and "cpu-basic" in names and flavor["value"] == "t4-small"
    assert any("$0.40/h" in label for label, _ in flavor["choices"])
    assert "operators" in note
    box, *_ = train_tab.choose_where("local", "t4-small")
    assert box["visible"] is False


def test_check_shows_time_cost_cap_and_the_equivalent_command(remote_env, tiny_remote_config):
    markdown, command, config_json, anyway = train_tab.check_where(*form(tiny_remote_config()), {}, "hf-jobs", "cpu-basic", 2.0)
    assert "Runs on Hugging Face Jobs" in markdown and "Cost: about" in markdown and "Cap: **$2.00**" in markdown
    assert command.endswith("--executor hf-jobs --flavor cpu-basic --max-cost 2")
    markdown, *_ = train_tab.check_where(*form(tiny_remote_config()), {}, "hf-jobs", "cpu-basic", 0.00001)
    assert "above the cap" in markdown


def test_only_operators_can_send_a_run(remote_env, tiny_remote_config, monkeypatch):
    monkeypatch.setenv("STUDIO_AUTH", "oauth")
    monkeypatch.setenv("STUDIO_OWNERS", "the-operator")
    runs_before = {record.run_id for record in store.list_runs()}
    repos_before = set(remote_env.repos)
    visitor = types.SimpleNamespace(username="a-visitor")
    outputs = train_tab.start_where(None, visitor, *form(tiny_remote_config()), {}, "hf-jobs", "cpu-basic", 1.0,
                                    OWNER, train_tab.open_view(None))
    assert "Only the studio's operators" in outputs[0]
    assert {record.run_id for record in store.list_runs()} == runs_before  # nothing created
    assert set(remote_env.repos) == repos_before  # nothing uploaded
    anonymous = train_tab.start_where(None, None, *form(tiny_remote_config()), {}, "hf-jobs", "cpu-basic", 1.0,
                                      OWNER, train_tab.open_view(None))
    assert "Only the studio's operators" in anonymous[0]


def test_a_run_above_the_cap_is_not_sent(remote_env, tiny_remote_config):
    runs_before = {record.run_id for record in store.list_runs()}
    outputs = train_tab.start_where(None, None, *form(tiny_remote_config()), {}, "hf-jobs", "cpu-basic", 0.00001,
                                    OWNER, train_tab.open_view(None))
    assert "Not sent" in outputs[3]
    assert {record.run_id for record in store.list_runs()} == runs_before


def test_a_remote_run_shows_its_job_cost_and_repo(remote_env, tiny_remote_config):
    record = store.create_run(tiny_remote_config(name="shown remotely"), owner=OWNER)
    job = {"id": "abc123", "url": "https://huggingface.co/jobs/someone/abc123", "flavor": "t4-small",
           "flavor_label": "Nvidia T4 - small (t4-small)", "price_per_hour": 0.4, "max_cost_usd": 3.0,
           "outputs_repo": "someone/fine-tune-studio-x", "namespace": "someone"}
    store.update_status(record.dir, status="running", executor="hf-jobs", job=job, job_stage="RUNNING",
                        job_cost_usd=0.12, job_running_seconds=1080, started_at=store.now_iso(),
                        job_metrics={"gpu_percent": 91, "gpu_used_gb": 9.5, "gpu_total_gb": 16})
    # A live follower is not needed to show it: reconcile would start one, so look at the text directly.
    text = train_tab._status_markdown(store.get_run(record.run_id), [], OWNER)
    assert "[abc123](https://huggingface.co/jobs/someone/abc123)" in text
    assert "≈ $0.12" in text and "$3.00 cap" in text and "GPU 91 %" in text and "someone/fine-tune-studio-x" in text
    rows, ids = train_tab.history_table()
    assert rows[ids.index(record.run_id)][3] == "running · Jobs t4-small"
    store.update_status(record.dir, status="failed", job_stage="ERROR")
    store.delete_run(record.run_id)
