"""The app shell: header (with what this visitor may do, in public mode), four tabs in order, footer with
hardware, data folder and the operator's sign-in.

`build_app()` refuses contradictory settings (studio.access.settings) before building anything.
`start_background()` starts the queue's dispatcher thread (called by app.py and `studio serve`)."""

from __future__ import annotations

import json
import os

import gradio as gr

from studio import access, escape, limits, paths
from studio.errors import StudioError
from studio.models import hardware, prepare
from studio.train import supervisor
from studio.ui import api, compare_tab, data_tab, decide_tab, model_status, train_tab
from studio.ui.guard import guarded, request_identity
from studio.ui.shared import TAB_IDS, Shared, message_markdown
from studio.ui.theme import CSS, theme
from studio.ui.wiring import Parts, wired

TITLE = "Fine-Tune Studio"
PURPOSE = "From “should we fine-tune at all?” to a LoRA-tuned model you can show next to the base model."

TABS = (
    ("Decide", "decide", decide_tab),
    ("Data", "data", data_tab),
    ("Train", "train", train_tab),
    ("Compare", "compare", compare_tab),
)


assert tuple(tab_id for _, tab_id, _ in TABS) == TAB_IDS
TAB_LABELS = json.dumps({label: tab_id for label, tab_id, _ in TABS})
# The selected tab goes into the page's address whenever it changes: a click, or a handler's
# gr.Tabs(selected=...) (Decide's hand-over, "Open in Compare") — the select event sees clicks only. The browser
# reads the tab bar once it has redrawn.
TAB_TO_ADDRESS_JS = """
() => {
  const ids = TAB_IDS_BY_LABEL;
  setTimeout(() => {
    const button = document.querySelector('#studio-tabs [role="tab"][aria-selected="true"]');
    const tab = button ? ids[button.textContent.trim()] : undefined;
    if (!tab) { return; }
    const url = new URL(window.location.href);
    url.searchParams.set("tab", tab);
    window.history.replaceState(null, "", url);
  }, 0);
  return [];
}
""".replace("TAB_IDS_BY_LABEL", TAB_LABELS)
# ?tab=train opens the Train tab as soon as the tab bar is drawn, in the browser: a round trip to the server
# would land after the page's slower load work, and could take the visitor back from a tab they had clicked.
TAB_FROM_ADDRESS_JS = """
() => {
  const ids = TAB_IDS_BY_LABEL;
  const wanted = new URL(window.location.href).searchParams.get("tab");
  const label = Object.keys(ids).find((name) => ids[name] === wanted);
  const open = (tries) => {
    const button = [...document.querySelectorAll('#studio-tabs [role="tab"]')]
      .find((candidate) => candidate.textContent.trim() === label);
    if (button) {
      if (button.getAttribute("aria-selected") !== "true") { button.click(); }
    } else if (tries > 0) {
      setTimeout(() => open(tries - 1), 50);
    }
  };
  if (label) { open(100); }
  return [];
}
""".replace("TAB_IDS_BY_LABEL", TAB_LABELS)


def footer_text() -> str:
    detected = hardware.detect_quick()
    if access.is_public():  # no server path on a public page
        return (
            f"Hardware: {escape.md_inline(detected.summary)} · Data folder: the studio's storage on the server · "
            f"{access.settings().mode_name} mode"
        )
    return f"Hardware: {escape.md_inline(detected.summary)} · Data folder: {escape.md_code(paths.home())}"


def oauth_available() -> bool:
    """Hugging Face sign-in works on a Space with `hf_oauth: true`. STUDIO_OAUTH_LOCAL=1 uses Gradio's local
    stand-in instead (it signs you in as the account this machine is logged in to): for trying oauth mode."""
    return bool(os.environ.get("SYSTEM") == "spaces" and os.environ.get("SPACE_ID")) or os.environ.get(
        "STUDIO_OAUTH_LOCAL", ""
    ).lower() in ("1", "true", "yes")


def visitor_banner() -> str:
    """What this visitor may do here (public mode); empty in private mode."""
    return access.describe(access.current())


