"""Benchmark: lint a synthetic 100,000-row chat dataset (~30M characters) with every rule,
token counts (bundled SmolLM2 tokenizer, after its chat template, trainable tokens separately)
and the near-duplicate search. Prints seconds, rows/s, peak RSS and the ratio against the naive
approach (one apply_chat_template(tokenize=True, return_assistant_tokens_mask=True) call per row
in a Python loop, measured on a sample and extrapolated). Targets: <= 60 s, <= 2 GB peak RSS.

    STUDIO_HOME=/tmp/sh1 HF_HUB_OFFLINE=1 /work/venv/bin/python bench/lint.py [--rows 100000]

Figures depend on load: on the shared 2-core build machine other jobs compete for the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORDS = ("the a ship sea captain wind sail harbour map treasure island crew deck storm rope anchor compass star north south "
         "east west river mountain city bread water fire code python function list value number answer question because "
         "when where how why what which always never often quickly slowly carefully bright dark cold warm small large "
         "learn teach build test write read count measure explain describe compare improve check data model train").split()


def synthetic_rows(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    systems = ["You are a helpful assistant.", "You are Captain Byte, a cheerful pirate.", "Answer briefly and correctly."]

    def sentence(low: int, high: int) -> str:
        words = rng.choices(WORDS, k=rng.randint(low, high))
        return " ".join(words).capitalize() + rng.choice(".!?")

    rows = []
    for index in range(count):
        messages = []
        if index % 4 == 0:
            messages.append({"role": "system", "content": rng.choice(systems)})
        turns = 2 if index % 10 == 0 else 1
        for _ in range(turns):
            messages.append({"role": "user", "content": sentence(8, 16)})
            messages.append({"role": "assistant", "content": " ".join(sentence(8, 14) for _ in range(rng.randint(2, 4)))})
        rows.append({"messages": messages})
    for index in range(0, count, 500):  # some exact and near duplicates
        if index + 1 < count:
            rows[index + 1] = json.loads(json.dumps(rows[index]))
    return rows


def cpu_seconds() -> float:
    """CPU time of this process (user + system): unlike wall time, hardly affected by other jobs on the machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--naive-sample", type=int, default=300)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from studio.data import templates
    from studio.data.lint import lint_file
    from studio.models.catalog import BUNDLED
    from studio.models.loading import load_tokenizer

    print(f"cpu cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f} (other jobs share this machine)")
    started = time.perf_counter()
    rows = synthetic_rows(args.rows)
    data = ("\n".join(json.dumps(row) for row in rows) + "\n").encode()
    chars = sum(len(m["content"]) for row in rows for m in row["messages"])
    print(f"synthetic dataset: {len(rows):,} rows, {chars / 1e6:.1f}M characters of content, {len(data) / 1e6:.1f} MB JSONL "
          f"(built in {time.perf_counter() - started:.1f} s)")
    tokenizer = load_tokenizer(BUNDLED)
    rss_before = peak_rss_mb()

    stages = []
    last = [time.perf_counter()]

    def progress(fraction: float, message: str) -> None:
        now = time.perf_counter()
        stages.append((fraction, message, now - last[0]))
        last[0] = now

    started, cpu_started = time.perf_counter(), cpu_seconds()
    report = lint_file(data, "synthetic.jsonl", tokenizer=tokenizer, progress=progress)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    del data
    counts = report.counts_by_severity
    print(f"lint: {seconds:.1f} s for {len(report.rows):,} rows = {len(report.rows) / seconds:,.0f} rows/s; "
          f"verdict {report.verdict}; findings E={counts['E']} W={counts['W']} I={counts['I']}; "
          f"tokens total {report.stats['tokens']['total']:,}, trainable {report.stats['tokens']['trainable']:,}")
    by_rule = report.counts_by_rule()
    print(f"CPU time of the lint: {cpu:.1f} s (wall {seconds:.1f} s; wall >> CPU means the process waited for the shared cores)")
    print(f"near duplicates found: {by_rule.get('DUP-NEAR', 0)}, exact duplicates: {by_rule.get('DUP-EXACT', 0)}")
    print(f"peak RSS: {peak_rss_mb():.0f} MB (before linting: {rss_before:.0f} MB)")
    slow = sorted(stages, key=lambda s: -s[2])[:5]
    print("slowest steps (time since previous progress message):", "; ".join(f"{m} {t:.1f}s" for _, m, t in slow))

    # The naive way: one apply_chat_template call (render + tokenize + mask) per row in a loop.
    template = templates.training_template(tokenizer)
    sample = rows[: args.naive_sample]
    started, cpu_started = time.perf_counter(), cpu_seconds()
    for row in sample:
        tokenizer.apply_chat_template(row["messages"], chat_template=template, tokenize=True,
                                      return_assistant_tokens_mask=True, return_dict=True)
    naive_per_row = (time.perf_counter() - started) / len(sample)
    naive_cpu_per_row = (cpu_seconds() - cpu_started) / len(sample)
    naive_total = naive_per_row * len(rows)
    print(f"naive apply_chat_template loop (token counts only, no rules): {naive_per_row * 1000:.2f} ms/row, "
          f"extrapolated {naive_total:.0f} s for {len(rows):,} rows -> the full lint is {naive_total / seconds:.1f}x faster "
          f"than the naive token count alone")
    print(f"by CPU time: naive {naive_cpu_per_row * 1000:.2f} ms/row -> {naive_cpu_per_row * len(rows):.0f} s CPU vs {cpu:.0f} s CPU for the "
          f"full lint ({naive_cpu_per_row * len(rows) / cpu:.1f}x)")
    print(f"targets: <= 60 s ({'met' if seconds <= 60 else 'MISSED'}), <= 2048 MB peak RSS ({'met' if peak_rss_mb() <= 2048 else 'MISSED'})")


if __name__ == "__main__":
    main()
