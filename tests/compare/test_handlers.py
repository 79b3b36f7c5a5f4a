"""The Compare tab's handlers, called directly as Gradio would."""

import json

from studio.ui import compare_tab


def _no_progress(*args, **kwargs):
    return None


def _drain(generator):
    last = None
    count = 0
    for last in generator:  # noqa: B007 - keeps the last item
        count += 1
    return last, count


def test_refresh_lists_runs_with_adapters(tiny_run_dir):
    listed = compare_tab.refresh_runs()
    run_update, run_b_update, hint = listed["run"], listed["run_b"], listed["status"]
    ids = [value for _, value in run_update["choices"]]
    assert tiny_run_dir.name in ids and "Open" in hint
    assert run_b_update["choices"][0] == ("(none)", "")
    assert compare_tab.preselect(tiny_run_dir.name)["value"] == tiny_run_dir.name


def test_open_run_fills_examples_summary_and_the_models_decoding_defaults(tiny_run_dir):
    opened = compare_tab.open_run(tiny_run_dir.name, "", progress=_no_progress)
    status, examples, run_b_column = opened["status"], opened["examples"], opened["run_b_column"]
    base, tuned, run_b = (opened[name] for name in compare_tab.CHAT_COLUMNS)
    temperature, penalty, greedy = opened["temperature"], opened["repetition_penalty"], opened["greedy"]
    note = opened["settings_note"]
    assert "Pirate style tiny-pirate" in status
    assert "200 of 200 steps" in status and "learning rate 0.005 (set by hand)" in status
    assert examples["samples"][0] == ["What is the capital of France?"]
    assert run_b_column["visible"] is False and base == tuned == run_b == []
    # The tiny model's generation_config has no sampling values: the studio's fair defaults, guard on.
    assert temperature["value"] > 0 and penalty["value"] > 1 and greedy["value"] is False
    assert "repetition penalty" in note and "studio defaults" in note


def test_open_run_with_a_bad_choice_shows_a_plain_message(tmp_path):
    status = compare_tab.open_run(str(tmp_path / "nothing-here"), "", progress=_no_progress)["status"]
    assert status.startswith("**No run called") and "*Hint:*" in status


def test_chat_streams_both_columns_and_keeps_multi_turn_history(tiny_run_dir):
    args = (tiny_run_dir.name, "", "", 0, 1, 10, 0, 1.1, True)
    last, rounds = _drain(compare_tab.chat("What is 2 + 2?", [], [], [], *args))
    base, tuned, run_b = (last[name] for name in compare_tab.CHAT_COLUMNS)
    base_stats, tuned_stats = last["stats_base"], last["stats_tuned"]
    assert rounds > 2 and last["message"] == ""
    assert [m["role"] for m in base] == ["user", "assistant"] == [m["role"] for m in tuned]
    assert base[1]["content"] != tuned[1]["content"] and tuned[1]["content"].startswith("Ahoy")
    assert "tokens/s" in base_stats and "tokens/s" in tuned_stats and run_b == []

    # Second turn, with history as Gradio 6 hands it (content as a list of text parts).
    def as_gradio(history):
        return [
            {"role": m["role"], "content": [{"type": "text", "text": m["content"]}], "metadata": None, "options": None}
            for m in history
        ]

    last, _ = _drain(compare_tab.chat("And 3 + 3?", as_gradio(base), as_gradio(tuned), [], *args))
    assert len(last["chat_base"]) == 4 and len(last["chat_tuned"]) == 4
    assert last["chat_tuned"][2]["content"] == "And 3 + 3?"


def test_chat_third_column(tiny_run_dir, tiny_run_b_dir):
    last, _ = _drain(compare_tab.chat("Say hello.", [], [], [], tiny_run_dir.name, tiny_run_b_dir.name, "", 0, 1, 6, 0))
    assert len(last["chat_b"]) == 2 and "tokens/s" in last["stats_b"]


def test_chat_errors_are_messages_not_tracebacks():
    last, _ = _drain(compare_tab.chat("hi", [], [], [], "no-such-run", "", "", 0, 1, 6, 0))
    assert last["message"] == "hi"  # the question is kept so it can be resent
    assert last["chat_error"].startswith("**No run called")
    empty, _ = _drain(compare_tab.chat("   ", [], [], [], "no-such-run", "", "", 0, 1, 6, 0))
    assert empty["chat_base"] == [] and "chat_error" not in empty  # an empty message: nothing to say


