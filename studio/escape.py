"""Escaping for every user-controlled text shown as Markdown or HTML: one helper per language.

Run and dataset names, rows, lint messages that quote rows, model outputs, file names and Hub ids can
hold `![x](http://evil)`, `<img onerror=…>`, `[link](javascript:…)`, backticks or pipes. Passed through
these functions they show as the literal characters and nothing in them becomes an image, a link, a tag,
a table cell or a heading.

    escape.md(text)         Markdown body text: Markdown's active characters backslash-escaped, & < > as HTML
                            entities, bare URLs broken up (so no raw HTML, link, emphasis or heading survives)
    escape.md_inline(text)  the same on one line (newlines become spaces): headers, list items, bold labels
    escape.md_cell(text)    the same for a Markdown table cell (line breaks shown as <br>)
    escape.md_code(text)    an inline code span that holds any text (the fence outgrows its backticks)
    escape.unmd(text)       the exact inverse of md(): the text a visitor typed, from a chat history
    escape.html(text)       HTML text and attribute values (quote=False: Plotly labels)

Markdown built by the studio itself (its own bold labels, tables) stays as it is; only the values put into
it go through these.
"""

from __future__ import annotations

import html as _html
import re

# Backslash-escaped everywhere (CommonMark lets a backslash escape any ASCII punctuation): code spans,
# emphasis, link and image brackets, table pipes, headings, strikethrough, e-mail autolinks.
_MD_ALWAYS = frozenset("\\`*_[]|#~@")
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}  # no raw HTML, no <autolink>, no blockquote
_URL_START = re.compile(r"(?i)(?<=:)//|(?<=www)\.")  # bare http://… and www.… links (GFM autolinks)
# List markers, numbered items, setext underlines and rules at a line's start.
_LINE_START = re.compile(r"(?m)^([ \t]*)([-+=]|\d{1,9}[.)])(?=[ \t]|$|[-=][-= \t]*$)")
_MD_TOKEN = re.compile(r"\\([\\`*_\[\]|#~@/.)+=-])|&amp;|&lt;|&gt;")
_MD_UNENTITY = {"&amp;": "&", "&lt;": "<", "&gt;": ">"}


def md(text) -> str:
    """`text` as literal Markdown text: no image, link, autolink, raw HTML, code span, emphasis, heading, list or
    table survives; it reads as typed."""
    value = "" if text is None else str(text)
    out = []
    for index, char in enumerate(value):
        if char == "_" and 0 < index < len(value) - 1 and value[index - 1].isalnum() and value[index + 1].isalnum():
            out.append(char)  # snake_case: an underscore inside a word never starts emphasis (keeps names readable)
        elif char in _MD_ALWAYS:
            out.append("\\" + char)
        else:
            out.append(_MD_ENTITIES.get(char, char))
    escaped = "".join(out)
    escaped = _URL_START.sub(lambda m: "\\/\\/" if m.group(0) == "//" else "\\.", escaped)
    return _LINE_START.sub(lambda m: m.group(1) + (m.group(2)[:-1] + "\\" + m.group(2)[-1]), escaped)


def md_inline(text) -> str:
    """md() on one line: line breaks become spaces (a header or a list item stays one line)."""
    return md(" ".join(("" if text is None else str(text)).split()))


def md_cell(text) -> str:
    """md() for a Markdown table cell: pipes escaped, line breaks shown as <br>."""
    lines = ("" if text is None else str(text)).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "<br>".join(md(line) for line in lines)


def md_code(text) -> str:
    """An inline code span showing `text` verbatim (inside code spans nothing is interpreted; newlines become
    spaces)."""
    value = " ".join(("" if text is None else str(text)).splitlines())
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if value.startswith("`") or value.endswith("`") or not value.strip() else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def unmd(text) -> str:
    """The inverse of md(): md() text back to what was escaped (other text is returned as it is)."""
    return _MD_TOKEN.sub(
        lambda m: m.group(1) if m.group(1) is not None else _MD_UNENTITY[m.group(0)], "" if text is None else str(text)
    )


def html(text, quote: bool = True) -> str:
    """`text` as HTML text or a quoted attribute value. quote=False for Plotly labels, which read <b>, <a href>
    and &lt; &gt; &amp; but show other entities (&quot;) as they are."""
    return _html.escape("" if text is None else str(text), quote=quote)
