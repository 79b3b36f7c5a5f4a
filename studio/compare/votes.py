"""Blind A/B: base and tuned answers in a random (seeded, stored) order; the viewer picks A, B or tie.

Saved to <run_dir>/compare/votes.json after every vote, as a read-modify-write under the file's lock
(paths.locked_update): two people voting at once both count, a reload loses nothing, and a damaged
votes.json is kept aside and reported (CorruptFile), never replaced by an empty ballot.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from studio import paths
from studio.compare import runs
from studio.errors import StudioError

VOTES_FILE = "votes.json"
CHOICES = ("A", "B", "tie")


def votes_path(run: runs.RunInfo) -> Path:
    return run.compare_dir / VOTES_FILE


def new_ballot(eval_result: dict, seed: int | None = None) -> dict:
    """One item per evaluated prompt; which side shows the tuned answer is drawn per prompt from `seed`."""
    rows = eval_result.get("rows") or []
    if not rows:
        raise StudioError("There are no evaluated prompts to vote on.", "Run the evaluation first.")
    seed = random.SystemRandom().randrange(1, 2**31) if seed is None else int(seed)
    rng = random.Random(seed)
    items = [{"index": i, "tuned_is": rng.choice(("A", "B"))} for i in range(len(rows))]
    return {"seed": seed, "eval_created_at": eval_result.get("created_at"), "items": items, "votes": {},
            "created_at": time.time()}


def _belongs_to(saved, eval_result: dict) -> bool:
    return (isinstance(saved, dict) and saved.get("eval_created_at") == eval_result.get("created_at")
            and len(saved.get("items", [])) == len(eval_result.get("rows", [])))


def load_or_create(run: runs.RunInfo, eval_result: dict, seed: int | None = None) -> dict:
    """The saved ballot for this evaluation, or a fresh one (a new evaluation starts a new ballot).
    Raises paths.CorruptFile (a StudioError) when votes.json is damaged: it is kept aside, not replaced."""
    return paths.locked_update(votes_path(run), lambda saved: saved if _belongs_to(saved, eval_result)
                               else new_ballot(eval_result, seed))


def record_vote(run: runs.RunInfo, eval_result: dict, index: int, choice: str) -> dict:
    """Add one vote to the saved ballot under its lock and return the ballot (concurrent votes all count)."""
    def add(saved):
        ballot = saved if _belongs_to(saved, eval_result) else new_ballot(eval_result)
        return vote(ballot, index, choice)

    return paths.locked_update(votes_path(run), add)


def save(run: runs.RunInfo, ballot: dict) -> None:
    """Replace the whole ballot (under the lock, so it never interleaves with record_vote)."""
    paths.locked_update(votes_path(run), lambda _saved: ballot)


def pair(ballot: dict, eval_result: dict, index: int) -> dict:
    """The prompt and the two answers as the viewer sees them: {"prompt", "A", "B"}."""
    item = ballot["items"][index]
    row = eval_result["rows"][index]
    tuned, base = row["tuned"], row["base"]
    a, b = (tuned, base) if item["tuned_is"] == "A" else (base, tuned)
    return {"index": index, "prompt": row["prompt"], "A": a, "B": b}


def vote(ballot: dict, index: int, choice: str) -> dict:
    if choice not in CHOICES:
        raise StudioError(f"'{choice}' is not a vote.", "Pick A, B or tie.")
    if not 0 <= index < len(ballot["items"]):
        raise StudioError("That prompt is not on the ballot.", "Start the blind test again.")
    ballot["votes"][str(index)] = choice
    return ballot


def next_unvoted(ballot: dict) -> int | None:
    for item in ballot["items"]:
        if str(item["index"]) not in ballot["votes"]:
            return item["index"]
    return None


def tally(ballot: dict) -> dict:
    """Counts of tuned wins, base wins and ties, and the tuned win rate over decisive votes."""
    counts = {"tuned": 0, "base": 0, "tie": 0}
    by_index = {str(item["index"]): item["tuned_is"] for item in ballot.get("items", [])}
    for index, choice in ballot.get("votes", {}).items():
        if choice == "tie":
            counts["tie"] += 1
        elif index in by_index:
            counts["tuned" if choice == by_index[index] else "base"] += 1
    decisive = counts["tuned"] + counts["base"]
    total = decisive + counts["tie"]
    return {**counts, "total": total, "of": len(by_index),
            "tuned_win_rate": counts["tuned"] / decisive if decisive else None}


def tally_text(result: dict) -> str:
    if not result["total"]:
        return "No votes yet."
    rate = f"{result['tuned_win_rate']:.0%}" if result["tuned_win_rate"] is not None else "n/a"
    return (f"Tuned model preferred in {result['tuned']} of {result['total']} votes, base in {result['base']}, "
            f"{result['tie']} ties — tuned win rate {rate} of decisive votes ({result['total']}/{result['of']} prompts voted).")


def reveal(ballot: dict, eval_result: dict) -> list[dict]:
    """Which side was which, with the vote, per prompt."""
    out = []
    for item in ballot["items"]:
        index = item["index"]
        choice = ballot["votes"].get(str(index))
        winner = None if choice is None else "tie" if choice == "tie" else ("tuned" if choice == item["tuned_is"] else "base")
        out.append({"index": index, "prompt": eval_result["rows"][index]["prompt"], "tuned_is": item["tuned_is"],
                    "vote": choice, "winner": winner})
    return out
