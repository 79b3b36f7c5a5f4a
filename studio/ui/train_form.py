"""The Train tab's settings: the form and the RunConfig it describes, preflight, where to train, start.

Handlers return `{name: value}` for the parts of the page they change (studio/ui/wiring.py); the form's fields
are named after RunConfig's fields (FORM_FIELDS).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import gradio as gr

from studio import access, escape, quotas
from studio.data import store as data_store
from studio.data.stats import suggested_max_length
from studio.errors import StudioError
from studio.jobs import executor, flavors
from studio.train import executors, prefill, preflight, queue, store, supervisor
from studio.train.config import RunConfig
from studio.ui.train_common import (
    acting_on,
    dataset_choices,
    dataset_folder,
    error_text,
    identity_of,
    open_view,
    run_for,
    shown,
    this_machine,
)

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
    "full_finetune",
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
    "processes",
    "strategy",
)


# RunConfig fields the form does not show; kept from "train again" / Decide so nothing is silently lost.
HIDDEN_FIELDS = ("bf16", "gradient_checkpointing", "torch_threads")


ASSISTANT_ONLY_OFF = (
    "**Note: assistant-only loss is off.** the loss covers the whole conversation, prompts included, so the model "
    "also learns to write the user's side. Keep it on for chat data. (With it on, answer-marked templates "
    "cover Llama 3.x, Qwen 2.5/3, Gemma, Phi-3/3.5/4, Mistral and ChatML models such as SmolLM2; for any other "
    "template the preflight check warns before the run.)"
)


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


def describe_dataset(path: str | None) -> dict[str, Any]:
    """A one-line summary of the picked dataset (dataset_info) and the max_length it suggests (p99 → manifest)."""
    if not path:
        return {"dataset_info": "*Pick a saved dataset (prepare one in the Data tab) or upload a file below.*"}
    try:
        folder = dataset_folder(path)
    except access.AccessDenied as error:
        return {"dataset_info": error_text(error)}
    except StudioError:
        folder = Path(str(path))
    manifest = preflight.read_manifest(folder)
    if manifest is None:
        return {
            "dataset_info": f"**{escape.md_code(shown(str(path)))} is not a saved dataset.**\n\n*Hint:* prepare "
            "and save it in the Data tab."
        }
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
        return {"dataset_info": " · ".join(parts), "max_length": gr.update(value=int(suggested))}
    return {"dataset_info": " · ".join(parts)}


def refresh_datasets(current: str | None):
    choices = dataset_choices()
    paths_ = [value for _, value in choices]
    value = current if current in paths_ else (paths_[0] if paths_ else None)
    return gr.update(choices=choices, value=value)


def pick_shared_dataset(path: str | None):
    """The Data tab saved or loaded a dataset: offer it here, selected."""
    if not path:
        return {}
    try:
        folder = dataset_folder(path)
    except StudioError:
        return {}
    manifest = preflight.read_manifest(folder)
    if manifest is None:
        return {}
    value = data_store.dataset_value(manifest)
    choices = dataset_choices()
    if value not in [item for _, item in choices]:
        choices.insert(0, (preflight.dataset_label(manifest), value))
    return {"dataset": gr.update(choices=choices, value=value), **describe_dataset(value)}


def _form_updates(values: dict[str, Any]) -> dict[str, Any]:
    """{field: update} for form fields. A dataset comes with the caller's current choices and its summary line;
    its suggested max length is not applied: these values were chosen together (a run's, Decide's)."""
    updates = {
        name: gr.update(choices=dataset_choices(), value=value) if name == "dataset" else gr.update(value=value)
        for name, value in values.items()
    }
    if values.get("dataset"):
        updates["dataset_info"] = describe_dataset(values["dataset"])["dataset_info"]
    return updates


def apply_prefill(plan: dict | None, hidden: dict | None) -> dict[str, Any]:
    """Settings from Decide (studio.train.prefill translates them) into the form, with a note saying which."""
    if not plan:
        return {}
    handover = prefill.from_decide(
        plan,
        qlora_possible=preflight.qlora_reason(this_machine()) is None,
        on_gpu=this_machine().kind == "cuda",
    )
    values = dict(handover.values)
    if handover.dataset:
        try:
            manifest = preflight.read_manifest(dataset_folder(handover.dataset))
            if manifest is not None:
                values["dataset"] = data_store.dataset_value(manifest)
        except StudioError:
            pass  # a dataset the caller may not use: the form keeps its own
    hidden = dict(hidden or {})
    if handover.gradient_checkpointing is not None:
        hidden["gradient_checkpointing"] = handover.gradient_checkpointing
    technique = f" (technique: {escape.md_inline(handover.technique)})" if handover.technique else ""
    note = f"✓ Settings from **Decide** applied: {escape.md_inline(handover.summary() or 'none')}{technique}."
    if handover.instead:
        note += f" ⚠ {escape.md_inline(handover.instead)}."
    return {**_form_updates(values), "hidden": hidden, "prefill_note": note}


def _form_of_run(record, new_name: bool) -> dict[str, Any]:
    """The form filled with a run's settings (its dataset only when the caller may use it)."""
    config = dict(record.config)
    if new_name:
        config["name"] = ""  # a new run gets its own name
    try:
        manifest = preflight.read_manifest(dataset_folder(config.get("dataset")))
        config["dataset"] = data_store.dataset_value(manifest) if manifest else ""
    except StudioError:
        config["dataset"] = ""  # someone else's dataset (a shared run): pick one of your own
    return {
        **_form_updates(dict(zip(FORM_FIELDS, form_values(config)))),
        "hidden": {key: config.get(key) for key in HIDDEN_FIELDS if key in config},
        **_where_of_run(record),
    }


