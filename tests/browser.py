"""Helpers the browser tests share."""

from __future__ import annotations


def until(page, condition: str, timeout: float = 120_000) -> None:
    """Wait for a JS condition, written over `text(selector)` (the element's innerText, '' while it does not exist:
    the elements of hidden panels may not be there yet)."""
    page.wait_for_function(
        "() => { const text = (s) => document.querySelector(s)?.innerText || ''; return " + condition + "; }",
        timeout=timeout,
    )
