"""Bytes or a file -> rows, or load findings. Never raises on any input.

Accepted: .jsonl (one JSON object per line), .json (an array of objects, or an object holding
one array of objects), .csv, .parquet; any of them gzipped (.jsonl.gz …) or alone in a .zip.
Anything wrong with the file itself becomes a finding (section A of docs/lint-rules.md): FILE-BINARY,
FILE-UTF8, FILE-BOM, FILE-EMPTY, FILE-JSON, FILE-OBJ, FILE-SIZE. Row numbers are 1-based lines for
JSONL and 1-based records otherwise.

Sizes (studio.limits): the file itself against STUDIO_MAX_UPLOAD_MB before it is read; what it
decodes to (gzip, zip, Parquet pages) against STUDIO_MAX_DECODED_MB *before* decoding, by
studio.data.budget; its rows against STUDIO_MAX_ROWS. Each refusal is a FILE-SIZE finding.

    result = load_path("data.jsonl")          # or load_bytes(data, "data.jsonl")
    result.rows       -> list[Row]  (Row.raw is the parsed record; format/messages filled later)
    result.findings   -> list[Finding]
    result.kind       -> "jsonl" | "json" | "csv" | "parquet" | "hub"
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from studio import limits, paths
from studio.data import budget
from studio.data.records import Finding, Row
from studio.errors import StudioError
from studio.models.loading import hub_token

_BOM = b"\xef\xbb\xbf"
_MAX_SHOWN = 20  # per-rule findings listed one by one before the rest is summarised


@dataclass
class LoadResult:
    rows: list[Row] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    kind: str = "jsonl"
    name: str = ""
    size_bytes: int = 0


def max_upload_bytes() -> int | None:
    """The upload limit in bytes: STUDIO_MAX_UPLOAD_MB (see studio.limits; None when turned off)."""
    return limits.max_bytes("upload_mb")


COMPRESSED_SUFFIXES = (".gz", ".zip")


def inner_name(name: str) -> str:
    """'train.jsonl.gz' -> 'train.jsonl' (what a .gz holds); other names unchanged."""
    text = str(name)
    return text[:-3] if text.lower().endswith(".gz") else text


def kind_of(name: str) -> str:
    suffix = Path(inner_name(name)).suffix.lower()
    return {".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(suffix, "jsonl")


def _size_finding(size: int, limit: int) -> Finding:
    return Finding(
        "FILE-SIZE",
        "E",
        None,
        f"The file is {size / limits.MIB:.1f} MB, over the upload limit of {limit / limits.MIB:.0f} MB.",
        "Split the file or sample it down. " + limits.raise_hint("upload_mb"),
    )


def load_path(path: str | os.PathLike, name: str | None = None, max_bytes: int | None | bool = True) -> LoadResult:
    """Load a file from disk; its size is checked against `max_bytes` (default: the upload limit) before reading."""
    path = Path(path)
    name = name or path.name
    try:
        size = path.stat().st_size
    except OSError as error:
        return LoadResult(
            findings=[
                Finding(
                    "FILE-EMPTY",
                    "E",
                    None,
                    f"Could not read the file: {error.strerror or error}.",
                    "Check that the file exists and can be read.",
                )
            ],
            kind=kind_of(name),
            name=name,
        )
    limit = max_upload_bytes() if max_bytes is True else max_bytes or None
    if limit is not None and size > limit:
        return LoadResult(findings=[_size_finding(size, limit)], kind=kind_of(name), name=name, size_bytes=size)
    try:
        data = path.read_bytes()
    except OSError as error:
        return LoadResult(
            findings=[
                Finding(
                    "FILE-EMPTY",
                    "E",
                    None,
                    f"Could not read the file: {error}.",
                    "Check that the file exists and can be read.",
                )
            ],
            kind=kind_of(name),
            name=name,
        )
    return load_bytes(data, name, max_bytes=limit)


def load_bytes(data: bytes, name: str = "upload.jsonl", max_bytes: int | None | bool = True) -> LoadResult:
    """Parse raw bytes by the file name's extension. Never raises. `max_bytes`: default the upload limit."""
    data = data or b""
    result = LoadResult(kind=kind_of(name), name=name, size_bytes=len(data))
    limit = max_upload_bytes() if max_bytes is True else max_bytes or None
    if limit is not None and len(data) > limit:
        result.findings.append(_size_finding(len(data), limit))
        return result
    try:
        data = _unpack(result, data)
        if data is not None and not _too_many_lines(result, data):
            _load_into(result, data)
            _check_row_count(result)
    except StudioError as error:  # a size limit, or a compressed file that cannot be unpacked
        result.rows = []
        rule = (
            "FILE-SIZE"
            if isinstance(error, budget.TooBig)
            else "FILE-JSON"
            if result.kind == "parquet"
            else "FILE-EMPTY"
        )
        result.findings.append(Finding(rule, "E", None, error.message, error.hint))
    except Exception as error:  # noqa: BLE001 - the loader must never raise on user input
        result.rows = []
        kind = result.kind
        result.findings.append(
            Finding(
                "FILE-JSON" if kind in ("json", "jsonl") else "FILE-EMPTY",
                "E",
                None,
                f"The file could not be read: {type(error).__name__}: {str(error)[:200]}",
                "Check that the file is a valid .jsonl, .json, .csv or .parquet dataset.",
            )
        )
    if not result.rows and not any(f.severity == "E" for f in result.findings):
        result.findings.append(
            Finding(
                "FILE-EMPTY",
                "E",
                None,
                "The file holds no usable rows.",
                "Upload a file with at least one record (one JSON object per line for .jsonl).",
            )
        )
    return result


