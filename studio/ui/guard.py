"""Every event handler of the app goes through `guarded(action, fn)`: the registry of handlers and their rule.

On each call the guard (1) works out who is calling from the Gradio request — the signed-in Hugging Face
user in Gradio's session cookie, else the browser id bound to this page session at load (studio.access) —
(2) asks `access.authorize(identity, action)` whether that role may do this kind of thing at all, and
(3) runs the handler with that identity set, so the handler and the logic below it check the specific run or
dataset with the same function (`access.authorize(..., resource)`). A refusal reaches the browser as a
plain message (a Gradio error whose text starts with "Not allowed"), never a traceback; so does any other
unexpected failure.

The rule is attached to the wrapper (`__studio_rule__`): tests/security builds the app and fails when any
handler in its config lacks one, so a handler added without an authorization check fails the suite.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging

import gradio as gr

from studio import access
from studio.errors import StudioError

RULE_ATTRIBUTE = "__studio_rule__"
_log = logging.getLogger(__name__)


def request_identity(request=None) -> tuple[str | None, str | None]:
    """(page session key, signed-in Hugging Face username) of the current Gradio request, if any."""
    if request is None:
        from gradio.context import LocalContext

        request = LocalContext.request.get(None)
    if request is None:
        return None, None
    session_key = getattr(request, "session_hash", None)
    username = None
    raw = getattr(request, "request", None)
    scope = getattr(raw, "scope", None) or {}
    if "session" in scope:  # Gradio's signed session cookie (only when Hugging Face sign-in is set up)
        info = scope["session"].get("oauth_info") or {}
        userinfo = info.get("userinfo") if isinstance(info, dict) else None
        if isinstance(userinfo, dict):
            import time

            expires = info.get("expires_at")
            if expires is None or float(expires) > time.time():
                username = userinfo.get("preferred_username") or None
    return session_key, username


def request_client(request=None) -> str:
    """The address the current request came from: the one the nearest proxy saw (the last X-Forwarded-For entry,
    which a client cannot forge past that proxy; on a Space, Hugging Face's), else the socket's peer."""
    if request is None:
        from gradio.context import LocalContext

        request = LocalContext.request.get(None)
    raw = getattr(request, "request", None)
    forwarded = ""
    headers = getattr(raw, "headers", None) or getattr(request, "headers", None)
    if headers is not None:
        forwarded = str(headers.get("x-forwarded-for") or "").split(",")[-1].strip()
    client = getattr(raw, "client", None) or getattr(request, "client", None)
    return forwarded or str(getattr(client, "host", "") or "")


def caller(token=None) -> access.Identity:
    """The identity of the current request (or of a direct call: from the token, as studio.access says)."""
    session_key, username = request_identity()
    if session_key is None and username is None:
        return access.current(token)
    return dataclasses.replace(access.identify(session_key, username, token), client=request_client())


def _refusal(error: Exception) -> gr.Error:
    if isinstance(error, StudioError):
        text = error.message + (f" Hint: {error.hint}" if error.hint else "")
        title = "Not allowed" if isinstance(error, access.AccessDenied) else "Could not do that"
        return gr.Error(text, title=title, print_exception=False)
    _log.exception("handler failed")
    return gr.Error("Something went wrong; the details are in the server log.", title="Error", print_exception=False)


def guarded(action: str, fn):
    """fn as an event handler that first authorizes `action` for the caller. Keeps fn's name and signature
    (Gradio reads them for api names, gr.Progress and event data)."""
    if action not in access.ACTIONS:
        raise ValueError(f"unknown action {action!r}")

    def enter():
        identity = caller()
        access.authorize(identity, action)
        return identity

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args, **kwargs):
            try:
                identity = enter()
            except StudioError as error:
                raise _refusal(error) from None
            # Each step may run in another worker thread (a copied context): set the identity around every step.
            steps = fn(*args, **kwargs)
            while True:
                with access.acting(identity):
                    try:
                        value = next(steps)
                    except StopIteration:
                        return
                    except gr.Error:
                        raise
                    except Exception as error:  # noqa: BLE001 - never a traceback in the browser
                        raise _refusal(error) from None
                yield value

        wrapper = stream
    else:

        @functools.wraps(fn)
        def call(*args, **kwargs):
            try:
                identity = enter()
            except StudioError as error:
                raise _refusal(error) from None
            with access.acting(identity):
                try:
                    return fn(*args, **kwargs)
                except gr.Error:
                    raise
                except Exception as error:  # noqa: BLE001 - every handler failure becomes a refusal, never a traceback
                    raise _refusal(error) from None

        wrapper = call
    setattr(wrapper, RULE_ATTRIBUTE, action)
    return wrapper


def rule_of(fn) -> str | None:
    return getattr(fn, RULE_ATTRIBUTE, None)
