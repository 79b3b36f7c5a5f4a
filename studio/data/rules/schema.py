"""Per-row schema (B), roles (C) and tool-calling (F) rules."""

from __future__ import annotations

import json
from typing import Any

from studio.data.records import Finding, Row

ROLES = ("system", "user", "assistant", "tool")
MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "reasoning_content", "thinking"}
SHAREGPT_TURN_KEYS = {"from", "value", "weight", "name"}
TOP_LEVEL_KEYS = {
    "messages": {"messages", "tools"},
    "sharegpt": {"conversations", "system", "tools"},
    "alpaca": {"instruction", "input", "output", "system", "history"},
    "prompt-completion": {"prompt", "completion", "tools"},
    "text": {"text"},
}
METADATA_KEYS = {
    "id",
    "source",
    "metadata",
    "category",
    "tags",
    "lang",
    "language",
    "split",
    "dataset",
    "idx",
    "index",
    "uuid",
}
TEXT_PART_TYPES = {"text", "input_text", "output_text"}


def _f(rule: str, severity: str, row: Row, message: str, hint: str) -> Finding:
    return Finding(rule, severity, row.number, message, hint)


def check_row(row: Row) -> list[Finding]:
    raw = row.raw
    if not isinstance(raw, dict) or row.format not in TOP_LEVEL_KEYS:
        return []
    findings: list[Finding] = []
    extra = [key for key in raw if key not in TOP_LEVEL_KEYS[row.format] and key not in METADATA_KEYS]
    legacy = [key for key in extra if key in ("functions", "function_call")]
    if legacy:
        findings.append(
            _f(
                "TOOL-LEGACY",
                "W",
                row,
                f"Legacy OpenAI function-calling key(s): {', '.join(legacy)}.",
                "Use 'tools' (top level) and 'tool_calls' on assistant messages instead.",
            )
        )
    extra = [key for key in extra if key not in legacy]
    if extra:
        findings.append(
            _f(
                "SCH-EXTRA-KEYS",
                "W",
                row,
                f"Unknown top-level key(s) for {row.format}: {', '.join(map(str, extra[:8]))}.",
                "They are ignored in training; remove them, or check they do not hold data you meant to train on.",
            )
        )
    if row.format == "messages":
        findings += _check_message_list(row, raw.get("messages"), "messages")
    elif row.format == "sharegpt":
        findings += _check_sharegpt(row, raw.get("conversations"))
    elif row.format == "alpaca":
        findings += _check_alpaca(row, raw)
    elif row.format == "prompt-completion":
        for key in ("prompt", "completion"):
            value = raw.get(key)
            if isinstance(value, list):
                findings += _check_message_list(row, value, key)
            elif not isinstance(value, str):
                findings.append(
                    _f(
                        "SCH-CONTENT-TYPE",
                        "E",
                        row,
                        f"'{key}' is a {type(value).__name__}, not a string or a list of messages.",
                        f"Make '{key}' a string (or a list of chat messages).",
                    )
                )
    elif row.format == "text":
        text = raw.get("text")
        if not isinstance(text, str):
            findings.append(
                _f(
                    "SCH-CONTENT-TYPE",
                    "E",
                    row,
                    f"'text' is a {type(text).__name__}, not a string.",
                    "Make 'text' a string.",
                )
            )
        elif not text.strip():
            findings.append(
                _f(
                    "CONT-EMPTY-ASSIST",
                    "E",
                    row,
                    "The text is empty: there is nothing to train on.",
                    "Remove the row or fill in the text.",
                )
            )
    if not row.messages:
        return findings
    if not any(f.severity == "E" for f in findings):
        findings += check_roles(row)
    # Tool calls are checked even on a row with another error, so an undeclared function is never missed.
    findings += check_tools(row)
    return findings