def _unpack(result: LoadResult, data: bytes) -> bytes | None:
    """A .gz or .zip upload -> the dataset bytes inside (within STUDIO_MAX_DECODED_MB); other files unchanged."""
    lower = str(result.name).lower()
    if lower.endswith(".gz"):
        return budget.gunzip(data, budget.decoded_budget(), what=f"{Path(result.name).name}")
    if lower.endswith(".zip"):
        inner, unpacked = budget.unzip_dataset(data, budget.decoded_budget(), what=f"{Path(result.name).name}")
        if inner.lower().endswith(COMPRESSED_SUFFIXES):
            raise StudioError(
                f"{Path(result.name).name} holds another archive ({inner}).", "Upload the dataset file itself."
            )
        result.kind = kind_of(inner)
        return unpacked
    return data


_CONTENT_LINE = re.compile(rb"^[ \t\r]*[^\s]", re.MULTILINE)
# A CSV row may span lines (quoted newlines): only many more lines than the row limit are refused unread.
CSV_LINES_PER_ROW = 4


def _too_many_lines(result: LoadResult, data: bytes) -> bool:
    """Refuse a JSON Lines or CSV file with more lines than the row limit allows before parsing it: parsing
    first would build every row in memory (a 10 MB file of `{}` lines is 3.5 million rows, gigabytes).
    Counts lazily and stops at the limit, so the check costs little whatever the file holds."""
    limit = limits.whole("rows")
    if limit is None or result.kind not in ("jsonl", "csv"):
        return False
    allowed = limit if result.kind == "jsonl" else limit * CSV_LINES_PER_ROW + 1  # + the header
    if data.count(b"\n") < allowed:
        return False
    lines = 0
    for lines, _match in enumerate(_CONTENT_LINE.finditer(data), start=1):
        if lines > allowed:
            break
    if lines <= allowed:
        return False
    rows = f"{limit:,} rows" + ("" if result.kind == "jsonl" else f" ({allowed:,} lines)")
    result.findings.append(
        Finding(
            "FILE-SIZE",
            "E",
            None,
            f"The file has more than {allowed:,} lines, over this studio's limit of {rows}.",
            "Sample it down or split it. " + limits.raise_hint("rows"),
        )
    )
    return True


