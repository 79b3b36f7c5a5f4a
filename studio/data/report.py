"""A lint report: what the linter (studio.data.lint) found in one file, and the per-row facts the
statistics (studio.data.stats) are computed from.

    .name, .format (majority format), .kind (jsonl | json | csv | parquet | hub | rows)
    .rows (list[Row] when the linter kept them, converted: Row.messages / Row.text)
    .findings (list[Finding], load findings first, then file-level, then by row)
    .token_counts (aligned with .rows: TokenCount(total, prompt, trainable, trainable_cut) or None)
    .facts() (studio.data.table.RowTable: one entry per row, kept or not), .row_count
    .verdict ("ready" | "ready with warnings" | "blocked"), .counts_by_severity ({"E","W","I"})
    .stats (studio.data.stats.compute_stats of this report), .error_rows() (row numbers with an E
    finding), .valid_mask() / .valid_rows(), .findings_by_row(), .to_json() (the CLI contract: file,
    format, rows, verdict, counts, findings, stats)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studio.data.records import Finding, Row, TokenCount
from studio.data.table import RowTable, row_facts


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
    table: RowTable | None = None  # set by the linter; None: built from .rows and .token_counts

    def facts(self) -> RowTable:
        """Per-row facts of every row (the linter's table, or built from the kept rows)."""
        if self.table is not None:
            return self.table
        counts = self.token_counts if len(self.token_counts) == len(self.rows) else None
        return RowTable([row_facts(self.rows, counts)])

    @property
    def row_count(self) -> int:
        return len(self.table) if self.table is not None else len(self.rows)

    @property
    def counts_by_severity(self) -> dict[str, int]:
        counts = Counter(finding.severity for finding in self.findings)
        return {severity: counts.get(severity, 0) for severity in ("E", "W", "I")}

    @property
    def verdict(self) -> str:
        counts = self.counts_by_severity
        if counts["E"] or not self.valid_row_count():
            return "blocked"
        return "ready with warnings" if counts["W"] else "ready"

    def counts_by_rule(self) -> dict[str, int]:
        return dict(Counter(finding.rule for finding in self.findings).most_common())

    def error_rows(self) -> set[int]:
        """Row numbers with at least one E finding (the cleaner drops these)."""
        return {f.row for f in self.findings if f.severity == "E" and f.row is not None}

    def valid_mask(self) -> np.ndarray:
        """Per row of facts(): converted to messages or text, and without an E finding (what trains)."""
        table = self.facts()
        errors = np.fromiter(self.error_rows(), dtype=np.int64)
        return table.parsed & ~np.isin(table.numbers, errors)

    def valid_row_count(self) -> int:
        return int(self.valid_mask().sum())

    def valid_rows(self) -> list[Row]:
        """The kept rows without an E finding."""
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
            "rows": self.row_count,
            "verdict": self.verdict,
            "counts": self.counts_by_severity,
            "findings": [finding.to_dict() for finding in self.findings],
            "stats": self.stats,
        }
