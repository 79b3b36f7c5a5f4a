"""Honest results in a real browser: the verdict when measures disagree, the blind A/B test with two voters
(and a second browser), a question/answer CSV mapped through to a trained run, and a dismissed finding.

Screenshots go to test-output/results-*.png.
"""

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

from tests.browser import until

pytestmark = pytest.mark.browser

_factory_spec = importlib.util.spec_from_file_location(
    "compare_run_factory", Path(__file__).parent / "compare" / "conftest.py"
)
factory = importlib.util.module_from_spec(_factory_spec)
_factory_spec.loader.exec_module(factory)

RUN_ID = "results-blind"
DISAGREE_ID = "results-disagree"


def _visible(page, selector: str) -> bool:
    locator = page.locator(selector)
    return locator.count() > 0 and locator.first.is_visible()


@pytest.fixture(scope="module")
def blind_run(tiny_model_dir):
    """A finished tiny run, and a copy of it (same adapter) whose evaluation is crafted to disagree."""
    from studio import paths

    dataset = paths.datasets_dir() / "results-pirate-style"
    dataset.mkdir(parents=True, exist_ok=True)
    rows = factory.style_rows()
    factory.write_jsonl(dataset / "train.jsonl", rows)
    factory.write_jsonl(dataset / "validation.jsonl", rows[:6])
    run = paths.runs_dir() / RUN_ID
    if not run.is_dir():
        factory.make_run_folder(paths.runs_dir(), RUN_ID, tiny_model_dir, dataset, steps=200, lr=5e-3, seed=0)
    copy = paths.runs_dir() / DISAGREE_ID
    if not copy.is_dir():
        shutil.copytree(run, copy)
        config = json.loads((copy / "config.json").read_text())
        config.update(run_id=DISAGREE_ID, name="Disagreeing evaluation")
        (copy / "config.json").write_text(json.dumps(config))
        shutil.rmtree(copy / "compare", ignore_errors=True)
    return run, copy


def _open(page, run_id):
    page.get_by_role("tab", name="Compare").click()
    field = page.locator("#compare-run input")
    field.click()
    field.fill(run_id)
    field.press("Enter")
    page.click("#compare-open")
    until(page, "text('#compare-status').includes('Loaded')", timeout=180_000)


def test_the_verdict_when_loss_improves_but_overlap_and_votes_fall(blind_run, page, output_dir):
    from studio.compare import runs, votes

    _, copy = blind_run
    # An evaluation on 14 prompts where the loss clearly improves while ROUGE-L, chrF and the blind voters
    # prefer the base, and two tuned answers loop.
    rows = []
    for i in range(14):
        rows.append(
            {
                "prompt": f"Question {i}?",
                "messages": [{"role": "user", "content": f"Question {i}?"}],
                "reference": f"Reference answer {i}.",
                "base": f"A plain base answer to question {i}.",
                "tuned": ("a fleeting moment of beauty, " * 8) if i < 2 else f"The tuned answer {i}.",
                "base_loss": 2.0 + 0.01 * i,
                "tuned_loss": 1.4 + 0.01 * i,
                "base_rouge_l": 0.35 + 0.005 * i,
                "tuned_rouge_l": 0.30 + 0.004 * i,
                "base_chrf": 0.32 + 0.005 * i,
                "tuned_chrf": 0.29 + 0.004 * i,
            }
        )
    result = {
        "run_id": DISAGREE_ID,
        "source": "validation split",
        "created_at": 1234.5,
        "seconds": 9.0,
        "settings": {
            "decoding": "sampling",
            "temperature": 0.7,
            "top_p": 0.9,
            "repetition_penalty": 1.1,
            "seed": 0,
            "max_new_tokens": 64,
            "source": "studio defaults",
        },
        "rows": rows,
        "summary": {
            "prompts": 14,
            "with_reference": 14,
            "base_loss": 2.065,
            "tuned_loss": 1.465,
            "base_perplexity": 7.9,
            "tuned_perplexity": 4.3,
            "improved": 14,
        },
    }
    (copy / "compare").mkdir(exist_ok=True)
    (copy / "compare" / "eval.json").write_text(json.dumps(result))
    info = runs.load_run(str(copy))
    ballot = votes.ballot_for(info, result, "voter-browser1", seed=3)
    for index in range(12):
        tuned_side = ballot["items"][index]["tuned_is"]
        base_side = "B" if tuned_side == "A" else "A"
        votes.cast(info, result, "voter-browser1", index, tuned_side if index < 2 else base_side)
    votes.finish(info, result, "voter-browser1")

    _open(page, DISAGREE_ID)
    until(page, "text('#compare-verdict').includes('Inconclusive')")
    verdict = page.inner_text("#compare-verdict")
    assert "Better:" not in verdict
    assert "the measures disagree" in verdict and "the loss clearly improved" in verdict
    assert re.search(r"ROUGE-L word overlap \(higher is better\): 0\.38\d → 0\.32\d over 14 prompt\(s\)", verdict), (
        verdict
    )
    assert "Blind voters preferred the base: tuned won 2 of 12 decisive votes (clearly)" in verdict
    assert "2 tuned answer(s) repeat themselves (prompt 1, 2)" in verdict
    assert "95 % interval" in verdict and "14 prompt(s) scored" in verdict
    # The table flags the looping answers.
    assert "tuned" in page.locator("#compare-eval-table").inner_text()
    page.locator("#compare-verdict").scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "results-verdict-disagree.png"), full_page=True)

    # The report says the same.
    page.get_by_text("Report for stakeholders").click()
    page.click("#compare-report-build")
    until(page, "text('#compare-report-status').includes('Report saved')")
    html_report = (copy / "compare" / "report.html").read_text()
    assert 'data-conclusion="inconclusive"' in html_report and "the measures disagree" in html_report
    assert "learning rate 0.005 (set by hand)" in html_report and "learning_rate=None" not in html_report


