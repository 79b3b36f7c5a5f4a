"""The verdict and its statistics: pure logic, no model."""

import math

import pytest

from studio.compare import metrics, uncertainty, verdict, votes

# ---------------------------------------------------------------- statistics


def test_sign_test_matches_the_binomial_distribution():
    assert uncertainty.sign_test(0, 0) is None
    assert uncertainty.sign_test(5, 0) == pytest.approx(2 / 32)  # 5 of 5: still not below 0.05
    assert uncertainty.sign_test(6, 0) == pytest.approx(2 / 64)
    assert uncertainty.sign_test(3, 3) == 1.0
    # 9 wins, 1 loss: 2 * (C(10,0) + C(10,1)) / 2^10
    assert uncertainty.sign_test(9, 1) == pytest.approx(2 * 11 / 1024)
    assert uncertainty.sign_test(1, 9) == uncertainty.sign_test(9, 1)


def test_wilson_interval_known_values_and_edges():
    assert uncertainty.wilson_interval(0, 0) is None
    low, high = uncertainty.wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    low, high = uncertainty.wilson_interval(0, 5)
    assert low == 0.0 and high == pytest.approx(0.4345, abs=1e-4)  # 0 % is not "certainly 0 %"
    low, high = uncertainty.wilson_interval(10, 10)
    assert high == pytest.approx(1.0) and 0.69 < low < 0.73


def test_paired_bootstrap_is_reproducible_and_covers_the_mean():
    values = [0.5, -0.2, 0.1, 0.3, 0.0, 0.4, -0.1, 0.2]
    one, two = uncertainty.paired_bootstrap(values), uncertainty.paired_bootstrap(values)
    assert one == two  # seeded
    assert one["mean"] == pytest.approx(sum(values) / len(values))
    assert one["low"] < one["mean"] < one["high"]
    assert min(values) <= one["low"] and one["high"] <= max(values)
    same = uncertainty.paired_bootstrap([0.2] * 12)
    assert same["low"] == pytest.approx(0.2) and same["high"] == pytest.approx(0.2)
    assert uncertainty.paired_bootstrap([]) is None
    wider = uncertainty.paired_bootstrap([v * 3 for v in values])
    assert wider["high"] - wider["low"] == pytest.approx(3 * (one["high"] - one["low"]))


# ---------------------------------------------------------------- repetition


def test_repetition_score_flags_loops_not_prose():
    assert metrics.repetition("a fleeting moment of beauty, " * 10) > 0.8
    sentence = "The cat sat on the mat and looked out of the window at the rain. "
    assert metrics.is_looping(sentence * 3)
    assert metrics.repetition(sentence) == 0.0 and not metrics.is_looping(sentence)
    assert metrics.repetition("yes yes yes") == 0.0  # too short to call a loop


# ---------------------------------------------------------------- the verdict


def _rows(n, loss=(2.0, 1.5), rouge=(0.30, 0.40), chrf=(0.30, 0.40), spread=0.05, tuned_text=None):
    """n prompts whose tuned scores differ from the base by the given means, with a little per-prompt spread."""
    rows = []
    for i in range(n):
        wiggle = spread * math.sin(i * 1.7)
        rows.append(
            {
                "prompt": f"question {i}",
                "reference": f"reference answer {i}",
                "base": f"The base model answers question {i} in its own plain words.",
                "tuned": tuned_text(i) if tuned_text else f"The tuned model answers question {i} differently.",
                "base_loss": loss[0] + wiggle,
                "tuned_loss": loss[1] + wiggle * 0.5,
                "base_rouge_l": rouge[0] + wiggle,
                "tuned_rouge_l": rouge[1] + wiggle * 0.5,
                "base_chrf": chrf[0] + wiggle,
                "tuned_chrf": chrf[1] + wiggle * 0.5,
            }
        )
    return {"created_at": 1.0, "rows": rows, "summary": {"prompts": n}}


