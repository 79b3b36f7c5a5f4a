"""Fix and split: E rows rejected with reasons, safe fixes, seeded split with no near-duplicate leaks."""

import random
import unicodedata

import pytest

from studio.data import clean
from studio.data.formats import convert
from studio.data.lint import LintReport
from studio.data.records import Finding, Row
from studio.errors import StudioError

WORDS = (
    "ship sail anchor treasure island parrot compass map cannon deck storm harbour rope lantern "
    "captain crew voyage wind wave gold chest coast reef tide mast flag barrel rum cove"
).split()


def make_report(records, findings=()):
    rows = []
    for number, raw in enumerate(records, start=1):
        row = Row(number=number, raw=raw)
        convert(row)
        rows.append(row)
    return LintReport(name="t.jsonl", format="messages", rows=rows, findings=list(findings))


def chat(question, answer):
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def sentence(rng, words=18):
    return " ".join(rng.choice(WORDS) for _ in range(words))


def clustered_records(seed, clusters=25):
    """Rows in clusters of near-duplicates (one word changed), plus their sizes."""
    rng = random.Random(seed)
    records, cluster_of = [], []
    for cluster in range(clusters):
        question, answer = sentence(rng), sentence(rng, 30)
        for variant in range(rng.randint(1, 4)):
            words = answer.split()
            words[-1] = f"variant{variant}"  # a near-duplicate, not an exact one
            records.append(chat(question, " ".join(words)))
            cluster_of.append(cluster)
    order = list(range(len(records)))
    rng.shuffle(order)
    return [records[i] for i in order], [cluster_of[i] for i in order]


def test_rows_with_errors_are_rejected_with_their_reasons():
    records = [chat(f"Question number {i}?", f"Answer number {i}.") for i in range(12)]
    findings = [
        Finding("CONT-EMPTY-ASSIST", "E", 3, "Empty answer.", "Write the answer."),
        Finding("PII-SECRET", "E", 3, "An API key.", "Remove it."),
        Finding("CONT-EDGE-WS", "W", 5, "Whitespace.", "Strip it."),
        Finding("DS-MIN", "W", None, "Few rows.", "Add rows."),
    ]
    result = clean.clean_and_split(make_report(records, findings), validation_fraction=0.2, seed=1)
    assert [item["row"] for item in result.rejected] == [3]
    assert [reason["rule"] for reason in result.rejected[0]["reasons"]] == ["CONT-EMPTY-ASSIST", "PII-SECRET"]
    assert result.rejected[0]["raw"] == records[2]
    assert 3 not in result.train_rows + result.validation_rows
    assert sorted(result.train_rows + result.validation_rows) == [n for n in range(1, 13) if n != 3]
    assert result.counts == {"train": 9, "validation": 2, "rejected": 1}


def test_safe_fixes_whitespace_nfc_duplicates_and_conversion():
    decomposed = unicodedata.normalize("NFD", "Café olé")
    records = [
        chat("  Hello there?  ", "\nAhoy, matey!  "),
        chat("Hello there?", "Ahoy, matey!"),  # an exact duplicate after the fixes
        chat("Where is the " + decomposed + "?", "Down the road."),
        {"conversations": [{"from": "human", "value": "Hi captain"}, {"from": "gpt", "value": "Ahoy!"}]},
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Typed "}, {"type": "text", "text": "parts"}]},
                {"role": "assistant", "content": "Fine."},
            ]
        },
        chat("Another question", "Another answer"),
    ]
    result = clean.clean_and_split(make_report(records), validation_fraction=0.2, seed=0)
    saved = {n: r for n, r in zip(result.train_rows + result.validation_rows, result.train + result.validation)}
    assert saved[1]["messages"] == [
        {"role": "user", "content": "Hello there?"},
        {"role": "assistant", "content": "Ahoy, matey!"},
    ]
    assert 2 not in saved and result.rejected[0]["row"] == 2 and result.rejected[0]["reasons"][0]["rule"] == "DUP-EXACT"
    assert saved[3]["messages"][0]["content"] == "Where is the " + unicodedata.normalize("NFC", "Café olé") + "?"
    assert saved[4]["messages"] == [
        {"role": "user", "content": "Hi captain"},
        {"role": "assistant", "content": "Ahoy!"},
    ]
    assert saved[5]["messages"][0] == {"role": "user", "content": "Typed parts"}
    assert result.fixes["duplicates_removed"] == 1 and result.fixes["whitespace"] >= 2 and result.fixes["nfc"] == 1
    assert result.fixes["converted"] == 1
    for record in saved.values():
        assert set(record) == {"messages"}
        assert all(
            isinstance(m["content"], str) and m["role"] in ("system", "user", "assistant", "tool")
            for m in record["messages"]
        )


