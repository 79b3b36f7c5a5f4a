"""`python -m studio estimate`: memory, FLOPs, time and cost of a fine-tuning run, as one JSON line or text."""

from __future__ import annotations

import argparse
import json
import sys

from studio.data import store as data_store
from studio.decide import estimate as est
from studio.errors import StudioError
from studio.models import cost


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(float(text)) if kind is int else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        if value <= 0 or value != value:
            raise argparse.ArgumentTypeError(f"must be above 0 (got {text})")
        if kind is int and float(text) != int(float(text)):
            raise argparse.ArgumentTypeError(f"must be a whole number (got {text})")
        return value

    return parse


def _params(text: str) -> float:
    try:
        return est.parse_params(text)
    except StudioError as error:
        raise argparse.ArgumentTypeError(f"{error.message} {error.hint}") from None


def _tokens(text: str) -> float:
    """Token counts accept the same suffixes as --params (2M, 1.5e6)."""
    try:
        value = float(text)
    except ValueError:
        try:
            value = est.parse_params(text)
        except StudioError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a token count (e.g. 200000, 2M)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0 (got {text})")
    return value


def register(subparsers) -> None:
    gpus = ", ".join([est.THIS_MACHINE] + [item.key for item in est.HARDWARE])
    parser = subparsers.add_parser(
        "estimate",
        help="memory, FLOPs, time and cost of a fine-tuning run",
        description="Estimate a fine-tuning run before starting it. Prints one JSON line with --json.",
    )
    parser.add_argument("--params", type=_params, help="model parameters: 7B, 135M, 7e9 (default: the --model's)")
    parser.add_argument(
        "--tokens", type=_tokens, help="training tokens per epoch (after the chat template; default: the --data's)"
    )
    parser.add_argument("--epochs", type=_positive(float), required=True)
    parser.add_argument("--technique", choices=est.TECHNIQUES, required=True)
    parser.add_argument("--gpu", default="a10g", metavar="NAME", help=f"hardware: {gpus} (default a10g)")
    parser.add_argument("--gpus", type=_positive(int), default=1, help="number of devices (ZeRO-3 sharding)")
    parser.add_argument("--batch-size", type=_positive(int), default=4)
    parser.add_argument("--max-length", type=_positive(int), default=1024)
    parser.add_argument("--lora-r", type=_positive(int), default=est.DEFAULT_LORA_R)
    parser.add_argument(
        "--model", help="a model name for its real shape, e.g. Qwen2.5-7B or bundled (else a generic shape)"
    )
    parser.add_argument(
        "--data",
        metavar="DATASET",
        help="a saved dataset folder: its rows, token statistics and "
        "validation split (the same run `train --dry-run` estimates)",
    )
    parser.add_argument(
        "--cpu-gflops",
        type=_positive(float),
        metavar="G",
        help="with --gpu this-machine on a CPU: use this matmul peak instead of measuring it",
    )
    checkpointing = parser.add_mutually_exclusive_group()
    checkpointing.add_argument("--gradient-checkpointing", dest="checkpointing", action="store_true", default=None)
    checkpointing.add_argument("--no-gradient-checkpointing", dest="checkpointing", action="store_false")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.set_defaults(func=run)


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    known = {item.key for item in est.HARDWARE} | {est.THIS_MACHINE, "this", "local"}
    if args.gpu.strip().lower() not in known:
        return _usage(f"unknown --gpu '{args.gpu}'. Use one of: {', '.join(sorted(known - {'this', 'local'}))}")
    known = est.find_architecture(args.model)
    params = args.params or (known.params if known else None)
    if not params:
        return _usage("give --params (e.g. 7B) or a known --model")
    arch = est.architecture_for(params, args.model)
    dataset = None
    if args.data:
        manifest = data_store.read_manifest(args.data)
        dataset = est.dataset_numbers((manifest or {}).get("stats"), (manifest or {}).get("counts"))
        if dataset is None:
            return _usage(f"--data {args.data} is not a saved dataset with token statistics")
    tokens = args.tokens or (dataset.tokens_per_epoch if dataset else None)
    if not tokens:
        return _usage("give --tokens (training tokens per epoch) or --data")
    if args.cpu_gflops and args.gpu.strip().lower() in (est.THIS_MACHINE, "this", "local"):
        hardware = cost.this_machine(est.local_training_dtype(arch), peak_tflops=args.cpu_gflops / 1000)
    else:
        hardware = est.find_hardware(args.gpu, arch)
    result = est.with_first_run_measurement(
        est.estimate(
            params,
            tokens,
            args.epochs,
            args.technique,
            hardware=hardware,
            batch_size=args.batch_size,
            max_length=args.max_length,
            lora_r=args.lora_r,
            arch=arch,
            devices=args.gpus,
            gradient_checkpointing=args.checkpointing,
            dataset=dataset,
        )
    )
    data = result.as_dict()
    if args.json:
        print(json.dumps(data))
        return 0
    print(
        f"{est.TECHNIQUE_LABELS[result.technique]} · {est.format_params(result.params)} params ({arch.name}) · "
        f"{result.tokens:,.0f} tokens × {result.epochs:g} epochs on {result.hardware.label}"
    )
    print(
        f"memory   {data['memory_gib']:.1f} GiB of {result.hardware.memory_gib:.0f} GiB "
        f"({'fits' if result.fits else 'does NOT fit'})"
    )
    for part, value in data["memory_breakdown_gib"].items():
        print(f"  {part:12s} {value:8.2f} GiB")
    print(f"flops    {result.flops:.3g}   = {result.formula}")
    print(
        f"time     {result.hours:.3g} h at {result.hardware.peak_tflops:g} TFLOP/s × {result.run.efficiency:.0%} "
        f"({result.run.efficiency_note})"
    )
    print("  " + ", ".join(f"{part} {seconds:,.0f} s" for part, seconds in data["seconds"].items()))
    print(f"cost     ${result.cost_usd:,.2f} at ${result.hardware.price_per_hour:g}/h")
    return 0