def _ballot(result, tuned_wins, base_wins, ties=0, voter="voter-aaaa", seed=1):
    ballot = votes.new_ballot(result, voter=voter, seed=seed)
    indexes = iter(range(len(result["rows"])))
    for count, winner in ((tuned_wins, "tuned"), (base_wins, "base"), (ties, "tie")):
        for _ in range(count):
            i = next(indexes)
            tuned_side = ballot["items"][i]["tuned_is"]
            other = "B" if tuned_side == "A" else "A"
            votes.vote(ballot, i, {"tuned": tuned_side, "base": other, "tie": "tie"}[winner])
    ballot["revealed_at"] = 2.0
    return ballot


def test_everything_better_with_enough_prompts_is_better():
    result = _rows(20)
    v = verdict.verdict(result, [_ballot(result, 12, 2, 1)])
    assert v["conclusion"] == "better", v["headline"]
    assert v["headline"].startswith("Better:")
    assert {s["key"]: s["direction"] for s in v["signals"]} == {
        "loss": "better",
        "rouge_l": "better",
        "chrf": "better",
        "votes": "better",
    }
    loss = v["signals"][0]
    assert loss["n"] == 20 and loss["tuned_better_on"] == 20 and loss["improvement"] > 0
    assert loss["interval"][0] > 0 and loss["sign_test_p"] < 0.001
    assert v["regressions"] == []
    assert v["evidence"]["scored_prompts"] == 20 and v["evidence"]["voters"] == 1


def test_loss_improves_but_overlap_and_votes_fall_is_never_better():
    result = _rows(30, loss=(2.0, 1.4), rouge=(0.35, 0.30), chrf=(0.32, 0.29))
    v = verdict.verdict(result, [_ballot(result, 2, 12)])
    assert v["conclusion"] != "better"
    assert v["conclusion"] == "inconclusive" and "disagree" in v["headline"]
    by_key = {s["key"]: s for s in v["signals"]}
    assert by_key["loss"]["direction"] == "better"
    assert by_key["rouge_l"]["direction"] == by_key["chrf"]["direction"] == by_key["votes"]["direction"] == "worse"
    assert {r["key"] for r in v["regressions"]} == {"rouge_l", "chrf", "votes"}
    assert "ROUGE-L word overlap fell 0.350 → 0.300" in " ".join(r["text"] for r in v["regressions"])


def test_loss_improves_while_overlap_leans_worse_within_noise_is_not_better():
    # overlap a hair worse on average (not significant): still enough to withhold "better"
    result = _rows(30, loss=(2.0, 1.4), rouge=(0.35, 0.349), chrf=(0.32, 0.32), spread=0.2)
    v = verdict.verdict(result, [])
    assert v["conclusion"] == "inconclusive" and "but ROUGE-L got worse (within noise)" in v["headline"]


def test_a_few_votes_against_a_clear_improvement_withhold_better_and_say_why():
    result = _rows(30)
    v = verdict.verdict(result, [_ballot(result, 1, 2)])
    assert v["conclusion"] == "inconclusive"
    assert "but the blind votes favoured the base (too few to tell)" in v["headline"]


def test_a_two_prompt_evaluation_is_inconclusive():
    result = _rows(2, loss=(3.0, 1.0), rouge=(0.1, 0.9), chrf=(0.1, 0.9))
    v = verdict.verdict(result, [_ballot(result, 2, 0)])
    assert v["conclusion"] == "inconclusive"
    assert "too little evidence" in v["headline"] and "2 scored prompt(s)" in v["headline"]
    assert all(s["direction"] == "too few" for s in v["signals"])


def test_the_issue_case_five_prompts_loss_up_overlap_and_votes_down():
    result = _rows(5, loss=(2.0, 1.2), rouge=(0.350, 0.326), chrf=(0.316, 0.307))
    v = verdict.verdict(result, [_ballot(result, 0, 5)])
    assert v["conclusion"] == "inconclusive"
    assert "point in different directions" in v["headline"]


