import json
import threading

import pytest

from studio.compare import runs, votes
from studio.compare.runs import RunInfo
from studio.errors import StudioError


def _eval(n=6, created=123.0):
    return {
        "created_at": created,
        "rows": [{"prompt": f"p{i}", "base": f"base {i}", "tuned": f"tuned {i}"} for i in range(n)],
    }


def _run(tmp_path):
    return RunInfo(run_id="r", dir=tmp_path, adapter_dir=tmp_path / "adapter", base_ref="x")


def test_order_is_seeded_per_prompt_and_per_voter():
    one, two = votes.new_ballot(_eval(40), seed=7), votes.new_ballot(_eval(40), seed=7)
    assert one["items"] == two["items"] and one["order"] == two["order"]
    assert {item["tuned_is"] for item in one["items"]} == {"A", "B"}
    other = votes.new_ballot(_eval(40), seed=8)
    assert other["items"] != one["items"] and other["order"] != one["order"]
    assert sorted(one["order"]) == list(range(40)) and one["order"] != list(range(40))


def test_pair_hides_which_is_which_and_tally_counts_correctly():
    result = _eval(4)
    ballot = votes.new_ballot(result, seed=1)
    ballot["items"] = [
        {"index": 0, "tuned_is": "A"},
        {"index": 1, "tuned_is": "B"},
        {"index": 2, "tuned_is": "B"},
        {"index": 3, "tuned_is": "A"},
    ]
    assert votes.pair(ballot, result, 0) == {"index": 0, "prompt": "p0", "A": "tuned 0", "B": "base 0"}
    assert votes.pair(ballot, result, 1)["A"] == "base 1"
    votes.vote(ballot, 0, "A")  # tuned
    votes.vote(ballot, 1, "A")  # base
    votes.vote(ballot, 2, "B")  # tuned
    votes.vote(ballot, 3, "tie")
    tally = votes.tally(ballot)
    assert (tally["tuned"], tally["base"], tally["tie"], tally["total"], tally["of"]) == (2, 1, 1, 4, 4)
    assert tally["tuned_win_rate"] == pytest.approx(2 / 3) and tally["voters"] == 1
    text = votes.tally_text(tally)
    assert "2 of 4" in text and "95 % interval" in text


def test_reveal_only_after_finishing_only_voted_prompts_and_no_vote_after():
    result = _eval(5)
    ballot = votes.new_ballot(result, seed=3)
    first, second = ballot["order"][:2]
    votes.vote(ballot, first, "A")
    votes.vote(ballot, second, "tie")
    with pytest.raises(StudioError):
        votes.reveal(ballot, result)  # still open: nothing is revealed
    ballot["revealed_at"] = 1.0
    revealed = votes.reveal(ballot, result)
    assert [r["index"] for r in revealed] == [first, second]  # the 3 unvoted prompts stay hidden
    assert revealed[1]["winner"] == "tie"
    with pytest.raises(StudioError, match="closed"):
        votes.vote(ballot, ballot["order"][2], "B")


def test_revote_replaces_and_bad_votes_are_refused():
    ballot = votes.new_ballot(_eval(2), seed=3)
    first, second = ballot["order"]
    votes.vote(ballot, first, "A")
    votes.vote(ballot, first, "tie")
    assert votes.tally(ballot)["total"] == 1 and votes.tally(ballot)["tie"] == 1
    assert votes.next_unvoted(ballot) == second and votes.position(ballot, second) == 2
    with pytest.raises(StudioError):
        votes.vote(ballot, first, "C")
    with pytest.raises(StudioError):
        votes.vote(ballot, 9, "A")
    assert votes.tally(votes.new_ballot(_eval(2), seed=3))["tuned_win_rate"] is None