def test_evaluation_records_its_settings_and_shows_the_verdict(tiny_run_dir):
    evaluated = compare_tab.run_evaluation(
        tiny_run_dir.name, 3, None, "", 12, 0.7, 0.9, 1.1, False, 5, progress=_no_progress
    )
    verdict, facts = evaluated["eval_verdict"], evaluated["eval_headline"]
    figure, table = evaluated["eval_plot"], evaluated["eval_table"]
    assert verdict.startswith("**Inconclusive:") and "3 scored prompt(s)" in verdict  # 3 prompts cannot carry a verdict
    assert figure["visible"] and len(table["value"]) == 3 and len(table["value"][0]) == len(compare_tab.EVAL_HEADERS)
    assert "sampling at temperature 0.7" in facts
    saved = json.loads((tiny_run_dir / "compare" / "eval.json").read_text())
    assert len(saved["rows"]) == 3
    assert saved["settings"]["decoding"] == "sampling" and saved["settings"]["seed"] == 5
    assert saved["settings"]["repetition_penalty"] == 1.1 and saved["settings"]["temperature"] == 0.7
    # Reopening shows the saved evaluation at once.
    reopened = compare_tab.open_run(tiny_run_dir.name, "", progress=_no_progress)
    assert reopened["eval_verdict"].startswith("**Inconclusive:") and "saved evaluation" in reopened["eval_headline"]
    assert len(reopened["eval_table"]["value"]) == 3


def _ab(outputs):
    assert set(outputs) == set(compare_tab.AB_OUTPUTS)  # the blind view is redrawn whole
    return outputs


def test_blind_test_two_voters_reveal_and_report(tiny_run_dir):
    compare_tab.run_evaluation(tiny_run_dir.name, 3, None, "", 12, progress=_no_progress)
    saved = json.loads((tiny_run_dir / "compare" / "eval.json").read_text())
    labelled = {text for row in saved["rows"] for text in (row["base"], row["tuned"])}

    first = _ab(compare_tab.ab_start(tiny_run_dir.name, ""))
    voter = first["voter"]
    assert voter.startswith("voter-") and "Voter 1" in first["who"] and "Prompt 1 of 3" in first["prompt"]
    assert {first["a"], first["b"]} == {saved["rows"][first["index"]]["base"], saved["rows"][first["index"]]["tuned"]}
    assert first["tally"] == "" and not first["reveal"]["visible"]  # no running tally: it would unmask the sides
    view = _ab(compare_tab.ab_vote(tiny_run_dir.name, voter, first["index"], "A"))
    assert "Prompt 2 of 3" in view["prompt"] and view["finish"]["value"] == "Stop here and reveal"
    voted = [first["index"]]
    view2 = _ab(compare_tab.ab_vote(tiny_run_dir.name, voter, view["index"], "tie"))
    voted.append(view["index"])
    # Voter 1 stops after two prompts: only those two are revealed, and the ballot is closed.
    closed = _ab(compare_tab.ab_reveal(tiny_run_dir.name, voter))
    assert "Ballot closed" in closed["prompt"] and closed["reveal"]["visible"]
    assert len(closed["reveal"]["value"]) == 2 and closed["vote_a"]["interactive"] is False
    assert "of 2 votes" in closed["tally"] and "95 % interval" in closed["tally"]
    again = _ab(compare_tab.ab_vote(tiny_run_dir.name, voter, view2["index"], "B"))
    assert "closed" in again["prompt"]  # no voting after the reveal
    ballot = json.loads((tiny_run_dir / "compare" / "votes.json").read_text())["ballots"][voter]
    assert set(ballot["votes"]) == {str(i) for i in voted}

    # Voter 2 on the same screen: a fresh ballot, all three prompts, then the pooled tally.
    second = _ab(compare_tab.ab_new_voter(tiny_run_dir.name))
    assert second["voter"] != voter and "Voter 2" in second["who"] and "0 of 3" in second["who"]
    state = second
    for _ in range(3):
        state = _ab(compare_tab.ab_vote(tiny_run_dir.name, second["voter"], state["index"], "B"))
    assert "All 3 prompts voted" in state["prompt"] and state["vote_a"]["interactive"] is False
    done = _ab(compare_tab.ab_reveal(tiny_run_dir.name, second["voter"]))
    assert (
        len(done["reveal"]["value"]) == 3
        and "All 2 finished ballots" in done["tally"]
        and "from 2 voters" in done["tally"]
    )
    assert not labelled & {first["who"], first["prompt"], second["who"]}

    verdict = compare_tab.refresh_verdict(tiny_run_dir.name)
    assert "5 blind vote(s) from 2 voter(s)" in verdict
    # The saved verdict (the model card quotes it) counts the closed ballots too.
    card_verdict = json.loads((tiny_run_dir / "compare" / "eval.json").read_text())["verdict"]
    assert "5 blind vote(s) from 2 voter(s)" in card_verdict["headline"] + card_verdict["evidence_text"]

    reported = compare_tab.build_report(tiny_run_dir.name)
    html_button, md_button = reported["report_html"], reported["report_md"]
    assert html_button["value"].endswith("report-tiny-pirate.html") and md_button["value"].endswith(".md")
    assert (tiny_run_dir / "compare" / "report.html").is_file()
    page = open(html_button["value"], encoding="utf-8").read()
    assert saved["rows"][0]["prompt"] in page and "Tuned model preferred" in page and "Verdict: inconclusive" in page
    assert "Voter 1:" in page and "Voter 2:" in page


