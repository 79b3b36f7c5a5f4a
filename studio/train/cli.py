"""CLI: `python -m studio train|runs|stop`.

    python -m studio train --model M --data FILE_OR_DATASET [--epochs N] [--max-steps N] [--lr X]
        [--lora-r N] [--max-length N] [... every RunConfig field ...] [--config run.json]
        [--resume RUN_ID] [--executor local|hf-jobs [--flavor NAME] [--max-cost USD]] [--wait] [--json]
        [--dry-run [--cpu-gflops G]]
    python -m studio runs [--json]
    python -m studio stop RUN_ID [--force] [--timeout S]
    python -m studio export RUN_ID [--zip [PATH]] [--merge DIR] [--push REPO_ID [--private|--no-private]] [--json]

Settings are layered: RunConfig defaults < --config file < flags. Runs started here are owned by
"cli"; acting on a browser's run needs the admin password in STUDIO_ADMIN_PASSWORD.
`--executor hf-jobs` sends the run to Hugging Face Jobs (studio.jobs) with the operator's HF_TOKEN: the
remote preflight (time, memory and cost of the flavour against the cap) is printed first and refuses a run
above the cap; `python -m studio jobs flavors` lists the flavours and their prices.
With --json, stdout carries only JSON lines (progress goes to stderr).
Every start runs the Train tab's preflight first: errors refuse the run; when it would not fit in memory
the preflight's smaller micro-batch (same effective batch) or gradient checkpointing is used, and said.
--dry-run prints that preflight (time, memory, steps, warnings, the resolved config) and starts nothing;
a .jsonl file is linted and counted in memory, not saved.
`export` does what the Train tab's Export does (studio.train.export); a push reads the token from HF_TOKEN
or the Hugging Face login (`hf auth login`) and never writes it anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from studio import paths
from studio.data import pipeline
from studio.data import store as data_store
from studio.errors import StudioError
from studio.jobs import estimate, executor
from studio.models import cost
from studio.train import executors, export, facts, preflight, store, supervisor
from studio.train.config import NOT_FLAGS, RunConfig, field_kinds, flag_name
from studio.units import format_duration

CLI_OWNER = "cli"
_TYPES = {"str": str, "int": int, "float": float, "int?": int, "float?": float}


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train",
        help="start a LoRA fine-tuning run (prints the run id)",
        description="Start a LoRA fine-tuning run with TRL in a background worker.",
    )
    add_config_flags(train)
    train.add_argument("--config", metavar="RUN_JSON", help="a run.json (RunConfig) to start from; flags override it")
    train.add_argument(
        "--resume", metavar="RUN_ID", help="resume a stopped/failed/interrupted run from its last checkpoint"
    )
    train.add_argument(
        "--executor",
        choices=executors.EXECUTORS,
        default=executors.LOCAL,
        help="where to train: this machine (default) or Hugging Face Jobs (uses HF_TOKEN, costs money)",
    )
    train.add_argument(
        "--flavor", help="Hugging Face Jobs hardware, e.g. t4-small (see `python -m studio jobs flavors`)"
    )
    train.add_argument(
        "--max-cost",
        type=float,
        metavar="USD",
        help="cost cap of a Jobs run in US dollars (default: STUDIO_JOBS_MAX_COST or 5); the job is "
        "stopped by Hugging Face when it reaches it",
    )
    train.add_argument("--wait", action="store_true", help="follow the run to its end, printing progress")
    train.add_argument(
        "--json",
        action="store_true",
        help="print a final JSON line (run_id, run_dir, status, steps, final_loss, adapter)",
    )
    train.add_argument(
        "--dry-run",
        action="store_true",
        help="print the preflight (time, memory, steps, warnings, resolved config) and start nothing",
    )
    train.add_argument(
        "--cpu-gflops",
        type=float,
        metavar="G",
        help="with --dry-run: estimate for a CPU with this matmul peak instead of measuring this one",
    )
    train.set_defaults(func=run_train)

    runs = subparsers.add_parser("runs", help="list training runs")
    runs.add_argument("--json", action="store_true", help="print one JSON array of the runs")
    runs.set_defaults(func=run_runs)

    stop = subparsers.add_parser("stop", help="stop a training run (graceful, then forced after --timeout)")
    stop.add_argument("run_id")
    stop.add_argument("--force", action="store_true", help="kill the worker at once (no adapter is saved)")
    stop.add_argument(
        "--timeout",
        type=float,
        default=supervisor.DEFAULT_STOP_TIMEOUT,
        help="seconds to wait for a graceful stop before killing (default %(default)s)",
    )
    stop.set_defaults(func=run_stop)

    export = subparsers.add_parser(
        "export",
        help="zip, merge or push a run's adapter (what the Train tab's Export does)",
        description="Export a run's adapter: a zip, merged full weights, and/or a push to the Hugging Face Hub. "
        "Without --zip/--merge/--push it writes the zip. A run without a final adapter exports its last "
        "checkpoint. Pushing needs a token with write access in HF_TOKEN (or `hf auth login`).",
    )
    export.add_argument("run_id", metavar="RUN_ID")
    export.add_argument(
        "--zip",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="write the adapter zip to PATH (default: the run's exports/ folder)",
    )
    export.add_argument(
        "--merge", metavar="DIR", help="merge the adapter into full weights in DIR (a new or empty folder)"
    )
    export.add_argument(
        "--push",
        metavar="REPO_ID",
        help="push to the Hub repo REPO_ID: the merged model when --merge is given, else the adapter",
    )
    export.add_argument(
        "--private",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="create the Hub repo as private (default, as in the browser); --no-private makes it public",
    )
    export.add_argument(
        "--json", action="store_true", help="print one JSON object: run_id, source, zip, merged, pushed"
    )
    export.set_defaults(func=run_export)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field (defaults suppressed so a --config file is not overridden silently)."""
    defaults = RunConfig()
    for name, kind in field_kinds().items():
        if name in NOT_FLAGS:
            continue
        flag = flag_name(name)
        default = getattr(defaults, name)
        help_text = "(default: automatic)" if default is None and kind != "int?" else f"(default: {default!r})"
        if name == "learning_rate":
            help_text = "(default: automatic — 1e-3 below 1B parameters, else 2e-4)"
        elif name == "processes":
            help_text = "processes to train with (default: 0 — one per visible GPU, one on a CPU)"
        elif name == "strategy":
            help_text = f"how several processes share the run: {', '.join(cost.STRATEGIES)} (default: ddp)"
        if kind in ("bool", "bool?"):
            parser.add_argument(
                flag,
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text + (" — unset: automatic" if kind == "bool?" else ""),
            )
        else:
            parser.add_argument(flag, dest=name, type=_TYPES[kind], default=argparse.SUPPRESS, help=help_text)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    base = RunConfig()
    if getattr(args, "config", None):
        path = Path(args.config).expanduser()
        if not path.is_file():
            raise StudioError(
                f"No config file at {path}.", "Pass the path of a run.json (e.g. a run folder's config.json)."
            )
        base = RunConfig.from_json(path.read_text(encoding="utf-8")).replace(run_id="")
    overrides = {name: getattr(args, name) for name in field_kinds() if name not in NOT_FLAGS and hasattr(args, name)}
    return RunConfig.from_dict({**base.to_dict(), **overrides})