def sign_in_operator(password: str | None) -> dict:
    """The admin password gives this page session operator rights (studio.access); the box is emptied either way."""
    session_key, _username = request_identity()
    try:
        identity = access.become_operator(session_key, password)
    except access.AccessDenied as error:
        return {"message": message_markdown(error), "password": ""}
    return {
        "message": "✓ Signed in as the operator for this page (until you reload it).",
        "password": "",
        "banner": access.describe(identity),
    }


def build_app() -> gr.Blocks:
    access.settings()  # contradictory settings stop here, with a message (ConfigurationError)
    paths.configure_caches()
    public = access.is_public()
    # Uploaded files are deleted from Gradio's cache after STUDIO_UPLOAD_CACHE_HOURS (and on restart).
    with gr.Blocks(title=TITLE, delete_cache=limits.delete_cache()) as demo:
        with gr.Row(elem_id="studio-header"):
            gr.Markdown(f"# {TITLE}\n{PURPOSE}")
            if access.from_env().mode == "oauth":
                if oauth_available():
                    login = gr.LoginButton(scale=0)
                    # Gradio's own load handler for the button (it reads the caller's own cookie): through the
                    # guard too, so every handler of the app has a rule.
                    check, *rest = login.load_event_to_attach
                    login.load_event_to_attach = (guarded(access.LOOK, check), *rest)
                else:
                    gr.Markdown(
                        "⚠️ STUDIO_AUTH=oauth works on a Hugging Face Space with `hf_oauth: true`; "
                        "here nobody can sign in, so training is off."
                    )
        banner = gr.Markdown(
            access.describe(access.Identity("", access.ANONYMOUS)) if public else "",
            elem_id="studio-access",
            visible=public,
        )
        states = dict(
            dataset=gr.State(None),
            dataset_stats=gr.State(None),
            train_prefill=gr.State(None),
            run=gr.State(None),
            model=gr.State(None),
        )
        with gr.Tabs(elem_id="studio-tabs") as tabs:
            shared = Shared(tabs=tabs, **states)
            for label, tab_id, module in TABS:
                with gr.Tab(label, id=tab_id, elem_id=f"tab-{tab_id}"):
                    module.build(shared)
        with gr.Column(elem_id="studio-footer"):
            model_status.build(demo)
            gr.Markdown(footer_text())
            with gr.Accordion(
                "Operator sign-in",
                open=False,
                visible=public and access.settings().admin_password_set,
                elem_id="studio-operator",
            ):
                with gr.Row():
                    admin_password = gr.Textbox(
                        label="Admin password (STUDIO_ADMIN_PASSWORD)",
                        type="password",
                        scale=3,
                        elem_id="studio-operator-password",
                    )
                    admin_button = gr.Button("Sign in as the operator", scale=1, elem_id="studio-operator-btn")
                admin_message = gr.Markdown(elem_id="studio-operator-message")
        signed_in = Parts(message=admin_message, password=admin_password, banner=banner)
        admin_button.click(
            wired(access.LOOK, signed_in, sign_in_operator),
            admin_password,
            signed_in.outputs(),
            api_visibility="private",
        )
        if shared.ready is not None and public:
            shared.ready.then(guarded(access.LOOK, visitor_banner), None, banner, api_visibility="private")
        # The tab in the address: opened from it on load, written to it on every switch.
        demo.load(None, None, None, js=TAB_FROM_ADDRESS_JS, api_visibility="private")
        tabs.change(None, None, None, js=TAB_TO_ADDRESS_JS, api_visibility="private")
        api.build()  # the named endpoints for scripts (docs/api.md)
    return demo


def start_background() -> None:
    """Work the app does with no browser open: start queued runs when the trainer is free, and prepare the bundled
    model and this CPU's precision measurement while the first visitor reads (studio.models.prepare)."""
    supervisor.start_dispatcher()
    prepare.start_in_background()


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
        kwargs["auth_message"] = "Fine-Tune Studio is password-protected (STUDIO_PASSWORD)." + (
            f" After {allowed} wrong passwords in 15 minutes, sign-in pauses for a while." if allowed else ""
        )
    return kwargs


def rate_limited(check):
    """Wrap a login check: after too many wrong passwords every attempt is refused for a while (HTTP 429 with the
    reason; the login page itself can only say the credentials were not accepted)."""
    from fastapi import HTTPException

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
