"""The training queue: one trainer per machine, further runs wait in FIFO order — on disk, so it survives
an app restart.

A run waits when its status.json says {"status": "queued", "queue_key": <number>}; the queue order is the
order of queue_key (the time it was queued; moving a run to the front gives it a key below every other).
That is the only record of the queue: there is no second file to fall out of step with the runs, and a
run folder that is deleted simply leaves the queue. Runs created without a queue_key (the CLI's `train`,
older versions) are not in the queue.

This module only decides *which* run is next and *when* each waiting run may start; starting it is the
supervisor's job (whatever executes runs: a local process today, another executor later).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from studio.errors import StudioError
from studio.train import store
from studio.train.store import RunRecord


def is_waiting(record: RunRecord) -> bool:
    return record.state == "queued" and isinstance(record.status.get("queue_key"), (int, float))


def enqueue(record: RunRecord, estimated_seconds: float | None = None) -> RunRecord:
    """Put a new run at the back of the queue (with the preflight's estimate of its duration, for ETAs)."""
    store.update_status(
        record.dir,
        status="queued",
        queue_key=time.time(),
        queued_at=store.now_iso(),
        estimated_seconds=estimated_seconds if isinstance(estimated_seconds, (int, float)) else None,
    )
    return store.get_run(record.run_id)


def waiting() -> list[RunRecord]:
    """The waiting runs, first to start first."""
    runs = [record for record in store.list_runs() if is_waiting(record)]
    return sorted(runs, key=lambda record: (float(record.status["queue_key"]), record.status.get("created_at") or ""))


def leave(record: RunRecord) -> None:
    """The run is starting (or cancelled): it is no longer in the queue."""
    store.update_status(record.dir, queue_key=None)


def move_to_front(run_id: str) -> RunRecord:
    record = store.get_run(run_id)
    if not is_waiting(record):
        raise StudioError(
            f"The run '{record.name}' is not waiting in the queue (it is {record.state}).",
            "Only queued runs can be moved.",
        )
    keys = [float(other.status["queue_key"]) for other in waiting()]
    store.update_status(record.dir, queue_key=min(keys) - 1.0)
    return store.get_run(run_id)


def cancel(run_id: str) -> RunRecord:
    """Take a waiting run out of the queue. Its folder stays (with its config) until it is deleted."""
    record = store.get_run(run_id)
    if not is_waiting(record):
        raise StudioError(
            f"The run '{record.name}' is not waiting in the queue (it is {record.state}).", "Stop it instead."
        )
    store.update_status(
        record.dir,
        status="stopped",
        queue_key=None,
        ended_at=store.now_iso(),
        error={
            "message": "Cancelled while it waited in the queue; it never started.",
            "hint": "Start it again with 'Train again' when you want it.",
        },
    )
    return store.get_run(run_id)


@dataclass
class Place:
    run_id: str
    position: int  # 1 = next to start
    of: int
    starts_in: float | None  # seconds, None when unknown

    @property
    def start_text(self) -> str:
        if self.starts_in is None:
            return "start time not known yet"
        when = datetime.now(UTC) + timedelta(seconds=self.starts_in)
        return (
            f"starts at about {when.astimezone().strftime('%H:%M')} (a rough estimate from the preflight "
            "estimates of the runs ahead)"
        )


def places(current_eta: float | None, busy: bool) -> dict[str, Place]:
    """Each waiting run's position and estimated start: the active run's remaining time plus the estimated
    durations of the runs ahead (unknown as soon as one of those is unknown)."""
    queue = waiting()
    result: dict[str, Place] = {}
    ahead: float | None = current_eta if busy else 0.0
    for index, record in enumerate(queue, start=1):
        result[record.run_id] = Place(record.run_id, index, len(queue), ahead)
        estimate = record.status.get("estimated_seconds")
        if ahead is not None and isinstance(estimate, (int, float)):
            ahead = ahead + float(estimate)
        else:
            ahead = None
    return result
