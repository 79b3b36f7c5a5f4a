"""The app shell: header, four tabs in order, footer with hardware and data folder."""

from __future__ import annotations

import os

import gradio as gr

from studio import access, escape, limits, paths
from studio.models import hardware
from studio.ui import compare_tab, data_tab, decide_tab, model_status, train_tab
from studio.ui.shared import Shared
from studio.ui.theme import CSS, theme

TITLE = "Fine-Tune Studio"
PURPOSE = "From “should we fine-tune at all?” to a LoRA-tuned model you can show next to the base model."

TABS = (
    ("Decide", "decide", decide_tab),
    ("Data", "data", data_tab),
    ("Train", "train", train_tab),
    ("Compare", "compare", compare_tab),
)


def footer_text() -> str:
    detected = hardware.detect_quick()
    return f"Hardware: {escape.md_inline(detected.summary)} · Data folder: {escape.md_code(paths.home())}"


def build_app() -> gr.Blocks:
    paths.configure_caches()
    # Uploaded files are deleted from Gradio's cache after STUDIO_UPLOAD_CACHE_HOURS (and on restart).
    with gr.Blocks(title=TITLE, delete_cache=limits.delete_cache()) as demo:
        with gr.Row(elem_id="studio-header"):
            gr.Markdown(f"# {TITLE}\n{PURPOSE}")
            if access.from_env().mode == "oauth":
                if os.environ.get("SYSTEM") == "spaces" and os.environ.get("SPACE_ID"):
                    gr.LoginButton(scale=0)
                else:
                    gr.Markdown("⚠️ STUDIO_AUTH=oauth works on a Hugging Face Space with `hf_oauth: true`; "
                                "here nobody can sign in, so training is off.")
        states = dict(dataset=gr.State(None), dataset_stats=gr.State(None), train_prefill=gr.State(None),
                      run=gr.State(None), model=gr.State(None))
        with gr.Tabs(elem_id="studio-tabs") as tabs:
            shared = Shared(tabs=tabs, **states)
            for label, tab_id, module in TABS:
                with gr.Tab(label, id=tab_id, elem_id=f"tab-{tab_id}"):
                    module.build(shared)
        with gr.Column(elem_id="studio-footer"):
            model_status.build(demo)
            gr.Markdown(footer_text())
    return demo


def launch_kwargs() -> dict:
    """theme/css belong to launch() in Gradio 6; so does the upload limit, which Gradio enforces while the
    upload streams in (STUDIO_MAX_UPLOAD_MB), before anything reaches a handler."""
    kwargs = {"theme": theme(), "css": CSS}
    upload_limit = limits.max_bytes("upload_mb")
    if upload_limit is not None:
        kwargs["max_file_size"] = upload_limit
    auth = access.from_env().launch_auth()
    if auth:
        kwargs["auth"] = rate_limited(auth)
        allowed = limits.whole("password_attempts")
        kwargs["auth_message"] = ("Fine-Tune Studio is password-protected (STUDIO_PASSWORD)."
                                  + (f" After {allowed} wrong passwords in 15 minutes, sign-in pauses for a while." if allowed else ""))
    return kwargs


def rate_limited(check):
    """Wrap a login check: after too many wrong passwords every attempt is refused for a while (HTTP 429 with the
    reason; the login page itself can only say the credentials were not accepted)."""
    from fastapi import HTTPException

    from studio.errors import StudioError

    def limited(username: str, password: str) -> bool:
        try:
            limits.PASSWORD_ATTEMPTS.check("login", "password")
        except StudioError as error:
            raise HTTPException(status_code=429, detail=f"{error.message} {error.hint}") from None
        if check(username, password):
            return True
        limits.PASSWORD_ATTEMPTS.failed("login")
        return False

    return limited
