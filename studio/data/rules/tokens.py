"""Chat template (G) and length (H) rules, and the token counts they rest on.

Each row is rendered once as text with the training template (the model's chat template with
`{% generation %}` markers, see studio.models.templates; plain Python for the studio's ChatML
template), recording the character spans of the assistant answers. Trainable tokens are those
inside an answer span: what apply_chat_template(..., return_assistant_tokens_mask=True) computes
one row at a time. Counting: for byte-level BPE tokenizers (GPT-2 style: SmolLM2, Qwen, Llama 3)
a cache of per-word token counts (WordCounter, checked against the tokenizer on a sample); for
other tokenizers the fast tokenizer's encode_batch with char_to_token at the span edges.
"""

from __future__ import annotations

import re
from itertools import islice
from typing import Any

import numpy as np

from studio.data.records import Finding, Row, TokenCount
from studio.data.rules.content import GENERIC_SPECIALS
from studio.data.rules.secrets import quote
from studio.data.stats import percentiles
from studio.models.templates import chatml_template, default_system_prompt, has_generation_markers, training_template

TOKENIZE_BATCH = 2000
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def special_strings(tokenizer) -> tuple[str, ...]:
    """Control strings that must not appear inside content: generic chat markers + the tokenizer's specials."""
    if tokenizer is None:
        return GENERIC_SPECIALS
    extra = []
    for attribute in ("bos_token", "eos_token", "pad_token", "unk_token"):
        value = getattr(tokenizer, attribute, None)
        if isinstance(value, str):
            extra.append(value)
    extra += [str(token) for token in getattr(tokenizer, "additional_special_tokens", []) or []]
    return tuple(sorted(set(GENERIC_SPECIALS) | set(extra)))


def _template_messages(row: Row) -> list[dict[str, Any]]:
    messages = []
    for message in row.messages or []:
        clean = {key: value for key, value in message.items() if value is not None}
        clean.setdefault("content", "")
        calls = clean.get("tool_calls")
        if isinstance(calls, list):  # HF templates expect arguments as objects
            import json

            fixed = []
            for call in calls:
                if (
                    isinstance(call, dict)
                    and isinstance(call.get("function"), dict)
                    and isinstance(call["function"].get("arguments"), str)
                ):
                    try:
                        call = {
                            **call,
                            "function": {**call["function"], "arguments": json.loads(call["function"]["arguments"])},
                        }
                    except ValueError:
                        pass
                fixed.append(call)
            clean["tool_calls"] = fixed
        messages.append(clean)
    return messages


class Renderer:
    """Renders rows as text with answer spans, using the training template when there is one."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        own = getattr(tokenizer, "chat_template", None)
        if isinstance(own, dict):
            own = own.get("default") or next(iter(own.values()), None)
        self.own_template = own
        self.template = training_template(tokenizer) or own
        self.masked = has_generation_markers(self.template)  # else no assistant mask: every token is trained
        self.kwargs = dict(getattr(tokenizer, "special_tokens_map", {}) or {})
        self._compiled = None
        # Fast path: the studio's own ChatML training template is rendered in plain Python (same text,
        # same spans; checked by the tests), about 10x faster than Jinja with the span tracker.

        self.chatml_default: str | None = None
        self.fast_chatml = False
        if self.masked and own and self.template is not own:
            default = default_system_prompt(tokenizer, own)
            if self.template == chatml_template(default):
                self.fast_chatml, self.chatml_default = True, default

    @property
    def compiled(self):
        if self._compiled is None and self.template:
            from transformers.utils.chat_template_utils import _compile_jinja_template

            self._compiled = _compile_jinja_template(self.template)
        return self._compiled

    def render(self, row: Row) -> tuple[str, list[tuple[int, int]]]:
        """(text, answer spans as [start, end) character offsets). Raises if the template does."""
        if row.format == "text" or row.messages is None:
            return (row.text or ""), [(0, len(row.text or ""))]
        from transformers.utils.chat_template_utils import _render_with_assistant_indices

        tools = row.extra.get("tools") if isinstance(row.extra.get("tools"), list) else None
        if self.fast_chatml:
            return _render_chatml(row.messages, self.chatml_default)
        messages = _template_messages(row)
        if self.masked:
            text, spans = _render_with_assistant_indices(self.compiled, messages, tools, None, False, **self.kwargs)
            return text, [(start, end) for start, end in spans]
        text = self.compiled.render(
            messages=messages, tools=tools, documents=None, add_generation_prompt=False, **self.kwargs
        )
        return text, [(0, len(text))]  # no assistant mask possible: everything is trained


# GPT-2 style byte-level BPE pre-tokenization (tokenizers' ByteLevel with use_regex=True).
_GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


# The same pattern for ASCII text with the standard library's faster `re` (identical matches on ASCII:
# letters [A-Za-z], numbers [0-9], the same six whitespace characters; checked by the tests).
_GPT2_ASCII = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""", re.ASCII)
# Whitespace the chunk caches cannot split at exactly: runs of two or more, and whitespace other than " " and "\n".
_IRREGULAR_SPACE = ("  ", "\n\n", " \n", "\n ", "\t", "\r", "\x0b", "\x0c")