def _where_of_run(record) -> dict[str, Any]:
    """Where the run trained, for the form: a Jobs run's flavour and cost cap (so training it again does not
    quietly go to this machine), else this machine."""
    job = (record.status or {}).get("job") or {}
    if executors.remote_for(record) and job.get("flavor"):
        cap = job.get("max_cost_usd")
        return {
            "where": executors.HF_JOBS,
            **choose_where(executors.HF_JOBS, job["flavor"]),
            **({"max_cost": cap} if isinstance(cap, (int, float)) else {}),
        }
    return {"where": executors.LOCAL, **choose_where(executors.LOCAL, None)}


def train_again(view: dict) -> dict[str, Any]:
    """Fill the form with the viewed run's settings."""
    try:
        record = run_for(acting_on(view))
    except StudioError as error:
        return {"prefill_note": error_text(error)}
    note = f"↩ The form now holds the settings of **{escape.md_inline(record.name)}**. Check them and start."
    # The message of the last start ("Sent … to Hugging Face Jobs") spoke of that run, not of this form.
    return {**_form_of_run(record, new_name=True), "prefill_note": note, "start_message": ""}


def form_after_reload(view: dict | None, browser_id: str | None) -> dict[str, Any]:
    """After a reload the page starts from the defaults: with one of the caller's own runs in view, the form shows
    that run's settings again — a run still going with its name, as when it was started; a finished one as
    "train again" would. Another visitor's shared run, or none, leaves the defaults."""
    try:
        record = run_for((view or {}).get("run_id"), browser_id)
    except StudioError:
        return {}
    if not access.owns(identity_of(browser_id), record):
        return {}
    going = record.state in ("queued",) + store.ACTIVE
    note = f"↩ The form shows the settings of **{escape.md_inline(record.name)}**, the run in view."
    return {**_form_of_run(record, new_name=not going), "prefill_note": note}


def toggle_assistant_note(enabled: bool):
    return gr.update(visible=not enabled)


