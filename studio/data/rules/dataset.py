"""Dataset-level rules: size and splits (I), duplicates (DUP-*), distribution (DIST-*) and the
dataset-wide parts of C, D and F (ROLE-MISSING-SYS-USER, ROLE-NAME, ROLE-WEIGHT, CONT-THINK, TOOL-DRIFT).

Near duplicates: MinHash over word 5-grams (lower-cased, punctuation removed), computed with numpy for all rows at once (64
permutations), then LSH banding (band sizes from datasketch's optimiser for the threshold) and
a check of each candidate pair's estimated Jaccard similarity >= 0.85.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from zlib import crc32
from collections import Counter, defaultdict

import numpy as np

from studio.data.records import Finding, Row
from studio.data.rules.secrets import quote

NEAR_THRESHOLD = 0.85
# Near-duplicate shingles ignore case, punctuation and spacing: "What's 2+2?" and "whats 2 2" are the same words.
_PUNCTUATION_TO_SPACE = str.maketrans({char: " " for char in string.punctuation + "“”‘’«»„…–—¿¡·•"})
NUM_PERM = 64
_SPACE = re.compile(r"\s+")
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def normalise(text: str) -> str:
    """NFC + collapsed whitespace (ASCII text is already NFC: skip the normaliser)."""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


def row_key(row: Row) -> str:
    """The row's content, normalised (NFC, collapsed whitespace): equal keys = exact duplicates."""
    if row.messages:
        return "\x1e".join(f"{m.get('role')}\x1f{normalise(m['content']) if isinstance(m.get('content'), str) else ''}"
                           f"{json.dumps(m.get('tool_calls'), sort_keys=True) if m.get('tool_calls') else ''}" for m in row.messages)
    return normalise(row.text or "")


DEDUP_MAX_CHARS = 200_000  # MinHash of a huge row on its first 200k characters keeps one giant row from dominating


def dedup_text(row: Row) -> str:
    """Text compared for near duplicates: user and assistant turns (a shared system prompt would make all rows look alike)."""
    if row.messages:
        text = " ".join(m["content"] for m in row.messages if m.get("role") != "system" and isinstance(m.get("content"), str))
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
_MULTIPLIERS = _mix(_SEEDS) | np.uint64(1)  # odd: multiplication is a bijection on 64-bit integers


def minhash_signatures(texts: list[str], shingle: int = 5, chunk_rows: int = 20000) -> np.ndarray:
    """(len(texts), NUM_PERM) uint64 MinHash signatures over lower-cased word `shingle`-grams."""
    signatures = np.empty((len(texts), NUM_PERM), dtype=np.uint64)
    multipliers = _mix(np.arange(100, 100 + shingle, dtype=np.uint64))
    # Word ids from one vocabulary (C-speed dict lookups), then hashed: stable across processes for the
    # same input, unlike Python's salted str hash.
    vocabulary: dict[str, int] = defaultdict()
    vocabulary.default_factory = vocabulary.__len__
    for start in range(0, len(texts), chunk_rows):
        chunk = texts[start:start + chunk_rows]
        words_all: list[str] = []
        lengths = []
        padding = [""] * shingle
        for text in chunk:
            words = text.lower().translate(_PUNCTUATION_TO_SPACE).split()
            if len(words) < shingle:
                words += padding[: shingle - len(words)]
            words_all += words
            lengths.append(len(words))
        ids = np.fromiter(map(vocabulary.__getitem__, words_all), dtype=np.uint64, count=len(words_all))
        del words_all
        words_array = _mix(ids * np.uint64(0x9E3779B97F4A7C15) + np.uint64(crc32(b"studio")))
        lengths_array = np.array(lengths)
        ends = np.cumsum(lengths_array)
        starts = ends - lengths_array
        count = len(words_array) - shingle + 1
        with np.errstate(over="ignore"):
            combined = np.zeros(count, dtype=np.uint64)
            for k in range(shingle):
                combined = (combined ^ words_array[k:k + count]) * multipliers[k]
        # keep shingles that start inside a row and end inside the same row
        valid = np.ones(count, dtype=bool)
        for k in range(1, shingle):
            boundary = ends - k  # a shingle starting here would cross into the next row
            boundary = boundary[boundary < count]
            valid[boundary] = False
        positions = np.nonzero(valid)[0]
        shingles = _mix(combined[positions])
        row_of = np.searchsorted(ends, positions, side="right")
        row_starts = np.searchsorted(row_of, np.arange(len(chunk)))
        with np.errstate(over="ignore"):
            for j in range(NUM_PERM):
                # one cheap xor-multiply permutation per signature column (the shingle hashes are already mixed)
                hashed = (shingles ^ _SEEDS[j]) * _MULTIPLIERS[j]
                signatures[start:start + len(chunk), j] = np.minimum.reduceat(hashed, row_starts)
        del starts
    return signatures


