"""Per-row facts of a linted file in numpy columns: what the statistics need, for any number of rows.

The linter records one RowFacts per chunk of rows (in whichever process checked the chunk) and a
RowTable joins them in row order. studio.data.stats reads only this table, so `lint --json` (which
streams a file without keeping its rows) and the Data tab (which keeps them for the row view and
the fix) compute every figure from the same numbers.

Columns (one entry per row): number (line or record), format (index into FORMATS), parsed (the row
became chat messages or text), messages (count, -1 without messages), users (user turns), roles
(counts of system/user/assistant/tool messages; other role names per row in other_roles), system
(id of the row's first system prompt in system_texts, -1 for none), tokens (total, prompt,
trainable, trainable_cut after the chat template; -1 when not counted).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from studio.data.formats import content_text
from studio.data.records import Row, TokenCount

FORMATS = (None, "messages", "sharegpt", "alpaca", "prompt-completion", "text", "preference", "prompt-only")
ROLES = ("system", "user", "assistant", "tool")
_FORMAT_CODE = {name: code for code, name in enumerate(FORMATS)}
_ROLE_INDEX = {name: index for index, name in enumerate(ROLES)}
NO_TOKENS = (-1, -1, -1, -1)


@dataclass
class RowFacts:
    """The facts of consecutive rows (a chunk), with chunk-local system prompt ids and row indexes."""

    numbers: np.ndarray
    formats: np.ndarray
    parsed: np.ndarray
    messages: np.ndarray
    users: np.ndarray
    roles: np.ndarray
    system: np.ndarray
    tokens: np.ndarray
    system_texts: list[str] = field(default_factory=list)
    other_roles: dict[int, dict[str, int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.numbers)


def row_facts(rows: Sequence[Row], counts: Sequence[TokenCount | None] | None = None) -> RowFacts:
    """The facts of `rows` (converted by studio.data.formats); counts aligned with rows, None where not counted."""
    size = len(rows)
    numbers = np.fromiter((row.number for row in rows), dtype=np.int64, count=size)
    formats = np.fromiter((_FORMAT_CODE.get(row.format, 0) for row in rows), dtype=np.int8, count=size)
    parsed = np.fromiter((row.messages is not None or row.text is not None for row in rows), dtype=bool, count=size)
    messages = np.full(size, -1, dtype=np.int32)
    users = np.zeros(size, dtype=np.int32)
    roles = np.zeros((size, len(ROLES)), dtype=np.int32)
    system = np.full(size, -1, dtype=np.int32)
    system_ids: dict[str, int] = {}
    other_roles: dict[int, dict[str, int]] = {}
    for index, row in enumerate(rows):
        if row.messages is None:
            continue
        messages[index] = len(row.messages)
        prompt = None
        for message in row.messages:
            if not isinstance(message, dict):
                continue
            role = message.get("role", "?")
            slot = _ROLE_INDEX.get(role)
            if slot is not None:
                roles[index, slot] += 1
            else:
                extra = other_roles.setdefault(index, {})
                extra[str(role)] = extra.get(str(role), 0) + 1
            if role == "system" and prompt is None:
                prompt = (content_text(message.get("content")) or "").strip()
        users[index] = roles[index, 1]
        if prompt is not None:
            system[index] = system_ids.setdefault(prompt, len(system_ids))
    tokens = np.array(
        [
            NO_TOKENS if count is None else (count.total, count.prompt, count.trainable, count.trainable_cut)
            for count in (counts if counts is not None else [None] * size)
        ],
        dtype=np.int32,
    ).reshape(size, 4)
    return RowFacts(numbers, formats, parsed, messages, users, roles, system, tokens, list(system_ids), other_roles)


class RowTable:
    """RowFacts of every chunk joined in row order. Add chunks with add(), then read the columns."""

    def __init__(self, chunks: Iterable[RowFacts] = ()):
        self._chunks: list[RowFacts] = []
        self.system_texts: list[str] = []
        self._system_ids: dict[str, int] = {}
        self.other_roles: dict[int, dict[str, int]] = {}  # global row index -> {role: messages}
        self._size = 0
        self._joined: dict[str, np.ndarray] | None = None
        for chunk in chunks:
            self.add(chunk)

    def add(self, facts: RowFacts) -> None:
        if len(facts.system_texts):
            mapping = np.array(
                [self._system_ids.setdefault(text, len(self._system_ids)) for text in facts.system_texts],
                dtype=np.int32,
            )
            self.system_texts = list(self._system_ids)
            facts.system = np.where(facts.system >= 0, mapping[np.maximum(facts.system, 0)], -1).astype(np.int32)
        for index, roles in facts.other_roles.items():
            self.other_roles[self._size + index] = roles
        facts.system_texts, facts.other_roles = [], {}
        self._chunks.append(facts)
        self._size += len(facts)
        self._joined = None

    def __len__(self) -> int:
        return self._size

    def column(self, name: str) -> np.ndarray:
        if self._joined is None:
            self._joined = {}
        if name not in self._joined:
            parts = [getattr(chunk, name) for chunk in self._chunks]
            if parts:
                self._joined[name] = np.concatenate(parts)
            else:
                empty = {"tokens": np.zeros((0, 4), np.int32), "roles": np.zeros((0, len(ROLES)), np.int32)}
                self._joined[name] = empty.get(name, np.zeros(0, np.int64 if name == "numbers" else np.int32))
        return self._joined[name]

    @property
    def numbers(self) -> np.ndarray:
        return self.column("numbers")

    @property
    def formats(self) -> np.ndarray:
        return self.column("formats")

    @property
    def parsed(self) -> np.ndarray:
        return self.column("parsed").astype(bool)

    @property
    def messages(self) -> np.ndarray:
        return self.column("messages")

    @property
    def users(self) -> np.ndarray:
        return self.column("users")

    @property
    def roles(self) -> np.ndarray:
        return self.column("roles")

    @property
    def system(self) -> np.ndarray:
        return self.column("system")

    @property
    def tokens(self) -> np.ndarray:
        return self.column("tokens")

    def token_counts(self) -> list[TokenCount | None]:
        """One TokenCount (or None) per row, in row order."""
        return [
            None if total < 0 else TokenCount(int(total), int(prompt), int(trainable), int(cut))
            for total, prompt, trainable, cut in self.tokens.tolist()
        ]

    def format_name(self, code: int) -> str | None:
        return FORMATS[code]
