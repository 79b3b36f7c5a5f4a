"""A corpus of malformed inputs: each one yields findings (with rule, severity, message, hint); none raises."""

from __future__ import annotations

import io
import json
import random

import pytest

from studio.data.lint import lint_file

GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."}]}


def _jsonl(*records) -> bytes:
    return ("\n".join(json.dumps(r) for r in records) + "\n").encode()


def _parquet(frame_dict) -> bytes:
    import pandas as pd

    buffer = io.BytesIO()
    pd.DataFrame(frame_dict).to_parquet(buffer)
    return buffer.getvalue()


def _binary() -> bytes:
    rng = random.Random(0)
    return bytes(rng.randrange(256) for _ in range(4096))


CORPUS = {
    "binary.jsonl": (_binary, "FILE-BINARY"),
    "png_as.jsonl": (lambda: b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "FILE-BINARY"),
    "gzip_as.jsonl": (lambda: __import__("gzip").compress(_jsonl(GOOD) * 50), "FILE-BINARY"),
    "utf16.jsonl": (lambda: json.dumps(GOOD).encode("utf-16"), "FILE-UTF8"),
    "utf16be.jsonl": (lambda: json.dumps(GOOD).encode("utf-16-be"), "FILE-UTF8"),
    "latin1.jsonl": (lambda: '{"text": "caf\u00e9 cr\u00e8me"}\n'.encode("latin-1"), "FILE-UTF8"),
    "cp1252.csv": (lambda: "text\nit\u2019s caf\u00e9\n".encode("cp1252"), "FILE-UTF8"),
    "bom.jsonl": (lambda: b"\xef\xbb\xbf" + _jsonl(GOOD), "FILE-BOM"),
    "empty.jsonl": (lambda: b"", "FILE-EMPTY"),
    "whitespace.jsonl": (lambda: b"\n\n   \n\t\n", "FILE-EMPTY"),
    "empty.json": (lambda: b"", "FILE-EMPTY"),
    "empty_array.json": (lambda: b"[]", "FILE-EMPTY"),
    "truncated.jsonl": (lambda: _jsonl(GOOD) + json.dumps(GOOD)[:25].encode(), "FILE-JSON"),
    "pretty_array.jsonl": (lambda: json.dumps([GOOD, GOOD], indent=2).encode(), "FILE-JSON"),
    "pretty_object.jsonl": (lambda: json.dumps(GOOD, indent=2).encode(), "FILE-JSON"),
    "not_json.jsonl": (lambda: b"hello world\nthis is not json\n", "FILE-JSON"),
    "jsonl_as.json": (lambda: _jsonl(GOOD, GOOD), "FILE-JSON"),
    "broken.json": (lambda: b'[{"messages": [}', "FILE-JSON"),
    "numbers.jsonl": (lambda: b"1\n2\n3\n", "FILE-OBJ"),
    "arrays.jsonl": (lambda: b"[1, 2]\n[3]\n", "FILE-OBJ"),
    "strings.jsonl": (lambda: b'"a"\n"b"\n', "FILE-OBJ"),
    "nulls.jsonl": (lambda: b"null\nnull\n", "FILE-OBJ"),
    "scalar.json": (lambda: b"42", "FILE-OBJ"),
    "object_not_dataset.json": (
        lambda: json.dumps({"name": "my data", "version": 2, "tags": ["a", "b"]}).encode(),
        "FILE-OBJ",
    ),
    "array_of_numbers.json": (lambda: b"[1, 2, 3]", "FILE-OBJ"),
    "lone_surrogate.jsonl": (
        lambda: (
            b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "bad \\ud800 half"}]}\n'
        ),
        "ENC-SURROGATE",
    ),
    "wrong_types.jsonl": (
        lambda: _jsonl(
            {"messages": 1},
            {"messages": [1, 2]},
            {"messages": [{"role": 5, "content": 6}]},
            {"conversations": "x"},
            {"instruction": [1], "output": {}},
            {"prompt": 1, "completion": 2},
            {"text": 7},
            {"messages": [{"role": "user", "content": {"a": 1}}]},
        ),
        "SCH-MSG-LIST",
    ),
    "unknown_keys.jsonl": (lambda: _jsonl({"q": "a", "a": "b"}, {"foo": 1}), "SCH-UNKNOWN"),
    "empty_objects.jsonl": (lambda: b"{}\n{}\n", "SCH-UNKNOWN"),
    "preference.jsonl": (lambda: _jsonl({"prompt": "p", "chosen": "a", "rejected": "b"}), "SCH-NOT-SFT"),
    "csv_no_usable_columns.csv": (lambda: b"a,b,c\n1,2,3\n4,5,6\n", "SCH-UNKNOWN"),
    "csv_only_header.csv": (lambda: b"instruction,output\n", "FILE-EMPTY"),
    "csv_garbage.csv": (lambda: b'"unterminated,quote\nx,y\n', "FILE-JSON"),
    "parquet_other_schema.parquet": (lambda: _parquet({"id": [1, 2], "score": [0.5, 0.7]}), "SCH-UNKNOWN"),
    "parquet_truncated.parquet": (lambda: _parquet({"text": ["a", "b"]})[:50], "FILE-JSON"),
    "not_parquet.parquet": (lambda: b"this is plain text", "FILE-JSON"),
    "deep_nesting.jsonl": (lambda: b"[" * 100_000 + b"]" * 100_000 + b"\n", "FILE-JSON"),
    "control_chars.jsonl": (
        lambda: (
            b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": '
            b'"a\\u0000b\\u001bc"}]}\n'
        ),
        "ENC-CONTROL",
    ),
    "nul_bytes.jsonl": (lambda: b"\x00\x00\x00\x00" * 100, "FILE-BINARY"),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_malformed_input_yields_findings_never_raises(name):
    make, expected_rule = CORPUS[name]
    report = lint_file(make(), name)
    rules = {f.rule for f in report.findings}
    assert expected_rule in rules, [(f.rule, f.row, f.message) for f in report.findings]
    for finding in report.findings:
        assert finding.severity in ("E", "W", "I") and finding.message and finding.hint
    json.dumps(report.to_json())  # the report always serialises