def _check_message_list(row: Row, messages: Any, key: str) -> list[Finding]:
    if not isinstance(messages, list):
        return [
            _f(
                "SCH-MSG-LIST",
                "E",
                row,
                f"'{key}' is a {type(messages).__name__}, not a list of messages.",
                f'Make \'{key}\' a list like [{{"role": "user", "content": "…"}}, …].',
            )
        ]
    if not messages:
        return [_f("SCH-MSG-LIST", "E", row, f"'{key}' is an empty list.", "Remove the row or add the conversation.")]
    findings: list[Finding] = []
    for index, message in enumerate(messages, 1):
        if not isinstance(message, dict):
            findings.append(
                _f(
                    "SCH-MSG-KEYS",
                    "E",
                    row,
                    f"Message {index} is a {type(message).__name__}, not an object.",
                    'Each message must be an object with "role" and "content".',
                )
            )
            continue
        if "role" not in message:
            findings.append(
                _f(
                    "SCH-MSG-KEYS",
                    "E",
                    row,
                    f"Message {index} has no 'role'.",
                    "Add role: system, user, assistant or tool.",
                )
            )
        elif not isinstance(message["role"], str):
            findings.append(
                _f(
                    "SCH-MSG-KEYS",
                    "E",
                    row,
                    f"Message {index} has a role that is not a string.",
                    "Use role: system, user, assistant or tool.",
                )
            )
        content = message.get("content")
        if "content" not in message or (content is None and not message.get("tool_calls")):
            findings.append(
                _f(
                    "SCH-MSG-KEYS",
                    "E",
                    row,
                    f"Message {index} has no content.",
                    "Add 'content' (it may be null only on an assistant message with tool_calls).",
                )
            )
        elif content is not None:
            problem = _content_problem(content)
            if problem:
                findings.append(
                    _f(
                        "SCH-CONTENT-TYPE",
                        "E",
                        row,
                        f"Message {index}: {problem}",
                        'Use a string, or a list of parts like [{"type": "text", "text": "…"}].',
                    )
                )
        unknown = [k for k in message if k not in MESSAGE_KEYS and k != "function_call"]
        if unknown:
            findings.append(
                _f(
                    "SCH-MSG-EXTRA",
                    "W",
                    row,
                    f"Message {index} has unknown key(s): {', '.join(map(str, unknown[:6]))}.",
                    "Chat templates ignore them; remove them or rename to a known key (name, weight, tool_calls, "
                    "tool_call_id).",
                )
            )
        if "function_call" in message:
            findings.append(
                _f(
                    "TOOL-LEGACY",
                    "W",
                    row,
                    f"Message {index} uses the legacy 'function_call'.",
                    "Use 'tool_calls' (a list of {id, type: function, function: {name, arguments}}).",
                )
            )
    return findings


def _content_problem(content: Any) -> str | None:
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return f"content is a {type(content).__name__}, neither a string nor a list of typed parts."
    for part in content:
        if not isinstance(part, dict) or "type" not in part:
            return 'content list holds an item that is not a typed part ({"type": …}).'
        if part["type"] in TEXT_PART_TYPES:
            if not isinstance(part.get("text"), str):
                return "a text part has no 'text' string."
        else:
            return f"a '{part['type']}' part: only text parts can be trained with a text model."
    return None


def _check_sharegpt(row: Row, turns: Any) -> list[Finding]:
    if not isinstance(turns, list):
        return [
            _f(
                "SCH-MSG-LIST",
                "E",
                row,
                f"'conversations' is a {type(turns).__name__}, not a list.",
                'Make it a list like [{"from": "human", "value": "…"}, …].',
            )
        ]
    if not turns:
        return [
            _f("SCH-MSG-LIST", "E", row, "'conversations' is an empty list.", "Remove the row or add the conversation.")
        ]
    findings: list[Finding] = []
    for index, turn in enumerate(turns, 1):
        if not isinstance(turn, dict):
            findings.append(
                _f("SCH-MSG-KEYS", "E", row, f"Turn {index} is not an object.", 'Each turn is {"from": …, "value": …}.')
            )
            continue
        if "from" not in turn and "role" not in turn:
            findings.append(
                _f(
                    "SCH-MSG-KEYS",
                    "E",
                    row,
                    f"Turn {index} has no 'from'.",
                    "Add from: human, gpt, system, observation or function_call.",
                )
            )
        value = turn.get("value", turn.get("content"))
        if value is None:
            findings.append(
                _f("SCH-MSG-KEYS", "E", row, f"Turn {index} has no 'value'.", "Add the turn's text as 'value'.")
            )
        elif not isinstance(value, str):
            problem = _content_problem(value)
            if problem:
                findings.append(_f("SCH-CONTENT-TYPE", "E", row, f"Turn {index}: {problem}", "Make 'value' a string."))
        unknown = [k for k in turn if k not in SHAREGPT_TURN_KEYS and k not in ("role", "content")]
        if unknown:
            findings.append(
                _f(
                    "SCH-MSG-EXTRA",
                    "W",
                    row,
                    f"Turn {index} has unknown key(s): {', '.join(map(str, unknown[:6]))}.",
                    "They are ignored; remove them.",
                )
            )
    return findings


