"""The dataset linter: every rule of the catalogue (studio/data/rules/catalogue.py, docs/lint-rules.md), one report.

Public API (the Data tab, the CLI and the cleaner build on it):

    report = lint_file(path_or_bytes, name, tokenizer=None, max_length=None, progress=None, batch_size=8,
                       model=None, keep_rows=True, workers=1, max_bytes=True)
    report = lint_rows(rows, tokenizer=None, max_length=None, batch_size=8, progress=None, name="",
                       model=None, validation_rows=None)

`tokenizer` is a loaded tokenizer (studio.models.loading.load_tokenizer), a model ref string
(loaded for you), or None (then the tokenizer-aware rules TPL-* / LEN-* and token counts are
skipped). `max_length` defaults to the model's context. `progress(fraction, message)` is called
as the work advances so a UI can show it.

How it scales: rows are checked in chunks; a chunk becomes its row findings, its per-row facts
(studio.data.table, what the statistics read) and its dataset facts (studio.data.rules.dataset:
duplicate keys, MinHash signatures, counters), and its rows are dropped unless `keep_rows`. A
.jsonl file on disk is streamed block by block; with `workers` > 1 (None: one per core, for files
over PARALLEL_MIN_BYTES) the blocks are checked by forked worker processes while this process merges
the results in file order, and the dataset-level rules run once at the end, on arrays. Memory then
grows by a few hundred bytes per row, not with the size of the file.

The report: studio.data.report.LintReport (rows when kept, findings, per-row facts, verdict,
.stats = studio.data.stats.compute_stats(report): the same dict the Data tab shows, .to_json()).
Other helpers: find_leaks(train_rows, validation_rows) -> list[Finding] (DS-LEAK),
studio.data.rules.tokens.row_tokens(row, tokenizer) -> [(token_text, trainable)] for a row view.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.data import budget, formats, load, stats
from studio.data.records import Finding, Row, TokenCount
from studio.data.report import LintReport
from studio.data.rules import content, dataset, schema, tokens
from studio.data.rules.dataset import find_leaks
from studio.data.stats import suggested_epochs, suggested_max_length
from studio.data.table import RowFacts, RowTable, row_facts
from studio.models.loading import load_tokenizer

__all__ = [
    "LintReport",
    "TokenCount",
    "context_length",
    "find_leaks",
    "lint_file",
    "lint_rows",
    "report_from_load",
    "resolve_tokenizer",
    "suggested_epochs",
    "suggested_max_length",
]

Progress = Callable[[float, str], None]
CHUNK_ROWS = 10_000  # rows checked together (in-memory rows)
BLOCK_BYTES = 4 << 20  # bytes of a .jsonl file read and checked together (~10,000 chat rows)
PARALLEL_MIN_BYTES = 16 << 20  # below this a pool costs more (fork, start-up) than it saves
_ORDER = {"E": 0, "W": 1, "I": 2}


def _noop(fraction: float, message: str) -> None:
    pass


@contextmanager
def _no_cyclic_gc():
    """Parsed rows are trees of dicts and lists (no reference cycles): freed by reference counting alone.
    Without this, the cyclic collector walks every live row again and again while millions are made."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def resolve_tokenizer(tokenizer: Any) -> tuple[Any, str | None]:
    """A tokenizer object, a model ref (loaded here), or None."""
    if tokenizer is None or not isinstance(tokenizer, str):
        return tokenizer, getattr(tokenizer, "name_or_path", None) if tokenizer is not None else None

    return load_tokenizer(tokenizer), tokenizer


def context_length(tokenizer) -> int | None:
    """The model's context from its tokenizer (model_max_length), ignoring the 1e30 'unset' value."""
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 10_000_000:
        return value
    return None


# ---------------------------------------------------------------- one chunk of rows


@dataclass
class _Settings:
    """What checking a chunk needs; forked workers inherit it."""

    tokenizer: Any
    max_length: int | None
    special_strings: tuple[str, ...]
    keep_rows: bool


