"""Bytes or a file -> rows, or load findings. Never raises on any input.

Accepted: .jsonl (one JSON object per line), .json (an array of objects, or an object holding
one array of objects), .csv, .parquet. Anything wrong with the file itself becomes a finding
(section A of docs/lint-rules.md): FILE-BINARY, FILE-UTF8, FILE-BOM, FILE-EMPTY, FILE-JSON, FILE-OBJ,
FILE-SIZE. Row numbers are 1-based lines for JSONL and 1-based records otherwise.

    result = load_path("data.jsonl")          # or load_bytes(data, "data.jsonl")
    result.rows       -> list[Row]  (Row.raw is the parsed record; format/messages filled later)
    result.findings   -> list[Finding]
    result.kind       -> "jsonl" | "json" | "csv" | "parquet" | "hub"
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from studio.data.records import Finding, Row
from studio.errors import StudioError

DEFAULT_MAX_UPLOAD_MB = 200
_BOM = b"\xef\xbb\xbf"
_MAX_SHOWN = 20  # per-rule findings listed one by one before the rest is summarised


@dataclass
class LoadResult:
    rows: list[Row] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    kind: str = "jsonl"
    name: str = ""
    size_bytes: int = 0


def max_upload_bytes() -> int:
    """The upload limit: STUDIO_MAX_UPLOAD_MB (default 200 MB)."""
    try:
        megabytes = float(os.environ.get("STUDIO_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB))
    except ValueError:
        megabytes = DEFAULT_MAX_UPLOAD_MB
    return int(megabytes * 1024 * 1024)


def kind_of(name: str) -> str:
    suffix = Path(str(name)).suffix.lower()
    return {".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(suffix, "jsonl")


def _size_finding(size: int, limit: int) -> Finding:
    return Finding(
        "FILE-SIZE", "E", None,
        f"The file is {size / 1e6:.1f} MB, over the upload limit of {limit / 1e6:.0f} MB.",
        "Split the file, sample it down, or raise the limit with the STUDIO_MAX_UPLOAD_MB environment variable.",
    )


def load_path(path: str | os.PathLike, name: str | None = None) -> LoadResult:
    """Load a file from disk; the size limit is checked before reading."""
    path = Path(path)
    name = name or path.name
    try:
        size = path.stat().st_size
    except OSError as error:
        return LoadResult(findings=[Finding("FILE-EMPTY", "E", None, f"Could not read the file: {error.strerror or error}.",
                                            "Check that the file exists and can be read.")], kind=kind_of(name), name=name)
    limit = max_upload_bytes()
    if size > limit:
        return LoadResult(findings=[_size_finding(size, limit)], kind=kind_of(name), name=name, size_bytes=size)
    try:
        data = path.read_bytes()
    except OSError as error:
        return LoadResult(findings=[Finding("FILE-EMPTY", "E", None, f"Could not read the file: {error}.",
                                            "Check that the file exists and can be read.")], kind=kind_of(name), name=name)
    return load_bytes(data, name)


def load_bytes(data: bytes, name: str = "upload.jsonl") -> LoadResult:
    """Parse raw bytes by the file name's extension. Never raises."""
    kind = kind_of(name)
    result = LoadResult(kind=kind, name=name, size_bytes=len(data or b""))
    try:
        _load_into(result, data or b"")
    except Exception as error:  # noqa: BLE001 - the loader must never raise on user input
        result.rows = []
        result.findings.append(Finding("FILE-JSON" if kind in ("json", "jsonl") else "FILE-EMPTY", "E", None,
                                       f"The file could not be read: {type(error).__name__}: {str(error)[:200]}",
                                       "Check that the file is a valid .jsonl, .json, .csv or .parquet dataset."))
    if not result.rows and not any(f.severity == "E" for f in result.findings):
        result.findings.append(Finding("FILE-EMPTY", "E", None, "The file holds no usable rows.",
                                       "Upload a file with at least one record (one JSON object per line for .jsonl)."))
    return result


def _load_into(result: LoadResult, data: bytes) -> None:
    limit = max_upload_bytes()
    if len(data) > limit:
        result.findings.append(_size_finding(len(data), limit))
        return
    if not data.strip():
        result.findings.append(Finding("FILE-EMPTY", "E", None,
                                       "The file is empty." if not data else "The file holds only whitespace.",
                                       "Upload a file with at least one record."))
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
        data = data[len(_BOM):]
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
    return Finding("FILE-BOM", "I", None, "The file starts with a UTF-8 byte-order mark (BOM).",
                   "Harmless here (it is stripped), but some tools choke on it: save as UTF-8 without BOM.")


