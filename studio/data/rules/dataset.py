"""Dataset-level rules: size and splits (I), duplicates (DUP-*), distribution (DIST-*) and the
dataset-wide parts of C, D and F (ROLE-MISSING-SYS-USER, ROLE-NAME, ROLE-WEIGHT, CONT-THINK, TOOL-DRIFT).

How they scale: `chunk_facts(rows)` reduces a chunk of usable rows to compact facts that merge
(64-bit keys for exact duplicates and prompt/answer conflicts, MinHash signatures, counters, a
language sample) in whichever process checked the chunk; a `DatasetTally` joins them in row order
and `findings()` applies the rules once, at the end, on arrays: about 0.2 KB per row, not its text.

Exact duplicates: equal after NFC and collapsed whitespace (`row_key`), compared by a 64-bit
xxHash3 (a collision among a million rows: about 1 in 36 million). Near duplicates: MinHash over word 5-grams
of the user and assistant turns, lower-cased with punctuation removed (so rows that differ only in case,
punctuation or spacing always match), 64 permutations kept as 16-bit values (b-bit MinHash: the similarity estimate is
biased by (1 - J) / 65,536, nothing at the 0.85 threshold; 32-bit xor-multiply permutations of 64-bit
shingle hashes), LSH with 16 bands of 4, then a check of
each candidate pair's estimated Jaccard similarity >= 0.85. Rows without any word are not compared.
"""

from __future__ import annotations

import json
import string
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from xxhash import xxh3_64_intdigest

from studio.data.records import Finding, Row
from studio.data.rules import language
from studio.data.rules.secrets import quote
from studio.data.stats import suggested_epochs