def _regular(text: str) -> bool:
    """Plain ASCII whose whitespace is single spaces and single newlines (substring checks: faster than a regex)."""
    if not text.isascii():
        return False
    for pattern in _IRREGULAR_SPACE:
        if pattern in text:
            return False
    return True


CACHE_LIMIT = 1_000_000  # entries per cache before it is emptied: bounded memory on any data


class _Counts(dict):
    """word/chunk -> tokens, computed on first use (dict lookups stay in C: map(cache.__getitem__, …))."""

    __slots__ = ("compute",)

    def __init__(self, compute):
        super().__init__()
        self.compute = compute

    def __missing__(self, key: str) -> int:
        if len(self) >= CACHE_LIMIT:
            self.clear()
        value = self[key] = self.compute(key)
        return value


class WordCounter:
    """Token counts from caches of pre-tokenized words.

    For byte-level BPE tokenizers without a normalizer, BPE never merges across pre-token
    boundaries, so a text's token count is the sum of its pre-tokens' counts, and added tokens
    (<|im_start|> …) count one each. Each distinct word is tokenized once by the real tokenizer;
    real data repeats words, so this is several times faster than tokenizing every row.
    Plain ASCII text whose whitespace is single spaces and single newlines is not even
    pre-tokenized: a single space or newline between two non-space characters is always a
    pre-token boundary (the space starts the next pre-token, the newline is a pre-token of its
    own), so such text is counted chunk by chunk (str.split) from a cache of space-separated chunks.
    `usable()` checks the tokenizer's setup, and check_tokens verifies the counts against the real
    tokenizer on a sample before trusting them (any mismatch: the plain batch path is used).
    """

    def __init__(self, tokenizer):
        import regex

        self.backend = getattr(tokenizer, "_tokenizer", None) or getattr(tokenizer, "backend_tokenizer", None)
        self.words = regex.compile(_GPT2_PATTERN)
        self.cache = _Counts(self._encode_word)  # pre-token -> tokens
        self._first = _Counts(self._count_plain)  # chunk at the start of a line -> tokens
        self._spaced = _Counts(lambda chunk: self._count_plain(" " + chunk))  # chunk after a space -> tokens
        self._short = _Counts(self._count_plain)  # a whole short piece -> tokens
        added = []
        if self.backend is not None:
            try:
                added = [token.content for token in self.backend.get_added_tokens_decoder().values()]
            except Exception:  # noqa: BLE001 - a tokenizer without this API has no added tokens to list
                added = []
        added = sorted({a for a in added if a}, key=len, reverse=True)
        self.specials = regex.compile("|".join(regex.escape(a) for a in added)) if added else None

    def usable(self) -> bool:
        if self.backend is None:
            return False
        try:
            import json

            config = json.loads(self.backend.to_str())
        except Exception:  # noqa: BLE001 - a backend that cannot describe itself is not fast-pathed
            return False
        pre = config.get("pre_tokenizer") or {}
        model = config.get("model") or {}
        added_ok = all(
            not (t.get("lstrip") or t.get("rstrip") or t.get("single_word") or t.get("normalized"))
            for t in config.get("added_tokens") or []
        )
        return (
            config.get("normalizer") is None
            and pre.get("type") == "ByteLevel"
            and pre.get("use_regex", True)
            and not pre.get("add_prefix_space")
            and model.get("type") == "BPE"
            and not model.get("byte_fallback")
            and added_ok
        )

    def _encode_word(self, word: str) -> int:
        try:
            return len(self.backend.encode(word, add_special_tokens=False))
        except (TypeError, ValueError):  # lone surrogates: counted as the replacement character, like _encode
            return len(self.backend.encode(_SURROGATE.sub("\ufffd", word), add_special_tokens=False))

    def _word(self, word: str) -> int:
        return self.cache[word]

    def _count_plain(self, text: str) -> int:
        """Tokens of a piece without added tokens, pre-tokenized with the GPT-2 pattern."""
        words = _GPT2_ASCII.findall(text) if text.isascii() else self.words.findall(text)
        return sum(map(self.cache.__getitem__, words))

    def _count_piece(self, piece: str, regular: bool) -> int:
        if not regular:
            return self._count_plain(piece)
        if len(piece) <= 16:
            return self._short[piece]  # role headers and the newlines between turns
        lines = piece.split("\n")
        total = (len(lines) - 1) * self.cache["\n"]  # each single newline is a pre-token of its own
        first, spaced = self._first, self._spaced.__getitem__
        for line in lines:
            if line:
                chunks = line.split(" ")
                total += first[chunks[0]]
                if len(chunks) > 1:
                    total += sum(map(spaced, islice(chunks, 1, None)))
        return total

    def count(self, text: str, regular: bool | None = None) -> int:
        """Tokens of `text`; `regular`: the caller already knows whether it is plain ASCII with simple spacing."""
        if not text:
            return 0
        if regular is None:
            regular = _regular(text)
        if self.specials is None:
            return self._count_piece(text, regular)
        pieces = self.specials.split(text)
        total = len(pieces) - 1  # one token per added token between the pieces
        for piece in pieces:
            if piece:
                total += self._count_piece(piece, regular)
        return total

    def count_chatml(
        self, messages: list[dict], default_system: str | None, max_length: int
    ) -> tuple[int, int, int] | None:
        """count_row of _render_chatml(messages, default_system) without rendering it: the same pieces, counted
        message by message (None when a message's role or content is not text: render it to get the error)."""
        count = self.count
        newline = self._short["\n"]  # the "\n" between <|im_end|> and the next <|im_start|>
        total = trainable = cut = 0
        if default_system is not None and messages and messages[0].get("role") != "system":
            total += 2 + count("system\n" + default_system) + newline
        for message in messages:
            role, content = message.get("role"), message.get("content")
            if content is None and message.get("tool_calls"):
                content = ""
            if not isinstance(role, str) or not isinstance(content, str):
                return None
            if role == "assistant":
                total += 1 + self._short["assistant\n"]  # <|im_start|>assistant\n, then the trained span
                inside = count(content) + 1  # the answer and <|im_end|>
                if total + inside > max_length:
                    cut += total + inside - max(total, max_length)
                total += inside + newline
                trainable += inside
            else:
                total += 2 + count(role + "\n" + content) + newline
        return total, trainable, cut

    def count_row(self, text: str, spans: list[tuple[int, int]], max_length: int) -> tuple[int, int, int]:
        """(total, trainable, trainable beyond max_length), counting segment by segment."""
        regular = _regular(text)
        count = self.count
        position = total = trainable = cut = 0
        for start, end in spans:
            total += count(text[position:start], regular)
            inside = count(text[start:end], regular)
            if total + inside > max_length:
                cut += total + inside - max(total, max_length)
            total += inside
            trainable += inside
            position = end
        total += count(text[position:], regular)
        return total, trainable, cut


