"""`python -m studio estimate`: memory, FLOPs, time and cost of a fine-tuning run, as one JSON line or text."""

from __future__ import annotations

import argparse
import json
import sys

from studio.decide import estimate as est
from studio.errors import StudioError


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
        "estimate", help="memory, FLOPs, time and cost of a fine-tuning run",
        description="Estimate a fine-tuning run before starting it. Prints one JSON line with --json.")
    parser.add_argument("--params", type=_params, required=True, help="model parameters: 7B, 135M, 7e9")
    parser.add_argument("--tokens", type=_tokens, required=True, help="training tokens per epoch (after the chat template)")
    parser.add_argument("--epochs", type=_positive(float), required=True)
    parser.add_argument("--technique", choices=est.TECHNIQUES, required=True)
    parser.add_argument("--gpu", default="a10g", metavar="NAME", help=f"hardware: {gpus} (default a10g)")
    parser.add_argument("--gpus", type=_positive(int), default=1, help="number of devices (ZeRO-3 sharding)")
    parser.add_argument("--batch-size", type=_positive(int), default=4)
    parser.add_argument("--max-length", type=_positive(int), default=1024)
    parser.add_argument("--lora-r", type=_positive(int), default=est.DEFAULT_LORA_R)
    parser.add_argument("--model", help="a model name for its real shape, e.g. Qwen2.5-7B (else a generic shape)")
    checkpointing = parser.add_mutually_exclusive_group()
    checkpointing.add_argument("--gradient-checkpointing", dest="checkpointing", action="store_true", default=None)
    checkpointing.add_argument("--no-gradient-checkpointing", dest="checkpointing", action="store_false")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    known = {item.key for item in est.HARDWARE} | {est.THIS_MACHINE, "this", "local"}
    if args.gpu.strip().lower() not in known:
        print(f"error: unknown --gpu '{args.gpu}'. Use one of: {', '.join(sorted(known - {'this', 'local'}))}",
              file=sys.stderr)
        return 2
    arch = est.architecture_for(args.params, args.model)
    result = est.estimate(args.params, args.tokens, args.epochs, args.technique, hardware=args.gpu,
                          batch_size=args.batch_size, max_length=args.max_length, lora_r=args.lora_r, arch=arch,
                          devices=args.gpus, gradient_checkpointing=args.checkpointing)
    data = result.as_dict()
    if args.json:
        print(json.dumps(data))
        return 0
    print(f"{est.TECHNIQUE_LABELS[result.technique]} · {est.format_params(result.params)} params ({arch.name}) · "
          f"{result.tokens:,.0f} tokens × {result.epochs:g} epochs on {result.hardware.label}")
    print(f"memory   {data['memory_gb']:.1f} GB of {result.hardware.memory_gb:.0f} GB "
          f"({'fits' if result.fits else 'does NOT fit'})")
    for part, value in data["memory_breakdown_gb"].items():
        print(f"  {part:12s} {value:8.2f} GB")
    print(f"flops    {result.flops:.3g}   = {result.formula}")
    print(f"time     {result.hours:.3g} h at {result.hardware.peak_tflops:g} TFLOP/s × {result.hardware.utilisation:.0%}")
    print(f"cost     ${result.cost_usd:,.2f} at ${result.hardware.price_per_hour:g}/h")
    return 0