def _check_alpaca(row: Row, raw: dict) -> list[Finding]:
    findings: list[Finding] = []
    for key in ("instruction", "input", "output", "system"):
        if key in raw and raw[key] is not None and not isinstance(raw[key], str):
            findings.append(
                _f(
                    "SCH-CONTENT-TYPE",
                    "E",
                    row,
                    f"'{key}' is a {type(raw[key]).__name__}, not a string.",
                    f"Make '{key}' a string.",
                )
            )
    if "output" not in raw or raw.get("output") is None:
        findings.append(
            _f(
                "SCH-MSG-KEYS",
                "E",
                row,
                "The Alpaca row has no 'output' (the answer to train on).",
                "Add 'output', or remove the row.",
            )
        )
    history = raw.get("history")
    if history is not None and not (
        isinstance(history, list)
        and all(isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in history)
    ):
        findings.append(
            _f(
                "SCH-CONTENT-TYPE",
                "E",
                row,
                "'history' is not a list of [question, answer] string pairs.",
                'Use "history": [["question", "answer"], …].',
            )
        )
    return findings


def check_roles(row: Row) -> list[Finding]:
    findings: list[Finding] = []
    messages = row.messages or []
    roles = [m.get("role") for m in messages]
    unknown = sorted({str(r) for r in roles if r not in ROLES and r != "function"})
    if unknown:
        findings.append(
            _f(
                "ROLE-UNKNOWN",
                "E",
                row,
                f"Unknown role(s): {', '.join(unknown)}.",
                "Use system, user, assistant or tool (ShareGPT: human, gpt, system, observation, function_call).",
            )
        )
    if "function" in roles:
        findings.append(
            _f(
                "TOOL-LEGACY",
                "W",
                row,
                "A message has the legacy role 'function'.",
                "Use role 'tool' with a tool_call_id that matches the assistant's tool_calls.",
            )
        )
    if "assistant" not in roles:
        findings.append(
            _f(
                "ROLE-NO-ASSIST",
                "E",
                row,
                "The conversation has no assistant turn: nothing to learn.",
                "Add the answer as an assistant message, or remove the row.",
            )
        )
        return findings
    if roles and roles[-1] != "assistant":
        findings.append(
            _f(
                "ROLE-TAIL",
                "W",
                row,
                f"The conversation ends on '{roles[-1]}', not on the assistant.",
                "Remove the trailing turn(s) or add the assistant's answer; a trailing prompt is never trained on.",
            )
        )
    for index in range(1, len(roles)):
        if roles[index] == roles[index - 1] and roles[index] in ("user", "assistant", "system"):
            findings.append(
                _f(
                    "ROLE-ALTERNATE",
                    "W",
                    row,
                    f"Messages {index} and {index + 1} are both '{roles[index]}'.",
                    "Merge consecutive turns of the same role; some chat templates (Llama 2, Gemma, Mistral) raise "
                    "on this.",
                )
            )
            break
    systems = [i for i, r in enumerate(roles) if r == "system"]
    if len(systems) > 1 or (systems and systems[0] != 0):
        findings.append(
            _f(
                "ROLE-SYSTEM-POS",
                "W",
                row,
                "More than one system message."
                if len(systems) > 1
                else f"The system message is message {systems[0] + 1}, not the first.",
                "Keep one system message, first in the conversation.",
            )
        )
    first = next((r for r in roles if r != "system"), None)
    if first == "assistant":
        findings.append(
            _f(
                "ROLE-FIRST",
                "W",
                row,
                "The first turn after the system prompt is the assistant's.",
                "Start with the user's message; the model learns answers to prompts.",
            )
        )
    for index, message in enumerate(messages, 1):
        if "weight" in message:
            weight = message["weight"]
            if weight not in (0, 1) or isinstance(weight, bool):
                findings.append(
                    _f(
                        "ROLE-WEIGHT",
                        "E",
                        row,
                        f"Message {index} has weight {weight!r}; only 0 or 1 is allowed.",
                        "Use weight 1 (train on this answer) or 0 (skip it).",
                    )
                )
            elif message.get("role") != "assistant":
                findings.append(
                    _f(
                        "ROLE-WEIGHT",
                        "W",
                        row,
                        f"Message {index} ({message.get('role')}) has a weight; weights apply to assistant messages "
                        f"only.",
                        "Remove the weight from non-assistant messages.",
                    )
                )
    return findings


