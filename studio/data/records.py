"""The records that flow through the data pipeline: load -> formats -> lint -> stats -> clean.

Slotted dataclasses: a million-row lint holds many findings, and the streaming lint sends them
between processes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("E", "W", "I")  # E: training crashes or learns the wrong thing; W: hurts quality; I: notice


@dataclass(slots=True)
class Finding:
    rule: str  # a rule id of studio.data.rules.catalogue, e.g. "ROLE-NO-ASSIST"
    severity: str  # "E" | "W" | "I"
    row: int | None  # 1-based line for JSONL, 1-based record otherwise; None for file-level findings
    message: str
    hint: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Row:
    """One record of the uploaded file."""

    number: int  # 1-based line (JSONL) or record number (other files)
    raw: Any  # the parsed record as found in the file (dict when well-formed)
    format: str | None = None  # messages | sharegpt | alpaca | prompt-completion | text | None
    messages: list[dict[str, Any]] | None = None  # canonical chat messages after conversion
    text: str | None = None  # plain language-modelling text (format "text")
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. top-level "tools"


@dataclass(slots=True)
class TokenCount:
    """A row's tokens after the chat template."""

    total: int  # tokens after the chat template
    prompt: int  # tokens not trained on (system, user, tool turns, template markup)
    trainable: int  # assistant tokens (incl. the end-of-turn token) before truncation
    trainable_cut: int = 0  # trainable tokens beyond max_length (lost to truncation)

    def to_dict(self) -> dict[str, int]:
        return {
            "total": self.total,
            "prompt": self.prompt,
            "trainable": self.trainable,
            "trainable_cut": self.trainable_cut,
        }