def _vote(page, choice_selector):
    before = page.inner_text("#compare-ab-voter")
    page.click(choice_selector)
    until(page, f"text('#compare-ab-voter') !== {json.dumps(before)}")


def test_blind_ab_with_two_voters_and_a_second_browser(blind_run, page, browser, app_url, output_dir):
    run, _ = blind_run
    _open(page, RUN_ID)
    # A real evaluation with the shared decoding settings (greedy here, one click), progress shown once.
    page.get_by_text("Generation settings (the same for every column").click()
    assert "repetition penalty 1.1" in page.inner_text("#compare-settings-note")
    page.locator("#compare-greedy input").check()
    until(page, "text('#compare-settings-note').includes('greedy decoding')")
    page.locator("#compare-eval-n input").fill("4")
    page.locator("#compare-eval-tokens input[type=number]").fill("160")  # long enough to watch the progress
    page.locator("#compare-eval-tokens input[type=number]").press("Enter")
    page.locator("#compare-eval-run").scroll_into_view_if_needed()
    page.click("#compare-eval-run")
    # Progress shows once (on the verdict), not over the plot and the table as well.
    until(page, "document.body.innerText.includes('of 4:')", timeout=60_000)
    shown = page.evaluate(
        "() => [...document.querySelectorAll('#compare-labelled *')].filter(e => e.children.length === 0"
        " && e.textContent.includes('of 4:') && e.offsetParent !== null).length"
    )
    page.screenshot(path=str(output_dir / "results-evaluation-running.png"), full_page=False)
    assert shown == 1, shown
    until(page, "text('#compare-verdict').includes('Inconclusive')", timeout=300_000)
    assert "greedy decoding" in page.inner_text("#compare-eval-summary")
    saved = json.loads((run / "compare" / "eval.json").read_text())
    assert saved["settings"]["decoding"] == "greedy" and len(saved["rows"]) == 4
    labelled = [text for row in saved["rows"] for text in (row["base"], row["tuned"]) if len(text) > 12]

    # The blind view: no labelled answer anywhere on screen.
    page.locator("#compare-view").get_by_text("Blind A/B test").click()
    page.wait_for_selector("#compare-blind", state="visible")
    assert not _visible(page, "#compare-eval-table") and not _visible(page, "#compare-tuned-chat")
    page.click("#compare-ab-start")
    until(page, "text('#compare-ab-prompt').includes('Prompt 1 of 4')")
    assert "Voter 1" in page.inner_text("#compare-ab-voter")
    visible_text = page.inner_text("body")
    assert "Tuned answer" not in visible_text and "Base answer" not in visible_text
    page.screenshot(path=str(output_dir / "results-blind-voting.png"), full_page=True)
    _vote(page, "#compare-vote-a")
    tally = page.inner_text("#compare-ab-tally")
    assert "preferred" not in tally and "win rate" not in tally, tally  # no running tally: it would unmask the sides
    _vote(page, "#compare-vote-tie")
    # Voter 1 stops after two prompts: only those are revealed, and the ballot is closed.
    page.click("#compare-ab-reveal")
    until(page, "text('#compare-ab-prompt').includes('Ballot closed')")
    # Gradio's table is virtual (rows render as they scroll into view): its grid's row count, header included.
    rows_shown = (
        "Number(document.querySelector('#compare-ab-reveal-table [role=grid]')?.getAttribute('aria-rowcount')) - 1"
    )
    until(page, f"{rows_shown} === 2", timeout=30_000)
    assert page.locator("#compare-vote-a").is_disabled() and page.locator("#compare-vote-b").is_disabled()
    assert "95 % interval" in page.inner_text("#compare-ab-tally") or "only ties" in page.inner_text(
        "#compare-ab-tally"
    )
    page.screenshot(path=str(output_dir / "results-blind-revealed.png"), full_page=True)

    # Voter 2 at the same screen.
    page.click("#compare-ab-new-voter")
    until(page, "text('#compare-ab-voter').includes('Voter 2')")
    for _ in range(4):
        _vote(page, "#compare-vote-b")
    until(page, "text('#compare-ab-prompt').includes('All 4 prompts voted')")
    page.click("#compare-ab-reveal")
    until(page, "text('#compare-ab-tally').includes('All 2 finished ballots')")
    until(page, f"{rows_shown} === 4", timeout=30_000)

    # A second browser has its own ballot.
    other = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        second = other.new_page()
        second.set_default_timeout(60_000)
        second.goto(app_url)
        second.wait_for_selector("#studio-tabs")
        _open(second, RUN_ID)
        second.locator("#compare-view").get_by_text("Blind A/B test").click()
        second.click("#compare-ab-start")
        until(second, "text('#compare-ab-voter').includes('Voter 3') && text('#compare-ab-voter').includes('0 of 4')")
        for text in labelled:
            assert (
                not _visible(second, "#compare-labelled")
                or text not in second.locator("#compare-labelled").inner_text()
            )
        second.screenshot(path=str(output_dir / "results-blind-second-browser.png"), full_page=False)
    finally:
        other.close()

    # Back in the labelled view the verdict counts the two finished ballots.
    page.locator("#compare-view").get_by_text("Side by side").click()
    until(page, "text('#compare-verdict').includes('from 2 voter(s)')")
    box = json.loads((run / "compare" / "votes.json").read_text())
    assert len(box["ballots"]) == 3 and sum(1 for b in box["ballots"].values() if b["revealed_at"]) == 2


