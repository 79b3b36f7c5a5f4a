"""Loading files: every supported kind, the size limit, encodings and the row numbering."""

from __future__ import annotations

import io
import json

import pytest

from studio.data import load
from studio.errors import StudioError

ROW = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}


def rules(result) -> set[str]:
    return {f.rule for f in result.findings}


def test_jsonl_rows_keep_line_numbers():
    data = (json.dumps(ROW) + "\n\n" + json.dumps(ROW) + "\n").encode()
    result = load.load_bytes(data, "a.jsonl")
    assert [row.number for row in result.rows] == [1, 3] and not result.findings


def test_json_array_and_object_holding_one_array():
    result = load.load_bytes(json.dumps([ROW, ROW]).encode(), "a.json")
    assert [row.number for row in result.rows] == [1, 2] and not result.findings
    result = load.load_bytes(json.dumps({"version": 1, "data": [ROW, ROW, ROW]}).encode(), "a.json")
    assert len(result.rows) == 3 and result.kind == "json"


def test_csv_with_json_cells_and_plain_columns():
    result = load.load_bytes(b"instruction,input,output\nSay hi,,Hi!\nAdd,2+2,4\n", "a.csv")
    assert [row.raw["output"] for row in result.rows] == ["Hi!", "4"] and result.rows[0].number == 1
    frame = io.StringIO()
    frame.write('messages\n"' + json.dumps(ROW["messages"]).replace('"', '""') + '"\n')
    result = load.load_bytes(frame.getvalue().encode(), "m.csv")
    assert result.rows[0].raw["messages"][1]["content"] == "Hello."


def test_parquet(tmp_path):
    import pandas as pd

    path = tmp_path / "a.parquet"
    pd.DataFrame({"messages": [ROW["messages"], ROW["messages"]]}).to_parquet(path)
    result = load.load_path(path)
    assert len(result.rows) == 2 and result.rows[0].raw["messages"][0] == {"role": "user", "content": "Hi"}


def test_size_limit_from_environment(tmp_path, monkeypatch):
    path = tmp_path / "big.jsonl"
    path.write_bytes((json.dumps(ROW) + "\n").encode() * 40_000)  # about 3 MB
    monkeypatch.setenv("STUDIO_MAX_UPLOAD_MB", "1")
    result = load.load_path(path)
    assert rules(result) == {"FILE-SIZE"} and not result.rows
    assert "STUDIO_MAX_UPLOAD_MB" in result.findings[0].hint
    assert rules(load.load_bytes(path.read_bytes(), "big.jsonl")) == {"FILE-SIZE"}
    monkeypatch.setenv("STUDIO_MAX_UPLOAD_MB", "10")
    assert len(load.load_path(path).rows) == 40_000


def test_default_limit_is_200_mb(monkeypatch):
    monkeypatch.delenv("STUDIO_MAX_UPLOAD_MB", raising=False)
    assert load.max_upload_bytes() == 200 * 1024 * 1024


def test_bom_is_stripped_and_noted():
    result = load.load_bytes(b"\xef\xbb\xbf" + json.dumps(ROW).encode(), "a.jsonl")
    assert rules(result) == {"FILE-BOM"} and len(result.rows) == 1


def test_latin1_reports_offset_and_encoding():
    data = (
        json.dumps(
            {"text": "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e, \u00e0 la fran\u00e7aise, tr\u00e8s \u00e9l\u00e9gant"},
            ensure_ascii=False,
        )
        + "\n"
    ).encode("latin-1")
    result = load.load_bytes(data, "a.jsonl")
    finding = result.findings[0]
    assert finding.rule == "FILE-UTF8" and finding.severity == "E"
    offset = data.index(bytes([0xE9]))
    assert f"offset {offset}" in finding.message
    assert "iconv" in finding.hint and not result.rows


def test_utf16_is_named():
    result = load.load_bytes(json.dumps(ROW).encode("utf-16"), "a.jsonl")
    assert result.findings[0].rule == "FILE-UTF8" and "UTF-16" in result.findings[0].message


