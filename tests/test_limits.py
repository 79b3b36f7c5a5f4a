"""studio.limits: the mode, each limit's default and override, the attempt limiter, the bounded cache, and where
the app applies them (launch kwargs, Blocks' delete_cache, the login and admin checks, the README table)."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio import limits
from studio.errors import StudioError

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(autouse=True)
def local_mode(monkeypatch):
    for spec in limits.LIMITS.values():
        monkeypatch.delenv(spec.env, raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv(limits.MODE_ENV, raising=False)
    limits.PASSWORD_ATTEMPTS.reset()
    limits.ADMIN_ATTEMPTS.reset()
    yield
    limits.PASSWORD_ATTEMPTS.reset()
    limits.ADMIN_ATTEMPTS.reset()


def test_public_mode_on_a_space_unless_private():
    assert not limits.public_mode({})
    assert limits.public_mode({"SPACE_ID": "owner/space"})
    assert not limits.public_mode({"SPACE_ID": "owner/space", "STUDIO_MODE": "private"})
    assert limits.public_mode({"STUDIO_MODE": "public"})


def test_defaults_per_mode_and_overrides():
    public = {"SPACE_ID": "a/b"}
    assert limits.value("epochs", {}) is None and limits.value("epochs", public) == 10
    assert limits.value("upload_mb", {}) == 200 and limits.value("upload_mb", public) == 50
    assert limits.value("epochs", {**public, "STUDIO_MAX_EPOCHS": "3"}) == 3
    assert limits.value("epochs", {**public, "STUDIO_MAX_EPOCHS": "off"}) is None
    assert limits.value("epochs", {**public, "STUDIO_MAX_EPOCHS": "lots"}) == 10  # unreadable: the mode's default
    assert limits.value("epochs", {**public, "STUDIO_MAX_EPOCHS": "-1"}) == 10
    assert limits.max_bytes("upload_mb", {"STUDIO_MAX_UPLOAD_MB": "1.5"}) == int(1.5 * 1024 * 1024)
    assert limits.whole("steps", {"STUDIO_MAX_STEPS": "99.9"}) == 99


def test_every_limit_has_a_public_value_and_a_meaning():
    for name, spec in limits.LIMITS.items():
        assert spec.env.startswith("STUDIO_") and spec.meaning and spec.unit, name
        assert spec.public is not None, f"{name}: public mode must limit it"


def test_check_at_most_names_the_variable_and_who_can_raise_it(monkeypatch):
    limits.check_at_most("epochs", 500, "Epochs")  # local: no cap
    monkeypatch.setenv("SPACE_ID", "a/b")
    limits.check_at_most("epochs", 10, "Epochs")
    with pytest.raises(StudioError) as caught:
        limits.check_at_most("epochs", 11, "The number of epochs", "Use fewer.")
    assert "over this studio's limit of 10 epochs" in caught.value.message
    assert "Use fewer." in caught.value.hint and "operator" in caught.value.hint and "STUDIO_MAX_EPOCHS" in caught.value.hint


def test_delete_cache_follows_the_mode(monkeypatch):
    assert limits.delete_cache() == (3600, 24 * 3600)
    monkeypatch.setenv("SPACE_ID", "a/b")
    assert limits.delete_cache() == (3600, 3600)
    monkeypatch.setenv("STUDIO_UPLOAD_CACHE_HOURS", "0.25")
    assert limits.delete_cache() == (900, 900)
    monkeypatch.setenv("STUDIO_UPLOAD_CACHE_HOURS", "off")
    assert limits.delete_cache() is None


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_attempts_pause_after_the_limit_and_resume_when_the_window_passes(monkeypatch):
    monkeypatch.setenv("STUDIO_MAX_PASSWORD_ATTEMPTS", "3")
    clock = Clock()
    limiter = limits.AttemptLimiter(window_s=600, clock=clock)
    for _ in range(3):
        limiter.check("login")
        limiter.failed("login")
        clock.now += 10
    with pytest.raises(StudioError) as caught:
        limiter.check("login", "password")
    assert "Too many wrong password attempts" in caught.value.message and "STUDIO_MAX_PASSWORD_ATTEMPTS" in caught.value.hint
    limiter.check("other key")  # keys are counted apart
    clock.now += 600 - 30 + 1  # the first failure leaves the window
    limiter.check("login")


def test_lru_cache_keeps_the_most_recently_used(monkeypatch):
    monkeypatch.setenv("STUDIO_TOKENIZER_CACHE", "2")
    cache = limits.LRUCache("tokenizers")
    loads = []

    def loader(key):
        return lambda: loads.append(key) or key.upper()

    assert cache.get_or_load("a", loader("a")) == "A"
    cache.get_or_load("b", loader("b"))
    cache.get_or_load("a", loader("a"))  # a is now the most recent
    cache.get_or_load("c", loader("c"))  # evicts b
    assert cache.keys() == ["a", "c"] and loads == ["a", "b", "c"]
    cache.get_or_load("b", loader("b"))
    assert loads == ["a", "b", "c", "b"] and len(cache.keys()) == 2


def test_the_data_tab_tokenizer_cache_is_bounded(monkeypatch):
    from studio.models import loading

    monkeypatch.setenv("STUDIO_TOKENIZER_CACHE", "2")
    monkeypatch.setattr(loading, "_TOKENIZERS", limits.LRUCache("tokenizers"))
    loaded = []
    monkeypatch.setattr(loading, "load_tokenizer", lambda ref, progress=None: loaded.append(ref) or object())
    for index in range(10):
        loading.cached_tokenizer(f"model-{index}")
    first = loading.cached_tokenizer("model-9")
    assert loading.cached_tokenizer("model-9") is first and len(loaded) == 10
    assert loading._TOKENIZERS.keys() == ["model-8", "model-9"]


def test_launch_kwargs_carry_the_upload_limit(monkeypatch):
    from studio.ui import shell

    assert shell.launch_kwargs()["max_file_size"] == 200 * 1024 * 1024
    monkeypatch.setenv("SPACE_ID", "a/b")
    assert shell.launch_kwargs()["max_file_size"] == 50 * 1024 * 1024
    monkeypatch.setenv("STUDIO_MAX_UPLOAD_MB", "off")
    assert "max_file_size" not in shell.launch_kwargs()


def test_login_is_rate_limited_with_a_clear_reason(monkeypatch):
    from fastapi import HTTPException

    from studio.ui import shell

    monkeypatch.setenv("STUDIO_PASSWORD", "right")
    monkeypatch.setenv("STUDIO_MAX_PASSWORD_ATTEMPTS", "3")
    kwargs = shell.launch_kwargs()
    check = kwargs["auth"]
    assert "3 wrong passwords" in kwargs["auth_message"]
    assert check("studio", "right")
    for _ in range(3):
        assert not check("studio", "wrong")
    with pytest.raises(HTTPException) as caught:
        check("studio", "right")  # even the right password waits: guessing stays slow
    assert caught.value.status_code == 429 and "Too many wrong password attempts" in caught.value.detail


def test_admin_password_attempts_are_rate_limited(monkeypatch):
    from studio.train import supervisor

    monkeypatch.setenv(supervisor.ADMIN_ENV, "secret")
    monkeypatch.setenv("STUDIO_MAX_PASSWORD_ATTEMPTS", "2")
    assert supervisor.admin_password_ok("secret")
    assert not supervisor.admin_password_ok("guess-1") and not supervisor.admin_password_ok("guess-2")
    with pytest.raises(StudioError, match="Too many wrong admin password attempts"):
        supervisor.admin_password_ok("secret")
    assert not supervisor.admin_password_ok(None)  # no password given: nothing counted, nothing refused


def test_the_readme_lists_every_limit():
    text = README.read_text(encoding="utf-8")
    assert limits.markdown_table() in text, "README's table of limits is out of date: paste limits.markdown_table()"
    assert "`STUDIO_MODE`" in text
