"""CLI: `python -m studio train|runs|stop`.

    python -m studio train --model M --data FILE_OR_DATASET [--epochs N] [--max-steps N] [--lr X]
        [--lora-r N] [--max-length N] [... every RunConfig field ...] [--config run.json]
        [--resume RUN_ID] [--executor local|hf-jobs [--flavor NAME] [--max-cost USD]] [--wait] [--json]
    python -m studio runs [--json]
    python -m studio stop RUN_ID [--force] [--timeout S]

Settings are layered: RunConfig defaults < --config file < flags. Runs started here are owned by
"cli"; acting on a browser's run needs the admin password in STUDIO_ADMIN_PASSWORD.
`--executor hf-jobs` sends the run to Hugging Face Jobs (studio.jobs) with the operator's HF_TOKEN: the
remote preflight (time, memory and cost of the flavour against the cap) is printed first and refuses a run
above the cap; `python -m studio jobs flavors` lists the flavours and their prices.
With --json, stdout carries only JSON lines (progress goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from studio import paths
from studio.errors import StudioError
from studio.train import executors, store, supervisor
from studio.train.config import NOT_FLAGS, RunConfig, field_kinds, flag_name

CLI_OWNER = "cli"
_TYPES = {"str": str, "int": int, "float": float, "int?": int, "float?": float}


def register(subparsers) -> None:
    train = subparsers.add_parser("train", help="start a LoRA fine-tuning run (prints the run id)",
                                  description="Start a LoRA fine-tuning run with TRL in a background worker.")
    add_config_flags(train)
    train.add_argument("--config", metavar="RUN_JSON", help="a run.json (RunConfig) to start from; flags override it")
    train.add_argument("--resume", metavar="RUN_ID", help="resume a stopped/failed/interrupted run from its last checkpoint")
    train.add_argument("--executor", choices=executors.EXECUTORS, default=executors.LOCAL,
                       help="where to train: this machine (default) or Hugging Face Jobs (uses HF_TOKEN, costs money)")
    train.add_argument("--flavor", help="Hugging Face Jobs hardware, e.g. t4-small (see `python -m studio jobs flavors`)")
    train.add_argument("--max-cost", type=float, metavar="USD",
                       help="cost cap of a Jobs run in US dollars (default: STUDIO_JOBS_MAX_COST or 5); the job is "
                            "stopped by Hugging Face when it reaches it")
    train.add_argument("--wait", action="store_true", help="follow the run to its end, printing progress")
    train.add_argument("--json", action="store_true", help="print a final JSON line (run_id, run_dir, status, steps, final_loss, adapter)")
    train.set_defaults(func=run_train)

    runs = subparsers.add_parser("runs", help="list training runs")
    runs.add_argument("--json", action="store_true", help="one JSON object per line")
    runs.set_defaults(func=run_runs)

    stop = subparsers.add_parser("stop", help="stop a training run (graceful, then forced after --timeout)")
    stop.add_argument("run_id")
    stop.add_argument("--force", action="store_true", help="kill the worker at once (no adapter is saved)")
    stop.add_argument("--timeout", type=float, default=supervisor.DEFAULT_STOP_TIMEOUT,
                      help="seconds to wait for a graceful stop before killing (default %(default)s)")
    stop.set_defaults(func=run_stop)


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
        if kind in ("bool", "bool?"):
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=help_text + (" — unset: automatic" if kind == "bool?" else ""))
        else:
            parser.add_argument(flag, dest=name, type=_TYPES[kind], default=argparse.SUPPRESS, help=help_text)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    base = RunConfig()
    if getattr(args, "config", None):
        path = Path(args.config).expanduser()
        if not path.is_file():
            raise StudioError(f"No config file at {path}.", "Pass the path of a run.json (e.g. a run folder's config.json).")
        base = RunConfig.from_json(path.read_text(encoding="utf-8")).replace(run_id="")
    overrides = {name: getattr(args, name) for name in field_kinds() if name not in NOT_FLAGS and hasattr(args, name)}
    return RunConfig.from_dict({**base.to_dict(), **overrides})


# ---- data ----------------------------------------------------------------------------------
def prepare_dataset(path_text: str, seed: int = 42, model: str | None = None, max_length: int | None = None) -> str:
    """A saved dataset folder (or its id) for --data: used as is; or a .jsonl file saved as one.

    With the Data capability present (studio.data.lint/clean/store) the file is linted (refused
    while it has E findings), cleaned and split by it. Without it, the file must already be
    {"messages": [...]} rows and is split 90/10 here."""
    path = Path(path_text).expanduser().resolve()
    saved = paths.datasets_dir() / path_text
    if not path.exists() and paths.safe_name(path_text, "") == path_text and saved.is_dir():
        path = saved  # a saved dataset's id, as the Data tab and `runs` show it
    if path.is_dir():
        if not (path / "train.jsonl").is_file():
            raise StudioError(f"{path} is not a saved dataset folder (no train.jsonl).",
                              "Pass a folder saved by the Data tab, or a .jsonl file of chat rows.")
        return str(path)
    if not path.is_file():
        raise StudioError(f"No dataset at {path}.", "Pass a saved dataset folder or a .jsonl file.")
    if path.suffix.lower() != ".jsonl":
        raise StudioError(f"{path.name} is not a .jsonl file.",
                          "Convert it in the Data tab (it reads CSV, JSON, Parquet…) and pass the saved folder.")
    if _data_pipeline_available():
        try:
            return str(save_with_data_pipeline(path, seed, model, max_length))
        except (AttributeError, TypeError, KeyError) as error:  # the Data API changed under us: keep working
            print(f"note: the Data pipeline could not be used ({error}); saving the rows as they are.", file=sys.stderr)
    return str(save_jsonl_as_dataset(path, seed))


def _data_pipeline_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) for name in ("studio.data.lint", "studio.data.clean", "studio.data.store"))


def save_with_data_pipeline(path: Path, seed: int = 42, model: str | None = None, max_length: int | None = None) -> Path:
    """Lint the file with the Data capability (refused while it has errors), clean, split and save it."""
    from studio.data import clean, lint
    from studio.data import store as data_store

    report = lint.lint_file(path, tokenizer=model, max_length=max_length, model=model)  # tokens counted with the run's model
    errors = [f for f in report.findings if f.severity == "E"]
    if errors:
        first = errors[0]
        where = f" (row {first.row})" if first.row is not None else ""
        raise StudioError(f"{path.name} has {len(errors)} error finding(s); first{where}: {first.message}",
                          f"Run `python -m studio lint {path}` and fix them, or clean the file in the Data tab.")
    result = clean.clean_and_split(report, seed=seed)
    try:  # the manifest's token statistics, as the Data tab writes them
        from studio.data import stats as data_stats

        manifest_stats = data_stats.manifest_stats(data_stats.compute_stats(report, max_length=max_length, model=model,
                                                                               row_numbers=result.train_rows))
    except Exception as error:  # noqa: BLE001 - statistics are informative; the dataset is still valid without them
        print(f"note: no token statistics for the manifest ({type(error).__name__}: {error})", file=sys.stderr)
        manifest_stats = {}
    return data_store.save_dataset(result, report, manifest_stats, source_name=path.name,
                                   source_sha256=data_store.sha256_file(path))


def save_jsonl_as_dataset(path: Path, seed: int = 42) -> Path:
    import hashlib
    import random

    from studio.train.worker import read_messages

    rows = read_messages(path)
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_validation = max(1, len(rows) // 10) if len(rows) >= 10 else 0
    validation = [rows[i] for i in sorted(order[:n_validation])]
    train = [rows[i] for i in sorted(order[n_validation:])]
    folder = paths.datasets_dir() / paths.new_id(paths.safe_name(path.stem, "dataset")[:40] + "-")
    folder.mkdir(parents=True)
    for name, part in (("train.jsonl", train), ("validation.jsonl", validation)):
        paths.atomic_write_text(folder / name, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in part))
    manifest = {"id": folder.name, "name": path.stem, "source_name": path.name,
                "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "format": "messages",
                "created_at": store.now_iso(), "counts": {"train": len(train), "validation": len(validation), "rejected": 0},
                "findings_summary": {}, "stats": {}}
    paths.atomic_write_text(folder / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return folder


# ---- commands ------------------------------------------------------------------------------
def _admin_password() -> str | None:
    return os.environ.get(supervisor.ADMIN_ENV) or None


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
        config = config.replace(dataset=prepare_dataset(config.dataset, config.seed, config.model, config.max_length))
        if choice.executor != executors.LOCAL:
            print_remote_estimate(config, choice, out)
        record = executors.launch(config, owner=CLI_OWNER, choice=choice)
    if not args.json:
        print(record.run_id, flush=True)
    else:
        print(f"run {record.run_id} started in {record.dir}", file=out, flush=True)
    if args.wait:
        try:
            record = follow(record.run_id, out)
        except KeyboardInterrupt:
            print(f"\nStill running in the background. Stop it with: python -m studio stop {record.run_id}", file=sys.stderr)
            return 130
    else:
        record = store.get_run(record.run_id)
    if args.json:
        print(json.dumps(summary(record)), flush=True)
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
            raise StudioError("--flavor and --max-cost only apply to --executor hf-jobs.", "Add --executor hf-jobs, or drop them.")
        return executors.Choice()
    from studio.jobs import estimate

    return executors.Choice(args.executor, args.flavor, args.max_cost if args.max_cost is not None
                            else estimate.default_max_cost()).check()


def print_remote_estimate(config: RunConfig, choice: executors.Choice, out) -> None:
    """The flavour's time, memory and cost against the cap, before anything is uploaded."""
    from studio.jobs import executor

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
            print(f"{record.state}: step {record.status.get('step')}/{record.status.get('total_steps')}", file=out, flush=True)
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
            parts.append(f"eta {supervisor.format_duration(event['eta'])}")
        return "  ".join(parts)
    if kind == "eval":
        return f"{where}  eval_loss {event.get('eval_loss')}"
    if kind == "checkpoint":
        return f"{where}  saved {event.get('checkpoint')}"
    if kind == "status":
        return f"{where}  {event.get('status')}"
    return None


