"""`python -m studio lint FILE [FILE ...] [--model M] [--max-length N] [--batch-size B] [--map ROLE=COLUMN ...]
[--json] [--no-tokens] [--workers N]`.

--map (repeatable) reads a table of other column names as chat rows: user=, assistant=, context= (appended
to the user turn; may repeat), system= (studio.data.mapping). Without it, a file of unknown layout whose
column names suggest a mapping gets the matching --map flags as a hint.

With --json: one JSON object per file, one per line:
    {"file", "format", "rows", "verdict", "counts", "findings": [{"rule","severity","row","message","hint"}],
     "stats": {...}}
"stats" is studio.data.stats.compute_stats: the same figures the Data tab shows for the same file.
Exit code: 0 when no file has an E finding, 1 when one does, 2 on usage errors.
The model's tokenizer loads once for all files. Files on the operator's disk have no size limit: a
.jsonl file is streamed (rows are not kept in memory) and checked on every core when it is large.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from studio.data import mapping as column_mapping
from studio.models import catalog
from studio.models.loading import load_tokenizer


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "lint",
        help="check dataset files before fine-tuning (the rules: docs/lint-rules.md)",
        description="Check dataset files row by row before fine-tuning: format, schema, roles, content, Unicode, "
        "tool calls, chat template, lengths, duplicates, privacy. Every rule is listed in "
        "docs/lint-rules.md.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help=".jsonl, .json, .csv or .parquet files")
    parser.add_argument(
        "--model",
        default=None,
        help="model whose tokenizer and chat template to check against (default: the bundled SmolLM2)",
    )
    parser.add_argument(
        "--max-length", type=int, default=None, help="max tokens per row (default: the model's context)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="batch size for the steps-per-epoch figures (default 8)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes checking a large .jsonl file (default: one per core when the file is over 16 MB)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per file per line")
    parser.add_argument("--no-tokens", action="store_true", help="skip the tokenizer-aware rules (no model needed)")
    parser.add_argument(
        "--all", action="store_true", help="list every finding in the readable report (default: 30 per file)"
    )
    parser.add_argument(
        "--map",
        action="append",
        metavar="ROLE=COLUMN",
        dest="mapping",
        help="read COLUMN as the user turn, the assistant answer, extra context or the system prompt "
        "(ROLE: user, assistant, context, system; repeatable), e.g. --map user=question --map assistant=answer",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    mapping = column_mapping.parse_cli(args.mapping)  # StudioError -> message + hint, exit 1
    if args.max_length is not None and args.max_length < 1:
        print("error: --max-length must be a positive number of tokens", file=sys.stderr)
        return 2
    if args.batch_size < 1 or (args.workers is not None and args.workers < 1):
        print("error: --batch-size and --workers must be positive numbers", file=sys.stderr)
        return 2
    missing = [name for name in args.files if not Path(name).is_file()]
    if missing:
        print(f"error: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    tokenizer = None
    model = None
    if not args.no_tokens:
        model = args.model or catalog.DEFAULT_MODEL
        tokenizer = load_tokenizer(model)  # StudioError -> message + hint, exit 1 (studio.cli)
    worst = 0
    for name in args.files:
        report = column_mapping.lint_mapped(
            name,
            Path(name).name,
            mapping,
            tokenizer=tokenizer,
            max_length=args.max_length,
            model=model,
            batch_size=args.batch_size,
            keep_rows=False,
            workers=args.workers,
            max_bytes=None,
        )
        payload = report.to_json()
        payload["file"] = name
        if mapping is not None:
            payload["column_mapping"] = mapping.to_dict()
        elif report.format in (None, "text", "prompt-only") and column_mapping.needs_mapping(
            sample := _rows_of(name, report), report.format
        ):
            suggested = column_mapping.propose(sample)
            payload["suggested_mapping"] = suggested.to_dict()
            payload["suggested_flags"] = " ".join(
                [f"--map user={suggested.user}", f"--map assistant={suggested.assistant}"]
                + [f"--map context={name}" for name in suggested.context]
                + ([f"--map system={suggested.system}"] if suggested.system else [])
            )
        if report.counts_by_severity["E"]:
            worst = 1
        if args.json:
            print(json.dumps(payload, ensure_ascii=False, default=str), flush=True)
        else:
            print(_readable(payload, show_all=args.all), flush=True)
    return worst


def _rows_of(name: str, report) -> list:
    """The report's rows, or (a streamed report keeps none) the file read again: only for a file of unknown
    layout, to propose a column mapping."""
    return report.rows or column_mapping.load_mapped(name, Path(name).name, None, max_bytes=None).rows


def _readable(payload: dict, show_all: bool = False) -> str:
    counts = payload["counts"]
    stats = payload["stats"]
    lines = [
        f"{payload['file']}: {payload['verdict'].upper()} — {payload['rows']} rows, format "
        f"{payload['format'] or 'unknown'}; {counts['E']} errors, {counts['W']} warnings, {counts['I']} notes"
    ]
    if stats.get("have_tokens"):
        per, length, tokens = stats["tokens"]["per_example"]["total"], stats["length"], stats["tokens"]
        lines.append(
            f"  tokens per row: p50 {per['p50']}, p95 {per['p95']}, p99 {per['p99']}, max {per['max']} "
            f"(max_length {stats['max_length']}, suggested {length['suggested_max_length']}); "
            f"{tokens['trainable']:,} of {tokens['total']:,} tokens trainable"
        )
    if payload.get("column_mapping"):
        mapping = payload["column_mapping"]
        lines.append(
            f"  rows read with the column mapping: user={mapping['user']}, assistant={mapping['assistant']}"
            + "".join(f", context={name}" for name in mapping["context"])
            + (f", system={mapping['system']}" if mapping.get("system") else "")
        )
    if payload.get("suggested_flags"):
        lines.append(
            f"  hint: the columns look like a question/answer table: lint it again with {payload['suggested_flags']}"
        )
    findings = payload["findings"]
    shown = findings if show_all else findings[:30]
    for finding in shown:
        where = f"row {finding['row']}" if finding["row"] is not None else "file"
        lines.append(f"  {finding['severity']} {finding['rule']:<22} {where:<9} {finding['message']}")
        lines.append(f"    → {finding['hint']}")
    if len(findings) > len(shown):
        lines.append(f"  … {len(findings) - len(shown)} more findings (use --all or --json)")
    return "\n".join(lines)
