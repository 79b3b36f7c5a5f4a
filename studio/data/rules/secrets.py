"""Secrets in text (rule PII-SECRET): where they are, and the text with them masked.

    secret_spans(text) -> [SecretSpan(start, end, kind)]   # kind: "an AWS access key", …
    mask_secrets(text) -> text with every span replaced by MASK
    mask_record(value) -> a JSON-like value (dict/list/str) with every string masked

Three kinds of evidence:
  1. Known credential formats (AWS, GitHub, OpenAI/Anthropic, Slack tokens and webhooks, Hugging Face,
     Google API keys, Stripe live keys, JWTs, private-key blocks), anywhere, URLs included.
  2. A value assigned to a secret-like name (api_key=…, "token": "…", password: …, a password in a
     URL's user info, ?access_token=… in a query string): at least 16 characters with letters and
     digits, not a placeholder.
  3. A bare random-looking string: 32+ characters of the base64/URL-safe alphabet with upper case,
     lower case and digits, Shannon entropy > 4.5 bits per character, and frequent character-class
     switches (aB3x…); URL paths, data: URIs and file names (words, numbers and separators such as
     `wikipedia/commons/4/4f/Edgar_Degas_059`) are not secrets.
Findings and reports never quote a secret: callers say what kind it is and where, and mask it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

MASK = "[MASKED SECRET]"

KNOWN = re.compile(
    r"(?P<aws>\b(?:AKIA|ASIA)[0-9A-Z]{16}\b)"
    r"|(?P<github>\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}\b|\bgithub_pat_[A-Za-z0-9_]{40,}\b)"
    r"|(?P<openai>\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}\b)"
    r"|(?P<slack>\bxox[abposr]-[A-Za-z0-9-]{10,}\b)"
    r"|(?P<slack_webhook>\bhooks\.slack\.com/services/[A-Za-z0-9]+/[A-Za-z0-9]+/[A-Za-z0-9]{16,})"
    r"|(?P<hf>\bhf_[A-Za-z]{30,}\b)"
    r"|(?P<google>\bAIza[0-9A-Za-z_-]{35}\b)"
    r"|(?P<stripe>\b(?:sk|rk)_live_[0-9A-Za-z]{16,}\b)"
    r"|(?P<jwt>\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b)"
    r"|(?P<key>-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----(?:[\s\S]*?-----END (?:[A-Z]+ )?PRIVATE KEY-----|[\s\S]*))"
)
KNOWN_NAMES = {
    "aws": "an AWS access key",
    "github": "a GitHub token",
    "openai": "an API key (sk-…)",
    "slack": "a Slack token",
    "slack_webhook": "a Slack webhook URL",
    "hf": "a Hugging Face token",
    "google": "a Google API key",
    "stripe": "a Stripe live key",
    "jwt": "a JSON Web Token",
    "key": "a private key block",
}
# Every KNOWN match contains one of these: a cheap pre-scan (str.find) decides whether the regex runs at all
# ("_" stands for ghp_ … github_pat_, hf_ and _live_).
KNOWN_ANCHORS = ("AKIA", "ASIA", "_", "sk-", "xox", "hooks.slack.com", "AIza", "eyJ", "-----BEGIN")

# A secret-like name, then = or :, then the value (quotes optional). The name may be part of a longer
# identifier (AWS_SECRET_ACCESS_KEY, "client_secret", db_password).
ASSIGNMENT = re.compile(
    r"(?i)(?:api[_-]?key|apikey|secret|token|passw(?:or)?d|pwd|access[_-]?key|auth[_-]?key|credential|private[_-]?key)(?:s|[_-]?(?:key|token|value))?"
    r"[\"']?\s*(?:=>|[:=])\s*[\"']?(?P<value>[A-Za-z0-9+/_=.~-]{16,})"
)
# Lower-cased literals that every ASSIGNMENT match contains (the pre-scan's gate).
ASSIGNMENT_LITERALS = ("key", "secret", "token", "passw", "pwd", "credential")
URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@]+:(?P<value>[^/\s@]{8,})@")
PLACEHOLDER_VALUE = re.compile(r"(?i)your|example|xxxx|placeholder|changeme|dummy|redacted|here|\*\*\*|<|>|\$|\{|\}")

CANDIDATE = re.compile(r"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_=-]{32,}(?![A-Za-z0-9+/_=-])")
URL = re.compile(r"\b(?:[a-z][a-z0-9+.-]*://|www\.)[^\s<>\"'`)\]}]+|\bdata:[\w/+.-]+;base64,[A-Za-z0-9+/=]+", re.I)
MIN_ENTROPY = 4.5  # bits per character of a bare candidate (random base62 of 32+ characters: ~4.8-5.2)
MIN_SWITCHES = 0.25  # character-class switches per character (random base62: ~0.6; words and paths: < 0.15)
MIN_VALUE_ENTROPY = 3.0  # an assigned value (hex secrets included: ~3.7-4.0)
_SEPARATORS = re.compile(r"[/+_=.-]+")


@dataclass(frozen=True)
class SecretSpan:
    start: int
    end: int
    kind: str


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    if not text:
        return 0.0
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _class(char: str) -> int:
    return 0 if char.islower() else 1 if char.isupper() else 2 if char.isdigit() else 3


def class_switches(text: str) -> float:
    """Switches between lower case, upper case and digits per character, within separator-free pieces.
    Random tokens switch all the time (aB3xQ…); words, numbers and file names rarely do."""
    switches = 0
    for piece in _SEPARATORS.split(text):
        switches += sum(1 for a, b in zip(piece, piece[1:]) if _class(a) != _class(b))
    return switches / max(1, len(text))


def looks_random(candidate: str) -> bool:
    """A bare 32+ character string that looks like a key: mixed case and digits, high entropy, no word structure."""
    return (
        any(c.isdigit() for c in candidate)
        and any(c.isupper() for c in candidate)
        and any(c.islower() for c in candidate)
        and entropy(candidate) > MIN_ENTROPY
        and class_switches(candidate) >= MIN_SWITCHES
    )


def _secret_value(value: str) -> bool:
    value = value.rstrip(".")
    return (
        len(value) >= 16
        and any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
        and not PLACEHOLDER_VALUE.search(value)
        and not (value.upper() == value and "_" in value)
        and entropy(value) >= MIN_VALUE_ENTROPY
    )


def secret_spans(text: str, known: bool = True, assigned: bool = True, generic: bool = True) -> list[SecretSpan]:
    """Every secret in `text`, in order, without overlaps. The flags let a caller skip kinds its pre-scan ruled out."""
    spans: list[SecretSpan] = []
    if known:
        spans += [SecretSpan(m.start(), m.end(), KNOWN_NAMES[m.lastgroup]) for m in KNOWN.finditer(text)]
    if assigned:
        for match in ASSIGNMENT.finditer(text):
            if _secret_value(match.group("value")):
                spans.append(
                    SecretSpan(
                        match.start("value"),
                        match.start("value") + len(match.group("value").rstrip(".")),
                        "a secret assigned to a key, token or password name",
                    )
                )
        if "://" in text:
            spans += [
                SecretSpan(m.start("value"), m.end("value"), "a password in a URL")
                for m in URL_PASSWORD.finditer(text)
                if any(c.isdigit() for c in m.group("value"))
            ]
    if generic:
        urls = [(m.start(), m.end()) for m in URL.finditer(text)] if ("/" in text or ":" in text) else []
        for match in CANDIDATE.finditer(text):
            if any(start <= match.start() < end for start, end in urls):
                continue  # URL paths and data: URIs are addresses and content, not credentials
            if looks_random(match.group(0)):
                spans.append(
                    SecretSpan(match.start(), match.end(), "a high-entropy string that looks like a key or token")
                )
    return _without_overlaps(spans)


def _without_overlaps(spans: list[SecretSpan]) -> list[SecretSpan]:
    kept: list[SecretSpan] = []
    for span in sorted(spans, key=lambda s: (s.start, -(s.end - s.start))):
        if kept and span.start < kept[-1].end:
            if span.end > kept[-1].end:
                kept[-1] = SecretSpan(kept[-1].start, span.end, kept[-1].kind)
            continue
        kept.append(span)
    return kept


def mask_secrets(text: str) -> str:
    """The text with every secret replaced by MASK."""
    spans = secret_spans(text)
    if not spans:
        return text
    parts, position = [], 0
    for span in spans:
        parts += [text[position : span.start], MASK]
        position = span.end
    parts.append(text[position:])
    return "".join(parts)


def mask_record(value: Any) -> Any:
    """A copy of a parsed JSON value (dicts, lists, strings, …) with secrets masked in every string."""
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {mask_record(key) if isinstance(key, str) else key: mask_record(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_record(item) for item in value]
    return value


def mask_row(row):
    """A copy of a linted row with every secret in its messages (or text) replaced by the mask."""
    return dataclasses.replace(
        row,
        messages=mask_record(row.messages) if row.messages is not None else None,
        text=mask_record(row.text) if row.text is not None else None,
    )


def quote(text: str, limit: int) -> str:
    """A short excerpt of `text` for a message: secrets masked first, then cut to `limit` characters."""
    return mask_secrets(text)[:limit]