def _check_row_count(result: LoadResult) -> None:
    limit = limits.whole("rows")
    if limit is not None and len(result.rows) > limit:
        count = len(result.rows)
        # A CSV is read only up to one row past the limit: its true count is not known, only that it is more.
        held = f"more than {limit:,}" if result.kind == "csv" and count == limit + 1 else f"{count:,}"
        result.rows = []
        result.findings.append(
            Finding(
                "FILE-SIZE",
                "E",
                None,
                f"The file holds {held} rows, over this studio's limit of {limit:,} rows.",
                "Sample it down or split it. " + limits.raise_hint("rows"),
            )
        )


def _load_into(result: LoadResult, data: bytes) -> None:
    if not data.strip():
        result.findings.append(
            Finding(
                "FILE-EMPTY",
                "E",
                None,
                "The file is empty." if not data else "The file holds only whitespace.",
                "Upload a file with at least one record.",
            )
        )
        return
    if result.kind == "parquet":
        _load_parquet(result, data)
        return
    text = _decode(result, data)
    if text is None:
        return
    if result.kind == "jsonl":
        _load_jsonl(result, text)
    elif result.kind == "json":
        _load_json(result, text)
    else:
        _load_csv(result, text)


# ---------------------------------------------------------------- encoding


def _decode(result: LoadResult, data: bytes) -> str | None:
    if data.startswith(_BOM):
        result.findings.append(bom_finding())
        data = data[len(_BOM) :]
    problem = text_problem(data)
    if problem is not None:
        result.findings.append(problem)
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        result.findings.append(undecodable(data[:200_000], error.start, data[error.start], line, result.kind))
        return None


def bom_finding() -> Finding:
    return Finding(
        "FILE-BOM",
        "I",
        None,
        "The file starts with a UTF-8 byte-order mark (BOM).",
        "Harmless here (it is stripped), but some tools choke on it: save as UTF-8 without BOM.",
    )


