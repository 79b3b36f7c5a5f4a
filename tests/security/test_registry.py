"""Every handler the app registers has an authorization rule (studio/ui/guard.py), in every mode.

A handler added later without the guard fails here by default — and the HTTP suite attacks every fn_index
of the running app's config with the rule found here.
"""

from __future__ import annotations

import contextlib
import os

import gradio as gr
import pytest

from studio import access
from studio.ui import guard

MODES = {
    "private": {},
    "public": {"SPACE_ID": "attack-suite/studio"},
    "oauth": {"SPACE_ID": "attack-suite/studio", "STUDIO_AUTH": "oauth", "STUDIO_OWNERS": "owner-alice"},
    "oauth with sign-in": {
        "SPACE_ID": "attack-suite/studio",
        "STUDIO_AUTH": "oauth",
        "STUDIO_OWNERS": "owner-alice",
        "STUDIO_OAUTH_LOCAL": "1",
        "OAUTH_CLIENT_SECRET": "attack-suite-oauth-secret",
    },
}


@contextlib.contextmanager
def environment(values: dict):
    keys = (
        "SPACE_ID",
        "STUDIO_AUTH",
        "STUDIO_OWNERS",
        "STUDIO_MODE",
        "STUDIO_PASSWORD",
        "STUDIO_OAUTH_LOCAL",
        "OAUTH_CLIENT_SECRET",
        *values,
    )
    saved = {key: os.environ.get(key) for key in keys}
    for key in keys:
        os.environ.pop(key, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def build_public_app():
    from studio.ui import build_app

    with environment(MODES["public"]):
        return build_app()


def unguarded(demo: gr.Blocks) -> list[str]:
    """Handlers of `demo` that run Python without an authorization rule."""
    missing = []
    for index, block in demo.fns.items():
        if block.fn is None:  # browser-only (js) events and Gradio's own cancel events run no Python
            continue
        if guard.rule_of(block.fn) not in access.ACTIONS:
            missing.append(f"{index}:{block.name}")
    return missing


def stand_in_profile():
    """What Gradio's local sign-in stand-in would read from the machine's Hugging Face login (none here)."""
    return {
        "access_token": "x",
        "userinfo": {"name": "owner-alice", "preferred_username": "owner-alice", "profile": "", "picture": ""},
    }


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_handler_of_the_app_has_an_authorization_rule(mode, monkeypatch):
    import gradio.oauth

    from studio.ui import build_app

    monkeypatch.setattr(gradio.oauth, "_get_mocked_oauth_info", stand_in_profile)
    with environment(MODES[mode]):
        demo = build_app()
    assert len(demo.fns) > 90
    assert unguarded(demo) == []


def test_the_check_catches_a_handler_without_the_guard():
    with gr.Blocks() as demo:
        button = gr.Button()
        text = gr.Textbox()
        button.click(lambda: "unchecked", None, text)
        button.click(guard.guarded(access.LOOK, lambda: "checked"), None, text)
    assert len(unguarded(demo)) == 1


def test_the_guard_refuses_before_the_handler_runs(monkeypatch):
    calls = []
    monkeypatch.setenv("SPACE_ID", "attack-suite/studio")
    monkeypatch.setenv("STUDIO_AUTH", "oauth")
    monkeypatch.setenv("STUDIO_OWNERS", "owner-alice")
    handler = guard.guarded(access.TRAIN, lambda: calls.append(1))
    with pytest.raises(gr.Error) as refused:
        handler()
    assert "Not allowed" in str(refused.value) and calls == []
