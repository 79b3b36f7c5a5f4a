"""Footer widget: is the bundled model ready? Converts it with visible progress on request."""

from __future__ import annotations

import gradio as gr

from studio import access
from studio.errors import StudioError
from studio.models import bundled, catalog, prepare
from studio.ui.guard import guarded
from studio.ui.shared import message_markdown
from studio.ui.wiring import Parts, wired

PREPARING_POLL_SECONDS = 5


def status_text() -> str:
    if prepare.running():
        return (
            "Bundled model: being prepared in the background (converted once to a trainable copy, and this CPU's "
            "fp32 vs bf16 speed measured; about a minute). A run started meanwhile waits for it."
        )
    if bundled.is_converted():
        return f"Bundled model: **ready** ({catalog.BUNDLED_LABEL})."
    if bundled.gguf_path() is None:
        return "Bundled model: not installed here — the studio uses the same model from the Hugging Face Hub."
    return "Bundled model: installed; it is converted once to a trainable copy on first use (about a minute)."


def needs_preparing() -> bool:
    return bundled.gguf_path() is not None and not bundled.is_converted()


def refresh() -> dict:
    """The footer again; its timer ticks only while the start-up preparation runs, so the line turns "ready" by
    itself."""
    preparing = prepare.running()
    return {
        "status": status_text(),
        "button": gr.update(visible=needs_preparing() and not preparing),
        "timer": gr.Timer(active=preparing),
    }


def convert_now(progress=gr.Progress()) -> str:
    try:
        bundled.ensure_converted(lambda fraction, message: progress(fraction, desc=message))
    except StudioError as error:
        return message_markdown(error)
    return status_text()


def build(demo: gr.Blocks) -> None:
    with gr.Row(elem_id="model-status"):
        status = gr.Markdown(status_text(), elem_id="model-status-text")
        button = gr.Button(
            "Prepare the bundled model now", size="sm", scale=0, elem_id="model-prepare-btn", visible=needs_preparing()
        )
    # Converting the bundled model is the same for everyone (and happens on first use anyway): anyone may ask.
    timer = gr.Timer(PREPARING_POLL_SECONDS, active=prepare.running())
    widget = Parts(status=status, button=button, timer=timer)
    timer.tick(wired(access.LOOK, widget, refresh), outputs=widget.outputs(), api_visibility="private")
    button.click(guarded(access.LOOK, convert_now), outputs=status, api_visibility="private").then(
        wired(access.LOOK, widget, refresh), outputs=widget.outputs(), api_visibility="private"
    )
    demo.load(wired(access.LOOK, widget, refresh), outputs=widget.outputs(), api_visibility="private")
