"""Format detection and conversion to canonical messages."""

from __future__ import annotations

import json

from studio.data import formats
from studio.data.records import Row


def convert(raw):
    row = Row(number=1, raw=raw)
    formats.convert(row)
    return row


def test_messages_with_typed_parts_and_tools():
    row = convert(
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sun"},
                {"role": "assistant", "content": "Sunny."},
            ],
            "tools": [{"type": "function", "function": {"name": "w"}}],
        }
    )
    assert row.format == "messages"
    assert row.messages[0] == {"role": "user", "content": "Hi there"}
    assert row.messages[1]["content"] == "" and row.messages[1]["tool_calls"][0]["id"] == "c1"
    assert row.messages[2]["tool_call_id"] == "c1"
    assert row.extra["tools"][0]["function"]["name"] == "w"


def test_sharegpt_role_values_are_mapped():
    row = convert(
        {
            "system": "Be kind.",
            "conversations": [
                {"from": "human", "value": "Weather?"},
                {
                    "from": "function_call",
                    "value": json.dumps({"name": "get_weather", "arguments": {"city": "Nassau"}}),
                },
                {"from": "observation", "value": "29 C"},
                {"from": "gpt", "value": "It is 29 C."},
            ],
        }
    )
    assert row.format == "sharegpt"
    roles = [m["role"] for m in row.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    call = row.messages[2]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"]) == {"city": "Nassau"}
    assert row.messages[3]["tool_call_id"] == call["id"]
    assert (
        "human→user" in row.extra["mapping"]
        and "gpt→assistant" in row.extra["mapping"]
        and "observation→tool" in row.extra["mapping"]
    )


def test_sharegpt_system_turn():
    row = convert(
        {
            "conversations": [
                {"from": "system", "value": "S"},
                {"from": "human", "value": "Q"},
                {"from": "gpt", "value": "A"},
            ]
        }
    )
    assert [m["role"] for m in row.messages] == ["system", "user", "assistant"]


def test_alpaca_with_input_system_and_history():
    row = convert(
        {
            "instruction": "Translate",
            "input": "hello",
            "output": "hola",
            "system": "You translate.",
            "history": [["Earlier?", "Yes."]],
        }
    )
    assert row.format == "alpaca"
    assert row.messages == [
        {"role": "system", "content": "You translate."},
        {"role": "user", "content": "Earlier?"},
        {"role": "assistant", "content": "Yes."},
        {"role": "user", "content": "Translate\n\nhello"},
        {"role": "assistant", "content": "hola"},
    ]


def test_alpaca_without_input():
    row = convert({"instruction": "Say hi", "input": "", "output": "Hi!"})
    assert row.messages == [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi!"}]


def test_prompt_completion_strings_and_lists():
    row = convert({"prompt": "2+2?", "completion": "4"})
    assert row.format == "prompt-completion"
    assert row.messages == [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    row = convert(
        {
            "prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
            "completion": [{"role": "assistant", "content": "A"}],
        }
    )
    assert [m["role"] for m in row.messages] == ["system", "user", "assistant"]


def test_plain_text():
    row = convert({"text": "Once upon a time."})
    assert row.format == "text" and row.text == "Once upon a time." and row.messages is None
    assert formats.canonical_record(row) == {"text": "Once upon a time."}


def test_preference_and_prompt_only_are_not_sft():
    assert convert({"prompt": "p", "chosen": "a", "rejected": "b"}).format == "preference"
    assert convert({"chosen": [{"role": "user", "content": "x"}], "rejected": []}).format == "preference"
    assert convert({"prompt": "p"}).format == "prompt-only"
    _, findings = formats.convert_rows([Row(1, {"prompt": "p", "chosen": "a", "rejected": "b"})])
    assert findings[0].rule == "SCH-NOT-SFT" and findings[0].severity == "E"


def test_unknown_format():
    assert convert({"question": "q", "answer": "a"}).format is None
    assert convert({}).format is None


def test_majority_format_and_findings():
    rows = [
        Row(i, {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
        for i in range(1, 4)
    ]
    rows.append(Row(4, {"instruction": "i", "output": "o"}))
    majority, findings = formats.convert_rows(rows)
    assert majority == "messages"
    assert {f.rule for f in findings} == {"SCH-MIXED", "SCH-CONVERT"}


def test_canonical_record_keeps_only_known_keys():
    row = convert(
        {
            "messages": [
                {"role": "user", "content": "q", "mood": "x"},
                {"role": "assistant", "content": "a", "weight": 1},
            ],
            "id": 5,
        }
    )
    assert formats.canonical_record(row) == {
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 1}]
    }


def test_conversion_never_raises_on_garbage():
    for raw in (
        {"messages": 5},
        {"conversations": [1, None, {"from": None}]},
        {"instruction": 3, "output": []},
        {"prompt": 1, "completion": None},
        {"text": None},
        {"messages": [None, "x", {"role": 1, "content": {}}]},
    ):
        convert(raw)  # must not raise