def upload_dataset(file_path: str | None):
    """An uploaded file: lint it, refuse it while it has errors, else save it as a dataset and select it."""
    if not file_path:
        return {"upload_message": ""}
    try:
        me = identity_of()
        access.authorize(me, access.SAVE_DATASET)
        quotas.check_quota(me, "datasets")
        folder, report = preflight.dataset_from_upload(access.check_upload_path(file_path), owner=me.user_id)
    except StudioError as error:
        return {"upload_message": error_text(error)}
    manifest = preflight.read_manifest(folder) or {"path": str(folder), "id": folder.name}
    value = data_store.dataset_value(manifest)
    return {
        "dataset": gr.update(choices=dataset_choices(), value=value),
        **describe_dataset(value),  # a new dataset: its summary and the max length it suggests
        "upload_message": report,
    }


def checked_config(values, hidden, browser_id: str | None = None):
    """The form's RunConfig, checked as `resolved_config` says."""
    return resolved_config(config_from_form(values, hidden), browser_id)


def resolved_config(config, browser_id: str | None = None):
    """A RunConfig with its dataset resolved to a folder the caller may use and its model checked (public mode:
    no server folders, no remote code unless allowed). Raises StudioError / AccessDenied."""
    if str(config.dataset or "").strip():
        config = config.replace(dataset=str(dataset_folder(config.dataset)))
    access.check_model_ref(str(config.model or ""))
    if config.trust_remote_code:
        access.require_remote_code_allowed(identity_of(browser_id))
    return config


def _preflight_shown(report, lead: str = "") -> dict[str, str]:
    """The preflight's three views: the report, the equivalent command, the config JSON."""
    return {
        "preflight": shown(lead + report.markdown()),
        "cli": shown(report.cli_command),
        "config_json": shown(report.config_json),
    }


def check_settings(*args) -> dict[str, str]:
    """Preflight for the form: the report, the CLI command and the config JSON."""
    *values, hidden = args

    try:
        config = checked_config(values, hidden)
        report = preflight.run_preflight(config, check_busy=False)  # a busy trainer queues the run instead
    except StudioError as error:
        return {"preflight": error_text(error), "cli": "", "config_json": ""}
    return _preflight_shown(report, lead=_queue_note())


def _queue_note() -> str:
    """Says that a run started now would wait, and behind how many (no other visitor's run is named)."""
    try:
        current = supervisor.busy()
        waiting = len(queue.waiting())
    except Exception:  # noqa: BLE001 - the queue note is optional: never fail the page for it
        return ""
    if current is None and not waiting:
        return ""
    ahead = f" behind {waiting} waiting run{'s' if waiting != 1 else ''}" if waiting else ""
    return (
        f"⏳ **The trainer is busy now:** a run started now waits in the queue{ahead} and starts by itself "
        "when its turn comes.\n\n"
    )


def _with_warnings(message: str, report) -> str:
    """The start message, and how many warnings went with it (they stay listed in the preflight above)."""
    if not report.warnings:
        return message
    count = len(report.warnings)
    return message + f" {count} warning{'s' if count != 1 else ''} ⚠ above did not stop it — worth a look."


def start_run(*args):
    """Start a run when preflight has no errors. Warnings never block: they are shown with the started run."""
    *values, hidden, browser_id = args

    try:
        me = identity_of(browser_id)
        access.authorize(me, access.TRAIN)
        config = checked_config(values, hidden, browser_id)
        report = preflight.run_preflight(config, check_busy=False)
    except StudioError as error:
        return {"preflight": error_text(error)}
    checked = _preflight_shown(report)
    if report.blocking:
        return {**checked, "start_message": "**Not started:** fix the points marked ✕ first."}
    try:
        record = submit_checked(report, me)
    except StudioError as error:
        return {**checked, "start_message": error_text(error)}
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
    # (the note on where the form's settings came from belonged to the form before this start)
    return {**checked, "start_message": _with_warnings(message, report), "view": new_view, "prefill_note": ""}


def submit_checked(report, me: access.Identity):
    """Start (or queue) the run a preflight without errors checked, within the caller's quota."""
    quotas.check_quota(me, "runs")
    # report.config carries any memory adjustments preflight made (micro-batch, checkpointing)
    return supervisor.submit(
        report.config,
        owner=me.user_id,
        owner_role=access.OPERATOR if me.operator else me.role,
        estimated_seconds=report.seconds,
    )


