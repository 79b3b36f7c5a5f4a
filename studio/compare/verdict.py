"""One honest verdict on "is the tuned model better than the base?", shared by Compare, the CLI and the reports.

    v = verdict(eval_result, ballots)     # eval_result: evaluate.evaluate(); ballots: votes.finished_ballots()

It weighs four signals, each with its count and an uncertainty:
  - loss on the reference answers (lower is better), per prompt;
  - ROUGE-L and chrF overlap with the reference answers (higher is better), per prompt;
  - blind A/B votes: the tuned model's win rate over decisive votes with a Wilson interval.
A per-prompt signal counts as clearly changed when its paired-bootstrap interval excludes zero AND
the sign test over prompts agrees (p < 0.05), with at least MIN_PROMPTS prompts; the votes count
when the Wilson interval excludes 50 % with at least MIN_VOTES decisive votes.

The conclusion is "better" only when some signal is clearly better, none points the other way
(even within noise), the tuned answers do not repeat themselves more than the base's, and the
prompts were held out. It is "worse" when a signal is clearly worse and none clearly better, and
"inconclusive" otherwise — with the reason in words (too few prompts, measures disagreeing,
intervals spanning zero). Regressions (a measure that got worse, answers that loop) are listed
whatever the conclusion. Everything is deterministic: the bootstrap is seeded.
"""

from __future__ import annotations

import math

from studio.compare import metrics, uncertainty, votes

MIN_PROMPTS = 10  # fewer scored prompts cannot carry a conclusion (a sign test needs 6 just to reach p < 0.05)
MIN_VOTES = 10  # decisive blind votes
SIGNIFICANCE = 0.05

# key, label, which way is better, digits shown
METRICS = (
    ("loss", "Loss on the reference answers", "lower", 3),
    ("rouge_l", "ROUGE-L word overlap", "higher", 3),
    ("chrf", "chrF character overlap", "higher", 3),
)
SHORT = {"loss": "the loss", "rouge_l": "ROUGE-L", "chrf": "chrF", "votes": "the blind votes"}
METHOD = (
    f"Per-prompt measures: mean over prompts with a {uncertainty.CONFIDENCE:.0%} paired-bootstrap interval "
    f"({uncertainty.RESAMPLES} resamples of the prompts, seed {uncertainty.SEED}) and an exact sign test; a "
    f"measure counts as changed when the interval excludes zero, the sign test gives p < {SIGNIFICANCE} and at "
    f"least {MIN_PROMPTS} prompts were scored. Blind votes: the tuned model's share of decisive votes (ties "
    f"left out) with a {uncertainty.CONFIDENCE:.0%} Wilson interval; they count from {MIN_VOTES} decisive votes "
    f"when the interval excludes 50 %. An answer repeats itself when at least "
    f"{metrics.LOOPING:.0%} of its word 3-grams occurred earlier in it."
)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def metric_signal(rows: list[dict], key: str, label: str, better: str, digits: int) -> dict | None:
    """One per-prompt measure: means, wins per prompt, bootstrap interval and sign test of the improvement."""
    pairs = [
        (row[f"base_{key}"], row[f"tuned_{key}"])
        for row in rows
        if _finite(row.get(f"base_{key}")) and _finite(row.get(f"tuned_{key}"))
    ]
    if not pairs:
        return None
    sign = -1.0 if better == "lower" else 1.0
    improvements = [sign * (tuned - base) for base, tuned in pairs]  # > 0: the tuned model did better
    tuned_better = sum(1 for value in improvements if value > 0)
    base_better = sum(1 for value in improvements if value < 0)
    interval = uncertainty.paired_bootstrap(improvements)
    p_value = uncertainty.sign_test(tuned_better, base_better)
    n = len(pairs)
    significant = p_value is not None and p_value < SIGNIFICANCE
    if n < MIN_PROMPTS:
        direction = "too few"
    elif interval["low"] > 0 and significant:
        direction = "better"
    elif interval["high"] < 0 and significant:
        direction = "worse"
    else:
        direction = "unclear"
    signal = {
        "key": key,
        "label": label,
        "better_when": better,
        "n": n,
        "digits": digits,
        "base": uncertainty.mean(base for base, _ in pairs),
        "tuned": uncertainty.mean(tuned for _, tuned in pairs),
        # the improvement in the measure's own units (positive = tuned better) and its interval
        "improvement": interval["mean"],
        "interval": [interval["low"], interval["high"]],
        "tuned_better_on": tuned_better,
        "base_better_on": base_better,
        "ties": n - tuned_better - base_better,
        "sign_test_p": p_value,
        "direction": direction,
        "leaning": _leaning(interval["mean"]),
    }
    signal["text"] = _metric_text(signal)
    return signal


