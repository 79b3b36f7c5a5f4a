"""What the Train tab's modules share: who is asking, the runs and datasets they may reach, text for the page.

Runs and datasets are reached only through `run_for`, `dataset_folder` and `visible_runs`, which ask
studio.access (a visitor in public mode sees their own runs and the shared ones).
"""

from __future__ import annotations

from pathlib import Path

from studio import access
from studio.data import store as data_store
from studio.errors import StudioError
from studio.models import catalog, hardware
from studio.train import preflight, store
from studio.ui.shared import message_markdown


def error_text(error: Exception) -> str:
    return message_markdown(error)


def model_choices() -> list[tuple[str, str]]:
    return [(entry.label, entry.ref) for entry in catalog.entries()]


def dataset_choices() -> list[tuple[str, str]]:
    """The caller's datasets (all of them in private mode) as (label, value) for the dropdown."""
    return [
        (preflight.dataset_label(manifest), data_store.dataset_value(manifest))
        for manifest in data_store.list_visible()
    ]


def dataset_folder(value: str | None) -> Path:
    """The dataset folder a form names, checked with the caller's rights (StudioError / AccessDenied)."""
    return data_store.find(value)


def identity_of(browser_id: str | None = None) -> access.Identity:
    """The caller: set by the guard for a request; in a direct call, the browser id handed in."""
    return access.current(browser_id)


def run_for(run_id: str | None, browser_id: str | None = None, action: str = access.VIEW):
    """The run record if the caller may `action` it; one refusal for missing and invisible runs alike."""
    if not run_id:
        raise StudioError("No run is selected.", "Pick a run in the history table.")
    try:
        record = store.get_run(run_id)
    except StudioError:
        if access.is_public():
            raise access.not_found(str(run_id)) from None
        raise
    access.authorize(identity_of(browser_id), action, record)
    return record


def visible_runs(browser_id: str | None = None) -> list:
    me = identity_of(browser_id)
    return [record for record in store.list_runs() if access.can_see(me, record)]


def shown(text: str) -> str:
    """Text for the page: in public mode without the server's folders."""
    return access.redact(text)


def this_machine():
    """The hardware the studio runs on (no torch import)."""
    return hardware.detect_quick()


def open_view(run_id: str | None) -> dict:
    """The live view's state (a gr.State) for a run, before its first tick."""
    return {
        "run_id": run_id,
        "offset": 0,
        "events": [],
        "status_key": None,
        "log_key": None,
        "runs_key": None,
        "rendered": False,
    }


def acting_on(view: dict) -> str:
    """The run id an action on the viewed run is about."""
    run_id = (view or {}).get("run_id")
    if not run_id:
        raise StudioError("No run is selected.", "Pick a run in the history table.")
    return run_id