# ---- data ----------------------------------------------------------------------------------
def _dataset_path(path_text: str) -> Path:
    """--data as a path: a file, a saved dataset folder, or a saved dataset's id."""
    path = Path(path_text).expanduser().resolve()
    saved = paths.datasets_dir() / path_text
    if not path.exists() and paths.safe_name(path_text, "") == path_text and saved.is_dir():
        path = saved  # a saved dataset's id, as the Data tab and `runs` show it
    if path.is_dir():
        if not (path / "train.jsonl").is_file():
            raise StudioError(
                f"{path} is not a saved dataset folder (no train.jsonl).",
                "Pass a folder saved by the Data tab, or a .jsonl file of chat rows.",
            )
        return path
    if not path.is_file():
        raise StudioError(f"No dataset at {path}.", "Pass a saved dataset folder or a .jsonl file.")
    if path.suffix.lower() != ".jsonl":
        raise StudioError(
            f"{path.name} is not a .jsonl file.",
            "Convert it in the Data tab (it reads CSV, JSON, Parquet…) and pass the saved folder.",
        )
    return path


def prepare_dataset(path_text: str, seed: int = 42, model: str | None = None, max_length: int | None = None) -> str:
    """A saved dataset folder (or its id) for --data: used as is; or a .jsonl file linted (refused while it has
    errors), cleaned, split and saved by the Data pipeline."""
    path = _dataset_path(path_text)
    if path.is_dir():
        return str(path)
    return str(save_with_data_pipeline(path, seed, model, max_length))


