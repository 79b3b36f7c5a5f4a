"""Helpers the browser tests share."""

from __future__ import annotations


def until(page, condition: str, timeout: float = 120_000) -> None:
    """Wait for a JS condition, written over `text(selector)` (the element's innerText, '' while it does not exist:
    the elements of hidden panels may not be there yet)."""
    page.wait_for_function(
        "() => { const text = (s) => document.querySelector(s)?.innerText || ''; return " + condition + "; }",
        timeout=timeout,
    )


def reopen_after_restart(page, url: str, attempts: int = 5) -> None:
    """Open the app again once its server is back. The old page's Gradio front end polls every 2 s after
    "Connection Lost" and reloads itself when the server answers, which can abort our own navigation
    (net::ERR_ABORTED): the page is then loading anyway, so navigate again."""
    from playwright.sync_api import Error as PlaywrightError

    for attempt in range(attempts):
        try:
            page.goto(url)
            break
        except PlaywrightError as error:
            if "ERR_ABORTED" not in str(error) or attempt == attempts - 1:
                raise
            page.wait_for_timeout(1_000)
    page.wait_for_selector("#studio-tabs")