def vote_signal(ballots: list[dict]) -> dict | None:
    """The blind votes of finished ballots, pooled: tuned wins over decisive votes with a Wilson interval."""
    result = votes.tally(ballots)
    if not result["total"]:
        return None
    decisive = result["tuned"] + result["base"]
    interval = uncertainty.wilson_interval(result["tuned"], decisive)
    rate = result["tuned"] / decisive if decisive else None
    if decisive < MIN_VOTES:
        direction = "too few"
    elif interval[0] > 0.5:
        direction = "better"
    elif interval[1] < 0.5:
        direction = "worse"
    else:
        direction = "unclear"
    signal = {
        "key": "votes",
        "label": "Blind A/B votes",
        "n": decisive,
        "votes": result["total"],
        "tuned": result["tuned"],
        "base": result["base"],
        "ties": result["tie"],
        "voters": result["voters"],
        "prompts": result["prompts"],
        "win_rate": rate,
        "interval": list(interval) if interval else None,
        "direction": direction,
        "leaning": _leaning(None if rate is None else rate - 0.5),
    }
    signal["text"] = _vote_text(signal)
    return signal


def _leaning(value) -> str:
    if value is None or abs(value) < 1e-12:
        return "none"
    return "better" if value > 0 else "worse"


def repetition_summary(rows: list[dict]) -> dict:
    """Per-answer repetition scores and which answers loop, for both columns."""
    out = {"threshold": metrics.LOOPING}
    for side in ("base", "tuned"):
        scores = [round(metrics.repetition(row.get(side) or ""), 3) for row in rows]
        out[side] = scores
        out[f"{side}_looping"] = [index for index, score in enumerate(scores) if score >= metrics.LOOPING]
    return out


def verdict(eval_result: dict | None, ballots: list[dict] | None = None) -> dict:
    """The verdict object (JSON-able): conclusion, headline, reasons, signals, regressions, evidence, method."""
    rows = (eval_result or {}).get("rows") or []
    summary = (eval_result or {}).get("summary") or {}
    signals = [s for s in (metric_signal(rows, *spec) for spec in METRICS) if s is not None]
    votes_signal = vote_signal(ballots or [])
    if votes_signal is not None:
        signals.append(votes_signal)
    repetition = repetition_summary(rows)
    scored = max((s["n"] for s in signals if s["key"] != "votes"), default=0)
    in_training = int(summary.get("in_training") or 0)
    evidence = {
        "prompts": len(rows),
        "scored_prompts": scored,
        "in_training": in_training,
        "votes": votes_signal["votes"] if votes_signal else 0,
        "decisive_votes": votes_signal["n"] if votes_signal else 0,
        "voters": votes_signal["voters"] if votes_signal else 0,
        "min_prompts": MIN_PROMPTS,
        "min_votes": MIN_VOTES,
    }

    regressions = []
    for signal in signals:
        if signal["leaning"] == "worse":
            regressions.append(
                {
                    "kind": "measure",
                    "key": signal["key"],
                    "clear": signal["direction"] == "worse",
                    "text": _regression_text(signal),
                }
            )
    extra_loops = len(repetition["tuned_looping"]) - len(repetition["base_looping"])
    if repetition["tuned_looping"] and extra_loops > 0:
        shown = ", ".join(str(i + 1) for i in repetition["tuned_looping"][:8])
        regressions.append(
            {
                "kind": "repetition",
                "key": "repetition",
                "clear": True,
                "text": f"{len(repetition['tuned_looping'])} tuned answer(s) repeat themselves (prompt {shown}); "
                f"base: {len(repetition['base_looping'])}.",
            }
        )

    conclusion, reasons = _conclude(signals, evidence, extra_loops)
    return {
        "conclusion": conclusion,
        "headline": _headline(conclusion, reasons, evidence),
        "reasons": reasons,
        "signals": signals,
        "regressions": regressions,
        "repetition": repetition,
        "evidence": evidence,
        "evidence_text": evidence_text(evidence),
        "method": METHOD,
    }