def _render_chatml(messages: list[dict], default_system: str | None) -> tuple[str, list[tuple[int, int]]]:
    """studio.models.templates.chatml_template(default_system), rendered without Jinja."""
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    position = 0
    if default_system is not None and messages and messages[0].get("role") != "system":
        block = "<|im_start|>system\n" + default_system + "<|im_end|>\n"
        parts.append(block)
        position += len(block)
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if content is None and message.get("tool_calls"):
            content = ""
        if not isinstance(role, str) or not isinstance(content, str):
            raise TypeError(
                f"can only concatenate str (not {type(content if isinstance(role, str) else role).__name__}) to str"
            )
        if role == "assistant":
            head = "<|im_start|>assistant\n"
            body = content + "<|im_end|>"
            parts += (head, body, "\n")
            spans.append((position + len(head), position + len(head) + len(body)))
            position += len(head) + len(body) + 1
        else:
            block = "<|im_start|>" + role + "\n" + content + "<|im_end|>\n"
            parts.append(block)
            position += len(block)
    return "".join(parts), spans


def _encode(tokenizer, texts: list[str]):
    backend = getattr(tokenizer, "_tokenizer", None) or getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    try:
        return backend.encode_batch(texts, add_special_tokens=False)
    except (TypeError, ValueError):  # lone surrogates cannot be encoded: replace them one char for one char
        return backend.encode_batch([_SURROGATE.sub("\ufffd", text) for text in texts], add_special_tokens=False)


