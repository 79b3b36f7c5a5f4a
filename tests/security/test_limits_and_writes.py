"""The issue's items that other branches implement, attacked here too: limits (item 6), writes that cannot
tear (item 8), no injection (item 9), secrets in data (item 10). Each is a real check of the behaviour, through
the public app over HTTP where it can be.
"""

from __future__ import annotations

import io
import json
import threading

import pytest

from studio import access
from tests.security.client import Visitor


def _bomb_parquet(megabytes: int = 67) -> bytes:
    """A few KB of Parquet (zstd) that decode to `megabytes` MB of text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = megabytes * 1024
    table = pa.table({"text": ["x" * 1024] * rows})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", compression_level=19, use_dictionary=False)
    return sink.getvalue()


@pytest.mark.slow
def test_a_parquet_bomb_is_refused_before_decoding(public_app):
    import psutil

    bomb = _bomb_parquet(150)
    assert len(bomb) < 2_000_000
    visitor = Visitor(public_app.url)
    visitor.load_page()
    # A small valid file first: the first lint loads the model's tokenizer (hundreds of MB), not the bomb's doing.
    rows = "".join(
        json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}) + "\n"
        for _ in range(3)
    )
    assert visitor.call_named("lint_upload", [visitor.upload("small.jsonl", rows.encode()), None, 0, 8]).success
    app = psutil.Process(public_app.process.pid)
    before = app.memory_info().rss
    result = visitor.call_named("lint_upload", [visitor.upload("bomb.parquet", bomb), None, 0, 8])
    grown = app.memory_info().rss - before
    assert grown < 200 * 1024**2
    assert "over this studio" in result.text and "limit of" in result.text, result.text[-800:]  # rows or decoded size
    visitor.close()


def test_uploads_are_limited_by_gradio_itself():
    from studio.ui.shell import launch_kwargs

    assert launch_kwargs().get("max_file_size")


def test_gradio_cache_is_cleaned(monkeypatch):
    from studio.ui import build_app

    monkeypatch.setenv("SPACE_ID", "me/studio")
    assert build_app().delete_cache


def test_public_mode_caps_epochs_steps_and_evaluation_size(monkeypatch):
    from studio.compare import evaluate
    from studio.errors import StudioError
    from studio.train import supervisor
    from studio.train.config import RunConfig

    monkeypatch.setenv("SPACE_ID", "me/studio")
    with pytest.raises(StudioError, match="STUDIO_MAX_EPOCHS"):
        supervisor.check_limits(RunConfig(dataset="/x", epochs=1000))
    with pytest.raises(StudioError, match="STUDIO_MAX_STEPS"):
        supervisor.check_limits(RunConfig(dataset="/x", max_steps=10_000_000))
    supervisor.check_limits(RunConfig(dataset="/x", epochs=1, max_steps=20))  # a demo-sized run passes
    with pytest.raises(StudioError, match="STUDIO_MAX_EVAL_PROMPTS"):
        evaluate.validate_n(100_000)


def test_the_tokenizer_cache_is_bounded():
    from studio.models import loading

    cache, cap = loading._TOKENIZERS, loading.limits.whole("tokenizers")
    cache.clear()
    for index in range(cap + 5):
        cache.get_or_load(f"model-{index}", lambda: object())
    assert len(cache.keys()) == cap and "model-0" not in cache.keys()


def test_admin_password_guessing_is_rate_limited(monkeypatch):
    from studio import limits

    # A limiter of its own: the process-wide one would keep refusing the password in later tests (test_access).
    monkeypatch.setattr(limits, "ADMIN_ATTEMPTS", limits.AttemptLimiter())
    monkeypatch.setenv("SPACE_ID", "me/studio")
    monkeypatch.setenv("STUDIO_ADMIN_PASSWORD", "right")
    from studio import limits

    try:
        for _ in range(30):
            with pytest.raises(access.AccessDenied):
                access.become_operator("guesser", "wrong")
        with pytest.raises(access.AccessDenied) as refused:
            access.become_operator("guesser", "right")  # too many attempts: even the right one waits
        assert "try again" in (refused.value.message + refused.value.hint).lower()
    finally:  # the limiter is the process's: later tests that give the admin password must not inherit the pause
        limits.ADMIN_ATTEMPTS.reset()


def test_four_threads_writing_one_file_never_tear_it(tmp_path):
    from studio import paths

    target = tmp_path / "status.json"
    paths.atomic_write_text(target, json.dumps({"n": 0}))
    errors = []

    def write(n):
        for i in range(300):
            try:
                paths.atomic_write_text(target, json.dumps({"n": n, "i": i, "pad": "x" * 2000}))
            except Exception as error:  # noqa: BLE001 - collected, and asserted empty below
                errors.append(error)

    def read():
        for _ in range(1000):
            try:
                json.loads(target.read_text())
            except Exception as error:  # noqa: BLE001 - collected, and asserted empty below
                errors.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)] + [threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


@pytest.mark.slow
def test_names_are_escaped_where_they_are_rendered(public_app):
    """A visitor names a dataset with a Markdown image and an HTML tag: it comes back escaped, never live."""
    visitor = Visitor(public_app.url)
    visitor.load_page()
    linted = visitor.call_named("lint_sample", ["assistant_style", str(public_app.world.model_dir), 0, 8])
    assert linted.success, linted.text[:300]
    saved = visitor.call_named(
        "fix_and_split", [None, 10, 42, "![x](http://evil.example/p.png)<img src=x onerror=alert(1)>"]
    )
    assert saved.success and "Saved" in saved.text, saved.text[:300]
    assert "](http://evil.example" not in saved.text and "<img src=x" not in saved.text
    visitor.close()


def test_secret_findings_never_echo_the_secret(tmp_path):
    from studio.data.lint import lint_file

    secret = "hf_" + "Q" * 34
    path = tmp_path / "rows.jsonl"
    path.write_text(
        json.dumps(
            {"messages": [{"role": "user", "content": f"my key is {secret}"}, {"role": "assistant", "content": "ok"}]}
        )
        + "\n"
    )
    report = lint_file(str(path), "rows.jsonl")
    text = json.dumps([finding.to_dict() for finding in report.findings])
    assert report.findings  # the secret was found…
    assert secret[:8] not in text and secret[-8:] not in text  # …and no part of it is repeated
