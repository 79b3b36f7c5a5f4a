"""Statistics of a linted dataset: true percentiles, budget, packing, cut tokens, figures, manifest stats."""

import math

import pytest

from studio.data import stats
from studio.data.formats import convert
from studio.data.lint import LintReport, TokenCount
from studio.data.records import Finding, Row


def make_report(records, counts=None, findings=(), max_length=None):
    rows = []
    for number, raw in enumerate(records, start=1):
        row = Row(number=number, raw=raw)
        convert(row)
        rows.append(row)
    report = LintReport(name="t.jsonl", format="messages", rows=rows, findings=list(findings), max_length=max_length)
    report.token_counts = list(counts) if counts is not None else [None] * len(rows)
    return report


def chat(question, answer, system=None):
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
    ]
    return {"messages": messages}


def test_percentiles_are_nearest_rank_values_of_the_data():
    values = list(range(1, 101))
    result = stats.percentiles(reversed(values))
    assert [result[f"p{q}"] for q in stats.PERCENTILES] == [5, 25, 50, 75, 95, 99]
    assert result["max"] == 100 and result["min"] == 1
    # On a small skewed sample every percentile is a real example's size.
    skewed = [10, 10, 10, 10, 500]
    result = stats.percentiles(skewed)
    assert (
        result["p50"] == 10 and result["p99"] == 500 and set(result[f"p{q}"] for q in stats.PERCENTILES) <= set(skewed)
    )
    assert stats.percentiles([])["max"] == 0


@pytest.mark.parametrize(
    "rows, epochs",
    [(1, 25), (10, 10), (20, 5), (33, 4), (34, 3), (5000, 3), (8333, 3), (8334, 2), (10000, 2), (30000, 1)],
)
def test_suggested_epochs_follows_openai_rule(rows, epochs):
    assert stats.suggested_epochs(rows) == epochs
    if rows * 3 < 100:
        assert stats.suggested_epochs(rows) * rows >= min(100, 25 * rows)


def test_suggested_max_length_is_p99_rounded_up_to_64_within_context():
    assert stats.suggested_max_length(100) == 128
    assert stats.suggested_max_length(128) == 128
    assert stats.suggested_max_length(129) == 192
    assert stats.suggested_max_length(1) == 64
    assert stats.suggested_max_length(5000, context=4096) == 4096


def test_packing_best_fit_decreasing():
    assert stats.pack_sequences([60, 50, 40, 30, 20], 100) == 2  # 60+40, 50+30+20
    assert stats.pack_sequences([100, 100, 1], 100) == 3
    assert stats.pack_sequences([250, 10], 100) == 2  # the long one is truncated to 100 first
    lengths = [37, 81, 12, 64, 99, 5, 44, 71, 23, 58] * 7
    packed = stats.pack_sequences(lengths, 128)
    assert math.ceil(sum(lengths) / 128) <= packed <= len(lengths)


def test_padded_tokens_pads_each_batch_to_its_longest():
    assert stats.padded_tokens([10, 20, 30, 5], batch_size=2, max_length=100) == 2 * 20 + 2 * 30
    assert stats.padded_tokens([10, 500], batch_size=2, max_length=100) == 200


def test_compute_stats_token_figures_cut_tokens_and_budget():
    records = [chat(f"Question {i}?", f"Answer {i}.", system="Be a pirate." if i % 2 else None) for i in range(20)]
    totals = [40 + 10 * i for i in range(20)]  # 40 .. 230
    counts = [TokenCount(total=t, prompt=15, trainable=t - 15, trainable_cut=max(0, t - 200)) for t in totals]
    report = make_report(records, counts, max_length=200)
    result = stats.compute_stats(report, max_length=200, batch_size=4, model="tiny", context=512)

    assert result["rows"] == {"total": 20, "valid": 20, "invalid": 0, "converted": 0, "used": 20, "unreadable": 0}
    assert result["tokens"]["total"] == sum(totals)
    assert result["tokens"]["prompt"] == 15 * 20
    assert result["tokens"]["trainable"] == sum(t - 15 for t in totals)
    per = result["tokens"]["per_example"]["total"]
    assert per["p50"] == 130 and per["max"] == 230 and per["p5"] == 40
    over = [t for t in totals if t > 200]
    assert result["length"]["rows_over_max_length"] == len(over) == 3
    assert result["length"]["tokens_cut"] == sum(t - 200 for t in over)
    assert result["length"]["trainable_tokens_cut"] == sum(t - 200 for t in over)
    assert result["length"]["suggested_max_length"] == 256  # p99 = 230 -> 256
    budget = result["budget"]
    assert budget["steps_per_epoch"] == 5 and budget["suggested_epochs"] == 5  # 20 rows: 100 // 20
    kept = sum(min(t, 200) for t in totals)
    assert budget["processed_tokens"] == kept * 5
    assert budget["total_steps"] == 25
    packing = result["packing"]
    assert packing["real_tokens"] == kept
    assert 0 < packing["padding_efficiency"] <= 1 and 0 < packing["packing_efficiency"] <= 1
    assert packing["packed_sequences"] >= math.ceil(kept / 200)
    assert result["messages_per_example"] == {"2": 10, "3": 10}
    assert result["roles"] == {"system": 10, "user": 20, "assistant": 20}
    assert result["system_prompts"]["top"] == [{"prompt": "Be a pirate.", "rows": 10}]
    assert result["system_prompts"]["rows_without"] == 10
    assert result["turns"] == {"single-turn": 20, "multi-turn": 0}