@pytest.mark.slow
def test_a_question_answer_csv_is_mapped_fixed_and_trained(page, tiny_model_dir, output_dir, tmp_path):
    tiny = str(tiny_model_dir)
    table = tmp_path / "support-faq.csv"
    table.write_text(
        "question,answer\n"
        + "".join(
            (
                f'"How do I reset the password of account {i}?","Ahoy! Open settings for account {i} and press '
                f'reset. — Captain Byte"\n'
            )
            for i in range(40)
        )
    )
    page.get_by_role("tab", name="Data").click()
    model = page.locator("#data-model input")
    model.fill(tiny)
    model.press("Enter")
    page.locator("#data-source-kind").get_by_text("Upload a file").click()
    page.locator("#data-upload input[type=file]").set_input_files(str(table))
    page.wait_for_selector("#data-verdict [data-verdict=blocked]")
    # The mapping panel opens with a proposal and a preview of the converted rows.
    page.wait_for_selector("#data-mapping", state="visible")
    until(page, "text('#data-map-preview').includes('How do I reset the password of account 0?')")
    assert page.locator("#data-map-user input").input_value() == "question"
    assert page.locator("#data-map-assistant input").input_value() == "answer"
    page.locator("#data-mapping").scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "results-mapping-proposed.png"), full_page=False)
    page.click("#data-map-apply")
    page.wait_for_selector("#data-verdict [data-verdict=ready], #data-verdict [data-verdict=warnings]", timeout=120_000)
    assert "question→user, answer→assistant" in page.inner_text("#data-format")
    page.click("#data-fix-btn")
    until(page, "text('#data-fix-result').includes('Saved')", timeout=120_000)
    assert "built every row from the columns" in page.inner_text("#data-fix-result")
    page.screenshot(path=str(output_dir / "results-mapping-saved.png"), full_page=False)
    page.click("#data-next-btn")
    until(page, "document.querySelector('[role=tab][aria-selected=true]')?.innerText.includes('Train')")
    until(page, "text('#train-dataset-info').toLowerCase().includes('support-faq')")

    field = page.locator("#train-model input")
    field.fill(tiny)
    field.press("Enter")
    page.locator("#train-max-steps input").fill("6")
    page.locator("#train-name").get_by_role("textbox").fill("mapped faq run")
    page.click("#train-start")
    until(page, "text('#train-start-message').includes('Started')")
    until(page, "text('#train-run-header').includes('mapped faq run')")
    until(page, "/completed/.test(text('#train-progress'))", timeout=600_000)
    until(page, "text('#train-history').includes('mapped faq run')")
    page.screenshot(path=str(output_dir / "results-mapping-trained.png"), full_page=False)


