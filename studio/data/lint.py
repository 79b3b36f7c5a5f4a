"""The dataset linter: every rule of the catalogue (studio/data/rules/catalogue.py, docs/lint-rules.md), one report.

Public API (the Data tab, the CLI and the cleaner build on it):

    report = lint_file(path_or_bytes, name, tokenizer=None, max_length=None, progress=None)
    report = lint_rows(rows, tokenizer=None, max_length=None, batch_size=8, progress=None)

`tokenizer` is a loaded tokenizer (studio.models.loading.load_tokenizer), a model ref string
(loaded for you), or None (then the tokenizer-aware rules TPL-* / LEN-* and token counts are
skipped). `max_length` defaults to the model's context. `progress(fraction, message)` is called
as the work advances so a UI can show it.

LintReport:
    .name, .format (majority format), .rows (list[Row], converted: Row.messages / Row.text)
    .findings (list[Finding], sorted: file-level first, then by row)
    .token_counts (list aligned with .rows: TokenCount(total, prompt, trainable, trainable_cut) or None
                   when the row could not be rendered / no tokenizer)
    .verdict ("ready" | "ready with warnings" | "blocked"), .counts_by_severity ({"E","W","I"})
    .stats (dict, see _stats), .error_rows() (row numbers with an E finding),
    .findings_by_row(), .to_json() (the CLI contract: file, format, rows, findings, stats)
Other helpers: find_leaks(train_rows, validation_rows) -> list[Finding] (DS-LEAK),
studio.data.rules.tokens.row_tokens(row, tokenizer) -> [(token_text, trainable)] for a row view.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from studio.data.records import Finding, Row

Progress = Callable[[float, str], None]


@dataclass
class TokenCount:
    total: int  # tokens after the chat template
    prompt: int  # tokens not trained on (system, user, tool turns, template markup)
    trainable: int  # assistant tokens (incl. the end-of-turn token) before truncation
    trainable_cut: int = 0  # trainable tokens beyond max_length (lost to truncation)

    def to_dict(self) -> dict[str, int]:
        return {"total": self.total, "prompt": self.prompt, "trainable": self.trainable, "trainable_cut": self.trainable_cut}


@dataclass
class LintReport:
    name: str = ""
    format: str | None = None
    rows: list[Row] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    token_counts: list[TokenCount | None] = field(default_factory=list)
    model: str | None = None
    max_length: int | None = None
    context_length: int | None = None
    batch_size: int = 8
    kind: str = "jsonl"  # jsonl | json | csv | parquet | hub | rows
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def counts_by_severity(self) -> dict[str, int]:
        counts = Counter(finding.severity for finding in self.findings)
        return {severity: counts.get(severity, 0) for severity in ("E", "W", "I")}

    @property
    def verdict(self) -> str:
        counts = self.counts_by_severity
        if counts["E"] or not self.valid_rows():
            return "blocked"
        return "ready with warnings" if counts["W"] else "ready"

    def counts_by_rule(self) -> dict[str, int]:
        return dict(Counter(finding.rule for finding in self.findings).most_common())

    def error_rows(self) -> set[int]:
        """Row numbers with at least one E finding (the cleaner drops these)."""
        return {f.row for f in self.findings if f.severity == "E" and f.row is not None}

    def valid_rows(self) -> list[Row]:
        bad = self.error_rows()
        return [row for row in self.rows if row.number not in bad]

    def findings_by_row(self) -> dict[int | None, list[Finding]]:
        grouped: dict[int | None, list[Finding]] = {}
        for finding in self.findings:
            grouped.setdefault(finding.row, []).append(finding)
        return grouped

    def token_count_for(self, number: int) -> TokenCount | None:
        for row, count in zip(self.rows, self.token_counts):
            if row.number == number:
                return count
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.name,
            "format": self.format,
            "rows": len(self.rows),
            "verdict": self.verdict,
            "counts": self.counts_by_severity,
            "findings": [finding.to_dict() for finding in self.findings],
            "stats": self.stats,
        }


def _noop(fraction: float, message: str) -> None:
    pass


def resolve_tokenizer(tokenizer: Any) -> tuple[Any, str | None]:
    """A tokenizer object, a model ref (loaded here), or None."""
    if tokenizer is None or not isinstance(tokenizer, str):
        return tokenizer, getattr(tokenizer, "name_or_path", None) if tokenizer is not None else None
    from studio.models.loading import load_tokenizer

    return load_tokenizer(tokenizer), tokenizer


def context_length(tokenizer) -> int | None:
    """The model's context from its tokenizer (model_max_length), ignoring the 1e30 'unset' value."""
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 10_000_000:
        return value
    return None