def text_problem(head: bytes) -> Finding | None:
    """FILE-UTF8 (UTF-16) or FILE-BINARY when the start of a file (after any UTF-8 BOM) is not UTF-8 text."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or _looks_utf16(head):
        return Finding(
            "FILE-UTF8",
            "E",
            None,
            "The file is not UTF-8 (it looks like UTF-16, offset 0).",
            "Re-save it as UTF-8, e.g. `iconv -f UTF-16 -t UTF-8 in > out`.",
        )
    if looks_binary(head):
        return _binary_finding()
    return None


def undecodable(sample: bytes, offset: int, byte: int, line: int, kind: str) -> Finding:
    """FILE-UTF8 with the likely encoding (from `sample`, the start of the file), or FILE-BINARY when no text
    encoding fits: for a file whose byte at `offset` (on `line`) is not valid UTF-8."""
    guess = _guess_encoding(sample)
    if guess is None:  # no text encoding fits either: random or compressed bytes
        return _binary_finding()
    return Finding(
        "FILE-UTF8",
        "E",
        line if kind == "jsonl" else None,
        f"The file is not valid UTF-8: byte 0x{byte:02x} at offset {offset} (line {line}).",
        f"It looks like {guess}: re-save it as UTF-8 (e.g. `iconv -f {guess} -t UTF-8 in > out`).",
    )


def _binary_finding() -> Finding:
    return Finding(
        "FILE-BINARY",
        "E",
        None,
        "This is not a text file: it holds binary data, not rows.",
        "Upload the dataset itself as .jsonl, .json, .csv or .parquet; export it first if it sits in "
        "a spreadsheet, a database or an archive.",
    )


BINARY_SAMPLE = 65_536  # bytes looked at to tell text from binary, like git and file(1)
_CONTROL_BYTES = bytes(sorted(set(range(32)) - set(b"\t\n\r\f\b\x1b"))) + b"\x7f"


def _looks_utf16(data: bytes) -> bool:
    """UTF-16 without a BOM: Latin text has a NUL in every other byte, on one side only (all NULs is binary)."""
    sample = data[:BINARY_SAMPLE]
    if len(sample) < 4 or b"\x00" not in sample[:4]:
        return False
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    half = len(sample) / 2
    return (even > 0.4 * half and odd < 0.1 * half) or (odd > 0.4 * half and even < 0.1 * half)


def looks_binary(data: bytes) -> bool:
    """Not text: a NUL byte, or more than 5 % control characters (other than tab, newlines, form feed, escape),
    in the first 64 KB. UTF-16 (full of NULs) is told apart before this is asked."""
    sample = data[:BINARY_SAMPLE]
    if b"\x00" in sample:
        return True
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    return controls > 0 and controls > 0.05 * len(sample)


def _guess_encoding(data: bytes) -> str | None:
    sample = data[:200_000]
    if sample.count(b"\x00") > len(sample) // 20:
        return None  # binary
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(sample).best()
    except Exception:  # noqa: BLE001 - encoding detection is best effort
        best = None
    if best is None:
        return None
    return str(best.encoding).replace("_", "-")


# ---------------------------------------------------------------- JSONL


@dataclass
class JsonlLines:
    """What some consecutive lines of a JSONL file hold (blocks of one file merge by concatenation)."""

    rows: list[Row] = field(default_factory=list)
    bad_json: list[int] = field(default_factory=list)  # line numbers that are not valid JSON
    not_object: list[tuple[int, str]] = field(default_factory=list)  # (line, Python type) of JSON that is not an object
    last_line: int = 0  # the last non-empty line (0: none)


def parse_jsonl_lines(text: str, first_line: int = 1) -> JsonlLines:
    """Parse lines of JSONL text whose first line is line `first_line` of the file."""
    parsed = JsonlLines()
    lines = text.split("\n")
    offset = first_line
    numbered = [(index + offset, line) for index, line in enumerate(lines) if line.strip()]
    parsed.last_line = numbered[-1][0] if numbered else 0
    if numbered and all(line.lstrip().startswith("{") for _, line in numbered[:1000]):
        # Fast path: all lines as one JSON array in a single C call; any problem -> line by line.
        try:
            values = json.loads("[" + ",".join(line for _, line in numbered) + "]")
        except (ValueError, RecursionError):
            values = None
        if values is not None and len(values) == len(numbered) and all(isinstance(v, dict) for v in values):
            parsed.rows = [Row(number=number, raw=value) for (number, _), value in zip(numbered, values)]
            return parsed
    decoder = json.JSONDecoder()
    for number, line in numbered:
        try:
            value = decoder.decode(line)
        except (ValueError, RecursionError):
            parsed.bad_json.append(number)
            continue
        if isinstance(value, dict):
            parsed.rows.append(Row(number=number, raw=value))
        else:
            parsed.not_object.append((number, type(value).__name__))
    return parsed


def jsonl_findings(
    bad_json: list[int], not_object: list[tuple[int, str]], last_line: int, ends_with_newline: bool
) -> list[Finding]:
    """FILE-JSON and FILE-OBJ for a whole JSONL file (the first 20 of each listed, the rest summarised)."""
    findings = []
    for shown, number in enumerate(bad_json):
        if shown >= _MAX_SHOWN:
            findings.append(
                Finding(
                    "FILE-JSON",
                    "E",
                    None,
                    f"…and {len(bad_json) - _MAX_SHOWN} more lines that are not valid JSON.",
                    "Fix or remove those lines.",
                )
            )
            break
        truncated = number == last_line and not ends_with_newline and len(bad_json) == 1
        message = (
            f"Line {number} is not valid JSON: it looks cut off (the file may be truncated)."
            if truncated
            else f"Line {number} is not valid JSON."
        )
        hint = (
            "Re-export or re-download the file; remove the incomplete last line."
            if truncated
            else "Each line must be one complete JSON object; a JSON object split over several lines is not JSONL."
        )
        findings.append(Finding("FILE-JSON", "E", number, message, hint))
    for shown, (number, type_name) in enumerate(not_object):
        if shown >= _MAX_SHOWN:
            findings.append(
                Finding(
                    "FILE-OBJ",
                    "E",
                    None,
                    f"…and {len(not_object) - _MAX_SHOWN} more lines that are not JSON objects.",
                    "Each line must be a JSON object.",
                )
            )
            break
        findings.append(
            Finding(
                "FILE-OBJ",
                "E",
                number,
                f"Line {number} is a JSON {_json_type(type_name)}, not an object.",
                'Each line must be a JSON object such as {"messages": [...]}.',
            )
        )
    return findings


def pretty_json_rows(text: str) -> list[Row] | None:
    """The rows of a pretty-printed JSON document (array or object) saved as .jsonl, or None when it is not one."""
    if not text.lstrip().startswith(("[", "{")):
        return None
    probe = LoadResult(kind="json")
    _load_json(probe, text)
    return probe.rows or None


PRETTY_JSON_FINDING = (
    "FILE-JSON",
    "E",
    None,
    "This .jsonl file is one JSON document (a pretty-printed array or object), not one JSON object per line.",
    "Save it as .json, or write one object per line (`jq -c '.[]' in.json > out.jsonl`). The rows were read as JSON.",
)


def _load_jsonl(result: LoadResult, text: str) -> None:
    parsed = parse_jsonl_lines(text)
    if parsed.bad_json and not parsed.rows:
        rows = pretty_json_rows(text)
        if rows:
            result.rows = rows
            result.findings.append(Finding(*PRETTY_JSON_FINDING))
            result.kind = "json"
            return
    result.rows.extend(parsed.rows)
    result.findings += jsonl_findings(parsed.bad_json, parsed.not_object, parsed.last_line, text.endswith("\n"))


def _json_type(python_type: str) -> str:
    return {
        "list": "array",
        "str": "string",
        "int": "number",
        "float": "number",
        "bool": "boolean",
        "NoneType": "null",
    }.get(python_type, python_type)


# ---------------------------------------------------------------- JSON


class _TooManyRecords(Exception):
    pass


def _json_value(text: str):
    """json.loads, except that a top-level array is read element by element and given up past the row limit
    (_TooManyRecords): a 50 MB array of tiny objects would otherwise be millions of dicts in memory at once."""
    start = len(text) - len(text.lstrip())
    limit = limits.whole("rows")
    if limit is None or not text.startswith("[", start):
        return json.loads(text)
    decoder, items, index = json.JSONDecoder(), [], start + 1
    whitespace = re.compile(r"[ \t\n\r]*")
    index = whitespace.match(text, index).end()
    if text.startswith("]", index):
        index += 1
    else:
        while True:
            item, index = decoder.raw_decode(text, index)
            items.append(item)
            if len(items) > limit:
                raise _TooManyRecords()
            index = whitespace.match(text, index).end()
            if text.startswith(",", index):
                index = whitespace.match(text, index + 1).end()
                continue
            if text.startswith("]", index):
                index += 1
                break
            raise json.JSONDecodeError("Expecting ',' delimiter", text, index)
    if text[index:].strip():
        raise json.JSONDecodeError("Extra data", text, whitespace.match(text, index).end())
    return items


def _load_json(result: LoadResult, text: str) -> None:
    try:
        value = _json_value(text)
    except _TooManyRecords:
        limit = limits.whole("rows")
        result.findings.append(
            Finding(
                "FILE-SIZE",
                "E",
                None,
                f"The file holds more than {limit:,} records, over this studio's limit of {limit:,} rows.",
                "Sample it down or split it. " + limits.raise_hint("rows"),
            )
        )
        return
    except (ValueError, RecursionError) as error:
        line = getattr(error, "lineno", None)
        if text.lstrip().startswith("{") and "\n{" in text:
            hint = "This looks like JSON Lines (one object per line): rename the file to .jsonl."
        else:
            hint = "Check the file with a JSON validator; it may be truncated."
        result.findings.append(
            Finding(
                "FILE-JSON",
                "E",
                None,
                f"The file is not valid JSON ({str(error)[:120]}" + (f", line {line})." if line else ")."),
                hint,
            )
        )
        return
    records = None
    if isinstance(value, list):
        records = value
    elif isinstance(value, dict):
        arrays = [
            (key, item) for key, item in value.items() if isinstance(item, list) and item and isinstance(item[0], dict)
        ]
        if len(arrays) == 1:
            records = arrays[0][1]
        elif len(arrays) > 1:
            preferred = [item for key, item in arrays if key in ("train", "data", "rows", "records", "examples")]
            records = preferred[0] if preferred else max((item for _, item in arrays), key=len)
            result.findings.append(
                Finding(
                    "FILE-OBJ",
                    "I",
                    None,
                    f"The JSON object holds several arrays ({', '.join(k for k, _ in arrays)}); the rows were read "
                    f"from one of them.",
                    "Upload one array of records per file to be sure which one is used.",
                )
            )
        elif _looks_like_record(value):
            records = [value]
        else:
            result.findings.append(
                Finding(
                    "FILE-OBJ",
                    "E",
                    None,
                    "The JSON object does not hold an array of records, so it is not a dataset.",
                    'Use an array of objects, e.g. [{"messages": [...]}, ...], or an object holding one such array.',
                )
            )
            return
    else:
        result.findings.append(
            Finding(
                "FILE-OBJ",
                "E",
                None,
                f"The JSON file holds a {_json_type(type(value).__name__)}, not records.",
                'Use an array of objects, e.g. [{"messages": [...]}, ...].',
            )
        )
        return
    not_object = 0
    for index, record in enumerate(records):
        if isinstance(record, dict):
            result.rows.append(Row(number=index + 1, raw=record))
        else:
            not_object += 1
            if not_object <= _MAX_SHOWN:
                result.findings.append(
                    Finding(
                        "FILE-OBJ",
                        "E",
                        index + 1,
                        f"Record {index + 1} is a JSON {_json_type(type(record).__name__)}, not an object.",
                        'Each record must be a JSON object such as {"messages": [...]}.',
                    )
                )
    if not_object > _MAX_SHOWN:
        result.findings.append(
            Finding(
                "FILE-OBJ",
                "E",
                None,
                f"…and {not_object - _MAX_SHOWN} more records that are not objects.",
                "Each record must be a JSON object.",
            )
        )


def _looks_like_record(value: dict) -> bool:
    return any(key in value for key in ("messages", "conversations", "instruction", "prompt", "text", "chosen"))


# ---------------------------------------------------------------- CSV / Parquet


def _load_csv(result: LoadResult, text: str) -> None:
    import csv

    import pandas as pd

    try:
        delimiter = csv.Sniffer().sniff(text[:20000], delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    try:
        limit = limits.whole("rows")  # one row more than allowed is enough to refuse the file
        frame = pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            nrows=None if limit is None else limit + 1,
        )
    except Exception as error:  # noqa: BLE001 - an unreadable file becomes a finding
        result.findings.append(
            Finding(
                "FILE-JSON",
                "E",
                None,
                f"The CSV file could not be parsed: {str(error)[:160]}.",
                "Check the delimiter and quoting; fields with newlines or commas must be quoted.",
            )
        )
        return
    _frame_to_rows(result, frame)


def _load_parquet(result: LoadResult, data: bytes) -> None:
    table = budget.read_parquet(data)  # TooBig before anything grows past STUDIO_MAX_DECODED_MB
    try:
        frame = table.to_pandas()
    except Exception as error:  # noqa: BLE001 - an unreadable file becomes a finding
        result.findings.append(
            Finding(
                "FILE-JSON",
                "E",
                None,
                f"The Parquet file could not be read: {str(error)[:160]}.",
                "Check that it is a complete Parquet file (re-export it).",
            )
        )
        return
    _frame_to_rows(result, frame)


def _frame_to_rows(result: LoadResult, frame) -> None:
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    for index, record in enumerate(frame.to_dict(orient="records")):
        result.rows.append(Row(number=index + 1, raw={key: _plain(value) for key, value in record.items()}))
    if result.kind == "csv":
        # JSON-looking cells (messages/conversations as JSON strings) are parsed back into lists.
        for row in result.rows:
            for key in ("messages", "conversations", "tools", "history", "prompt", "completion", "chosen", "rejected"):
                cell = row.raw.get(key)
                if isinstance(cell, str) and cell.strip().startswith(("[", "{")):
                    try:
                        row.raw[key] = json.loads(cell)
                    except ValueError:
                        pass


def _plain(value):
    """numpy / pandas values from Parquet -> plain Python (lists, dicts, str, numbers, None)."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None
    if np is not None and isinstance(value, np.ndarray):
        return [_plain(item) for item in value.tolist()]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if np is not None and isinstance(value, np.generic):
        return value.item()
    if value is not None and type(value).__name__ in ("NAType", "NaTType"):
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


