"""The Train tab: settings → preflight → start; live view of the run; stop/resume/delete; history; export.

Thin on purpose: the logic lives in studio.train (config, store, supervisor, preflight, charts, export).
The live view polls the run folder with a gr.Timer (never a pipe to the worker), reading only the bytes
appended to events.jsonl since the last tick, so a reload or a second browser simply reattaches.
Handlers are plain module functions so tests can call them directly. Every one is wired through
ui/guard.py; inside, runs and datasets are reached only through `_run_for`, `_dataset_folder` and the
supervisor, which ask studio.access (a visitor in public mode sees their own runs and the shared ones).
"""

from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path
from typing import Any

import gradio as gr

from studio import access, escape, paths, quotas, units
from studio.data import store as data_store
from studio.data.stats import suggested_max_length
from studio.errors import StudioError
from studio.jobs import executor, flavors
from studio.jobs.estimate import default_max_cost
from studio.models import catalog, hardware
from studio.train import charts, executors, export, preflight, queue, store, supervisor
from studio.train.config import SCHEDULERS, RunConfig
from studio.ui.guard import guarded, guarded_validator, request_identity
from studio.ui.shared import URL_PARAM_JS, Shared, download_copy, message_markdown

# Form fields, in the order the form's components are passed to handlers (RunConfig field names).
FORM_FIELDS = (
    "model",
    "trust_remote_code",
    "dataset",
    "name",
    "epochs",
    "learning_rate",
    "lora_r",
    "max_steps",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "use_dora",
    "batch_size",
    "grad_accum",
    "max_length",
    "packing",
    "assistant_only_loss",
    "warmup",
    "scheduler",
    "weight_decay",
    "seed",
    "eval_steps",
    "save_steps",
    "logging_steps",
    "qlora_4bit",
)
# RunConfig fields the form does not show; kept from "train again" / Decide so nothing is silently lost.
HIDDEN_FIELDS = ("bf16", "gradient_checkpointing", "torch_threads")

POLL_SECONDS = 2.0
LOG_TAIL_BYTES = 6000
BROWSER_ID_KEY = "fine-tune-studio-browser-id"
BROWSER_ID_PATTERN = access.BROWSER_ID_PATTERN
# This browser's identity: a server-minted id with the server's signature (studio.access), kept in
# localStorage. On page load this script hands the stored token (or nothing) to the server, which checks the
# signature, binds the id to the page session and hands back the token to keep (STORE_ID_JS). A gr.BrowserState
# inside a tab is only mounted when the tab is opened, after the load event, hence the hidden textbox.
BROWSER_ID_JS = (
    """
(carrier, view, run) => {
  let token = "";
  try { token = window.localStorage.getItem("%s") || ""; } catch (error) {}
  const asked = (new URL(window.location.href).searchParams.get("run") || "").slice(0, 100);
  return [token, view, asked];
}
"""  # noqa: UP031 - percent formatting keeps the JavaScript braces single
    % BROWSER_ID_KEY
)
STORE_ID_JS = (
    """
(token) => {
  try { if (token) { window.localStorage.setItem("%s", token); } } catch (error) {}
  return [];
}
"""  # noqa: UP031 - percent formatting keeps the JavaScript braces single
    % BROWSER_ID_KEY
)
HISTORY_HEADERS = ["Name", "Model", "Dataset", "Status", "Steps", "Best eval loss", "Duration", "Started"]
ASSISTANT_ONLY_OFF = (
    "**Note: assistant-only loss is off.** the loss covers the whole conversation, prompts included, so the model "
    "also learns to write the user's side. Keep it on for chat data. (With it on, answer-marked templates "
    "cover Llama 3.x, Qwen 2.5/3, Gemma, Phi-3/3.5/4, Mistral and ChatML models such as SmolLM2; for any other "
    "template the preflight check warns before the run.)"
)


# ---------------------------------------------------------------- small helpers


def _error(error: Exception) -> str:
    return message_markdown(error)


def _model_choices() -> list[tuple[str, str]]:
    return [(entry.label, entry.ref) for entry in catalog.entries()]


def dataset_choices() -> list[tuple[str, str]]:
    """The caller's datasets (all of them in private mode) as (label, value) for the dropdown."""
    return [
        (preflight.dataset_label(manifest), data_store.dataset_value(manifest))
        for manifest in data_store.list_visible()
    ]


def _dataset_folder(value: str | None) -> Path:
    """The dataset folder a form names, checked with the caller's rights (StudioError / AccessDenied)."""
    return data_store.find(value)


def _me(browser_id: str | None = None) -> access.Identity:
    """The caller: set by the guard for a request; in a direct call, the browser id handed in."""
    return access.current(browser_id)


def _run_for(run_id: str | None, browser_id: str | None = None, action: str = access.VIEW):
    """The run record if the caller may `action` it; one refusal for missing and invisible runs alike."""
    if not run_id:
        raise StudioError("No run is selected.", "Pick a run in the history table.")
    try:
        record = store.get_run(run_id)
    except StudioError:
        if access.is_public():
            raise access.not_found(str(run_id)) from None
        raise
    access.authorize(_me(browser_id), action, record)
    return record


def _visible_runs(browser_id: str | None = None) -> list:
    me = _me(browser_id)
    return [record for record in store.list_runs() if access.can_see(me, record)]


def _shown(text: str) -> str:
    """Text for the page: in public mode without the server's folders."""
    return access.redact(text)


def _hardware():
    return hardware.detect_quick()


# Number fields where the form's 0 stands for the config's None (all steps / automatic learning rate).
ZERO_MEANS_AUTO = ("max_steps", "learning_rate")


def form_values(config: dict[str, Any]) -> list[Any]:
    """Form component values for a RunConfig dict (train again, defaults)."""
    merged = {
        **RunConfig().to_dict(),
        **{k: v for k, v in (config or {}).items() if v is not None or k in ZERO_MEANS_AUTO},
    }
    values = []
    for name in FORM_FIELDS:
        value = merged.get(name)
        if name in ZERO_MEANS_AUTO:
            value = value or 0
        values.append(value)
    return values


def config_from_form(values: list[Any] | tuple, hidden: dict | None = None):
    """The RunConfig the form describes (not yet validated)."""
    data = dict(zip(FORM_FIELDS, values))
    for key in ZERO_MEANS_AUTO:
        if data.get(key) in (0, 0.0, "", None):
            data[key] = None
    if isinstance(data.get("model"), str):
        data["model"] = data["model"].strip()
    if data.get("dataset") is None:
        data["dataset"] = ""
    for key in HIDDEN_FIELDS:
        if hidden and key in hidden:
            data[key] = hidden[key]
    return RunConfig.from_dict(data)


# ---------------------------------------------------------------- form handlers


def describe_dataset(path: str | None) -> tuple[str, Any]:
    """A one-line summary of the picked dataset and the max_length it suggests (p99 → manifest)."""
    if not path:
        return "*Pick a saved dataset (prepare one in the Data tab) or upload a file below.*", gr.skip()
    try:
        folder = _dataset_folder(path)
    except access.AccessDenied as error:
        return _error(error), gr.skip()
    except StudioError:
        folder = Path(str(path))
    manifest = preflight.read_manifest(folder)
    if manifest is None:
        return (
            f"**{escape.md_code(_shown(str(path)))} is not a saved dataset.**\n\n*Hint:* prepare and save it in the "
            "Data tab."
        ), gr.skip()
    counts = manifest.get("counts") or {}
    stats = manifest.get("stats") or {}
    tokens = stats.get("tokens") or {}
    parts = [
        f"**{escape.md_inline(manifest.get('name') or folder.name)}**: {counts.get('train', '?')} training rows, "
        f"{counts.get('validation', 0)} validation rows"
    ]
    if tokens.get("p99"):
        parts.append(f"tokens per row: median {tokens.get('p50')}, p99 {tokens.get('p99')}, max {tokens.get('max')}")
    suggested = stats.get("suggested_max_length") or (
        suggested_max_length(tokens["p99"]) if tokens.get("p99") else None
    )
    if suggested:
        parts.append(f"max length set to {suggested} (covers 99 % of rows)")
        return " · ".join(parts), gr.update(value=int(suggested))
    return " · ".join(parts), gr.skip()


