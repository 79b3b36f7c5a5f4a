"""State shared between tabs, created once by the shell and handed to each tab's build()."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from studio import access, escape
from studio.errors import StudioError

TAB_IDS = ("decide", "data", "train", "compare")


@dataclass
class Shared:
    tabs: gr.Tabs  # return gr.Tabs(selected="train") from a handler to switch tabs
    # Folder of the dataset the Data tab last saved or loaded (str path) — read by Train and Decide.
    dataset: gr.State
    # Token statistics of the dataset in the Data tab (dict) — read by Decide's estimators.
    dataset_stats: gr.State
    # Settings Decide hands to Train: {"model", "technique", "epochs", "max_length", ...}.
    train_prefill: gr.State
    # Run id picked in Train to open in Compare.
    run: gr.State
    # Model reference chosen anywhere in the studio (catalog ref string).
    model: gr.State
    # The page-load event that establishes the visitor's identity (set by the Train tab); other load-time work
    # chains after it with `.then`, so it sees this visitor, not a fresh page session.
    ready: Any = None


# The page's address keeps where the visitor is — ?tab=train&run=ID — so a reload comes back there and the address
# is a link to share. The browser rewrites it in place (no reload) when the tab or the viewed run changes.
URL_PARAM_JS = """
(name, value) => {
  const url = new URL(window.location.href);
  if (value) { url.searchParams.set(name, value); } else { url.searchParams.delete(name); }
  window.history.replaceState(null, "", url);
}
"""


def read_url_param_js(name: str, inputs: int = 0) -> str:
    """JavaScript for an event whose last input is a parameter of the page's address: the browser puts it there
    (the server sees the event's own request, not the page's address). `inputs`: how many inputs come before."""
    value = f"(new URL(window.location.href).searchParams.get({name!r}) || '').slice(0, 100)"
    if not inputs:
        return f"(_param) => {value}"
    names = ", ".join(f"a{index}" for index in range(inputs))
    return f"({names}, _param) => [{names}, {value}]"


def message_markdown(error: Exception) -> str:
    """A user-facing error as Markdown: message and hint (escaped: they often quote names and rows), never a
    traceback."""
    if isinstance(error, StudioError):
        hint = f"\n\n*Hint:* {escape.md_inline(access.redact(error.hint))}" if error.hint else ""
        return f"**{escape.md_inline(access.redact(error.message))}**{hint}"
    return (
        f"**Something went wrong: {escape.md_inline(access.redact(str(error)))}**\n\n"
        f"*Hint:* the details are in the server log."
    )


def download_copy(path) -> str:
    """A copy of a file for the browser to download, in Gradio's own upload folder (a random subfolder):
    Gradio serves only its folders, and STUDIO_HOME (e.g. a Space's storage bucket) is never one of them."""
    import secrets
    import shutil
    from pathlib import Path

    from gradio.utils import get_upload_folder

    source = Path(path)
    folder = Path(get_upload_folder()) / f"studio-{secrets.token_hex(12)}"
    folder.mkdir(parents=True, exist_ok=True)
    return str(shutil.copyfile(source, folder / source.name))
