"""The Data tab's column mapping and dismissals, through its handlers as Gradio calls them."""

import json
from pathlib import Path

import pytest

gr = pytest.importorskip("gradio")

from studio.ui import data_tab  # noqa: E402 - gradio is optional: skipped first


def verdict_of(html):
    return html.split('data-verdict="')[1].split('"')[0]


@pytest.fixture
def qa_csv(tmp_path):
    path = tmp_path / "support.csv"
    rows = "".join(
        f'"How do I reset password number {i}?","Open settings, pick account {i}, then press reset.",'
        f'"You are a support agent.","Account {i} uses single sign-on."\n'
        for i in range(30)
    )
    path.write_text("question,answer,system,context\n" + rows)
    return path


def test_a_question_answer_csv_is_proposed_a_mapping_previewed_applied_and_saved(qa_csv, tiny_model_dir):
    tiny = str(tiny_model_dir)
    out = data_tab.lint_upload(str(qa_csv), tiny, 0, 8, progress=None)
    assert verdict_of(out["verdict"]) == "blocked"  # 0 usable rows as the file is
    box = out["map_box"]
    assert box["visible"] is True and box["open"] is True and "not a chat format" in box["label"]
    assert (out["map_user"]["value"], out["map_assistant"]["value"]) == ("question", "answer")
    assert out["map_context"]["value"] == ["context"] and out["map_system"]["value"] == "system"
    assert "How do I reset password number 0?" in out["map_preview"] and "rv-msg" in out["map_preview"]
    # The user changes the mapping: no context column. The preview follows; nothing is linted yet.
    state = out["state"]
    preview = data_tab.preview_mapping(state, "question", "answer", [], "(none)")
    assert "single sign-on" not in preview and "question→user, answer→assistant" in preview
    assert "no column called" in data_tab.preview_mapping(state, "question", "nope", [], "(none)")

    applied = data_tab.apply_mapping(
        out["source"], "question", "answer", ["context"], "system", tiny, 0, 8, progress=None
    )
    assert applied["map_status"].startswith("Rows converted with: system→system, question→user")
    mapped = applied
    assert verdict_of(mapped["verdict"]) in ("ready", "warnings")
    assert mapped["source"]["mapping"]["user"] == "question"
    assert "column mapping" in mapped["format"] and "in use" in mapped["map_box"]["label"]
    row = mapped["state"]["report"].rows[0]
    assert [m["role"] for m in row.messages] == ["system", "user", "assistant"]
    assert row.messages[1]["content"].endswith("\n\nAccount 0 uses single sign-on.")
    # A re-check (another max length) keeps the mapping.
    again = data_tab.run_lint(mapped["source"], tiny, 256, 8, progress=None)
    assert again["state"]["report"].format == "messages"

    saved = data_tab.fix_and_split(again["state"], 10, 1, "support", progress=None)
    result, dataset = saved["fix_result"], saved["dataset"]
    manifest = json.loads((Path(dataset) / "manifest.json").read_text())
    assert manifest["column_mapping"] == {
        "user": "question",
        "assistant": "answer",
        "context": ["context"],
        "system": "system",
    }
    assert manifest["counts"]["train"] + manifest["counts"]["validation"] == 30
    assert "built every row from the columns" in result
    train = [json.loads(line) for line in (Path(dataset) / "train.jsonl").read_text().splitlines()]
    assert train[0]["messages"][0] == {"role": "system", "content": "You are a support agent."}
    assert "## Column mapping" in (Path(dataset) / "report.md").read_text()

    # The same file uploaded again: the saved dataset's mapping comes back by itself.
    back = data_tab.lint_upload(str(qa_csv), tiny, 0, 8, progress=None)
    assert back["source"]["mapping"]["user"] == "question" and back["source"]["carried_from"] == "support"
    assert verdict_of(back["verdict"]) in ("ready", "warnings")
    cleared = data_tab.clear_mapping(back["source"], tiny, 0, 8, progress=None)
    assert verdict_of(cleared["verdict"]) == "blocked" and "mapping" not in cleared["source"]


def test_a_mapping_naming_a_missing_column_changes_nothing(qa_csv, tiny_model_dir):
    out = data_tab.lint_upload(str(qa_csv), str(tiny_model_dir), 0, 8, progress=None)
    result = data_tab.apply_mapping(
        out["source"], "question", "reply", [], "(none)", str(tiny_model_dir), 0, 8, progress=None
    )
    assert "no column called 'reply'" in result["map_status"] and set(result) == {"map_status"}


def test_chat_files_get_no_mapping_panel(tiny_model_dir):
    out = data_tab.lint_sample("assistant_style", str(tiny_model_dir), 0, 8, progress=None)
    assert out["map_box"]["visible"] is False