NEAR_THRESHOLD = 0.85
NUM_PERM = 64
BANDS, BAND_ROWS = 16, 4  # a pair at Jaccard 0.85 becomes a candidate with probability 1 - (1 - 0.85^4)^16 > 0.999
SHINGLE = 5
SIGNATURE_BITS = 16
DEDUP_MAX_CHARS = 200_000  # MinHash of a huge row on its first 200k characters keeps one giant row from dominating
# Near-duplicate shingles ignore case, punctuation and spacing: "What's 2+2?" and "whats 2 2" are the same words.
# Separators: ASCII punctuation, common typographic punctuation, every character str.split() splits on.
_SEPARATORS = (
    string.punctuation
    + "“”‘’«»„…–—¿¡·•"
    + "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_SEPARATOR_CHARS = str.maketrans({char: " " for char in _SEPARATORS})
_SEPARATOR_BYTES = bytes.maketrans(
    bytes(c for c in _SEPARATORS.encode("latin-1", "ignore") if c < 128),
    b" " * sum(1 for c in _SEPARATORS.encode("latin-1", "ignore") if c < 128),
)


def normalise(text: str) -> str:
    """NFC + collapsed whitespace (ASCII text is already NFC: skip the normaliser)."""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


def row_key(row: Row) -> str:
    """The row's content, normalised (NFC, collapsed whitespace): equal keys = exact duplicates."""
    if row.messages:
        return "\x1e".join(
            f"{m.get('role')}\x1f{normalise(m['content']) if isinstance(m.get('content'), str) else ''}"
            f"{json.dumps(m.get('tool_calls'), sort_keys=True) if m.get('tool_calls') else ''}"
            for m in row.messages
        )
    return normalise(row.text or "")


def stable_hash(text: str) -> int:
    """A 64-bit hash (xxHash3) that is the same in every process and every run (Python's str hash is salted)."""
    return xxh3_64_intdigest(text.encode("utf-8", "surrogatepass"))


def dedup_text(row: Row) -> str:
    """Text compared for near duplicates: user and assistant turns (a shared system prompt would make all rows look
    alike)."""
    if row.messages:
        text = " ".join(
            m["content"] for m in row.messages if m.get("role") != "system" and isinstance(m.get("content"), str)
        )
    else:
        text = row.text or ""
    return text[:DEDUP_MAX_CHARS]


# ---------------------------------------------------------------- MinHash (vectorised)


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a good 64-bit hash of 64-bit integers, vectorised."""
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


_SEEDS = _mix(np.arange(1, NUM_PERM + 1, dtype=np.uint64) * np.uint64(0x632BE59BD9B4E019))
_MULTIPLIERS = _mix(_SEEDS) | np.uint64(1)  # odd: multiplication is a bijection
_SEEDS32 = (_SEEDS >> np.uint64(32)).astype(np.uint32)
_MULTIPLIERS32 = (_MULTIPLIERS & np.uint64(0xFFFFFFFF)).astype(np.uint32) | np.uint32(1)
_SHINGLE_MULTIPLIERS = _mix(np.arange(100, 100 + SHINGLE, dtype=np.uint64))


_POLY = np.uint64(0x9E3779B97F4A7C15 | 1)  # odd: invertible modulo 2^64
_POLY_INVERSE = np.uint64(pow(int(_POLY), -1, 2**64))
_PAD_WORD = _mix(np.array([0x5EED_0001], dtype=np.uint64))[0]  # stands for the missing words of a text under 5 words


_POWERS: dict[int, np.ndarray] = {}  # powers of _POLY and of its inverse modulo 2^64, grown as needed


def _powers(count: int) -> tuple[np.ndarray, np.ndarray]:
    cached = _POWERS.get(0)
    if cached is None or len(cached[0]) < count:
        size = max(count, 1 << 20)
        pairs = []
        for base in (_POLY, _POLY_INVERSE):
            powers = np.full(size, base, dtype=np.uint64)
            powers[0] = 1
            with np.errstate(over="ignore"):
                pairs.append(np.cumprod(powers, dtype=np.uint64))  # wraps modulo 2^64, as the hash wants
        cached = _POWERS[0] = tuple(pairs)
    return cached[0][:count], cached[1][:count]


def word_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The words of each text (lower-cased; punctuation and whitespace separate words) as 64-bit hashes,
    in order, and the number of words per text. Computed with numpy on the UTF-8 bytes of all the texts
    at once, a polynomial hash of each word's bytes (then mixed): no Python string per word."""
    if all(text.isascii() for text in texts):  # the same bytes as below, made faster
        data = " ".join(texts).encode("ascii").lower().translate(_SEPARATOR_BYTES)
        byte_lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    else:
        encoded = [text.lower().translate(_SEPARATOR_CHARS).encode("utf-8", "surrogatepass") for text in texts]
        data = b" ".join(encoded)
        byte_lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(texts))
    text_starts = np.cumsum(byte_lengths + 1) - byte_lengths - 1
    values = np.frombuffer(data, dtype=np.uint8)
    word = values != 32
    starts = np.flatnonzero(word & ~np.r_[False, word[:-1]])
    ends = np.flatnonzero(word & ~np.r_[word[1:], False]) + 1
    powers, inverse_powers = _powers(len(values))
    with np.errstate(over="ignore"):
        prefix = np.zeros(len(values) + 1, dtype=np.uint64)
        np.cumsum(values * powers, out=prefix[1:])
        hashes = (prefix[ends] - prefix[starts]) * inverse_powers[starts]  # the same for a word wherever it is
    hashes = _mix(hashes ^ (ends - starts).astype(np.uint64))  # and its length
    counts = np.bincount(np.searchsorted(text_starts, starts, side="right") - 1, minlength=len(texts))
    return hashes, counts


def _groups(texts: list[str], budget: int = 2 << 20) -> list[tuple[int, int]]:
    """[start, end) ranges of texts with about `budget` characters each (at least one text)."""
    ranges, start, size = [], 0, 0
    for index, text in enumerate(texts):
        size += len(text) + 1
        if size >= budget:
            ranges.append((start, index + 1))
            start, size = index + 1, 0
    if start < len(texts):
        ranges.append((start, len(texts)))
    return ranges