@dataclass
class _Chunk:
    """Everything a chunk of rows contributes to the report (picklable: it comes back from a worker)."""

    findings: list[Finding]  # row findings, in rule order
    facts: RowFacts
    formats: formats.FormatTally
    dataset: dataset.DatasetFacts
    usable_chat: Row | None = None  # the first usable chat row (TPL-DOUBLE-BOS)
    text_bos: list[int] = field(default_factory=list)  # usable text rows that start with BOS
    rows: list[Row] | None = None  # when kept
    usable: list[int] | None = None  # numbers of the usable rows, when kept
    lines: load.JsonlLines | None = None  # a .jsonl block: bad lines (its rows are in .rows or dropped)
    undecodable: tuple[int, int] | None = None  # a .jsonl block that is not UTF-8: (offset in block, byte)
    blank: bool = True  # the block held only whitespace


class _Checker:
    """Checks chunks of rows in one process (tokenizer helpers built once per process)."""

    def __init__(self, settings: _Settings):
        self.settings = settings
        self.tokens = (
            tokens.TokenChecker(settings.tokenizer, settings.max_length) if settings.tokenizer is not None else None
        )

    def check(self, rows: list[Row], language_below: int) -> _Chunk:
        findings: list[Finding] = []
        tally = formats.FormatTally()
        broken: set[int] = set()
        for row in rows:
            formats.convert(row)
            found = formats.row_findings(row)
            if found:
                broken.add(row.number)
                findings += found
        tally.add_rows(rows)
        for row in rows:
            try:
                row_findings = schema.check_row(row)
            except Exception as error:  # noqa: BLE001 - a rule must never take the whole lint down
                row_findings = [
                    Finding(
                        "SCH-CONTENT-TYPE",
                        "E",
                        row.number,
                        f"The row holds values of unexpected types ({type(error).__name__}).",
                        "Check the row's structure against the expected format.",
                    )
                ]
            if any(f.severity == "E" for f in row_findings):
                broken.add(row.number)
            findings += row_findings
        usable = [row for row in rows if row.number not in broken]
        findings += _content_findings(usable, self.settings.special_strings)
        counts = None
        if self.tokens is not None:
            counts, token_findings = self.tokens.count(rows, {row.number for row in usable})
            findings += token_findings
        chunk = _Chunk(
            findings=findings,
            facts=row_facts(rows, counts),
            formats=tally,
            dataset=dataset.chunk_facts(usable, language_below),
        )
        chunk.usable_chat = next((row for row in usable if row.messages), None)
        bos = getattr(self.settings.tokenizer, "bos_token", None)
        if bos:
            chunk.text_bos = [
                row.number for row in usable if row.format == "text" and row.text and row.text.startswith(bos)
            ]
        if self.settings.keep_rows:
            chunk.rows, chunk.usable = rows, [row.number for row in usable]
        return chunk

    def check_block(self, data: bytes, first_line: int, language_below: int) -> _Chunk:
        """A block of a .jsonl file (whole lines): decode, parse, check."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            return _Chunk(
                [],
                row_facts([]),
                formats.FormatTally(),
                dataset.chunk_facts([]),
                undecodable=(error.start, data[error.start]),
                blank=False,
            )
        lines = load.parse_jsonl_lines(text, first_line)
        chunk = self.check(lines.rows, language_below)
        lines.rows = []
        chunk.lines = lines
        chunk.blank = not text.strip()
        return chunk


def _content_findings(rows: list[Row], special_strings) -> list[Finding]:
    try:
        return content.check_rows(rows, special_strings)
    except Exception:  # noqa: BLE001 - fall back row by row so one odd row cannot take the lint down
        findings = []
        for row in rows:
            try:
                findings += content.check_row(row, special_strings)
            except Exception as error:  # noqa: BLE001 - a rule's crash on one row becomes that row's finding
                findings.append(
                    Finding(
                        "SCH-CONTENT-TYPE",
                        "E",
                        row.number,
                        f"The row's content could not be checked ({type(error).__name__}).",
                        "Check the row's text for unusual values.",
                    )
                )
        return findings


# ---------------------------------------------------------------- merging chunks into a report


class _Merger:
    """Joins chunk results in row order and applies the file- and dataset-level rules at the end."""

    def __init__(self, report: LintReport, settings: _Settings, progress: Progress):
        self.report = report
        self.settings = settings
        self.progress = progress
        self.table = RowTable()
        self.formats = formats.FormatTally()
        self.dataset = dataset.DatasetTally()
        self.findings: list[Finding] = []
        self.usable_chat: Row | None = None
        self.text_bos: list[int] = []
        self.usable: list[int] = []
        self.lines = load.JsonlLines()
        self.read = 0  # bytes of the file read so far (streaming)
        self.blank = True  # every block so far held only whitespace (streaming)

    def add(self, chunk: _Chunk) -> None:
        self.findings += chunk.findings
        self.table.add(chunk.facts)
        self.formats.merge(chunk.formats)
        self.dataset.add(chunk.dataset)
        if self.usable_chat is None:
            self.usable_chat = chunk.usable_chat
        self.text_bos += chunk.text_bos
        if chunk.rows is not None:
            self.report.rows += chunk.rows
            self.usable += chunk.usable or []
        if chunk.lines is not None:
            self.lines.bad_json += chunk.lines.bad_json
            self.lines.not_object += chunk.lines.not_object
            self.lines.last_line = max(self.lines.last_line, chunk.lines.last_line)

    def finish(self, validation_rows: list[Row] | None = None) -> LintReport:
        """The report with every finding, sorted (the caller adds the load findings and the statistics)."""
        report, progress = self.report, self.progress
        report.table = self.table
        report.format = self.formats.majority
        if report.rows and self.settings.tokenizer is not None:
            report.token_counts = self.table.token_counts()
        elif report.rows:
            report.token_counts = [None] * len(report.rows)
        if not len(self.table):  # nothing to check: no rules beyond the load findings
            return report
        progress(0.9, "Looking for duplicates, languages and dataset-level issues…")
        dataset_findings = self.dataset.findings(lambda fraction, message: progress(0.9 + 0.07 * fraction, message))
        token_findings: list[Finding] = []
        if self.settings.tokenizer is not None:
            renderer = tokens.Renderer(self.settings.tokenizer)
            counts = self.dataset.counts
            token_findings += tokens.template_findings(
                renderer,
                counts["chat_rows"] > 0,
                counts["chat_rows"],
                counts["no_system"],
                self.usable_chat,
                self.text_bos,
            )
            token_findings += tokens.length_findings(
                self.table.numbers, self.table.tokens, report.max_length, report.context_length
            )
        format_findings = self.formats.findings()
        # The size rules and LEN-PACK-HINT describe the rows that train: without an E finding of any other rule,
        # the rows the statistics count.
        report.findings = format_findings + self.findings + dataset_findings + token_findings
        train_rows = None
        if validation_rows:
            kept = set(self.usable)
            train_rows = [row for row in report.rows if row.number in kept]
        size = dataset.size_findings(report.valid_row_count(), validation_rows, train_rows)
        if self.settings.tokenizer is not None:
            percentiles = stats.token_percentiles(report)
            suggestion = suggested_max_length(percentiles["p99"], report.context_length) if percentiles else None
            token_findings += tokens.pack_hint(percentiles, suggestion, report.max_length)
        findings = format_findings + size + self.findings + dataset_findings + token_findings
        report.findings = sorted(findings, key=lambda f: (f.row is not None, f.row or 0, _ORDER.get(f.severity, 3)))
        return report


def _settings(tokenizer: Any, max_length: int | None, keep_rows: bool) -> _Settings:
    return _Settings(
        tokenizer=tokenizer,
        max_length=max_length,
        special_strings=tokens.special_strings(tokenizer),
        keep_rows=keep_rows,
    )


def _new_report(
    name: str,
    tokenizer: Any,
    tokenizer_name: str | None,
    model: str | None,
    max_length: int | None,
    batch_size: int,
    kind: str,
) -> LintReport:
    report = LintReport(name=name, batch_size=max(1, int(batch_size or 1)), kind=kind, model=model or tokenizer_name)
    if tokenizer is not None:
        report.context_length = context_length(tokenizer)
        report.max_length = int(max_length or report.context_length or stats.DEFAULT_MAX_LENGTH)
    else:
        report.max_length = max_length
    return report


def lint_rows(
    rows: list[Row],
    tokenizer: Any = None,
    max_length: int | None = None,
    batch_size: int = 8,
    progress: Progress | None = None,
    name: str = "",
    model: str | None = None,
    validation_rows: list[Row] | None = None,
) -> LintReport:
    """Lint already-loaded rows (Row.raw set), in this process. Converts them to canonical messages in place."""
    return _lint_loaded(rows, [], "rows", tokenizer, max_length, batch_size, progress, name, model, validation_rows)


def _lint_loaded(
    rows: list[Row],
    load_findings: list[Finding],
    kind: str,
    tokenizer: Any,
    max_length: int | None,
    batch_size: int,
    progress: Progress | None,
    name: str,
    model: str | None,
    validation_rows: list[Row] | None = None,
) -> LintReport:
    progress = progress or _noop
    tokenizer, tokenizer_name = resolve_tokenizer(tokenizer)
    report = _new_report(name, tokenizer, tokenizer_name, model, max_length, batch_size, kind)
    settings = _settings(tokenizer, report.max_length, keep_rows=True)
    merger = _Merger(report, settings, progress)
    checker = _Checker(settings)
    progress(0.02, "Checking formats, schema, roles, tools, content and tokens…")
    with _no_cyclic_gc():
        for start in range(0, len(rows), CHUNK_ROWS):
            merger.add(checker.check(rows[start : start + CHUNK_ROWS], merger.dataset.language_below()))
            done = min(len(rows), start + CHUNK_ROWS)
            progress(0.02 + 0.88 * done / max(1, len(rows)), f"Checked {done:,} of {len(rows):,} rows…")
        report = merger.finish(validation_rows)
    report.findings = load_findings + report.findings
    report.stats = stats.compute_stats(report)
    progress(1.0, "Done.")
    return report


def lint_file(
    path_or_bytes: str | os.PathLike | bytes,
    name: str | None = None,
    tokenizer: Any = None,
    max_length: int | None = None,
    progress: Progress | None = None,
    batch_size: int = 8,
    model: str | None = None,
    keep_rows: bool = True,
    workers: int | None = 1,
    max_bytes: int | None | bool = True,
) -> LintReport:
    """Load a file (path or raw bytes) and lint it. Load problems are findings; never raises on bad input.

    A .jsonl file on disk is streamed (see the module docstring); `keep_rows=False` keeps only the
    per-row facts, `workers` (None: automatic) checks its blocks in forked processes.
    `max_bytes`: the size limit (True: the upload limit, None: none); the row limit (STUDIO_MAX_ROWS) always applies."""
    progress = progress or _noop
    progress(0.0, "Reading the file…")
    if (
        not isinstance(path_or_bytes, (bytes, bytearray))
        and load.kind_of(str(name or path_or_bytes)) == "jsonl"
        and Path(path_or_bytes).is_file()
        and not str(path_or_bytes).lower().endswith((".gz", ".zip"))
    ):
        return _lint_jsonl_file(
            Path(path_or_bytes),
            name or Path(path_or_bytes).name,
            tokenizer,
            max_length,
            progress,
            batch_size,
            model,
            keep_rows,
            workers,
            max_bytes,
        )
    if isinstance(path_or_bytes, (bytes, bytearray)):
        loaded = load.load_bytes(bytes(path_or_bytes), name or "upload.jsonl", max_bytes=max_bytes)
    else:
        loaded = load.load_path(path_or_bytes, name, max_bytes=max_bytes)
    return report_from_load(loaded, tokenizer, max_length, progress, batch_size, model)


def report_from_load(
    loaded,
    tokenizer: Any = None,
    max_length: int | None = None,
    progress: Progress | None = None,
    batch_size: int = 8,
    model: str | None = None,
) -> LintReport:
    """Lint a studio.data.load.LoadResult (e.g. from load_hub)."""
    return _lint_loaded(
        loaded.rows, loaded.findings, loaded.kind, tokenizer, max_length, batch_size, progress, loaded.name, model
    )


# ---------------------------------------------------------------- streaming a .jsonl file


def _blocks(handle, first: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(whole lines, number of the first line, bytes read so far) from an open binary file."""
    line = 1
    pending = first
    read = len(first)
    while True:
        data = handle.read(BLOCK_BYTES)
        read += len(data)
        if not data:
            if pending:
                yield pending, line, read
            return
        pending += data
        cut = pending.rfind(b"\n") + 1
        if cut:
            block, pending = pending[:cut], pending[cut:]
            yield block, line, read
            line += block.count(b"\n")