def refresh_datasets(current: str | None):
    choices = dataset_choices()
    paths_ = [value for _, value in choices]
    value = current if current in paths_ else (paths_[0] if paths_ else None)
    return gr.update(choices=choices, value=value)


def pick_shared_dataset(path: str | None):
    """The Data tab saved or loaded a dataset: offer it here, selected."""
    if not path:
        return gr.skip(), gr.skip(), gr.skip()
    try:
        folder = _dataset_folder(path)
    except StudioError:
        return gr.skip(), gr.skip(), gr.skip()
    manifest = preflight.read_manifest(folder)
    if manifest is None:
        return gr.skip(), gr.skip(), gr.skip()
    value = data_store.dataset_value(manifest)
    choices = dataset_choices()
    if value not in [item for _, item in choices]:
        choices.insert(0, (preflight.dataset_label(manifest), value))
    summary, max_length = describe_dataset(value)
    return gr.update(choices=choices, value=value), summary, max_length


def apply_prefill(prefill: dict | None, hidden: dict | None):
    """Settings from Decide: model, technique, epochs, max_length (and LoRA shape / batch when given)."""
    outputs = {name: gr.skip() for name in FORM_FIELDS}
    hidden = dict(hidden or {})
    if not prefill:
        return [outputs[name] for name in FORM_FIELDS] + [hidden, gr.skip()]
    technique = str(prefill.get("technique") or "").lower()
    values = {
        key: prefill[key]
        for key in ("model", "epochs", "max_length", "lora_r", "lora_alpha", "batch_size")
        if prefill.get(key) not in (None, "")
    }
    if technique == "dora" or prefill.get("use_dora"):
        values["use_dora"] = True
    if technique == "qlora" or prefill.get("load_in_4bit"):
        if preflight.qlora_reason(_hardware()) is None:
            values["qlora_4bit"] = True
    if prefill.get("dataset"):
        try:
            manifest = preflight.read_manifest(_dataset_folder(prefill["dataset"]))
            if manifest is not None:
                values["dataset"] = data_store.dataset_value(manifest)
        except StudioError:
            pass
    for key, value in values.items():
        if key == "dataset":
            outputs[key] = gr.update(choices=dataset_choices(), value=value)
        else:
            outputs[key] = gr.update(value=value)
    # Decide plans for the hardware picked there (a T4 by default). Checkpointing saves GPU memory but
    # costs a CPU run about 60 % more time (bundled demo: 356 s vs 222 s), so off a GPU the worker decides.
    if prefill.get("gradient_checkpointing") is not None and _hardware().kind == "cuda":
        hidden["gradient_checkpointing"] = bool(prefill["gradient_checkpointing"])
    applied = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in values.items() if key != "dataset")
    note = (
        f"✓ Settings from **Decide** applied: {escape.md_inline(applied or 'none')}"
        + (f" (technique: {escape.md_inline(technique)})" if technique else "")
        + "."
    )
    return [outputs[name] for name in FORM_FIELDS] + [hidden, note]


def toggle_assistant_note(enabled: bool):
    return gr.update(visible=not enabled)


def upload_dataset(file_path: str | None):
    """An uploaded file: lint it, refuse it while it has errors, else save it as a dataset and select it."""
    if not file_path:
        return gr.skip(), ""
    try:
        me = _me()
        access.authorize(me, access.SAVE_DATASET)
        quotas.check_quota(me, "datasets")
        folder, report = preflight.dataset_from_upload(access.check_upload_path(file_path), owner=me.user_id)
    except StudioError as error:
        return gr.skip(), _error(error)
    manifest = preflight.read_manifest(folder) or {"path": str(folder), "id": folder.name}
    return gr.update(choices=dataset_choices(), value=data_store.dataset_value(manifest)), report


def checked_config(values, hidden, browser_id: str | None = None):
    """The form's RunConfig with its dataset resolved to a folder the caller may use and its model checked
    (public mode: no server folders, no remote code unless allowed). Raises StudioError / AccessDenied."""
    config = config_from_form(values, hidden)
    if str(config.dataset or "").strip():
        config = config.replace(dataset=str(_dataset_folder(config.dataset)))
    access.check_model_ref(str(config.model or ""))
    if config.trust_remote_code:
        access.require_remote_code_allowed(_me(browser_id))
    return config


def check_settings(*args):
    """Preflight for the form; returns markdown, the CLI command and the config JSON."""
    *values, hidden = args

    try:
        config = checked_config(values, hidden)
        report = preflight.run_preflight(config, check_busy=False)  # a busy trainer queues the run instead
    except StudioError as error:
        return _error(error), "", ""
    return _shown(_queue_note() + report.markdown()), _shown(report.cli_command), _shown(report.config_json)


def _queue_note() -> str:
    """Says that a run started now would wait, and behind how many (no other visitor's run is named)."""
    try:
        current = supervisor.busy()
        waiting = len(queue.waiting())
    except Exception:  # noqa: BLE001
        return ""
    if current is None and not waiting:
        return ""
    ahead = f" behind {waiting} waiting run{'s' if waiting != 1 else ''}" if waiting else ""
    return (
        f"⏳ **The trainer is busy now:** a run started now waits in the queue{ahead} and starts by itself "
        "when its turn comes.\n\n"
    )


def validate_form(*args):
    """Field-level messages next to the inputs (Gradio runs this before the handler, with the same inputs)."""
    values = args[: len(FORM_FIELDS)]
    try:
        errors = config_from_form(values).validate()
    except Exception:  # noqa: BLE001 - never block on the validator itself
        errors = {}
    checks = [gr.validate(name not in errors, errors.get(name, "")) for name in FORM_FIELDS]
    return checks + [gr.validate(True, "")] * (len(args) - len(FORM_FIELDS))


def _with_warnings(message: str, report) -> str:
    """The start message, and how many warnings went with it (they stay listed in the preflight above)."""
    if not report.warnings:
        return message
    count = len(report.warnings)
    return message + f" {count} warning{'s' if count != 1 else ''} ⚠ above did not stop it — worth a look."


def start_run(*args):
    """Start a run when preflight has no errors. Warnings never block: they are shown with the started run."""
    *values, hidden, browser_id, view = args

    try:
        me = _me(browser_id)
        access.authorize(me, access.TRAIN)
        config = checked_config(values, hidden, browser_id)
        report = preflight.run_preflight(config, check_busy=False)
    except StudioError as error:
        return _error(error), gr.skip(), gr.skip(), gr.skip(), view
    shown = (_shown(report.markdown()), _shown(report.cli_command), _shown(report.config_json))
    if report.blocking:
        return (*shown, "**Not started:** fix the points marked ✕ first.", view)
    try:
        quotas.check_quota(me, "runs")
        # report.config carries any memory adjustments preflight made (micro-batch, checkpointing)
        record = supervisor.submit(
            report.config,
            owner=me.user_id,
            owner_role=access.OPERATOR if me.operator else me.role,
            estimated_seconds=report.seconds,
        )
    except StudioError as error:
        return (*shown, _error(error), view)
    new_view = open_view(record.run_id)
    if record.state == "queued":
        message = (
            f"⏳ **'{escape.md_inline(record.name)}' is queued:** the trainer is busy; it starts by itself when "
            "its turn comes (its place and an estimated start are shown below). You can close this page."
        )
    else:
        message = (
            f"▶ **Started '{escape.md_inline(record.name)}'.** Follow it below — you can close this page; the "
            "run keeps going."
        )
    return (*shown, _with_warnings(message, report), new_view)


# ---------------------------------------------------------------- where it runs (this machine or Hugging Face Jobs)