def test_intervals_spanning_zero_are_inconclusive_in_words():
    result = _rows(20, loss=(2.0, 2.0), rouge=(0.3, 0.3), chrf=(0.3, 0.3), spread=0.3)
    for row in result["rows"][::2]:  # half the prompts a bit better, half a bit worse
        row["tuned_loss"], row["tuned_rouge_l"], row["tuned_chrf"] = (
            row["base_loss"] - 0.1,
            row["base_rouge_l"] + 0.1,
            row["base_chrf"] + 0.1,
        )
    for row in result["rows"][1::2]:
        row["tuned_loss"], row["tuned_rouge_l"], row["tuned_chrf"] = (
            row["base_loss"] + 0.1,
            row["base_rouge_l"] - 0.1,
            row["base_chrf"] - 0.1,
        )
    v = verdict.verdict(result, [])
    assert v["conclusion"] == "inconclusive"
    assert all(s["direction"] == "unclear" for s in v["signals"])
    assert all(s["interval"][0] < 0 < s["interval"][1] for s in v["signals"])


def test_clearly_worse_is_worse():
    result = _rows(15, loss=(1.5, 2.0), rouge=(0.4, 0.3), chrf=(0.4, 0.3))
    v = verdict.verdict(result, [])
    assert v["conclusion"] == "worse" and v["headline"].startswith("Worse:")


def test_a_tuned_model_that_loops_is_flagged_and_not_better():
    def looping(i):
        return "Ahoy! a fleeting moment of beauty, " * (10 if i < 3 else 1) + f"number {i} answered plainly here."

    result = _rows(20, tuned_text=looping)
    v = verdict.verdict(result, [])
    assert v["repetition"]["tuned_looping"] == [0, 1, 2] and v["repetition"]["base_looping"] == []
    assert v["conclusion"] == "inconclusive" and "repeats itself" in v["headline"]
    assert any(r["kind"] == "repetition" and "prompt 1, 2, 3" in r["text"] for r in v["regressions"])


def test_prompts_seen_in_training_withhold_better():
    result = _rows(20)
    result["summary"]["in_training"] = 20
    v = verdict.verdict(result, [])
    assert v["conclusion"] == "inconclusive" and "training data" in v["headline"]


def test_no_references_and_no_votes_is_inconclusive_and_says_why():
    v = verdict.verdict({"rows": [{"prompt": "p", "base": "a", "tuned": "b"}], "summary": {}}, [])
    assert v["conclusion"] == "inconclusive" and "nothing to weigh" in v["headline"]
    assert verdict.verdict(None)["conclusion"] == "inconclusive"


def test_votes_alone_can_carry_a_verdict_and_several_voters_pool():
    result = _rows(12)
    for row in result["rows"]:
        for key in ("base_loss", "tuned_loss", "base_rouge_l", "tuned_rouge_l", "base_chrf", "tuned_chrf"):
            row.pop(key)
    ballots = [_ballot(result, 7, 1, voter="voter-one1"), _ballot(result, 6, 2, seed=9, voter="voter-two2")]
    v = verdict.verdict(result, ballots)
    (signal,) = v["signals"]
    assert (signal["tuned"], signal["base"], signal["voters"], signal["n"]) == (13, 3, 2, 16)
    assert signal["direction"] == "better" and v["conclusion"] == "better"
    assert "from 2 voter(s)" in signal["text"] and "95 % interval" in signal["text"]


def test_markdown_lists_every_signal_and_the_regressions():
    result = _rows(30, loss=(2.0, 1.4), rouge=(0.35, 0.30), chrf=(0.32, 0.29))
    text = verdict.markdown(verdict.verdict(result, []))
    assert text.startswith("**Inconclusive:") and "Regressions" in text
    assert text.count("\n- ") >= 5  # three measures + two regressions