def test_empty_and_whitespace():
    assert rules(load.load_bytes(b"", "a.jsonl")) == {"FILE-EMPTY"}
    assert rules(load.load_bytes(b"\n \n", "a.jsonl")) == {"FILE-EMPTY"}


def test_pretty_printed_array_saved_as_jsonl_is_read_but_flagged():
    result = load.load_bytes(json.dumps([ROW, ROW], indent=2).encode(), "a.jsonl")
    assert rules(result) == {"FILE-JSON"} and len(result.rows) == 2
    assert "pretty-printed" in result.findings[0].message


def test_truncated_last_line():
    data = (json.dumps(ROW) + "\n" + json.dumps(ROW)[:30]).encode()
    result = load.load_bytes(data, "a.jsonl")
    assert len(result.rows) == 1
    finding = result.findings[0]
    assert finding.rule == "FILE-JSON" and finding.row == 2 and "cut off" in finding.message


def test_non_object_lines():
    result = load.load_bytes(b'[1, 2]\n"text"\n' + json.dumps(ROW).encode(), "a.jsonl")
    assert [(f.rule, f.row) for f in result.findings] == [("FILE-OBJ", 1), ("FILE-OBJ", 2)] and result.rows[
        0
    ].number == 3


def test_many_bad_lines_are_summarised():
    result = load.load_bytes(b"nope\n" * 100 + json.dumps(ROW).encode(), "a.jsonl")
    assert len(result.findings) == 21 and result.findings[-1].row is None and "80 more" in result.findings[-1].message


def test_hub_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(StudioError) as error:
        load.load_hub("HuggingFaceH4/no_robots")
    assert "offline" in error.value.message.lower() and error.value.hint
    with pytest.raises(StudioError):
        load.load_hub("not a valid id!")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("tiny.jsonl", b"{}\n" * 400_000),  # 1.2 MB: 400,000 rows
        ("tiny.csv", b"a\n" + b"1\n" * 400_000),
        ("tiny.json", b"[" + b",".join([b'{"a":1}'] * 400_000) + b"]"),
    ],
)
def test_a_file_over_the_row_limit_is_refused_without_building_its_rows(monkeypatch, name, data):
    """A small file of tiny rows must not cost memory in proportion to its rows before the limit refuses it
    (a 10 MB `{}` JSON Lines file is 3.5 million rows: gigabytes once parsed)."""
    import tracemalloc

    monkeypatch.setenv("STUDIO_MAX_ROWS", "1000")
    tracemalloc.start()
    try:
        result = load.load_bytes(data, name)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = next(f for f in result.findings if f.rule == "FILE-SIZE")
    assert "over this studio's limit of 1,000" in size.message and not result.rows
    assert peak < 8 * len(data) + 5_000_000, f"{peak / 1e6:.0f} MB to refuse a {len(data) / 1e6:.1f} MB file"


def test_files_within_the_row_limit_still_load_whole(monkeypatch):
    monkeypatch.setenv("STUDIO_MAX_ROWS", "1000")
    row = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ahoy"}]}
    assert len(load.load_bytes((json.dumps(row) + "\n\n").encode() * 1000, "ok.jsonl").rows) == 1000
    assert len(load.load_bytes(json.dumps([row] * 1000).encode(), "ok.json").rows) == 1000
    assert len(load.load_bytes(b"question,answer\n" + b'"a\nb",c\n' * 1000, "ok.csv").rows) == 1000
    over = load.load_bytes(b"question,answer\n" + b"a,c\n" * 1001, "over.csv")
    assert "more than 1,000 rows" in over.findings[0].message
    broken = load.load_bytes(b'[{"a": 1}, {"a": 2} {"a": 3}]', "broken.json")
    assert broken.findings[0].rule == "FILE-JSON" and "not valid JSON" in broken.findings[0].message