def _flavor_update(current: str | None, refresh: bool = False):
    """The flavour dropdown and a note (prices, or why the list is old or missing). Operators only: the list
    comes from the Hub with the server's token (executor.flavor_list refuses anyone else)."""
    try:
        listed = executor.flavor_list(refresh=refresh)
    except StudioError as error:
        return gr.update(choices=[], value=None), _error(error)
    choices = flavors.choices(listed)
    names = [name for _, name in choices]
    value = current if current in names else (names[0] if names else None)
    note = (
        "Prices per hour as Hugging Face lists them; the job bills the account of the studio's HF_TOKEN. "
        "Only the studio's operators can start remote runs."
    )
    if listed.stale_reason:
        note = (
            f"⚠ List from {listed.fetched_at[:16].replace('T', ' ')} UTC ({escape.md_inline(listed.stale_reason)}). "
            + note
        )
    return gr.update(choices=choices, value=value), _shown(note)


def choose_where(where: str | None, current_flavor: str | None):
    """Show the Jobs settings (and, for an operator, load the flavours) when the run goes to Hugging Face Jobs."""
    remote = where == executors.HF_JOBS
    if not remote:
        return (gr.update(visible=False), gr.skip(), "", gr.update(interactive=preflight.zero_gpu_message() is None))
    flavor, note = _flavor_update(current_flavor)
    return gr.update(visible=True), flavor, note, gr.update(interactive=True)  # ZeroGPU can still send jobs


def refresh_flavors(current_flavor: str | None):
    return _flavor_update(current_flavor, refresh=True)


def _remote_check(values, hidden, flavor: str | None, max_cost, browser_id: str | None = None):
    """(config, RemoteEstimate, markdown, cli command, config json) for the form on a Jobs flavour: the same
    checked config as a local run (the caller's dataset, an allowed model), estimated by an operator only."""
    executor.require_operator(_me(browser_id))  # before anything is read, estimated or uploaded
    config = checked_config(values, hidden, browser_id)
    cap = float(max_cost) if isinstance(max_cost, (int, float)) else None
    result, listed = executor.remote_estimate(config, flavor, cap)
    markdown = result.markdown()
    if listed.stale_reason:
        markdown = (
            f"⚠ *Flavour list from {listed.fetched_at[:16]} UTC: {escape.md_inline(listed.stale_reason)}*\n\n"
            + markdown
        )
    command = result.report.cli_command
    if command:
        command += " " + shlex.join(executors.Choice(executors.HF_JOBS, flavor, cap).cli_args())
    return config, result, _shown(markdown), _shown(command), _shown(result.report.config_json)


def check_where(*args):
    """Preflight for where the run goes: this machine (check_settings) or a Jobs flavour (time, memory, cost)."""
    *values, hidden, where, flavor, max_cost = args

    if where != executors.HF_JOBS:
        return check_settings(*values, hidden)
    try:
        _config, result, markdown, command, config_json = _remote_check(values, hidden, flavor, max_cost)
    except StudioError as error:
        return _error(error), "", ""
    return markdown, command, config_json


def start_where(*args):
    """Start on this machine (start_run: the queue) or send the run to Hugging Face Jobs (operators only;
    executor.submit checks it again, whoever calls)."""
    *values, hidden, where, flavor, max_cost, browser_id, view = args

    if where != executors.HF_JOBS:
        return start_run(*values, hidden, browser_id, view)
    try:
        config, result, markdown, command, config_json = _remote_check(values, hidden, flavor, max_cost, browser_id)
    except StudioError as error:
        return _error(error), gr.skip(), gr.skip(), gr.skip(), view
    report = result.report
    if report.blocking:
        return markdown, command, config_json, "**Not sent:** fix the points marked ✕ first.", view
    me = _me(browser_id)
    try:
        record = supervisor.launch_with(
            config, owner=me.user_id, identity=me, choice=executors.Choice(executors.HF_JOBS, flavor, result.max_cost)
        )
    except StudioError as error:
        return markdown, command, config_json, _error(error), view
    sent = (
        f"☁ **Sent '{escape.md_inline(record.name)}' to Hugging Face Jobs** ({escape.md_inline(flavor)}). Follow it "
        "below — you can close this page; the job keeps going and this view reattaches."
    )
    return markdown, command, config_json, _with_warnings(sent, report), open_view(record.run_id)


# ---------------------------------------------------------------- the live view


def open_view(run_id: str | None) -> dict:
    return {
        "run_id": run_id,
        "offset": 0,
        "events": [],
        "status_key": None,
        "log_key": None,
        "runs_key": None,
        "rendered": False,
    }


def _file_key(path: Path):
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_mtime_ns, stat.st_size]


def active_run_id(browser_id: str | None = None) -> str | None:
    """The newest queued or active run the caller may see."""
    for record in _visible_runs(browser_id):
        if record.state in ("queued",) + store.ACTIVE:
            return record.run_id
    return None


def on_load(browser_id: str | None, view: dict | None, asked: str | None = None):
    """Take this browser's lasting (signed) id, reconcile dead workers, and reattach to the caller's active
    (else newest) run. Returns the token to keep and the view."""
    session_key, _username = request_identity()
    token = access.establish(session_key, browser_id)
    try:
        supervisor.reconcile()
    except Exception:  # noqa: BLE001 - a broken run folder must not break the page
        pass
    visible = [record.run_id for record in _visible_runs(token)]
    # `asked`: the run in the page's address (?run=ID, read by BROWSER_ID_JS) — only one this caller may see.
    run_id = asked if asked in visible else active_run_id(token)
    if run_id is None:
        run_id = visible[0] if visible else None
    return token, open_view(run_id)


def _advance(view: dict, browser_id: str | None = None) -> tuple[dict, Any, bool, bool, bool]:
    """Read what changed in the viewed run's folder since the last tick."""
    record = supervisor.reconcile_one(_run_for(view["run_id"], browser_id))  # a dead worker: interrupted
    status_key = _file_key(record.dir / store.STATUS_FILE)
    events, offset = store.read_events(record.dir, view["offset"])
    if offset < view["offset"]:  # the events file was replaced: start over
        view["events"] = []
    view["offset"] = offset
    view["events"] = view["events"] + events
    status_changed = status_key != view["status_key"]
    view["status_key"] = status_key
    log_key = _file_key(record.dir / "log.txt")
    log_changed = log_key != view["log_key"]
    view["log_key"] = log_key
    return view, record, bool(events), status_changed, log_changed


def _run_header(record, browser_id: str | None) -> str:
    config = record.config
    try:
        model = catalog.label(config.get("model", ""))
    except StudioError:
        model = config.get("model", "")
    dataset = _dataset_name(str(config.get("dataset", "")), {})
    me = _me(browser_id)
    owner = record.owner
    if access.owns(me, record):
        whose = " · started in this browser"
    elif not owner:
        whose = ""
    elif access.is_public() and record.shared and not me.operator:
        whose = " · a shared demo run"
    else:
        whose = " · started by another session"
    if record.shared and (me.operator or access.owns(me, record)) and access.is_public():
        whose += " · shared with every visitor"
    started = str(record.status.get("started_at") or record.status.get("created_at") or "")[:16].replace("T", " ")
    return _shown(
        f"### {escape.md_inline(record.name)}\n{escape.md_code(record.run_id)} · {escape.md_inline(_shown(model))} · "
        f"dataset {escape.md_code(_shown(dataset))} · started {escape.md_inline(started)} UTC{whose}"
    )


def _queue_line(record) -> str:
    """Where a waiting run stands: its place in the queue and an estimated start."""
    try:
        current = supervisor.busy()
    except Exception:  # noqa: BLE001
        current = None
    place = queue.places(current.eta_seconds if current else None, current is not None).get(record.run_id)
    if place is None:
        return ""
    return (
        f"⏳ **Queued: position {place.position} of {place.of}** — {place.start_text}. It starts by itself; "
        "you can close this page."
    )


