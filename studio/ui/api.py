"""The studio's API for scripts: named endpoints with JSON in and out, documented in docs/api.md.

    /lint         a chat file's findings and statistics (nothing saved)     same JSON as `lint FILE --json`
    /add_dataset  a chat file linted, cleaned, split and saved as a dataset   the Train tab's quick upload
    /datasets     the caller's datasets
    /estimate     preflight of a run's settings (nothing started)           same JSON as `train --dry-run --json`
    /start_run    start (or queue) a run; refused with the reasons while preflight has errors
    /run_status   one run; /runs: every run the caller may see              same JSON as `runs --json`
    /stop         graceful stop (the worker saves a checkpoint and the adapter)
    /ask          one prompt answered by the base and the tuned model, with the same decoding settings
    /evaluate     the held-out evaluation and its verdict                   same JSON as `compare --json`

Each endpoint goes through the guard with the action of the page's own button, and checks the run or dataset
with the caller's rights: on a public Space a script is a visitor like any other, with its own runs (its
gradio_client session) and quotas. In public mode the server's folders are replaced by their names
($STUDIO_HOME/…) in every answer. The page's own events stay private (tests/test_app.py)."""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from studio import access, quotas
from studio.compare import engine, evaluate, verdict, votes
from studio.data import lint as data_lint
from studio.data import store as data_store
from studio.errors import StudioError
from studio.models import catalog
from studio.train import facts, preflight, supervisor
from studio.train.config import RunConfig
from studio.ui.guard import guarded
from studio.ui.train_common import identity_of, run_for, visible_runs
from studio.ui.train_form import resolved_config, submit_checked

MAX_FINDINGS = 500  # findings listed by /lint (the counts cover all of them)


