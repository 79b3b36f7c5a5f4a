"""One row, as people need to see it: the conversation as a chat, and the exact tokens the model
gets after the chat template, with the tokens it is trained on highlighted (and the ones cut by
max_length struck through). Pure functions returning HTML (escaped); no gradio here.
"""

from __future__ import annotations

from typing import Any

from studio import escape
from studio.data.rules.tokens import row_tokens
from studio.data.stats import PALETTE, ROLE_COLOURS
from studio.models import templates

MAX_TOKENS_SHOWN = 4000


def _content(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def _training_template(tokenizer) -> str | None:
    """The model's chat template with {% generation %} markers (the one the linter and training use)."""
    try:
        return templates.training_template(tokenizer)
    except Exception:  # noqa: BLE001 - fall back to our own span search
        return None


def row_spans(row, tokenizer, max_length: int | None = None) -> list[dict[str, Any]]:
    """[{"text", "trained", "cut"}] for a linted row: a conversation through the linter's own renderer (so the
    view matches the counts in the report; else `token_spans`), plain text token by token (all trained).
    Raises what the chat template raises on a broken row."""
    if row.messages:
        try:
            pairs = row_tokens(row, tokenizer)
        except Exception:  # noqa: BLE001 - the linter's renderer may refuse a row the template still renders
            return token_spans(tokenizer, row.messages, max_length)
        return [
            {"text": text, "trained": bool(trained), "cut": bool(max_length) and index >= max_length}
            for index, (text, trained) in enumerate(pairs)
        ]
    ids = tokenizer(row.text or "", add_special_tokens=False)["input_ids"]
    return [
        {"text": tokenizer.decode([token_id]), "trained": True, "cut": bool(max_length) and index >= max_length}
        for index, token_id in enumerate(ids)
    ]


def token_spans(tokenizer, messages: list[dict], max_length: int | None = None) -> list[dict[str, Any]]:
    """[{"text", "trained", "cut"}] for every token of the rendered conversation.

    trained: the loss is computed on this token (assistant answers and their end-of-turn);
    cut: beyond max_length, so the trainer drops it (TRL truncates from the right).
    """
    messages = [{**m, "content": _content(m.get("content"))} for m in messages if isinstance(m, dict)]
    template = _training_template(tokenizer)
    rendered = (
        tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False)
        if template
        else tokenizer.apply_chat_template(messages, tokenize=False)
    )
    encoding = tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoding["input_ids"], encoding["offset_mapping"]
    trained_chars = _trained_chars(tokenizer, messages, rendered, template)
    spans = []
    for index, (token_id, (start, end)) in enumerate(zip(ids, offsets)):
        text = rendered[start:end] if end > start else tokenizer.decode([token_id])
        trained = any(trained_chars[start:end]) if end > start else False
        spans.append({"text": text, "trained": trained, "cut": bool(max_length) and index >= max_length})
    return spans


def _trained_chars(tokenizer, messages, rendered: str, template: str | None) -> list[bool]:
    """A per-character mask of `rendered`: True where the trainer computes the loss."""
    mask = [False] * len(rendered)
    if template:
        try:
            out = tokenizer.apply_chat_template(
                messages, chat_template=template, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
            )
            ids = list(out["input_ids"])
            assistant = list(out["assistant_masks"])
            encoding = tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
            if list(encoding["input_ids"]) == ids:
                for (start, end), flag in zip(encoding["offset_mapping"], assistant):
                    if flag:
                        for i in range(start, end):
                            mask[i] = True
                return mask
        except Exception:  # noqa: BLE001 - fall back to the span search below
            pass
    # Fallback: find each assistant answer in the rendered text (it is rendered in order).
    eos = getattr(tokenizer, "eos_token", None) or ""
    position = 0
    for message in messages:
        content = message.get("content") or ""
        if not content:
            continue
        found = rendered.find(content, position)
        if found < 0:
            continue
        end = found + len(content)
        if message.get("role") == "assistant":
            stop = end
            if eos and rendered.startswith(eos, end):
                stop = end + len(eos)
            for i in range(found, stop):
                mask[i] = True
        position = end
    return mask