def _token_at(encoding, start: int, end: int, step: int) -> int | None:
    """The token covering the first (step 1) or last (step -1) character of [start, end) that maps to a token."""
    positions = range(start, end) if step > 0 else range(end - 1, start - 1, -1)
    for checked, position in enumerate(positions):
        token = encoding.char_to_token(position)
        if token is not None:
            return token
        if checked > 64:
            break
    return None


def _count(encoding, spans: list[tuple[int, int]], max_length: int, text_len: int) -> tuple[int, int, int]:
    """(total, trainable, trainable beyond max_length) for one encoded row.
    Tokens whose characters lie in an answer span are trainable: exact, via char_to_token (no offset lists)."""
    total = len(encoding)
    if not spans:
        return total, 0, 0
    if len(spans) == 1 and spans[0] == (0, text_len):
        return total, total, max(0, total - max_length)
    trainable = cut = 0
    for span_start, span_end in spans:
        if span_end <= span_start:
            continue
        first = _token_at(encoding, span_start, span_end, 1)
        last = _token_at(encoding, span_start, span_end, -1)
        if first is None or last is None or last < first:
            continue
        trainable += last - first + 1
        if last >= max_length:
            cut += last + 1 - max(first, max_length)
    return total, trainable, cut


class TokenChecker:
    """Token counts of chunks of rows, in one process: the renderer and the word caches are built once,
    and the word-cache counts are checked against the real tokenizer on the first rows they count.
    With the studio's ChatML template, rows are then counted message by message without rendering
    them (WordCounter.count_chatml: the same pieces), once that agreed with the rendered counts."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.renderer = Renderer(tokenizer)
        self.counter = WordCounter(tokenizer)
        self.fast: bool | None = None if self.counter.usable() else False  # None: not checked yet
        self.direct = False  # count ChatML rows without rendering them
        self.eos = getattr(tokenizer, "eos_token", None)

    def count(self, rows: list[Row], usable: set[int]) -> tuple[list[TokenCount | None], list[Finding]]:
        """Counts aligned with `rows` (None: not usable, not renderable, or no template) and TPL-RENDER findings."""
        counts: list[TokenCount | None] = [None] * len(rows)
        findings: list[Finding] = []
        renderer = self.renderer
        rendered: list[tuple[int, str, list[tuple[int, int]]]] = []
        for index, row in enumerate(rows):
            if row.number not in usable or not (row.format == "text" or (row.messages and renderer.template)):
                continue
            if self.direct and row.format != "text":
                counted = self.counter.count_chatml(row.messages, renderer.chatml_default, self.max_length)
                if counted is not None:
                    counts[index] = TokenCount(counted[0], counted[0] - counted[1], counted[1], counted[2])
                    continue
            try:
                text, spans = renderer.render(row)
            except Exception as error:  # noqa: BLE001 - the template's own message is the finding
                findings.append(
                    Finding(
                        "TPL-RENDER",
                        "E",
                        row.number,
                        f"The chat template fails on this row: {quote(str(error), 200)}",
                        "Fix the conversation shape the template rejects (often roles that do not alternate, or a "
                        "system message it does not accept).",
                    )
                )
                continue
            rendered.append((index, text, spans))
        if self.fast is None and rendered:
            self.fast = _counter_agrees(self.counter, rendered[:200], self.max_length)
            self.direct = bool(self.fast and renderer.fast_chatml and _direct_agrees(self, rows, rendered[:200]))
        if self.fast:
            for index, text, spans in rendered:
                counts[index] = self._token_count(rows[index], *self.counter.count_row(text, spans, self.max_length))
            return counts, findings
        for start in range(0, len(rendered), TOKENIZE_BATCH):
            batch = rendered[start : start + TOKENIZE_BATCH]
            encodings = _encode(self.tokenizer, [text for _, text, _ in batch])
            for item, (index, text, spans) in enumerate(batch):
                if encodings is not None:
                    total, trainable, cut = _count(encodings[item], spans, self.max_length, len(text))
                else:  # slow tokenizer: count without offsets (all trained)
                    total = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
                    trainable, cut = total, max(0, total - self.max_length)
                counts[index] = self._token_count(rows[index], total, trainable, cut)
        return counts, findings

    def _token_count(self, row: Row, total: int, trainable: int, cut: int) -> TokenCount:
        if row.format == "text" and self.eos:  # TRL appends EOS to language-modelling text
            total += 1
            trainable += 1
        return TokenCount(total, total - trainable, trainable, cut)


def template_findings(
    renderer: Renderer,
    needs_template: bool,
    chat_rows: int,
    without_system: int,
    first_chat: Row | None,
    text_rows_with_bos: list[int],
) -> list[Finding]:
    """TPL-NONE, TPL-DEFAULT-SYS, TPL-EOT-MASK and TPL-DOUBLE-BOS, from what the chunks recorded about the usable rows:
    whether any is a chat row, how many chat rows have no system message, the first chat row, and the
    text rows that start with BOS (their number)."""
    findings: list[Finding] = []
    tokenizer = renderer.tokenizer
    if needs_template and not renderer.template:
        findings.append(
            Finding(
                "TPL-NONE",
                "E",
                None,
                "The chosen model's tokenizer has no chat template, so chat rows cannot be rendered.",
                "Pick an instruct/chat model (e.g. an '-Instruct' variant), or use plain 'text' rows.",
            )
        )
    bos = getattr(tokenizer, "bos_token", None)
    if chat_rows and renderer.template:
        default = default_system_prompt(tokenizer, renderer.own_template)
        if default:
            findings.append(
                Finding(
                    "TPL-DEFAULT-SYS",
                    "I",
                    None,
                    f"The chat template adds a default system prompt when none is given ({default[:60]!r}); "
                    f"{without_system} row(s) have none.",
                    "Rows without a system message are trained with that default; give one explicitly if you want "
                    "another.",
                )
            )
        findings += _eot_mask_check(renderer)
        # Double BOS: the template already writes BOS and the content starts with it too.
        if bos and first_chat is not None:
            try:
                text, _ = renderer.render(first_chat)
                if text.startswith(bos + bos):
                    findings.append(
                        Finding(
                            "TPL-DOUBLE-BOS",
                            "W",
                            None,
                            f"Rendered rows start with two BOS tokens ({bos!r}).",
                            "Remove the BOS token from the data; the template adds it.",
                        )
                    )
            except Exception:  # noqa: BLE001 - reported per row as TPL-RENDER
                pass
    if text_rows_with_bos and bos:
        adds_bos = False
        try:
            ids = tokenizer("x")["input_ids"]
            adds_bos = bool(ids) and ids[0] == getattr(tokenizer, "bos_token_id", None)
        except Exception:  # noqa: BLE001 - a tokenizer that cannot encode 'x' shows no BOS
            pass
        if adds_bos:
            findings.append(
                Finding(
                    "TPL-DOUBLE-BOS",
                    "W",
                    text_rows_with_bos[0],
                    f"{len(text_rows_with_bos)} text row(s) start with {bos!r} and the tokenizer adds BOS again.",
                    "Remove the leading BOS token from the text.",
                )
            )
    return findings


def pack_hint(percentiles: dict | None, suggestion: int | None, max_length: int) -> list[Finding]:
    """LEN-PACK-HINT from the statistics' own token percentiles and suggested max length (one source for both)."""
    if not percentiles or suggestion is None:
        return []
    p50, p99 = percentiles["p50"], percentiles["p99"]
    if suggestion < max_length or p50 < max_length / 4:
        return [
            Finding(
                "LEN-PACK-HINT",
                "I",
                None,
                f"Rows are short for max_length {max_length} (median {p50:.0f} tokens, p99 {p99:.0f}).",
                f"Set max_length to about {suggestion} (p99 rounded up to 64), or turn on packing to waste less "
                f"compute on padding.",
            )
        ]
    return []


