"""The Train tab's live view: the viewed run (header, status, progress, charts, log, buttons) and the history.

The view polls the run folder with a gr.Timer (never a pipe to the worker), reading only the bytes appended to
events.jsonl since the last tick, so a reload or a second browser simply reattaches. `render` returns
`{name: value}` for the parts that changed (LIVE_VIEW; studio/ui/wiring.py), so an idle tick costs almost
nothing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import gradio as gr

from studio import access, escape, paths, units
from studio.errors import StudioError
from studio.models import catalog
from studio.train import charts, executors, preflight, queue, store, supervisor
from studio.ui.guard import request_identity
from studio.ui.train_common import dataset_folder, error_text, identity_of, open_view, run_for, shown, visible_runs

# How often an open Train tab looks at the run. Each tick costs the app and the browser CPU on the cores the
# worker trains on, and a two-thread step waits for its slower thread: on a 2-core AMD EPYC the demo's 30 steps took
# 121 s from the CLI, 251 s under the page at 2 s, 179 s at 5 s. Own actions (start, stop, resume) redraw at once.
POLL_SECONDS = 5.0
HISTORY_SECONDS = 15.0


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


# The parts of the page the live view draws (render/poll return some of these names).
LIVE_VIEW = (
    "view",
    "panel",
    "header",
    "status",
    "progress",
    "loss",
    "rates",
    "overfitting",
    "log",
    "stop",
    "force_stop",
    "resume",
    "delete",
    "action_message",
    "history",
    "run_ids",
)
HISTORY_HEADERS = ["Name", "Model", "Dataset", "Status", "Steps", "Best eval loss", "Duration", "Started"]


def _file_key(path: Path):
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_mtime_ns, stat.st_size]


def active_run_id(browser_id: str | None = None) -> str | None:
    """The newest queued or active run the caller may see."""
    for record in visible_runs(browser_id):
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
    visible = [record.run_id for record in visible_runs(token)]
    # `asked`: the run in the page's address (?run=ID, read by BROWSER_ID_JS) — only one this caller may see.
    run_id = asked if asked in visible else active_run_id(token)
    if run_id is None:
        run_id = visible[0] if visible else None
    return token, open_view(run_id)


def _advance(view: dict, browser_id: str | None = None) -> tuple[dict, Any, bool, bool, bool]:
    """Read what changed in the viewed run's folder since the last tick."""
    record = supervisor.reconcile_one(run_for(view["run_id"], browser_id))  # a dead worker: interrupted
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
    me = identity_of(browser_id)
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
    return shown(
        f"### {escape.md_inline(record.name)}\n{escape.md_code(record.run_id)} · {escape.md_inline(shown(model))} · "
        f"dataset {escape.md_code(shown(dataset))} · started {escape.md_inline(started)} UTC{whose}"
    )


def _queue_line(record) -> str:
    """Where a waiting run stands: its place in the queue and an estimated start."""
    try:
        current = supervisor.busy()
    except Exception:  # noqa: BLE001 - the queue figures are optional: never fail the page for them
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
    me = identity_of(browser_id)
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
        elif (last := store.last_checkpoint(record.dir)) is not None:
            saved = " The adapter was saved." if record.adapter_dir is not None else ""
            note = f"{saved} {store.resume_sentence(last.name)}"
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
        except Exception:  # noqa: BLE001 - the queue figures are optional: never fail the page for them
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
        diverged = status.get("diverged") or {}
        best = charts.best_eval(events, before_step=diverged.get("since_step"))
        if best:
            before = (
                f" (before the run diverged at step {diverged['since_step']})" if diverged.get("since_step") else ""
            )
            facts.append(f"best eval loss **{best[1]:.4f}** at step {best[0]}{before}")
        lines.append(" · ".join(facts))
    notes = status.get("notes") or []
    if notes:
        lines.append("\n".join(f"- Note: {escape.md_inline(shown(note))}" for note in notes))
    return shown("\n\n".join(lines))


def _log_tail(record, browser_id: str | None = None) -> str:
    """The end of the run's log: for its owner and the operator only (a shared run shows its charts, not its
    log); in public mode without the server's folders."""
    me = identity_of(browser_id)
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
    return shown(text)


def _buttons(record, browser_id: str | None) -> dict[str, Any]:
    """Stop, force stop, resume, delete: shown only when they make sense for the run's state and the viewer.

    Another browser's run shows no controls unless an admin password is configured (then they ask for it).
    """
    state = record.state if record else None
    active = state in ("queued",) + store.ACTIVE
    stopping = state == "stopping"
    me = identity_of(browser_id)
    try:
        access.authorize(me, access.CONTROL, record)
        may_act = True
    except StudioError:
        may_act = bool(os.environ.get(supervisor.ADMIN_ENV)) and access.can_see(me, record)
    resumable = state in supervisor.RESUMABLE and store.last_checkpoint(record.dir) is not None
    return {
        "stop": gr.update(visible=may_act and active and not stopping),
        "force_stop": gr.update(visible=may_act and active, variant="stop" if stopping else "secondary"),
        "resume": gr.update(visible=may_act and bool(resumable)),
        "delete": gr.update(visible=may_act and not active),
    }


