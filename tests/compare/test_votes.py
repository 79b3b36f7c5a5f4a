import json

import pytest

from studio.compare import votes
from studio.compare.runs import RunInfo
from studio.errors import StudioError


def _eval(n=6, created=123.0):
    return {"created_at": created, "rows": [{"prompt": f"p{i}", "base": f"base {i}", "tuned": f"tuned {i}"} for i in range(n)]}


def test_order_is_seeded_and_both_sides_occur():
    one, two = votes.new_ballot(_eval(40), seed=7), votes.new_ballot(_eval(40), seed=7)
    assert one["items"] == two["items"]
    sides = {item["tuned_is"] for item in one["items"]}
    assert sides == {"A", "B"}
    assert votes.new_ballot(_eval(40), seed=8)["items"] != one["items"]


def test_pair_hides_which_is_which_and_tally_counts_correctly():
    result = _eval(4)
    ballot = votes.new_ballot(result, seed=1)
    ballot["items"] = [{"index": 0, "tuned_is": "A"}, {"index": 1, "tuned_is": "B"},
                       {"index": 2, "tuned_is": "B"}, {"index": 3, "tuned_is": "A"}]
    assert votes.pair(ballot, result, 0) == {"index": 0, "prompt": "p0", "A": "tuned 0", "B": "base 0"}
    assert votes.pair(ballot, result, 1)["A"] == "base 1"
    votes.vote(ballot, 0, "A")    # tuned
    votes.vote(ballot, 1, "A")    # base
    votes.vote(ballot, 2, "B")    # tuned
    votes.vote(ballot, 3, "tie")
    tally = votes.tally(ballot)
    assert (tally["tuned"], tally["base"], tally["tie"], tally["total"], tally["of"]) == (2, 1, 1, 4, 4)
    assert tally["tuned_win_rate"] == pytest.approx(2 / 3)
    assert "2 of 4" in votes.tally_text(tally)
    revealed = votes.reveal(ballot, result)
    assert [r["winner"] for r in revealed] == ["tuned", "base", "tuned", "tie"]


def test_revote_replaces_and_bad_votes_are_refused():
    ballot = votes.new_ballot(_eval(2), seed=3)
    votes.vote(ballot, 0, "A")
    votes.vote(ballot, 0, "tie")
    assert votes.tally(ballot)["total"] == 1 and votes.tally(ballot)["tie"] == 1
    assert votes.next_unvoted(ballot) == 1
    with pytest.raises(StudioError):
        votes.vote(ballot, 0, "C")
    with pytest.raises(StudioError):
        votes.vote(ballot, 9, "A")
    assert votes.tally(votes.new_ballot(_eval(2), seed=3))["tuned_win_rate"] is None


def test_ballot_is_saved_reloaded_and_renewed_for_a_new_evaluation(tmp_path):
    run = RunInfo(run_id="r", dir=tmp_path, adapter_dir=tmp_path / "adapter", base_ref="x")
    result = _eval(3, created=1.0)
    ballot = votes.load_or_create(run, result, seed=5)
    votes.vote(ballot, 2, "B")
    votes.save(run, ballot)
    saved = json.loads((tmp_path / "compare" / "votes.json").read_text())
    assert saved["votes"] == {"2": "B"} and saved["seed"] == 5
    assert votes.load_or_create(run, result)["votes"] == {"2": "B"}
    assert votes.load_or_create(run, _eval(3, created=2.0))["votes"] == {}
    assert not list((tmp_path / "compare").glob(".*tmp"))  # atomic writes leave no temp files


def test_empty_evaluation_cannot_be_voted_on():
    with pytest.raises(StudioError):
        votes.new_ballot({"rows": []})
