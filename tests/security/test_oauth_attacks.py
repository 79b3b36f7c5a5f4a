"""Attacks on a Space with STUDIO_AUTH=oauth ("Sign in with Hugging Face"), over HTTP.

Hugging Face itself cannot be reached here. The app runs with Gradio's local sign-in stand-in
(tests/security/oauth_stand_in.py), so the real session middleware is there; a signed-in visitor is simulated
the way the browser proves it — Gradio's session cookie, signed with the Space's OAUTH_CLIENT_SECRET — for
the owner and for another Hugging Face user. Anonymous visitors send no cookie; a forged cookie (wrong key)
counts as none. Every handler whose rule a visitor's role lacks is called and must be refused.
"""

from __future__ import annotations

import json

import pytest

from studio import access
from tests.security.client import Visitor, oauth_session, session_cookie
from tests.security.conftest import FAKE_TOKEN, OWNER, signed_in_cookie

pytestmark = pytest.mark.slow

VISITOR_RULES = {"look", "lint", "view", "chat", "vote", "report"}


def oauth_rules() -> dict[int, str]:
    import gradio.oauth

    from studio.ui import build_app
    from tests.security.test_registry import MODES, environment, stand_in_profile

    original = gradio.oauth._get_mocked_oauth_info
    gradio.oauth._get_mocked_oauth_info = stand_in_profile
    try:
        with environment(MODES["oauth with sign-in"]):
            demo = build_app()
    finally:
        gradio.oauth._get_mocked_oauth_info = original
    return {index: getattr(block.fn, "__studio_rule__", None) for index, block in demo.fns.items()}


@pytest.fixture(scope="module")
def rules(oauth_app):
    found = oauth_rules()
    server = Visitor(oauth_app.url)
    names = {dep["id"]: dep.get("api_name") for dep in server.config()["dependencies"]}
    server.close()
    assert len(found) == len(names)  # the same app as the server's, handler for handler
    return found


def _visitors(app):
    forged = {"session": session_cookie("not-the-space-secret", oauth_session(OWNER))}
    return {
        "anonymous": Visitor(app.url),
        "signed-in stranger": Visitor(app.url, cookies=signed_in_cookie("mallory")),
        "forged owner cookie": Visitor(app.url, cookies=forged),
    }


def test_visitors_are_refused_every_handler_their_role_lacks(oauth_app, rules):
    before = oauth_app.world.checksum()
    for label, visitor in _visitors(oauth_app).items():
        visitor.load_page()
        refused = 0
        for dep in visitor.dependencies():
            rule = rules.get(dep["id"])
            assert rule in access.ACTIONS, dep.get("api_name")
            if rule in VISITOR_RULES:
                continue
            # Each input at its component's own default value: valid for Gradio, so the handler itself decides.
            data = [
                None
                if visitor.component(cid).get("type") == "state"
                else visitor.component(cid).get("props", {}).get("value")
                for cid in dep["inputs"]
            ]
            result = visitor.call(dep["id"], data)
            assert not result.success and result.refused, (label, dep.get("api_name"), result.text[:300])
            assert "owners of this Space" in result.error
            refused += 1
        assert refused >= 15, label  # train, stop, resume, delete, export, merge, push, evaluate, save, hub, operate…
        for canary in oauth_app.world.canaries:
            assert canary not in visitor.all_text()
        assert FAKE_TOKEN not in visitor.all_text()
        visitor.close()
    assert oauth_app.world.checksum() == before


def test_visitors_see_and_chat_with_the_shared_demo_only(oauth_app):
    world = oauth_app.world
    before = world.checksum()
    stranger = Visitor(oauth_app.url, cookies=signed_in_cookie("mallory"))
    stranger.load_page()
    banner = stranger.call_named("visitor_banner", [])
    assert "@mallory" in banner.text and "Only the Space's owners train" in banner.text
    listed = json.dumps(stranger.call_named("refresh_runs", [None]).data)
    assert world.demo_run.name in listed and world.victim_run.name not in listed
    chat = stranger.call_named("chat", ["Hello?", [], [], [], world.demo_run.name, "", "", 0, 1, 8, 0, 1.0, False])
    assert chat.success, chat.text[:500]
    answers = chat.data[1:3]
    assert answers[0] and answers[1]  # base and tuned columns answered
    for target in (world.victim_run.name, world.operator_run.name, str(world.victim_run)):
        assert stranger.call_named("open_run", [target, ""]).refused
    assert world.checksum() == before
    stranger.close()


def test_the_owner_signed_in_with_hugging_face_is_the_operator(oauth_app):
    world = oauth_app.world
    owner = Visitor(oauth_app.url, cookies=signed_in_cookie(OWNER))
    owner.load_page()
    banner = owner.call_named("visitor_banner", [])
    assert "operator" in banner.text
    listed = json.dumps(owner.call_named("refresh_runs", [None]).data)
    assert world.victim_run.name in listed and world.operator_run.name in listed
    overview = owner.call_named("queue_overview", [])
    assert overview.success and not overview.refused
    # Gradio's own sign-in route (the stand-in) sets the same kind of cookie the suite forges.
    login = owner.http.get(f"{oauth_app.url}login/huggingface", follow_redirects=False)
    assert login.status_code in (302, 307)
    owner.close()
