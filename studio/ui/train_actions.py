"""The Train tab's actions on the viewed run: stop, resume, delete, open in Compare, export, operator tools.

Each handler checks the caller's right to that run (studio.access through train_common.run_for and the
supervisor) and returns `{name: value}` for what it changes (studio/ui/wiring.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from studio import access, escape, quotas
from studio.errors import StudioError
from studio.train import executors, export, queue, store, supervisor
from studio.ui.shared import download_copy
from studio.ui.train_common import acting_on, error_text, identity_of, open_view, run_for, shown, visible_runs


def stop_run(view: dict, browser_id: str | None, admin_password: str | None, force: bool = False) -> str:
    try:
        run_id = run_for(acting_on(view), browser_id).run_id
        record = supervisor.stop(
            run_id, requester=identity_of(browser_id), admin_password=admin_password or None, force=force
        )
    except StudioError as error:
        return error_text(error)
    if record.state == "stopped" and (record.status.get("error") or {}).get("message", "").startswith("Cancelled"):
        return f"■ **Cancelled '{escape.md_inline(record.name)}'** before it started; it left the queue."

    # Resume needs a complete checkpoint: promise it only when there is one (the run's own status says so too). A
    # remote run's checkpoints come home when its job ends; until then its executor knows the last one.
    remote = executors.remote_for(record)
    last = store.last_checkpoint(record.dir)
    last_name = last.name if last else (remote.last_checkpoint(record) if remote else None)
    resume = store.resume_sentence(last_name)
    if remote:
        if force:
            return f"■ **Cancelling the job of '{escape.md_inline(record.name)}'.** {resume}"
        return (
            f"… **Stopping '{escape.md_inline(record.name)}':** the job finishes this step, saves and pushes the "
            "adapter, and the studio downloads it (this takes a minute or more)."
        )
    if force:
        return f"■ **Force-stopped '{escape.md_inline(record.name)}'.** The process tree was killed. {resume}"
    return (
        f"… **Stopping '{escape.md_inline(record.name)}':** it finishes this step, then saves a checkpoint "
        f"and the adapter."
    )


def force_stop_run(view: dict, browser_id: str | None, admin_password: str | None) -> str:
    return stop_run(view, browser_id, admin_password, force=True)


def resume_run(view: dict, browser_id: str | None, admin_password: str | None) -> dict[str, Any]:
    """Resume the viewed run (a remote run: a new job, for an operator only — the executor checks it)."""
    try:
        run_id = run_for(acting_on(view), browser_id).run_id
        record = supervisor.resume(run_id, requester=identity_of(browser_id), admin_password=admin_password or None)
    except StudioError as error:
        return {"action_message": error_text(error)}
    return {
        "action_message": f"▶ **Resumed '{escape.md_inline(record.name)}'** from its last checkpoint.",
        "view": open_view(record.run_id),
    }


def ask_delete(view: dict) -> dict[str, Any]:
    try:
        record = run_for(acting_on(view))
    except StudioError as error:
        return {"action_message": error_text(error), "confirm_row": gr.update(visible=False)}
    return {
        "action_message": f"**Delete '{escape.md_inline(record.name)}' for good?** Its checkpoints, adapter and "
        "Compare results are removed.",
        "confirm_row": gr.update(visible=True),
    }


def delete_run(view: dict, browser_id: str | None, admin_password: str | None) -> dict[str, Any]:
    try:
        record = run_for(acting_on(view), browser_id)
        supervisor.delete(record.run_id, requester=identity_of(browser_id), admin_password=admin_password or None)
    except StudioError as error:
        return {"action_message": error_text(error), "confirm_row": gr.update(visible=False)}
    runs = visible_runs(browser_id)
    job = record.status.get("job") or {}
    kept = (
        f" Its private repos on Hugging Face ({escape.md_code(job.get('inputs_repo'))}, "
        f"{escape.md_code(job.get('outputs_repo'))}) were kept; delete them there if you no longer need them."
        if job.get("outputs_repo")
        else ""
    )
    return {
        "action_message": f"✓ Deleted '{escape.md_inline(record.name)}'.{kept}",
        "confirm_row": gr.update(visible=False),
        "view": open_view(runs[0].run_id if runs else None),
    }


def cancel_delete() -> dict[str, Any]:
    return {"action_message": "", "confirm_row": gr.update(visible=False)}


def open_in_compare(view: dict) -> dict[str, Any]:
    """Hand the viewed run to Compare (its adapter, else its last checkpoint) and switch to that tab."""
    try:
        record = run_for(acting_on(view), action=access.CHAT)
        if record.adapter_dir is None:
            export.adapter_source(record.dir)  # no checkpoint either: says so
    except StudioError as error:
        return {"action_message": error_text(error)}
    return {"compare_run": record.run_id, "tabs": gr.Tabs(selected="compare"), "action_message": ""}


def _run_dir(view: dict) -> Path:
    """The folder of the viewed run when the caller may export it (its owner, or an operator)."""
    return run_for(acting_on(view), action=access.EXPORT).dir


def _merge_target(view: dict) -> tuple[Path, dict]:
    """The viewed run's folder (the caller may export it) and the disk its merge needs, once the caller's quota
    has room for the merged weights."""
    run_dir = _run_dir(view)
    info = export.merge_disk_needed(run_dir)
    quotas.check_quota(identity_of(), "bytes", extra_bytes=int(info.get("needed_bytes") or 0))
    return run_dir, info


def export_zip(view: dict) -> dict[str, Any]:
    try:
        run_dir = _run_dir(view)
        source = export.adapter_source(run_dir)
        target = export.zip_adapter(run_dir)
    except StudioError as error:
        return {"zip_file": gr.update(visible=False), "export_message": error_text(error)}
    return {
        "zip_file": gr.update(value=download_copy(target), visible=True),
        "export_message": f"✓ Zipped {source.note} — {target.stat().st_size / 1024**2:.1f} MB.",
    }


def ask_merge(view: dict) -> dict[str, Any]:
    try:
        _folder, info = _merge_target(view)
    except StudioError as error:
        return {"export_message": error_text(error), "merge_confirm": gr.update(visible=False)}
    if not info["enough"]:
        return {
            "export_message": f"✕ **Not enough disk space.** {info['text']}",
            "merge_confirm": gr.update(visible=False),
        }
    return {
        "export_message": f"**Merge the adapter into full weights?** {info['text']} Saved in the run folder as "
        "`merged/`; takes a minute on a small model.",
        "merge_confirm": gr.update(visible=True),
    }


def merge_run(view: dict, progress=gr.Progress()) -> dict[str, Any]:
    try:
        run_dir, _info = _merge_target(view)
        # export.merge refuses remote code as studio.access says and picks the Hub token for this run.
        target = export.merge(run_dir, progress=lambda fraction, text: progress(fraction, desc=text))
    except StudioError as error:
        return {"export_message": error_text(error), "merge_confirm": gr.update(visible=False)}
    return {
        "export_message": f"✓ **Merged model saved** in {escape.md_code(shown(str(target)))} (loads with plain "
        "`from_pretrained`, no PEFT needed).",
        "merge_confirm": gr.update(visible=False),
    }


def push_run(view: dict, repo_id: str, token: str, what: str, private: bool) -> dict[str, Any]:
    """Push to the Hub. The token is used for this call only and the textbox is cleared afterwards."""
    kind = "merged" if str(what).lower().startswith("merged") else "adapter"
    try:
        url = export.push_to_hub(_run_dir(view), repo_id, token, what=kind, private=bool(private))
    except StudioError as error:
        return {"push_message": error_text(error), "token": ""}
    return {"push_message": f"✓ **Pushed the {kind}** to [{url}]({url}).", "token": ""}


def _set_shared(view: dict, shared_flag: bool) -> str:
    try:
        record = run_for(acting_on(view))
        access.authorize(identity_of(), access.OPERATE, record)
        store.update_status(record.dir, shared=bool(shared_flag))
    except StudioError as error:
        return error_text(error)
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
        record = run_for(acting_on(view))
        access.authorize(identity_of(), access.OPERATE, record)
        queue.move_to_front(record.run_id)
    except StudioError as error:
        return error_text(error)
    return f"✓ **'{escape.md_inline(record.name)}' is next** in the queue."


def queue_overview() -> str:
    """The whole queue, for the operator: position, run, owner, estimated start."""
    access.authorize(identity_of(), access.OPERATE)
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