def _history(browser_id: str | None = None) -> dict[str, Any]:
    rows, ids = history_table(browser_id)
    return {"history": gr.update(value=rows), "run_ids": ids}


def _empty_view(view: dict, message: str, browser_id: str | None = None) -> dict[str, Any]:
    """No run in view (none yet, or one the caller may not see): the message where the header goes."""
    hidden = gr.update(visible=False)
    return {
        "view": view,
        "panel": hidden,
        "header": message,
        "status": "",
        "progress": "",
        "loss": charts.loss_figure([]),
        "rates": charts.rate_figure([]),
        "overfitting": "",
        "log": "",
        **{button: hidden for button in ("stop", "force_stop", "resume", "delete")},
        **_history(browser_id),
    }


def render(view: dict, browser_id: str | None, force: bool = False) -> dict[str, Any]:
    """The live view (LIVE_VIEW names) for the viewed run: only the parts that changed since the last tick (the
    history is re-read only when the viewed run changes state), everything with `force`."""
    if not view or not view.get("run_id"):
        return _empty_view(view, "*No run yet. Pick your settings above and press Start training.*", browser_id)
    try:
        view, record, new_events, status_changed, log_changed = _advance(view, browser_id)
    except StudioError as error:
        return _empty_view(open_view(None), error_text(error), browser_id)
    first = force or not view.get("rendered")
    view["rendered"] = True
    state_changed = view.get("state") not in (None, record.state)
    view["state"] = record.state
    active = record.state in ("queued", "starting", "running", "stopping")
    events = view["events"]
    changed: dict[str, Any] = {"view": view}
    if first:
        changed["panel"] = gr.update(visible=True)
    if first or status_changed:
        changed["header"] = _run_header(record, browser_id)
        changed.update(_buttons(record, browser_id))
    if first or status_changed or new_events or active:
        changed["status"] = _status_markdown(record, events, browser_id)
    if first or active or status_changed:
        changed["progress"] = charts.progress_html(record.status, events)
    if first or new_events:
        warning = charts.overfitting(events)
        diverged_since = (record.status.get("diverged") or {}).get("since_step")
        changed["loss"] = charts.loss_figure(events, title="Loss", diverged_since=diverged_since)
        changed["rates"] = charts.rate_figure(events)
        changed["overfitting"] = f"⚠ **{escape.md_inline(warning.message)}**" if warning else ""
    if first or log_changed:
        changed["log"] = _log_tail(record, browser_id)
    if state_changed:
        changed["action_message"] = ""  # "Stopping…" and the like are stale once the state moved on
    # The history follows the viewed run: at once when its state changes, every HISTORY_SECONDS while it trains
    # (its steps and duration), not on every tick (a redraw would take a click on the table with it).
    history_due = active and new_events and time.time() - view.get("history_at", 0) >= HISTORY_SECONDS
    if first or state_changed or history_due:
        changed.update(_history(browser_id))
        view["history_at"] = time.time()
    return changed


def poll(view: dict, browser_id: str | None) -> dict[str, Any]:
    """Timer tick. With no run in view, look (cheaply) for one that another browser started."""
    if not view or not view.get("run_id"):
        runs_key = _file_key(paths.runs_dir())
        if view and runs_key == view.get("runs_key"):
            return {}
        run_id = active_run_id()  # (the caller's: the guard set who is asking)
        if run_id is None:
            return {"view": {**open_view(None), "runs_key": runs_key}}
        view = open_view(run_id)
    return render(view, browser_id)


def show_run(run_id: str | None, browser_id: str | None) -> dict[str, Any]:
    """Open a run picked in the history (the table itself is left as it is, so the click stays visible)."""
    changed = render(open_view(run_id), browser_id, force=True)
    return {name: value for name, value in changed.items() if name not in ("history", "run_ids")}


def render_forced(view: dict, browser_id: str | None) -> dict[str, Any]:
    """Redraw after an action; the action's own message stays."""
    changed = render(view, browser_id, force=True)
    changed.pop("action_message", None)
    return changed


def _duration(record) -> str:
    """Training time, as the live view counts it: a run still going is counted from its events."""
    events = store.read_events(record.dir)[0] if record.state in ("queued",) + store.ACTIVE else []
    return units.format_duration(charts.progress(record.status, events).get("elapsed"))


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
                folder = dataset_folder(path)
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
    for record in visible_runs(browser_id):
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
                _duration(record),
                started,
            ]
        )
        ids.append(record.run_id)
    return rows, ids


def pick_history_row(run_ids: list[str], browser_id: str | None, evt: gr.SelectData) -> dict[str, Any]:
    """A click in the history: open that run and show its config."""
    index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    if not run_ids or index is None or index >= len(run_ids):
        return {}
    return {**show_run(run_ids[index], browser_id), "run_config": run_config_json(run_ids[index], browser_id)}


def run_config_json(run_id: str | None, browser_id: str | None = None) -> str:
    if not run_id:
        return ""
    try:
        return shown(json.dumps(run_for(run_id, browser_id).config, indent=2))
    except StudioError:
        return ""


def run_of_view(view: dict | None) -> str:
    return (view or {}).get("run_id") or ""


def hand_back_token(token: str | None) -> str:
    """The signed token, into the hidden textbox the browser copies to localStorage."""
    return token or ""
