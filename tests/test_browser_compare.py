"""Browser: open Compare on a finished tiny run, send a prompt, both columns fill."""

import importlib.util
import re
from pathlib import Path

import pytest

_factory_spec = importlib.util.spec_from_file_location(
    "compare_run_factory", Path(__file__).parent / "compare" / "conftest.py"
)
factory = importlib.util.module_from_spec(_factory_spec)
_factory_spec.loader.exec_module(factory)

RUN_ID = "browser-pirate"


@pytest.fixture(scope="module")
def browser_run(tiny_model_dir):
    from studio import paths

    dataset = paths.datasets_dir() / "browser-pirate-style"
    dataset.mkdir(parents=True, exist_ok=True)
    rows = factory.style_rows()
    factory.write_jsonl(dataset / "train.jsonl", rows)
    factory.write_jsonl(dataset / "validation.jsonl", rows[:6])
    existing = paths.runs_dir() / RUN_ID
    if existing.is_dir():
        return existing
    return factory.make_run_folder(paths.runs_dir(), RUN_ID, tiny_model_dir, dataset, steps=200, lr=5e-3, seed=0)


def _done(page, selector):
    text = page.inner_text(selector)
    return "tokens/s" in text and ("done" in text or "max tokens" in text)


@pytest.mark.browser
def test_compare_side_by_side_in_the_browser(browser_run, page, output_dir):
    page.get_by_role("tab", name="Compare").click()
    run_input = page.locator("#compare-run input")
    run_input.click()
    run_input.fill(RUN_ID)
    run_input.press("Enter")
    page.click("#compare-open")
    page.wait_for_function("document.querySelector('#compare-status').innerText.includes('Loaded')", timeout=120_000)
    assert "Pirate style browser-pirate" in page.inner_text("#compare-status")

    # An example prompt from the validation split is one click away.
    page.locator("#compare-examples").get_by_text("What is 2 + 2?").click()
    page.wait_for_function("document.querySelector('#compare-input textarea').value === 'What is 2 + 2?'")
    page.click("#compare-send")
    page.wait_for_function(
        "['#compare-base-stats', '#compare-tuned-stats'].every("
        "s => /tokens\\/s.*(done|max tokens)/.test(document.querySelector(s).innerText))",
        timeout=120_000,
    )
    base_text = page.inner_text("#compare-base-chat")
    tuned_text = page.inner_text("#compare-tuned-chat")
    for text in (base_text, tuned_text):
        assert "What is 2 + 2?" in text
        assert len(text.replace("What is 2 + 2?", "").strip()) > 3  # an answer below the question
    assert "Ahoy" in tuned_text and "Ahoy" not in base_text
    assert re.search(r"\d+(\.\d)? tokens/s", page.inner_text("#compare-base-stats"))
    assert "Traceback" not in page.content()
    page.screenshot(path=str(output_dir / "compare-chat.png"), full_page=True)