def _status_markdown(record, events: list[dict], browser_id: str | None) -> str:
    status = record.status
    state = record.state
    remote = executors.remote_for(record)
    me = _me(browser_id)
    lines = []
    if remote:  # job, cost and repos for its owner and the operator; the others see where it runs
        lines.append(remote.describe(status, full=not access.is_public() or me.operator or access.owns(me, record)))
    error = status.get("error")
    if state == "failed" and isinstance(error, dict):
        lines.append(
            f"✕ **{escape.md_inline(error.get('message', 'The run failed.'))}**"
            + (f"\n\n*Hint:* {escape.md_inline(error['hint'])}" if error.get("hint") else "")
        )
    elif state == "interrupted" and isinstance(error, dict):
        lines.append(
            f"⏸ **{escape.md_inline(error.get('message', 'Interrupted.'))}**"
            + (f"\n\n*Hint:* {escape.md_inline(error['hint'])}" if error.get("hint") else "")
        )
    elif state == "stopped":
        if isinstance(error, dict):
            note = f" {escape.md_inline(error.get('message'))} {escape.md_inline(error.get('hint', ''))}"
        elif record.adapter_dir is not None:
            note = " The adapter was saved; Resume continues from the last checkpoint."
        elif store.last_checkpoint(record.dir) is not None:
            note = " Resume continues from the last checkpoint."
        else:
            note = " It stopped before its first checkpoint, so there is nothing to resume or export: start it again."
        lines.append(f"■ **Stopped.**{note}")
    elif state == "completed":
        lines.append("✓ **Completed.** The adapter is ready: open it in **Compare**, or export it below.")
    elif state == "stopping":
        requested = charts._started_seconds(status.get("stop_requested_at"))
        waited = time.time() - requested if requested else 0
        if remote:
            lines.append(
                "… **Stopping:** the job finishes the current step, saves, and pushes the adapter; then the "
                "studio downloads it"
                + (
                    f" (the job is cancelled after {remote.stop_timeout():.0f} s)."
                    if not status.get("cancel_requested_at")
                    else " (cancelling)."
                )
            )
        elif waited > supervisor.DEFAULT_STOP_TIMEOUT:
            lines.append(
                f"⚠ **Still stopping after {units.format_duration(waited)}.** Use **Force stop** to end it now "
                "(keeps the last checkpoint; this step's work is lost)."
            )
        else:
            lines.append("… **Stopping:** finishing the current step, then saving a checkpoint and the adapter…")
    elif state in ("queued", "starting") and remote:
        lines.append(
            "… **Starting on Hugging Face Jobs:** " + escape.md_inline(status.get("job_phase") or "submitting…")
        )
    elif state in ("queued", "starting"):
        if queue.is_waiting(record):
            lines.append(_queue_line(record))
        else:
            lines.append("… **Starting:** loading the model and preparing the data (imports take a few seconds)…")
    another_session = (
        state in ("queued",) + ("starting", "running", "stopping")
        and record.owner
        and not access.owns(me, record)
        and not (access.is_public() and me.operator)
    )
    if another_session and remote:  # a remote run does not use this machine's trainer
        admin = " or enter the admin password below" if os.environ.get(supervisor.ADMIN_ENV) else ""
        lines.append(f"Another session started this run: only that browser{admin} can stop or delete it.")
    elif another_session:
        try:
            busy = supervisor.busy()
        except Exception:  # noqa: BLE001
            busy = None
        if busy is None:
            until = "The trainer is busy with this run."
        elif access.is_public() and busy.run_id != record.run_id:
            until = "The trainer is busy with another visitor's run."
        else:
            until = escape.md_inline(busy.message)
        admin = " or enter the admin password below" if os.environ.get(supervisor.ADMIN_ENV) else ""
        lines.append(f"**Busy:** {until} Another session started it: only that browser{admin} can stop or delete it.")
    last = next((event for event in reversed(events) if event.get("type") == "log"), None)
    if last:
        facts = []
        if last.get("loss") is not None:
            facts.append(f"loss **{last['loss']:.4f}**")
        if last.get("learning_rate") is not None:
            facts.append(f"learning rate {last['learning_rate']:.2e}")
        if last.get("tokens_per_s"):
            facts.append(f"{last['tokens_per_s']:,.0f} tokens/s")
        if last.get("mean_token_accuracy") is not None:
            facts.append(f"token accuracy {last['mean_token_accuracy']:.1%}")
        if last.get("memory_gb"):
            facts.append(f"memory {last['memory_gb']:.1f} GiB")
        best = charts.best_eval(events)
        diverged = status.get("diverged") or {}
        if best:
            before = f" (before the loss diverged at step {diverged['step']})" if diverged.get("step") else ""
            facts.append(f"best eval loss **{best[1]:.4f}** at step {best[0]}{before}")
        lines.append(" · ".join(facts))
    notes = status.get("notes") or []
    if notes:
        lines.append("\n".join(f"- Note: {escape.md_inline(_shown(note))}" for note in notes))
    return _shown("\n\n".join(lines))


def _log_tail(record, browser_id: str | None = None) -> str:
    """The end of the run's log: for its owner and the operator only (a shared run shows its charts, not its
    log); in public mode without the server's folders."""
    me = _me(browser_id)
    if access.is_public() and not (me.operator or access.owns(me, record)):
        return "(The log of a shared run is visible to its owner only.)"
    path = record.dir / "log.txt"
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    if size > LOG_TAIL_BYTES:
        text = text.split("\n", 1)[-1]
    return _shown(text)


def _buttons(record, browser_id: str | None) -> tuple:
    """Stop, force stop, resume, delete: shown only when they make sense for the run's state and the viewer.

    Another browser's run shows no controls unless an admin password is configured (then they ask for it).
    """
    state = record.state if record else None
    active = state in ("queued",) + store.ACTIVE
    stopping = state == "stopping"
    me = _me(browser_id)
    try:
        access.authorize(me, access.CONTROL, record)
        may_act = True
    except StudioError:
        may_act = bool(os.environ.get(supervisor.ADMIN_ENV)) and access.can_see(me, record)
    resumable = state in supervisor.RESUMABLE and store.last_checkpoint(record.dir) is not None
    return (
        gr.update(visible=may_act and active and not stopping),
        gr.update(visible=may_act and active, variant="stop" if stopping else "secondary"),
        gr.update(visible=may_act and bool(resumable)),
        gr.update(visible=may_act and not active),
    )


EMPTY_OUTPUTS = 15  # outputs of poll() after the view state


def _history_outputs(browser_id: str | None = None) -> tuple:
    rows, ids = history_table(browser_id)
    return gr.update(value=rows), ids


def _empty_view_outputs(message: str, browser_id: str | None = None) -> tuple:
    return (
        gr.update(visible=False),
        f"*{message}*",
        "",
        "",
        charts.loss_figure([]),
        charts.rate_figure([]),
        "",
        "",
        *(gr.update(visible=False),) * 4,
        gr.skip(),
        *_history_outputs(browser_id),
    )


def render(view: dict, browser_id: str | None, force: bool = False) -> tuple:
    """Outputs of the live view: panel, header, status, progress, loss chart, rate chart, overfitting, log,
    4 buttons, the action message, the history table and its run ids.

    Unchanged parts come back as gr.skip() so a tick costs almost nothing while a run is idle; the history
    is re-read only when the viewed run changes state.
    """
    if not view or not view.get("run_id"):
        return (
            view,
            *_empty_view_outputs("No run yet. Pick your settings above and press Start training.", browser_id),
        )
    try:
        view, record, new_events, status_changed, log_changed = _advance(view, browser_id)
    except StudioError as error:
        return (
            open_view(None),
            gr.update(visible=False),
            _error(error),
            "",
            "",
            charts.loss_figure([]),
            charts.rate_figure([]),
            "",
            "",
            *(gr.update(visible=False),) * 4,
            gr.skip(),
            *_history_outputs(browser_id),
        )
    first = force or not view.get("rendered")
    view["rendered"] = True
    state_changed = view.get("state") not in (None, record.state)
    view["state"] = record.state
    active = record.state in ("queued", "starting", "running", "stopping")
    events = view["events"]
    header = _run_header(record, browser_id) if first or status_changed else gr.skip()
    status_md = (
        _status_markdown(record, events, browser_id) if first or status_changed or new_events or active else gr.skip()
    )
    progress = charts.progress_html(record.status, events) if first or active or status_changed else gr.skip()
    loss = charts.loss_figure(events, title="Loss") if first or new_events else gr.skip()
    rates = charts.rate_figure(events) if first or new_events else gr.skip()
    warning = charts.overfitting(events)
    overfit = (f"⚠ **{escape.md_inline(warning.message)}**" if warning else "") if first or new_events else gr.skip()
    log = _log_tail(record, browser_id) if first or log_changed else gr.skip()
    buttons = _buttons(record, browser_id) if first or status_changed else (gr.skip(),) * 4
    panel = gr.update(visible=True) if first else gr.skip()
    action = "" if state_changed else gr.skip()  # "Stopping…" and the like are stale once the state moved on
    history = _history_outputs(browser_id) if first or state_changed else (gr.skip(), gr.skip())
    return (view, panel, header, status_md, progress, loss, rates, overfit, log, *buttons, action, *history)