def minhash_signatures(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """MinHash signatures over word 5-grams (lower-cased, punctuation removed): (len(texts), NUM_PERM)
    uint16, and per text whether it has any word (texts without one get a meaningless signature)."""
    signatures = np.empty((len(texts), NUM_PERM), dtype=np.uint16)
    has_words = np.zeros(len(texts), dtype=bool)
    for start, stop in _groups(texts):  # groups of ~2 MB keep the arrays small and in cache
        hashes, counts = word_hashes(texts[start:stop])
        has_words[start:stop] = counts > 0
        # texts under SHINGLE words are padded with a fixed word, so each has at least one shingle
        lengths = np.maximum(counts, SHINGLE)
        ends = np.cumsum(lengths)
        words_array = np.full(int(ends[-1]), _PAD_WORD, dtype=np.uint64)
        rank = np.arange(len(hashes)) - np.repeat(np.cumsum(counts) - counts, counts)
        words_array[np.repeat(ends - lengths, counts) + rank] = hashes
        count = len(words_array) - SHINGLE + 1
        with np.errstate(over="ignore"):
            combined = np.zeros(count, dtype=np.uint64)
            for k in range(SHINGLE):
                combined = (combined ^ words_array[k : k + count]) * _SHINGLE_MULTIPLIERS[k]
        # keep shingles that start inside a row and end inside the same row
        valid = np.ones(count, dtype=bool)
        for k in range(1, SHINGLE):
            boundary = ends - k  # a shingle starting here would cross into the next row
            valid[boundary[boundary < count]] = False
        positions = np.nonzero(valid)[0]
        # 32-bit permutations of the (well mixed) shingle hashes: half the memory traffic of 64-bit ones
        shingles = (_mix(combined[positions]) >> np.uint64(32)).astype(np.uint32)
        row_starts = np.searchsorted(np.searchsorted(ends, positions, side="right"), np.arange(stop - start))
        hashed = np.empty(len(shingles), dtype=np.uint32)
        with np.errstate(over="ignore"):
            for j in range(NUM_PERM):
                # one cheap xor-multiply permutation per signature column
                np.bitwise_xor(shingles, _SEEDS32[j], out=hashed)
                np.multiply(hashed, _MULTIPLIERS32[j], out=hashed)
                signatures[start:stop, j] = np.minimum.reduceat(hashed, row_starts) >> np.uint32(32 - SIGNATURE_BITS)
    return signatures, has_words


def band_keys(signatures: np.ndarray, band: int) -> np.ndarray:
    """One 64-bit key per row for LSH band `band` (its BAND_ROWS signature values)."""
    keys = np.zeros(len(signatures), dtype=np.uint64)
    for column in range(band * BAND_ROWS, (band + 1) * BAND_ROWS):
        keys = _mix(keys ^ signatures[:, column].astype(np.uint64))
    return keys


def candidate_pairs(keys: np.ndarray, candidates: set[tuple[int, int]], index: np.ndarray | None = None) -> None:
    """Add (i, j), i < j, for rows with equal band keys (`index` maps positions in `keys` to row indexes)."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    same = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if not len(same):
        return
    members = order if index is None else index[order]
    starts = same[np.r_[True, np.diff(same) > 1]]  # runs of equal keys
    ends = same[np.r_[np.diff(same) > 1, True]] + 2
    for start, end in zip(starts.tolist(), ends.tolist()):
        _add_run(sorted(members[start:end].tolist()), candidates)


def _add_run(members: list[int], candidates: set[tuple[int, int]]) -> None:
    if len(members) > 200:  # a huge bucket = many identical rows; chain them instead of all pairs
        candidates.update((members[k], members[k + 1]) for k in range(len(members) - 1))
        return
    for a in range(len(members)):
        for b in range(a + 1, len(members)):
            candidates.add((members[a], members[b]))


def near_duplicate_pairs(
    signatures: np.ndarray, threshold: float = NEAR_THRESHOLD, has_words: np.ndarray | None = None
) -> list[tuple[int, int, float]]:
    """Index pairs (i < j) whose estimated Jaccard similarity is >= threshold, via LSH banding."""
    index = np.flatnonzero(has_words) if has_words is not None else None
    rows = signatures if index is None else signatures[index]
    if len(rows) < 2:
        return []
    candidates: set[tuple[int, int]] = set()
    for band in range(BANDS):
        candidate_pairs(band_keys(rows, band), candidates, index)
    return _verified(candidates, lambda ids: signatures[ids], threshold)


def _verified(candidates, signature_rows, threshold: float) -> list[tuple[int, int, float]]:
    if not candidates:
        return []
    pairs = np.array(sorted(candidates), dtype=np.int64)
    similarity = (signature_rows(pairs[:, 0]) == signature_rows(pairs[:, 1])).mean(axis=1)
    keep = similarity >= threshold
    return [(int(a), int(b), float(value)) for (a, b), value in zip(pairs[keep].tolist(), similarity[keep].tolist())]


def _clusters(pairs: list[tuple[int, int]]) -> list[list[int]]:
    """Connected groups (sorted, in order of their first member) of the indexes the pairs link."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for index in sorted(parent):
        groups.setdefault(find(index), []).append(index)
    return [members for members in groups.values() if len(members) > 1]


def _rows_text(numbers: list[int], limit: int = 8) -> str:
    return ", ".join(map(str, numbers[:limit])) + ("…" if len(numbers) > limit else "")


# ---------------------------------------------------------------- per-chunk facts


@dataclass
class DatasetFacts:
    """What the dataset rules need from one chunk of usable rows (picklable, small)."""

    numbers: np.ndarray  # usable rows' numbers, in row order
    keys: np.ndarray  # uint64 stable hash of row_key
    signatures: np.ndarray  # (rows, NUM_PERM) uint16 MinHash of dedup_text
    has_words: np.ndarray
    conflict: np.ndarray  # (chat rows ending on an answer, 3) int64/uint64: number, prompt hash, answer hash
    chat_rows: int = 0
    systems: Counter = field(default_factory=Counter)  # normalised first system prompt -> rows
    openings: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.uint64), np.zeros(0, np.int64))  # phrase hash, count
    opening_texts: dict[int, tuple[int, str]] = field(default_factory=dict)  # hash -> (n, phrase) of frequent ones
    answers: int = 0  # chat rows with a non-empty assistant answer
    multi_turn: int = 0
    no_system: int = 0
    no_user: int = 0
    named: int = 0
    weighted: int = 0
    tools: dict[str, set[str]] = field(default_factory=dict)
    with_think: int = 0
    without_think: int = 0
    language: list[tuple[int, int, str, str]] = field(default_factory=list)  # (priority, number, user, answer) sample