def test_rows_with_errors_are_left_out_and_subsets_can_be_chosen():
    records = [chat(f"Q{i}", f"A{i}") for i in range(6)]
    counts = [TokenCount(total=10 * (i + 1), prompt=5, trainable=5 * i + 5) for i in range(6)]
    findings = [
        Finding("CONT-EMPTY-ASSIST", "E", 2, "empty", "fill it"),
        Finding("CONT-EDGE-WS", "W", 3, "ws", "strip"),
    ]
    report = make_report(records, counts, findings)
    result = stats.compute_stats(report, max_length=1000)
    assert result["rows"]["valid"] == 5 and result["rows"]["invalid"] == 1 and result["rows"]["used"] == 5
    assert result["tokens"]["total"] == sum(10 * (i + 1) for i in range(6)) - 20
    subset = stats.compute_stats(report, max_length=1000, row_numbers=[1, 4])
    assert subset["rows"]["used"] == 2 and subset["tokens"]["total"] == 10 + 40
    assert {item["rule"]: item["count"] for item in result["findings_by_rule"]} == {
        "CONT-EMPTY-ASSIST": 1,
        "CONT-EDGE-WS": 1,
    }
    assert result["findings_by_rule"][0]["severity"] == "E"


def test_without_a_tokenizer_token_figures_are_absent_not_invented():
    report = make_report([chat("Q", "A")] * 3)
    result = stats.compute_stats(report, max_length=512)
    assert result["have_tokens"] is False
    assert result["tokens"]["total"] == 0 and result["length"]["suggested_max_length"] is None
    assert "need a model" in stats.summary_markdown(result)


def test_manifest_stats_has_the_contract_keys():
    counts = [TokenCount(total=50 + i, prompt=20, trainable=30 + i) for i in range(12)]
    report = make_report([chat(f"Q{i}", f"A{i}") for i in range(12)], counts)
    manifest = stats.manifest_stats(stats.compute_stats(report, max_length=64, model="bundled:x"))
    assert {"model", "max_length", "rows", "tokens", "suggested_max_length"} <= set(manifest)
    assert set(manifest["tokens"]) >= {"total", "trainable", "p50", "p95", "p99", "max"}
    assert manifest["model"] == "bundled:x" and manifest["rows"] == 12 and manifest["max_length"] == 64
    assert manifest["tokens"]["max"] == 61 and manifest["tokens"]["trainable"] == sum(30 + i for i in range(12))


def test_figures_mark_max_length_and_p95():
    counts = [TokenCount(total=20 + 3 * i, prompt=10, trainable=10 + 3 * i) for i in range(40)]
    report = make_report(
        [chat(f"Q{i}", f"A{i}", system="S") for i in range(40)],
        counts,
        [Finding("DUP-EXACT", "W", 3, "dup", "remove"), Finding("DS-MIN", "W", None, "few", "more")],
    )
    result = stats.compute_stats(report, max_length=100)
    figures = stats.figures(result)
    assert set(figures) == {"tokens", "messages", "roles", "system_prompts", "findings"}
    lines = {round(shape.x0) for shape in figures["tokens"].layout.shapes}
    assert lines == {100, result["tokens"]["per_example"]["total"]["p95"]}
    bins = result["histogram"]
    assert list(figures["tokens"].data[0].y) == bins["counts"] and sum(bins["counts"]) == 40
    assert bins["edges"][0] == 20 and bins["edges"][-1] > 20 + 3 * 39  # every row's total falls in a bin
    assert sum(figures["findings"].data[0].x) == 2
    colours = {trace.marker.color for trace in figures["findings"].data}
    assert colours <= set(stats.PALETTE.values())


def test_report_markdown_lists_every_finding_with_row_and_hint():
    report = make_report(
        [chat("Q", "A"), chat("Q2", "A|2")],
        findings=[Finding("CONT-PLACEHOLDER", "W", 2, "Placeholder text | here", "Replace it.")],
    )
    text = stats.report_markdown(report, stats.compute_stats(report, max_length=128), "t.jsonl", "warnings")
    assert "Ready, with warnings" in text and "CONT-PLACEHOLDER" in text and "Replace it." in text
    assert "Placeholder text \\| here" in text  # table cells stay intact
