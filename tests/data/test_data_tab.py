"""The Data tab's handlers, called directly: what they return for good, messy and broken input."""

import json
from pathlib import Path

import pytest

gr = pytest.importorskip("gradio")

from studio import paths  # noqa: E402 - gradio is optional: skipped first
from studio.data import store  # noqa: E402 - gradio is optional: skipped first
from studio.ui import data_tab  # noqa: E402 - gradio is optional: skipped first

PLOTS = ("plot_tokens", "plot_messages", "plot_roles", "plot_system", "plot_findings")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return str(tiny_model_dir)


@pytest.fixture(scope="module")
def messy(tiny):
    return data_tab.lint_sample("assistant_style_messy", tiny, 0, 8, progress=None)


def verdict_of(html):
    return html.split('data-verdict="')[1].split('"')[0]


def test_messy_sample_is_blocked_with_findings_rows_and_plots(messy, tiny):
    # A check redraws its report; the hidden mapping panel's dropdowns keep what they had.
    assert set(data_tab.LINT_OUTPUTS) - set(messy) == {"map_user", "map_assistant", "map_context", "map_system"}
    assert messy["source"]["kind"] == "sample" and messy["source"]["name"] == "assistant_style_messy.jsonl"
    state = messy["state"]
    assert verdict_of(messy["verdict"]) == "blocked"
    assert "Fix and split" in messy["verdict"]
    frame = messy["findings"]["value"]
    assert list(frame.columns) == data_tab.FINDING_COLUMNS
    assert {"PII-SECRET", "CONT-EMPTY-ASSIST", "FILE-JSON"} <= set(frame["Rule"])
    assert len(frame) == min(len(state["report"].findings), data_tab.MAX_TABLE_ROWS)
    assert "error" in frame.iloc[0]["Severity"]  # errors first
    assert messy["rule"]["choices"][0] == "All" and "PII-SECRET" in messy["rule"]["choices"]
    assert "Detected format" in messy["format"] and "Converted to chat messages" in messy["format"]
    assert "At a glance" in messy["format"] and "suggested max length" in messy["format"]
    # The first flagged row is opened right away.
    assert (
        isinstance(messy["row"]["value"], int)
        and messy["chat"]
        and messy["notes"].startswith(f"**Row {messy['row']['value']}**")
    )
    assert "Tokens per example" in messy["stats"]
    for figure in (messy[name] for name in PLOTS):
        assert figure is not None and len(figure.data) >= 1
    assert messy["max_length"]["value"] == 512  # the tiny model's context fills the blank max length
    assert messy["report_box"]["visible"] is True and messy["next"]["visible"] is False
    assert state["model"] == tiny and state["max_length"] == 512
    # Decide gets the token statistics as soon as the data is checked (the contract's stats dict).
    early = messy["dataset_stats"]
    assert early["model"] == tiny and early["max_length"] == 512 and early["rows"] == state["stats"]["rows"]["used"]
    assert set(early["tokens"]) >= {"total", "trainable", "p50", "p95", "p99", "max"}


def test_clean_sample_is_not_blocked(tiny):
    out = data_tab.lint_sample("assistant_style", tiny, 0, 8, progress=None)
    assert verdict_of(out["verdict"]) in ("ready", "warnings")
    assert not any(f.severity == "E" for f in out["state"]["report"].findings)


def test_filters_by_severity_and_rule(messy):
    state = messy["state"]
    errors = data_tab.filter_findings(state, "Errors", "All")["value"]
    assert len(errors) > 0 and all("error" in cell for cell in errors["Severity"])
    update = data_tab.filter_findings(state, "All", "PII-SECRET")
    secrets = update["value"]
    assert update["label"].startswith(f"Findings ({len(secrets)} of {len(state['report'].findings)}")
    assert len(secrets) >= 1 and set(secrets["Rule"]) == {"PII-SECRET"}
    assert len(data_tab.filter_findings(state, "Info", "PII-SECRET")["value"]) == 0