def test_a_dismissed_finding_no_longer_blocks(page, tiny_model_dir, output_dir, tmp_path):
    data = tmp_path / "gallery.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Tell me about painting number {i} in the gallery."},
                {"role": "assistant", "content": f"Painting {i} hangs in room {i % 5}; it shows a harbour at dawn."},
            ]
        }
        for i in range(24)
    ]
    rows[7]["messages"][1]["content"] = "Use the test key AKIAIOSFODNN7EXAMPLE from the docs."
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    page.get_by_role("tab", name="Data").click()
    model = page.locator("#data-model input")
    model.fill(str(tiny_model_dir))
    model.press("Enter")
    page.locator("#data-source-kind").get_by_text("Upload a file").click()
    page.locator("#data-upload input[type=file]").set_input_files(str(data))
    page.wait_for_selector("#data-verdict [data-verdict=blocked]")

    page.locator("#data-findings [role=gridcell]", has_text="PII-SECRET").first.click()
    page.get_by_text("Dismiss a finding that is wrong for this data").click()
    until(page, "document.querySelector('#data-dismiss-row input')?.value === '8'")
    page.locator("#data-dismiss-reason textarea, #data-dismiss-reason input").first.fill(
        "AWS's documented example key, not a real secret"
    )
    page.click("#data-dismiss-btn")
    page.wait_for_selector("#data-verdict [data-verdict=ready], #data-verdict [data-verdict=warnings]")
    assert "AWS's documented example key" in page.inner_text("#data-dismissed")
    assert "Dismissed: PII-SECRET (row 8)" in page.inner_text("#data-dismiss-status")
    page.locator("#data-dismiss").scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "results-dismissed.png"), full_page=False)
    page.click("#data-fix-btn")
    until(page, "text('#data-fix-result').includes('Saved')", timeout=120_000)
    fixed = page.inner_text("#data-fix-result")
    assert "0 rejected" in fixed.replace("**", "") and "kept 1 dismissal" in fixed


def test_the_address_keeps_the_tab_and_the_run_across_a_reload(blind_run, page, app_url, output_dir):
    """?tab=…&run=… opens that tab and run (a link to share); switching tabs or runs rewrites the address, so a
    reload comes back to the same place. A run the caller may not see, or an unknown tab, is ignored."""
    # Whichever of the two runs the page opens by itself, the address asks for the other one.
    names = {RUN_ID: "Pirate style", DISAGREE_ID: "Disagreeing evaluation"}
    page.get_by_role("tab", name="Train").click()
    until(page, "text('#train-run-header').length > 0 && !text('#train-run-header').includes('No run yet')")
    default = page.inner_text("#train-run-header")
    asked = RUN_ID if names[DISAGREE_ID] in default else DISAGREE_ID
    page.goto(f"{app_url}?tab=train&run={asked}")
    until(page, "document.querySelector('#tab-train')?.offsetParent !== null")
    until(page, f"text('#train-run-header').includes('{names[asked]}')", timeout=60_000)

    page.get_by_role("tab", name="Compare").click()
    until(page, "(document.querySelector('#compare-run input')?.value || '').length > 0", timeout=60_000)
    default = page.locator("#compare-run input").input_value()
    other = RUN_ID if names[DISAGREE_ID] in default else DISAGREE_ID
    page.goto(f"{app_url}?tab=compare&run={other}")
    until(page, "document.querySelector('#tab-compare')?.offsetParent !== null")
    picked = f"document.querySelector('#compare-run input')?.value.includes('{names[other]}')"
    until(page, picked, timeout=60_000)

    page.goto(f"{app_url}?tab=train&run={asked}")
    until(page, f"text('#train-run-header').includes('{names[asked]}')", timeout=60_000)
    page.screenshot(path=str(output_dir / "address-train-run.png"), full_page=False)

    page.get_by_role("tab", name="Data").click()
    until(page, "new URL(location.href).searchParams.get('tab') === 'data'")
    assert new_url(page).get("run") == asked
    page.reload()
    page.wait_for_selector("#studio-tabs")
    until(page, "document.querySelector('#tab-data')?.offsetParent !== null")
    # A tab clicked at once after the reload stays: the page's slower load work (the run's live view, a few
    # seconds) does not take the visitor back to the address's tab (the browser opens that tab itself, at once).
    page.get_by_role("tab", name="Decide").click()
    until(page, "new URL(location.href).searchParams.get('tab') === 'decide'")
    page.wait_for_timeout(6_000)
    assert page.evaluate("document.querySelector('#tab-decide')?.offsetParent !== null")
    assert new_url(page).get("tab") == "decide"
    page.click("#decide-use-settings")  # a handler switches the tab (no dataset yet: to Data); the address follows
    until(page, "document.querySelector('#tab-data')?.offsetParent !== null")
    until(page, "new URL(location.href).searchParams.get('tab') === 'data'")

    page.goto(f"{app_url}?tab=nowhere&run=../../etc")
    page.wait_for_selector("#studio-tabs")
    until(page, "document.querySelector('#tab-decide')?.offsetParent !== null")


def new_url(page) -> dict:
    return page.evaluate("() => Object.fromEntries(new URL(location.href).searchParams)")