def summary(record: store.RunRecord) -> dict:
    status = record.status
    return {"run_id": record.run_id, "run_dir": str(record.dir), "status": record.state,
            "steps": status.get("step"), "final_loss": status.get("final_loss"),
            "adapter": str(record.adapter_dir) if record.adapter_dir else None}


def run_runs(args: argparse.Namespace) -> int:
    supervisor.reconcile()
    records = store.list_runs()
    if args.json:
        for record in records:
            status, config = record.status, record.config
            row = {**summary(record), "executor": executors.kind(record), "name": record.name, "model": config.get("model"), "dataset": config.get("dataset"),
                   "total_steps": status.get("total_steps"), "best_eval_loss": status.get("best_eval_loss"),
                   "created_at": status.get("created_at"), "started_at": status.get("started_at"),
                   "ended_at": status.get("ended_at"), "error": status.get("error")}
            print(json.dumps(row))
        return 0
    if not records:
        print("No runs yet. Start one with: python -m studio train --data DATASET")
        return 0
    print(f"{'run id':<18} {'status':<12} {'steps':>11} {'final loss':>10}  name")
    for record in records:
        status = record.status
        steps = f"{status.get('step') or 0}/{status.get('total_steps') or '?'}"
        loss = status.get("final_loss")
        print(f"{record.run_id:<18} {record.state:<12} {steps:>11} {(f'{loss:.4f}' if isinstance(loss, float) else '-'):>10}  {record.name}")
    return 0


def run_stop(args: argparse.Namespace) -> int:
    record = supervisor.stop(args.run_id, requester=CLI_OWNER, admin_password=_admin_password(),
                             force=args.force, timeout=args.timeout)
    print(f"{record.run_id}: {record.state} at step {record.status.get('step')}/{record.status.get('total_steps')}")
    return 0
