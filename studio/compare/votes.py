"""Blind A/B ballots: each voter sees the base and tuned answers to the evaluated prompts as "A" and "B".

Saved in the viewer's Compare folder (runs.RunInfo.compare_dir: the run's compare/ for its owner and in
private mode, compare/visitors/<visitor>/ for anyone else in public mode, so nobody writes into another's
box) as votes.json:

    {"version": 2, "eval_created_at": <the evaluation's created_at>, "ballots": {<voter id>: ballot}}
    ballot = {"voter", "label" ("Voter 2"), "seed", "order": [prompt index, ...],
              "items": [{"index", "tuned_is": "A" | "B"}, ...], "votes": {"<index>": "A" | "B" | "tie"},
              "created_at", "revealed_at": null | time}

Every change is a read-modify-write under the file's lock (paths.locked_update): votes sent at the same
moment all count, a reload loses nothing, and a damaged votes.json is kept aside and reported
(paths.CorruptFile), never silently replaced by an empty box.

The rules hold whoever calls (every UI handler is an HTTP endpoint):
  - which side shows the tuned answer is drawn per prompt, and the prompts' order per voter, from the
    ballot's own seed, so two voters do not see the same layout;
  - a ballot is open until its voter reveals it (after the last prompt, or earlier to stop);
    revealing closes it for good — no vote after seeing which was which — and shows only the
    prompts that voter voted on;
  - a new evaluation starts a new ballot box (its answers are different).
Who may vote is the caller's business (studio.access, through runs.load_run); this module takes a voter id.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

from studio import paths
from studio.compare import runs
from studio.compare.uncertainty import wilson_interval
from studio.errors import StudioError

VOTES_FILE = "votes.json"
CHOICES = ("A", "B", "tie")
MAX_BALLOTS = 200  # per evaluation: a room of stakeholders fits, a script filling the disk does not
_VOTER_ID = re.compile(r"^[A-Za-z0-9_-]{4,64}$")


def votes_path(run: runs.RunInfo) -> Path:
    return run.compare_dir / VOTES_FILE


def new_voter_id() -> str:
    return paths.new_id("voter-")


def check_voter(voter: str) -> str:
    voter = str(voter or "").strip()
    if not _VOTER_ID.match(voter):
        raise StudioError("That voter id is not valid.", "Press “New voter” to start a fresh ballot.")
    return voter


# ---------------------------------------------------------------- one ballot (pure functions)


def new_ballot(eval_result: dict, voter: str = "voter-1", label: str = "Voter 1", seed: int | None = None) -> dict:
    """A fresh ballot over every evaluated prompt: the tuned side and the prompt order drawn from `seed`."""
    rows = eval_result.get("rows") or []
    if not rows:
        raise StudioError("There are no evaluated prompts to vote on.", "Run the evaluation first.")
    seed = random.SystemRandom().randrange(1, 2**31) if seed is None else int(seed)
    rng = random.Random(seed)
    items = [{"index": i, "tuned_is": rng.choice(("A", "B"))} for i in range(len(rows))]
    order = list(range(len(rows)))
    rng.shuffle(order)
    return {
        "voter": voter,
        "label": label,
        "seed": seed,
        "order": order,
        "items": items,
        "votes": {},
        "created_at": time.time(),
        "revealed_at": None,
    }


def is_revealed(ballot: dict) -> bool:
    return bool(ballot.get("revealed_at"))


def _order(ballot: dict) -> list[int]:
    return ballot.get("order") or [item["index"] for item in ballot["items"]]


def vote(ballot: dict, index: int, choice: str) -> dict:
    if is_revealed(ballot):
        raise StudioError(
            "This ballot is closed: the answers were revealed, so a vote now would not be blind.",
            "Press “New voter” to vote again with a fresh ballot.",
        )
    if choice not in CHOICES:
        raise StudioError(f"'{choice}' is not a vote.", "Pick A, B or tie.")
    if not isinstance(index, int) or not 0 <= index < len(ballot["items"]):
        raise StudioError("That prompt is not on the ballot.", "Start the blind test again.")
    ballot["votes"][str(index)] = choice
    return ballot


def next_unvoted(ballot: dict) -> int | None:
    """The next prompt (its evaluation index) this voter has not voted on, in the ballot's order."""
    for index in _order(ballot):
        if str(index) not in ballot["votes"]:
            return index
    return None