def worker_count(size: int, workers: int | None) -> int:
    """Processes to check a file of `size` bytes with: `workers`, or automatically one per core when it pays."""
    if workers is not None:
        return max(1, int(workers))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores if cores > 1 and size >= PARALLEL_MIN_BYTES else 1


_WORKER: _Checker | None = None


def _start_worker(settings: _Settings) -> None:
    global _WORKER
    gc.disable()  # a worker only checks blocks: see _no_cyclic_gc
    _WORKER = _Checker(settings)


def _check_block_in_worker(data: bytes, first_line: int, language_below: int) -> _Chunk:
    return _WORKER.check_block(data, first_line, language_below)


def _lint_jsonl_file(
    path: Path,
    name: str,
    tokenizer: Any,
    max_length: int | None,
    progress: Progress,
    batch_size: int,
    model: str | None,
    keep_rows: bool,
    workers: int | None,
    max_bytes: int | None | bool,
) -> LintReport:
    tokenizer, tokenizer_name = resolve_tokenizer(tokenizer)
    report = _new_report(name, tokenizer, tokenizer_name, model, max_length, batch_size, "jsonl")
    try:
        size = path.stat().st_size
        handle = open(path, "rb")
    except OSError as error:
        return report_from_load(
            load.LoadResult(
                findings=[
                    Finding(
                        "FILE-EMPTY",
                        "E",
                        None,
                        f"Could not read the file: {error.strerror or error}.",
                        "Check that the file exists and can be read.",
                    )
                ],
                name=name,
            ),
            tokenizer,
            max_length,
            progress,
            batch_size,
            model,
        )
    limit = load.max_upload_bytes() if max_bytes is True else max_bytes or None
    with handle, ExitStack() as stack:
        if limit and size > limit:
            return report_from_load(
                load.LoadResult(findings=[load._size_finding(size, limit)], name=name, size_bytes=size),
                tokenizer,
                max_length,
                progress,
                batch_size,
                model,
            )
        start = handle.read(load.BINARY_SAMPLE)
        head, bom = (start[len(load._BOM) :], len(load._BOM)) if start.startswith(load._BOM) else (start, 0)
        load_findings: list[Finding] = [load.bom_finding()] if bom else []
        if (head.strip() and load.text_problem(head) is not None) or (not head.strip() and size <= len(start)):
            # Not text (the start tells), or empty / whitespace only: the loader's own findings from the start alone.
            return report_from_load(load.load_bytes(start, name), tokenizer, max_length, progress, batch_size, model)
        settings = _settings(tokenizer, report.max_length, keep_rows)
        merger = _Merger(report, settings, progress)
        stack.enter_context(_no_cyclic_gc())
        ended_with_newline = True
        count = worker_count(size, workers)
        blocks = _blocks(handle, head)
        for chunk, block_start, last_byte in _run_blocks(blocks, settings, merger, count):
            if chunk.undecodable is not None:
                offset, byte = chunk.undecodable
                with open(path, "rb") as again:
                    sample = again.read(200_000)
                finding = load.undecodable(
                    sample[bom:], block_start + offset, byte, _line_of(path, bom + block_start + offset), "jsonl"
                )
                return _refused(report, load_findings + [finding])
            merger.add(chunk)
            try:  # STUDIO_MAX_ROWS, as the loader applies it to other files: stop reading at the first block past it
                budget.check_rows(len(merger.table), at_least=True)
            except budget.TooBig as error:
                return _refused(report, load_findings + [Finding("FILE-SIZE", "E", None, error.message, error.hint)])
            ended_with_newline = last_byte
            progress(
                0.02 + 0.88 * min(1.0, merger.read / max(1, size)),
                f"Checked {len(merger.table):,} rows ({merger.read / max(1, size):.0%} of the file)…",
            )
    lines = merger.lines
    if lines.bad_json and not len(merger.table):
        rows = load.pretty_json_rows(path.read_text(encoding="utf-8-sig", errors="replace"))
        if rows:  # a pretty-printed JSON document saved as .jsonl: read as JSON, flagged
            loaded = load.LoadResult(
                rows=rows, findings=load_findings + [Finding(*load.PRETTY_JSON_FINDING)], kind="json", name=name
            )
            return report_from_load(loaded, tokenizer, max_length, progress, batch_size, model)
    load_findings += load.jsonl_findings(lines.bad_json, lines.not_object, lines.last_line, ended_with_newline)
    if not len(merger.table) and not any(f.severity == "E" for f in load_findings):
        load_findings.append(
            Finding(
                "FILE-EMPTY",
                "E",
                None,
                "The file holds only whitespace." if merger.blank else "The file holds no usable rows.",
                "Upload a file with at least one record (one JSON object per line for .jsonl).",
            )
        )
    report = merger.finish()
    report.findings = load_findings + report.findings
    report.stats = stats.compute_stats(report)
    progress(1.0, "Done.")
    return report