def test_selecting_a_finding_opens_its_row_as_chat_and_tokens(messy):
    state = messy["state"]
    frame = data_tab.filter_findings(state, "All", "PII-SECRET")["value"]
    row_value = frame.iloc[0].tolist()
    event = gr.SelectData(None, {"index": [0, 1], "value": row_value[1], "row_value": row_value})
    opened = data_tab.select_finding(state, event)
    number, chat, tokens, notes = opened["row"]["value"], opened["chat"], opened["tokens"], opened["notes"]
    row = next(r for r in state["report"].rows if r.number == number)
    assistant = next(m["content"] for m in row.messages if m["role"] == "assistant")
    assert assistant.split()[0] in chat and 'class="rv-msg' in chat
    assert "rv-trained" in tokens and "trained" in tokens  # trained tokens highlighted, with a legend
    assert "PII-SECRET" in notes
    # A file-level finding has no row to show.
    file_event = gr.SelectData(None, {"index": [0, 2], "value": "file", "row_value": ["", "SCH-MIXED", "file", "", ""]})
    opened = data_tab.select_finding(state, file_event)
    assert "whole file" in opened["notes"] and "row" not in opened  # the row box keeps its number


def test_show_row_marks_cut_tokens_when_max_length_is_small(messy, tiny):
    out = data_tab.run_lint(messy["source"], tiny, 24, 8, progress=None)
    state = out["state"]
    assert state["max_length"] == 24
    usable = next(r for r in state["report"].rows if r.messages and r.number not in state["report"].error_rows())
    tokens = data_tab.show_row(state, usable.number)["tokens"]
    assert "rv-cut" in tokens and "beyond max_length" in tokens
    assert "LEN-TRUNC" in {f.rule for f in state["report"].findings}


def test_fix_and_split_saves_the_dataset_and_offers_the_next_step(messy):
    before = {item["path"] for item in store.list_datasets()}
    saved = data_tab.fix_and_split(messy["state"], 10, 42, "pirates v1", progress=None)
    result, downloads, dataset = saved["fix_result"], saved["downloads"], saved["dataset"]
    stats, next_btn = saved["dataset_stats"], saved["next"]
    assert "Saved" in result and "training rows" in result
    folder = Path(dataset)
    assert folder.parent == paths.datasets_dir() and str(folder) not in before
    files = downloads["value"]
    assert downloads["visible"] is True and [Path(f).name for f in files] == [
        "train.jsonl",
        "validation.jsonl",
        "rejected.jsonl",
        "report.json",
        "report.md",
    ]
    assert all(Path(f).is_file() for f in files)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["name"] == "pirates v1" and manifest["source_name"] == "assistant_style_messy.jsonl"
    assert stats == manifest["stats"] and stats["rows"] == manifest["counts"]["train"]
    assert set(stats["tokens"]) >= {"total", "trainable", "p50", "p95", "p99", "max"}
    assert manifest["counts"]["validation"] >= 1 and manifest["counts"]["rejected"] >= 1
    rejected = [json.loads(line) for line in (folder / "rejected.jsonl").read_text().splitlines()]
    error_rows = messy["state"]["report"].error_rows() & {r.number for r in messy["state"]["report"].rows}
    assert error_rows <= {item["row"] for item in rejected}
    report = json.loads((folder / "report.json").read_text())
    assert report["verdict"] == "blocked" and any(f["rule"] == "PII-SECRET" for f in report["findings"])
    assert "PII-SECRET" in (folder / "report.md").read_text()
    assert next_btn["visible"] is True
    tabs = data_tab.go_to_train()
    assert isinstance(tabs, gr.Tabs) and tabs.selected == "train"


def test_nothing_to_fix_or_check_gives_a_message_not_a_traceback():
    refused = data_tab.fix_and_split(None, 10, 42, "", progress=None)
    assert "Check some data first" in refused["fix_result"] and refused["downloads"]["visible"] is False
    assert "dataset" not in refused  # Train and Decide keep the dataset they had
    out = data_tab.run_lint(None, "bundled", 0, 8, progress=None)
    assert verdict_of(out["verdict"]) == "error" and "Nothing to check" in out["verdict"] and "Hint" in out["verdict"]
    assert out["report_box"]["visible"] is False
    out = data_tab.lint_upload(None, "bundled", 0, 8, progress=None)
    assert verdict_of(out["verdict"]) == "none"


