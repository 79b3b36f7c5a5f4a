"""Browser: a new user answers the Decide checklist and sees the recommendation change, then hands over."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_answering_the_checklist_gives_a_recommendation(page, output_dir):
    card = page.locator("#decide-recommendation")
    expect(card).to_contain_text("Not yet: try few-shot prompting")  # the untouched form
    page.screenshot(path=str(output_dir / "decide-start.png"))

    page.locator("#decide-usecase").get_by_label("Format or style (tone, structure, output format)").check()
    page.locator("#decide-few-shot").get_by_label("Tried: poor (fails most cases)").check()
    page.locator("#decide-rag").get_by_label("Not relevant (no documents to retrieve)").check()
    examples = page.locator("#decide-examples input")
    examples.fill("300")
    examples.press("Enter")
    savings = page.locator("#decide-tokens-saved input")
    savings.fill("800")
    savings.press("Enter")
    requests = page.locator("#decide-requests input")
    requests.fill("50000")
    requests.press("Enter")
    page.locator("#decide-recommend-btn").click()

    expect(card).to_contain_text("Fine-tune", timeout=30_000)
    expect(card).not_to_contain_text("Not yet")
    expect(card).to_contain_text("Format, style and narrow task skills")
    expect(card).to_contain_text("(from: few-shot baseline)")
    expect(page.locator("#decide-technique")).to_contain_text("Suggested: LoRA")
    expect(page.locator("#decide-breakeven")).to_contain_text("Break-even after")
    expect(page.locator("#decide-breakeven-chart")).to_be_visible()
    card.scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "decide-recommendation.png"))
    page.screenshot(path=str(output_dir / "decide-full.png"), full_page=True)

    # A "don't" answer outweighs everything else.
    page.locator("#decide-tunability").get_by_label("Closed model, no fine-tuning offered").check()
    expect(card).to_contain_text("Don't fine-tune: use prompt engineering or RAG", timeout=30_000)
    page.locator("#decide-tunability").get_by_label("Open weights, licence allows fine-tuning").check()
    expect(card).to_contain_text("Fine-tune", timeout=30_000)

    page.locator("#decide-record-btn").click()
    expect(page.locator("#decide-status")).to_contain_text("Decision record saved", timeout=30_000)
    expect(page.locator("#decide-record-file")).to_contain_text(re.compile(r"decision-record-.*\.md"))

    # A reload keeps the answers and numbers (this browser's storage).
    page.reload()
    page.wait_for_selector("#studio-tabs")
    expect(page.locator("#decide-examples input")).to_have_value("300", timeout=30_000)
    expect(page.locator("#decide-requests input")).to_have_value("50000")
    expect(
        page.locator("#decide-usecase").get_by_label("Format or style (tone, structure, output format)")
    ).to_be_checked()
    expect(card).to_contain_text("Fine-tune", timeout=30_000)
    page.screenshot(path=str(output_dir / "decide-after-reload.png"))

    # One hand-over: with no dataset yet it opens Data first; the settings wait in Train.
    page.locator("#decide-use-settings").click()
    expect(page.get_by_role("tab", name="Data")).to_have_attribute("aria-selected", "true", timeout=30_000)
    assert "Kept for Train" in page.evaluate("() => document.querySelector('#decide-status')?.textContent || ''")
    page.screenshot(path=str(output_dir / "decide-handover-data.png"))
