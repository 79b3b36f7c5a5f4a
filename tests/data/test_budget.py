"""Decompression bombs are refused before they are decoded: gzip and zip within a hard byte budget, Parquet by its
footer and page headers (and its dictionaries' expanded size) — and ordinary files of every kind still load."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
import zlib

import pytest

from studio.data import budget, load

ROW = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ahoy! — Captain Byte"}]}
JSONL = ("\n".join(json.dumps(ROW) for _ in range(20)) + "\n").encode()
MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def budget_of_8_mb(monkeypatch):
    monkeypatch.setenv("STUDIO_MAX_DECODED_MB", "8")
    monkeypatch.delenv("STUDIO_MAX_ROWS", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("STUDIO_MODE", raising=False)


def zeros_gzip(size: int) -> bytes:
    """A gzip stream of `size` zero bytes, built a chunk at a time (never `size` bytes in memory)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(MIB)
    parts = [compressor.compress(chunk) for _ in range(size // MIB)]
    return b"".join(parts) + compressor.flush()


def only_finding(result) -> str:
    errors = [f for f in result.findings if f.severity == "E"]
    assert len(errors) == 1 and not result.rows, result.findings
    return errors[0].rule + ": " + errors[0].message + " " + errors[0].hint


# ---------------------------------------------------------------- gzip / zip


def test_gzip_and_zip_datasets_load_like_the_plain_file():
    plain = load.load_bytes(JSONL, "chat.jsonl")
    gz = load.load_bytes(gzip.compress(JSONL), "chat.jsonl.gz")
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("export/chat.jsonl", JSONL)
        archive.writestr("__MACOSX/._chat.jsonl", b"junk")
    zipped = load.load_bytes(packed.getvalue(), "chat.zip")
    for result in (gz, zipped):
        assert [row.raw for row in result.rows] == [row.raw for row in plain.rows] and result.kind == "jsonl"
    two_members = gzip.compress(JSONL[:200]) + gzip.compress(JSONL[200:])  # concatenated gzip files
    assert len(load.load_bytes(two_members, "chat.jsonl.gz").rows) == 20


def test_a_gzip_bomb_stops_at_the_budget_without_inflating_the_rest():
    import tracemalloc

    bomb = zeros_gzip(256 * MIB)  # 256 MB of zeros in about 250 KB
    assert len(bomb) < MIB
    tracemalloc.start()
    try:
        with pytest.raises(budget.TooBig) as caught:
            budget.gunzip(bomb, 8 * MIB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "over this studio's limit of 8.0 MB" in caught.value.message
    assert peak < 32 * MIB, f"{peak / MIB:.0f} MB allocated to refuse it"
    assert "STUDIO_MAX_DECODED_MB" in only_finding(load.load_bytes(bomb, "bomb.jsonl.gz"))


def test_zip_sizes_are_checked_declared_and_while_reading():
    big = io.BytesIO()
    with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("big.jsonl", bytes(20 * MIB))
    assert "FILE-SIZE" in only_finding(load.load_bytes(big.getvalue(), "big.zip"))
    # The same archive lying about its size (central directory says 100 bytes): reading still stops.
    data = bytearray(big.getvalue())
    directory = data.rfind(b"PK\x01\x02")
    data[directory + 24 : directory + 28] = (100).to_bytes(4, "little")
    local = data.find(b"PK\x03\x04")
    data[local + 22 : local + 26] = (100).to_bytes(4, "little")
    text = only_finding(load.load_bytes(bytes(data), "liar.zip"))
    assert "FILE-SIZE" in text or "could not be unpacked" in text or "not valid" in text


def test_zip_must_hold_one_dataset_file():
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("a.jsonl", JSONL)
        archive.writestr("b.jsonl", JSONL)
    assert "exactly one dataset file" in only_finding(load.load_bytes(packed.getvalue(), "two.zip"))
    nested = io.BytesIO()
    with zipfile.ZipFile(nested, "w") as archive:
        archive.writestr("inner.parquet.gz", gzip.compress(b"x"))
    assert "exactly one dataset file" in only_finding(load.load_bytes(nested.getvalue(), "nested.zip"))
    assert "not a readable zip" in only_finding(load.load_bytes(b"PK\x03\x04 broken", "broken.zip"))


# ---------------------------------------------------------------- Parquet


def parquet_bytes(table, **options) -> bytes:
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "options",
    [{"compression": codec} for codec in ("none", "snappy", "gzip", "brotli", "lz4", "zstd")]
    + [{"data_page_version": "2.0"}, {"row_group_size": 7}, {"use_dictionary": False}],
)
def test_ordinary_parquet_files_load_exactly(options):
    import pyarrow as pa

    records = [
        {
            "messages": [
                {"role": "user", "content": f"question {i} " * (i % 7 + 1)},
                {"role": "assistant", "content": "Ahoy! " * (i % 5 + 1)},
            ],
            "id": i,
            "score": i / 3,
            "tags": ["a", "b"][: i % 3],
            "meta": {"source": "x" if i % 2 else None},
        }
        for i in range(40)
    ]
    data = parquet_bytes(pa.Table.from_pylist(records), **options)
    size = budget.parquet_size(data)
    assert size.rows == 40 and size.values > 0 and 0 < size.decoded_bytes < MIB
    assert budget.read_parquet(data).to_pylist() == records
    result = load.load_bytes(data, "chat.parquet")
    assert len(result.rows) == 40 and result.rows[3].raw["messages"][1]["content"] == "Ahoy! Ahoy! Ahoy! Ahoy! "


def test_a_parquet_page_bomb_is_refused_from_its_page_headers():
    import pyarrow as pa

    data = parquet_bytes(pa.table({"text": ["a" * (24 * MIB)]}), compression="zstd", use_dictionary=False)
    assert len(data) < 8 * 1024  # 24 MB in a few kilobytes
    size = budget.parquet_size(data)
    assert size.page_bytes >= 24 * MIB
    text = only_finding(load.load_bytes(data, "bomb.parquet"))
    assert text.startswith("FILE-SIZE") and "would grow to 24 MB" in text and "STUDIO_MAX_DECODED_MB" in text


def test_a_parquet_dictionary_bomb_is_refused_before_expanding():
    """One 1 MB value, dictionary-encoded, repeated for 20,000 rows: tiny pages, 20 GB once expanded."""
    import pyarrow as pa

    dictionary = pa.array(["x" * MIB])
    column = pa.DictionaryArray.from_arrays(pa.array([0] * 20_000, type=pa.int32()), dictionary)
    data = parquet_bytes(pa.table({"text": column}), compression="zstd")
    assert len(data) < 64 * 1024
    assert budget.parquet_size(data).decoded_bytes < 8 * MIB  # its pages are small: the footer and pages look fine
    with pytest.raises(budget.TooBig) as caught:
        budget.read_parquet(data)
    assert "would grow to 20,000 MB" in caught.value.message


def test_row_limit_from_the_parquet_footer_and_for_text_files(monkeypatch):
    import pyarrow as pa

    monkeypatch.setenv("STUDIO_MAX_ROWS", "10")
    data = parquet_bytes(pa.table({"text": ["hello"] * 11}))
    assert "11 rows, over this studio's limit of 10 rows" in only_finding(load.load_bytes(data, "many.parquet"))
    jsonl = ("\n".join(json.dumps(ROW) for _ in range(11)) + "\n").encode()
    assert "STUDIO_MAX_ROWS" in only_finding(load.load_bytes(jsonl, "many.jsonl"))
    assert len(load.load_bytes(JSONL[: JSONL.index(b"\n") + 1] * 10, "ten.jsonl").rows) == 10


def test_damaged_parquet_is_a_finding_not_a_crash():
    import pyarrow as pa

    data = bytearray(parquet_bytes(pa.table({"text": ["hello", "world"] * 50}), compression="none"))
    data[4:12] = b"\xff" * 8  # the first page header
    text = only_finding(load.load_bytes(bytes(data), "damaged.parquet"))
    assert text.startswith("FILE-JSON") and "Parquet" in text
