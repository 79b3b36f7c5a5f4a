"""Detect each row's format and convert it to canonical chat `messages`.

Formats (Row.format): "messages", "sharegpt", "alpaca", "prompt-completion", "text",
"preference" (chosen/rejected: not SFT), "prompt-only" (not SFT), or None (unknown).

Canonical messages: [{"role": "system"|"user"|"assistant"|"tool", "content": str, and only when
present: "tool_calls", "tool_call_id", "name", "weight"}]. Typed content parts are joined into one
string. Conversion is lenient (it never raises): anything malformed is left for the lint rules,
which read `Row.raw`. `Row.extra["mapping"]` says what was mapped (shown as SCH-CONVERT).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from studio.data.records import Finding, Row

FORMATS = ("messages", "sharegpt", "alpaca", "prompt-completion", "text")
NOT_SFT = ("preference", "prompt-only")

# ShareGPT role VALUES (TRL renames the keys from/value but not these values).
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "model": "assistant",
    "system": "system",
    "observation": "tool",
    "tool": "tool",
    "function_response": "tool",
    "function_call": "assistant",  # becomes an assistant message with tool_calls
}

_CANONICAL_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name", "weight")


def detect(raw: Any) -> str | None:
    if not isinstance(raw, dict):
        return None
    if "chosen" in raw and "rejected" in raw:
        return "preference"
    if "messages" in raw:
        return "messages"
    if "conversations" in raw:
        return "sharegpt"
    if "instruction" in raw or ("output" in raw and "input" in raw):
        return "alpaca"
    if "prompt" in raw and "completion" in raw:
        return "prompt-completion"
    if "prompt" in raw and len([k for k in raw if k not in ("id", "source", "metadata")]) == 1:
        return "prompt-only"
    if "text" in raw:
        return "text"
    if "chosen" in raw or "rejected" in raw:
        return "preference"
    return None


def content_text(content: Any) -> str | None:
    """A message's content as one string: strings as they are, typed parts' text joined; None otherwise."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                return None
        return "".join(texts)
    return None


def _canonical(message: Any) -> dict[str, Any]:
    if not isinstance(message, dict):
        return {"role": None, "content": None}
    out: dict[str, Any] = {"role": message.get("role"), "content": content_text(message.get("content"))}
    if out["content"] is None and message.get("content") is None and message.get("tool_calls"):
        out["content"] = ""
    for key in ("tool_calls", "tool_call_id", "name", "weight"):
        if key in message:
            out[key] = message[key]
    return out


def _messages(raw: dict) -> tuple[list | None, str]:
    value = raw.get("messages")
    if not isinstance(value, list):
        return None, ""
    return [_canonical(m) for m in value], ""


def _sharegpt(raw: dict) -> tuple[list | None, str]:
    value = raw.get("conversations")
    if not isinstance(value, list):
        return None, ""
    seen: dict[str, str] = {}
    messages: list[dict[str, Any]] = []
    system = raw.get("system")
    if isinstance(system, str) and system.strip():
        messages.append({"role": "system", "content": system})
        seen["system (top-level key)"] = "system"
    for turn in value:
        if not isinstance(turn, dict):
            messages.append({"role": None, "content": None})
            continue
        source = turn.get("from", turn.get("role"))
        text = turn.get("value", turn.get("content"))
        role = SHAREGPT_ROLES.get(str(source).lower(), source) if source is not None else None
        if source is not None:
            seen[str(source)] = str(role)
        if str(source).lower() == "function_call":
            call = _parse_call(text)
            messages.append(
                {"role": "assistant", "content": "", "tool_calls": [call]}
                if call
                else {"role": "assistant", "content": content_text(text)}
            )
        else:
            messages.append({"role": role, "content": content_text(text)})
    # Link observations to the preceding function call so the pairing check holds.
    for index, message in enumerate(messages):
        if message.get("role") == "tool" and index and messages[index - 1].get("tool_calls"):
            message["tool_call_id"] = messages[index - 1]["tool_calls"][0]["id"]
    mapping = "conversations[from→role]: " + ", ".join(f"{k}→{v}" for k, v in seen.items()) + "; value→content"
    return messages, mapping


