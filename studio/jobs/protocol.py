"""The line protocol between a run inside a Hugging Face Job and the studio that follows it.

The job's only channel back is its log (stdout, read with `HfApi.fetch_job_logs`). The runner inside the
job (studio.jobs.remote) prints everything the studio needs as single lines

    @@fine-tune-studio {"kind": ..., ...}

one JSON object after a fixed prefix, so they stand out from the worker's own log lines. Kinds:

- "event":  {"seq": N, "event": {...}}   one line of the run's events.jsonl, numbered for de-duplication
- "status": {"status": {...}}            the changed fields of the run's status.json
- "phase":  {"phase": "...", "message": "..."}  what the job is doing before/after training
- "upload": {"path": "checkpoints/checkpoint-N", "commit": SHA}   pushed to the outputs repo
- "final":  {"status": {...}, "commit": SHA | None}  the run ended; the outputs repo holds its files at SHA

`seq` continues the run's local numbering (the studio tells the job where to start), so a log replayed after
a reconnect or an app restart never appends an event twice. Anything that is not a protocol line is plain
log text. Lines are kept short (status carries only the fields that changed): the log service's line length
limit is not documented.
"""

from __future__ import annotations

import json
import math
from typing import Any

PREFIX = "@@fine-tune-studio "
KINDS = ("event", "status", "phase", "upload", "final")

# status.json fields that describe the training and travel from the job to the studio. Fields about the
# local bookkeeping (pid, owner, timestamps of the local run folder, stop requests) stay local.
RELAYED_STATUS_FIELDS = (
    "status",
    "step",
    "total_steps",
    "elapsed",
    "error",
    "notes",
    "facts",
    "best_eval_loss",
    "best_checkpoint",
    "last_checkpoint",
    "final_loss",
    "train_tokens",
    "train_runtime",
    "train_seconds",
    "tokens_per_s",
    "adapter",
    "diverged",
    "resumed_from",
    "gpus",
    "forced",
)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become None (the studio's events never carry them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def encode(kind: str, **payload: Any) -> str:
    """One protocol line (no newline)."""
    if kind not in KINDS:
        raise ValueError(f"unknown telemetry kind {kind!r}")
    return PREFIX + json.dumps({"kind": kind, **_clean(payload)}, separators=(",", ":"), default=str, allow_nan=False)


def decode(line: str) -> dict[str, Any] | None:
    """The message carried by a log line, or None for plain log text (or a damaged protocol line)."""
    at = line.find(PREFIX)
    if at < 0:
        return None
    try:
        message = json.loads(line[at + len(PREFIX) :].strip())
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("kind") not in KINDS:
        return None
    return message


def relayed_status(status: dict[str, Any]) -> dict[str, Any]:
    """The part of a status.json that travels from the job to the studio."""
    return {key: status[key] for key in RELAYED_STATUS_FIELDS if key in status}
