"""The lint rule registry: every rule id the linter can report, its severities and what it checks.

One place for the rule catalogue: `docs/lint-rules.md` is generated from it
(`python -m studio.data.rules.catalogue --write`) and a test fails when the file, the registry
and the rule ids the code emits disagree.

Severity: E = training will crash or silently learn the wrong thing (rows with an E are set aside
by the fix); W = likely hurts quality; I = a notice or a statistic.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Rule:
    id: str
    severities: str  # the severities it can carry, e.g. "E" or "EW"
    summary: str


SECTIONS: dict[str, str] = {
    "A": "File and encoding",
    "B": "Schema",
    "C": "Roles and turns",
    "D": "Content",
    "E": "Unicode",
    "F": "Tool calling",
    "G": "Chat template and tokenizer (needs the chosen model)",
    "H": "Length and budget (with the chosen model's tokenizer, after its chat template)",
    "I": "Size, splits, duplicates",
    "J": "Privacy, safety, distribution",
}

CATALOGUE: dict[str, tuple[Rule, ...]] = {
    "A": (
        Rule(
            "FILE-BINARY",
            "E",
            "The file is not a text file (NUL bytes or many control characters): binary data, not a dataset.",
        ),
        Rule(
            "FILE-UTF8",
            "E",
            "Text that is not valid UTF-8 (or is UTF-16): the offset of the first bad byte and the likely encoding.",
        ),
        Rule("FILE-BOM", "I", "A leading UTF-8 byte-order mark; harmless here (stripped), but some tools choke on it."),
        Rule("FILE-EMPTY", "E", "No bytes, only whitespace, no usable rows, or a .gz / .zip that cannot be unpacked."),
        Rule(
            "FILE-JSON",
            "E",
            "A line is not valid JSON (cut off at the end of the file, or a pretty-printed JSON file saved as .jsonl).",
        ),
        Rule(
            "FILE-OBJ",
            "EI",
            "A line or record is not a JSON object (E); a JSON object holding several arrays (I: which one was read).",
        ),
        Rule(
            "FILE-SIZE",
            "E",
            "Over a configured limit: the file's size (STUDIO_MAX_UPLOAD_MB), what a .gz, .zip or Parquet "
            "file decodes to (STUDIO_MAX_DECODED_MB, checked before decoding) or its rows (STUDIO_MAX_ROWS).",
        ),
    ),
    "B": (
        Rule(
            "SCH-UNKNOWN",
            "E",
            "No recognisable format (messages, conversations, instruction/output, prompt/completion, text).",
        ),
        Rule("SCH-MIXED", "E", "Rows in different formats (TRL decides the format from the first row only)."),
        Rule("SCH-EXTRA-KEYS", "W", "Unknown top-level keys (ignored in training)."),
        Rule("SCH-MSG-LIST", "E", "`messages` missing, not a list, or empty."),
        Rule("SCH-MSG-KEYS", "E", "A message without role or content (content may be null only with tool_calls)."),
        Rule("SCH-MSG-EXTRA", "W", "Unknown message keys."),
        Rule("SCH-CONTENT-TYPE", "E", "Content that is neither a string nor a list of typed text parts."),
        Rule(
            "SCH-CONVERT",
            "I",
            "A non-canonical format (ShareGPT, Alpaca, prompt/completion) was converted: the mapping used.",
        ),
        Rule("SCH-NOT-SFT", "E", "Preference (chosen/rejected) or prompt-only data: not supervised fine-tuning."),
    ),
    "C": (
        Rule("ROLE-UNKNOWN", "E", "A role other than system, user, assistant, tool."),
        Rule("ROLE-NO-ASSIST", "E", "No assistant turn: nothing to learn."),
        Rule("ROLE-TAIL", "W", "The conversation does not end on the assistant."),
        Rule("ROLE-ALTERNATE", "W", "Consecutive turns of the same role (some chat templates raise on this)."),
        Rule("ROLE-SYSTEM-POS", "W", "The system message is not first, or there is more than one."),
        Rule("ROLE-FIRST", "W", "The first turn after the system prompt is the assistant's."),
        Rule("ROLE-MISSING-SYS-USER", "I", "How many rows have no system message / no user message."),
        Rule(
            "ROLE-WEIGHT",
            "EW",
            "A weight other than 0/1 (E); a weight on a non-assistant message, or any weights (W: TRL ignores them).",
        ),
        Rule("ROLE-NAME", "I", "Rows using the `name` field (most chat templates ignore it)."),
    ),
    "D": (
        Rule(
            "CONT-EMPTY-ASSIST",
            "E",
            "An empty or whitespace-only assistant answer without tool calls (or empty `text`).",
        ),
        Rule("CONT-EMPTY-OTHER", "W", "An empty user, system or tool message."),
        Rule("CONT-EDGE-WS", "W", "Leading or trailing whitespace in a message."),
        Rule(
            "CONT-PLACEHOLDER",
            "W",
            "<nooutput>, N/A, [Your Name], [Insert …], TODO, TBD, unfilled {{name}} variables, lorem ipsum.",
        ),
        Rule("CONT-REFUSAL", "W", 'Refusal boilerplate ("As an AI …", "I cannot help …").'),
        Rule(
            "CONT-THINK",
            "W",
            "Unbalanced <think> tags in a message, or answers with and without reasoning blocks mixed.",
        ),
        Rule(
            "CONT-SPECIAL-TOK",
            "W",
            "Chat-template control strings inside content (<|im_start|>, <|eot_id|>, [INST], the tokenizer's "
            "specials).",
        ),
        Rule(
            "CONT-REPEAT",
            "W",
            "Degenerate repetition (Gopher thresholds: duplicate lines > 30 %, top 2/3/4-gram character share > "
            "20/18/16 %).",
        ),
        Rule(
            "CONT-INCOMPLETE",
            "WI",
            "An unclosed code fence or JSON (W); unbalanced brackets or an answer that ends mid-sentence (I).",
        ),
    ),
    "E": (
        Rule(
            "ENC-MOJIBAKE",
            "W",
            "Mojibake (text decoded with the wrong encoding), checked with ftfy; the hint shows the repair.",
        ),
        Rule("ENC-FFFD", "W", "U+FFFD replacement characters: text damaged by a bad decode."),
        Rule("ENC-CONTROL", "W", "Control characters other than tab and newline."),
        Rule("ENC-SURROGATE", "E", "Lone surrogates (broken UTF-16): they cannot be encoded and crash tokenizers."),
        Rule("ENC-INVISIBLE", "W", "Zero-width and bidi control characters."),
    ),
    "F": (
        Rule(
            "TOOL-SHAPE",
            "E",
            "tool_calls entries missing id/type/function.name/arguments, or arguments that are not a JSON object.",
        ),
        Rule("TOOL-PAIRING", "E", "A tool message without a tool_call_id matching an earlier assistant tool call."),
        Rule(
            "TOOL-SCHEMA",
            "E",
            "A call to a function the row's `tools` do not declare (checked on every call, even one with another "
            "problem).",
        ),
        Rule("TOOL-DRIFT", "W", "The same tool defined differently across rows."),
        Rule("TOOL-LEGACY", "W", "Legacy OpenAI function calling: `functions`, `function_call`, role `function`."),
    ),
    "G": (
        Rule("TPL-NONE", "E", "The tokenizer has no chat template, so chat rows cannot be rendered."),
        Rule("TPL-RENDER", "E", "The chat template raises on a row (its own message is shown)."),
        Rule(
            "TPL-EOT-MASK", "W", "The end-of-turn token is outside the trained span: the model may not learn to stop."
        ),
        Rule("TPL-DOUBLE-BOS", "W", "Rendered rows start with two BOS tokens."),
        Rule(
            "TPL-DEFAULT-SYS",
            "I",
            "The template adds a default system prompt when a row has none (SmolLM2 and Qwen do).",
        ),
    ),
    "H": (
        Rule(
            "LEN-TRUNC",
            "WE",
            "Longer than max_length (W; E when longer than the model's context): tokens and trainable tokens cut.",
        ),
        Rule(
            "LEN-NO-TRAIN",
            "E",
            "No trainable (assistant) tokens left after masking and truncation (TRL drops such rows silently).",
        ),
        Rule("LEN-SHORT", "W", "Three trainable tokens or fewer."),
        Rule("LEN-OUTLIER", "W", "A length more than 3×IQR beyond the quartiles (and beyond twice / half the median)."),
        Rule("LEN-PACK-HINT", "I", "Rows are short for max_length: about p99 rounded up to 64, or packing."),
    ),
    "I": (
        Rule("DS-MIN", "EW", "Fewer than 10 usable rows (E) or fewer than 50 (W)."),
        Rule("DS-NO-VAL", "W", "No validation split: overfitting cannot be seen."),
        Rule("DS-LEAK", "EW", "A validation row identical (E) or nearly identical (W) to a training row."),
        Rule(
            "DS-EPOCHS",
            "I",
            "Suggested epochs (OpenAI's rule: 3, clamped so epochs × rows stays within 100..25,000, epochs 1..25).",
        ),
        Rule("DUP-EXACT", "W", "Identical rows after NFC and collapsed whitespace, shown as clusters."),
        Rule(
            "DUP-NEAR",
            "W",
            "Near duplicates: MinHash LSH on word 5-grams of the user and assistant turns, lower-cased with "
            "punctuation removed, Jaccard ≥ 0.85 (rows that differ only in case, punctuation or spacing always "
            "match).",
        ),
        Rule("DUP-CONFLICT", "I", "The same prompt with different answers."),
    ),
    "J": (
        Rule("PII-CONTACT", "W", "Email addresses, phone numbers, IP addresses, credit card numbers (Luhn), IBANs."),
        Rule(
            "PII-SECRET",
            "E",
            "API keys and tokens (AWS, GitHub, OpenAI/Anthropic, Slack, Hugging Face, JWT, private-key blocks), "
            "high-entropy values assigned to key/secret/token/password names, and other random-looking "
            "high-entropy strings; URL paths and file names are not secrets. The secret is never echoed: "
            "messages say what kind it is, and rejected rows keep it masked.",
        ),
        Rule(
            "DIST-SYSPROMPT",
            "IW",
            "Distinct system prompts and their coverage (W when there are many one-off prompts).",
        ),
        Rule(
            "DIST-LANG",
            "WI",
            "Rows in a language other than the majority, or user and assistant in different languages "
            "(I: checked on a seeded sample of 25,000 rows for larger files).",
        ),
        Rule("DIST-NGRAM", "I", "One opening phrase starts more than 5 % of the answers (a single word: 20 %)."),
        Rule("DIST-TURNS", "I", "The single- vs multi-turn mix."),
    ),
}

RULES: dict[str, Rule] = {rule.id: rule for rules in CATALOGUE.values() for rule in rules}

DOC_PATH = Path(__file__).resolve().parents[3] / "docs" / "lint-rules.md"

_INTRO = """\
# Dataset lint rules

