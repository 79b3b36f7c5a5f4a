import json
import re

import pytest

from studio.compare import engine, evaluate, report, runs, votes


def test_summarize_counts_improved_and_style():
    rows = [
        {
            "prompt": "a",
            "reference": "Ahoy! one — Captain Byte",
            "base": "one",
            "tuned": "Ahoy! one — Captain Byte",
            "base_loss": 2.0,
            "tuned_loss": 1.0,
            "base_rouge_l": 0.5,
            "tuned_rouge_l": 1.0,
        },
        {
            "prompt": "b",
            "reference": "Ahoy! two — Captain Byte",
            "base": "two",
            "tuned": "Ahoy! two",
            "base_loss": 1.0,
            "tuned_loss": 3.0,
            "base_rouge_l": 0.2,
            "tuned_rouge_l": 0.4,
        },
        {
            "prompt": "c",
            "reference": "Ahoy! three — Captain Byte",
            "base": "Ahoy! x — Captain Byte",
            "tuned": "three",
            "base_loss": 3.0,
            "tuned_loss": 2.0,
            "base_rouge_l": 0.0,
            "tuned_rouge_l": 0.1,
        },
    ]
    summary = evaluate.summarize(rows)
    assert summary["improved"] == 2
    assert summary["base_loss"] == pytest.approx(2.0) and summary["tuned_loss"] == pytest.approx(2.0)
    assert summary["base_perplexity"] == pytest.approx(7.389056, rel=1e-6)  # exp(mean loss 2.0)
    assert summary["tuned_rouge_l"] == pytest.approx(0.5)
    assert summary["style_marker"] == {"prefix": "Ahoy!", "suffix": "— Captain Byte"}
    assert (summary["style_base"], summary["style_tuned"], summary["style_reference"]) == (1, 1, 3)
    assert summary["style_parts"]["prefix"] == {"base": 1, "tuned": 2, "reference": 3}
    assert "Answers that start with “Ahoy!”: base 1/3, tuned 2/3." in evaluate.headline(summary)
    assert "better" not in evaluate.headline(summary)  # facts only: the conclusion is the verdict's


def test_summarize_without_references():
    summary = evaluate.summarize([{"prompt": "a", "base": "x", "tuned": "y", "reference": None}])
    assert summary == {"prompts": 1, "with_reference": 0}
    assert "no reference" in evaluate.headline(summary)


@pytest.fixture(scope="module")
def evaluated(tiny_run_dir):
    run = runs.load_run(str(tiny_run_dir))
    session = engine.open_session(str(tiny_run_dir))
    prompts, source = evaluate.load_prompts(run, n=4)
    seen = []
    # Greedy: the tiny model's sampled tokens are near-random (its entropy stays high), its greedy ones carry the style.
    result = evaluate.evaluate(
        session,
        prompts,
        source,
        engine.Settings(max_new_tokens=16, temperature=0),
        progress=lambda done, total, text: seen.append((done, total)),
    )
    evaluate.save(run, result)
    return run, result, seen


def test_evaluation_on_the_validation_split(evaluated):
    run, result, seen = evaluated
    assert len(result["rows"]) == 4 and seen[0] == (0, 4) and seen[-1] == (4, 4)
    validation = [json.loads(line) for line in (run.dataset_dir / "validation.jsonl").read_text().splitlines()]
    for row, source in zip(result["rows"], validation):
        assert row["prompt"] == source["messages"][0]["content"]
        assert row["reference"] == source["messages"][-1]["content"]
        assert row["base"] != row["tuned"]
    summary = result["summary"]
    assert summary["improved"] == sum(r["tuned_loss"] < r["base_loss"] for r in result["rows"])
    assert summary["tuned_loss"] < summary["base_loss"]  # trained on exactly this style
    assert summary["style_parts"]["prefix"]["tuned"] > summary["style_parts"]["prefix"]["base"]
    assert evaluate.load(run)["created_at"] == result["created_at"]  # reopened from eval.json
    saved = evaluate.load(run)["verdict"]  # for the model card: the same verdict Compare shows
    assert saved["conclusion"] == "inconclusive" and saved["headline"].startswith("Inconclusive")  # 4 prompts
    # The fixture's validation rows are copies of training rows: the summary says so.
    assert summary["in_training"] == 4 and "not truly held out" in evaluate.headline(summary)
    assert result["settings"]["decoding"] == "greedy" and result["settings"]["repetition_penalty"] > 1
    figure = evaluate.loss_figure(result)
    assert [trace.name for trace in figure.data] == ["Base", "Tuned"]


def test_report_is_self_contained_and_has_the_table(evaluated):
    run, result, _ = evaluated
    ballot = votes.new_ballot(result, seed=1)
    votes.vote(ballot, 0, ballot["items"][0]["tuned_is"])
    page, markdown = report.build(run, result, ballot)
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched from the network
    assert "<svg" in page and "<polyline" in page  # training loss chart from events.jsonl
    assert 'id="eval-table"' in page and page.count("<tr>") == len(result["rows"]) + 1
    assert result["rows"][0]["prompt"] in page
    assert "Tuned model preferred in 1 of 1" in page
    # The verdict leads, with the same words as Compare and the CLI: 4 prompts and 1 vote cannot carry a conclusion.
    assert page.index('id="verdict"') < page.index("<h2>Run</h2>") and 'data-conclusion="inconclusive"' in page
    assert "## Verdict: inconclusive" in markdown and "too little evidence" in markdown
    assert "4 prompt(s) scored against reference answers, 1 blind vote(s) from 1 voter(s)" in markdown
    assert "learning rate 0.005 (set by hand)" in markdown and "learning_rate=None" not in markdown
    assert "200 of 200 steps" in markdown and "12 training rows, 6 validation rows" in markdown
    assert "| # | Prompt |" in markdown and result["rows"][1]["prompt"] in markdown
    html_path, md_path = report.write(run, eval_result=result, ballots=ballot)
    assert html_path == run.compare_dir / "report.html" and md_path.read_text() == markdown


