"""The app shell builds, serves, and shows the four tabs in order."""

import urllib.request

import pytest


def test_app_module_exposes_demo():
    import app

    assert app.demo is not None
    labels = [block.label for block in app.demo.blocks.values() if type(block).__name__ == "Tab"]
    assert labels == ["Decide", "Data", "Train", "Compare"]


def test_app_serves_http_and_api(app_url):
    with urllib.request.urlopen(app_url, timeout=30) as response:
        assert response.status == 200
        body = response.read().decode()
    assert "Fine-Tune Studio" in body or "gradio" in body.lower()
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    assert client is not None


@pytest.mark.browser
def test_browser_shows_header_tabs_and_footer(page, output_dir):
    tabs = page.get_by_role("tab")
    assert [tabs.nth(i).inner_text().strip() for i in range(tabs.count())] == ["Decide", "Data", "Train", "Compare"]
    assert "Fine-Tune Studio" in page.inner_text("#studio-header")
    footer = page.inner_text("#studio-footer")
    assert "Hardware:" in footer and "Data folder:" in footer
    page.screenshot(path=str(output_dir / "shell.png"), full_page=True)