def poll(view: dict, browser_id: str | None):
    """Timer tick. With no run in view, look (cheaply) for one that another browser started."""
    if not view or not view.get("run_id"):
        runs_key = _file_key(paths.runs_dir())
        if view and runs_key == view.get("runs_key"):
            return (gr.skip(),) * (EMPTY_OUTPUTS + 1)
        run_id = active_run_id()  # (the caller's: the guard set who is asking)
        if run_id is None:
            fresh = open_view(None)
            fresh["runs_key"] = runs_key
            return (fresh,) + (gr.skip(),) * EMPTY_OUTPUTS
        view = open_view(run_id)
    return render(view, browser_id)


def show_run(run_id: str | None, browser_id: str | None):
    """Open a run picked in the history (the table itself is left as it is, so the click stays visible)."""
    return render(open_view(run_id), browser_id, force=True)[:-2] + (gr.skip(), gr.skip())


# ---------------------------------------------------------------- run actions


def _acting_on(view: dict) -> str:
    run_id = (view or {}).get("run_id")
    if not run_id:
        raise StudioError("No run is selected.", "Pick a run in the history table.")
    return run_id


def stop_run(view: dict, browser_id: str | None, admin_password: str | None, force: bool = False) -> str:
    try:
        run_id = _run_for(_acting_on(view), browser_id).run_id
        record = supervisor.stop(run_id, requester=_me(browser_id), admin_password=admin_password or None, force=force)
    except StudioError as error:
        return _error(error)
    if record.state == "stopped" and (record.status.get("error") or {}).get("message", "").startswith("Cancelled"):
        return f"■ **Cancelled '{escape.md_inline(record.name)}'** before it started; it left the queue."

    if executors.remote_for(record):
        if force:
            return (
                f"■ **Cancelling the job of '{escape.md_inline(record.name)}'.** Resume continues from the "
                f"last checkpoint it pushed."
            )
        return (
            f"… **Stopping '{escape.md_inline(record.name)}':** the job finishes this step, saves and pushes the "
            "adapter, and the studio downloads it (this takes a minute or more)."
        )
    if force:
        return (
            f"■ **Force-stopped '{escape.md_inline(record.name)}'.** The process tree was killed; Resume "
            f"continues from the last checkpoint."
        )
    return (
        f"… **Stopping '{escape.md_inline(record.name)}':** it finishes this step, then saves a checkpoint "
        f"and the adapter."
    )


def force_stop_run(view: dict, browser_id: str | None, admin_password: str | None) -> str:
    return stop_run(view, browser_id, admin_password, force=True)


def resume_run(view: dict, browser_id: str | None, admin_password: str | None):
    """Resume the viewed run (a remote run: a new job, for an operator only — the executor checks it)."""
    try:
        run_id = _run_for(_acting_on(view), browser_id).run_id
        record = supervisor.resume(run_id, requester=_me(browser_id), admin_password=admin_password or None)
    except StudioError as error:
        return _error(error), view
    return f"▶ **Resumed '{escape.md_inline(record.name)}'** from its last checkpoint.", open_view(record.run_id)


def ask_delete(view: dict):
    try:
        record = _run_for(_acting_on(view))
    except StudioError as error:
        return _error(error), gr.update(visible=False)
    return (
        f"**Delete '{escape.md_inline(record.name)}' for good?** Its checkpoints, adapter and Compare results are "
        f"removed.",
        gr.update(visible=True),
    )


def delete_run(view: dict, browser_id: str | None, admin_password: str | None):
    try:
        record = _run_for(_acting_on(view), browser_id)
        supervisor.delete(record.run_id, requester=_me(browser_id), admin_password=admin_password or None)
    except StudioError as error:
        return _error(error), gr.update(visible=False), view
    runs = _visible_runs(browser_id)
    job = record.status.get("job") or {}
    kept = (
        f" Its private repos on Hugging Face ({escape.md_code(job.get('inputs_repo'))}, "
        f"{escape.md_code(job.get('outputs_repo'))}) were kept; delete them there if you no longer need them."
        if job.get("outputs_repo")
        else ""
    )
    return (
        f"✓ Deleted '{escape.md_inline(record.name)}'.{kept}",
        gr.update(visible=False),
        open_view(runs[0].run_id if runs else None),
    )


def cancel_delete():
    return "", gr.update(visible=False)


# ---------------------------------------------------------------- history


def _duration(status: dict) -> str:
    return units.format_duration(charts.progress(status, []).get("elapsed"))


def short_model_name(ref: str) -> str:
    """'bundled:SmolLM2-135M-Instruct' → 'SmolLM2-135M-Instruct'; a folder → its name; a Hub id stays."""
    ref = str(ref or "")
    if ref.startswith("bundled:"):
        return ref.split(":", 1)[1]
    if ref.startswith(("/", "~", ".")):
        return Path(ref).name or ref
    return ref


def _dataset_name(path: str, cache: dict) -> str:
    """The name of a run's dataset — only when the caller may use that dataset (a shared run's data stays its
    owner's: public mode shows no name for it)."""
    if path not in cache:
        if access.is_public():
            try:
                folder = _dataset_folder(path)
            except StudioError:
                cache[path] = "—"
                return cache[path]
        else:
            folder = path
        manifest = preflight.read_manifest(folder) if path else None
        cache[path] = (manifest or {}).get("name") or Path(path).name
    return cache[path]


def history_table(browser_id: str | None = None) -> tuple[list[list[Any]], list[str]]:
    """Rows for the history table and the run id of each row: the runs the caller may see."""
    rows, ids, names = [], [], {}
    for record in _visible_runs(browser_id):
        config, status = record.config, record.status
        best = status.get("best_eval_loss")
        steps = f"{status.get('step') or 0} / {status.get('total_steps') or '?'}"
        started = str(status.get("started_at") or status.get("created_at") or "")[:16].replace("T", " ")
        where = (
            f" · Jobs {(status.get('job') or {}).get('flavor', '')}".rstrip()
            if status.get("executor") == "hf-jobs"
            else ""
        )
        rows.append(
            [
                record.name,
                short_model_name(config.get("model", "")),
                _dataset_name(str(config.get("dataset", "")), names),
                record.state + where,
                steps,
                f"{best:.4f}" if isinstance(best, (int, float)) else "—",
                _duration(status),
                started,
            ]
        )
        ids.append(record.run_id)
    return rows, ids


def refresh_history(browser_id: str | None = None):
    rows, ids = history_table(browser_id)
    return gr.update(value=rows), ids


def pick_history_row(run_ids: list[str], browser_id: str | None, evt: gr.SelectData):
    index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    if not run_ids or index is None or index >= len(run_ids):
        return (gr.skip(),) * (EMPTY_OUTPUTS + 2)
    return (*show_run(run_ids[index], browser_id), _config_json(run_ids[index], browser_id))


def _config_json(run_id: str | None, browser_id: str | None = None) -> str:
    if not run_id:
        return ""
    try:
        return _shown(json.dumps(_run_for(run_id, browser_id).config, indent=2))
    except StudioError:
        return ""