def lint_rows(rows: list[Row], tokenizer: Any = None, max_length: int | None = None, batch_size: int = 8,
              progress: Progress | None = None, name: str = "", model: str | None = None,
              validation_rows: list[Row] | None = None) -> LintReport:
    """Lint already-loaded rows (Row.raw set). Converts them to canonical messages in place."""
    from studio.data import formats
    from studio.data.rules import content, dataset, schema, tokens

    progress = progress or _noop
    tokenizer, tokenizer_name = resolve_tokenizer(tokenizer)
    report = LintReport(name=name, rows=rows, batch_size=max(1, int(batch_size or 1)), kind="rows",
                        model=model or tokenizer_name)
    progress(0.02, "Detecting formats…")
    report.format, findings = formats.convert_rows(rows)
    special_strings = tokens.special_strings(tokenizer)
    progress(0.05, "Checking schema, roles, tools and content…")
    total = max(1, len(rows))
    broken: set[int] = {f.row for f in findings if f.severity == "E" and f.row is not None}
    for index, row in enumerate(rows):
        try:
            row_findings = schema.check_row(row)
        except Exception as error:  # noqa: BLE001 - a rule must never take the whole lint down
            row_findings = [Finding("SCH-CONTENT-TYPE", "E", row.number, f"The row holds values of unexpected types ({type(error).__name__}).",
                                    "Check the row's structure against the expected format.")]
        if any(f.severity == "E" for f in row_findings):
            broken.add(row.number)
        findings += row_findings
        if index % 5000 == 4999:
            progress(0.05 + 0.1 * index / total, f"Checked the schema of {index + 1:,} of {len(rows):,} rows…")
    usable = [row for row in rows if row.number not in broken]
    findings += _content_findings(content, usable, special_strings,
                                  lambda fraction, message: progress(0.15 + 0.25 * fraction, message))
    progress(0.4, "Looking for duplicates, languages and dataset-level issues…")
    findings += dataset.check_dataset(rows, usable, validation_rows=validation_rows,
                                      progress=lambda fraction, message: progress(0.4 + 0.2 * fraction, message))
    if tokenizer is not None:
        report.context_length = context_length(tokenizer)
        report.max_length = int(max_length or report.context_length or 2048)

        progress(0.6, "Counting tokens with the chat template…")

        def token_progress(fraction: float, message: str) -> None:
            progress(0.6 + 0.38 * fraction, message)

        try:
            report.token_counts, token_findings = tokens.check_tokens(
                rows, usable, tokenizer, report.max_length, report.context_length, progress=token_progress)
        except Exception as error:  # noqa: BLE001
            report.token_counts = [None] * len(rows)
            token_findings = [Finding("TPL-RENDER", "E", None, f"Token counting failed: {type(error).__name__}: {str(error)[:160]}",
                                      "Try another model, or report this file to the studio's maintainers.")]
        findings += token_findings
    else:
        report.max_length = max_length
        report.token_counts = [None] * len(rows)
    report.findings = sorted(findings, key=lambda f: (f.row is not None, f.row or 0, "EWI".index(f.severity) if f.severity in "EWI" else 3))
    report.stats = _stats(report)
    progress(1.0, "Done.")
    return report


def _content_findings(content, rows: list[Row], special_strings, progress) -> list[Finding]:
    try:
        return content.check_rows(rows, special_strings, progress)
    except Exception:  # noqa: BLE001 - fall back row by row so one odd row cannot take the lint down
        findings = []
        for row in rows:
            try:
                findings += content.check_row(row, special_strings)
            except Exception as error:  # noqa: BLE001
                findings.append(Finding("SCH-CONTENT-TYPE", "E", row.number, f"The row's content could not be checked ({type(error).__name__}).",
                                        "Check the row's text for unusual values."))
        return findings


def lint_file(path_or_bytes: str | os.PathLike | bytes, name: str | None = None, tokenizer: Any = None,
              max_length: int | None = None, progress: Progress | None = None, batch_size: int = 8,
              model: str | None = None) -> LintReport:
    """Load a file (path or raw bytes) and lint it. Load problems are findings; never raises on bad input."""
    from studio.data import load

    progress = progress or _noop
    progress(0.0, "Reading the file…")
    if isinstance(path_or_bytes, (bytes, bytearray)):
        loaded = load.load_bytes(bytes(path_or_bytes), name or "upload.jsonl")
    else:
        loaded = load.load_path(path_or_bytes, name)
    return report_from_load(loaded, tokenizer, max_length, progress, batch_size, model)