def _public(value: Any) -> Any:
    """A JSON answer without the server's folders (public mode)."""
    if isinstance(value, dict):
        return {key: _public(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_public(item) for item in value]
    return access.redact(value)


def _settings(settings: dict | None) -> RunConfig:
    if settings is not None and not isinstance(settings, dict):
        raise StudioError("The settings must be a JSON object.", 'Pass e.g. {"dataset": "...", "max_steps": 20}.')
    config = RunConfig.from_dict(settings or {})
    errors = config.validate()
    if errors:
        listed = "; ".join(f"{name}: {message}" for name, message in sorted(errors.items()))
        raise StudioError(f"Invalid settings — {listed}.", "Fix these fields; /estimate shows what a run would do.")
    return resolved_config(config)


def _uploaded(file: FileData | dict | str | None):
    """The server path of a file the client uploaded (gradio_client's handle_file), checked to be an upload."""
    path = file.get("path") if isinstance(file, dict) else getattr(file, "path", file)
    if not path:
        raise StudioError("No file was sent.", "Pass the file with gradio_client's handle_file(path).")
    return access.check_upload_path(str(path))


def lint(file: FileData, model: str = "", max_length: int = 0) -> dict:
    """Lint a chat file (JSONL, JSON, CSV, Parquet): verdict, format, counts by severity, findings, statistics."""
    path = _uploaded(file)
    model = model or catalog.DEFAULT_MODEL
    access.check_model_ref(model)
    report = data_lint.lint_file(path, path.name, tokenizer=model, max_length=max_length or None, model=model)
    payload = report.to_json()
    findings = payload.get("findings") or []
    if len(findings) > MAX_FINDINGS:
        payload["findings"] = findings[:MAX_FINDINGS]
        payload["findings_left_out"] = len(findings) - MAX_FINDINGS
    return _public(payload)


def add_dataset(file: FileData) -> dict:
    """Save a chat file as a dataset (refused while it has errors), named after the file as in the Train tab:
    its id for /start_run and its row counts."""
    me = identity_of()
    quotas.check_quota(me, "datasets")
    folder, _ = preflight.dataset_from_upload(_uploaded(file), owner=me.user_id)
    manifest = data_store.read_manifest(folder) or {}
    return _public({"dataset": data_store.dataset_value(manifest), "name": manifest.get("name"), **_counts(manifest)})


def _counts(manifest: dict) -> dict:
    counts = manifest.get("counts") or {}
    return {"train_rows": counts.get("train"), "validation_rows": counts.get("validation")}


def datasets() -> list:
    """The caller's datasets: id (for /start_run's "dataset"), name and row counts."""
    return _public(
        [
            {"dataset": data_store.dataset_value(manifest), "name": manifest.get("name"), **_counts(manifest)}
            for manifest in data_store.list_visible()
        ]
    )


def estimate(settings: dict) -> dict:
    """Preflight of a run (RunConfig fields; "dataset" from /add_dataset or /datasets): time, memory, steps,
    errors and warnings, and the settings it would run with."""
    return _public(preflight.run_preflight(_settings(settings), check_busy=False).as_dict())


def start_run(settings: dict) -> dict:
    """Start or queue a run. While preflight has errors nothing starts: "started" is false and the preflight
    says why. Warnings never block; they come back with the run."""
    me = identity_of()
    report = preflight.run_preflight(_settings(settings), check_busy=False)
    checked = report.as_dict()
    if report.blocking:
        return _public({"started": False, "preflight": checked})
    record = submit_checked(report, me)
    return _public({"started": True, **facts.run_facts(record), "warnings": checked["warnings"]})


def run_status(run_id: str) -> dict:
    """A run's state, step, losses, times and error."""
    return _public(facts.run_facts(run_for(run_id)))


def runs() -> list:
    """Every run the caller may see, newest first."""
    return _public([facts.run_facts(record) for record in visible_runs()])


def stop(run_id: str) -> dict:
    """Ask a run to stop: it finishes its step, saves a checkpoint and the adapter (follow it with /run_status)."""
    record = supervisor.stop(run_for(run_id).run_id, requester=identity_of())
    return _public(facts.run_facts(record))


def ask(run_id: str, prompt: str, max_new_tokens: int = 128, seed: int = 0) -> dict:
    """The base and the tuned model's answers to one prompt, with the model's fair decoding settings."""
    prompt = str(prompt or "").strip()
    if not prompt:
        raise StudioError("The prompt is empty.", "Pass the question to ask both models.")
    session = engine.open_session(run_id)
    settings = session.engine.default_settings(max_new_tokens=int(max_new_tokens), seed=int(seed))
    conversation = [{"role": "user", "content": prompt}]
    session.engine.check_size(conversation, settings.system_prompt)
    base = session.engine.generate_batch(engine.BASE, [conversation], settings)[0]
    tuned = session.engine.generate_batch(session.tuned, [conversation], settings)[0]
    return {"base": base, "tuned": tuned, "settings": settings.describe()}


def evaluate_run(run_id: str, n: int = 5, max_new_tokens: int = 128) -> dict:
    """The held-out evaluation of a run (its validation split's first n prompts), saved with the run as the
    Compare tab's is, and the verdict (with the finished blind ballots)."""
    n = evaluate.validate_n(n)
    session = engine.open_session(run_id)
    prompts, source = evaluate.load_prompts(session.run, None, n)
    settings = session.engine.default_settings(max_new_tokens=int(max_new_tokens))
    result = evaluate.evaluate(session, prompts, source, settings)
    evaluate.save(session.run, result)
    the_verdict = verdict.verdict(result, votes.finished_ballots(session.run, result))
    return _public(evaluate.as_json(result, the_verdict))


ENDPOINTS = (
    # (function, the action the page's button for it needs, endpoint name)
    (lint, access.LINT, "lint"),
    (add_dataset, access.SAVE_DATASET, "add_dataset"),
    (datasets, access.LOOK, "datasets"),
    (estimate, access.LOOK, "estimate"),
    (start_run, access.TRAIN, "start_run"),
    (run_status, access.VIEW, "run_status"),
    (runs, access.LOOK, "runs"),
    (stop, access.CONTROL, "stop"),
    (ask, access.CHAT, "ask"),
    (evaluate_run, access.EVALUATE, "evaluate"),
)
GPU_SECONDS = {"ask": 120, "evaluate": 300}  # on ZeroGPU, as the Compare tab's chat and evaluation


def build() -> None:
    """Register the endpoints on the Blocks being built."""
    for function, action, name in ENDPOINTS:
        if name in GPU_SECONDS:
            function = access.gpu_call(function, duration=GPU_SECONDS[name])
        gr.api(guarded(action, function), api_name=name)