@pytest.mark.parametrize(
    "name, data",
    [
        ("binary.jsonl", bytes(range(256)) * 4),
        ("utf16.jsonl", '{"text": "hello"}\n'.encode("utf-16")),
        ("empty.jsonl", b""),
        ("array.jsonl", b'[\n {"text": "a"},\n {"text": "b"}\n]\n'),
        ("table.csv", b"a,b\n1,2\n"),
        ("broken.parquet", b"PAR1 not really"),
    ],
)
def test_bad_files_become_findings(tmp_path, tiny, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    out = data_tab.lint_upload(str(path), tiny, 0, 8, progress=None)
    assert verdict_of(out["verdict"]) == "blocked"
    assert out["report_box"]["visible"] is True and len(out["findings"]["value"]) >= 1
    result = data_tab.fix_and_split(out["state"], 10, 0, "", progress=None)["fix_result"]
    assert "too few" in result or "Saved" in result  # a message either way, never an exception


def test_hub_offline_is_a_clear_message(tiny, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = data_tab.lint_hub("HuggingFaceH4/no_robots", "train", tiny, 0, 8, progress=None)
    assert verdict_of(out["verdict"]) == "error" and "offline" in out["verdict"].lower() and "Hint" in out["verdict"]
    assert out["source"] is None and out["report_box"]["visible"] is False


def test_a_model_that_cannot_load_still_lints_without_tokens(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = data_tab.lint_sample("assistant_style", "nobody/no-such-model-xyz", 0, 8, progress=None)
    assert verdict_of(out["verdict"]) in ("ready", "warnings", "blocked")
    assert "without token counts" in out["format"]
    assert "need a model" in out["stats"]


def test_samples_and_models_are_offered():
    assert [s["name"] for s in data_tab._samples()][:1] == ["assistant_style"]
    assert "Captain Byte" in data_tab.sample_description("assistant_style")
    refs = [ref for _, ref in data_tab.model_choices()]
    from studio.models import catalog

    assert refs[0] == catalog.BUNDLED


def test_source_picker_shows_one_source_at_a_time():
    for kind in data_tab.SOURCE_KINDS:
        boxes = data_tab.show_source(kind)
        assert [boxes[box]["visible"] for box in data_tab.SOURCE_BOXES] == [
            option == kind for option in data_tab.SOURCE_KINDS
        ]


def test_lint_json_and_the_data_tab_show_the_same_statistics(messy, tiny, capsys):
    """One statistics path: the CLI (streamed, rows not kept) and the tab (rows kept) give the same dict."""
    from studio.cli import main

    sample = store.SAMPLES_DIR / "assistant_style_messy.jsonl"
    assert main(["lint", str(sample), "--model", tiny, "--json"]) == 1
    cli = json.loads(capsys.readouterr().out)["stats"]
    tab = json.loads(json.dumps(messy["state"]["stats"], default=str))
    assert cli == tab
    per_example = tab["tokens"]["per_example"]["total"]
    # Nearest-rank percentiles: p99 is the size of a real row that trains (numpy's interpolation was not).
    report = messy["state"]["report"]
    trained = [
        count.total
        for row, count in zip(report.rows, report.token_counts)
        if count is not None and row.number not in report.error_rows()
    ]
    assert per_example["p99"] in trained and per_example["p50"] in trained
    assert len(trained) == tab["rows"]["used"]
    suggested = tab["length"]["suggested_max_length"]
    assert f"suggested max length **{suggested}**" in messy["format"]
    hint = next(f for f in report.findings if f.rule == "LEN-PACK-HINT")
    assert f"p99 {per_example['p99']})" in hint.message and f"about {suggested} " in hint.hint
    assert main(["lint", str(sample), "--model", tiny]) == 1
    readable = capsys.readouterr().out
    assert f"p99 {per_example['p99']}," in readable and f"suggested {suggested})" in readable


def test_the_row_view_never_shows_a_secret(messy):
    """PII-SECRET rows are shown with the secret masked: in the chat, the tokens and the findings."""
    state = messy["state"]
    row = next(f.row for f in state["report"].findings if f.rule == "PII-SECRET")
    opened = data_tab.row_view(state, row)
    chat = opened["chat"]
    for shown in opened.values():
        assert "AKIAIOSFODNN7EXAMPLE" not in shown and "IOSFODNN" not in shown
    assert "MASKED SECRET" in chat and "treasure bucket" in chat  # the rest of the row is shown as it is
    assert "AKIAIOSFODNN7EXAMPLE" in json.dumps(
        next(r.raw for r in state["report"].rows if r.number == row)
    )  # data untouched
