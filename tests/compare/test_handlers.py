"""The Compare tab's handlers, called directly as Gradio would."""

import json

from studio.ui import compare_tab


def _no_progress(*args, **kwargs):
    return None


def _drain(generator):
    last = None
    count = 0
    for last in generator:
        count += 1
    return last, count


def test_refresh_lists_runs_with_adapters(tiny_run_dir):
    run_update, run_b_update, hint = compare_tab.refresh_runs()
    ids = [value for _, value in run_update["choices"]]
    assert tiny_run_dir.name in ids and "Open" in hint
    assert run_b_update["choices"][0] == ("(none)", "")
    assert compare_tab.preselect(tiny_run_dir.name)["value"] == tiny_run_dir.name


def test_open_run_fills_examples_and_summary(tiny_run_dir):
    status, examples, run_b_column, base, tuned, run_b, headline, figure, table = compare_tab.open_run(
        tiny_run_dir.name, "", progress=_no_progress)
    assert "Pirate style tiny-pirate" in status
    assert examples["samples"][0] == ["What is the capital of France?"]
    assert run_b_column["visible"] is False and base == tuned == run_b == []


def test_open_run_with_a_bad_choice_shows_a_plain_message(tmp_path):
    status, *_ = compare_tab.open_run(str(tmp_path / "nothing-here"), "", progress=_no_progress)
    assert status.startswith("**No run called") and "*Hint:*" in status


def test_chat_streams_both_columns_and_keeps_multi_turn_history(tiny_run_dir):
    args = (tiny_run_dir.name, "", "", 0, 1, 10, 0)
    last, rounds = _drain(compare_tab.chat("What is 2 + 2?", [], [], [], *args))
    message, base, tuned, run_b, base_stats, tuned_stats, _, error = last
    assert rounds > 2 and message == ""
    assert [m["role"] for m in base] == ["user", "assistant"] == [m["role"] for m in tuned]
    assert base[1]["content"] != tuned[1]["content"] and tuned[1]["content"].startswith("Ahoy")
    assert "tokens/s" in base_stats and "tokens/s" in tuned_stats and run_b == []
    # Second turn, with history as Gradio 6 hands it (content as a list of text parts).
    as_gradio = lambda history: [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}],
                                  "metadata": None, "options": None} for m in history]
    last, _ = _drain(compare_tab.chat("And 3 + 3?", as_gradio(base), as_gradio(tuned), [], *args))
    assert len(last[1]) == 4 and len(last[2]) == 4 and last[2][2]["content"] == "And 3 + 3?"


def test_chat_third_column(tiny_run_dir, tiny_run_b_dir):
    last, _ = _drain(compare_tab.chat("Say hello.", [], [], [], tiny_run_dir.name, tiny_run_b_dir.name, "", 0, 1, 6, 0))
    assert len(last[3]) == 2 and "tokens/s" in last[6]


def test_chat_errors_are_messages_not_tracebacks():
    last, _ = _drain(compare_tab.chat("hi", [], [], [], "no-such-run", "", "", 0, 1, 6, 0))
    assert last[0] == "hi"  # the question is kept so it can be resent
    assert last[-1].startswith("**No run called")
    empty, _ = _drain(compare_tab.chat("   ", [], [], [], "no-such-run", "", "", 0, 1, 6, 0))
    assert empty[1] == []


def test_evaluation_blind_test_and_report(tiny_run_dir):
    headline, figure, table = compare_tab.run_evaluation(tiny_run_dir.name, 3, None, "", 12, progress=_no_progress)
    assert "held-out prompts" in headline and figure["visible"] and len(table["value"]) == 3
    saved = json.loads((tiny_run_dir / "compare" / "eval.json").read_text())
    assert len(saved["rows"]) == 3
    # Reopening shows the saved evaluation at once.
    reopened = compare_tab.open_run(tiny_run_dir.name, "", progress=_no_progress)
    assert "saved evaluation" in reopened[6] and len(reopened[8]["value"]) == 3

    prompt, a, b, tally, index, _ = compare_tab.ab_start(tiny_run_dir.name)
    assert index == 0 and "Prompt 1 of 3" in prompt and {a, b} == {saved["rows"][0]["base"], saved["rows"][0]["tuned"]}
    for choice in ("A", "B", "tie"):
        prompt, a, b, tally, index = compare_tab.ab_vote(tiny_run_dir.name, index, choice)
    assert index is None and "All 3 prompts voted" in prompt
    assert "All 3 prompts voted" in compare_tab.ab_vote(tiny_run_dir.name, None, "A")[0]  # an extra click changes nothing
    ballot = json.loads((tiny_run_dir / "compare" / "votes.json").read_text())
    assert ballot["votes"] == {"0": "A", "1": "B", "2": "tie"}
    tuned_wins = sum(ballot["items"][i]["tuned_is"] == c for i, c in ((0, "A"), (1, "B")))
    assert f"Tuned model preferred in {tuned_wins} of 3" in tally
    text, reveal = compare_tab.ab_reveal(tiny_run_dir.name)
    assert reveal["visible"] and len(reveal["value"]) == 3 and reveal["value"][2][-1] == "tie"

    note, html_button, md_button = compare_tab.build_report(tiny_run_dir.name)
    assert html_button["value"].endswith("report-tiny-pirate.html") and md_button["value"].endswith(".md")
    assert (tiny_run_dir / "compare" / "report.html").is_file()
    page = open(html_button["value"], encoding="utf-8").read()
    assert saved["rows"][0]["prompt"] in page and "Tuned model preferred" in page


def test_blind_test_needs_an_evaluation(tiny_run_b_dir):
    prompt, *_ = compare_tab.ab_start(tiny_run_b_dir.name)
    assert "no evaluation" in prompt.lower() or "there is none yet" in prompt


def test_stop_marks_running_columns_as_stopped():
    assert compare_tab.mark_stopped("3 tokens · 2.0 tokens/s · generating…", "5 tokens · done", "") == [
        "3 tokens · 2.0 tokens/s · stopped", "5 tokens · done", ""]