def train_again(view: dict):
    """Fill the form with the viewed run's settings."""
    try:
        record = _run_for(_acting_on(view))
    except StudioError as error:
        return [gr.skip()] * len(FORM_FIELDS) + [gr.skip(), _error(error)]
    config = dict(record.config)
    config["name"] = ""
    try:
        manifest = preflight.read_manifest(_dataset_folder(config.get("dataset")))
        config["dataset"] = data_store.dataset_value(manifest) if manifest else ""
    except StudioError:
        config["dataset"] = ""  # someone else's dataset (a shared run): pick one of your own
    values = form_values(config)
    updates = []
    for name, value in zip(FORM_FIELDS, values):
        if name == "dataset":
            updates.append(gr.update(choices=dataset_choices(), value=value))
        else:
            updates.append(gr.update(value=value))
    hidden = {key: config.get(key) for key in HIDDEN_FIELDS if key in config}
    return updates + [
        hidden,
        f"↩ The form now holds the settings of **{escape.md_inline(record.name)}**. Check them and start.",
    ]


def open_in_compare(view: dict):
    try:
        record = _run_for(_acting_on(view), action=access.CHAT)
    except StudioError as error:
        return gr.skip(), gr.skip(), _error(error)
    if record.adapter_dir is None:
        try:
            export.adapter_source(record.dir)
        except StudioError as error:
            return gr.skip(), gr.skip(), _error(error)
    return record.run_id, gr.Tabs(selected="compare"), ""


# ---------------------------------------------------------------- export


def _run_dir(view: dict) -> Path:
    """The folder of the viewed run when the caller may export it (its owner, or an operator)."""
    return _run_for(_acting_on(view), action=access.EXPORT).dir


def export_zip(view: dict):
    try:
        run_dir = _run_dir(view)
        source = export.adapter_source(run_dir)
        target = export.zip_adapter(run_dir)
    except StudioError as error:
        return gr.update(visible=False), _error(error)

    return gr.update(
        value=download_copy(target), visible=True
    ), f"✓ Zipped {source.note} — {target.stat().st_size / 1024**2:.1f} MB."


def ask_merge(view: dict):
    try:
        run_dir = _run_dir(view)
        info = export.merge_disk_needed(run_dir)
        quotas.check_quota(_me(), "bytes", extra_bytes=int(info.get("needed_bytes") or 0))
    except StudioError as error:
        return _error(error), gr.update(visible=False)
    if not info["enough"]:
        return f"✕ **Not enough disk space.** {info['text']}", gr.update(visible=False)
    return (
        f"**Merge the adapter into full weights?** {info['text']} Saved in the run folder as `merged/`; "
        "takes a minute on a small model."
    ), gr.update(visible=True)


def merge_run(view: dict, progress=gr.Progress()):
    try:
        run_dir = _run_dir(view)
        info = export.merge_disk_needed(run_dir)
        quotas.check_quota(_me(), "bytes", extra_bytes=int(info.get("needed_bytes") or 0))
        # export.merge refuses remote code as studio.access says and picks the Hub token for this run.
        target = export.merge(run_dir, progress=lambda fraction, text: progress(fraction, desc=text))
    except StudioError as error:
        return _error(error), gr.update(visible=False)
    return (
        f"✓ **Merged model saved** in {escape.md_code(_shown(str(target)))} (loads with plain `from_pretrained`, no "
        "PEFT needed)."
    ), gr.update(visible=False)


def push_run(view: dict, repo_id: str, token: str, what: str, private: bool):
    """Push to the Hub. The token is used for this call only and the textbox is cleared afterwards."""
    kind = "merged" if str(what).lower().startswith("merged") else "adapter"
    try:
        url = export.push_to_hub(_run_dir(view), repo_id, token, what=kind, private=bool(private))
    except StudioError as error:
        return _error(error), ""
    return f"✓ **Pushed the {kind}** to [{url}]({url}).", ""


# ---------------------------------------------------------------- layout