def text_problem(head: bytes) -> Finding | None:
    """FILE-UTF8 (UTF-16) or FILE-BINARY when the start of a file (after any UTF-8 BOM) is not UTF-8 text."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or _looks_utf16(head):
        return Finding("FILE-UTF8", "E", None, "The file is not UTF-8 (it looks like UTF-16, offset 0).",
                       "Re-save it as UTF-8, e.g. `iconv -f UTF-16 -t UTF-8 in > out`.")
    if looks_binary(head):
        return _binary_finding()
    return None


def undecodable(sample: bytes, offset: int, byte: int, line: int, kind: str) -> Finding:
    """FILE-UTF8 with the likely encoding (from `sample`, the start of the file), or FILE-BINARY when no text
    encoding fits: for a file whose byte at `offset` (on `line`) is not valid UTF-8."""
    guess = _guess_encoding(sample)
    if guess is None:  # no text encoding fits either: random or compressed bytes
        return _binary_finding()
    return Finding("FILE-UTF8", "E", line if kind == "jsonl" else None,
                   f"The file is not valid UTF-8: byte 0x{byte:02x} at offset {offset} (line {line}).",
                   f"It looks like {guess}: re-save it as UTF-8 (e.g. `iconv -f {guess} -t UTF-8 in > out`).")


def _binary_finding() -> Finding:
    return Finding("FILE-BINARY", "E", None, "This is not a text file: it holds binary data, not rows.",
                   "Upload the dataset itself as .jsonl, .json, .csv or .parquet; export it first if it sits in "
                   "a spreadsheet, a database or an archive.")


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
    except Exception:  # noqa: BLE001
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


def jsonl_findings(bad_json: list[int], not_object: list[tuple[int, str]], last_line: int, ends_with_newline: bool) -> list[Finding]:
    """FILE-JSON and FILE-OBJ for a whole JSONL file (the first 20 of each listed, the rest summarised)."""
    findings = []
    for shown, number in enumerate(bad_json):
        if shown >= _MAX_SHOWN:
            findings.append(Finding("FILE-JSON", "E", None, f"…and {len(bad_json) - _MAX_SHOWN} more lines that are not valid JSON.",
                                    "Fix or remove those lines."))
            break
        truncated = number == last_line and not ends_with_newline and len(bad_json) == 1
        message = (f"Line {number} is not valid JSON: it looks cut off (the file may be truncated)." if truncated
                   else f"Line {number} is not valid JSON.")
        hint = ("Re-export or re-download the file; remove the incomplete last line." if truncated
                else "Each line must be one complete JSON object; a JSON object split over several lines is not JSONL.")
        findings.append(Finding("FILE-JSON", "E", number, message, hint))
    for shown, (number, type_name) in enumerate(not_object):
        if shown >= _MAX_SHOWN:
            findings.append(Finding("FILE-OBJ", "E", None, f"…and {len(not_object) - _MAX_SHOWN} more lines that are not JSON objects.",
                                    "Each line must be a JSON object."))
            break
        findings.append(Finding("FILE-OBJ", "E", number, f"Line {number} is a JSON {_json_type(type_name)}, not an object.",
                                'Each line must be a JSON object such as {"messages": [...]}.'))
    return findings


def pretty_json_rows(text: str) -> list[Row] | None:
    """The rows of a pretty-printed JSON document (array or object) saved as .jsonl, or None when it is not one."""
    if not text.lstrip().startswith(("[", "{")):
        return None
    probe = LoadResult(kind="json")
    _load_json(probe, text)
    return probe.rows or None


PRETTY_JSON_FINDING = ("FILE-JSON", "E", None,
                       "This .jsonl file is one JSON document (a pretty-printed array or object), not one JSON object per line.",
                       "Save it as .json, or write one object per line (`jq -c '.[]' in.json > out.jsonl`). The rows were read as JSON.")


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
    return {"list": "array", "str": "string", "int": "number", "float": "number", "bool": "boolean", "NoneType": "null"}.get(python_type, python_type)


# ---------------------------------------------------------------- JSON

def _load_json(result: LoadResult, text: str) -> None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as error:
        line = getattr(error, "lineno", None)
        if text.lstrip().startswith("{") and "\n{" in text:
            hint = "This looks like JSON Lines (one object per line): rename the file to .jsonl."
        else:
            hint = "Check the file with a JSON validator; it may be truncated."
        result.findings.append(Finding("FILE-JSON", "E", None, f"The file is not valid JSON ({str(error)[:120]}"
                                       + (f", line {line})." if line else ")."), hint))
        return
    records = None
    if isinstance(value, list):
        records = value
    elif isinstance(value, dict):
        arrays = [(key, item) for key, item in value.items() if isinstance(item, list) and item and isinstance(item[0], dict)]
        if len(arrays) == 1:
            records = arrays[0][1]
        elif len(arrays) > 1:
            preferred = [item for key, item in arrays if key in ("train", "data", "rows", "records", "examples")]
            records = preferred[0] if preferred else max((item for _, item in arrays), key=len)
            result.findings.append(Finding("FILE-OBJ", "I", None,
                                           f"The JSON object holds several arrays ({', '.join(k for k, _ in arrays)}); the rows were read from one of them.",
                                           "Upload one array of records per file to be sure which one is used."))
        elif _looks_like_record(value):
            records = [value]
        else:
            result.findings.append(Finding("FILE-OBJ", "E", None,
                                           "The JSON object does not hold an array of records, so it is not a dataset.",
                                           'Use an array of objects, e.g. [{"messages": [...]}, ...], or an object holding one such array.'))
            return
    else:
        result.findings.append(Finding("FILE-OBJ", "E", None, f"The JSON file holds a {_json_type(type(value).__name__)}, not records.",
                                       'Use an array of objects, e.g. [{"messages": [...]}, ...].'))
        return
    not_object = 0
    for index, record in enumerate(records):
        if isinstance(record, dict):
            result.rows.append(Row(number=index + 1, raw=record))
        else:
            not_object += 1
            if not_object <= _MAX_SHOWN:
                result.findings.append(Finding("FILE-OBJ", "E", index + 1,
                                               f"Record {index + 1} is a JSON {_json_type(type(record).__name__)}, not an object.",
                                               'Each record must be a JSON object such as {"messages": [...]}.'))
    if not_object > _MAX_SHOWN:
        result.findings.append(Finding("FILE-OBJ", "E", None, f"…and {not_object - _MAX_SHOWN} more records that are not objects.",
                                       "Each record must be a JSON object."))


def _looks_like_record(value: dict) -> bool:
    return any(key in value for key in ("messages", "conversations", "instruction", "prompt", "text", "chosen"))


# ---------------------------------------------------------------- CSV / Parquet

def _load_csv(result: LoadResult, text: str) -> None:
    import pandas as pd

    import csv

    try:
        delimiter = csv.Sniffer().sniff(text[:20000], delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    try:
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False)
    except Exception as error:  # noqa: BLE001
        result.findings.append(Finding("FILE-JSON", "E", None, f"The CSV file could not be parsed: {str(error)[:160]}.",
                                       "Check the delimiter and quoting; fields with newlines or commas must be quoted."))
        return
    _frame_to_rows(result, frame)


def _load_parquet(result: LoadResult, data: bytes) -> None:
    try:
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        frame = table.to_pandas()
    except Exception as error:  # noqa: BLE001
        result.findings.append(Finding("FILE-JSON", "E", None, f"The Parquet file could not be read: {str(error)[:160]}.",
                                       "Check that it is a complete Parquet file (re-export it)."))
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

def load_hub(dataset_id: str, split: str = "train", limit: int | None = None) -> LoadResult:
    """Load a Hub dataset id (when the network allows). Raises StudioError with a plain message
    when offline or when the id does not exist."""
    import re

    dataset_id = (dataset_id or "").strip()
    if not re.match(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$", dataset_id):
        raise StudioError(f"'{dataset_id}' is not a Hugging Face dataset id.", "Use an id like 'HuggingFaceH4/no_robots'.")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") or os.environ.get("HF_DATASETS_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise StudioError("The studio is offline, so Hub datasets cannot be downloaded.",
                          "Download the dataset elsewhere and upload it as .jsonl/.parquet, or use a bundled sample.")
    try:
        from datasets import load_dataset

        from studio import paths

        paths.configure_caches()
        dataset = load_dataset(dataset_id, split=split)
    except Exception as error:  # noqa: BLE001
        text = f"{type(error).__name__}: {error}".lower()
        if any(marker in text for marker in ("connection", "offline", "resolve", "max retries", "timed out", "name or service")):
            raise StudioError(f"Could not reach the Hugging Face Hub to download {dataset_id}.",
                              "You seem to be offline: upload the file instead, or use a bundled sample.") from error
        if "split" in text:
            raise StudioError(f"{dataset_id} has no split '{split}'.", "Pick one of its splits, e.g. 'train'.") from error
        raise StudioError(f"Could not load the Hub dataset {dataset_id}: {str(error)[:200]}",
                          "Check the id (owner/name), and that it is public or your HF_TOKEN has access.") from error
    result = LoadResult(kind="hub", name=f"{dataset_id}:{split}")
    for index, record in enumerate(dataset):
        if limit is not None and index >= limit:
            break
        result.rows.append(Row(number=index + 1, raw=_plain(dict(record))))
    if not result.rows:
        result.findings.append(Finding("FILE-EMPTY", "E", None, f"{dataset_id} ({split}) has no rows.", "Pick another split or dataset."))
    return result
