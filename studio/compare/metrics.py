"""Small, dependency-free text metrics: ROUGE-L F1, chrF, a repetition score, and the dataset's style marker.

Implemented here (no downloads): ROUGE-L compares word sequences by their longest common
subsequence; chrF compares character n-grams (n = 1..6, beta = 2, as in sacrebleu's default);
the repetition score is the share of an answer's word 3-grams that repeat an earlier one.
"""

from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    return _WORD.findall((text or "").lower())


def _lcs_length(a: list[str], b: list[str]) -> int:
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for item in a:
        current = [0]
        for j, other in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if item == other else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 over lower-cased words, 0..1."""
    cand, ref = words(candidate), words(reference)
    lcs = _lcs_length(cand, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(cand), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def _char_ngrams(text: str, n: int) -> Counter:
    text = re.sub(r"\s+", "", text or "")  # chrF ignores whitespace
    return Counter(text[i : i + n] for i in range(len(text) - n + 1))


def chrf(candidate: str, reference: str, max_n: int = 6, beta: float = 2.0) -> float:
    """chrF (character n-gram F-score, recall weighted by beta), 0..1; averaged over the n that occur."""
    precisions, recalls = [], []
    for n in range(1, max_n + 1):
        cand, ref = _char_ngrams(candidate, n), _char_ngrams(reference, n)
        if not cand or not ref:
            continue
        overlap = sum((cand & ref).values())
        precisions.append(overlap / sum(cand.values()))
        recalls.append(overlap / sum(ref.values()))
    if not precisions:
        return 0.0
    precision, recall = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    if precision == 0 and recall == 0:
        return 0.0
    return (1 + beta**2) * precision * recall / (beta**2 * precision + recall)


# ---- repetition: answers that loop ("a fleeting moment of beauty" × N) ----

REPETITION_NGRAM = 3
LOOPING = 0.3  # from this repetition score on, an answer counts as repeating itself
_MIN_WORDS = 8  # shorter answers cannot loop in any way worth flagging


def repetition(text: str, n: int = REPETITION_NGRAM) -> float:
    """Share of the answer's word n-grams that already occurred earlier in it, 0..1.

    Ordinary prose scores near 0 (a long answer reuses a few phrases); one sentence said twice
    scores about 0.45, a phrase looped to the token limit close to 1.
    """
    tokens = words(text)
    if len(tokens) < max(_MIN_WORDS, n + 1):
        return 0.0
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1 - len(set(grams)) / len(grams)


def is_looping(text: str) -> bool:
    return repetition(text) >= LOOPING


# ---- style marker: a prefix/suffix most reference answers share, e.g. "Ahoy!" … "— Captain Byte" ----


def detect_style_marker(references: list[str], min_share: float = 0.8, min_length: int = 3) -> dict:
    """The prefix and suffix that at least `min_share` of the references carry: {"prefix", "suffix"} ("" if none).

    Looks for the longest word-aligned prefix (suffix) shared by the majority, so one odd answer
    does not hide the pattern.
    """
    texts = [(text or "").strip() for text in references if (text or "").strip()]
    if len(texts) < 3:
        return {"prefix": "", "suffix": ""}

    def best(candidates_from) -> str:
        counts = Counter()
        for text in texts:
            for candidate in candidates_from(text):
                counts[candidate] += 1
        needed = min_share * len(texts)
        shared = [c for c, count in counts.items() if count >= needed and len(c.strip()) >= min_length]
        return max(shared, key=len, default="")

    def prefixes(text: str):
        tokens = text.split(" ")
        return {" ".join(tokens[:k]) for k in range(1, min(len(tokens), 8) + 1) if k < len(tokens)}

    def suffixes(text: str):
        tokens = text.split(" ")
        return {" ".join(tokens[-k:]) for k in range(1, min(len(tokens), 8) + 1) if k < len(tokens)}

    prefix, suffix = best(prefixes), best(suffixes)
    return {"prefix": prefix.strip(), "suffix": suffix.strip()}


def carries_marker(text: str, marker: dict) -> bool:
    """True when the answer has the marker's prefix and suffix (whichever are set)."""
    text = (text or "").strip()
    if not marker.get("prefix") and not marker.get("suffix"):
        return False
    if marker.get("prefix") and not text.startswith(marker["prefix"]):
        return False
    if marker.get("suffix") and not text.endswith(marker["suffix"]):
        return False
    return True