def test_tool_calls_and_tools_are_kept():
    call = [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]
    record = {
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": call},
            {"role": "tool", "content": "5 C", "tool_call_id": "c1"},
            {"role": "assistant", "content": "5 degrees."},
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {}}}],
    }
    records = [record] + [chat(f"Question {i} about the sea", f"Answer {i}") for i in range(4)]
    result = clean.clean_and_split(make_report(records), validation_fraction=0.2, seed=0)
    saved = dict(zip(result.train_rows + result.validation_rows, result.train + result.validation))[1]
    assert saved["tools"] == record["tools"]
    assert saved["messages"][1] == {"role": "assistant", "content": "", "tool_calls": call}
    assert saved["messages"][2]["tool_call_id"] == "c1"


@pytest.mark.parametrize("seed", range(6))
def test_split_never_divides_a_near_duplicate_cluster(seed):
    records, cluster_of = clustered_records(seed)
    report = make_report(records)
    result = clean.clean_and_split(report, validation_fraction=0.15, seed=seed)
    side = {}
    for number in result.train_rows:
        side[number] = "train"
    for number in result.validation_rows:
        side[number] = "validation"
    by_cluster = {}
    for number, cluster in enumerate(cluster_of, start=1):
        by_cluster.setdefault(cluster, set()).add(side[number])
    assert all(len(sides) == 1 for sides in by_cluster.values())
    assert result.leaks == []
    # The linter's own leak check agrees.
    from studio.data.lint import find_leaks

    rows = {row.number: row for row in report.rows}
    assert find_leaks([rows[n] for n in result.train_rows], [rows[n] for n in result.validation_rows]) == []
    assert len(result.validation) >= 1 and len(result.train) >= 1


def test_near_duplicate_groups_match_known_clusters():
    records, cluster_of = clustered_records(7, clusters=15)
    groups = clean.near_duplicate_groups(records)
    for i in range(len(records)):
        for j in range(len(records)):
            assert (groups[i] == groups[j]) == (cluster_of[i] == cluster_of[j])


def test_split_is_deterministic_for_a_seed():
    records = [chat(f"Question {i}: {sentence(random.Random(i))}", f"Answer {i}") for i in range(60)]
    first = clean.clean_and_split(make_report(records), validation_fraction=0.1, seed=3)
    again = clean.clean_and_split(make_report(records), validation_fraction=0.1, seed=3)
    other = clean.clean_and_split(make_report(records), validation_fraction=0.1, seed=4)
    assert first.validation_rows == again.validation_rows and first.train == again.train
    assert first.validation_rows != other.validation_rows
    assert len(first.validation) == 6


def test_at_least_one_validation_row_and_clear_errors_when_too_few():
    records = [chat(f"Question {i} about {w}", f"Answer {i}") for i, w in enumerate(("ships", "maps", "gold"))]
    result = clean.clean_and_split(make_report(records), validation_fraction=0.05, seed=0)
    assert len(result.validation) == 1 and len(result.train) == 2
    with pytest.raises(StudioError) as error:
        clean.clean_and_split(make_report(records[:1]), validation_fraction=0.1)
    assert "too few" in error.value.message and error.value.hint
    bad = [Finding("ROLE-NO-ASSIST", "E", n, "No answer.", "Add one.") for n in (1, 2, 3)]
    with pytest.raises(StudioError):
        clean.clean_and_split(make_report(records, bad))
    with pytest.raises(StudioError):
        clean.clean_and_split(make_report(records), validation_fraction=1.5)


def test_all_near_duplicates_cannot_be_split_without_leaking():
    answer = " ".join(WORDS)
    records = [chat("Tell me about the sea", answer + f" v{i}") for i in range(5)]
    with pytest.raises(StudioError) as error:
        clean.clean_and_split(make_report(records))
    assert "near-duplicate" in error.value.message


def test_a_long_shared_system_prompt_does_not_make_rows_near_duplicates():
    system = " ".join(WORDS * 4)  # the same long system prompt on every row
    records = [
        {
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": f"Question {i}: {sentence(random.Random(i), 8)}"},
                {"role": "assistant", "content": f"Answer {i}: {sentence(random.Random(100 + i), 8)}"},
            ]
        }
        for i in range(30)
    ]
    result = clean.clean_and_split(make_report(records), validation_fraction=0.1, seed=0)
    assert len(result.validation) == 3 and len(result.train) == 27 and result.leaks == []
