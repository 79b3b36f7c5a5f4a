"""Benchmark: lint a synthetic chat dataset with every rule, token counts (bundled SmolLM2 tokenizer,
after its chat template, trainable tokens separately) and the near-duplicate search.

    STUDIO_HOME=bench-home HF_HUB_OFFLINE=1 .venv/bin/python bench/lint.py                 # 100,000 rows
    STUDIO_HOME=bench-home HF_HUB_OFFLINE=1 .venv/bin/python bench/lint.py --rows 1000000  # the million-row target
    ... --workers 1          # one process (default: the CLI's automatic choice, one per core)
    ... --code /other/checkout  # the same measurement of another checkout's linter (before/after)

The dataset (~330 bytes of JSONL per row: 1-2 turns, a system prompt on every fourth row, an exact
duplicate every 500 rows) is written to a temporary .jsonl file, then linted by a child process the
way `python -m studio lint FILE` does (streamed, rows not kept). Printed: the lint's wall time, rows/s,
CPU time of all its processes, and peak memory of the whole process tree (tokenizer included),
sampled every 0.2 s: the sum of RSS (counts pages shared between forked workers once per process:
an upper bound) and the sum of PSS (shared pages split between the processes). Targets for 1,000,000
rows: <= 60 s and <= 2 GB on 2 cores. With --naive-sample N (default 300; 0 skips it) the naive
approach (one apply_chat_template(tokenize=True, return_assistant_tokens_mask=True) call per row)
is timed on N rows and extrapolated.

Figures depend on load: on a shared machine other jobs compete for the cores (the load average and
the CPU model are printed with the figures).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORDS = (
    "the a ship sea captain wind sail harbour map treasure island crew deck storm rope anchor compass star north south "
    "east west river mountain city bread water fire code python function list value number answer question because "
    "when where how why what which always never often quickly slowly carefully bright dark cold warm small large "
    "learn teach build test write read count measure explain describe compare improve check data model train"
).split()


def synthetic_rows(count: int, seed: int = 0):
    """Chat rows, one at a time (the same rows for the same seed whatever the count): an exact duplicate every 500
    rows."""
    rng = random.Random(seed)
    systems = [
        "You are a helpful assistant.",
        "You are Captain Byte, a cheerful pirate.",
        "Answer briefly and correctly.",
    ]

    def sentence(low: int, high: int) -> str:
        words = rng.choices(WORDS, k=rng.randint(low, high))
        return " ".join(words).capitalize() + rng.choice(".!?")

    previous = None
    for index in range(count):
        messages = []
        if index % 4 == 0:
            messages.append({"role": "system", "content": rng.choice(systems)})
        turns = 2 if index % 10 == 0 else 1
        for _ in range(turns):
            messages.append({"role": "user", "content": sentence(8, 16)})
            messages.append(
                {"role": "assistant", "content": " ".join(sentence(8, 14) for _ in range(rng.randint(2, 4)))}
            )
        row = {"messages": messages}
        yield previous if index % 500 == 1 else row
        previous = row


def machine() -> str:
    model = flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                present = set(line.split(":", 1)[1].split())
                flags = (
                    " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in present)
                    or "no AVX2/AVX-512"
                )
    except OSError:
        pass
    return f"{model or 'unknown CPU'} ({flags}), {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}"


class TreeMemory:
    """Peak RSS and PSS summed over a process and its descendants, sampled in a thread."""

    def __init__(self, pid: int, interval: float = 0.2):
        import psutil

        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak_rss = self.peak_pss = 0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            rss = pss = 0
            try:
                processes = [self.process] + self.process.children(recursive=True)
            except psutil.Error:
                return
            for process in processes:
                try:
                    info = process.memory_full_info()
                    rss += info.rss
                    pss += getattr(info, "pss", info.rss)
                except psutil.Error:
                    pass
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self.peak_processes = max(self.peak_processes, len(processes))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def child(path: str, workers: int | None, naive_sample: int) -> None:
    """Runs in the measured process: load the tokenizer, lint the file as the CLI does, print the figures as JSON."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from studio.data.lint import lint_file
    from studio.models.catalog import BUNDLED
    from studio.models.loading import load_tokenizer

    tokenizer = load_tokenizer(BUNDLED)
    stages: list[tuple[str, float]] = []
    last = [time.perf_counter()]

    def progress(fraction: float, message: str) -> None:
        now = time.perf_counter()
        stages.append((message, now - last[0]))
        last[0] = now

    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print("READY", flush=True)
    started = time.perf_counter()
    try:
        report = lint_file(
            path,
            Path(path).name,
            tokenizer=tokenizer,
            progress=progress,
            keep_rows=False,
            workers=workers,
            max_bytes=None,
        )
    except TypeError:  # an older linter (--code): no streaming options
        report = lint_file(path, Path(path).name, tokenizer=tokenizer, progress=progress)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, before))
    rows = report.stats["rows"]["total"] if isinstance(report.stats.get("rows"), dict) else len(report.rows)
    tokens = report.stats["tokens"]
    by_rule = report.counts_by_rule()
    naive = None
    if naive_sample:
        from studio.models import templates

        template = templates.training_template(tokenizer)
        sample = [row for _, row in zip(range(naive_sample), synthetic_rows(naive_sample))]
        begun = time.perf_counter()
        for row in sample:
            tokenizer.apply_chat_template(
                row["messages"],
                chat_template=template,
                tokenize=True,
                return_assistant_tokens_mask=True,
                return_dict=True,
            )
        naive = (time.perf_counter() - begun) / len(sample)
    slow = sorted(stages, key=lambda stage: -stage[1])[:4]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": cpu,
                "rows": rows,
                "verdict": report.verdict,
                "counts": report.counts_by_severity,
                "tokens_total": tokens["total"],
                "tokens_trainable": tokens["trainable"],
                "dup_exact": by_rule.get("DUP-EXACT", 0),
                "dup_near": by_rule.get("DUP-NEAR", 0),
                "self_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "child_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                "naive_per_row": naive,
                "slowest": slow,
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=None, help="lint processes (default: automatic, as the CLI)")
    parser.add_argument("--naive-sample", type=int, default=300)
    parser.add_argument("--code", default=str(ROOT), help="checkout whose linter is measured (default: this one)")
    parser.add_argument(
        "--cli",
        action="store_true",
        help="also time `python -m studio lint FILE --json` end to end (start-up and tokenizer load included)",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.workers, args.naive_sample)
        return

    print(f"machine: {machine()} (other jobs may share it)")
    folder = Path(tempfile.mkdtemp(prefix="bench-lint-"))
    path = folder / f"synthetic-{args.rows}.jsonl"
    started = time.perf_counter()
    characters = 0
    with open(path, "w", encoding="utf-8") as handle:
        for row in synthetic_rows(args.rows):
            characters += sum(len(m["content"]) for m in row["messages"])
            handle.write(json.dumps(row) + "\n")
    print(
        f"synthetic dataset: {args.rows:,} rows, {characters / 1e6:.1f}M characters of content, "
        f"{path.stat().st_size / 1e6:.1f} MB JSONL (written in {time.perf_counter() - started:.1f} s)"
    )
    try:
        env = {**os.environ, "PYTHONPATH": args.code, "HF_HUB_OFFLINE": "1", "STUDIO_MAX_UPLOAD_MB": "1000000"}
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            str(path),
            "--naive-sample",
            str(args.naive_sample),
        ]
        if args.workers is not None:
            command += ["--workers", str(args.workers)]
        process = subprocess.Popen(command, cwd=args.code, env=env, stdout=subprocess.PIPE, text=True)
        memory = TreeMemory(process.pid)
        lines = []
        for line in process.stdout:
            if line.startswith("READY"):
                print(f"tokenizer loaded; tree memory before linting: RSS {memory.peak_rss / 2**20:,.0f} MB")
            else:
                lines.append(line)
        process.wait()
        memory.stop()
        if process.returncode:
            raise SystemExit(f"the lint child failed (exit {process.returncode})")
        result = json.loads(lines[-1])
        if args.cli:
            command = [sys.executable, "-m", "studio", "lint", str(path), "--json"]
            if args.workers is not None:
                command += ["--workers", str(args.workers)]
            started = time.perf_counter()
            process = subprocess.Popen(command, cwd=args.code, env=env, stdout=subprocess.DEVNULL)
            cli_memory = TreeMemory(process.pid)
            process.wait()
            cli_memory.stop()
            cli_seconds = time.perf_counter() - started
    finally:
        path.unlink(missing_ok=True)
        folder.rmdir()
    seconds, rows = result["seconds"], result["rows"]
    counts = result["counts"]
    print(
        f"lint: {seconds:.1f} s for {rows:,} rows = {rows / seconds:,.0f} rows/s; verdict {result['verdict']}; "
        f"findings E={counts['E']} W={counts['W']} I={counts['I']}; tokens total {result['tokens_total']:,}, "
        f"trainable {result['tokens_trainable']:,}"
    )
    print(f"CPU time of the lint, all processes: {result['cpu']:.1f} s (wall {seconds:.1f} s)")
    print(f"exact duplicates found: {result['dup_exact']:,}; near duplicates: {result['dup_near']:,}")
    print(
        f"peak memory of the process tree ({memory.peak_processes} processes at most): RSS sum "
        f"{memory.peak_rss / 2**20:,.0f} MB, PSS sum {memory.peak_pss / 2**20:,.0f} MB; largest single process "
        f"{max(result['self_peak_mb'], result['child_peak_mb']):,.0f} MB"
    )
    print(
        "slowest steps (time since the previous progress message):",
        "; ".join(f"{message} {took:.1f}s" for message, took in result["slowest"]),
    )
    if args.cli:
        print(
            f"`python -m studio lint FILE --json` end to end (start-up, tokenizer load, lint, JSON output): "
            f"{cli_seconds:.1f} s, peak RSS sum {cli_memory.peak_rss / 2**20:,.0f} MB, PSS sum "
            f"{cli_memory.peak_pss / 2**20:,.0f} MB"
        )
    if result["naive_per_row"]:
        naive_total = result["naive_per_row"] * rows
        print(
            f"naive apply_chat_template loop (token counts only, no rules): {result['naive_per_row'] * 1000:.2f} "
            f"ms/row, extrapolated {naive_total:,.0f} s for {rows:,} rows -> the full lint is "
            f"{naive_total / seconds:.1f}x faster"
        )
    if args.rows >= 1_000_000:
        print(
            f"targets for 1,000,000 rows: <= 60 s ({'met' if seconds <= 60 else 'MISSED'}), "
            f"<= 2048 MB peak RSS sum ({'met' if memory.peak_rss <= 2 * 2**30 else 'MISSED'})"
        )


if __name__ == "__main__":
    main()
