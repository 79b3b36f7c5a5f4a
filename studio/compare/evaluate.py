"""Held-out evaluation: base vs tuned answers on N prompts, teacher-forced loss, overlap, style marker.

Both columns are generated with the same decoding settings (by default the fair defaults of
engine.default_settings: the model's own sampling values or the studio's, a repetition guard and a
seed), and the settings are saved with the results. What the numbers mean together is
studio.compare.verdict's job. Results are saved to eval.json in the viewer's Compare folder
(runs.RunInfo.compare_dir: the run's compare/ for its owner, compare/visitors/<viewer>/ for anyone else) so
reopening the tab shows them at once.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

from studio import escape, limits, paths
from studio.compare import metrics, runs, verdict, votes
from studio.compare.engine import BASE, Settings, perplexity
from studio.errors import StudioError

DEFAULT_N = 20
EVAL_BATCH = 16  # prompts generated together (a small model on a CPU: about the cost of one)
EVAL_FILE = "eval.json"
# When every prompt has a reference, answers may run this much longer than the longest reference (and at least
# MIN_ANSWER_TOKENS) before they are cut. Each batch generates until its longest answer ends, so a base model that
# rambles to a 200-token limit set the evaluation's time; the cut is recorded with the settings, and it can only
# hurt a model that overruns its references (overlap scores of shorter answers, a style marker at the end).
REFERENCE_ROOM = 1.5
MIN_ANSWER_TOKENS = 32


def eval_path(run: runs.RunInfo) -> Path:
    return run.compare_dir / EVAL_FILE


def load_prompts(
    run: runs.RunInfo, prompt_file: str | Path | None = None, n: int = DEFAULT_N
) -> tuple[list[dict], str]:
    """The prompts to evaluate and where they came from."""
    if prompt_file:
        return runs.read_prompt_file(prompt_file, limit=n), Path(prompt_file).name
    return runs.validation_prompts(run, limit=n), "validation split"


def evaluate(
    session, prompts: list[dict], source: str = "", settings: Settings | None = None, progress=None, should_stop=None
) -> dict:
    """Generate base and tuned answers for each prompt and score them. `progress(done, total, text)` if given."""
    limits.check_at_most("eval_prompts", len(prompts), "The number of prompts", "Evaluate fewer prompts.")
    engine, tuned = session.engine, session.tuned
    settings = answer_budget(engine, prompts, settings or engine.default_settings(max_new_tokens=128))
    rows = []
    began = time.time()
    answers: dict[int, tuple[str, str]] = {}
    for start in range(0, len(prompts), EVAL_BATCH):  # batches: far faster than one answer at a time
        if should_stop is not None and should_stop():
            break
        batch = prompts[start : start + EVAL_BATCH]
        conversations = [item["messages"] for item in batch]
        if progress is not None:
            progress(start, len(prompts), f"Prompts {start + 1}–{start + len(batch)} of {len(prompts)}: base model")
        base_answers = engine.generate_batch(BASE, conversations, settings)
        if progress is not None:
            progress(start, len(prompts), f"Prompts {start + 1}–{start + len(batch)} of {len(prompts)}: tuned model")
        tuned_answers = engine.generate_batch(tuned, conversations, settings)
        for offset, pair in enumerate(zip(base_answers, tuned_answers)):
            answers[start + offset] = pair
    for index, item in enumerate(prompts):
        if index not in answers:
            break
        row = {
            "prompt": item["prompt"],
            "messages": item["messages"],
            "reference": item.get("reference"),
            "base": answers[index][0],
            "tuned": answers[index][1],
        }
        if item.get("reference"):
            row["base_loss"] = engine.reference_loss(BASE, item["messages"], item["reference"], settings.system_prompt)
            row["tuned_loss"] = engine.reference_loss(
                tuned, item["messages"], item["reference"], settings.system_prompt
            )
            row["base_rouge_l"] = metrics.rouge_l(row["base"], item["reference"])
            row["tuned_rouge_l"] = metrics.rouge_l(row["tuned"], item["reference"])
            row["base_chrf"] = metrics.chrf(row["base"], item["reference"])
            row["tuned_chrf"] = metrics.chrf(row["tuned"], item["reference"])
        rows.append(row)
    if progress is not None:
        progress(len(rows), len(prompts), "Done")
    result = {
        "run_id": session.run.run_id,
        "base_model": session.run.base_ref,
        "source": source,
        "settings": settings.record(),
        "created_at": time.time(),
        "seconds": round(time.time() - began, 1),
        "rows": rows,
    }
    result["summary"] = summarize(rows)
    seen = training_prompts(session.run)
    if seen:
        # Honesty check: a prompt the model trained on is not held out, whatever the file is called.
        result["summary"]["in_training"] = sum(1 for row in rows if row["prompt"].strip() in seen)
    return result


def answer_budget(engine, prompts: list[dict], settings: Settings) -> Settings:
    """The settings with max new tokens cut to REFERENCE_ROOM × the longest reference, when every prompt has one
    and that is below the chosen limit (the source then says so); otherwise the settings unchanged."""
    references = [item.get("reference") for item in prompts]
    if not references or not all(references):
        return settings
    longest = max(len(engine.tokenizer(reference, add_special_tokens=False)["input_ids"]) for reference in references)
    budget = max(MIN_ANSWER_TOKENS, math.ceil(REFERENCE_ROOM * longest))
    if budget >= settings.max_new_tokens:
        return settings
    why = f"cut from {settings.max_new_tokens} to {REFERENCE_ROOM:g}× the longest reference, {longest} tokens"
    return dataclasses.replace(settings, max_new_tokens=budget, source=f"{settings.source}; {why}")


def training_prompts(run: runs.RunInfo) -> set[str]:
    """The last user turns of the run's training split (empty if it cannot be read)."""
    dataset = run.dataset_dir
    if dataset is None or not (dataset / "train.jsonl").is_file():
        return set()
    try:
        return {row["prompt"].strip() for row in runs.read_prompt_file(dataset / "train.jsonl")}
    except StudioError:
        return set()