def build(shared: Shared) -> None:
    defaults = RunConfig()
    hardware = _hardware()
    qlora_reason = preflight.qlora_reason(hardware)
    zero_gpu = preflight.zero_gpu_message()
    admin_enabled = bool(os.environ.get("STUDIO_ADMIN_PASSWORD"))

    browser_id = gr.State(None)  # set on load from localStorage (BROWSER_ID_JS)
    browser_id_carrier = gr.Textbox(visible=False)
    view = gr.State(open_view(None))
    hidden = gr.State({})
    run_ids = gr.State([])

    gr.Markdown(
        "**Train a LoRA adapter.** Pick a model and a dataset, check the estimate, start. Training runs in its own "
        "process: you can close or reload this page and come back — the run keeps going and this view reattaches.",
        elem_classes="tab-intro",
    )
    if zero_gpu:
        gr.Markdown(
            f"⚠ **{zero_gpu}** Or send the run to *Hugging Face Jobs* (Where to train, below).", elem_id="train-zerogpu"
        )

    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            gr.Markdown("#### 1 · Settings")
            with gr.Row():
                model = gr.Dropdown(
                    _model_choices(),
                    value=defaults.model,
                    label="Model",
                    allow_custom_value=True,
                    info="The bundled model works offline. Or type a Hub id (owner/name) or a local folder.",
                    scale=4,
                    elem_id="train-model",
                )
                remote_code_offered = not access.is_public() or access.settings().allow_remote_code
                trust = gr.Checkbox(
                    value=False,
                    label="Allow remote code",
                    scale=1,
                    visible=remote_code_offered,
                    info="Only for models whose authors you trust."
                    if not access.is_public()
                    else "Operators only (STUDIO_ALLOW_REMOTE_CODE=1).",
                )
            with gr.Row():
                datasets = dataset_choices()
                dataset = gr.Dropdown(
                    datasets,
                    value=datasets[0][1] if datasets else None,
                    label="Dataset",
                    info="Saved in the Data tab (cleaned and split).",
                    scale=5,
                    elem_id="train-dataset",
                )
                refresh = gr.Button("↻", scale=0, min_width=40, size="sm", elem_id="train-dataset-refresh")
            dataset_info = gr.Markdown(elem_id="train-dataset-info")
            with gr.Accordion("…or upload a file (linted first)", open=False):
                upload = gr.File(
                    label='Chat data: JSONL or JSON with a "messages" list per row',
                    file_types=[".jsonl", ".json"],
                    type="filepath",
                )
                upload_message = gr.Markdown()
            prefill_note = gr.Markdown()
            with gr.Row():
                epochs = gr.Number(defaults.epochs, label="Epochs", step=1, elem_id="train-epochs")
                learning_rate = gr.Number(
                    0,
                    label="Learning rate (0 = auto)",
                    step=0.0001,
                    elem_id="train-lr",
                    info="auto: 1e-3 below 1B parameters, else 2e-4",
                )
                lora_r = gr.Number(defaults.lora_r, label="LoRA rank", precision=0, step=4, elem_id="train-lora-r")
                max_steps = gr.Number(
                    0, label="Max steps (0 = all)", precision=0, elem_id="train-max-steps", info="A short trial run"
                )
            name = gr.Textbox(
                label="Run name (optional)", placeholder="e.g. pirate style, r8, 3 epochs", elem_id="train-name"
            )
            with gr.Accordion("Advanced settings", open=False, elem_id="train-advanced"):
                with gr.Row():
                    lora_alpha = gr.Number(
                        defaults.lora_alpha, label="LoRA alpha", precision=0, info="Usually 2 × rank"
                    )
                    lora_dropout = gr.Number(defaults.lora_dropout, label="LoRA dropout", step=0.05)
                    target_modules = gr.Textbox(
                        defaults.target_modules, label="Target modules", info="all-linear, or e.g. q_proj,v_proj"
                    )
                    use_dora = gr.Checkbox(
                        defaults.use_dora, label="DoRA", info="Often better at low rank; ~20 % slower"
                    )
                with gr.Row():
                    batch_size = gr.Number(defaults.batch_size, label="Batch size", precision=0)
                    grad_accum = gr.Number(defaults.grad_accum, label="Gradient accumulation", precision=0)
                    max_length = gr.Number(
                        defaults.max_length,
                        label="Max length (tokens)",
                        precision=0,
                        info="Set from the dataset's p99",
                        elem_id="train-max-length",
                    )
                    packing = gr.Checkbox(defaults.packing, label="Packing", info="Joins short rows; no padding")
                with gr.Row():
                    assistant_only = gr.Checkbox(
                        defaults.assistant_only_loss,
                        label="Assistant-only loss",
                        info="Learn the answers, not the prompts",
                    )
                    warmup = gr.Number(defaults.warmup, label="Warmup", info="< 1: fraction of steps; ≥ 1: steps")
                    scheduler = gr.Dropdown(list(SCHEDULERS), value=defaults.scheduler, label="LR scheduler")
                    weight_decay = gr.Number(defaults.weight_decay, label="Weight decay", step=0.01)
                assistant_note = gr.Markdown(ASSISTANT_ONLY_OFF, visible=not defaults.assistant_only_loss)
                with gr.Row():
                    seed = gr.Number(defaults.seed, label="Seed", precision=0)
                    eval_steps = gr.Number(
                        defaults.eval_steps, label="Eval every N steps", precision=0, info="0 = automatic"
                    )
                    save_steps = gr.Number(
                        defaults.save_steps, label="Checkpoint every N steps", precision=0, info="0 = automatic"
                    )
                    logging_steps = gr.Number(
                        defaults.logging_steps, label="Log every N steps", precision=0, info="0 = automatic"
                    )
                qlora = gr.Checkbox(
                    False,
                    label="QLoRA 4-bit",
                    interactive=qlora_reason is None,
                    info=qlora_reason or "Base weights in 4 bits: about 4× less GPU memory, ~30 % slower.",
                )

        with gr.Column(scale=2):
            gr.Markdown("#### 2 · Check and start")
            jobs_label = "Hugging Face Jobs (the operator only)" if access.is_public() else "Hugging Face Jobs"
            where = gr.Radio(
                [("This machine", "local"), (jobs_label, "hf-jobs")],
                value="local",
                label="Where to train",
                info=f"This machine: {hardware.summary}",
                elem_id="train-where",
            )
            with gr.Group(visible=False, elem_id="train-jobs") as jobs_box:
                with gr.Row():
                    flavor = gr.Dropdown(
                        [],
                        label="Jobs hardware (flavour)",
                        scale=5,
                        elem_id="train-flavor",
                        info="GPU or CPU machine on Hugging Face, billed by the second",
                    )
                    flavor_refresh = gr.Button("↻", scale=0, min_width=40, size="sm", elem_id="train-flavor-refresh")
                max_cost = gr.Number(
                    default_max_cost(),
                    label="Cost cap (US$)",
                    minimum=0,
                    elem_id="train-max-cost",
                    info="Hugging Face stops the job when it has cost this much",
                )
                jobs_note = gr.Markdown(elem_id="train-jobs-note")
            check_button = gr.Button("Check settings", elem_id="train-check")
            preflight_md = gr.Markdown(
                "*Press **Check settings** for steps, time and memory on this machine.*", elem_id="train-preflight"
            )
            with gr.Row(equal_height=True):
                start_button = gr.Button(
                    "Start training", variant="primary", elem_id="train-start", interactive=zero_gpu is None, scale=1
                )
                # Beside the button: what happened, with the number of warnings that went with it (never blocking).
                start_message = gr.Markdown(elem_id="train-start-message", container=False)
            with gr.Accordion("Equivalent command and config JSON", open=False):
                cli_code = gr.Code(
                    label="Same run from a terminal", language="shell", interactive=False, elem_id="train-cli"
                )
                config_code = gr.Code(label="RunConfig JSON", language="json", interactive=False)

    gr.Markdown("#### 3 · Run")
    header = gr.Markdown("*No run yet. Pick your settings above and press Start training.*", elem_id="train-run-header")
    with gr.Column(visible=False, elem_id="train-run-panel") as run_panel:
        progress = gr.HTML(elem_id="train-progress")
        status_md = gr.Markdown(elem_id="train-status")
        with gr.Row():
            stop_button = gr.Button("Stop (save and end)", variant="secondary", visible=False, elem_id="train-stop")
            force_button = gr.Button("Force stop", variant="secondary", visible=False, elem_id="train-force-stop")
            resume_button = gr.Button("Resume", variant="primary", visible=False, elem_id="train-resume")
            delete_button = gr.Button("Delete run…", variant="secondary", visible=False, elem_id="train-delete")
        with gr.Row(visible=False) as confirm_row:
            confirm_button = gr.Button("Yes, delete it", variant="stop", elem_id="train-delete-confirm")
            cancel_button = gr.Button("Cancel")
        action_message = gr.Markdown(elem_id="train-action-message")
        admin_password = gr.Textbox(
            label="Admin password (to stop or delete another session's run)", type="password", visible=admin_enabled
        )
        overfit_md = gr.Markdown(elem_id="train-overfitting")
        loss_plot = gr.Plot(label="Loss", show_label=False, elem_id="train-loss-plot")
        rate_plot = gr.Plot(label="Learning rate and speed", show_label=False, elem_id="train-rate-plot")
        with gr.Accordion("Log (last lines)", open=False):
            log_code = gr.Code(language=None, interactive=False, elem_id="train-log", max_lines=30)
        with gr.Row():
            again_button = gr.Button("Train again with these settings", elem_id="train-again")
            compare_button = gr.Button("Open in Compare →", variant="primary", elem_id="train-open-compare")
        with gr.Accordion("Export: download, merge, push to the Hub", open=False, elem_id="train-export"):
            with gr.Row():
                zip_button = gr.Button("Download adapter (.zip)", elem_id="train-zip")
                merge_button = gr.Button("Merge into full weights…", elem_id="train-merge")
            zip_file = gr.File(label="Adapter zip", visible=False, interactive=False)
            export_message = gr.Markdown()
            merge_confirm = gr.Button("Merge now", variant="primary", visible=False)
            with gr.Row():
                repo_id = gr.Textbox(label="Hub repository", placeholder="your-name/my-adapter", scale=2)
                token = gr.Textbox(
                    label="Hugging Face token (write)",
                    type="password",
                    scale=2,
                    info="Used for this upload only; never saved.",
                )
                what = gr.Radio(["Adapter", "Merged model"], value="Adapter", label="Push", scale=1)
                private_repo = gr.Checkbox(True, label="Private repo", scale=1)
            push_button = gr.Button("Push to the Hub", elem_id="train-push")
            push_message = gr.Markdown()
        with gr.Accordion("Config of this run", open=False):
            run_config_code = gr.Code(language="json", interactive=False)
        public = access.is_public()
        with gr.Accordion("Operator tools (the operator only)", open=False, visible=public, elem_id="train-operator"):
            gr.Markdown(
                "Share the viewed run with every visitor (a demo they can open and chat with in Compare), "
                "or move a queued run to the front. Visitors who press these are refused."
            )
            with gr.Row():
                share_button = gr.Button("Share this run with every visitor", elem_id="train-share")
                unshare_button = gr.Button("Stop sharing it", elem_id="train-unshare")
                front_button = gr.Button("Move it to the front of the queue", elem_id="train-queue-front")
                queue_button = gr.Button("Show the queue", elem_id="train-queue-show")
            operator_message = gr.Markdown(elem_id="train-operator-message")

    gr.Markdown("#### 4 · History")
    history = gr.Dataframe(
        headers=HISTORY_HEADERS,
        value=[],
        interactive=False,
        wrap=True,
        elem_id="train-history",
        label="All runs (click a row to open it)",
        show_row_numbers=False,
        column_widths=["22%", "16%", "14%", "9%", "8%", "10%", "9%", "12%"],
    )

    # ---- wiring
    form = [
        model,
        trust,
        dataset,
        name,
        epochs,
        learning_rate,
        lora_r,
        max_steps,
        lora_alpha,
        lora_dropout,
        target_modules,
        use_dora,
        batch_size,
        grad_accum,
        max_length,
        packing,
        assistant_only,
        warmup,
        scheduler,
        weight_decay,
        seed,
        eval_steps,
        save_steps,
        logging_steps,
        qlora,
    ]
    assert len(form) == len(FORM_FIELDS)
    view_outputs = [
        view,
        run_panel,
        header,
        status_md,
        progress,
        loss_plot,
        rate_plot,
        overfit_md,
        log_code,
        stop_button,
        force_button,
        resume_button,
        delete_button,
        action_message,
        history,
        run_ids,
    ]

    g = guarded  # every handler below goes through the guard (studio/ui/guard.py) with its rule
    private = {"api_visibility": "private"}
    dataset.change(g(access.LOOK, describe_dataset), dataset, [dataset_info, max_length], **private)
    refresh.click(g(access.LOOK, refresh_datasets), dataset, dataset, **private)
    upload.upload(g(access.SAVE_DATASET, upload_dataset), upload, [dataset, upload_message], **private)
    assistant_only.change(g(access.LOOK, toggle_assistant_note), assistant_only, assistant_note, **private)
    shared.dataset.change(
        g(access.LOOK, pick_shared_dataset), shared.dataset, [dataset, dataset_info, max_length], **private
    )
    shared.train_prefill.change(
        g(access.LOOK, apply_prefill), [shared.train_prefill, hidden], form + [hidden, prefill_note], **private
    )

    # Where to train: looking is free; the flavour list and a Jobs run use the server's token, so the logic
    # (studio.jobs.executor.require_operator) refuses everyone but an operator, whichever handler asks.
    where_inputs = [where, flavor, max_cost]
    where.change(g(access.LOOK, choose_where), [where, flavor], [jobs_box, flavor, jobs_note, start_button], **private)
    flavor_refresh.click(g(access.OPERATE, refresh_flavors), flavor, [flavor, jobs_note], **private)
    check_button.click(
        g(access.LOOK, check_where),
        form + [hidden] + where_inputs,
        [preflight_md, cli_code, config_code],
        validator=validate_form,
        **private,
    )
    start_outputs = [preflight_md, cli_code, config_code, start_message, view]
    redraw = g(access.LOOK, render_forced)
    # The viewed run in the page's address (?run=ID): a reload or a shared link opens it again.
    run_param, viewed_run = gr.Textbox("run", visible=False), gr.Textbox(visible=False)

    def address_follows(event):
        return event.then(g(access.LOOK, run_of_view), view, viewed_run, **private).then(
            None, [run_param, viewed_run], None, js=URL_PARAM_JS, **private
        )

    started = start_button.click(
        g(access.TRAIN, start_where),
        form + [hidden] + where_inputs + [browser_id, view],
        start_outputs,
        validator=guarded_validator(access.TRAIN, validate_form),
        **private,
    ).then(redraw, [view, browser_id], view_outputs, **private)
    address_follows(started)

    timer = gr.Timer(POLL_SECONDS)
    timer.tick(
        g(access.LOOK, poll),
        [view, browser_id],
        view_outputs,
        show_progress="hidden",
        concurrency_limit=None,
        trigger_mode="once",
        **private,
    )

    stop_button.click(g(access.CONTROL, stop_run), [view, browser_id, admin_password], action_message, **private)
    force_button.click(
        g(access.CONTROL, force_stop_run), [view, browser_id, admin_password], action_message, **private
    ).then(redraw, [view, browser_id], view_outputs, **private)
    resume_button.click(
        g(access.CONTROL, resume_run), [view, browser_id, admin_password], [action_message, view], **private
    ).then(redraw, [view, browser_id], view_outputs, **private)
    delete_button.click(g(access.LOOK, ask_delete), view, [action_message, confirm_row], **private)
    cancel_button.click(g(access.LOOK, cancel_delete), None, [action_message, confirm_row], **private)
    confirm_button.click(
        g(access.CONTROL, delete_run),
        [view, browser_id, admin_password],
        [action_message, confirm_row, view],
        **private,
    ).then(redraw, [view, browser_id], view_outputs, **private)

    address_follows(
        history.select(
            g(access.LOOK, pick_history_row), [run_ids, browser_id], view_outputs + [run_config_code], **private
        )
    )
    again_button.click(g(access.LOOK, train_again), view, form + [hidden, prefill_note], **private)
    compare_button.click(g(access.LOOK, open_in_compare), view, [shared.run, shared.tabs, action_message], **private)

    zip_button.click(g(access.EXPORT, export_zip), view, [zip_file, export_message], **private)
    merge_button.click(g(access.EXPORT, ask_merge), view, [export_message, merge_confirm], **private)
    merge_confirm.click(g(access.EXPORT, merge_run), view, [export_message, merge_confirm], **private)
    push_button.click(
        g(access.EXPORT, push_run), [view, repo_id, token, what, private_repo], [push_message, token], **private
    )

    share_button.click(g(access.OPERATE, share_run), view, operator_message, **private)
    unshare_button.click(g(access.OPERATE, unshare_run), view, operator_message, **private)
    front_button.click(g(access.OPERATE, move_to_front), view, operator_message, **private)
    queue_button.click(g(access.OPERATE, queue_overview), None, operator_message, **private)

    # The identity comes first: the other load work (here and in Compare) follows it, so it lists this
    # visitor's runs, not those of a fresh page session.
    root = gr.context.Context.root_block
    asked_run = gr.Textbox(visible=False)  # the run in the page's address, filled by BROWSER_ID_JS
    ready = root.load(
        g(access.LOOK, on_load), [browser_id_carrier, view, asked_run], [browser_id, view], js=BROWSER_ID_JS, **private
    )
    ready.then(g(access.LOOK, hand_back_token), browser_id, browser_id_carrier, **private).then(
        None, browser_id_carrier, None, js=STORE_ID_JS, **private
    )
    address_follows(ready)
    ready.then(redraw, [view, browser_id], view_outputs, **private).then(
        g(access.LOOK, refresh_datasets), dataset, dataset, **private
    ).then(g(access.LOOK, describe_dataset), dataset, [dataset_info, max_length], **private).then(
        g(access.LOOK, lambda v, b: _config_json((v or {}).get("run_id"), b)),
        [view, browser_id],
        run_config_code,
        **private,
    )
    shared.ready = ready