def _parse_call(value: Any) -> dict | None:
    try:
        data = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return None
    if not isinstance(data, dict) or "name" not in data:
        return None
    arguments = data.get("arguments", data.get("parameters", {}))
    return {
        "id": "call_0",
        "type": "function",
        "function": {
            "name": data["name"],
            "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
        },
    }


def _alpaca(raw: dict) -> tuple[list | None, str]:
    instruction = raw.get("instruction")
    extra_input = raw.get("input")
    output = raw.get("output")
    if not all(value is None or isinstance(value, str) for value in (instruction, extra_input, output)):
        return None, ""
    messages: list[dict[str, Any]] = []
    used = []
    if isinstance(raw.get("system"), str) and raw["system"].strip():
        messages.append({"role": "system", "content": raw["system"]})
        used.append("system→system")
    history = raw.get("history")
    if isinstance(history, list) and history:
        for pair in history:
            if isinstance(pair, (list, tuple)) and len(pair) == 2:
                messages.append({"role": "user", "content": content_text(pair[0])})
                messages.append({"role": "assistant", "content": content_text(pair[1])})
        used.append("history[[q, a]]→user/assistant turns")
    prompt = instruction or ""
    if extra_input:
        prompt = f"{prompt}\n\n{extra_input}" if prompt else extra_input
        used.append("instruction + \\n\\n + input→user")
    else:
        used.append("instruction→user")
    messages.append({"role": "user", "content": prompt})
    messages.append({"role": "assistant", "content": output if output is not None else None})
    used.append("output→assistant")
    return messages, "alpaca: " + ", ".join(used)


def _prompt_completion(raw: dict) -> tuple[list | None, str]:
    prompt, completion = raw.get("prompt"), raw.get("completion")
    if isinstance(prompt, str) and isinstance(completion, str):
        return (
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}],
            "prompt→user, completion→assistant",
        )
    if isinstance(prompt, list) and isinstance(completion, list):
        return [_canonical(m) for m in prompt] + [
            _canonical(m) for m in completion
        ], "prompt messages + completion messages"
    if isinstance(prompt, list) and isinstance(completion, str):
        return [_canonical(m) for m in prompt] + [
            {"role": "assistant", "content": completion}
        ], "prompt messages + completion→assistant"
    return None, ""


def convert(row: Row) -> None:
    """Fill row.format, row.messages / row.text and row.extra ("tools", "mapping"). Never raises."""
    raw = row.raw
    row.format = detect(raw)
    row.messages = None
    row.text = None
    if row.format is None:
        return
    try:
        if row.format == "messages":
            row.messages, mapping = _messages(raw)
        elif row.format == "sharegpt":
            row.messages, mapping = _sharegpt(raw)
        elif row.format == "alpaca":
            row.messages, mapping = _alpaca(raw)
        elif row.format == "prompt-completion":
            row.messages, mapping = _prompt_completion(raw)
        elif row.format == "text":
            row.text = raw["text"] if isinstance(raw["text"], str) else None
            mapping = ""
        else:
            mapping = ""
    except Exception:  # noqa: BLE001 - malformed rows are reported by the lint rules
        row.messages, mapping = None, ""
    if mapping:
        row.extra["mapping"] = mapping
    tools = raw.get("tools")
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except ValueError:
            pass
    if tools is not None:
        row.extra["tools"] = tools


def row_findings(row: Row) -> list[Finding]:
    """SCH-NOT-SFT / SCH-UNKNOWN for one converted row."""
    if row.format == "preference":
        return [
            Finding(
                "SCH-NOT-SFT",
                "E",
                row.number,
                "Preference data (chosen/rejected) is for DPO-style training, not supervised fine-tuning.",
                "Use the 'chosen' conversations as messages for SFT, or train with a preference method (DPO) outside "
                "the studio.",
            )
        ]
    if row.format == "prompt-only":
        return [
            Finding(
                "SCH-NOT-SFT",
                "E",
                row.number,
                "The row has a prompt but no answer (prompt-only data).",
                "Add the expected answer as 'completion', or use chat 'messages' with an assistant turn.",
            )
        ]
    if row.format is None:
        keys = ", ".join(list(row.raw)[:6]) if isinstance(row.raw, dict) else ""
        return [
            Finding(
                "SCH-UNKNOWN",
                "E",
                row.number,
                f"No recognisable format (keys: {keys or 'none'}).",
                "Use messages, conversations (ShareGPT), instruction/output (Alpaca), prompt/completion or text.",
            )
        ]
    return []