def _tool_names(tools: Any) -> set[str] | None:
    if not isinstance(tools, list):
        return None
    names = set()
    for tool in tools:
        if isinstance(tool, dict):
            function = tool.get("function", tool)
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                names.add(function["name"])
    return names


def check_tools(row: Row) -> list[Finding]:
    findings: list[Finding] = []
    names = _tool_names(row.extra.get("tools"))
    call_ids: set[str] = set()
    for index, message in enumerate(row.messages or [], 1):
        calls = message.get("tool_calls")
        if calls is not None:
            if not isinstance(calls, list) or not calls:
                findings.append(
                    _f(
                        "TOOL-SHAPE",
                        "E",
                        row,
                        f"Message {index}: tool_calls is not a non-empty list.",
                        "Use tool_calls: [{id, type: 'function', function: {name, arguments}}].",
                    )
                )
                continue
            for call in calls:
                problem = _call_problem(call)
                if problem:
                    findings.append(
                        _f(
                            "TOOL-SHAPE",
                            "E",
                            row,
                            f"Message {index}: {problem}",
                            "Each tool call needs id, type 'function', function.name and function.arguments (a JSON "
                            "object or JSON string).",
                        )
                    )
                else:
                    call_ids.add(str(call["id"]))
                # The name is checked on every call that has one, even a call with another problem.
                name = _call_name(call)
                if names is not None and name is not None and name not in names:
                    findings.append(
                        _f(
                            "TOOL-SCHEMA",
                            "E",
                            row,
                            f"Message {index} calls '{name}', which is not among the row's tools "
                            f"({', '.join(sorted(names)) or 'none'}).",
                            "Add the tool's definition to 'tools' or fix the name.",
                        )
                    )
        if message.get("role") == "tool":
            call_id = message.get("tool_call_id")
            if call_id is None or str(call_id) not in call_ids:
                findings.append(
                    _f(
                        "TOOL-PAIRING",
                        "E",
                        row,
                        f"Tool message {index} has no tool_call_id."
                        if call_id is None
                        else (
                            f"Tool message {index} answers tool_call_id {call_id!r}, which no earlier assistant "
                            f"tool call has."
                        ),
                        "Give each tool result the id of the assistant tool call it answers.",
                    )
                )
    return findings


def _call_name(call: Any) -> str | None:
    function = call.get("function") if isinstance(call, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else None


def _call_problem(call: Any) -> str | None:
    if not isinstance(call, dict):
        return "a tool call is not an object."
    missing = [key for key in ("id", "type", "function") if key not in call]
    if missing:
        return f"a tool call lacks {', '.join(missing)}."
    function = call["function"]
    if not isinstance(function, dict) or not isinstance(function.get("name"), str) or "arguments" not in function:
        return "a tool call's function lacks name or arguments."
    arguments = function["arguments"]
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except ValueError:
            return f"the arguments of '{function['name']}' are not valid JSON."
        if not isinstance(parsed, dict):
            return f"the arguments of '{function['name']}' are not a JSON object."
    elif not isinstance(arguments, dict):
        return f"the arguments of '{function['name']}' are neither a JSON object nor a JSON string."
    return None