def _conclude(signals: list[dict], evidence: dict, extra_loops: int) -> tuple[str, list[str]]:
    clear_better = [s for s in signals if s["direction"] == "better"]
    clear_worse = [s for s in signals if s["direction"] == "worse"]
    leaning_worse = [s for s in signals if s["leaning"] == "worse" and s["direction"] != "worse"]
    usable = [s for s in signals if s["direction"] != "too few"]
    names = lambda items: _join([SHORT[s["key"]] for s in items])  # noqa: E731 - a one-line helper
    reasons: list[str] = []

    if not signals:
        return "inconclusive", [
            "there is nothing to weigh yet: no reference answers to score against and no finished blind votes"
        ]
    if not usable:
        reasons.append(
            f"too little evidence: {evidence['scored_prompts']} scored prompt(s) (at least {MIN_PROMPTS} "
            f"needed) and {evidence['decisive_votes']} decisive blind vote(s) (at least {MIN_VOTES} needed)"
        )
        if any(s["leaning"] == "better" for s in signals) and any(s["leaning"] == "worse" for s in signals):
            reasons.append(
                "and the measures point in different directions: "
                + _join([_moved(s) for s in signals if s["leaning"] != "none"])
            )
        return "inconclusive", reasons
    if clear_better and clear_worse:
        return "inconclusive", [
            f"the measures disagree: {names(clear_better)} clearly improved but {names(clear_worse)} clearly got worse"
        ]
    if clear_worse:
        reasons.append(f"{names(clear_worse)} clearly got worse")
        if leaning_worse:
            reasons.append(f"{names(leaning_worse)} also lean that way")
        return "worse", reasons
    if clear_better:
        blockers = []
        if leaning_worse:
            against = _join(
                [
                    f"{_moved(s)} ({'too few to tell' if s['direction'] == 'too few' else 'within noise'})"
                    for s in leaning_worse
                ]
            )
            blockers.append(f"{names(clear_better)} improved, but {against}")
        if extra_loops > 0:
            blockers.append("the tuned model repeats itself in more answers than the base")
        if evidence["in_training"] * 2 >= max(1, evidence["prompts"]):
            blockers.append(
                f"{evidence['in_training']} of the {evidence['prompts']} prompts were in the training data, "
                "so they do not test unseen questions"
            )
        if blockers:
            return "inconclusive", blockers
        return "better", [f"{names(clear_better)} clearly improved and no measure points the other way"]
    reasons.append("no measure moved beyond its noise (every interval spans no change)")
    if len(usable) < len(signals):
        thin = [s for s in signals if s["direction"] == "too few"]
        reasons.append(f"{names(thin)} had too little data to count")
    return "inconclusive", reasons


def _moved(signal: dict) -> str:
    if signal["key"] == "votes":
        return "the blind votes favoured the " + ("tuned model" if signal["leaning"] == "better" else "base")
    return f"{SHORT[signal['key']]} {'improved' if signal['leaning'] == 'better' else 'got worse'}"


