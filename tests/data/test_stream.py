"""The streaming lint (a .jsonl file read block by block, checked in forked workers, rows not kept)
reports exactly what the in-memory lint reports, and the pieces that make it scale are exact."""

from __future__ import annotations

import bisect
import json
import random

import numpy as np
import pytest
from test_malformed import CORPUS

from studio.data import lint, stats
from studio.data.lint import lint_file
from studio.data.rules import dataset
from studio.data.store import SAMPLES_DIR


def _same(a, b) -> None:
    assert [f.to_dict() for f in a.findings] == [f.to_dict() for f in b.findings]
    assert json.dumps(a.stats, sort_keys=True, default=str) == json.dumps(b.stats, sort_keys=True, default=str)
    assert a.verdict == b.verdict and a.format == b.format and a.row_count == b.row_count


@pytest.mark.parametrize("name", sorted(name for name in CORPUS if name.endswith(".jsonl")))
def test_a_jsonl_file_on_disk_lints_like_its_bytes(name, tmp_path, monkeypatch):
    monkeypatch.setattr(lint, "BLOCK_BYTES", 64)  # many blocks, lines cut anywhere
    data = CORPUS[name][0]()
    path = tmp_path / name
    path.write_bytes(data)
    _same(lint_file(path, name, keep_rows=False), lint_file(data, name))


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    """The messy sample (every kind of problem) and 300 varied rows, with a cut-off last line."""
    rng = random.Random(4)
    words = "anchor harbour compass river mountain bread lantern rope island storm parrot cannon tide reef".split()
    lines = (SAMPLES_DIR / "assistant_style_messy.jsonl").read_text(encoding="utf-8").splitlines()
    for index in range(300):
        question = f"Question {index}: " + " ".join(rng.choices(words, k=8)) + "?"
        answer = f"Answer {index}: " + " ".join(rng.choices(words, k=rng.randint(5, 60))) + "."
        lines.append(
            json.dumps({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
        )
    path = tmp_path_factory.mktemp("stream") / "big.jsonl"
    path.write_text("\n".join(lines) + "\n" + lines[0][:40], encoding="utf-8")
    return path


def test_forked_workers_streaming_match_the_in_memory_lint(big_file, tiny_model_dir, monkeypatch):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    monkeypatch.setattr(lint, "BLOCK_BYTES", 4096)
    messages: list[tuple[float, str]] = []
    streamed = lint_file(
        big_file,
        "big.jsonl",
        tokenizer=tokenizer,
        keep_rows=False,
        workers=2,
        progress=lambda fraction, message: messages.append((fraction, message)),
    )
    in_memory = lint_file(big_file.read_bytes(), "big.jsonl", tokenizer=tokenizer)
    _same(streamed, in_memory)
    assert not streamed.rows and len(in_memory.rows) == streamed.row_count > 300
    assert {"FILE-JSON", "PII-SECRET", "DUP-EXACT", "DUP-NEAR", "LEN-PACK-HINT"} <= {f.rule for f in streamed.findings}
    # Progress on a long file: row counts and the share of the file, in order, then the dataset rules.
    reading = [(fraction, message) for fraction, message in messages if message.startswith("Checked ")]
    assert len(reading) >= 10 and [f for f, _ in reading] == sorted(f for f, _ in reading)
    assert "% of the file" in reading[-1][1] and messages[-1] == (1.0, "Done.")


def test_invalid_utf8_late_in_a_large_file_is_reported_at_its_offset(tmp_path, monkeypatch):
    monkeypatch.setattr(lint, "BLOCK_BYTES", 256)
    good = "".join(json.dumps({"text": f"row {i} is plain text about the sea"}) + "\n" for i in range(200)).encode()
    bad = (
        good
        + '{"text": "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e, tr\u00e8s \u00e9l\u00e9gant"}\n'.encode("latin-1")
        + good
    )
    path = tmp_path / "late.jsonl"
    path.write_bytes(bad)
    report = lint_file(path, "late.jsonl", keep_rows=False)
    assert [f.rule for f in report.findings] == ["FILE-UTF8"] and not report.row_count
    assert f"offset {bad.index(0xE9)}" in report.findings[0].message and report.findings[0].row == 201
    assert report.findings == lint_file(bad, "late.jsonl").findings


def test_the_row_limit_stops_a_streamed_file_like_any_other(tmp_path, monkeypatch):
    monkeypatch.setattr(lint, "BLOCK_BYTES", 256)
    monkeypatch.setenv("STUDIO_MAX_ROWS", "50")
    rows = "".join(json.dumps({"text": f"row {i} is plain text about the sea"}) + "\n" for i in range(200))
    path = tmp_path / "many.jsonl"
    path.write_text(rows, encoding="utf-8")
    report = lint_file(path, "many.jsonl", workers=2)
    assert [f.rule for f in report.findings] == ["FILE-SIZE"] and not report.row_count and not report.rows
    assert "more than 50 rows" in report.findings[0].message and "STUDIO_MAX_ROWS" in report.findings[0].hint
    assert report.verdict == "blocked"
    assert lint_file(rows.encode(), "many.jsonl").findings[0].rule == "FILE-SIZE"  # the in-memory path agrees
    monkeypatch.setenv("STUDIO_MAX_ROWS", "200")
    assert lint_file(path, "many.jsonl", keep_rows=False).row_count == 200


def test_automatic_workers_only_for_large_files():
    assert lint.worker_count(1_000, None) == 1
    assert lint.worker_count(lint.PARALLEL_MIN_BYTES, 3) == 3
    assert lint.worker_count(10, 2) == 2


# ---------------------------------------------------------------- exact pieces


def _bfd_one_by_one(lengths, max_length):
    """Best-fit-decreasing, one example at a time (the definition)."""
    remaining, full = [], 0
    for length in sorted((min(n, max_length) for n in lengths if n > 0), reverse=True):
        index = bisect.bisect_left(remaining, length)
        free = (remaining.pop(index) if index < len(remaining) else max_length) - length
        if free > 0:
            bisect.insort(remaining, free)
        else:
            full += 1
    return full + len(remaining)


@pytest.mark.parametrize("seed", range(8))
def test_packing_on_counts_equals_best_fit_decreasing(seed):
    rng = random.Random(seed)
    max_length = rng.choice([16, 64, 100, 512])
    lengths = [
        rng.choice(
            [rng.randint(1, max_length), rng.randint(1, max_length // 4), rng.randint(max_length, 3 * max_length), 0]
        )
        for _ in range(rng.randint(1, 3000))
    ]
    assert stats.pack_sequences(lengths, max_length) == _bfd_one_by_one(lengths, max_length)


def test_padded_tokens_on_arrays():
    lengths = [5, 9, 3, 120, 7, 1, 1]
    expected = sum(
        max(min(n, 100) for n in lengths[i : i + 3]) * len(lengths[i : i + 3]) for i in range(0, len(lengths), 3)
    )
    assert stats.padded_tokens(lengths, 3, 100) == expected


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = text.lower().translate(dataset._SEPARATOR_CHARS).split()
    return {tuple(words[i : i + dataset.SHINGLE]) for i in range(len(words) - dataset.SHINGLE + 1)}


def test_minhash_estimates_jaccard_without_bias():
    """16-bit MinHash of 64 32-bit permutations: the estimate follows the true Jaccard similarity of the
    5-word shingles (sd about sqrt(J(1-J)/64) <= 0.06), so pairs at 0.85 are found and far pairs are not."""
    rng = random.Random(7)
    vocabulary = [f"w{i}" for i in range(5000)]
    errors, texts, truths = [], [], []
    for _ in range(300):
        base = rng.choices(vocabulary, k=rng.randint(40, 200))
        other = list(base)
        for _ in range(rng.randint(0, len(base) // 4)):
            other[rng.randrange(len(other))] = rng.choice(vocabulary)
        a, b = " ".join(base), " ".join(other)
        truth = len(_shingles(a) & _shingles(b)) / len(_shingles(a) | _shingles(b))
        signatures, _ = dataset.minhash_signatures([a, b])
        errors.append(float((signatures[0] == signatures[1]).mean()) - truth)
        texts += [a, b]
        truths.append(truth)
    assert abs(np.mean(errors)) < 0.01 and np.std(errors) < 0.07
    signatures, words = dataset.minhash_signatures(texts)
    found = {
        (a, b) for a, b, _ in dataset.near_duplicate_pairs(signatures, has_words=words) if b == a + 1 and a % 2 == 0
    }
    for index, truth in enumerate(truths):
        if truth >= 0.92:
            assert (2 * index, 2 * index + 1) in found, truth
        elif truth <= 0.7:
            assert (2 * index, 2 * index + 1) not in found, truth


def test_rows_without_words_are_not_near_duplicates_of_each_other():
    signatures, words = dataset.minhash_signatures(["...", "!!!", "a real sentence with words in it"])
    assert words.tolist() == [False, False, True]
    assert dataset.near_duplicate_pairs(signatures, has_words=words) == []


def test_word_hashes_split_like_str_split_and_do_not_depend_on_the_neighbours():
    texts = [
        "What's 2+2? It's 4!",
        "  spaced\tout\nwords  ",
        "",
        "Ünïcödé words — “quoted” … and 東京\u00a0too",
        "sur\ud800rogate word",
        "x",
    ]
    hashes, counts = dataset.word_hashes(texts)
    expected = [text.lower().translate(dataset._SEPARATOR_CHARS).split() for text in texts]
    assert counts.tolist() == [len(words) for words in expected]
    # The same word gets the same hash anywhere; an ASCII text hashes the same alone (fast path) or among others.
    by_word = {}
    for word, value in zip([w for words in expected for w in words], hashes.tolist()):
        assert by_word.setdefault(word, value) == value
    assert len(set(by_word.values())) == len(by_word)
    alone, _ = dataset.word_hashes([texts[0]])
    assert alone.tolist() == hashes[: counts[0]].tolist()
