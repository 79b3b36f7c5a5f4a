"""CLI: `python -m studio jobs flavors [--refresh] [--json]` — the Hugging Face Jobs hardware and prices."""

from __future__ import annotations

import argparse
import json

from studio.jobs import flavors


def register(subparsers) -> None:
    jobs = subparsers.add_parser(
        "jobs",
        help="Hugging Face Jobs: list the hardware flavours and prices",
        description="Hugging Face Jobs (train with `python -m studio train --executor hf-jobs`).",
    )
    commands = jobs.add_subparsers(dest="jobs_command", metavar="SUBCOMMAND", required=True)
    flavors = commands.add_parser("flavors", help="hardware flavours with their price per hour (needs HF_TOKEN)")
    flavors.add_argument("--refresh", action="store_true", help="ask Hugging Face again instead of the cached list")
    flavors.add_argument("--json", action="store_true", help="one JSON array, an object per flavour")
    flavors.set_defaults(func=run_flavors)


def run_flavors(args: argparse.Namespace) -> int:
    listed = flavors.list_flavors(refresh=args.refresh)
    by_name = {flavor.name: flavor for flavor in listed.flavors}
    rows = []
    for label, name in flavors.choices(listed):
        flavor = by_name[name]
        rows.append(
            {
                "name": name,
                "label": flavor.pretty_name,
                "gpu": flavor.gpu_model,
                "gpus": flavor.gpu_count,
                "gpu_memory_gb": flavor.gpu_memory_gb,
                "cpu": flavor.cpu,
                "ram": flavor.ram,
                "price_per_hour_usd": flavor.price_per_hour,
            }
        )
        if not args.json:
            print(label)
    if args.json:
        print(json.dumps(rows, indent=1))  # one array, like `runs --json`
    if listed.stale_reason and not args.json:
        print(f"(list from {listed.fetched_at}: {listed.stale_reason})")
    return 0