def language_priority(numbers: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random priority per row number: the language sample is the rows with the lowest ones."""
    return _mix(numbers.astype(np.uint64) ^ np.uint64(0x5EED))


def chunk_facts(rows: list[Row], language_below: int = 2**64 - 1) -> DatasetFacts:
    """The facts of a chunk of usable rows; rows with a language priority >= language_below need no language sample."""
    keys = [row_key(row) for row in rows]
    signatures, has_words = minhash_signatures([dedup_text(row) for row in rows])
    chat = [(row, key) for row, key in zip(rows, keys) if row.messages]
    conflict = []
    for row, key in chat:
        if row.messages[-1].get("role") == "assistant" and "\x1e" in key:
            prompt, answer = key.rsplit("\x1e", 1)
            conflict.append((row.number, stable_hash(prompt), stable_hash(answer)))
    facts = DatasetFacts(
        numbers=np.fromiter((row.number for row in rows), dtype=np.int64, count=len(rows)),
        keys=np.fromiter(map(stable_hash, keys), dtype=np.uint64, count=len(keys)),
        signatures=signatures,
        has_words=has_words,
        conflict=np.array(conflict, dtype=np.uint64).reshape(-1, 3),
        chat_rows=len(chat),
    )
    chat_rows = [row for row, _ in chat]
    _chat_facts(chat_rows, facts)
    if chat_rows:
        numbers = np.fromiter((row.number for row in chat_rows), dtype=np.int64, count=len(chat_rows))
        priorities = language_priority(numbers).tolist()
        for row, priority in zip(chat_rows, priorities):
            if priority < language_below:
                user, answer = language.row_texts(row)
                facts.language.append((priority, row.number, user, answer))
    return facts


def _chat_facts(chat: list[Row], facts: DatasetFacts) -> None:
    """Counters of the chat rows, each row's messages read once: system prompts, answer openings,
    turns, roles, names and weights, tool definitions, <think> blocks."""
    openings: Counter = Counter()
    for row in chat:
        system = answer = None
        assistants = 0
        has_system = has_user = named = weighted = False
        for message in row.messages:
            role, content = message.get("role"), message.get("content")
            if role == "assistant":
                assistants += 1
                if isinstance(content, str) and content.strip():
                    if answer is None:
                        answer = content
                    if "<think>" in content:
                        facts.with_think += 1
                    else:
                        facts.without_think += 1
            elif role == "user":
                has_user = True
            elif role == "system":
                has_system = True
                if system is None and isinstance(content, str):
                    system = content
            named = named or "name" in message
            weighted = weighted or "weight" in message
        if system is not None:
            facts.systems[normalise(system)] += 1
        if answer is not None:
            facts.answers += 1
            words = answer.split(None, 3)[:3]
            for n in (3, 2, 1):
                if len(words) >= n:
                    openings[(n, " ".join(words[:n]))] += 1
        facts.multi_turn += assistants > 1
        facts.no_system += not has_system
        facts.no_user += not has_user
        facts.named += named
        facts.weighted += weighted
        tools = row.extra.get("tools")
        if isinstance(tools, list):
            for tool in tools:
                if isinstance(tool, dict):
                    function = tool.get("function", tool)
                    name = function.get("name") if isinstance(function, dict) else None
                    if isinstance(name, str):
                        facts.tools.setdefault(name, set()).add(json.dumps(tool, sort_keys=True))
    hashes = np.fromiter(
        (stable_hash(f"{n}\x1f{phrase}") for n, phrase in openings), dtype=np.uint64, count=len(openings)
    )
    counts = np.fromiter(openings.values(), dtype=np.int64, count=len(openings))
    facts.openings = (hashes, counts)
    # A phrase over 5 % of all answers is over 5 % of the answers of at least one chunk: keep those texts.
    for (key, count), value in zip(openings.items(), hashes.tolist()):
        if count > 0.05 * facts.answers:
            facts.opening_texts[value] = key


# ---------------------------------------------------------------- the tally and the rules


class DatasetTally:
    """Joins DatasetFacts of consecutive chunks; findings() applies the dataset rules to all of them."""

    def __init__(self) -> None:
        self._numbers: list[np.ndarray] = []
        self._keys: list[np.ndarray] = []
        self._signatures: list[np.ndarray] = []
        self._has_words: list[np.ndarray] = []
        self._conflict: list[np.ndarray] = []
        self._openings: list[tuple[np.ndarray, np.ndarray]] = []
        self.opening_texts: dict[int, tuple[int, str]] = {}
        self.systems: Counter = Counter()
        self.tools: dict[str, set[str]] = {}
        self.counts: Counter = Counter()
        self.language: list[tuple[int, int, str, str]] = []
        self._language_below = 2**64 - 1

    @property
    def rows(self) -> int:
        return sum(len(numbers) for numbers in self._numbers)

    def language_below(self) -> int:
        """Rows whose language priority is at or over this can no longer enter the sample."""
        return self._language_below

    def add(self, facts: DatasetFacts) -> None:
        self._numbers.append(facts.numbers)
        self._keys.append(facts.keys)
        self._signatures.append(facts.signatures)
        self._has_words.append(facts.has_words)
        self._conflict.append(facts.conflict)
        self._openings.append(facts.openings)
        if len(self._openings) >= 16:  # keep the phrase counts compact
            self._openings = [_sum_counts(self._openings)]
        self.opening_texts.update(facts.opening_texts)
        self.systems.update(facts.systems)
        for name, variants in facts.tools.items():
            self.tools.setdefault(name, set()).update(variants)
        for name in (
            "chat_rows",
            "answers",
            "multi_turn",
            "no_system",
            "no_user",
            "named",
            "weighted",
            "with_think",
            "without_think",
        ):
            self.counts[name] += getattr(facts, name)
        self.language += facts.language
        limit = language.MAX_ROWS
        if len(self.language) > 2 * limit:
            self.language = sorted(self.language)[:limit]
            self._language_below = self.language[-1][0]

    def findings(self, progress=None) -> list[Finding]:
        progress = progress or (lambda fraction, message: None)
        findings: list[Finding] = []
        numbers = np.concatenate(self._numbers) if self._numbers else np.zeros(0, np.int64)
        progress(0.0, "Looking for exact and near duplicates…")
        exact, nonfirst = self._exact_duplicates(numbers)
        findings += exact
        findings += self._near_duplicates(numbers, nonfirst, progress)
        findings += self._conflicts()
        progress(0.7, "Checking roles, tools and the distribution of prompts and answers…")
        findings += self._distribution()
        findings += self._role_stats()
        findings += self._tool_drift()
        findings += self._think_mix()
        progress(0.8, "Identifying languages…")
        findings += language.language_findings(self.language, self.counts["chat_rows"])
        return findings

    def _exact_duplicates(self, numbers: np.ndarray) -> tuple[list[Finding], np.ndarray]:
        """DUP-EXACT findings, and which rows repeat an earlier one (left out of the near-duplicate search)."""
        keys = np.concatenate(self._keys) if self._keys else np.zeros(0, np.uint64)
        nonfirst = np.zeros(len(keys), dtype=bool)
        findings = []
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        same = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
        if len(same):
            starts = same[np.r_[True, np.diff(same) > 1]]
            ends = same[np.r_[np.diff(same) > 1, True]] + 2
            for start, end in zip(starts.tolist(), ends.tolist()):
                members = order[start:end]  # in row order (stable sort)
                nonfirst[members[1:]] = True
                group = numbers[members].tolist()
                for number in group[1:]:
                    findings.append(
                        Finding(
                            "DUP-EXACT",
                            "W",
                            number,
                            f"Row {number} duplicates row {group[0]} (cluster of {len(group)}: rows "
                            f"{_rows_text(group)}).",
                            "The fix keeps the first copy and removes the others; duplicates over-weight those "
                            "examples.",
                        )
                    )
        return findings, nonfirst

    def _near_duplicates(self, numbers: np.ndarray, nonfirst: np.ndarray, progress) -> list[Finding]:
        compared = ~nonfirst & (np.concatenate(self._has_words) if self._has_words else np.zeros(0, bool))
        index = np.flatnonzero(compared)
        if len(index) < 2:
            return []
        offsets = np.cumsum([0] + [len(block) for block in self._signatures])

        def signature_rows(rows: np.ndarray) -> np.ndarray:
            block = np.searchsorted(offsets, rows, side="right") - 1
            result = np.empty((len(rows), NUM_PERM), dtype=np.uint16)
            for b in np.unique(block).tolist():
                chosen = block == b
                result[chosen] = self._signatures[b][rows[chosen] - offsets[b]]
            return result

        candidates: set[tuple[int, int]] = set()
        for band in range(BANDS):
            keys = np.concatenate([band_keys(block, band) for block in self._signatures])[index]
            candidate_pairs(keys, candidates, index)
            progress(0.1 + 0.5 * (band + 1) / BANDS, "Looking for near duplicates…")
        pairs = _verified(candidates, signature_rows, NEAR_THRESHOLD)
        best: dict[int, float] = {}
        for a, b, value in pairs:
            best[a] = max(best.get(a, 0.0), value)
            best[b] = max(best.get(b, 0.0), value)
        findings = []
        for cluster in _clusters([(a, b) for a, b, _ in pairs]):
            group = numbers[cluster].tolist()
            for i, number in zip(cluster[1:], group[1:]):
                findings.append(
                    Finding(
                        "DUP-NEAR",
                        "W",
                        number,
                        f"Row {number} is a near duplicate of row {group[0]} (Jaccard ≈ "
                        f"{best.get(i, NEAR_THRESHOLD):.2f}; cluster: rows {_rows_text(group)}).",
                        "Keep one of them, or make them genuinely different; the split keeps a cluster on one side.",
                    )
                )
        return findings

    def _conflicts(self) -> list[Finding]:
        """Same prompt (every turn but the final answer), different final answers."""
        table = np.concatenate(self._conflict) if self._conflict else np.zeros((0, 3), np.uint64)
        if len(table) < 2:
            return []
        order = np.lexsort((table[:, 0], table[:, 1]))  # by prompt, then row number
        prompts = table[order, 1]
        same = np.flatnonzero(prompts[1:] == prompts[:-1])
        findings = []
        if not len(same):
            return findings
        starts = same[np.r_[True, np.diff(same) > 1]]
        ends = same[np.r_[np.diff(same) > 1, True]] + 2
        for start, end in zip(starts.tolist(), ends.tolist()):
            group = table[order[start:end]]
            variants = len(set(group[:, 2].tolist()))
            if variants > 1:
                group_numbers = sorted(int(n) for n in group[:, 0].tolist())
                for number in group_numbers[1:]:
                    findings.append(
                        Finding(
                            "DUP-CONFLICT",
                            "I",
                            number,
                            f"Row {number} has the same prompt as row {group_numbers[0]} but a different answer "
                            f"({variants} different answers: rows {_rows_text(group_numbers)}).",
                            "Fine if the answers are equally good variations; otherwise keep the best one.",
                        )
                    )
        return findings

    def _distribution(self) -> list[Finding]:
        findings: list[Finding] = []
        chat = self.counts["chat_rows"]
        if not chat:
            return findings
        if self.systems:
            covered = sum(self.systems.values())
            top = "; ".join(f"{quote(prompt, 50)!r} ({count})" for prompt, count in self.systems.most_common(3))
            many = len(self.systems) > 50 and len(self.systems) > 0.2 * chat
            findings.append(
                Finding(
                    "DIST-SYSPROMPT",
                    "W" if many else "I",
                    None,
                    f"{len(self.systems)} distinct system prompt(s) cover {covered} of {chat} rows; top: {top}.",
                    (
                        "Many one-off system prompts teach the model to depend on them; use the same system prompt at "
                        "inference time as in training."
                    )
                    if many
                    else (
                        "Use the same system prompt at inference time as in training; rows without one get the "
                        "template's default (if any)."
                    ),
                )
            )
        answers = self.counts["answers"]
        if answers >= 20:
            hashes, counts = _sum_counts(self._openings)
            # 2-3 word openings over 5% of answers; a single word only over 20% (short words start many answers).
            common = []
            for value, count in zip(hashes.tolist(), counts.tolist()):
                if count >= 3 and value in self.opening_texts:
                    n, phrase = self.opening_texts[value]
                    if count / answers > (0.05 if n > 1 else 0.20):
                        common.append((n, phrase, count))
            shown = sorted(common, key=lambda item: (-item[2], -item[0]))[:3]
            if shown:
                text = "; ".join(f"{quote(phrase, 60)!r} starts {count / answers:.0%}" for _, phrase, count in shown)
                findings.append(
                    Finding(
                        "DIST-NGRAM",
                        "I",
                        None,
                        f"Answers often open the same way: {text} of the answers.",
                        "Fine if it is the style you want to teach (the model will copy it); otherwise vary the "
                        "openings.",
                    )
                )
        multi = self.counts["multi_turn"]
        findings.append(
            Finding(
                "DIST-TURNS",
                "I",
                None,
                f"{chat - multi} single-turn and {multi} multi-turn conversations.",
                "If users will hold multi-turn chats, include multi-turn examples.",
            )
        )
        return findings

    def _role_stats(self) -> list[Finding]:
        findings: list[Finding] = []
        chat = self.counts["chat_rows"]
        if not chat:
            return findings
        no_system, no_user = self.counts["no_system"], self.counts["no_user"]
        if no_system or no_user:
            findings.append(
                Finding(
                    "ROLE-MISSING-SYS-USER",
                    "I",
                    None,
                    f"{no_system} of {chat} rows have no system message; {no_user} have no user message.",
                    "Rows without a system message get the chat template's default system prompt, if it has one.",
                )
            )
        if self.counts["named"]:
            findings.append(
                Finding(
                    "ROLE-NAME",
                    "I",
                    None,
                    f"{self.counts['named']} rows use the 'name' field on messages.",
                    "Most chat templates ignore 'name'; put the speaker into the content if it matters.",
                )
            )
        if self.counts["weighted"]:
            findings.append(
                Finding(
                    "ROLE-WEIGHT",
                    "W",
                    None,
                    f"{self.counts['weighted']} rows set per-message 'weight'.",
                    "TRL ignores 'weight' unless the loss mask is built from it; weight-0 answers are still trained "
                    "otherwise.",
                )
            )
        return findings

    def _tool_drift(self) -> list[Finding]:
        drifting = sorted(name for name, variants in self.tools.items() if len(variants) > 1)
        if not drifting:
            return []
        return [
            Finding(
                "TOOL-DRIFT",
                "W",
                None,
                f"Tool definition(s) differ across rows: {', '.join(drifting[:6])}.",
                "Use one definition per tool everywhere, the same one you will use at inference time.",
            )
        ]

    def _think_mix(self) -> list[Finding]:
        with_think, without = self.counts["with_think"], self.counts["without_think"]
        if with_think and without:
            return [
                Finding(
                    "CONT-THINK",
                    "W",
                    None,
                    f"{with_think} answers contain <think> reasoning and {without} do not.",
                    "Be consistent: either every answer has a reasoning block or none has.",
                )
            ]
        return []


def _sum_counts(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    hashes = np.concatenate([h for h, _ in parts]) if parts else np.zeros(0, np.uint64)
    counts = np.concatenate([c for _, c in parts]) if parts else np.zeros(0, np.int64)
    unique, inverse = np.unique(hashes, return_inverse=True)
    return unique, np.bincount(inverse, weights=counts, minlength=len(unique)).astype(np.int64)


def size_findings(count: int, validation_rows: list[Row] | None, train_rows: list[Row] | None = None) -> list[Finding]:
    """DS-MIN, DS-NO-VAL / DS-LEAK and DS-EPOCHS for `count` rows that train (no E finding)."""
    findings = []
    if count < 10:
        findings.append(
            Finding(
                "DS-MIN",
                "E",
                None,
                f"Only {count} usable row(s); at least 10 are needed to fine-tune.",
                "Add more examples: 50-100 good ones is a practical minimum for a visible effect.",
            )
        )
    elif count < 50:
        findings.append(
            Finding(
                "DS-MIN",
                "W",
                None,
                f"Only {count} usable rows; fewer than 50 rarely gives a reliable change.",
                "Add more examples (50-100+), or try prompting first.",
            )
        )
    if validation_rows is None:
        findings.append(
            Finding(
                "DS-NO-VAL",
                "W",
                None,
                "There is no validation split, so overfitting cannot be seen during training.",
                "Hold out 5-10% of the rows for validation (the studio's Fix & split does this, keeping "
                "near-duplicates together).",
            )
        )
    elif validation_rows:
        findings += find_leaks(train_rows or [], validation_rows)
    if count:
        epochs = suggested_epochs(count)
        findings.append(
            Finding(
                "DS-EPOCHS",
                "I",
                None,
                f"Suggested epochs for {count} rows: {epochs} (about {epochs * count:,} training examples seen).",
                "OpenAI's rule of thumb: 3 epochs, more for small datasets, fewer for large ones; watch the "
                "validation loss.",
            )
        )
    return findings


# ---------------------------------------------------------------- on lists of rows (split and leak checks)


def duplicate_pairs(rows: list[Row]) -> list[tuple[int, int]]:
    """Index pairs of exact (row_key) or near duplicates (MinHash, Jaccard >= 0.85) among `rows`."""
    pairs = []
    first_of: dict[str, int] = {}
    for index, row in enumerate(rows):
        key = row_key(row)
        if key in first_of:
            pairs.append((first_of[key], index))
        else:
            first_of[key] = index
    if len(rows) >= 2:
        signatures, has_words = minhash_signatures([dedup_text(row) for row in rows])
        pairs += [(a, b) for a, b, _ in near_duplicate_pairs(signatures, has_words=has_words)]
    return pairs


def near_duplicate_clusters(rows: list[Row]) -> list[list[int]]:
    """Clusters of row numbers that are exact or near duplicates (for the train/validation split)."""
    return [[rows[i].number for i in cluster] for cluster in _clusters(duplicate_pairs(rows))]


def find_leaks(train_rows: list[Row], validation_rows: list[Row]) -> list[Finding]:
    """DS-LEAK: validation rows that are exact (E) or near (W) duplicates of a training row.
    Row numbers in the findings are the validation rows' numbers."""
    findings: list[Finding] = []
    train_keys = {}
    for row in train_rows:
        train_keys.setdefault(row_key(row), row.number)
    exact = set()
    for index, row in enumerate(validation_rows):
        match = train_keys.get(row_key(row))
        if match is not None:
            exact.add(index)
            findings.append(
                Finding(
                    "DS-LEAK",
                    "E",
                    row.number,
                    f"Validation row {row.number} is identical to training row {match}.",
                    "Remove it from one side: a leaked row makes the validation loss look better than it is.",
                )
            )
    if train_rows and validation_rows:
        everything = list(train_rows) + list(validation_rows)
        signatures, has_words = minhash_signatures([dedup_text(row) for row in everything])
        reported = set()
        for a, b, value in near_duplicate_pairs(signatures, has_words=has_words):
            if a < len(train_rows) <= b:
                index = b - len(train_rows)
                if index in exact or index in reported:
                    continue
                reported.add(index)
                findings.append(
                    Finding(
                        "DS-LEAK",
                        "W",
                        validation_rows[index].number,
                        f"Validation row {validation_rows[index].number} is a near duplicate of training row "
                        f"{train_rows[a].number} (Jaccard ≈ {value:.2f}).",
                        "Move near-duplicates to the same side of the split.",
                    )
                )
    return findings