def run_of_view(view: dict | None) -> str:
    return (view or {}).get("run_id") or ""


def hand_back_token(token: str | None) -> str:
    """The signed token, into the hidden textbox the browser copies to localStorage."""
    return token or ""


# ---------------------------------------------------------------- operator tools (public mode)


def _set_shared(view: dict, shared_flag: bool) -> str:
    try:
        record = _run_for(_acting_on(view))
        access.authorize(_me(), access.OPERATE, record)
        store.update_status(record.dir, shared=bool(shared_flag))
    except StudioError as error:
        return _error(error)
    if shared_flag:
        return (
            f"✓ **'{escape.md_inline(record.name)}' is shared:** every visitor sees it in their lists and can "
            f"chat with it in Compare."
        )
    return f"✓ **'{escape.md_inline(record.name)}' is private again:** only its owner (and you) see it."


def share_run(view: dict) -> str:
    return _set_shared(view, True)


def unshare_run(view: dict) -> str:
    return _set_shared(view, False)


def move_to_front(view: dict) -> str:
    try:
        record = _run_for(_acting_on(view))
        access.authorize(_me(), access.OPERATE, record)
        queue.move_to_front(record.run_id)
    except StudioError as error:
        return _error(error)
    return f"✓ **'{escape.md_inline(record.name)}' is next** in the queue."


def queue_overview() -> str:
    """The whole queue, for the operator: position, run, owner, estimated start."""
    access.authorize(_me(), access.OPERATE)
    current = supervisor.busy()
    places = queue.places(current.eta_seconds if current else None, current is not None)
    lines = [f"**Training now:** {current.message}" if current else "**The trainer is free.**"]
    for record in queue.waiting():
        place = places.get(record.run_id)
        if place:
            lines.append(
                f"{place.position}. **{escape.md_inline(record.name)}** (owner {escape.md_code(record.owner)}) — "
                f"{place.start_text}"
            )
    if len(lines) == 1:
        lines.append("Nobody is waiting.")
    return "\n\n".join(lines)


def render_forced(view: dict, browser_id: str | None):
    """Redraw after an action; the action's own message stays."""
    outputs = render(view, browser_id, force=True)
    return outputs[:13] + (gr.skip(),) + outputs[14:]
