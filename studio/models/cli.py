"""`python -m studio models [--prepare] [--json]`."""

from __future__ import annotations

import argparse
import json
import sys
import time

from studio.models import bundled, catalog


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list the model catalog; --prepare converts the bundled model")
    parser.add_argument("--prepare", action="store_true", help="convert the bundled model now (one-time, ~1 min)")
    parser.add_argument("--json", action="store_true", help="print one JSON array of the models")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.prepare:
        started = time.time()

        def progress(fraction: float, message: str) -> None:
            print(f"[{fraction:4.0%}] {message}", file=sys.stderr)

        folder = bundled.ensure_converted(progress)
        print(f"bundled model ready at {folder} ({time.time() - started:.1f} s)", file=sys.stderr)
    if args.json:
        print(json.dumps([entry.__dict__ for entry in catalog.entries()], indent=1))
        return 0
    for entry in catalog.entries():
        mark = "ready" if entry.ready else "     "
        print(f"{mark}  {entry.ref:45s} {entry.detail}")
    return 0