def position(ballot: dict, index: int) -> int:
    """1-based place of a prompt in this voter's order."""
    return _order(ballot).index(index) + 1


def pair(ballot: dict, eval_result: dict, index: int) -> dict:
    """The prompt and the two answers as the voter sees them: {"index", "prompt", "A", "B"} — no labels."""
    item = ballot["items"][index]
    row = eval_result["rows"][index]
    tuned, base = row["tuned"], row["base"]
    a, b = (tuned, base) if item["tuned_is"] == "A" else (base, tuned)
    return {"index": index, "prompt": row["prompt"], "A": a, "B": b}


def reveal(ballot: dict, eval_result: dict) -> list[dict]:
    """Which side was which, for the prompts voted on only (a revealed ballot is closed)."""
    if not is_revealed(ballot):
        raise StudioError(
            "The answers are revealed only when the voter finishes or stops.", "Press “Finish and reveal”."
        )
    out = []
    for index in _order(ballot):
        choice = ballot["votes"].get(str(index))
        if choice is None:
            continue
        tuned_is = ballot["items"][index]["tuned_is"]
        winner = "tie" if choice == "tie" else ("tuned" if choice == tuned_is else "base")
        out.append(
            {
                "index": index,
                "prompt": eval_result["rows"][index]["prompt"],
                "tuned_is": tuned_is,
                "vote": choice,
                "winner": winner,
            }
        )
    return out


def tally(ballots) -> dict:
    """Tuned wins, base wins and ties over one ballot or a list of them, with the win rate over decisive votes."""
    if isinstance(ballots, dict):
        ballots = [ballots]
    counts = {"tuned": 0, "base": 0, "tie": 0}
    prompts: set[str] = set()
    voters = 0
    for ballot in ballots or []:
        by_index = {str(item["index"]): item["tuned_is"] for item in ballot.get("items", [])}
        cast = 0
        for index, choice in (ballot.get("votes") or {}).items():
            if index not in by_index:
                continue
            cast += 1
            prompts.add(index)
            if choice == "tie":
                counts["tie"] += 1
            else:
                counts["tuned" if choice == by_index[index] else "base"] += 1
        voters += 1 if cast else 0
    decisive = counts["tuned"] + counts["base"]
    total = decisive + counts["tie"]
    of = max((len(ballot.get("items", [])) for ballot in ballots or []), default=0)
    return {
        **counts,
        "total": total,
        "of": of,
        "voters": voters,
        "prompts": len(prompts),
        "tuned_win_rate": counts["tuned"] / decisive if decisive else None,
    }


def tally_text(result: dict) -> str:
    """The tally in words, with the win rate's 95 % Wilson interval."""
    if not result["total"]:
        return "No votes yet."
    decisive = result["tuned"] + result["base"]
    if decisive:
        low, high = wilson_interval(result["tuned"], decisive)
        rate = (
            f"tuned win rate {result['tuned_win_rate']:.0%} of {decisive} decisive votes (95 % interval "
            f"{low:.0%}–{high:.0%})"
        )
    else:
        rate = "no decisive votes (only ties)"
    who = f" from {result['voters']} voters" if result.get("voters", 1) > 1 else ""
    return (
        f"Tuned model preferred in {result['tuned']} of {result['total']} votes{who}, base in {result['base']}, "
        f"{result['tie']} ties — {rate}."
    )


# ---------------------------------------------------------------- the ballot box on disk


def _empty_box(eval_result: dict) -> dict:
    return {"version": 2, "eval_created_at": eval_result.get("created_at"), "ballots": {}}


