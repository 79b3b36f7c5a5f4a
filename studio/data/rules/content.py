"""Per-row content (D), Unicode (E) and privacy (J: PII-CONTACT, PII-SECRET) rules.

Written for speed: each message runs a handful of compiled regexes that usually find nothing;
the expensive checks (ftfy, repetition statistics) only run when a cheap pre-check hits.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter

from studio.data.records import Finding, Row
from studio.data.rules import secrets
from studio.data.rules.secrets import quote

PLACEHOLDER = re.compile(
    r"<nooutput>|^\s*N/?A\.?\s*$|\[(?:Your|Insert|Enter|Add|Company|Name|Date|Placeholder)\b[^\]\n]{0,40}\]|\bTODO\b|"
    r"\bTBD\b|\{\{\s*[\w.]+\s*\}\}|lorem ipsum",
    re.I | re.M,
)
REFUSAL = re.compile(
    r"^(?:I'm sorry,? but |I am sorry,? but |Sorry,? but )?(?:as an AI(?: language model)?|as a language model|"
    r"I cannot (?:help|assist|provide|fulfil|fulfill|comply)|I can't (?:help|assist|provide|comply)|"
    r"I'm unable to (?:help|assist|provide)|I am unable to (?:help|assist|provide)|I'm not able to (?:help|assist|"
    r"provide))",
    re.I,
)
THINK = re.compile(r"</?think>")
GENERIC_SPECIALS = (
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "[INST]",
    "[/INST]",
    "<s>",
    "</s>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<|user|>",
    "<|assistant|>",
    "<|system|>",
    "<|end|>",
)
# Cheap gate for all Unicode checks: anything that is not printable ASCII or \t\n\r.
NON_PLAIN = re.compile(r"[^\t\n\r\x20-\x7e]")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")
SURROGATE = re.compile(r"[\ud800-\udfff]")
MOJIBAKE_HINT = re.compile(
    r"[\u00c2\u00c3\u00c5\u00e2\u00ef\u00f0][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
)

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
PHONE = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,4}(?![\w])"  # international: +44 20 7946 0958
    r"|(?<![\w])\(\d{3}\) ?\d{3}[ .-]\d{4}(?![\w])"  # (555) 123-4567
    r"|(?<![\w.-])\d{3}[.-]\d{3}[.-]\d{4}(?![\w.-])"
)  # 555-123-4567
IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_QUICK_PII = re.compile(r"@|\d[\d .-]{6,}\d|[A-Z]{2}\d\d|\d\.\d")


def special_strings_default() -> tuple[str, ...]:
    return GENERIC_SPECIALS


def _f(rule: str, severity: str, row: Row, message: str, hint: str) -> Finding:
    return Finding(rule, severity, row.number, message, hint)


def _texts(row: Row) -> list[tuple[str, str, int]]:
    """(role, text, message index) for every message with string content, or the plain text."""
    if row.messages:
        return [
            (str(m.get("role")), m["content"], i)
            for i, m in enumerate(row.messages, 1)
            if isinstance(m.get("content"), str)
        ]
    if isinstance(row.text, str):
        return [("text", row.text, 0)]
    return []


# Bits of the cheap dataset-wide pre-scan: a message only runs the regexes whose bit is set.
UNICODE, DIGITS, SECRETS, EMAIL_BIT, PLACEHOLDERS, SPECIALS, SECRET_WORDS, ALL = 1, 2, 4, 8, 16, 32, 64, 127
PLACEHOLDER_LITERALS = ("n/a", "todo", "tbd", "{{", "lorem ipsum")  # and "<", "[" (with the specials), short texts
_DIGIT = re.compile(r"[0-9]")  # other Unicode digits only occur in texts the NON_PLAIN scan flags


def _flag_hits(
    big: str, starts: list[int], flags: list[int], bit: int, literal: str | None = None, pattern=None
) -> None:
    """Set `bit` on every text that contains `literal` (str.find) or matches `pattern`; one search per hit text."""
    from bisect import bisect_right

    position, count = 0, len(starts)
    while True:
        if literal is not None:
            found = big.find(literal, position)
        else:
            match = pattern.search(big, position)
            found = match.start() if match else -1
        if found < 0:
            return
        index = bisect_right(starts, found) - 1
        flags[index] |= bit
        if index + 1 >= count:
            return
        position = starts[index + 1]


def _anchors(literals) -> list[str]:
    """Search strings that cover every literal: "<" and "[" stand for all literals that start with them."""
    return sorted({literal[0] if literal[0] in "<[" else literal for literal in literals if literal})


def prescan(texts: list[str], special_strings: tuple[str, ...]) -> list[int]:
    """Flags per text from a few C-speed scans over all texts joined (much faster than regexes per message).
    A flag only says a check may fire: each check still runs its exact pattern on the flagged texts."""
    flags = [
        PLACEHOLDERS if len(text) < 8 else 0 for text in texts
    ]  # "NA", "N/A." …: a whole-text placeholder is short
    if not texts:
        return flags
    separator = "\n\n"
    starts, position = [], 0
    for text in texts:
        starts.append(position)
        position += len(text) + len(separator)
    big = separator.join(texts)
    _flag_hits(
        big, starts, flags, UNICODE | DIGITS, pattern=NON_PLAIN
    )  # Unicode digits match the \d of the PII patterns
    _flag_hits(big, starts, flags, DIGITS, pattern=_DIGIT)
    _flag_hits(big, starts, flags, EMAIL_BIT, literal="@")
    for literal in secrets.KNOWN_ANCHORS:
        _flag_hits(big, starts, flags, SECRETS, literal=literal)
    for literal in _anchors(special_strings) + ["<", "["]:  # "<nooutput>" and "[Your Name]" are placeholders too
        _flag_hits(big, starts, flags, SPECIALS | PLACEHOLDERS if literal in "<[" else SPECIALS, literal=literal)
    lowered = big.lower()
    if len(lowered) == len(big):
        for literal in PLACEHOLDER_LITERALS:
            _flag_hits(lowered, starts, flags, PLACEHOLDERS, literal=literal)
        for literal in secrets.ASSIGNMENT_LITERALS:
            _flag_hits(lowered, starts, flags, SECRET_WORDS, literal=literal)
    else:  # lower() changed lengths (rare Unicode): positions would not map, so check every text
        flags = [flag | PLACEHOLDERS | SECRET_WORDS for flag in flags]
    return flags


def check_rows(rows: list[Row], special_strings: tuple[str, ...] = GENERIC_SPECIALS, progress=None) -> list[Finding]:
    """Content, Unicode and privacy findings for many rows (the fast path used by lint_rows)."""
    items = [(row, _texts(row)) for row in rows]
    flags = prescan([text for _, texts in items for _, text, _ in texts], special_strings)
    findings: list[Finding] = []
    position = 0
    for number, (row, texts) in enumerate(items):
        findings += check_row(row, special_strings, flags[position : position + len(texts)], texts)
        position += len(texts)
        if progress and number % 5000 == 4999:
            progress(number / len(items), f"Checked the content of {number + 1:,} of {len(items):,} rows…")
    return findings


def check_row(
    row: Row,
    special_strings: tuple[str, ...] = GENERIC_SPECIALS,
    flags: list[int] | None = None,
    texts: list[tuple[str, str, int]] | None = None,
) -> list[Finding]:
    """The content findings of one row; `flags` from prescan and `texts` from _texts(row) when the caller has them."""
    findings: list[Finding] = []
    seen: set[str] = set()  # one finding per rule per row (the message names the first place)

    def add(rule: str, severity: str, message: str, hint: str) -> None:
        if rule not in seen:
            seen.add(rule)
            findings.append(_f(rule, severity, row, message, hint))

    special_pattern = _special_pattern(special_strings)
    for position, (role, text, index) in enumerate(_texts(row) if texts is None else texts):
        flag = ALL if flags is None else flags[position]
        where = f"message {index} ({role})" if index else "the text"
        message = row.messages[index - 1] if index and row.messages else {}
        stripped = text.strip()
        if not stripped:
            if role == "assistant" and not message.get("tool_calls") and message.get("weight", 1) != 0:
                add(
                    "CONT-EMPTY-ASSIST",
                    "E",
                    f"The assistant answer in {where} is empty.",
                    "Write the answer or remove the row: an empty answer teaches the model to say nothing.",
                )
            elif role in ("user", "system", "tool"):
                add("CONT-EMPTY-OTHER", "W", f"{where.capitalize()} is empty.", "Fill it in or remove that message.")
            continue
        if len(stripped) != len(text):
            add(
                "CONT-EDGE-WS",
                "W",
                f"{where.capitalize()} has leading or trailing whitespace.",
                "The fix strips it; stray spaces/newlines at the end of answers teach the model to emit them.",
            )
        if flag & PLACEHOLDERS:
            placeholder = PLACEHOLDER.search(text)
            if placeholder:
                add(
                    "CONT-PLACEHOLDER",
                    "W",
                    f"{where.capitalize()} holds a placeholder: {quote(placeholder.group(0).strip(), 40)!r}.",
                    "Replace the placeholder with real content or remove the row.",
                )
        if (
            role == "assistant" and stripped[0] in "IiAaSs" and REFUSAL.match(stripped[:200])
        ):  # every refusal opening starts so
            add(
                "CONT-REFUSAL",
                "W",
                f"The answer in {where} is refusal boilerplate ({quote(stripped, 60)!r}…).",
                "Remove canned refusals unless refusing is the behaviour you want to teach.",
            )
        if "think" in text and ("<think" in text or "</think" in text):
            tags = THINK.findall(text)
            if tags.count("<think>") != tags.count("</think>"):
                add(
                    "CONT-THINK",
                    "W",
                    f"{where.capitalize()} has unbalanced <think> tags.",
                    "Close every <think> with </think> (or remove them).",
                )
        if flag & SPECIALS and special_pattern is not None:
            special = special_pattern.search(text)
            if special:
                add(
                    "CONT-SPECIAL-TOK",
                    "W",
                    f"{where.capitalize()} contains the chat-template control string {special.group(0)!r}.",
                    "Remove it: the tokenizer turns it into a real control token and training breaks the "
                    "conversation structure.",
                )
        if role in ("assistant", "text") and len(text) > 300:
            repeat = _repetition(text)
            if repeat:
                add(
                    "CONT-REPEAT",
                    "W",
                    f"{where.capitalize()} is degenerate repetition ({repeat}).",
                    "Remove or rewrite it: the model learns to loop.",
                )
        if role in ("assistant", "text"):
            incomplete = _incomplete(stripped)
            if incomplete:
                severity, reason = incomplete
                add(
                    "CONT-INCOMPLETE",
                    severity,
                    f"{where.capitalize()} {reason}.",
                    "Check that the answer was not cut off when the data was exported.",
                )
        if flag & UNICODE and NON_PLAIN.search(text):
            _unicode_checks(text, where, add)
        if flag & (DIGITS | SECRETS | EMAIL_BIT | SECRET_WORDS):
            _privacy_checks(text, where, add, flag)
    return findings


_special_cache: dict[tuple[str, ...], re.Pattern | None] = {}


def _special_pattern(strings: tuple[str, ...]) -> re.Pattern | None:
    if strings not in _special_cache:
        usable = sorted({s for s in strings if s and len(s) >= 3}, key=len, reverse=True)
        _special_cache[strings] = re.compile("|".join(map(re.escape, usable))) if usable else None
    return _special_cache[strings]


def _unicode_checks(text: str, where: str, add) -> None:
    if SURROGATE.search(text):
        add(
            "ENC-SURROGATE",
            "E",
            f"{where.capitalize()} contains a lone surrogate (broken UTF-16).",
            "Remove the row or fix its text: lone surrogates cannot be encoded and crash tokenizers.",
        )
        return
    if "\ufffd" in text:
        add(
            "ENC-FFFD",
            "W",
            f"{where.capitalize()} contains U+FFFD (�): text was damaged by a bad decode.",
            "Re-export the source with the right encoding, or fix the damaged characters.",
        )
    control = CONTROL.search(text)
    if control:
        add(
            "ENC-CONTROL",
            "W",
            f"{where.capitalize()} contains the control character U+{ord(control.group(0)):04X}.",
            "Remove control characters (other than tab and newline).",
        )
    invisible = INVISIBLE.search(text)
    if invisible:
        add(
            "ENC-INVISIBLE",
            "W",
            f"{where.capitalize()} contains an invisible character U+{ord(invisible.group(0)):04X} (zero-width or "
            f"bidi control).",
            "Remove zero-width and bidi control characters: invisible to you, not to the model.",
        )
    if MOJIBAKE_HINT.search(text):
        import ftfy

        if ftfy.is_bad(text):
            fixed = ftfy.fix_text(text)
            sample = quote(next((w for w in text.split() if MOJIBAKE_HINT.search(w)), ""), 30)
            add(
                "ENC-MOJIBAKE",
                "W",
                f"{where.capitalize()} has mojibake (e.g. {sample!r}).",
                f"Fix the encoding (ftfy.fix_text gives: {quote(fixed, 60)!r}).",
            )


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _privacy_checks(text: str, where: str, add, flag: int = ALL) -> None:
    # A key-like string (bare or assigned) has digits as well as letters; the pre-scan bits skip what cannot match.
    found = secrets.secret_spans(
        text,
        known=bool(flag & SECRETS),
        assigned=bool(flag & DIGITS and flag & SECRET_WORDS),
        generic=bool(flag & DIGITS),
    )
    if found:
        first = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        add(
            "PII-SECRET",
            "E",
            f"{where.capitalize()} contains {first.kind} at character {first.start + 1}{more}; it is not shown here.",
            "Remove the row (and revoke the credential if it is real): a fine-tuned model can repeat secrets verbatim. "
            "Rows set aside by the fix keep the secret masked.",
        )
    if not flag & (DIGITS | EMAIL_BIT) or not _QUICK_PII.search(text):
        return
    kinds = []
    if "@" in text and EMAIL.search(text):
        kinds.append("an email address")
    if PHONE.search(text):
        kinds.append("a phone number")
    if IPV4.search(text):
        kinds.append("an IP address")
    for match in CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if 13 <= len(digits) <= 19 and _luhn(digits):
            kinds.append("a credit card number")
            break
    if IBAN.search(text):
        kinds.append("an IBAN")
    if kinds:
        add(
            "PII-CONTACT",
            "W",
            f"{where.capitalize()} contains {', '.join(kinds)}.",
            "Remove or mask personal data (e.g. replace with <EMAIL>) unless it is public and needed.",
        )


def _repetition(text: str) -> str | None:
    """Gopher repetition thresholds; only computed when zlib says the text is very compressible.
    Very long texts are judged on their first 50,000 characters (enough to see a loop)."""
    text = text[:50_000]
    if len(zlib.compress(text.encode("utf-8", "surrogatepass"), 1)) / max(1, len(text)) > 0.45:
        return None
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if len(lines) >= 4:
        duplicate_lines = len(lines) - len(set(lines))
        if duplicate_lines / len(lines) > 0.30:
            return f"{duplicate_lines} of {len(lines)} lines repeated"
    words = text.split()
    if len(words) < 10:
        return None
    total_chars = sum(len(w) for w in words)
    for n, limit in ((2, 0.20), (3, 0.18), (4, 0.16)):
        grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
        gram, count = grams.most_common(1)[0]
        if count > 1 and count * sum(len(w) for w in gram) / total_chars > limit:
            return (
                f"the {n}-gram {quote(' '.join(gram), 80)!r} covers "
                f"{count * sum(len(w) for w in gram) / total_chars:.0%} of the text"
            )
    return None


_OPENERS = {"(": ")", "[": "]", "{": "}"}


def _incomplete(text: str) -> tuple[str, str] | None:
    if text.count("```") % 2:
        return "W", "has an unclosed code fence (```)"
    if text[0] in "[{" and text[-1] not in "]}":
        return "W", "starts like JSON but is not closed"
    depth = {k: 0 for k in _OPENERS}
    if len(text) < 20000:
        for opener, closer in _OPENERS.items():
            depth[opener] = text.count(opener) - text.count(closer)
        if any(abs(value) >= 2 for value in depth.values()):
            return "I", "has unbalanced brackets"
    last = text[-1]
    last_word = text.rsplit(None, 1)[-1]
    if last in ",;:" or (
        last_word.isalpha()
        and last_word.islower()
        and len(text) > 40
        and "\n" not in text[-40:]
        and last_word not in ("etc", "e.g", "i.e")
    ):
        return "I", "seems to end mid-sentence"
    return None
