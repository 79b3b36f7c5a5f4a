"""Evaluation prompts and new tokens are capped in public mode (STUDIO_MAX_EVAL_PROMPTS, STUDIO_MAX_NEW_TOKENS), in the
logic every path goes through: the handlers, the CLI and a direct API call all meet the same refusal."""

from __future__ import annotations

import pytest

from studio.compare import engine, evaluate
from studio.errors import StudioError
from studio.ui import compare_tab


@pytest.fixture
def public(monkeypatch):
    monkeypatch.setenv("STUDIO_MODE", "public")
    monkeypatch.delenv("STUDIO_MAX_EVAL_PROMPTS", raising=False)
    monkeypatch.delenv("STUDIO_MAX_NEW_TOKENS", raising=False)


def test_evaluation_prompts_are_capped(public, monkeypatch):
    assert evaluate.validate_n(50) == 50
    with pytest.raises(StudioError) as caught:
        evaluate.validate_n(51)
    assert "limit of 50 prompts" in caught.value.message and "STUDIO_MAX_EVAL_PROMPTS" in caught.value.hint
    prompts = [{"prompt": "p", "messages": [{"role": "user", "content": "p"}]}] * 51
    with pytest.raises(StudioError):
        evaluate.evaluate(None, prompts)  # refused before any model is touched
    headline = compare_tab.run_evaluation("any-run", 500, None, "", 64, progress=lambda *a, **k: None)["eval_verdict"]
    assert "limit of 50 prompts" in headline
    monkeypatch.setenv("STUDIO_MAX_EVAL_PROMPTS", "off")
    assert evaluate.validate_n(5000) == 5000


def test_new_tokens_are_capped(public):
    engine.check_settings(engine.Settings(max_new_tokens=512))
    with pytest.raises(StudioError) as caught:
        engine.check_settings(engine.Settings(max_new_tokens=100_000))
    assert "limit of 512 tokens" in caught.value.message and "STUDIO_MAX_NEW_TOKENS" in caught.value.hint
    with pytest.raises(StudioError):
        engine.check_settings(engine.Settings(max_new_tokens=0))


def test_local_mode_keeps_large_values(monkeypatch):
    monkeypatch.delenv("STUDIO_MODE", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    engine.check_settings(engine.Settings(max_new_tokens=4096))
    assert evaluate.validate_n(1000) == 1000
