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
    for name in ("STUDIO_MODE", "STUDIO_AUTH", "STUDIO_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    limits.PASSWORD_ATTEMPTS.reset()
    limits.ADMIN_ATTEMPTS.reset()
    yield
    limits.PASSWORD_ATTEMPTS.reset()
    limits.ADMIN_ATTEMPTS.reset()


def test_limits_follow_the_one_public_mode_decision():
    from studio import access

    assert not access.is_public({})
    assert access.is_public({"SPACE_ID": "owner/space"})
    assert not access.is_public({"SPACE_ID": "owner/space", "STUDIO_MODE": "private"})
    assert access.is_public({"STUDIO_MODE": "public"})
    assert access.is_public({"STUDIO_AUTH": "oauth"})  # sign-in implies public mode: its limits apply too
    assert access.is_public({"STUDIO_AUTH": "oauth", "STUDIO_PASSWORD": "x"})  # contradictory: the stricter mode
    assert limits.value("epochs", {"STUDIO_AUTH": "oauth"}) == 10
    assert limits.value("epochs", {"SPACE_ID": "owner/space", "STUDIO_MODE": "private"}) is None


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
    assert (
        "Use fewer." in caught.value.hint
        and "operator" in caught.value.hint
        and "STUDIO_MAX_EPOCHS" in caught.value.hint
    )


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
    assert (
        "Too many wrong password attempts" in caught.value.message
        and "STUDIO_MAX_PASSWORD_ATTEMPTS" in caught.value.hint
    )
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
    monkeypatch.setattr(
        loading, "load_tokenizer", lambda ref, progress=None, token=None: loaded.append(ref) or object()
    )
    for index in range(10):
        loading.cached_tokenizer(f"model-{index}")
    first = loading.cached_tokenizer("model-9")
    assert loading.cached_tokenizer("model-9") is first and len(loaded) == 10
    assert [ref for ref, _token in loading._TOKENIZERS.keys()] == ["model-8", "model-9"]


def test_a_tokenizer_loaded_with_the_servers_token_is_not_handed_to_a_visitor(monkeypatch):
    from studio import access
    from studio.models import loading

    monkeypatch.setenv("SPACE_ID", "owner/space")
    monkeypatch.setattr(loading, "_TOKENIZERS", limits.LRUCache("tokenizers"))
    tokens = []
    monkeypatch.setattr(
        loading, "load_tokenizer", lambda ref, progress=None, token=None: tokens.append(token) or object()
    )
    with access.acting(access.Identity("operator-1", access.OPERATOR)):
        for_operator = loading.cached_tokenizer("owner/gated-model")
    with access.acting(access.Identity(access.new_browser_id(), access.ANONYMOUS)):
        for_visitor = loading.cached_tokenizer("owner/gated-model")
    assert for_visitor is not for_operator and tokens == [None, False]  # the visitor's load sends no token


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
    from studio import access

    monkeypatch.setenv(access.ADMIN_ENV, "secret")
    monkeypatch.setenv("STUDIO_MAX_PASSWORD_ATTEMPTS", "2")
    assert access.check_admin_password("secret")
    assert not access.check_admin_password("guess-1") and not access.check_admin_password("guess-2")
    with pytest.raises(access.AccessDenied, match="Too many wrong admin password attempts"):
        access.check_admin_password("secret")
    assert not access.check_admin_password(None)  # no password given: nothing counted, nothing refused


def test_every_admin_password_path_is_counted_once(monkeypatch, tmp_path):
    """The stop/resume/delete box (supervisor → access.authorize) and the operator sign-in share one counter,
    and one decision counts a wrong password once."""
    from studio import access
    from studio.train import store, supervisor
    from studio.train.config import RunConfig

    monkeypatch.setenv(access.ADMIN_ENV, "secret")
    monkeypatch.setenv("STUDIO_MAX_PASSWORD_ATTEMPTS", "3")
    record = store.create_run(RunConfig(dataset=str(tmp_path), name="someone's run"), "browser-someoneelse12345")
    assert not supervisor.is_authorized(record, "another-browser", "guess-1")
    assert not supervisor.is_authorized(record, "another-browser", "guess-2")
    assert len(limits.ADMIN_ATTEMPTS._recent("admin")) == 2
    with pytest.raises(access.AccessDenied):
        access.become_operator("page-1", "guess-3")
    with pytest.raises(access.AccessDenied, match="Too many wrong admin password attempts"):
        access.become_operator("page-1", "secret")


def test_the_readme_lists_every_limit():
    text = README.read_text(encoding="utf-8")
    assert limits.markdown_table() in text, "README's table of limits is out of date: paste limits.markdown_table()"
    assert "`STUDIO_MODE`" in text


def test_a_strangers_wrong_admin_passwords_do_not_lock_the_operator_out(monkeypatch):
    """Wrong attempts count per client address (hostile-visitor finding: ten guesses from anyone locked the
    operator out for 15 minutes); guesses spread over many addresses still meet a limit for all of them."""
    from studio import access

    monkeypatch.setenv(access.ADMIN_ENV, "secret")
    monkeypatch.setenv("STUDIO_MAX_PASSWORD_ATTEMPTS", "2")
    stranger = access.Identity("browser-stranger000001", access.ANONYMOUS, client="203.0.113.7")
    operator = access.Identity("browser-operator000001", access.ANONYMOUS, client="198.51.100.2")
    with access.acting(stranger):
        assert not access.check_admin_password("guess-1") and not access.check_admin_password("guess-2")
        with pytest.raises(access.AccessDenied, match="Too many wrong admin password attempts"):
            access.check_admin_password("secret")  # the stranger waits, even with the right password
    with access.acting(operator):
        assert access.check_admin_password("secret")
    for number in range(access.ADMIN_ATTEMPTS_ALL_CLIENTS - 1):  # 2 × 10 wrong ones from 10 addresses in all
        with access.acting(access.Identity(f"browser-many{number:012d}", access.ANONYMOUS, client=f"192.0.2.{number}")):
            assert not access.check_admin_password("guess-a") and not access.check_admin_password("guess-b")
    with access.acting(operator), pytest.raises(access.AccessDenied, match="Too many"):
        access.check_admin_password("secret")
