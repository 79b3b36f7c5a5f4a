"""Column mapping: turn rows of an unknown or ambiguous layout (e.g. a `question,answer` CSV) into chat messages.

A ColumnMapping names the column that becomes the user turn, the one that becomes the assistant's
answer, optional context columns (appended to the user turn after a blank line — e.g. "context",
"input", "passage") and an optional system column. The studio proposes one from the column names
(propose), the user can change it (the Data tab's mapping panel, or `lint FILE --map user=question
--map assistant=answer [--map context=passage] [--map system=persona]`), preview converts a few rows
without touching anything, and apply rewrites every row to {"messages": [...]} before the linter sees
it (the original record is kept in Row.extra["source_row"]). The mapping is saved in the dataset's
manifest as "column_mapping" (to_dict) so a dataset says how it was made.

    columns(rows) -> ["question", "answer", ...]     # text-like columns, in file order
    propose(rows) -> ColumnMapping | None             # from the names; None when no user+answer pair fits
    needs_mapping(rows, majority_format) -> bool      # unknown layout (or no chat format) with a proposal
    parse_cli(["user=question", ...]) -> ColumnMapping
    mapping.check(columns) -> ColumnMapping           # StudioError with the columns found when a name is wrong
    apply(rows, mapping), preview(rows, mapping, n=3)
    load_mapped(path, name, mapping) -> studio.data.load.LoadResult   # load + apply, for the linter
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from studio.data import lint, load
from studio.data.records import Row
from studio.errors import StudioError

ROLES = ("user", "assistant", "context", "system")
_SAMPLE = 200  # rows looked at to find the columns
# Column names people use, best first (compared lower-cased, without spaces, dashes or underscores).
SYNONYMS = {
    "user": (
        "question",
        "questions",
        "query",
        "prompt",
        "instruction",
        "input",
        "user",
        "human",
        "request",
        "problem",
        "q",
        "ask",
        "message",
        "inputtext",
        "userinput",
        "usermessage",
    ),
    "assistant": (
        "answer",
        "answers",
        "response",
        "responses",
        "output",
        "completion",
        "reply",
        "assistant",
        "gpt",
        "bot",
        "solution",
        "target",
        "a",
        "outputtext",
        "assistantresponse",
        "modelanswer",
        "expectedanswer",
        "expectedoutput",
        "groundtruth",
    ),
    "context": (
        "context",
        "input",
        "passage",
        "document",
        "documents",
        "background",
        "knowledge",
        "evidence",
        "retrievedcontext",
        "source",
        "article",
    ),
    "system": ("system", "systemprompt", "systemmessage", "persona", "instructions"),
}


def _key(name: str) -> str:
    return re.sub(r"[\s_\-.]+", "", str(name).lower())


@dataclass
class ColumnMapping:
    user: str
    assistant: str
    context: list[str] = field(default_factory=list)
    system: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"user": self.user, "assistant": self.assistant, "context": list(self.context), "system": self.system}

    @classmethod
    def from_dict(cls, data: dict | None) -> ColumnMapping | None:
        if not data:
            return None
        context = data.get("context") or []
        if isinstance(context, str):
            context = [context]
        return cls(
            user=str(data.get("user") or ""),
            assistant=str(data.get("assistant") or ""),
            context=[str(c) for c in context if c],
            system=(str(data["system"]) if data.get("system") else None),
        )

    def describe(self) -> str:
        """How the rows were built, e.g. "question→user, context appended to user, answer→assistant"."""
        parts = []
        if self.system:
            parts.append(f"{self.system}→system")
        parts.append(f"{self.user}→user")
        parts += [f"{name} appended to user" for name in self.context]
        parts.append(f"{self.assistant}→assistant")
        return ", ".join(parts)

    def check(self, available: list[str]) -> ColumnMapping:
        """Plain errors for a mapping that cannot work on these columns."""
        shown = ", ".join(available[:20]) or "none"
        if not self.user or not self.assistant:
            raise StudioError(
                "A mapping needs a user column and an assistant (answer) column.",
                f"Pick both; the columns in this file: {shown}.",
            )
        used = [self.user, self.assistant, *self.context] + ([self.system] if self.system else [])
        for name in used:
            if name not in available:
                raise StudioError(f"There is no column called '{name}' in this file.", f"The columns are: {shown}.")
        if len(set(used)) != len(used):
            raise StudioError("One column is mapped to two roles.", "Give each role its own column.")
        return self


def _is_texty(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float) and math.isnan(value):
        return True  # an empty cell of a text column (Parquet)
    return isinstance(value, (str, int, float)) or value is None


def columns(rows: list[Row]) -> list[str]:
    """Columns holding text (or numbers) in most of the first rows, in the file's order."""
    seen: dict[str, list[int]] = {}
    sample = [row for row in rows[:_SAMPLE] if isinstance(row.extra.get("source_row", row.raw), dict)]
    for row in sample:
        for name, value in row.extra.get("source_row", row.raw).items():
            counts = seen.setdefault(str(name), [0, 0])
            counts[0] += 1
            counts[1] += _is_texty(value)
    return [name for name, (present, texty) in seen.items() if texty >= max(1, present // 2)]


def propose(rows: list[Row]) -> ColumnMapping | None:
    """A mapping from the column names, or None when no user column and answer column can be told apart."""
    available = columns(rows)
    by_key = {}
    for name in available:
        by_key.setdefault(_key(name), name)

    def pick(role: str, taken: set[str]) -> str | None:
        for synonym in SYNONYMS[role]:
            name = by_key.get(synonym)
            if name is not None and name not in taken:
                return name
        return None

    taken: set[str] = set()
    assistant = pick("assistant", taken)
    if assistant is None:
        return None
    taken.add(assistant)
    user = pick("user", taken)
    if user is None:
        return None
    taken.add(user)
    system = pick("system", taken)
    if system:
        taken.add(system)
    context = [by_key[s] for s in SYNONYMS["context"] if s in by_key and by_key[s] not in taken]
    return ColumnMapping(user=user, assistant=assistant, context=list(dict.fromkeys(context)), system=system)


def needs_mapping(rows: list[Row], majority_format: str | None) -> bool:
    """True when the rows are not in a chat format the studio reads and their columns suggest a mapping."""
    if not rows:
        return False
    unknown = sum(1 for row in rows if row.format is None)
    if majority_format not in (None, "text", "prompt-only") and unknown * 2 < len(rows):
        return False
    return propose(rows) is not None


def parse_cli(items: list[str] | None) -> ColumnMapping | None:
    """`--map user=question --map assistant=answer [--map context=x ...] [--map system=y]` → ColumnMapping."""
    if not items:
        return None
    values: dict[str, Any] = {"context": []}
    for item in items:
        role, sep, column = str(item).partition("=")
        role, column = role.strip().lower(), column.strip()
        if not sep or role not in ROLES or not column:
            raise StudioError(
                f"'{item}' is not a column mapping.",
                "Write ROLE=COLUMN with ROLE one of user, assistant, context, system, "
                "e.g. --map user=question --map assistant=answer.",
            )
        if role == "context":
            values["context"].append(column)
        elif role in values:
            raise StudioError(f"{role} is mapped twice.", f"Give --map {role}=COLUMN once (only context may repeat).")
        else:
            values[role] = column
    mapping = ColumnMapping.from_dict(values)
    if not mapping.user or not mapping.assistant:
        raise StudioError(
            "A mapping needs both --map user=COLUMN and --map assistant=COLUMN.",
            "e.g. --map user=question --map assistant=answer",
        )
    return mapping


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def convert_record(record: dict, mapping: ColumnMapping) -> dict:
    """One record → {"messages": [...]}. A missing answer stays None, so the linter flags the row."""
    user = _text(record.get(mapping.user))
    extras = [text for text in (_text(record.get(name)) for name in mapping.context) if text and text.strip()]
    if extras:
        user = "\n\n".join(part for part in [user or "", *extras] if part)
    messages = []
    system = _text(record.get(mapping.system)) if mapping.system else None
    if system and system.strip():
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": user})
    messages.append({"role": "assistant", "content": _text(record.get(mapping.assistant))})
    return {"messages": messages}


def apply(rows: list[Row], mapping: ColumnMapping) -> list[Row]:
    """Rewrite every row in place to chat messages (the original record kept in extra["source_row"])."""
    mapping.check(columns(rows))
    described = "column mapping: " + mapping.describe()
    for row in rows:
        original = row.extra.get("source_row", row.raw)
        if not isinstance(original, dict):
            continue
        row.extra["source_row"] = original
        row.raw = convert_record(original, mapping)
        row.extra["mapping"] = described
    return rows


def preview(rows: list[Row], mapping: ColumnMapping, n: int = 3) -> list[dict]:
    """The first n rows converted, without changing them: [{"row", "messages"}]."""
    mapping.check(columns(rows))
    out = []
    for row in rows:
        original = row.extra.get("source_row", row.raw)
        if isinstance(original, dict):
            out.append({"row": row.number, "messages": convert_record(original, mapping)["messages"]})
        if len(out) >= n:
            break
    return out


def load_mapped(path, name: str | None, mapping: ColumnMapping | None, max_bytes: int | None | bool = True):
    """Load a file like the linter does and apply the mapping (if any): hand the result to lint.report_from_load."""
    loaded = load.load_path(path, name, max_bytes=max_bytes)
    if mapping is not None and loaded.rows:
        apply(loaded.rows, mapping)
    return loaded


def lint_mapped(
    path,
    name: str | None,
    mapping: ColumnMapping | None,
    *,
    tokenizer: Any = None,
    max_length: int | None = None,
    progress=None,
    batch_size: int = 8,
    model: str | None = None,
    keep_rows: bool = True,
    workers: int | None = 1,
    max_bytes: int | None | bool = True,
):
    """Lint a file read through a column mapping; without one, the linter's own path (a .jsonl is streamed)."""
    if mapping is None:
        return lint.lint_file(
            path,
            name,
            tokenizer=tokenizer,
            max_length=max_length,
            progress=progress,
            batch_size=batch_size,
            model=model,
            keep_rows=keep_rows,
            workers=workers,
            max_bytes=max_bytes,
        )
    loaded = load_mapped(path, name, mapping, max_bytes=max_bytes)
    return lint.report_from_load(loaded, tokenizer, max_length, progress, batch_size, model)