# ---------------------------------------------------------------- HTML


def chat_html(messages: list[dict] | None, text: str | None = None) -> str:
    if messages is None:
        if text is not None:
            return (
                f'<div class="rv-chat"><div class="rv-msg rv-text"><div class="rv-role">text</div>'
                f'<div class="rv-body">{escape.html(text)}</div></div></div>'
            )
        return '<div class="rv-empty">This row could not be read as a conversation (see its findings).</div>'
    parts = ['<div class="rv-chat">']
    for message in messages:
        if not isinstance(message, dict):
            parts.append(
                f'<div class="rv-msg rv-bad"><div class="rv-role">not a message</div>'
                f'<div class="rv-body">{escape.html(repr(message)[:500])}</div></div>'
            )
            continue
        role = str(message.get("role", "?"))
        colour = ROLE_COLOURS.get(role, PALETTE["purple"])
        body = escape.html(_content(message.get("content")))
        if not body.strip():
            body = '<span class="rv-faint">(empty)</span>'
        extra = ""
        if message.get("tool_calls"):
            extra = f'<pre class="rv-tool">{escape.html(str(message["tool_calls"])[:1500])}</pre>'
        side = "rv-right" if role == "user" else "rv-left"
        parts.append(
            f'<div class="rv-msg {side}" style="border-left-color:{colour}">'
            f'<div class="rv-role" style="color:{colour}">{escape.html(role)}</div>'
            f'<div class="rv-body">{body}</div>{extra}</div>'
        )
    parts.append("</div>")
    return "".join(parts)


def tokens_html(spans: list[dict[str, Any]], limit: int = MAX_TOKENS_SHOWN) -> str:
    trained = sum(1 for s in spans if s["trained"] and not s["cut"])
    cut = sum(1 for s in spans if s["cut"])
    legend = (
        f'<div class="rv-legend"><span class="rv-tok rv-trained">trained</span> the loss is computed here '
        f'({trained} tokens) · <span class="rv-tok">prompt</span> context only ({len(spans) - trained - cut} tokens)'
        + (f' · <span class="rv-tok rv-cut">cut</span> beyond max_length ({cut} tokens)' if cut else "")
        + "</div>"
    )
    pieces = []
    for span in spans[:limit]:
        classes = "rv-tok" + (" rv-trained" if span["trained"] else "") + (" rv-cut" if span["cut"] else "")
        text = escape.html(span["text"]).replace("\n", "↵<br>")
        pieces.append(f'<span class="{classes}">{text}</span>')
    more = f'<div class="rv-faint">… {len(spans) - limit} more tokens not shown</div>' if len(spans) > limit else ""
    return f'{legend}<div class="rv-tokens">{"".join(pieces)}</div>{more}'


ROW_VIEW_CSS = f"""
.rv-chat {{ display: flex; flex-direction: column; gap: 8px; }}
.rv-msg {{ border-left: 4px solid {PALETTE["grey"]}; padding: 6px 10px; border-radius: 6px;
          background: var(--block-background-fill, #fafafa); max-width: 92%; }}
.rv-right {{ align-self: flex-end; }}
.rv-role {{ font-size: 0.75em; font-weight: 700; text-transform: uppercase; letter-spacing: 0.04em; }}
.rv-body {{ white-space: pre-wrap; word-break: break-word; }}
.rv-tool {{ font-size: 0.8em; white-space: pre-wrap; }}
.rv-faint, .rv-empty {{ opacity: 0.6; font-style: italic; }}
.rv-tokens {{ font-family: var(--font-mono, monospace); font-size: 0.85em; line-height: 1.9; }}
.rv-tok {{ border: 1px solid rgba(127,127,127,0.35); border-radius: 3px; padding: 0 1px; margin: 0 1px 0 0;
          white-space: pre-wrap; }}
.rv-trained {{ background: {PALETTE["orange"]}55; border-color: {PALETTE["orange"]}; }}
.rv-cut {{ text-decoration: line-through; opacity: 0.45; }}
.rv-legend {{ font-size: 0.85em; margin-bottom: 6px; }}
"""