def save_with_data_pipeline(
    path: Path, seed: int = 42, model: str | None = None, max_length: int | None = None
) -> Path:
    """Lint the file with the Data capability (refused while it has errors), clean, split and save it."""
    return pipeline.save_file(path, seed, model, max_length)


def dataset_manifest(path_text: str, seed: int = 42, model: str | None = None, max_length: int | None = None) -> dict:
    """What preflight reads of a dataset, without saving anything: a saved folder's manifest, or a file's
    counts and statistics computed in memory."""
    path = _dataset_path(path_text)
    if path.is_dir():
        manifest = data_store.read_manifest(path)
        if manifest is None:
            raise StudioError(f"{path} has no readable manifest.json.", "Save the dataset again in the Data tab.")
        return manifest
    _, result, manifest_stats = pipeline.lint_clean_and_count(path, seed, model, max_length)
    return {"name": path.stem, "path": str(path.parent), "counts": result.counts, "stats": manifest_stats}


# ---- commands ------------------------------------------------------------------------------
def _admin_password() -> str | None:
    return os.environ.get(supervisor.ADMIN_ENV) or None


def print_preflight(report: preflight.Preflight, out) -> None:
    """The preflight as text: the summary, changes, notes, problems, then the config that would run."""
    print("Preflight (dry run: nothing was started)", file=out)
    for name, value in report.summary_rows():
        print(f"  {name.lower():<18} {value}", file=out)
    if report.memory_parts_gib:
        parts = ", ".join(f"{part} {value:.2f}" for part, value in report.memory_parts_gib.items() if value >= 0.005)
        print(f"  {'memory parts':<18} {parts} (GiB)", file=out)
    for change in report.adjustments:
        print(f"changed to fit in memory: {change}", file=out)
    for note in report.notes:
        print(f"note: {note}", file=out)
    for check in report.errors:
        print(f"error: {check.message}" + (f" — {check.hint}" if check.hint else ""), file=out)
    for check in report.warnings:
        print(f"warning: {check.message}" + (f" — {check.hint}" if check.hint else ""), file=out)
    print("resolved config:", file=out)
    print(report.config_json, file=out)
    print(f"command: {report.cli_command}", file=out)