def test_report_escapes_model_output(evaluated):
    run, result, _ = evaluated
    hostile = dict(result, rows=[dict(result["rows"][0], tuned="<script>alert(1)</script>")])
    page, _ = report.build(run, hostile, None)
    assert "<script>alert" not in page and "&lt;script&gt;" in page


def test_report_without_evaluation(tiny_run_b_dir):
    run = runs.load_run(str(tiny_run_b_dir))
    page, markdown = report.build(run, {}, {})
    assert "No evaluation yet" in page and "No blind votes yet" in markdown


def test_report_states_the_automatic_learning_rate_and_dismissed_findings(tmp_path):
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "train.jsonl").write_text("")  # a saved dataset folder (data.store) has its training split
    (dataset / "manifest.json").write_text(
        json.dumps(
            {
                "name": "alpaca",
                "counts": {"train": 270, "validation": 30, "rejected": 0},
                "dismissals": [{"rule": "PII-SECRET", "row": 12, "reason": "a Wikimedia image path, not a secret"}],
            }
        )
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "events.jsonl").write_text(json.dumps({"type": "log", "step": 20, "epoch": 0.59, "loss": 1.5}) + "\n")
    run = runs.RunInfo(
        run_id="auto",
        dir=run_dir,
        adapter_dir=run_dir / "adapter",
        base_ref="some/model",
        config={"model": "some/model", "dataset": str(dataset), "learning_rate": None, "epochs": 2},
        status={
            "status": "stopped",
            "step": 20,
            "total_steps": 68,
            "facts": {"learning_rate": 0.001, "train_rows": 270, "eval_rows": 30},
        },
    )
    items = dict(report.summary_items(run))
    assert items["Training"] == (
        "20 of 68 steps, 0.59 epoch(s) done (planned 2), 270 training rows, 30 validation rows, "
        "learning rate 0.001 (automatic for the model's size)"
    )
    assert "learning_rate=0.001 (automatic)" in items["Settings"]
    run.config["max_steps"] = 40  # max steps win over epochs: 2.7 epochs of a run "planned" for 2 read as a bug
    (run_dir / "events.jsonl").write_text(json.dumps({"type": "log", "step": 40, "epoch": 2.67, "loss": 1.5}) + "\n")
    assert "2.7 epoch(s) done (set by max steps 40, not by epochs)" in dict(report.summary_items(run))["Training"]
    assert items["Data findings dismissed"] == "PII-SECRET (row 12) dismissed: a Wikimedia image path, not a secret"
    page, markdown = report.build(run, {}, [])
    assert "learning_rate=None" not in page and "a Wikimedia image path" in markdown


def test_training_time_is_the_train_tabs_clock_with_the_wall_clock_beside_it(tmp_path):
    def run_with(status):
        return runs.RunInfo(
            run_id="t", dir=tmp_path, adapter_dir=tmp_path / "adapter", base_ref="m", config={}, status=status
        )

    both = {"elapsed": 608.4, "started_at": "2026-12-01T10:00:00+00:00", "ended_at": "2026-12-01T10:13:15+00:00"}
    assert report.training_time(run_with(both)) == (
        "10 min 08 s (13 min 15 s from start to end, with model loading and checks)"
    )
    assert report.training_time(run_with({"elapsed": 75})) == "1 min 15 s"
    assert (
        report.training_time(run_with({k: v for k, v in both.items() if k != "elapsed"}))
        == "13 min 15 s from start to end"
    )
    assert report.training_time(run_with({})) == "unknown"


def test_a_public_studios_report_names_no_server_folder(tmp_path, monkeypatch):
    """A visitor downloads the report of a shared run whose base model sits in the studio's models folder."""
    from studio import paths

    monkeypatch.setenv("STUDIO_MODE", "public")
    base = paths.models_dir() / "tiny-llama"
    run = runs.RunInfo(
        run_id="shared",
        dir=tmp_path,
        adapter_dir=tmp_path / "adapter",
        base_ref=str(base),
        config={"model": str(base), "dataset": str(paths.datasets_dir() / "d1"), "epochs": 1},
        status={"status": "completed"},
    )
    html, markdown = report.build(run, eval_result={}, ballots=[])
    for text in (html, markdown):
        assert str(paths.studio_home()) not in text and "$STUDIO_HOME/models/tiny-llama" in text


def test_answers_are_cut_at_half_again_the_longest_reference(evaluated, tiny_run_dir):
    session = engine.open_session(str(tiny_run_dir))
    prompts, _ = evaluate.load_prompts(evaluated[0], n=4)
    tokens = session.engine.tokenizer
    longest = max(len(tokens(item["reference"], add_special_tokens=False)["input_ids"]) for item in prompts)
    wide = engine.Settings(max_new_tokens=1000, source="studio defaults")
    cut = evaluate.answer_budget(session.engine, prompts, wide)
    assert cut.max_new_tokens == max(evaluate.MIN_ANSWER_TOKENS, -(-3 * longest // 2)) < 1000
    assert "cut from 1000 to 1.5× the longest reference" in cut.source and cut.source.startswith("studio defaults")
    # A limit already below the budget stays; a prompt without a reference leaves the limit to the user.
    assert evaluate.answer_budget(session.engine, prompts, engine.Settings(max_new_tokens=8)).max_new_tokens == 8
    unreferenced = [*prompts[:-1], {**prompts[-1], "reference": None}]
    assert evaluate.answer_budget(session.engine, unreferenced, wide) is wide