def _mean(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(values) / len(values) if values else None


def summarize(rows: list[dict]) -> dict:
    """Mean loss and perplexity base vs tuned, prompts improved, overlap means, style marker shares."""
    scored = [r for r in rows if r.get("base_loss") is not None and r.get("tuned_loss") is not None]
    summary = {"prompts": len(rows), "with_reference": len(scored)}
    if scored:
        base_loss = _mean(r["base_loss"] for r in scored)
        tuned_loss = _mean(r["tuned_loss"] for r in scored)
        summary.update(
            base_loss=base_loss,
            tuned_loss=tuned_loss,
            base_perplexity=perplexity(base_loss),
            tuned_perplexity=perplexity(tuned_loss),
            improved=sum(1 for r in scored if r["tuned_loss"] < r["base_loss"]),
            base_rouge_l=_mean(r.get("base_rouge_l") for r in scored),
            tuned_rouge_l=_mean(r.get("tuned_rouge_l") for r in scored),
            base_chrf=_mean(r.get("base_chrf") for r in scored),
            tuned_chrf=_mean(r.get("tuned_chrf") for r in scored),
        )
    marker = metrics.detect_style_marker([r.get("reference") or "" for r in rows])
    if marker["prefix"] or marker["suffix"]:
        summary["style_marker"] = marker
        summary["style_base"] = sum(metrics.carries_marker(r["base"], marker) for r in rows)
        summary["style_tuned"] = sum(metrics.carries_marker(r["tuned"], marker) for r in rows)
        summary["style_reference"] = sum(metrics.carries_marker(r.get("reference") or "", marker) for r in rows)
        # Each part on its own too: a model often picks up the greeting before the sign-off.
        summary["style_parts"] = {
            part: {
                side: sum(metrics.carries_marker(r.get(side) or "", {part: marker[part]}) for r in rows)
                for side in ("base", "tuned", "reference")
            }
            for part in ("prefix", "suffix")
            if marker[part]
        }
    return summary


def headline(summary: dict) -> str:
    """Plain facts under the verdict: the style marker counts and whether the prompts were really held out.

    The conclusion itself (better, worse, inconclusive) is studio.compare.verdict's, never one mean loss."""
    parts = []
    if summary.get("style_marker"):
        marker, n = summary["style_marker"], summary["prompts"]
        wording = {"prefix": "start with", "suffix": "end with"}
        for part, counts in summary.get("style_parts", {}).items():
            parts.append(
                f"Answers that {wording[part]} “{marker[part]}”: base {counts['base']}/{n}, tuned "
                f"{counts['tuned']}/{n}."
            )
    if summary.get("in_training"):
        parts.append(
            f"Caution: {summary['in_training']} of these {summary['prompts']} prompts also appear in the "
            "training data, so they are not truly held out."
        )
    if not summary.get("with_reference"):
        parts.append(f"{summary.get('prompts', 0)} prompts compared (no reference answers to score against).")
    return " ".join(parts)


def save(run: runs.RunInfo, result: dict) -> Path:
    """eval.json: the evaluation and its verdict as it stands (the finished blind ballots counted), which the model
    card quotes (the training package does not compute verdicts)."""
    path = run.writable_compare_dir() / EVAL_FILE
    the_verdict = verdict.verdict(result, votes.finished_ballots(run, result))
    saved = {**result, "verdict": {key: the_verdict[key] for key in ("conclusion", "headline", "evidence_text")}}
    paths.atomic_write_text(path, json.dumps(saved, indent=1, ensure_ascii=False))
    return path


def save_verdict(run: runs.RunInfo) -> None:
    """A blind ballot closed: the saved verdict counts it."""
    result = load(run)
    if result:
        save(run, result)


def load(run: runs.RunInfo) -> dict | None:
    """The viewer's saved evaluation; else (a visitor on someone else's run, e.g. a shared demo) the run
    owner's, read-only — a new evaluation by the visitor is saved in their own namespace."""
    own = runs.read_json(eval_path(run), None)
    if own is None and run.viewer_dir is not None:
        return runs.read_json(run.owner_compare_dir / EVAL_FILE, None)
    return own


JSON_ROW_KEYS = (
    "prompt",
    "base",
    "tuned",
    "reference",
    "base_loss",
    "tuned_loss",
    "base_rouge_l",
    "tuned_rouge_l",
    "base_chrf",
    "tuned_chrf",
)


def as_json(result: dict, the_verdict: dict) -> dict:
    """An evaluation for scripts (`compare --json`, the HTTP API): each prompt's answers and scores, the
    summary, the verdict and the decoding settings."""
    rows = [{key: row[key] for key in JSON_ROW_KEYS if row.get(key) is not None} for row in result["rows"]]
    return {"rows": rows, "summary": result["summary"], "verdict": the_verdict, "settings": result["settings"]}


def table_rows(result: dict, width: int = 400) -> list[list]:
    """Rows for a table: prompt, reference, base, tuned, losses, ROUGE-L base/tuned, which answers repeat themselves."""

    def cut(text):
        text = text or ""
        return text if len(text) <= width else text[: width - 1] + "…"

    def number(value):
        return round(value, 3) if isinstance(value, (int, float)) else None

    return [
        [
            cut(r["prompt"]),
            cut(r.get("reference") or ""),
            cut(r["base"]),
            cut(r["tuned"]),
            number(r.get("base_loss")),
            number(r.get("tuned_loss")),
            number(r.get("base_rouge_l")),
            number(r.get("tuned_rouge_l")),
            repeats(r),
        ]
        for r in result.get("rows", [])
    ]


def repeats(row: dict) -> str:
    """Which of the two answers repeats itself (metrics.is_looping): "base", "tuned", "both" or ""."""
    sides = [side for side in ("base", "tuned") if metrics.is_looping(row.get(side) or "")]
    return "both" if len(sides) == 2 else (sides[0] if sides else "")


TABLE_HEADERS = [
    "Prompt",
    "Reference",
    "Base answer",
    "Tuned answer",
    "Base loss",
    "Tuned loss",
    "Base ROUGE-L",
    "Tuned ROUGE-L",
    "Repeats itself",
]


def loss_figure(result: dict):
    """Plotly bar chart: per-prompt reference loss, base vs tuned."""
    import plotly.graph_objects as go

    rows = [r for r in result.get("rows", []) if r.get("base_loss") is not None]
    labels = [f"{i + 1}" for i in range(len(rows))]
    hover = [escape.html(r["prompt"][:80], quote=False) for r in rows]  # Plotly reads tags in hover text
    figure = go.Figure()
    for name, key, color in (("Base", "base_loss", "#94a3b8"), ("Tuned", "tuned_loss", "#2563eb")):
        values = [r[key] for r in rows]
        figure.add_bar(
            name=name,
            x=labels,
            y=values,
            hovertext=hover,
            marker_color=color,
            text=[f"{v:.2f}" for v in values],
            textposition="outside",
        )
    figure.update_layout(
        barmode="group",
        title="Loss on the reference answer per prompt (lower is better)",
        xaxis_title="prompt #",
        yaxis_title="loss",
        height=340,
        margin=dict(l=40, r=20, t=50, b=40),
        legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"),
    )
    return figure


def validate_n(n) -> int:
    try:
        n = int(n)
    except (TypeError, ValueError):
        raise StudioError("The number of prompts must be a whole number.", "Use something like 20.") from None
    if n < 1:
        raise StudioError("The number of prompts must be at least 1.", "Use something like 20.")
    limits.check_at_most("eval_prompts", n, "The number of prompts", "Evaluate fewer prompts.")
    return n
