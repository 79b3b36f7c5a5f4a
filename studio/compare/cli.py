"""python -m studio compare RUN_ID_OR_DIR --prompts FILE [--n N] [--greedy] [--seed S] [--out report.html] [--json]

Prints the verdict (studio.compare.verdict: the same as the Compare tab and the report). With --json
the last stdout line is {"rows", "summary", "verdict", "settings", "report"}; the blind votes that
count are the finished ballots of this evaluation (a fresh evaluation has none yet).
"""

from __future__ import annotations

import argparse
import json
import sys

from studio.compare import engine, evaluate, report, runs, verdict, votes
from studio.errors import StudioError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="base vs tuned answers on a prompt file, with losses and a report",
        description="Generate base and tuned answers (one copy of the weights) for the prompts in FILE, "
        "score them against reference answers and write a self-contained HTML report.",
    )
    parser.add_argument("run", metavar="RUN_ID_OR_DIR", help="a run id, a run folder or a PEFT adapter folder")
    parser.add_argument(
        "--prompts",
        metavar="FILE",
        help="JSONL of chat rows: the last user turn is the prompt, a trailing assistant turn the "
        "reference (default: the run's validation split)",
    )
    parser.add_argument("--n", type=int, default=20, help="how many prompts (default 20)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="answer length limit (default 128)")
    parser.add_argument(
        "--greedy",
        action="store_true",
        help="greedy decoding instead of the default sampling (the repetition guard stays on)",
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling seed, the same for both models (default 0)")
    parser.add_argument(
        "--out",
        metavar="report.html",
        help="where to write the HTML report (Markdown next to it); default <run>/compare/report.html",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print a final JSON line with rows, summary, verdict, decoding settings and report path",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.n < 1:
        print("error: --n must be at least 1", file=sys.stderr)
        return 2
    info = runs.load_run(args.run)
    prompts, source = evaluate.load_prompts(info, args.prompts, args.n)
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    say(f"Loading {info.base_ref} with the adapter of '{info.name}' …")
    session = engine.open_session(args.run)

    def progress(done, total, text):
        if done < total:
            say(text)

    overrides = {"max_new_tokens": args.max_new_tokens, "seed": args.seed}
    if args.greedy:
        overrides["temperature"] = 0.0
    settings = session.engine.default_settings(**overrides)
    say(f"Decoding: {settings.describe()}")
    result = evaluate.evaluate(session, prompts, source=source, settings=settings, progress=progress)
    try:
        evaluate.save(info, result)
    except OSError as error:  # a read-only run folder must not lose the printed results
        say(f"note: could not save eval.json in the run folder ({error})")
    try:
        html_path, md_path = report.write(info, args.out, result)
    except OSError as error:
        raise StudioError(f"Could not write the report: {error}", "Pick a writable --out path.") from error
    the_verdict = verdict.verdict(result, votes.finished_ballots(info, result))
    say(the_verdict["headline"])
    for signal in the_verdict["signals"]:
        say(f"  {signal['text']}")
    for item in the_verdict["regressions"]:
        say(f"  regression: {item['text']}")
    facts = evaluate.headline(result["summary"])
    if facts:
        say(facts)
    say(f"Report: {html_path} (Markdown: {md_path})")
    if args.json:
        print(json.dumps({**evaluate.as_json(result, the_verdict), "report": str(html_path)}, ensure_ascii=False))
    return 0