# ---------------------------------------------------------------- Hugging Face Hub

HUB_DATA_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv", ".tsv", ".jsonl.gz", ".json.gz", ".csv.gz", ".tsv.gz")
HUB_SPLIT_WORDS = ("train", "training", "test", "testing", "validation", "valid", "val", "dev", "eval", "evaluation")
PARQUET_REVISION = "refs/convert/parquet"  # the Hub's own Parquet copy of every dataset it can read


def _offline() -> bool:
    return any(
        os.environ.get(name, "").lower() in ("1", "true", "yes") for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def _hub_listing(dataset_id: str, revision: str | None, token) -> list[tuple[str, int]]:
    """(path, size in bytes) of every file of the dataset repo, as the Hub measured them."""
    from huggingface_hub import HfApi

    info = HfApi().dataset_info(dataset_id, revision=revision, files_metadata=True, token=token)
    return [(sibling.rfilename, int(sibling.size or 0)) for sibling in info.siblings or []]


def _hub_download(dataset_id: str, filename: str, revision: str | None, folder: Path, token) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(
        hf_hub_download(dataset_id, filename, repo_type="dataset", revision=revision, local_dir=folder, token=token)
    )


def _mentions(path: str, word: str) -> bool:
    import re

    return re.search(rf"(^|[/_.\-]){re.escape(word)}([/_.\-]|\d|$)", path.lower()) is not None


def split_files(listing: list[tuple[str, int]], split: str) -> list[tuple[str, int]]:
    """The data files of one split, by the Hub's naming conventions (train.jsonl, data/train-0000.parquet,
    default/train/0000.parquet …); files that name no split at all count as "train"."""
    data = [
        (path, size)
        for path, size in listing
        if path.lower().endswith(HUB_DATA_SUFFIXES) and not path.split("/")[-1].startswith(".")
    ]
    chosen = [(path, size) for path, size in data if _mentions(path, split)]
    if not chosen and split == "train":
        chosen = [(path, size) for path, size in data if not any(_mentions(path, word) for word in HUB_SPLIT_WORDS)]
    if len({path.split("/")[0] for path, _ in chosen if "/" in path}) > 1 and any(
        p.startswith("default/") for p, _ in chosen
    ):
        chosen = [
            (path, size) for path, size in chosen if path.startswith("default/")
        ]  # the Parquet copy's first config
    return sorted(chosen)


def load_hub(dataset_id: str, split: str = "train", limit: int | None = None, token=None) -> LoadResult:
    """Load one split of a Hub dataset (when the network allows), within the studio's limits.

    The split's files and their sizes are listed first and refused over STUDIO_MAX_HUB_DATASET_MB before
    anything is downloaded; they are downloaded into a temporary folder, read like uploads (so the same
    decoded-size and row limits apply) and deleted afterwards. `token`: None lets studio.access decide
    (the server's HF_TOKEN for an operator, none for a visitor), False sends none. Raises StudioError with a
    plain message when offline, when the id or split does not exist, or when the split is too large."""
    import re
    import shutil
    import tempfile

    dataset_id = (dataset_id or "").strip()
    split = (split or "train").strip()
    if not re.match(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$", dataset_id):
        raise StudioError(
            f"'{dataset_id[:80]}' is not a Hugging Face dataset id.", "Use an id like 'HuggingFaceH4/no_robots'."
        )
    if not re.match(r"^[\w.-]{1,64}$", split):
        raise StudioError(f"'{split[:80]}' is not a split name.", "Use a split such as 'train' or 'test'.")
    if _offline():
        raise StudioError(
            "The studio is offline, so Hub datasets cannot be downloaded.",
            "Download the dataset elsewhere and upload it as .jsonl/.parquet, or use a bundled sample.",
        )

    # Unless the caller says: a visitor's id is listed and downloaded without the server's token
    # (studio.access), so private or gated datasets stay out of reach.
    token = hub_token(token)
    try:
        revision = None
        files = split_files(_hub_listing(dataset_id, None, token), split)
        if not files:
            revision = PARQUET_REVISION
            files = split_files(_hub_listing(dataset_id, PARQUET_REVISION, token), split)
    except Exception as error:  # noqa: BLE001 - any Hub failure becomes a plain message
        raise _hub_error(dataset_id, split, error) from error
    if not files:
        raise StudioError(
            f"{dataset_id} has no data files for the split '{split}' that the studio can read.",
            "Pick another split (e.g. 'train'), or download the data and upload it as .jsonl/.parquet.",
        )
    total = sum(size for _, size in files)
    cap = limits.max_bytes("hub_dataset_mb")
    if cap is not None and total > cap:
        raise StudioError(
            f"{dataset_id} ({split}) is {total / limits.MIB:,.0f} MB to download, over this studio's limit of "
            f"{cap / limits.MIB:,.0f} MB for Hub datasets.",
            "Pick a smaller dataset or split, or upload a sample of it. " + limits.raise_hint("hub_dataset_mb"),
        )
    result = LoadResult(kind="hub", name=f"{dataset_id}:{split}", size_bytes=total)
    folder = Path(tempfile.mkdtemp(prefix="hub-", dir=paths.home()))
    try:
        for path, _ in files:
            try:
                local = _hub_download(dataset_id, path, revision, folder, token)
            except Exception as error:  # noqa: BLE001 - any Hub failure becomes a plain message
                raise _hub_error(dataset_id, split, error) from error
            part = load_path(local, name=path.split("/")[-1], max_bytes=cap)
            if not part.rows:
                first = next((f for f in part.findings if f.severity == "E"), None)
                if first is not None:
                    raise StudioError(f"{path} in {dataset_id}: {first.message}", first.hint)
            offset = len(result.rows)
            for row in part.rows:
                row.number += offset
            for finding in part.findings:
                finding.row = finding.row + offset if finding.row is not None else None
            result.rows.extend(part.rows)
            result.findings.extend(part.findings)
            if limit is not None and len(result.rows) >= limit:
                result.rows = result.rows[:limit]
                break
            rows_cap = limits.whole("rows")
            if rows_cap is not None and len(result.rows) > rows_cap:
                raise StudioError(
                    f"{dataset_id} ({split}) holds more than {rows_cap:,} rows, this studio's limit.",
                    "Pick a smaller split, or upload a sample of it. " + limits.raise_hint("rows"),
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # nothing of the download stays on disk
    if not result.rows:
        result.findings.append(
            Finding("FILE-EMPTY", "E", None, f"{dataset_id} ({split}) has no rows.", "Pick another split or dataset.")
        )
    return result


def _hub_error(dataset_id: str, split: str, error: Exception) -> StudioError:
    name = type(error).__name__
    text = f"{name}: {error}".lower()
    if any(
        marker in text for marker in ("connection", "offline", "resolve", "max retries", "timed out", "name or service")
    ):
        return StudioError(
            f"Could not reach the Hugging Face Hub to download {dataset_id}.",
            "You seem to be offline: upload the file instead, or use a bundled sample.",
        )
    if name in ("RepositoryNotFoundError", "GatedRepoError") or "401" in text or "404" in text:
        return StudioError(
            f"The Hub dataset {dataset_id} was not found, or it is private or gated.",
            "Check the id (owner/name); only public datasets can be loaded here.",
        )
    return StudioError(
        f"Could not load the Hub dataset {dataset_id} ({split}): {name}.",
        "Check the id (owner/name) and the split, or download it and upload the file.",
    )