@pytest.mark.parametrize("name", ["data.jsonl", "data.json", "data.csv", "data.bin"])
@pytest.mark.parametrize("size", [64, 300, 4096, 200_000])
def test_random_bytes_are_not_a_text_file_never_cut_off_json(name, size):
    """Random bytes, whether or not they happen to hold a NUL or decode as UTF-8, are binary: one clear finding."""
    for seed in range(5):
        data = random.Random(seed * 7 + size).randbytes(size)
        report = lint_file(data, name)
        assert [f.rule for f in report.findings] == ["FILE-BINARY"], [(f.rule, f.message) for f in report.findings]
        assert "not a text file" in report.findings[0].message and not report.rows
    ascii_noise = bytes(random.Random(1).choice(list(range(1, 32)) + list(range(32, 127))) for _ in range(300))
    assert [f.rule for f in lint_file(ascii_noise, name).findings] == ["FILE-BINARY"]


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 30


def test_thirty_megabyte_single_line():
    line = json.dumps(
        {"messages": [{"role": "user", "content": "Long?"}, {"role": "assistant", "content": "word " * 6_000_000}]}
    ).encode()
    assert len(line) > 30_000_000
    report = lint_file(line, "huge.jsonl")
    assert len(report.rows) == 1 and "CONT-REPEAT" in {f.rule for f in report.findings}
    broken = line[: len(line) // 2]  # and cut in half: invalid JSON
    report = lint_file(broken, "huge_cut.jsonl")
    assert {f.rule for f in report.findings} >= {"FILE-JSON"}


def test_malformed_inputs_with_a_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    for name in (
        "wrong_types.jsonl",
        "lone_surrogate.jsonl",
        "control_chars.jsonl",
        "preference.jsonl",
        "truncated.jsonl",
    ):
        make, expected_rule = CORPUS[name]
        report = lint_file(make(), name, tokenizer=tokenizer)
        assert expected_rule in {f.rule for f in report.findings}
        assert len(report.token_counts) == len(report.rows)