def run_train(args: argparse.Namespace) -> int:
    out = sys.stderr if args.json else sys.stdout
    if args.resume:
        record = supervisor.resume(args.resume, requester=CLI_OWNER, admin_password=_admin_password())
    else:
        choice = choice_from_args(args)
        config = config_from_args(args)
        if not config.dataset:
            raise StudioError("No dataset given.", "Pass --data DATASET_FOLDER_OR_FILE.jsonl (or a --config with one).")
        config.check()  # settings first: a typo in --lr should not wait for the data to be read
        if args.dry_run and choice.executor != executors.LOCAL:
            print_remote_estimate(config, choice, sys.stdout)
            return 0
        if args.dry_run:
            manifest = dataset_manifest(config.dataset, config.seed, config.model, config.max_length)
            report = preflight.run_preflight(config, manifest=manifest, check_busy=False, cpu_gflops=args.cpu_gflops)
            if args.json:
                print(json.dumps(report.as_dict()), flush=True)
            else:
                print_preflight(report, sys.stdout)
            return 1 if report.blocking else 0
        config = config.replace(dataset=prepare_dataset(config.dataset, config.seed, config.model, config.max_length))
        if choice.executor != executors.LOCAL:
            print_remote_estimate(config, choice, out)  # the flavour's time, memory and cost; refuses above the cap
        else:
            # Memory and the settings that fit need no time estimate: the calibration's reference peak, not a
            # measurement.
            reference = cost.calibration().reference_peak_gflops.get("fp32")
            report = preflight.run_preflight(config, check_busy=False, cpu_gflops=reference)
            for check in report.errors:
                print(f"error: {check.message}" + (f"\nhint: {check.hint}" if check.hint else ""), file=sys.stderr)
            if report.blocking:
                return 1
            for change in report.adjustments:
                print(f"note: changed to fit in memory: {change}", file=sys.stderr)
            config = report.config
        record = supervisor.launch_with(config, owner=CLI_OWNER, choice=choice)
    if not args.json:
        print(record.run_id, flush=True)
    else:
        print(f"run {record.run_id} started in {record.dir}", file=out, flush=True)
    if args.wait:
        try:
            record = follow(record.run_id, out)
        except KeyboardInterrupt:
            print(
                f"\nStill running in the background. Stop it with: python -m studio stop {record.run_id}",
                file=sys.stderr,
            )
            return 130
    else:
        record = store.get_run(record.run_id)
    if args.json:
        print(json.dumps(facts.run_summary(record)), flush=True)
    if record.state in ("failed", "interrupted"):
        error = record.status.get("error") or {}
        print(f"error: {error.get('message', 'the run ' + record.state)}", file=sys.stderr)
        if error.get("hint"):
            print(f"hint: {error['hint']}", file=sys.stderr)
        return 1
    return 0


def choice_from_args(args: argparse.Namespace) -> executors.Choice:
    if args.executor == executors.LOCAL:
        if args.flavor or args.max_cost is not None:
            raise StudioError(
                "--flavor and --max-cost only apply to --executor hf-jobs.", "Add --executor hf-jobs, or drop them."
            )
        return executors.Choice()

    return executors.Choice(
        args.executor, args.flavor, args.max_cost if args.max_cost is not None else estimate.default_max_cost()
    ).check()


def print_remote_estimate(config: RunConfig, choice: executors.Choice, out) -> None:
    """The flavour's time, memory and cost against the cap, before anything is uploaded."""
    result, flavor_list = executor.remote_estimate(config, choice.flavor, choice.max_cost)
    if flavor_list.stale_reason:
        print(f"note: flavour list from {flavor_list.fetched_at} ({flavor_list.stale_reason})", file=out)
    print(result.markdown().replace("**", ""), file=out, flush=True)


def follow(run_id: str, out, poll: float = 1.0) -> store.RunRecord:
    """Print progress from the run's events until it ends."""
    record = store.get_run(run_id)
    offset = 0
    while True:
        events, offset = store.read_events(record.dir, offset)
        for event in events:
            line = progress_line(event)
            if line:
                print(line, file=out, flush=True)
        record = store.get_run(run_id)
        if record.state not in store.ACTIVE and record.state != "queued":
            events, offset = store.read_events(record.dir, offset)
            for event in events:
                line = progress_line(event)
                if line:
                    print(line, file=out, flush=True)
            print(
                f"{record.state}: step {record.status.get('step')}/{record.status.get('total_steps')}",
                file=out,
                flush=True,
            )
            return record
        if executors.remote_for(record):
            record = supervisor.reconcile_one(record)  # a follower that died is started again
        elif record.status.get("pid") and not supervisor.pid_alive(record.status["pid"], record.dir):
            time.sleep(0.5)
            record = supervisor.reconcile_one(store.get_run(run_id))
            if record.state not in store.ACTIVE:
                continue
        time.sleep(poll)


