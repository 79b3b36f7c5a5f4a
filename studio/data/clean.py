"""One-click safe fixes and a leak-free, seeded train/validation split.

Fixes (all safe: they never change what a row means):
  - rows with an E finding are set aside as rejected rows, with their reasons (secrets masked);
  - every row becomes canonical chat messages (role + string content; tool calls kept);
  - Unicode NFC and edge whitespace stripped in every message;
  - exact duplicates (after NFC and collapsed whitespace) removed, first one kept.
Split: rows are grouped into near-duplicate clusters (the linter's measure: MinHash on word 5-grams,
Jaccard >= 0.85, plus exact duplicates), clusters are shuffled with the seed and dealt to validation until it
holds the requested share; so near-duplicates always land on the same side.
"""

from __future__ import annotations

import json
import random
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from studio.data.records import Row
from studio.data.rules.dataset import duplicate_pairs, find_leaks, row_key
from studio.data.rules.secrets import mask_record
from studio.errors import StudioError

DEFAULT_VALIDATION_FRACTION = 0.10
LEAK_CHECK_MAX_ROWS = 20_000  # above this the split is verified on the duplicate pairs already computed
_MESSAGE_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id", "weight")


@dataclass
class CleanResult:
    train: list[dict[str, Any]]  # output records, one {"messages": [...]} (or {"text"}) each
    validation: list[dict[str, Any]]
    rejected: list[dict[str, Any]]  # {"row", "raw", "reasons": [{rule, severity, message, hint}]}
    train_rows: list[int]  # source row numbers, parallel to train
    validation_rows: list[int]
    fixes: dict[str, int] = field(default_factory=dict)  # what was changed, for the report
    seed: int = 0
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    leaks: list = field(default_factory=list)  # find_leaks() after the split (should be empty)

    @property
    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "rejected": len(self.rejected)}


# ---------------------------------------------------------------- fixes


