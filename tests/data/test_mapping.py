"""Column mapping: proposals from column names, the CLI form, conversion and its checks."""

import pytest

from studio.data import load, mapping
from studio.data.lint import report_from_load
from studio.data.records import Row
from studio.errors import StudioError


def _rows(records):
    return [Row(number=i + 1, raw=record) for i, record in enumerate(records)]


QA = [
    {"id": i, "question": f"What is {i} + {i}?", "answer": f"{i} + {i} is {2 * i}.", "context": "Arithmetic."}
    for i in range(1, 6)
]


def test_proposal_for_a_question_answer_table_and_common_variants():
    proposal = mapping.propose(_rows(QA))
    assert proposal.to_dict() == {"user": "question", "assistant": "answer", "context": ["context"], "system": None}
    assert proposal.describe() == "question→user, context appended to user, answer→assistant"
    variants = {
        ("Query", "Response"): ("Query", "Response"),
        ("prompt", "response"): ("prompt", "response"),
        ("Q", "A"): ("Q", "A"),
        ("user_input", "model answer"): ("user_input", "model answer"),
    }
    for (user, answer), expected in variants.items():
        found = mapping.propose(_rows([{user: "x", answer: "y"}]))
        assert (found.user, found.assistant) == expected
    with_system = mapping.propose(
        _rows([{"system_prompt": "Be brief.", "question": "x", "input": "doc", "answer": "y"}])
    )
    assert (with_system.system, with_system.context) == ("system_prompt", ["input"])
    assert mapping.propose(_rows([{"name": "Ada", "city": "London"}])) is None  # people.csv stays unknown


def test_columns_skip_nested_values_and_keep_file_order():
    rows = _rows([{"b": "x", "a": 1, "nested": {"k": 1}, "items": [1, 2]}] * 3)
    assert mapping.columns(rows) == ["b", "a"]


def test_apply_builds_chat_rows_and_keeps_the_original():
    rows = _rows(
        QA
        + [
            {"id": 9, "question": "Empty answer?", "answer": None, "context": ""},
            {"id": 10, "question": 7.0, "answer": float("nan"), "context": None},
        ]
    )
    mapping.apply(rows, mapping.ColumnMapping("question", "answer", ["context"]))
    assert rows[0].raw == {
        "messages": [
            {"role": "user", "content": "What is 1 + 1?\n\nArithmetic."},
            {"role": "assistant", "content": "1 + 1 is 2."},
        ]
    }
    assert rows[0].extra["source_row"] == QA[0] and "question→user" in rows[0].extra["mapping"]
    assert rows[5].raw["messages"] == [
        {"role": "user", "content": "Empty answer?"},
        {"role": "assistant", "content": None},
    ]
    assert rows[6].raw["messages"][0]["content"] == "7" and rows[6].raw["messages"][1]["content"] is None
    # Applying again (another mapping) starts from the original columns, not the converted rows.
    mapping.apply(rows, mapping.ColumnMapping("answer", "question"))
    assert rows[0].raw["messages"][0]["content"] == "1 + 1 is 2."


def test_system_column_and_preview_leave_rows_untouched():
    rows = _rows([{"persona": "You are a pirate.", "q": "Hi", "a": "Ahoy!"}, {"persona": " ", "q": "Bye", "a": "Arr."}])
    preview = mapping.preview(rows, mapping.ColumnMapping("q", "a", system="persona"), n=5)
    assert [item["row"] for item in preview] == [1, 2]
    assert preview[0]["messages"][0] == {"role": "system", "content": "You are a pirate."}
    assert [m["role"] for m in preview[1]["messages"]] == ["user", "assistant"]  # a blank system cell adds nothing
    assert rows[0].raw == {"persona": "You are a pirate.", "q": "Hi", "a": "Ahoy!"}


def test_bad_mappings_are_plain_messages_with_the_columns():
    rows = _rows(QA)
    with pytest.raises(StudioError) as error:
        mapping.apply(rows, mapping.ColumnMapping("question", "reply"))
    assert "no column called 'reply'" in error.value.message and "id, question, answer, context" in error.value.hint
    with pytest.raises(StudioError, match="two roles"):
        mapping.ColumnMapping("question", "question").check(mapping.columns(rows))
    with pytest.raises(StudioError, match="user column and an assistant"):
        mapping.ColumnMapping("question", "").check(mapping.columns(rows))


def test_cli_form():
    parsed = mapping.parse_cli(["user=question", "assistant=answer", "context=a", "context=b", "system=persona"])
    assert parsed.to_dict() == {"user": "question", "assistant": "answer", "context": ["a", "b"], "system": "persona"}
    assert mapping.parse_cli(None) is None
    for bad in (
        ["user=question"],
        ["user question", "assistant=a"],
        ["bot=x", "user=y"],
        ["user=a", "user=b", "assistant=c"],
        ["user=", "assistant=a"],
    ):
        with pytest.raises(StudioError):
            mapping.parse_cli(bad)


def test_a_question_answer_csv_is_unknown_until_mapped_then_lints_clean(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text(
        "question,answer\n"
        + "".join(
            f'"Why is the number {i} special, in a sentence?","Because {i} is {i}, '
            f'and that is a fine reason for number {i}."\n'
            for i in range(12)
        )
    )
    plain = report_from_load(load.load_path(path))
    assert plain.format is None and plain.verdict == "blocked" and len(plain.valid_rows()) == 0
    assert mapping.needs_mapping(plain.rows, plain.format)
    proposal = mapping.propose(plain.rows)
    mapped = report_from_load(mapping.load_mapped(path, "qa.csv", proposal))
    assert mapped.format == "messages" and len(mapped.valid_rows()) == 12
    assert not [f for f in mapped.findings if f.severity == "E"]
    assert not mapping.needs_mapping(mapped.rows, mapped.format)