def _headline(conclusion: str, reasons: list[str], evidence: dict) -> str:
    word = {"better": "Better", "worse": "Worse", "inconclusive": "Inconclusive"}[conclusion]
    lead = {
        "better": "the tuned model is better than the base",
        "worse": "the tuned model is worse than the base",
        "inconclusive": "this evidence cannot say whether the tuned model is better",
    }[conclusion]
    because = "; ".join(reasons)
    return f"{word}: {lead} — {because}. Evidence: {evidence_text(evidence)}."


def evidence_text(evidence: dict) -> str:
    parts = [
        f"{evidence['scored_prompts']} prompt(s) scored against reference answers"
        + (f" of {evidence['prompts']} evaluated" if evidence["prompts"] != evidence["scored_prompts"] else "")
    ]
    if evidence["votes"]:
        parts.append(f"{evidence['votes']} blind vote(s) from {evidence['voters']} voter(s)")
    else:
        parts.append("no finished blind votes")
    if evidence["in_training"]:
        parts.append(f"{evidence['in_training']} prompt(s) also in the training data")
    return ", ".join(parts)


def _fmt(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if _finite(value) else "–"


def _signed(value, digits: int = 3) -> str:
    return f"{value:+.{digits}f}".replace("-", "−") if _finite(value) else "–"


def _direction_words(direction: str) -> str:
    return {
        "better": "clearly better",
        "worse": "clearly worse",
        "unclear": "within noise",
        "too few": f"too few to tell (fewer than {MIN_PROMPTS})",
    }[direction]


def _metric_text(s: dict) -> str:
    digits = s["digits"]
    low, high = s["interval"]
    if s["sign_test_p"] is None:
        p = "no prompt differed"
    else:
        p = "sign test p < 0.001" if s["sign_test_p"] < 0.001 else f"sign test p = {s['sign_test_p']:.3f}"
    return (
        f"{s['label']} ({s['better_when']} is better): {_fmt(s['base'], digits)} → {_fmt(s['tuned'], digits)} "
        f"over {s['n']} prompt(s); tuned better on {s['tuned_better_on']}, base on {s['base_better_on']}, "
        f"{s['ties']} equal; improvement {_signed(s['improvement'], digits)} "
        f"(95 % interval {_signed(low, digits)} to {_signed(high, digits)}; {p}) — {_direction_words(s['direction'])}."
    )


def _vote_text(s: dict) -> str:
    words = {
        "better": "clearly preferred",
        "worse": "clearly not preferred",
        "unclear": "within noise",
        "too few": f"too few to tell (fewer than {MIN_VOTES} decisive votes)",
    }[s["direction"]]
    rate = f"{s['win_rate']:.0%}" if s["win_rate"] is not None else "n/a (only ties)"
    interval = f" (95 % interval {s['interval'][0]:.0%}–{s['interval'][1]:.0%})" if s["interval"] else ""
    return (
        f"Blind A/B votes: tuned preferred in {s['tuned']}, base in {s['base']}, {s['ties']} tie(s) — "
        f"{s['votes']} vote(s) from {s['voters']} voter(s) on {s['prompts']} prompt(s); tuned win rate {rate} of "
        f"decisive votes{interval} — {words}."
    )


def _regression_text(s: dict) -> str:
    how = "clearly" if s["direction"] == "worse" else "within noise"
    if s["key"] == "votes":
        return f"Blind voters preferred the base: tuned won {s['tuned']} of {s['n']} decisive votes ({how})."
    verb = "rose" if s["better_when"] == "lower" else "fell"
    return f"{s['label']} {verb} {_fmt(s['base'], s['digits'])} → {_fmt(s['tuned'], s['digits'])} ({how})."


def _join(items: list[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def markdown(v: dict) -> str:
    """The verdict for the Compare tab and the Markdown report: headline, one line per signal, regressions."""
    lines = [f"**{v['headline']}**", ""]
    lines += [f"- {signal['text']}" for signal in v["signals"]]
    if v["regressions"]:
        lines += ["", "**Regressions:**"] + [f"- {item['text']}" for item in v["regressions"]]
    return "\n".join(lines)
