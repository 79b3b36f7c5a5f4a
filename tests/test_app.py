"""The app shell builds, serves, and shows the four tabs in order."""

import sys
import types
import urllib.request

import pytest


def test_app_module_exposes_demo():
    import app

    assert app.demo is not None
    labels = [block.label for block in app.demo.blocks.values() if type(block).__name__ == "Tab"]
    assert labels == ["Decide", "Data", "Train", "Compare"]
    from studio import limits

    assert app.demo.delete_cache == limits.delete_cache() is not None  # uploads do not pile up in Gradio's cache


def test_app_serves_http_and_api(app_url):
    with urllib.request.urlopen(app_url, timeout=30) as response:
        assert response.status == 200
        body = response.read().decode()
    assert "Fine-Tune Studio" in body or "gradio" in body.lower()
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    assert client is not None


# The API a gradio_client script sees: each name here is a decision (docs/api.md); every other event is private.
PUBLIC_API = {
    "decide_recommend",
    "decide_record",
    "decide_use_settings",
    "lint_sample",
    "lint_upload",
    "lint_hub",
    "fix_and_split",
    # studio/ui/api.py: JSON endpoints for scripts
    "lint",
    "add_dataset",
    "datasets",
    "estimate",
    "start_run",
    "run_status",
    "runs",
    "stop",
    "ask",
    "evaluate",
}


def test_every_event_made_an_api_decision():
    """A new event is private unless it is added here on purpose: no auto-named /lambda_N endpoints."""
    import app

    public = {
        block_fn.api_name
        for block_fn in app.demo.fns.values()
        if getattr(block_fn, "api_visibility", "public") != "private"
    }
    assert public == PUBLIC_API


@pytest.mark.browser
def test_browser_shows_header_tabs_and_footer(page, output_dir):
    tabs = page.get_by_role("tab")
    assert [tabs.nth(i).inner_text().strip() for i in range(tabs.count())] == ["Decide", "Data", "Train", "Compare"]
    assert "Fine-Tune Studio" in page.inner_text("#studio-header")
    footer = page.inner_text("#studio-footer")
    assert "Hardware:" in footer and "Data folder:" in footer
    page.screenshot(path=str(output_dir / "shell.png"), full_page=True)


def test_model_status_prepare_converts_with_progress(monkeypatch, tmp_path):
    """The footer's Prepare button reports progress and ends with 'ready'; errors become messages."""
    from studio.errors import StudioError
    from studio.models import bundled
    from studio.ui import model_status

    seen = []

    class FakeProgress:
        def __call__(self, fraction, desc=""):
            seen.append((fraction, desc))

    def fake_convert(progress):
        progress(0.5, "halfway")
        return tmp_path

    monkeypatch.setattr(bundled, "ensure_converted", fake_convert)
    monkeypatch.setattr(bundled, "is_converted", lambda: True)
    assert "ready" in model_status.convert_now(FakeProgress())
    assert seen == [(0.5, "halfway")]

    def broken(progress):
        raise StudioError("The bundled model is not installed.", "Run the setup.")

    monkeypatch.setattr(bundled, "ensure_converted", broken)
    text = model_status.convert_now(FakeProgress())
    assert "not installed" in text and "Hint" in text and "Traceback" not in text


def test_launch_kwargs_follow_access_mode(monkeypatch):
    from studio.ui.shell import launch_kwargs

    monkeypatch.delenv("STUDIO_PASSWORD", raising=False)
    assert "auth" not in launch_kwargs()
    monkeypatch.setenv("STUDIO_PASSWORD", "pw")
    assert launch_kwargs()["auth"]("studio", "pw")


def test_oauth_mode_shows_login_button(monkeypatch):
    import gradio.block_function
    import gradio.oauth

    monkeypatch.setenv("STUDIO_AUTH", "oauth")
    monkeypatch.setenv("SPACE_AUTHOR_NAME", "alice")
    from studio.ui import build_app

    def kinds(demo):
        return {type(block).__name__ for block in demo.blocks.values()}

    assert "LoginButton" not in kinds(build_app())  # off a Space nobody can sign in: no button
    monkeypatch.setenv("SPACE_ID", "alice/studio")  # simulate a Space with hf_oauth: true
    monkeypatch.setenv("SYSTEM", "spaces")
    fake_spaces = types.ModuleType("spaces")  # the real `spaces` library exists only on Hugging Face
    fake_spaces.gradio_auto_wrap = lambda function, *args, **kwargs: function
    monkeypatch.setitem(sys.modules, "spaces", fake_spaces)
    monkeypatch.setattr(gradio.block_function, "spaces", fake_spaces)
    for name in ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "OPENID_PROVIDER_URL"):
        monkeypatch.setattr(gradio.oauth, name, "x", raising=False)
    assert "LoginButton" in kinds(build_app())


def test_zero_gpu_space_generates_inside_spaces_gpu(monkeypatch):
    """On ZeroGPU the Compare tab's chat and evaluation handlers (and the API's) are the @spaces.GPU-wrapped ones."""
    import gradio.block_function

    wrapped = {}
    fake_spaces = types.ModuleType("spaces")

    def gpu(duration):
        def wrap(function):
            def on_gpu(*args, **kwargs):
                return function(*args, **kwargs)

            wrapped[on_gpu] = (function.__name__, duration)
            return on_gpu

        return wrap

    fake_spaces.GPU = gpu
    fake_spaces.gradio_auto_wrap = lambda function, *args, **kwargs: function
    monkeypatch.setitem(sys.modules, "spaces", fake_spaces)
    monkeypatch.setattr(gradio.block_function, "spaces", fake_spaces, raising=False)
    from studio.ui import build_app

    def inner(fn):  # the authorization guard (studio/ui/guard.py) wraps every handler, the GPU call included
        return getattr(fn, "__wrapped__", fn)

    handlers = {inner(block_function.fn) for block_function in build_app().fns.values()}
    assert not handlers & set(wrapped)  # off ZeroGPU nothing is wrapped
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    on_gpu = sorted(wrapped[inner(f.fn)][0] for f in build_app().fns.values() if inner(f.fn) in wrapped)
    # send, Enter, Evaluate; the script API's /ask and /evaluate
    assert on_gpu == ["ask", "chat", "chat", "evaluate_run", "run_evaluation"]
