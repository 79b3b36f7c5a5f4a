"""Where a run runs: the executor choice, and the dispatch from the supervisor to a remote executor.

    local    this machine: the worker subprocess started by studio.train.supervisor (accelerate launch on
             more than one GPU)
    hf-jobs  Hugging Face Jobs: the same RunConfig and the same worker code in a job (studio.jobs)

Every executor writes the same run folder, so the Train tab, the CLI, history, stop, restart and Compare do
not care where a run ran. A run's executor is status.json "executor" (absent = local). The supervisor asks
`remote_for(record)` at the start of stop / resume / reconcile / delete and hands remote runs to it.

A remote executor registers itself here when its module is imported (`register`), so training never imports
the packages built on top of it (studio.jobs imports studio.train, not the other way round). The app and the
command line import studio.jobs.executor at start-up, which registers "hf-jobs".
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.errors import StudioError

LOCAL = "local"
HF_JOBS = "hf-jobs"
EXECUTORS = (LOCAL, HF_JOBS)


@dataclass
class Choice:
    executor: str = LOCAL
    flavor: str | None = None  # a Jobs hardware flavour (hf-jobs only)
    max_cost: float | None = None  # USD cap (hf-jobs only)

    def check(self) -> Choice:
        if self.executor not in EXECUTORS:
            raise StudioError(f"'{self.executor}' is not an executor.", f"Use one of: {', '.join(EXECUTORS)}.")
        return self

    def cli_args(self) -> list[str]:
        """The flags that select this executor in `python -m studio train` (none for local)."""
        if self.executor == LOCAL:
            return []
        args = ["--executor", self.executor]
        if self.flavor:
            args += ["--flavor", self.flavor]
        if self.max_cost is not None:
            args += ["--max-cost", f"{self.max_cost:g}"]
        return args


def kind(record) -> str:
    return (record.status or {}).get("executor") or LOCAL


_remote: dict[str, object] = {}


def register(name: str, manager) -> None:
    """A remote executor: an object (or module) with submit, reconcile, stop, resume, before_delete, describe,
    stop_timeout and last_checkpoint."""
    if name not in EXECUTORS or name == LOCAL:
        raise ValueError(f"unknown remote executor {name!r}")
    _remote[name] = manager


def manager(name: str):
    manager = _remote.get(name)
    if manager is None:
        raise StudioError(
            f"Runs on '{name}' are managed by a part of the studio that is not loaded here.",
            "Use the studio's app or `python -m studio`, which load every executor.",
        )
    return manager


def remote_for(record):
    """The executor that manages a remote run, or None for a local one."""
    name = kind(record)
    return None if name == LOCAL else manager(name)
