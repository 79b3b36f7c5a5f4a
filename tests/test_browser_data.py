"""The Data tab in a real browser: upload the messy sample, read the verdict, open a flagged row."""

import pytest

from studio.data.store import SAMPLES_DIR


@pytest.mark.browser
def test_upload_messy_sample_see_verdict_and_open_a_row(page, output_dir, tiny_model_dir):
    page.get_by_role("tab", name="Data").click()
    # The tiny model's tokenizer keeps the test fast (the UI default is the bundled model).
    model = page.locator("#data-model input")
    model.fill(str(tiny_model_dir))
    model.press("Enter")
    page.locator("#data-source-kind").get_by_text("Upload a file").click()
    page.locator("#data-source-upload").wait_for()
    page.locator("#data-upload input[type=file]").set_input_files(str(SAMPLES_DIR / "assistant_style_messy.jsonl"))

    verdict = page.locator("#data-verdict [data-verdict]")
    page.wait_for_selector("#data-verdict [data-verdict=blocked]")
    assert "Blocked" in verdict.inner_text() and "Fix and split" in verdict.inner_text()
    assert "Detected format" in page.inner_text("#data-format")
    assert "Max length" in page.inner_text("#data-format")

    secret = page.locator("#data-findings [role=gridcell]", has_text="PII-SECRET").first
    secret.wait_for()
    secret.click()
    notes = page.locator("#data-row-notes")
    notes.filter(has_text="PII-SECRET").wait_for()
    chat = page.locator("#data-row-chat .rv-chat")
    assert chat.locator(".rv-msg").count() >= 2
    assert page.locator("#data-row-tokens .rv-trained").count() > 0  # the trained tokens are highlighted
    page.locator("#data-row-view").scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "data_tab_row.png"), full_page=True)
