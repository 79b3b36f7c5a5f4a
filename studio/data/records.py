"""The records that flow through the data pipeline: load -> formats -> lint -> stats -> clean."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("E", "W", "I")  # E: training crashes or learns the wrong thing; W: hurts quality; I: notice


@dataclass
class Finding:
    rule: str  # a rule id of studio.data.rules.catalogue, e.g. "ROLE-NO-ASSIST"
    severity: str  # "E" | "W" | "I"
    row: int | None  # 1-based line for JSONL, 1-based record otherwise; None for file-level findings
    message: str
    hint: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Row:
    """One record of the uploaded file."""

    number: int  # 1-based line (JSONL) or record number (other files)
    raw: Any  # the parsed record as found in the file (dict when well-formed)
    format: str | None = None  # messages | sharegpt | alpaca | prompt-completion | text | None
    messages: list[dict[str, Any]] | None = None  # canonical chat messages after conversion
    text: str | None = None  # plain language-modelling text (format "text")
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. top-level "tools"