def _direct_agrees(checker: TokenChecker, rows: list[Row], sample: list) -> bool:
    """Counting ChatML rows message by message must give the rendered rows' counts (else always render)."""
    for index, text, spans in sample:
        row = rows[index]
        if row.format != "text":
            counted = checker.counter.count_chatml(row.messages, checker.renderer.chatml_default, checker.max_length)
            if counted is not None and counted != checker.counter.count_row(text, spans, checker.max_length):
                return False
    return True


def _counter_agrees(counter: WordCounter, sample: list, max_length: int) -> bool:
    """The word-cache counts must equal the real tokenizer's on a sample (else use the batch path)."""
    try:
        encodings = counter.backend.encode_batch([text for _, text, _ in sample], add_special_tokens=False)
        for encoding, (_, text, spans) in zip(encodings, sample):
            if counter.count_row(text, spans, max_length) != _count(encoding, spans, max_length, len(text)):
                return False
    except Exception:  # noqa: BLE001 - any failure: use the exact count instead
        return False
    return True


def _eot_mask_check(renderer: Renderer) -> list[Finding]:
    """TPL-EOT-MASK: with the training template, is the end-of-turn token inside the trained span?"""
    if not renderer.masked:
        return []
    probe = Row(
        number=0,
        raw={},
        format="messages",
        messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}],
    )
    try:
        text, spans = renderer.render(probe)
    except Exception:  # noqa: BLE001 - a template that cannot render the probe shows no trailing tokens
        return []
    eos = getattr(renderer.tokenizer, "eos_token", None)
    if not spans:
        return [
            Finding(
                "TPL-EOT-MASK",
                "W",
                None,
                "The training template marks no assistant tokens as trainable.",
                "Use a chat template whose {% generation %} block wraps the answer and its end-of-turn token.",
            )
        ]
    start, end = spans[-1]
    answer_end = text.find("Hello there", start) + len("Hello there")
    trained_tail = text[answer_end:end]
    end_markers = [marker for marker in (eos, "<|im_end|>", "<|eot_id|>", "</s>", "<end_of_turn>", "<|end|>") if marker]
    if not any(marker in trained_tail for marker in end_markers):
        return [
            Finding(
                "TPL-EOT-MASK",
                "W",
                None,
                "The end-of-turn token is outside the trained span: the model may not learn to stop.",
                "Put the end-of-turn token inside {% generation %}…{% endgeneration %} in the chat template.",
            )
        ]
    return []


