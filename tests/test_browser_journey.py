"""The whole first-run path in a real browser, on the tiny model: Decide → Data → Train → Compare.

Also: a page reload during training reattaches to the run, and a second browser (another
session) sees the trainer busy and cannot stop the first one's run. Screenshots of each tab go
to test-output/ (the README uses them).
"""

import re

import pytest

from tests.browser import until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _selected_tab(page) -> str:
    return page.locator("[role=tab][aria-selected=true]").first.inner_text().strip()


def _choose_model(page, selector: str, model: str) -> None:
    field = page.locator(f"{selector} input")
    field.fill(model)
    field.press("Enter")


def test_first_run_path_reload_and_second_browser(browser, app_url, page, tiny_model_dir, output_dir):
    tiny = str(tiny_model_dir)

    # Decide: the checklist is there; the first-run path keeps its settings and goes to Data.
    assert "Should you fine-tune" in page.inner_text("#decide-intro") or page.locator("#decide-recommendation").count()
    page.screenshot(path=str(output_dir / "journey-1-decide.png"), full_page=False)
    page.click("#decide-use-settings")
    until(page, "document.querySelector('[role=tab][aria-selected=true]')?.innerText.includes('Data')")

    # Data: the bundled sample, checked with the tiny model's tokenizer, fixed and split.
    _choose_model(page, "#data-model", tiny)
    page.click("#data-sample-btn")
    page.wait_for_selector("#data-verdict [data-verdict]:not([data-verdict=none])", timeout=180_000)
    assert re.search(r"Ready", page.inner_text("#data-verdict")), page.inner_text("#data-verdict")
    page.click("#data-fix-btn")
    until(page, "text('#data-fix-result').includes('Saved')", timeout=180_000)
    page.screenshot(path=str(output_dir / "journey-2-data.png"), full_page=False)
    page.click("#data-next-btn")
    until(page, "document.querySelector('[role=tab][aria-selected=true]')?.innerText.includes('Train')")

    # Train: the saved dataset is pre-selected; the tiny model, a short high-rate run.
    until(page, "text('#train-dataset-info').toLowerCase().includes('rows')")
    _choose_model(page, "#train-model", tiny)
    page.locator("#train-max-steps input").fill("120")
    page.locator("#train-lr input").fill("0.01")
    page.locator("#train-name").get_by_role("textbox").fill("journey run")
    page.click("#train-start")
    until(page, "text('#train-start-message').includes('Started')")
    until(page, "text('#train-start-message').includes('Started')")
    until(page, "text('#train-run-header').includes('journey run')")
    until(page, "/running|completed/.test(text('#train-progress'))", timeout=180_000)

    # A second browser is another session: it sees the run as busy and cannot stop it.
    other = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        intruder = other.new_page()
        intruder.set_default_timeout(60_000)
        intruder.goto(app_url)
        intruder.get_by_role("tab", name="Train").click()
        until(intruder, "text('#train-run-header').includes('journey run')")
        state = intruder.inner_text("#train-progress")
        if "running" in state:
            until(intruder, "text('#train-status').includes('Busy')")
            # Its controls are not offered (the supervisor refuses such a stop too: tests/train).
            assert not intruder.locator("#train-stop").is_visible()
            assert not intruder.locator("#train-delete").is_visible()
            intruder.screenshot(path=str(output_dir / "journey-second-browser-busy.png"), full_page=False)
    finally:
        other.close()

    # Reloading the page reattaches to the run, and the form shows its settings again (not the defaults).
    page.reload()
    page.wait_for_selector("#studio-tabs")
    page.get_by_role("tab", name="Train").click()
    until(page, "text('#train-run-header').includes('journey run')")
    until(page, "document.querySelector('#train-max-steps input')?.value === '120'")
    assert page.locator("#train-lr input").input_value() == "0.01"
    until(page, "/completed/.test(text('#train-progress'))", timeout=600_000)
    until(page, "text('#train-loss-plot').includes('train loss')")
    page.screenshot(path=str(output_dir / "journey-3-train.png"), full_page=False)

    # Compare: opened from the run, both columns answer, the held-out evaluation shows the style.
    page.click("#train-open-compare")
    until(page, "document.querySelector('[role=tab][aria-selected=true]')?.innerText.includes('Compare')")
    until(page, "text('#compare-status').includes('Loaded')", timeout=180_000)
    page.locator("#compare-input textarea").fill("What is the capital of France?")
    page.click("#compare-send")
    page.wait_for_function(
        "['#compare-base-stats', '#compare-tuned-stats'].every(s => /tokens\\/s.*(done|max tokens)/"
        ".test(document.querySelector(s).innerText))",
        timeout=180_000,
    )
    base, tuned = page.inner_text("#compare-base-chat"), page.inner_text("#compare-tuned-chat")
    assert base.strip() and tuned.strip() and base != tuned
    page.locator("#compare-eval-n input").fill("5")
    page.click("#compare-eval-run")
    until(page, "text('#compare-verdict').includes('Loss on the reference answers')", timeout=300_000)
    verdict = page.inner_text("#compare-verdict")
    summary = page.inner_text("#compare-eval-summary")
    # The tiny random model learns too little in two minutes to pick up "Ahoy!" (the bundled model
    # does: test_browser_demo.py); what it must show is that the adapter fits held-out answers better —
    # and that 5 prompts are too few for the verdict to call it better.
    match = re.search(
        r"Loss on the reference answers \(lower is better\): ([\d.]+) → ([\d.]+) over (\d+) prompt\(s\); "
        r"tuned better on (\d+)",
        verdict,
    )
    assert match, verdict
    base_loss, tuned_loss, prompts, improved = float(match[1]), float(match[2]), int(match[3]), int(match[4])
    assert prompts == 5 and improved >= 3 and tuned_loss < base_loss, verdict
    assert "Inconclusive:" in verdict and "too little evidence" in verdict, verdict
    assert re.search(r"Answers that start with “Ahoy!”: base \d+/5, tuned \d+/5", summary), summary
    assert "Traceback" not in page.content()
    page.screenshot(path=str(output_dir / "journey-4-compare.png"), full_page=False)