def test_dismissing_a_secret_finding_unblocks_its_row_and_is_saved_with_the_reason(tmp_path, tiny_model_dir):
    tiny = str(tiny_model_dir)
    path = tmp_path / "art.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Which painting is number {i}?"},
                {"role": "assistant", "content": f"Painting {i} is a fine work from the museum's hall {i}."},
            ]
        }
        for i in range(20)
    ]
    rows[4]["messages"][1]["content"] = "The key is AKIAIOSFODNN7EXAMPLE, use it."  # a (fake) AWS key
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = data_tab.lint_upload(str(path), tiny, 0, 8, progress=None)
    assert verdict_of(out["verdict"]) == "blocked" and "PII-SECRET" in out["dismiss_rule"]["choices"]
    source, state = out["source"], out["state"]

    # Clicking the finding fills the form.
    frame = data_tab.filter_findings(state, "All", "PII-SECRET")["value"]
    event = gr.SelectData(None, {"index": [0, 1], "value": "PII-SECRET", "row_value": frame.iloc[0].tolist()})
    picked = data_tab.pick_for_dismissal(state, event)
    assert (picked["dismiss_rule"]["value"], picked["dismiss_row"]["value"], picked["dismiss_scope"]["value"]) == (
        "PII-SECRET",
        5,
        data_tab.DISMISS_SCOPES[0],
    )

    refused = data_tab.dismiss_finding(source, state, "PII-SECRET", 5, data_tab.DISMISS_SCOPES[0], "  ")
    assert "why" in refused["dismiss_status"] and "verdict" not in refused  # the report stays as it was
    done = data_tab.dismiss_finding(
        source, state, "PII-SECRET", 5, data_tab.DISMISS_SCOPES[0], "test fixture key, not real"
    )
    assert done["dismiss_status"].startswith("Dismissed: PII-SECRET (row 5)") and done["dismiss_reason"] == ""
    assert verdict_of(done["verdict"]) in ("ready", "warnings")
    assert "PII-SECRET" not in set(done["findings"]["value"]["Rule"])
    assert "test fixture key, not real" in done["dismissed"] and "(1 finding)" in done["dismissed"]

    dataset = data_tab.fix_and_split(done["state"], 10, 3, "art", progress=None)["dataset"]
    folder = Path(dataset)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["counts"]["rejected"] == 0 and manifest["counts"]["train"] + manifest["counts"]["validation"] == 20
    assert [(d["rule"], d["row"], d["reason"]) for d in manifest["dismissals"]] == [
        ("PII-SECRET", 5, "test fixture key, not real")
    ]
    assert "PII-SECRET" not in manifest["findings_summary"]
    report_md = (folder / "report.md").read_text()
    assert "## Dismissed findings" in report_md and "test fixture key, not real" in report_md
    report = json.loads((folder / "report.json").read_text())
    assert report["dismissed_findings"][0]["rule"] == "PII-SECRET" and report["verdict"] != "blocked"

    restored = data_tab.restore_dismissed(done["source"], done["state"])
    assert verdict_of(restored["verdict"]) == "blocked" and restored["source"]["dismissals"] == []


def test_structural_errors_cannot_be_dismissed_in_the_tab(tiny_model_dir):
    out = data_tab.lint_sample("assistant_style_messy", str(tiny_model_dir), 0, 8, progress=None)
    result = data_tab.dismiss_finding(
        out["source"], out["state"], "ROLE-NO-ASSIST", 28, data_tab.DISMISS_SCOPES[0], "I want it"
    )
    assert "cannot be dismissed" in result["dismiss_status"]
    every = data_tab.dismiss_finding(
        out["source"], out["state"], "PII-SECRET", None, data_tab.DISMISS_SCOPES[1], "sample data"
    )
    assert "every row" in every["dismiss_status"] and every["source"]["dismissals"][0]["row"] is None


def test_public_mode_carries_over_only_the_callers_own_mapping_and_reasons(monkeypatch):
    """Another visitor checking the same file bytes gets none of the owner's column mapping or dismissal reasons."""
    import secrets

    from studio import access, paths
    from studio.data import store

    monkeypatch.setenv("SPACE_ID", "tests/studio")
    alice, bob = (access.Identity(access.new_browser_id(), access.ANONYMOUS) for _ in range(2))
    sha = secrets.token_hex(32)
    folder = paths.datasets_dir() / f"alice-{secrets.token_hex(4)}"
    folder.mkdir()
    (folder / "train.jsonl").write_text("{}\n")
    (folder / store.MANIFEST).write_text(
        json.dumps(
            {
                "id": folder.name,
                "name": "alice's data",
                "owner": alice.user_id,
                "source_sha256": sha,
                "column_mapping": {"user": "question", "assistant": "answer", "context": [], "system": None},
                "dismissals": [
                    {"rule": "PII-EMAIL", "row": None, "reason": "alice's private reason", "created_at": ""}
                ],
            }
        )
    )
    with access.acting(bob):
        assert store.carried_over(sha) == {}
    with access.acting(alice):  # positive control: the owner gets them back
        back = store.carried_over(sha)
    assert back["dataset"] == "alice's data" and back["dismissals"][0]["reason"] == "alice's private reason"