def _flavor_update(current: str | None, refresh: bool = False):
    """The flavour dropdown and a note (prices, or why the list is old or missing). Operators only: the list
    comes from the Hub with the server's token (executor.flavor_list refuses anyone else)."""
    try:
        listed = executor.flavor_list(refresh=refresh)
    except StudioError as error:
        return {"flavor": gr.update(choices=[], value=None), "jobs_note": error_text(error)}
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
    return {"flavor": gr.update(choices=choices, value=value), "jobs_note": shown(note)}


# What choosing where to train changes (choose_where's outputs).
WHERE_OUTPUTS = ("jobs_box", "flavor", "jobs_note", "start_button")


def choose_where(where: str | None, current_flavor: str | None):
    """Show the Jobs settings (and, for an operator, load the flavours) when the run goes to Hugging Face Jobs."""
    remote = where == executors.HF_JOBS
    if not remote:
        return {
            "jobs_box": gr.update(visible=False),
            "jobs_note": "",
            "start_button": gr.update(interactive=preflight.zero_gpu_message() is None),
        }
    # ZeroGPU cannot train here but can still send jobs
    return {
        "jobs_box": gr.update(visible=True),
        **_flavor_update(current_flavor),
        "start_button": gr.update(interactive=True),
    }


def refresh_flavors(current_flavor: str | None):
    return _flavor_update(current_flavor, refresh=True)


def _remote_check(values, hidden, flavor: str | None, max_cost, browser_id: str | None = None):
    """(config, RemoteEstimate, markdown, cli command, config json) for the form on a Jobs flavour: the same
    checked config as a local run (the caller's dataset, an allowed model), estimated by an operator only."""
    executor.require_operator(identity_of(browser_id))  # before anything is read, estimated or uploaded
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
    return config, result, shown(markdown), shown(command), shown(result.report.config_json)


def check_where(*args):
    """Preflight for where the run goes: this machine (check_settings) or a Jobs flavour (time, memory, cost)."""
    *values, hidden, where, flavor, max_cost = args

    if where != executors.HF_JOBS:
        return check_settings(*values, hidden)
    try:
        _config, result, markdown, command, config_json = _remote_check(values, hidden, flavor, max_cost)
    except StudioError as error:
        return {"preflight": error_text(error), "cli": "", "config_json": ""}
    return {"preflight": markdown, "cli": command, "config_json": config_json}


def start_where(*args):
    """Start on this machine (start_run: the queue) or send the run to Hugging Face Jobs (operators only;
    executor.submit checks it again, whoever calls)."""
    *values, hidden, where, flavor, max_cost, browser_id = args

    if where != executors.HF_JOBS:
        return start_run(*values, hidden, browser_id)
    try:
        config, result, markdown, command, config_json = _remote_check(values, hidden, flavor, max_cost, browser_id)
    except StudioError as error:
        return {"preflight": error_text(error)}
    checked = {"preflight": markdown, "cli": command, "config_json": config_json}
    report = result.report
    if report.blocking:
        return {**checked, "start_message": "**Not sent:** fix the points marked ✕ first."}
    me = identity_of(browser_id)
    try:
        record = supervisor.launch_with(
            config, owner=me.user_id, identity=me, choice=executors.Choice(executors.HF_JOBS, flavor, result.max_cost)
        )
    except StudioError as error:
        return {**checked, "start_message": error_text(error)}
    sent = (
        f"☁ **Sent '{escape.md_inline(record.name)}' to Hugging Face Jobs** ({escape.md_inline(flavor)}). Follow it "
        "below — you can close this page; the job keeps going and this view reattaches."
    )
    return {
        **checked,
        "start_message": _with_warnings(sent, report),
        "view": open_view(record.run_id),
        "prefill_note": "",
    }