def _refused(report: LintReport, findings: list[Finding]) -> LintReport:
    """The report of a file refused as a whole part way through: these findings, no rows."""
    report.findings = findings
    report.rows, report.token_counts = [], []
    report.table = RowTable()
    report.stats = stats.compute_stats(report)
    return report


def _line_of(path: Path, offset: int) -> int:
    with open(path, "rb") as handle:
        return handle.read(offset).count(b"\n") + 1


def _run_blocks(
    blocks: Iterator[tuple[bytes, int, int]], settings: _Settings, merger: _Merger, workers: int
) -> Iterator[tuple[_Chunk, int, bool]]:
    """(chunk, byte offset of its block, whether the block ends with a newline) in file order, checked here or
    in `workers` forked processes (at most two blocks in flight per worker, so memory stays flat)."""
    offset = 0
    if workers <= 1:
        checker = _Checker(settings)
        for data, first_line, read in blocks:
            chunk = checker.check_block(data, first_line, merger.dataset.language_below())
            merger.read = read
            merger.blank &= chunk.blank
            yield chunk, offset, data.endswith(b"\n")
            offset += len(data)
        return
    context = multiprocessing.get_context("fork")
    with context.Pool(workers, initializer=_start_worker, initargs=(settings,)) as pool:
        pending: deque = deque()
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < 2 * workers:
                item = next(blocks, None)
                if item is None:
                    exhausted = True
                    break
                data, first_line, read = item
                pending.append(
                    (
                        pool.apply_async(_check_block_in_worker, (data, first_line, merger.dataset.language_below())),
                        len(data),
                        data.endswith(b"\n"),
                        read,
                    )
                )
            if not pending:
                break
            result, length, newline, read = pending.popleft()
            chunk = result.get()
            merger.read = read
            merger.blank &= chunk.blank
            yield chunk, offset, newline
            offset += length