def test_blind_test_needs_an_evaluation_and_a_valid_voter(tiny_run_b_dir, tiny_run_dir):
    view = _ab(compare_tab.ab_start(tiny_run_b_dir.name, ""))
    assert "there is none yet" in view["prompt"] and view["vote_a"]["interactive"] is False
    compare_tab.run_evaluation(tiny_run_dir.name, 2, None, "", 8, progress=_no_progress)
    forged = _ab(compare_tab.ab_vote(tiny_run_dir.name, "../../etc/passwd", 0, "A"))
    assert "voter id is not valid" in forged["prompt"]
    unknown = _ab(compare_tab.ab_vote(tiny_run_dir.name, "voter-never-started", 0, "A"))
    assert "no ballot" in unknown["prompt"]


def test_stop_marks_running_columns_as_stopped():
    assert compare_tab.mark_stopped("3 tokens · 2.0 tokens/s · generating…", "5 tokens · done", "") == [
        "3 tokens · 2.0 tokens/s · stopped",
        "5 tokens · done",
        "",
    ]


def _shared_demo_run(owner: str):
    """A shared run of another owner with a saved 3-prompt evaluation (no model needed to vote)."""
    import secrets

    from studio import paths
    from studio.compare.evaluate import summarize

    folder = paths.runs_dir() / f"run-shared{secrets.token_hex(4)}"
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "x"}))
    (folder / "adapter" / "adapter_model.safetensors").write_bytes(b"not weights")
    (folder / "config.json").write_text(json.dumps({"name": "shared demo", "model": "x"}))
    (folder / "status.json").write_text(json.dumps({"status": "completed", "owner": owner, "shared": True}))
    rows = [
        {
            "prompt": f"Q{i}?",
            "messages": [{"role": "user", "content": f"Q{i}?"}],
            "reference": f"A{i}",
            "base": f"base {i}",
            "tuned": f"tuned {i}",
            "base_loss": 3.0,
            "tuned_loss": 1.0,
        }
        for i in range(3)
    ]
    (folder / "compare").mkdir()
    (folder / "compare" / "eval.json").write_text(
        json.dumps(
            {"created_at": 1.0, "source": "validation split", "settings": {}, "rows": rows, "summary": summarize(rows)}
        )
    )
    return folder


def test_public_mode_blind_ballots_go_to_each_visitors_folder_and_only_their_verdict(monkeypatch):
    from studio import access

    monkeypatch.setenv("SPACE_ID", "tests/studio")
    monkeypatch.delenv("STUDIO_ADMIN_PASSWORD", raising=False)
    folder = _shared_demo_run("hf-operator")
    alice, bob = (access.Identity(access.new_browser_id(), access.ANONYMOUS) for _ in range(2))
    with access.acting(alice):
        out = compare_tab.ab_start(folder.name, "")
        voter = out["voter"]
        while out["index"] is not None:  # the next prompt's index until every prompt is voted
            out = compare_tab.vote_button("A")(folder.name, voter, out["index"])
        out = compare_tab.ab_reveal(folder.name, voter)
        assert "Ballot closed" in out["prompt"] and out["reveal"]["visible"] and len(out["reveal"]["value"]) == 3
        assert "3 blind vote(s) from 1 voter(s)" in compare_tab.refresh_verdict(folder.name)
    box = json.loads((folder / "compare" / "visitors" / alice.namespace / "votes.json").read_text())
    assert list(box["ballots"]) == [voter] and box["ballots"][voter]["revealed_at"]
    assert not (folder / "compare" / "votes.json").exists()  # the owner's box is not touched
    with access.acting(bob):
        assert "no finished blind votes" in compare_tab.refresh_verdict(folder.name)  # Alice's votes are hers
        refused = compare_tab.ab_vote(folder.name, voter, 0, "B")  # her voter id means nothing in Bob's folder
        assert "no ballot" in refused["prompt"]
    assert json.loads((folder / "compare" / "visitors" / alice.namespace / "votes.json").read_text()) == box
