"""Headless entry point: python -m studio <command> ...

Each capability adds its own commands from studio/<capability>/cli.py, which defines
`register(subparsers)`; each registered parser sets `func(args) -> int` via set_defaults.
Conventions: `--json` prints one JSON document on stdout (progress goes to stderr); a failure prints
"error:" and "hint:" lines on stderr (and, with --json, {"error", "hint"} on stdout); a closed output
pipe (`| head`) ends quietly. Exit codes are listed in EXIT_CODES (shown by --help).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from studio import __version__, access
from studio.errors import StudioError
from studio.ui import build_app
from studio.ui.shell import launch_kwargs, start_background

EXIT_CODES = (
    (0, "success"),
    (
        1,
        "the command ran and found a problem (lint errors, a failed run, an export that could not be made, "
        "a bad run id …); the reason and a hint are on stderr",
    ),
    (2, "usage error (unknown command or option, missing argument)"),
    (130, "interrupted (Ctrl+C)"),
    (141, "the output pipe closed early (e.g. `| head`); nothing is printed about it"),
)

COMMAND_MODULES = (
    "studio.models.cli",
    "studio.data.cli",
    "studio.decide.cli",
    "studio.train.cli",
    "studio.compare.cli",
    "studio.jobs.cli",
)


def _serve(args: argparse.Namespace) -> int:
    import os

    if args.host:
        os.environ["GRADIO_SERVER_NAME"] = args.host
    if args.port:
        os.environ["GRADIO_SERVER_PORT"] = str(args.port)

    demo = build_app()
    start_background()
    demo.queue().launch(**launch_kwargs())
    return 0


def build_parser() -> argparse.ArgumentParser:
    epilog = "exit codes:\n" + "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES)
    parser = argparse.ArgumentParser(
        prog="python -m studio",
        description="Fine-Tune Studio, headless.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = subparsers.add_parser("serve", help="start the web studio (same as python app.py)")
    serve.add_argument("--host", help="address to listen on (default GRADIO_SERVER_NAME or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default GRADIO_SERVER_PORT or 7860)")
    serve.set_defaults(func=_serve)
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(subparsers)
    return parser


def _quiet_broken_pipe() -> int:
    """stdout's reader went away (`| head`): point stdout at /dev/null so the exit flush cannot complain."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        return _quiet_broken_pipe()


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on usage errors, 0 on --help / --version
        return int(exit_.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2

    try:
        if args.func is _serve:  # the web studio: each request says who is calling (studio/ui/guard.py)
            return int(args.func(args) or 0)
        # Whoever runs the command line runs the machine: the operator (paths, tokens and all runs are theirs).
        with access.acting(access.Identity(access.CLI_OWNER, access.OPERATOR)):
            code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler
        return code
    except StudioError as error:
        print(f"error: {error.message}", file=sys.stderr)
        if error.hint:
            print(f"hint: {error.hint}", file=sys.stderr)
        if getattr(args, "json", False):
            import json

            print(json.dumps({"error": error.message, "hint": error.hint or None}), flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
