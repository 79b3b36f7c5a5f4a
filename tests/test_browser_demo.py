"""The first-run demo as a new user meets it: the bundled model, the bundled sample, every default.

The machine is prepared as the app prepares it in the background at start (the bundled model converted, this
CPU's fp32-vs-bf16 measurement made: studio.models.prepare), then Decide → Data (sample) → Train (defaults,
nothing typed but a name) → Compare (evaluate with the default settings). The tuned model must carry the sample's
style ("Ahoy! … — Captain Byte") on held-out prompts where the base model does not. The time of each stage goes to
test-output/demo-timing.json (the 3-minute target is a figure to watch in bench notes, not an assertion).
"""

import json
import re
import time

import pytest

from tests.browser import until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(2400)]


def _style_counts(summary: str, wording: str) -> tuple[int, int, int]:
    match = re.search(rf"Answers that {wording} “[^”]+”: base (\d+)/(\d+), tuned (\d+)/\2", summary)
    assert match, summary
    return int(match[1]), int(match[3]), int(match[2])


def test_first_run_demo_on_the_bundled_model_shows_the_style(page, prepared_bundled_model, output_dir):
    started = time.monotonic()
    timing = {}

    def lap(stage: str) -> None:
        timing[stage] = round(time.monotonic() - started - sum(timing.values()), 1)

    page.screenshot(path=str(output_dir / "demo-1-decide.png"), full_page=False)
    page.click("#decide-use-settings")
    until(page, "document.querySelector('[role=tab][aria-selected=true]')?.innerText.includes('Data')")
    page.click("#data-sample-btn")
    page.wait_for_selector("#data-verdict [data-verdict]:not([data-verdict=none])", timeout=300_000)
    assert "Ready" in page.inner_text("#data-verdict"), page.inner_text("#data-verdict")
    page.click("#data-fix-btn")
    until(page, "text('#data-fix-result').includes('Saved')", timeout=180_000)
    page.screenshot(path=str(output_dir / "demo-2-data.png"), full_page=True)
    page.click("#data-next-btn")
    until(page, "text('#train-dataset-info').toLowerCase().includes('rows')")
    lap("decide_and_data")

    page.locator("#train-name").get_by_role("textbox").fill("first demo")
    page.click("#train-start")
    until(page, "text('#train-start-message').includes('Started')")
    until(page, "text('#train-start-message').includes('Started')")
    # The live view switches to the new run on its next tick; until then it shows the newest earlier run.
    until(page, "text('#train-run-header').includes('first demo')")
    until(page, "/completed/.test(text('#train-progress'))", timeout=1_200_000)
    until(page, "text('#train-loss-plot').includes('train loss')")
    page.screenshot(path=str(output_dir / "demo-3-train.png"), full_page=True)
    lap("train")

    page.click("#train-open-compare")
    until(page, "document.querySelector('[role=tab][aria-selected=true]')?.innerText.includes('Compare')")
    until(page, "text('#compare-status').includes('Loaded')", timeout=300_000)
    page.click("#compare-eval-run")
    until(page, "text('#compare-eval-summary').includes('Answers that')", timeout=900_000)
    lap("compare_evaluation")
    summary = page.inner_text("#compare-eval-summary")
    page.locator("#compare-input textarea").fill("What is the capital of Australia?")
    page.click("#compare-send")
    page.wait_for_function(
        "['#compare-base-stats', '#compare-tuned-stats'].every(s => /tokens\\/s.*(done|max tokens)/"
        ".test(document.querySelector(s).innerText))",
        timeout=300_000,
    )
    assert "Ahoy!" in page.inner_text("#compare-tuned-chat") and "Ahoy!" not in page.inner_text("#compare-base-chat")
    page.screenshot(path=str(output_dir / "demo-4-compare.png"), full_page=True)

    base_opening, tuned_opening, prompts = _style_counts(summary, "start with")
    base_signature, tuned_signature, _ = _style_counts(summary, "end with")
    timing["total"] = round(time.monotonic() - started, 1)
    figures = {
        "seconds": timing,
        "prompts": prompts,
        "opening": [base_opening, tuned_opening],
        "signature": [base_signature, tuned_signature],
    }
    (output_dir / "demo-timing.json").write_text(json.dumps(figures, indent=2))
    print(f"\nfirst-run demo: {json.dumps(figures)}")

    assert prompts >= 10  # the whole validation split of the sample (default: up to 20 prompts)
    assert tuned_opening >= 0.8 * prompts and base_opening <= 0.2 * prompts, summary
    assert tuned_signature >= 0.5 * prompts and base_signature <= 0.2 * prompts, summary
    assert "Traceback" not in page.content()
