"""What a script is told about a run: one JSON-ready dict for `runs --json`, `train --json` and the HTTP API's
run endpoints (docs/api.md), so the three never differ."""

from __future__ import annotations

from typing import Any

from studio.train import executors, store


def run_summary(record: store.RunRecord) -> dict[str, Any]:
    """The run's id, folder, state, step and final loss, and where its adapter is (None until there is one)."""
    status = record.status
    return {
        "run_id": record.run_id,
        "run_dir": str(record.dir),
        "status": record.state,
        "steps": status.get("step"),
        "final_loss": status.get("final_loss"),
        "adapter": str(record.adapter_dir) if record.adapter_dir else None,
    }


def run_facts(record: store.RunRecord) -> dict[str, Any]:
    """The summary with the run's name, model, dataset, progress, times and error."""
    status, config = record.status, record.config
    return {
        **run_summary(record),
        "executor": executors.kind(record),
        "name": record.name,
        "model": config.get("model"),
        "dataset": config.get("dataset"),
        "total_steps": status.get("total_steps"),
        "best_eval_loss": status.get("best_eval_loss"),
        "created_at": status.get("created_at"),
        "started_at": status.get("started_at"),
        "ended_at": status.get("ended_at"),
        "error": status.get("error"),
    }