def normalise_text(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def _content_string(content: Any) -> str:
    """Typed content parts -> one string (text parts joined); None -> ""."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict):
                texts.append(str(part.get("text") or part.get("content") or ""))
            elif isinstance(part, str):
                texts.append(part)
        return "".join(texts)
    return str(content)


def canonical_record(row, fixes: dict[str, int] | None = None) -> dict[str, Any] | None:
    """The row as a clean training record, or None when it has nothing to train on."""
    fixes = fixes if fixes is not None else {}
    if row.messages is not None:
        messages = []
        for message in row.messages:
            if not isinstance(message, dict):
                continue
            original = message.get("content")
            text = _content_string(original)
            fixed = normalise_text(text)
            if fixed != text:
                if unicodedata.normalize("NFC", text) != text:
                    fixes["nfc"] = fixes.get("nfc", 0) + 1
                if text.strip() != text:
                    fixes["whitespace"] = fixes.get("whitespace", 0) + 1
            if not isinstance(original, str) and original is not None:
                fixes["content_parts"] = fixes.get("content_parts", 0) + 1
            clean = {"role": str(message.get("role", "")), "content": fixed}
            for key in _MESSAGE_KEYS[2:]:
                if message.get(key) is not None:
                    clean[key] = message[key]
            messages.append(clean)
        record: dict[str, Any] = {"messages": messages}
        tools = (row.extra or {}).get("tools")
        if tools:
            record["tools"] = tools
        return record
    if row.text is not None:
        text = normalise_text(str(row.text))
        if text != row.text:
            fixes["whitespace"] = fixes.get("whitespace", 0) + 1
        return {"text": text}
    return None


def duplicate_key(record: dict[str, Any]) -> str:
    """Identical after NFC and collapsed whitespace: the linter's DUP-EXACT key (+ the tools, if any)."""
    key = row_key(_as_rows([record])[0])
    return key + ("\x1d" + json.dumps(record["tools"], sort_keys=True) if record.get("tools") else "")


def _reason(finding) -> dict[str, Any]:
    return {"rule": finding.rule, "severity": finding.severity, "message": finding.message, "hint": finding.hint}


# ---------------------------------------------------------------- near-duplicate clusters


def _as_rows(records: list[dict[str, Any]], numbers: Iterable[int] | None = None) -> list:
    numbers = list(numbers) if numbers is not None else list(range(1, len(records) + 1))
    return [
        Row(
            number=n,
            raw=r,
            format="text" if "text" in r else "messages",
            messages=r.get("messages"),
            text=r.get("text"),
        )
        for r, n in zip(records, numbers)
    ]


def near_duplicate_pairs(records: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Index pairs of exact or near duplicates by the linter's DUP-* measure (MinHash on word 5-grams
    of the user/assistant turns, Jaccard >= 0.85). Using the linter's measure means the split and
    its DS-LEAK check agree by construction."""
    return duplicate_pairs(_as_rows(records))


def group_ids(size: int, pairs: Iterable[tuple[int, int]]) -> list[int]:
    """Union-find: a cluster id (its smallest member) per index."""
    parent = list(range(size))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [find(i) for i in range(size)]


def near_duplicate_groups(records: list[dict[str, Any]]) -> list[int]:
    """Cluster id per record: exact and near duplicates share an id."""
    return group_ids(len(records), near_duplicate_pairs(records))


# ---------------------------------------------------------------- split


def split_clusters(cluster_of: list[int], validation_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices for train and validation; a cluster is never divided. Deterministic for a seed."""
    n = len(cluster_of)
    if n < 2:
        raise StudioError(
            f"Only {n} usable row{'s' if n != 1 else ''} left after the fixes: too few to split into train and "
            f"validation.",
            "Fix the rows with errors (see the findings) or add more examples; at least 2 are needed, 50+ recommended.",
        )
    target = min(n - 1, max(1, round(n * validation_fraction)))
    clusters: dict[int, list[int]] = {}
    for index, cluster in enumerate(cluster_of):
        clusters.setdefault(cluster, []).append(index)
    groups = sorted(clusters.values(), key=lambda members: members[0])
    if len(groups) < 2:
        raise StudioError(
            "Every row is a near-duplicate of the others, so no validation set can be held out without leaking.",
            "Add more varied examples; a validation set of copies of the training rows measures nothing.",
        )
    rng = random.Random(seed)
    rng.shuffle(groups)
    validation: list[int] = []
    train: list[int] = []
    for members in groups:
        if len(validation) + len(members) <= target:
            validation.extend(members)
        else:
            train.extend(members)
    if not validation:  # every cluster is bigger than the target: take the smallest one
        smallest = min(groups, key=len)
        validation = list(smallest)
        train = [i for members in groups if members is not smallest for i in members]
    if not train:
        raise StudioError(
            "Nothing would be left to train on after holding out validation.", "Lower the validation share."
        )
    return sorted(train), sorted(validation)


def clean_and_split(
    report,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    seed: int = 0,
    progress=None,
) -> CleanResult:
    """Apply the safe fixes to a LintReport's rows and split them. Raises StudioError when too few rows remain."""
    if not 0 < validation_fraction < 1:
        raise StudioError(
            f"The validation share must be between 0% and 100% (got {validation_fraction:.0%}).",
            "Use 5-20%; 10% is a good default.",
        )
    errors: dict[int, list] = {}
    for finding in report.findings:
        if finding.severity == "E" and finding.row is not None:
            errors.setdefault(finding.row, []).append(finding)
    fixes: dict[str, int] = {}
    rejected: list[dict[str, Any]] = []  # raw rows with every secret masked (mask_record)
    kept: list[tuple[int, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    for row in report.rows:
        if row.number in errors:
            rejected.append(
                {"row": row.number, "raw": mask_record(row.raw), "reasons": [_reason(f) for f in errors[row.number]]}
            )
            continue
        record = canonical_record(row, fixes)
        if record is None:
            rejected.append(
                {
                    "row": row.number,
                    "raw": mask_record(row.raw),
                    "reasons": [
                        {
                            "rule": "SCH-UNKNOWN",
                            "severity": "E",
                            "message": "No recognisable format: nothing to train on.",
                            "hint": "Use messages, conversations, instruction/output, prompt/completion or text.",
                        }
                    ],
                }
            )
            continue
        if row.format not in (None, "messages", "text"):
            fixes["converted"] = fixes.get("converted", 0) + 1
        key = duplicate_key(record)
        if key in seen:
            fixes["duplicates_removed"] = fixes.get("duplicates_removed", 0) + 1
            rejected.append(
                {
                    "row": row.number,
                    "raw": mask_record(row.raw),
                    "reasons": [
                        {
                            "rule": "DUP-EXACT",
                            "severity": "W",
                            "message": f"Exact duplicate of row {seen[key]}: removed.",
                            "hint": "Duplicates make the model over-weight one example.",
                        }
                    ],
                }
            )
            continue
        seen[key] = row.number
        kept.append((row.number, record))
    fixes["rejected_with_errors"] = sum(1 for item in rejected if item["reasons"][0]["severity"] == "E")
    if progress:
        progress(0.5, desc="Grouping near-duplicates")
    pairs = near_duplicate_pairs([record for _, record in kept])
    train_idx, val_idx = split_clusters(group_ids(len(kept), pairs), validation_fraction, seed)
    result = CleanResult(
        train=[kept[i][1] for i in train_idx],
        validation=[kept[i][1] for i in val_idx],
        rejected=sorted(rejected, key=lambda item: item["row"]),
        train_rows=[kept[i][0] for i in train_idx],
        validation_rows=[kept[i][0] for i in val_idx],
        fixes=fixes,
        seed=seed,
        validation_fraction=validation_fraction,
    )
    # Verify: no duplicate pair may cross the split. The linter's own DS-LEAK check (which recomputes
    # the signatures) runs too on datasets of UI size; on larger ones the pair check is the same test.
    in_validation = set(val_idx)
    crossing = [(a, b) for a, b in pairs if (a in in_validation) != (b in in_validation)]
    result.leaks = [kept[b if b in in_validation else a][0] for a, b in crossing]
    if not result.leaks and len(kept) <= LEAK_CHECK_MAX_ROWS:
        result.leaks = check_leaks(result)
    return result


def check_leaks(result: CleanResult) -> list:
    """The linter's DS-LEAK check on the finished split (empty when nothing leaks)."""
    return list(
        find_leaks(_as_rows(result.train, result.train_rows), _as_rows(result.validation, result.validation_rows))
    )
