"""Where a run runs: the executor choice, and the dispatch from the supervisor to a remote executor.

    local    this machine: the worker subprocess started by studio.train.supervisor (accelerate launch on
             more than one GPU)
    hf-jobs  Hugging Face Jobs: the same RunConfig and the same worker code in a job (studio.jobs)

Every executor writes the same run folder, so the Train tab, the CLI, history, stop, restart and Compare do
not care where a run ran. A run's executor is status.json "executor" (absent = local). The supervisor asks
`remote_for(record)` at the start of stop / resume / reconcile / delete and hands remote runs to it.
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

    def check(self) -> "Choice":
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


def remote_for(record):
    """The executor module that manages a remote run, or None for a local one."""
    if kind(record) == HF_JOBS:
        from studio.jobs import executor

        return executor
    return None


def launch(config, owner: str = "", choice: Choice | None = None, identity=None):
    """Start a run now with the chosen executor; returns its RunRecord (the command line's way: a local run
    is refused while the trainer is busy; the Train tab queues local runs with supervisor.submit).

    `identity` is the caller (studio.access; default: the current one, the operator at the command line):
    remote runs are for operators only."""
    from studio import access

    choice = (choice or Choice()).check()
    identity = identity or access.current()
    if choice.executor == LOCAL:
        from studio.train import supervisor

        return supervisor.launch(config, owner=owner, owner_role=identity.role)
    from studio.jobs import executor

    return executor.submit(config, owner, choice.flavor, choice.max_cost, identity=identity)