def progress_line(event: dict) -> str | None:
    kind = event.get("type")
    where = f"step {event.get('step')}/{event.get('total')}"
    if kind == "log":
        parts = [where, f"loss {event['loss']:.4f}" if isinstance(event.get("loss"), (int, float)) else "loss ?"]
        if event.get("tokens_per_s"):
            parts.append(f"{event['tokens_per_s']:.0f} tok/s")
        if event.get("eta") is not None:
            parts.append(f"eta {format_duration(event['eta'])}")
        return "  ".join(parts)
    if kind == "eval":
        return f"{where}  eval_loss {event.get('eval_loss')}"
    if kind == "checkpoint":
        return f"{where}  saved {event.get('checkpoint')}"
    if kind == "status":
        return f"{where}  {event.get('status')}"
    return None


def run_runs(args: argparse.Namespace) -> int:
    supervisor.reconcile()
    records = store.list_runs()
    if args.json:
        rows = [facts.run_facts(record) for record in records]
        print(json.dumps(rows, indent=1))
        return 0
    if not records:
        print("No runs yet. Start one with: python -m studio train --data DATASET")
        return 0
    print(f"{'run id':<18} {'status':<12} {'steps':>11} {'final loss':>10}  name")
    for record in records:
        status = record.status
        steps = f"{status.get('step') or 0}/{status.get('total_steps') or '?'}"
        loss = status.get("final_loss")
        print(
            f"{record.run_id:<18} {record.state:<12} {steps:>11} "
            f"{(f'{loss:.4f}' if isinstance(loss, float) else '-'):>10}  {record.name}"
        )
    return 0


def run_stop(args: argparse.Namespace) -> int:
    record = supervisor.stop(
        args.run_id, requester=CLI_OWNER, admin_password=_admin_password(), force=args.force, timeout=args.timeout
    )
    print(f"{record.run_id}: {record.state} at step {record.status.get('step')}/{record.status.get('total_steps')}")
    return 0


def hub_token() -> str:
    """The token for a push: HF_TOKEN, else the Hugging Face login's; held in memory only."""
    token = os.environ.get("HF_TOKEN", "").strip()
    if token:
        return token
    try:
        from huggingface_hub import get_token

        return (get_token() or "").strip()
    except Exception:  # noqa: BLE001 - no login is the same as no token
        return ""


def run_export(args: argparse.Namespace) -> int:
    out = sys.stderr if args.json else sys.stdout
    record = store.get_run(args.run_id)
    source = export.adapter_source(record.dir)  # "no adapter yet" before anything else
    token = ""
    if args.push:  # every reason a push would fail is found before a long merge
        token = hub_token()
        export.check_push(
            args.push,
            token,
            token_hint="Set HF_TOKEN to a token with write access (huggingface.co/settings/tokens), "
            "or log in once with `hf auth login`. The studio never saves it.",
        )
    result = {
        "run_id": record.run_id,
        "source": "adapter" if not source.from_checkpoint else source.folder.name,
        "zip": None,
        "merged": None,
        "pushed": None,
    }
    if source.from_checkpoint:
        print(f"note: exporting {source.note}", file=sys.stderr)
    if args.zip is not None or not (args.merge or args.push):
        target = export.zip_adapter(record.dir, Path(args.zip).expanduser().resolve() if args.zip else None)
        result["zip"] = str(target)
        print(f"zip: {target}", file=out, flush=True)
    if args.merge:

        def progress(fraction: float, text: str) -> None:
            print(f"[{fraction:4.0%}] {text}", file=sys.stderr, flush=True)

        merged = export.merge(record.dir, progress=progress, target=Path(args.merge))
        result["merged"] = str(merged)
        print(f"merged: {merged}", file=out, flush=True)
    if args.push:
        what = "merged" if args.merge else "adapter"
        url = export.push_to_hub(
            record.dir,
            args.push,
            token,
            what=what,
            private=args.private,
            merged_dir=Path(result["merged"]) if args.merge else None,
        )
        result["pushed"] = url
        print(f"pushed the {what}: {url}", file=out, flush=True)
    if args.json:
        print(json.dumps(result), flush=True)
    return 0
