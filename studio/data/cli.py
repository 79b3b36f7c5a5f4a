"""`python -m studio lint FILE [FILE ...] [--model M] [--max-length N] [--map ROLE=COLUMN ...] [--json] [--no-tokens]`.

--map (repeatable) reads a table of other column names as chat rows: user=, assistant=, context= (appended
to the user turn; may repeat), system= (studio.data.mapping). Without it, a file of unknown layout whose
column names suggest a mapping gets the matching --map flags as a hint.

With --json: one JSON object per file, one per line:
    {"file", "format", "rows", "verdict", "counts", "findings": [{"rule","severity","row","message","hint"}], "stats": {...}}
Exit code: 0 when no file has an E finding, 1 when one does, 2 on usage errors.
The model's tokenizer loads once for all files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("lint", help="check dataset files before fine-tuning (rules in shared/LINT-RULES.md)")
    parser.add_argument("files", nargs="+", metavar="FILE", help=".jsonl, .json, .csv or .parquet files")
    parser.add_argument("--model", default=None, help="model whose tokenizer and chat template to check against (default: the bundled SmolLM2)")
    parser.add_argument("--max-length", type=int, default=None, help="max tokens per row (default: the model's context)")
    parser.add_argument("--json", action="store_true", help="one JSON object per file per line")
    parser.add_argument("--no-tokens", action="store_true", help="skip the tokenizer-aware rules (no model needed)")
    parser.add_argument("--all", action="store_true", help="list every finding in the readable report (default: 30 per file)")
    parser.add_argument("--map", action="append", metavar="ROLE=COLUMN", dest="mapping",
                        help="read COLUMN as the user turn, the assistant answer, extra context or the system prompt "
                             "(ROLE: user, assistant, context, system; repeatable), e.g. --map user=question --map assistant=answer")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from studio.data import mapping as column_mapping
    from studio.data.lint import report_from_load

    mapping = column_mapping.parse_cli(args.mapping)  # StudioError -> message + hint, exit 1
    if args.max_length is not None and args.max_length < 1:
        print("error: --max-length must be a positive number of tokens", file=sys.stderr)
        return 2
    missing = [name for name in args.files if not Path(name).is_file()]
    if missing:
        print(f"error: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    tokenizer = None
    model = None
    if not args.no_tokens:
        from studio.models import catalog
        from studio.models.loading import load_tokenizer

        model = args.model or catalog.DEFAULT_MODEL
        tokenizer = load_tokenizer(model)  # StudioError -> message + hint, exit 1 (studio.cli)
    worst = 0
    for name in args.files:
        loaded = column_mapping.load_mapped(name, Path(name).name, mapping)
        report = report_from_load(loaded, tokenizer=tokenizer, max_length=args.max_length, model=model)
        payload = report.to_json()
        payload["file"] = name
        if mapping is not None:
            payload["column_mapping"] = mapping.to_dict()
        elif column_mapping.needs_mapping(report.rows, report.format):
            suggested = column_mapping.propose(report.rows)
            payload["suggested_mapping"] = suggested.to_dict()
            payload["suggested_flags"] = " ".join(
                [f"--map user={suggested.user}", f"--map assistant={suggested.assistant}"]
                + [f"--map context={name}" for name in suggested.context]
                + ([f"--map system={suggested.system}"] if suggested.system else []))
        if report.counts_by_severity["E"]:
            worst = 1
        if args.json:
            print(json.dumps(payload, ensure_ascii=False, default=str), flush=True)
        else:
            print(_readable(payload, show_all=args.all), flush=True)
    return worst


def _readable(payload: dict, show_all: bool = False) -> str:
    counts = payload["counts"]
    stats = payload["stats"]
    lines = [f"{payload['file']}: {payload['verdict'].upper()} — {payload['rows']} rows, format {payload['format'] or 'unknown'}; "
             f"{counts['E']} errors, {counts['W']} warnings, {counts['I']} notes"]
    tokens = stats.get("tokens")
    if tokens:
        lines.append(f"  tokens per row: p50 {tokens['p50']}, p95 {tokens['p95']}, p99 {tokens['p99']}, max {tokens['max']} "
                     f"(max_length {stats.get('max_length')}, suggested {stats.get('suggested_max_length')}); "
                     f"{tokens['trainable']:,} of {tokens['total']:,} tokens trainable")
    if payload.get("column_mapping"):
        mapping = payload["column_mapping"]
        lines.append(f"  rows read with the column mapping: user={mapping['user']}, assistant={mapping['assistant']}"
                     + "".join(f", context={name}" for name in mapping["context"])
                     + (f", system={mapping['system']}" if mapping.get("system") else ""))
    if payload.get("suggested_flags"):
        lines.append(f"  hint: the columns look like a question/answer table: lint it again with {payload['suggested_flags']}")
    findings = payload["findings"]
    shown = findings if show_all else findings[:30]
    for finding in shown:
        where = f"row {finding['row']}" if finding["row"] is not None else "file"
        lines.append(f"  {finding['severity']} {finding['rule']:<22} {where:<9} {finding['message']}")
        lines.append(f"    → {finding['hint']}")
    if len(findings) > len(shown):
        lines.append(f"  … {len(findings) - len(shown)} more findings (use --all or --json)")
    return "\n".join(lines)