def length_findings(numbers: np.ndarray, tokens: np.ndarray, max_length: int, context: int | None) -> list[Finding]:
    """LEN-TRUNC, LEN-NO-TRAIN, LEN-SHORT and LEN-OUTLIER from the per-row token columns
    (total, prompt, trainable, trainable_cut; -1 where not counted), in row order."""
    counted = tokens[:, 0] >= 0
    totals = tokens[counted, 0]
    upper = lower = None
    if len(totals) >= 8:
        quartiles = percentiles(totals)
        q1, q3, median = quartiles["p25"], quartiles["p75"], quartiles["p50"]
        iqr = q3 - q1
        # 3×IQR beyond the quartiles, and at least twice (half) the median so tight distributions do not flag
        # normal rows
        upper, lower = max(q3 + 3 * iqr, 2 * median), min(q1 - 3 * iqr, median / 2)
    total, trainable, cut = tokens[:, 0], tokens[:, 2], tokens[:, 3]
    over = counted & (total > max_length)
    no_train = counted & (trainable - cut <= 0)
    short = counted & ~no_train & (trainable <= 3)
    outlier = (
        counted & ((total > upper) | (total < lower)) & (upper > 0) if upper is not None else np.zeros(len(total), bool)
    )
    findings: list[Finding] = []
    for index in np.flatnonzero(over | no_train | short | outlier).tolist():
        number, count_total, count_trainable, count_cut = (
            int(numbers[index]),
            int(total[index]),
            int(trainable[index]),
            int(cut[index]),
        )
        if over[index]:
            over_context = context is not None and count_total > context
            findings.append(
                Finding(
                    "LEN-TRUNC",
                    "E" if over_context else "W",
                    number,
                    f"{count_total} tokens, over max_length {max_length}: {count_total - max_length} tokens are cut, "
                    f"{count_cut} of them trainable (the end of the answer is lost)."
                    + (f" It is also longer than the model's context ({context})." if over_context else ""),
                    "Raise max_length, shorten or split the conversation, or drop the row.",
                )
            )
        if no_train[index]:
            findings.append(
                Finding(
                    "LEN-NO-TRAIN",
                    "E",
                    number,
                    "No trainable (assistant) tokens remain" + (" after truncation." if count_trainable else "."),
                    "TRL silently drops such rows: add an answer or raise max_length.",
                )
            )
        elif short[index]:
            findings.append(
                Finding(
                    "LEN-SHORT",
                    "W",
                    number,
                    f"Only {count_trainable} trainable token(s).",
                    "Very short answers teach little; check the answer is complete.",
                )
            )
        if outlier[index]:
            findings.append(
                Finding(
                    "LEN-OUTLIER",
                    "W",
                    number,
                    f"{count_total} tokens is far outside the typical length (more than 3×IQR beyond the quartiles).",
                    "Check the row: extreme lengths are often data errors (concatenated documents, broken exports).",
                )
            )
    return findings


def row_tokens(row: Row, tokenizer) -> list[tuple[str, bool]]:
    """The row as the model sees it: [(token text, trained?)] for a highlighted token view."""
    renderer = Renderer(tokenizer)
    text, spans = renderer.render(row)
    encodings = _encode(tokenizer, [text])
    if encodings is None:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return [(tokenizer.decode([i]), True) for i in ids]
    result = []
    for start, end in encodings[0].offsets:
        trained = any(span_start <= start < span_end for span_start, span_end in spans)
        result.append((text[start:end], trained))
    return result