Generated from `studio/data/rules/catalogue.py` (`python -m studio.data.rules.catalogue --write`);
a test fails when this file, the registry or the rules the linter emits disagree. Do not edit by hand.

Every finding carries a rule id, a severity, a row number (1-based line for JSONL, 1-based record
otherwise; none for a finding about the whole file), a message and a hint that says what to do.

Severity: **E** = training will crash or silently learn the wrong thing (the Data tab's *Fix and
split* sets such rows aside, with their reasons); **W** = likely hurts quality; **I** = a notice or
a statistic.

Formats accepted (detected per row, converted to chat `messages`): `messages` (+ `tools`), ShareGPT
`conversations`, Alpaca `instruction`/`input`/`output`, `prompt`/`completion`, plain `text`; files
`.jsonl`, `.json`, `.csv`, `.parquet`, or a Hugging Face Hub dataset id.
"""


def render_markdown() -> str:
    """The rule catalogue as Markdown (the content of docs/lint-rules.md)."""
    lines = [_INTRO]
    for section, title in SECTIONS.items():
        lines.append(f"## {section}. {title}\n")
        lines.append("| Rule | Severity | What it checks |")
        lines.append("|---|---|---|")
        for rule in CATALOGUE[section]:
            lines.append(f"| `{rule.id}` | {'/'.join(rule.severities)} | {rule.summary} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render_markdown()
    if argv == ["--write"]:
        DOC_PATH.write_text(text, encoding="utf-8")
        print(f"wrote {DOC_PATH}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