@dataclass
class FormatTally:
    """Formats seen so far (mergeable across chunks): the majority format, SCH-MIXED and SCH-CONVERT."""

    counts: Counter = field(default_factory=Counter)  # format -> rows
    first_rows: dict[str, list[int]] = field(default_factory=dict)  # known format -> its first 11 row numbers
    mappings: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # format -> (first row, rows, mapping)

    def add_rows(self, rows: list[Row]) -> None:
        for row in rows:
            self.counts[row.format] += 1
            if row.format is not None:
                first = self.first_rows.setdefault(row.format, [])
                if len(first) < 11:
                    first.append(row.number)
            mapping = row.extra.get("mapping")
            if mapping and row.format in ("sharegpt", "alpaca", "prompt-completion"):
                first_row, count, first_mapping = self.mappings.get(row.format, (row.number, 0, mapping))
                self.mappings[row.format] = (first_row, count + 1, first_mapping)

    def merge(self, other: FormatTally) -> None:
        self.counts.update(other.counts)
        for fmt, numbers in other.first_rows.items():
            self.first_rows[fmt] = sorted(self.first_rows.get(fmt, []) + numbers)[:11]
        for fmt, (first, count, mapping) in other.mappings.items():
            if fmt in self.mappings:
                mine = self.mappings[fmt]
                self.mappings[fmt] = (
                    (mine[0], mine[1] + count, mine[2]) if mine[0] <= first else (first, mine[1] + count, mapping)
                )
            else:
                self.mappings[fmt] = (first, count, mapping)

    @property
    def majority(self) -> str | None:
        known = Counter({fmt: n for fmt, n in self.counts.items() if fmt is not None})
        return known.most_common(1)[0][0] if known else None

    def findings(self) -> list[Finding]:
        """SCH-MIXED and SCH-CONVERT (file-level)."""
        known = Counter({fmt: n for fmt, n in self.counts.items() if fmt is not None})
        majority = self.majority
        findings: list[Finding] = []
        if len(known) > 1:
            minority = sorted(n for fmt, numbers in self.first_rows.items() if fmt != majority for n in numbers)
            total = sum(n for fmt, n in known.items() if fmt != majority)
            shown = ", ".join(map(str, minority[:10])) + ("…" if total > 10 else "")
            findings.append(
                Finding(
                    "SCH-MIXED",
                    "E",
                    None,
                    f"Rows come in different formats ({', '.join(f'{fmt}: {n}' for fmt, n in known.most_common())}); "
                    f"not {majority}: rows {shown}.",
                    "Trainers such as TRL decide the format from the first row only. The studio's fix converts every "
                    "row to messages.",
                )
            )
        for fmt, (first, count, mapping) in self.mappings.items():
            findings.append(
                Finding(
                    "SCH-CONVERT",
                    "I",
                    None,
                    f"{count} row(s) in {fmt} format (first: row {first}) were converted to messages: {mapping}.",
                    "Nothing to do: the studio saves the converted messages. Check a converted row to be sure the "
                    "mapping is right.",
                )
            )
        return findings


def convert_rows(rows: list[Row]) -> tuple[str | None, list[Finding]]:
    """Convert every row; return the majority format and the format-level findings
    (SCH-NOT-SFT and SCH-UNKNOWN per row, then SCH-MIXED and SCH-CONVERT)."""
    tally = FormatTally()
    findings: list[Finding] = []
    for row in rows:
        convert(row)
        findings += row_findings(row)
    tally.add_rows(rows)
    return tally.majority, findings + tally.findings()


def canonical_record(row: Row) -> dict[str, Any] | None:
    """The row as saved for training: {"messages": [...]} (or {"text": ...}); None if unusable."""
    if row.text is not None and row.format == "text":
        return {"text": row.text}
    if not row.messages:
        return None
    messages = []
    for message in row.messages:
        clean = {key: message[key] for key in _CANONICAL_KEYS if key in message}
        messages.append(clean)
    record: dict[str, Any] = {"messages": messages}
    if isinstance(row.extra.get("tools"), list):
        record["tools"] = row.extra["tools"]
    return record