def test_each_voter_has_a_ballot_saved_and_a_new_evaluation_starts_a_new_box(tmp_path):
    run, result = _run(tmp_path), _eval(3, created=1.0)
    one = votes.ballot_for(run, result, "voter-one1", seed=5)
    two = votes.ballot_for(run, result, "voter-two2", seed=6)
    assert (one["label"], two["label"]) == ("Voter 1", "Voter 2")
    votes.cast(run, result, "voter-one1", 2, "B")
    saved = json.loads((tmp_path / "compare" / "votes.json").read_text())
    assert saved["ballots"]["voter-one1"]["votes"] == {"2": "B"} and saved["ballots"]["voter-two2"]["votes"] == {}
    assert votes.ballot_for(run, result, "voter-one1")["votes"] == {"2": "B"}  # reloaded, not replaced
    assert votes.finished_ballots(run, result) == []  # nothing counts before the voter finishes
    votes.finish(run, result, "voter-one1")
    assert [b["voter"] for b in votes.finished_ballots(run, result)] == ["voter-one1"]
    with pytest.raises(StudioError, match="closed"):
        votes.cast(run, result, "voter-one1", 0, "A")
    votes.cast(run, result, "voter-two2", 0, "A")  # the other ballot is still open
    assert votes.load_box(run, _eval(3, created=2.0))["ballots"] == {}
    assert not list((tmp_path / "compare").glob(".*tmp"))  # atomic writes leave no temp files


def test_voter_ids_are_checked_and_unknown_voters_cannot_vote(tmp_path):
    run, result = _run(tmp_path), _eval(2)
    for bad in ("", "../../etc", "a" * 100, "x y"):
        with pytest.raises(StudioError):
            votes.ballot_for(run, result, bad)
    with pytest.raises(StudioError, match="no ballot"):
        votes.cast(run, result, "voter-nobody", 0, "A")
    assert votes.check_voter(votes.new_voter_id())


def test_concurrent_voters_lose_no_vote(tmp_path):
    run, result = _run(tmp_path), _eval(20)
    voters = [f"voter-{i:04d}" for i in range(4)]
    for voter in voters:
        votes.ballot_for(run, result, voter)

    def vote_all(voter):
        for index in range(20):
            votes.cast(run, result, voter, index, "tie")

    threads = [threading.Thread(target=vote_all, args=(voter,)) for voter in voters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    box = votes.load_box(run, result)
    assert all(len(box["ballots"][voter]["votes"]) == 20 for voter in voters)


def test_a_version_one_file_becomes_voter_one(tmp_path):
    run, result = _run(tmp_path), _eval(2, created=7.0)
    (tmp_path / "compare").mkdir()
    (tmp_path / "compare" / "votes.json").write_text(
        json.dumps(
            {
                "seed": 1,
                "eval_created_at": 7.0,
                "items": [{"index": 0, "tuned_is": "A"}, {"index": 1, "tuned_is": "B"}],
                "votes": {"0": "A"},
                "created_at": 1.0,
            }
        )
    )
    box = votes.load_box(run, result)
    assert box["ballots"]["voter-1"]["votes"] == {"0": "A"} and box["ballots"]["voter-1"]["order"] == [0, 1]


def test_empty_evaluation_cannot_be_voted_on():
    with pytest.raises(StudioError):
        votes.new_ballot({"rows": []})


def test_a_shared_run_keeps_a_bounded_number_of_visitors_folders(tmp_path, monkeypatch):
    """Visitor ids are free to make: each would add a folder (its ballot, evaluation, report) to the operator's
    shared run (hostile-visitor finding: 60 ballots in 2 seconds)."""
    monkeypatch.setattr(runs, "MAX_VISITOR_FOLDERS", 2)
    visitors = tmp_path / "compare" / "visitors"

    def visitor(name):
        return runs.RunInfo(
            run_id="shared", dir=tmp_path, adapter_dir=tmp_path / "adapter", base_ref="m", viewer_dir=visitors / name
        )

    for name in ("a", "b"):
        folder = visitor(name).writable_compare_dir()
        folder.mkdir(parents=True)
    assert visitor("a").writable_compare_dir() == visitors / "a"  # those already here keep writing
    with pytest.raises(StudioError, match="the most it takes"):
        visitor("c").writable_compare_dir()
    owner = runs.RunInfo(run_id="shared", dir=tmp_path, adapter_dir=tmp_path / "adapter", base_ref="m")
    assert owner.writable_compare_dir() == tmp_path / "compare"