def _upgrade(saved: dict) -> dict:
    """A version-1 file held one unnamed ballot: keep it as Voter 1's."""
    if "ballots" in saved or "items" not in saved:
        return saved
    ballot = {key: saved[key] for key in ("seed", "items", "votes", "created_at") if key in saved}
    ballot.update(
        voter="voter-1",
        label="Voter 1",
        order=[item["index"] for item in saved["items"]],
        revealed_at=saved.get("revealed_at"),
    )
    return {"version": 2, "eval_created_at": saved.get("eval_created_at"), "ballots": {"voter-1": ballot}}


def _current_box(saved, eval_result: dict) -> dict:
    """The box for this evaluation out of what votes.json held (an empty one when it held another's)."""
    if not isinstance(saved, dict):
        return _empty_box(eval_result)
    saved = _upgrade(saved)
    rows = len(eval_result.get("rows") or [])
    ballots = saved.get("ballots") if isinstance(saved.get("ballots"), dict) else {}
    if saved.get("eval_created_at") != eval_result.get("created_at") or any(
        len(ballot.get("items", [])) != rows for ballot in ballots.values()
    ):
        return _empty_box(eval_result)
    return {"version": 2, "eval_created_at": saved["eval_created_at"], "ballots": ballots}


def load_box(run: runs.RunInfo, eval_result: dict) -> dict:
    """The ballots cast on this evaluation, read without the lock (files are replaced whole): an empty box
    when there are none, they were for another evaluation, or the file does not parse (the next write
    reports and keeps it)."""
    return _current_box(runs.read_json(votes_path(run), None), eval_result)


def _change(
    run: runs.RunInfo, eval_result: dict, voter: str, action, create: bool = True, seed: int | None = None
) -> dict:
    """Under the file's lock: read the box, apply `action(ballot)` to this voter's ballot (created if missing),
    write it back; return the ballot."""
    voter = check_voter(voter)
    changed = {}

    def change(saved):
        box = _current_box(saved, eval_result)
        ballot = box["ballots"].get(voter)
        if ballot is None:
            if not create:
                raise StudioError("This voter has no ballot yet.", "Press “Start / continue my ballot”.")
            if len(box["ballots"]) >= MAX_BALLOTS:
                raise StudioError(
                    f"This evaluation already has {MAX_BALLOTS} ballots.",
                    "Run a new evaluation to start a fresh round of votes.",
                )
            ballot = new_ballot(eval_result, voter, f"Voter {len(box['ballots']) + 1}", seed)
            box["ballots"][voter] = ballot
        action(ballot)
        changed["ballot"] = ballot
        return box

    paths.locked_update(run.writable_compare_dir() / VOTES_FILE, change)
    return changed["ballot"]


def ballot_for(run: runs.RunInfo, eval_result: dict, voter: str, seed: int | None = None) -> dict:
    """This voter's ballot on this evaluation, created (and saved) on first use."""
    return _change(run, eval_result, voter, lambda ballot: None, seed=seed)


def cast(run: runs.RunInfo, eval_result: dict, voter: str, index: int, choice: str) -> dict:
    """Record one vote on this voter's ballot (refused once the ballot is revealed)."""
    return _change(run, eval_result, voter, lambda ballot: vote(ballot, index, choice), create=False)


def finish(run: runs.RunInfo, eval_result: dict, voter: str) -> dict:
    """Close this voter's ballot and allow its reveal (idempotent)."""

    def close(ballot):
        if not ballot.get("revealed_at"):
            ballot["revealed_at"] = time.time()

    return _change(run, eval_result, voter, close, create=False)


def finished_ballots(run: runs.RunInfo, eval_result: dict | None) -> list[dict]:
    """The revealed ballots of this evaluation: the votes that count in the verdict and the report."""
    if not eval_result:
        return []
    return [ballot for ballot in load_box(run, eval_result)["ballots"].values() if is_revealed(ballot)]