def report_from_load(loaded, tokenizer: Any = None, max_length: int | None = None, progress: Progress | None = None,
                     batch_size: int = 8, model: str | None = None) -> LintReport:
    """Lint a studio.data.load.LoadResult (e.g. from load_hub)."""
    progress = progress or _noop
    if loaded.rows:
        report = lint_rows(loaded.rows, tokenizer, max_length, batch_size, progress, name=loaded.name, model=model)
    else:
        tokenizer, tokenizer_name = resolve_tokenizer(tokenizer)
        report = LintReport(name=loaded.name, model=model or tokenizer_name, max_length=max_length)
        report.stats = _stats(report)
    report.kind = loaded.kind
    report.findings = loaded.findings + report.findings
    report.stats = _stats(report)
    return report


def find_leaks(train_rows: list[Row], validation_rows: list[Row]) -> list[Finding]:
    """DS-LEAK: validation rows that are exact (E) or near (W) duplicates of a training row.
    Row numbers in the findings are the validation rows' numbers."""
    from studio.data.rules.dataset import find_leaks as _find_leaks

    return _find_leaks(train_rows, validation_rows)


def percentiles(values: list[int]) -> dict[str, int]:
    import numpy as np

    if not values:
        return {}
    array = np.asarray(values)
    result = {f"p{q}": int(np.percentile(array, q)) for q in (5, 10, 25, 50, 75, 90, 95, 99)}
    result["min"] = int(array.min())
    result["max"] = int(array.max())
    result["mean"] = round(float(array.mean()), 1)
    return result


def suggested_epochs(rows: int) -> int:
    """OpenAI's rule: 3 epochs, clamped so epochs x rows stays within 100..25,000 (epochs 1..25)."""
    if rows <= 0:
        return 3
    epochs = 3
    if epochs * rows < 100:
        epochs = min(25, -(-100 // rows))
    elif epochs * rows > 25_000:
        epochs = max(1, 25_000 // rows)
    return epochs


def suggested_max_length(p99: int) -> int:
    return max(64, -(-int(p99) // 64) * 64)


def _stats(report: LintReport) -> dict[str, Any]:
    rows = report.rows
    valid = report.valid_rows()
    valid_numbers = {row.number for row in valid}
    counted = [(row, count) for row, count in zip(rows, report.token_counts) if count is not None and row.number in valid_numbers]
    message_counts = [len(row.messages) for row in valid if row.messages]
    roles = Counter(message.get("role") for row in valid if row.messages for message in row.messages)
    stats: dict[str, Any] = {
        "model": report.model,
        "max_length": report.max_length,
        "context_length": report.context_length,
        "rows": len(rows),
        "valid_rows": len(valid),
        "invalid_rows": len(rows) - len(valid),
        "converted_rows": sum(1 for row in rows if row.format in ("sharegpt", "alpaca", "prompt-completion")),
        "formats": dict(Counter(row.format or "unknown" for row in rows)),
        "verdict": report.verdict,
        "counts": report.counts_by_severity,
        "findings_by_rule": report.counts_by_rule(),
        "messages_per_row": percentiles(message_counts),
        "roles": {str(k): v for k, v in roles.items()},
        "suggested_epochs": suggested_epochs(len(valid)),
        "batch_size": report.batch_size,
        "steps_per_epoch": -(-len(valid) // report.batch_size) if valid else 0,
    }
    if counted:
        totals = [count.total for _, count in counted]
        trainable = [count.trainable for _, count in counted]
        prompt = [count.prompt for _, count in counted]
        max_length = report.max_length or max(totals)
        over = [count for _, count in counted if count.total > max_length]
        kept = [min(t, max_length) for t in totals]
        tokens = percentiles(totals)
        tokens["total"] = int(sum(totals))
        tokens["trainable"] = int(sum(trainable))
        stats["tokens"] = tokens
        stats["trainable_tokens"] = percentiles(trainable)
        stats["prompt_tokens"] = percentiles(prompt)
        stats["rows_over_max_length"] = len(over)
        stats["tokens_cut"] = int(sum(count.total - max_length for count in over))
        stats["trainable_tokens_cut"] = int(sum(count.trainable_cut for count in over))
        stats["suggested_max_length"] = suggested_max_length(tokens["p99"])
        # Packing: share of real tokens in a padded batch of max_length-long rows vs packed sequences.
        stats["padding_efficiency"] = round(sum(kept) / (len(kept) * max_length), 3) if kept else None
        stats["packing_efficiency"] = round(min(1.0, sum(kept) / (-(-sum(kept) // max_length) * max_length)), 3) if kept else None
        epochs = stats["suggested_epochs"]
        stats["processed_tokens"] = int(sum(kept) * epochs)
    return stats