def _lsh_params() -> tuple[int, int]:
    """16 bands of 4 rows: a pair at Jaccard 0.85 becomes a candidate with probability ~1 - (1 - 0.85^4)^16 > 0.999.
    (datasketch's optimiser gives 4 x 15 for 64 permutations, which misses ~40% of pairs at 0.9.)
    Candidates are then checked on the full signature, so false candidates cost little."""
    return 16, 4


def near_duplicate_pairs(signatures: np.ndarray, threshold: float = NEAR_THRESHOLD) -> list[tuple[int, int, float]]:
    """Index pairs (i < j) whose estimated Jaccard similarity is >= threshold, via LSH banding."""
    if len(signatures) < 2:
        return []
    bands, band_rows = _lsh_params()
    candidates: set[tuple[int, int]] = set()
    for band in range(bands):
        columns = signatures[:, band * band_rows:(band + 1) * band_rows]
        keys = np.zeros(len(signatures), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for column in range(columns.shape[1]):
                keys = _mix(keys ^ columns[:, column])
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        same = np.nonzero(sorted_keys[1:] == sorted_keys[:-1])[0]
        if not len(same):
            continue
        # group runs of equal keys
        run_start = None
        previous = -2
        for position in same.tolist():
            if position != previous + 1:
                if run_start is not None:
                    _add_run(order[run_start:previous + 2], candidates)
                run_start = position
            previous = position
        _add_run(order[run_start:previous + 2], candidates)
    pairs = []
    for i, j in candidates:
        similarity = float(np.mean(signatures[i] == signatures[j]))
        if similarity >= threshold:
            pairs.append((i, j, similarity))
    return sorted(pairs)


def _add_run(members: np.ndarray, candidates: set[tuple[int, int]]) -> None:
    members = sorted(members.tolist())
    if len(members) > 200:  # a huge bucket = many identical rows; chain them instead of all pairs
        candidates.update((members[k], members[k + 1]) for k in range(len(members) - 1))
        return
    for a in range(len(members)):
        for b in range(a + 1, len(members)):
            candidates.add((members[a], members[b]))


def _clusters(pairs: list[tuple[int, int]], size: int) -> list[list[int]]:
    parent = list(range(size))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = defaultdict(list)
    for a, b in pairs:
        groups[find(a)]
    for index in {x for pair in pairs for x in pair}:
        groups[find(index)].append(index)
    return [sorted(set(members)) for members in groups.values() if len(set(members)) > 1]


# ---------------------------------------------------------------- the rules

def _rows_text(numbers: list[int], limit: int = 8) -> str:
    return ", ".join(map(str, numbers[:limit])) + ("…" if len(numbers) > limit else "")


def check_dataset(rows: list[Row], usable: list[Row], validation_rows: list[Row] | None = None, progress=None) -> list[Finding]:
    progress = progress or (lambda fraction, message: None)
    findings: list[Finding] = []
    findings += _size_rules(usable, validation_rows)
    chat = [row for row in usable if row.messages]
    progress(0.0, "Looking for exact and near duplicates…")
    keys = [row_key(row) for row in usable]  # normalised once, used by the duplicate and conflict rules
    findings += _duplicate_rules(usable, keys)
    key_of = {id(row): key for row, key in zip(usable, keys)}
    findings += _conflict_rule(chat, [key_of[id(row)] for row in chat])
    progress(0.5, "Checking roles, tools and the distribution of prompts and answers…")
    findings += _distribution_rules(chat)
    findings += _role_stats(chat)
    findings += _tool_drift(chat)
    findings += _think_mix(chat)
    progress(0.6, "Identifying languages…")
    from studio.data.rules.language import check_languages

    findings += check_languages(chat)
    return findings


def _size_rules(usable: list[Row], validation_rows: list[Row] | None) -> list[Finding]:
    from studio.data.lint import suggested_epochs

    findings = []
    count = len(usable)
    if count < 10:
        findings.append(Finding("DS-MIN", "E", None, f"Only {count} usable row(s); at least 10 are needed to fine-tune.",
                                "Add more examples: 50-100 good ones is a practical minimum for a visible effect."))
    elif count < 50:
        findings.append(Finding("DS-MIN", "W", None, f"Only {count} usable rows; fewer than 50 rarely gives a reliable change.",
                                "Add more examples (50-100+), or try prompting first."))
    if validation_rows is None:
        findings.append(Finding("DS-NO-VAL", "W", None, "There is no validation split, so overfitting cannot be seen during training.",
                                "Hold out 5-10% of the rows for validation (the studio's Fix & split does this, keeping near-duplicates together)."))
    elif validation_rows:
        findings += find_leaks(usable, validation_rows)
    if count:
        epochs = suggested_epochs(count)
        findings.append(Finding("DS-EPOCHS", "I", None, f"Suggested epochs for {count} rows: {epochs} (about {epochs * count:,} training examples seen).",
                                "OpenAI's rule of thumb: 3 epochs, more for small datasets, fewer for large ones; watch the validation loss."))
    return findings


def _duplicate_rules(usable: list[Row], keys: list[str]) -> list[Finding]:
    findings: list[Finding] = []
    groups: dict[str, list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        groups[key].append(index)
    exact_group = {}
    for members in groups.values():
        if len(members) > 1:
            numbers = [usable[i].number for i in members]
            for i in members:
                exact_group[i] = members[0]
            for i in members[1:]:
                findings.append(Finding("DUP-EXACT", "W", usable[i].number,
                                        f"Row {usable[i].number} duplicates row {numbers[0]} (cluster of {len(numbers)}: rows {_rows_text(numbers)}).",
                                        "The fix keeps the first copy and removes the others; duplicates over-weight those examples."))
    # Near duplicates among the distinct rows.
    distinct = [i for i in range(len(usable)) if exact_group.get(i, i) == i]
    if len(distinct) >= 2:
        signatures = minhash_signatures([dedup_text(usable[i]) for i in distinct])
        pairs = near_duplicate_pairs(signatures)
        similarity = {}
        for a, b, value in pairs:
            similarity[(a, b)] = value
        for cluster in _clusters([(a, b) for a, b, _ in pairs], len(distinct)):
            numbers = [usable[distinct[i]].number for i in cluster]
            for i in cluster[1:]:
                value = max((v for (a, b), v in similarity.items() if i in (a, b) and (a in cluster and b in cluster)), default=NEAR_THRESHOLD)
                findings.append(Finding("DUP-NEAR", "W", usable[distinct[i]].number,
                                        f"Row {usable[distinct[i]].number} is a near duplicate of row {numbers[0]} (Jaccard ≈ {value:.2f}; cluster: rows {_rows_text(numbers)}).",
                                        "Keep one of them, or make them genuinely different; the split keeps a cluster on one side."))
    return findings


def near_duplicate_clusters(rows: list[Row]) -> list[list[int]]:
    """Clusters of row numbers that are exact or near duplicates (for the train/validation split)."""
    keys = [row_key(row) for row in rows]
    pairs = []
    first_of: dict[str, int] = {}
    for index, key in enumerate(keys):
        if key in first_of:
            pairs.append((first_of[key], index))
        else:
            first_of[key] = index
    if len(rows) >= 2:
        signatures = minhash_signatures([dedup_text(row) for row in rows])
        pairs += [(a, b) for a, b, _ in near_duplicate_pairs(signatures)]
    return [[rows[i].number for i in cluster] for cluster in _clusters(pairs, len(rows))]


def find_leaks(train_rows: list[Row], validation_rows: list[Row]) -> list[Finding]:
    findings: list[Finding] = []
    train_keys = {}
    for row in train_rows:
        train_keys.setdefault(row_key(row), row.number)
    exact = set()
    for index, row in enumerate(validation_rows):
        match = train_keys.get(row_key(row))
        if match is not None:
            exact.add(index)
            findings.append(Finding("DS-LEAK", "E", row.number, f"Validation row {row.number} is identical to training row {match}.",
                                    "Remove it from one side: a leaked row makes the validation loss look better than it is."))
    if train_rows and validation_rows:
        everything = list(train_rows) + list(validation_rows)
        signatures = minhash_signatures([dedup_text(row) for row in everything])
        reported = set()
        for a, b, value in near_duplicate_pairs(signatures):
            if a < len(train_rows) <= b:
                index = b - len(train_rows)
                if index in exact or index in reported:
                    continue
                reported.add(index)
                findings.append(Finding("DS-LEAK", "W", validation_rows[index].number,
                                        f"Validation row {validation_rows[index].number} is a near duplicate of training row {train_rows[a].number} (Jaccard ≈ {value:.2f}).",
                                        "Move near-duplicates to the same side of the split."))
    return findings


def _conflict_rule(chat: list[Row], keys: list[str]) -> list[Finding]:
    """Same prompt (every turn but the final answer), different final answers."""
    answers: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for row, key in zip(chat, keys):
        if row.messages[-1].get("role") != "assistant" or "\x1e" not in key:
            continue
        prompt, answer = key.rsplit("\x1e", 1)
        answers[prompt][answer].append(row.number)
    findings = []
    for variants in answers.values():
        if len(variants) > 1:
            numbers = sorted(n for group in variants.values() for n in group)
            for number in numbers[1:]:
                findings.append(Finding("DUP-CONFLICT", "I", number,
                                        f"Row {number} has the same prompt as row {numbers[0]} but a different answer ({len(variants)} different answers: rows {_rows_text(numbers)}).",
                                        "Fine if the answers are equally good variations; otherwise keep the best one."))
    return findings


def _first_answer(row: Row) -> str | None:
    for message in row.messages or []:
        if message.get("role") == "assistant" and isinstance(message.get("content"), str) and message["content"].strip():
            return message["content"]
    return None


def _distribution_rules(chat: list[Row]) -> list[Finding]:
    findings: list[Finding] = []
    if not chat:
        return findings
    systems = Counter()
    without = 0
    for row in chat:
        prompts = [m["content"] for m in row.messages if m.get("role") == "system" and isinstance(m.get("content"), str)]
        if prompts:
            systems[normalise(prompts[0])] += 1
        else:
            without += 1
    if systems:
        top = "; ".join(f"{quote(prompt, 50)!r} ({count})" for prompt, count in systems.most_common(3))
        many = len(systems) > 50 and len(systems) > 0.2 * len(chat)
        findings.append(Finding("DIST-SYSPROMPT", "W" if many else "I", None,
                                f"{len(systems)} distinct system prompt(s) cover {len(chat) - without} of {len(chat)} rows; top: {top}.",
                                "Many one-off system prompts teach the model to depend on them; use the same system prompt at inference time as in training."
                                if many else "Use the same system prompt at inference time as in training; rows without one get the template's default (if any)."))
    openings: Counter = Counter()
    answers = 0
    for row in chat:
        answer = _first_answer(row)
        if answer:
            answers += 1
            words = answer.split(None, 3)[:3]
            for n in (3, 2, 1):
                if len(words) >= n:
                    openings[(n, " ".join(words[:n]))] += 1
    if answers >= 20:
        # 2-3 word openings over 5% of answers; a single word only over 20% (short words start many answers).
        common = sorted(((n, phrase, count) for (n, phrase), count in openings.items()
                         if count >= 3 and count / answers > (0.05 if n > 1 else 0.20)), key=lambda item: (-item[2], -item[0]))
        shown = common[:3]
        if shown:
            text = "; ".join(f"{quote(phrase, 60)!r} starts {count / answers:.0%}" for _, phrase, count in shown)
            findings.append(Finding("DIST-NGRAM", "I", None, f"Answers often open the same way: {text} of the answers.",
                                    "Fine if it is the style you want to teach (the model will copy it); otherwise vary the openings."))
    turns = Counter("multi" if sum(1 for m in row.messages if m.get("role") == "assistant") > 1 else "single" for row in chat)
    findings.append(Finding("DIST-TURNS", "I", None, f"{turns['single']} single-turn and {turns['multi']} multi-turn conversations.",
                            "If users will hold multi-turn chats, include multi-turn examples."))
    return findings


def _role_stats(chat: list[Row]) -> list[Finding]:
    findings: list[Finding] = []
    if not chat:
        return findings
    no_system = sum(1 for row in chat if not any(m.get("role") == "system" for m in row.messages))
    no_user = sum(1 for row in chat if not any(m.get("role") == "user" for m in row.messages))
    if no_system or no_user:
        findings.append(Finding("ROLE-MISSING-SYS-USER", "I", None,
                                f"{no_system} of {len(chat)} rows have no system message; {no_user} have no user message.",
                                "Rows without a system message get the chat template's default system prompt, if it has one."))
    named = sum(1 for row in chat if any("name" in m for m in row.messages))
    if named:
        findings.append(Finding("ROLE-NAME", "I", None, f"{named} rows use the 'name' field on messages.",
                                "Most chat templates ignore 'name'; put the speaker into the content if it matters."))
    weighted = sum(1 for row in chat if any("weight" in m for m in row.messages))
    if weighted:
        findings.append(Finding("ROLE-WEIGHT", "W", None, f"{weighted} rows set per-message 'weight'.",
                                "TRL ignores 'weight' unless the loss mask is built from it; weight-0 answers are still trained otherwise."))
    return findings


def _tool_drift(chat: list[Row]) -> list[Finding]:
    definitions: dict[str, set[str]] = defaultdict(set)
    for row in chat:
        tools = row.extra.get("tools")
        if isinstance(tools, list):
            for tool in tools:
                if isinstance(tool, dict):
                    function = tool.get("function", tool)
                    name = function.get("name") if isinstance(function, dict) else None
                    if isinstance(name, str):
                        definitions[name].add(json.dumps(tool, sort_keys=True))
    drifting = sorted(name for name, variants in definitions.items() if len(variants) > 1)
    if not drifting:
        return []
    return [Finding("TOOL-DRIFT", "W", None, f"Tool definition(s) differ across rows: {', '.join(drifting[:6])}.",
                    "Use one definition per tool everywhere, the same one you will use at inference time.")]


def _think_mix(chat: list[Row]) -> list[Finding]:
    with_think = without = 0
    for row in chat:
        for message in row.messages:
            if message.get("role") == "assistant" and isinstance(message.get("content"), str) and message["content"].strip():
                if "<think>" in message["content"]:
                    with_think += 1
                else:
                    without += 1
    if with_think and without:
        return [Finding("CONT-THINK", "W", None, f"{with_think} answers contain <think> reasoning and {without} do not.",
                        "Be consistent: either every answer has a reasoning block or none has.")]
    return []
