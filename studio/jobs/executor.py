"""The `hf-jobs` executor: a run's life on Hugging Face Jobs, seen through its ordinary run folder.

    submit(config, owner, flavor, max_cost, identity=None) -> RunRecord
    stop(record, force=False)      graceful: a stop file in the inputs repo (the job's worker saves and
                                   pushes); force, or a job still waiting for hardware: cancel_job
    resume(record, identity=None)  a new job that continues from the run's last checkpoint
    reconcile(record)              start a follower when an active run has none (after an app restart)
    before_delete(record)          cancel the job if it may still run; refuse to delete while that fails

Who may: a remote run is paid for by the account of the server's HF_TOKEN, so only an operator of this
studio (studio.access: everyone in private mode and at the command line; on a public studio the owners signed
in with Hugging Face or whoever gave the admin password) starts or resumes one (`require_operator`). Visitors,
signed in or not, never do: the studio would spend the operator's money and token, and a visitor's own
Hugging Face token is not taken (it would have to be kept for the whole life of the job: follow, stop,
resume and delete all need it, also after a restart). Stopping and deleting follow the studio's usual
ownership rules (supervisor.authorize): they end spending, never start it.

Submission order, so a failure never leaves a job running unseen: the run folder first (status "starting",
executor "hf-jobs"), then the inputs upload, the outputs repo, the job, and the follower. A failure before the
job exists marks the run failed with the reason; once the job exists it is recorded before anything else.
A remote run is never in the local training queue (studio.train.queue) and never makes this machine's trainer
busy (its "pid" stays empty): it goes to Hugging Face at once, whose own scheduling is its stage SCHEDULING.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

from studio import access, escape
from studio.errors import StudioError
from studio.jobs import estimate as estimate_module
from studio.jobs import flavors, follow, hub, package
from studio.jobs.remote import control_file
from studio.train import executors, store, supervisor
from studio.units import format_duration, format_usd

EXECUTOR = "hf-jobs"
FOLLOW_MODULE = "studio.jobs.follow"
# Environment the studio passes on to the job when it is set here (tuning knobs, never secrets).
PASSED_ENV = ("STUDIO_JOBS_CONTROL_POLL_SECONDS",)
FOLLOWER_RESTART_SECONDS = 5.0
_followers: dict[int, subprocess.Popen] = {}


# ---- who may ------------------------------------------------------------------------------
def require_operator(identity: access.Identity | None = None) -> access.Identity:
    """Raise access.AccessDenied unless the caller (default: studio.access.current()) is an operator.

    The one check for everything that spends the operator's Hugging Face account: starting or resuming a
    job, and asking the Hub for the flavour list with the server's token."""
    identity = identity or access.current()
    if not identity.operator:
        raise access.AccessDenied(
            "only the operator of this studio may send runs to Hugging Face Jobs: they are paid with the "
            "operator's account and token.",
            "Train on this machine instead (runs wait in the queue)."
            if access.is_public()
            else "Sign in as the operator.",
        )
    return identity


# ---- preflight ----------------------------------------------------------------------------
def flavor_list(refresh: bool = False):
    """The Jobs flavours (studio.jobs.flavors, cached), for an operator: asking the Hub uses the server's token."""
    require_operator()
    return flavors.list_flavors(refresh=refresh)


def remote_estimate(config, flavor_name: str | None, max_cost: float | None, refresh: bool = False):
    """(RemoteEstimate, FlavorList) for the form or the CLI (an operator's)."""
    require_operator()
    return _estimate(config, flavor_name, max_cost, refresh)


def _estimate(config, flavor_name: str | None, max_cost: float | None, refresh: bool = False):
    if not flavor_name:
        raise StudioError(
            "Pick a Hugging Face Jobs flavour (the hardware the job runs on).",
            "e.g. t4-small for models up to ~1B parameters, l4x1 or a10g-small for larger ones.",
        )
    listed = flavors.list_flavors(refresh=refresh)
    return estimate_module.estimate(config, listed.get(flavor_name), max_cost), listed


# ---- submit -------------------------------------------------------------------------------
def submit(config, owner: str, flavor: str | None, max_cost: float | None, identity: access.Identity | None = None):
    """Create the run folder, ship code and data, start the job and its follower; returns the RunRecord.

    Only for an operator (`require_operator`); remote code only as studio.access allows it. Refuses on the
    remote preflight's errors (cost above the cap, not enough memory on the flavour, ...); its warnings are the
    caller's to show (the Train tab shows them with the started run)."""
    identity = require_operator(identity)
    if config.trust_remote_code:
        access.require_remote_code_allowed(identity)
    config = supervisor.prepared(config, local=False)
    client = hub.api()
    result, _ = _estimate(config, flavor, max_cost)
    if result.blocking:
        first = result.report.errors[0]
        raise StudioError(f"Not sent to Hugging Face Jobs: {first.message}", first.hint or "Fix the settings first.")
    config = result.report.config or config  # with the preflight's changes so it fits the flavour's memory
    namespace = hub.namespace(client)
    record = store.create_run(config, owner, owner_role=access.OPERATOR)
    inputs_repo, outputs_repo = package.repo_names(namespace, record.run_id)
    job = {
        "executor": EXECUTOR,
        "flavor": result.flavor.name,
        "flavor_label": result.flavor.label,
        "namespace": namespace,
        "inputs_repo": inputs_repo,
        "outputs_repo": outputs_repo,
        "price_per_hour": result.flavor.price_per_hour,
        "max_cost_usd": max_cost,
        "timeout_seconds": result.timeout_seconds,
        "estimated_cost_usd": result.cost,
        "id": None,
        "url": None,
    }
    store.update_status(
        record.dir,
        status="starting",
        executor=EXECUTOR,
        job=job,
        started_at=store.now_iso(),
        job_phase="Uploading the studio's code and the dataset to a private repo.",
    )
    _log(record.dir, f"=== submit {store.now_iso()}: Hugging Face Jobs, flavour {result.flavor.name}, cap ${max_cost}")
    try:
        _launch(client, store.get_run(record.run_id), job, resume_checkpoint=None)
    except Exception as error:  # noqa: BLE001 - the run records why it never started
        problem = hub.explain(error, "send the run to Hugging Face Jobs")
        store.update_status(
            record.dir,
            status="failed",
            ended_at=store.now_iso(),
            job_phase=None,
            error={"message": problem.message, "hint": problem.hint},
        )
        store.append_event(record.dir, {"type": "status", "status": "failed", "message": problem.message})
        raise problem from error
    return store.get_run(record.run_id)


def _launch(client, record, job: dict, resume_checkpoint: Path | None) -> None:
    """Upload the inputs, make the outputs repo, run the job, record it, start the follower."""
    config = record.run_config()
    events, _ = store.read_events(record.dir, 0)
    first_seq = max([e.get("seq") for e in events if isinstance(e.get("seq"), int)] + [len(events)])
    status = store.read_status(record.dir)
    remote_job = {
        "run_id": record.run_id,
        "outputs_repo": job["outputs_repo"],
        "first_seq": first_seq,
        "status_seed": {"elapsed": status.get("elapsed")} if resume_checkpoint is not None else {},
    }
    revision = package.upload_inputs(client, job["inputs_repo"], config, remote_job, resume_checkpoint)
    try:
        client.create_repo(job["outputs_repo"], repo_type="model", private=True, exist_ok=True)
    except Exception as error:  # noqa: BLE001 - any Hub client failure becomes a plain message
        raise hub.explain(error, f"create the private outputs repo {job['outputs_repo']}") from error
    script, script_args = package.job_command(job["inputs_repo"], revision)
    env = {"PYTHONUNBUFFERED": "1", **{name: os.environ[name] for name in PASSED_ENV if os.environ.get(name)}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "run_uv_job is experimental": known, and pinned
            info = client.run_uv_job(
                script,
                script_args=script_args,
                python=package.PYTHON_VERSION,
                dependencies=package.pinned_requirements(),
                flavor=job["flavor"],
                timeout=job["timeout_seconds"],
                env=env,
                secrets={hub.TOKEN_ENV: client.token},
                namespace=job["namespace"],
                name=f"{package.REPO_PREFIX}{record.run_id}",
                labels={"fine-tune-studio-run": record.run_id},
            )
    except Exception as error:  # noqa: BLE001 - any Hub client failure becomes a plain message
        raise hub.explain(error, f"start a job on '{job['flavor']}'") from error
    if not (record.dir / store.STATUS_FILE).exists():  # deleted while the job was being started
        _cancel(client, {**job, "id": info.id}, "its run was deleted while it was being sent")
        raise StudioError(
            f"The run '{record.name}' was deleted while it was being sent; its job {info.id} was cancelled.",
            "Start the run again if you still want it.",
        )
    job = {**job, "id": info.id, "url": info.url, "inputs_revision": revision, "submitted_at": store.now_iso()}
    store.update_status(
        record.dir,
        job=job,
        job_stage="SCHEDULING",
        job_phase="Waiting for Hugging Face to assign the hardware.",
        job_contact=None,
        job_result=None,
        cancel_requested_at=None,
        cancel_reason=None,
        stop_requested_at=None,
    )
    _log(
        record.dir,
        f"=== job {info.id} submitted: {info.url} (inputs {job['inputs_repo']}@{revision[:12]}, "
        f"results to {job['outputs_repo']})",
    )
    try:
        start_follower(record.dir)
    except OSError as error:  # the job runs regardless; reconcile tries again on the next look at the run
        store.update_status(record.dir, job_contact=f"Could not start following the job here: {error}")


def _log(run_dir: Path, text: str) -> None:
    with open(Path(run_dir) / "log.txt", "a", encoding="utf-8") as handle:
        handle.write(hub.scrub(text) + "\n")


# ---- the follower -------------------------------------------------------------------------
def start_follower(run_dir: Path) -> int:
    """Start `python -m studio.jobs.follow RUN_DIR` detached (own session, output appended to log.txt)."""
    reap_followers()
    if follow.follower_running(run_dir):
        return 0
    record = store.load_record(Path(run_dir))
    # The follower speaks to the job with the server's token (only operators start remote runs); it trains nothing.
    env = {
        **supervisor.worker_env(record.run_config(), hub_token=True, remote_code=False),
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    with open(Path(run_dir) / "log.txt", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", FOLLOW_MODULE, str(run_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(run_dir),
            start_new_session=True,
            close_fds=True,
        )
    _followers[process.pid] = process
    store.update_status(run_dir, follower_started_at=time.time(), follower_pid=process.pid)
    return process.pid


def reap_followers() -> None:
    for pid, process in list(_followers.items()):
        if process.poll() is not None:
            _followers.pop(pid, None)


def reconcile(record):
    """An active remote run whose follower is gone gets a new one (it reattaches to the job)."""
    if record.state not in store.ACTIVE or not (record.status.get("job") or {}).get("id"):
        if record.state in store.ACTIVE and not (record.status.get("job") or {}).get("id"):
            _mark_lost_submission(record)
        return store.get_run(record.run_id)
    reap_followers()
    started = record.status.get("follower_started_at")
    if isinstance(started, (int, float)) and time.time() - started < FOLLOWER_RESTART_SECONDS:
        return record  # just started (or failed at once): do not start one per poll
    if not follow.follower_running(record.dir):
        try:
            hub.token()
            hub.api()
        except StudioError as error:
            store.update_status(record.dir, job_contact=f"Not following the job: {error.message} {error.hint}")
            return store.get_run(record.run_id)
        start_follower(record.dir)
    return store.get_run(record.run_id)


def _mark_lost_submission(record) -> None:
    """A run left "starting" without a job id: the app stopped during the upload, before any job existed."""
    written = (record.dir / store.STATUS_FILE).stat().st_mtime
    if time.time() - written < 600:  # a submission may still be uploading in this very process
        return
    store.update_status(
        record.dir,
        status="failed",
        ended_at=store.now_iso(),
        job_phase=None,
        error={
            "message": "The submission to Hugging Face Jobs did not finish (the app stopped "
            "while uploading); no job was started.",
            "hint": "Start it again.",
        },
    )


# ---- stop / resume / delete ---------------------------------------------------------------
def stop(record, force: bool = False, timeout: float | None = None):
    """Graceful: ask the job's runner (remote.control_file); the follower cancels after a timeout. Force: cancel now."""
    job = record.status.get("job") or {}
    if record.state not in store.ACTIVE:
        raise StudioError(f"The run '{record.name}' is not running (it is {record.state}).", "Nothing to stop.")
    if not job.get("id"):
        raise StudioError("The run is still being submitted.", "Wait a few seconds, then stop it.")
    client = hub.api()
    waiting = record.status.get("job_stage") == "SCHEDULING" and not record.status.get("step")
    if force or waiting:
        reason = "force-stopped from the studio" if force else "stopped before the hardware was assigned"
        _cancel(client, job, reason)
        store.update_status(
            record.dir,
            status="stopping",
            stop_requested_at=store.now_iso(),
            cancel_requested_at=store.now_iso(),
            cancel_reason=reason,
            forced=bool(force),
        )
    else:
        try:
            client.upload_file(
                path_or_fileobj=b"stop\n",
                path_in_repo=control_file(job["inputs_revision"]),
                repo_id=job["inputs_repo"],
                repo_type="dataset",
                commit_message="Stop requested from Fine-Tune Studio",
            )
        except Exception as error:  # noqa: BLE001 - cannot ask nicely: cancel instead of leaving it running
            _cancel(client, job, "the stop request could not be delivered")
            store.update_status(
                record.dir,
                status="stopping",
                stop_requested_at=store.now_iso(),
                cancel_requested_at=store.now_iso(),
                cancel_reason=(
                    f"the stop request could not be delivered ({hub.explain(error, 'ask the job to stop').message})"
                ),
            )
            return store.get_run(record.run_id)
        store.update_status(record.dir, status="stopping", stop_requested_at=store.now_iso())
    reconcile(store.get_run(record.run_id))
    return store.get_run(record.run_id)


def _cancel(client, job: dict, reason: str) -> None:
    try:
        client.cancel_job(job_id=job["id"], namespace=job["namespace"])
    except Exception as error:  # noqa: BLE001 - any Hub client failure becomes a plain message
        raise hub.explain(error, f"cancel job {job['id']} ({reason})") from error


def resume(record, identity: access.Identity | None = None):
    """A new job on the same flavour, continuing from the run's last checkpoint (downloaded with the results).
    Only for an operator, like submit (the caller has already checked ownership)."""
    require_operator(identity)
    last = store.last_checkpoint(record.dir)
    if last is None:
        raise StudioError(f"The run '{record.name}' has no checkpoint to resume from.", "Start it again instead.")
    previous = dict(record.status.get("job") or {})
    earlier_cost = spent_usd(record.status)
    # The previous job goes to the history now, not once the new one exists: while the upload runs, a look at
    # the run (reconcile) would otherwise follow the old job again, and its end would mark the run stopped.
    job = {**previous, "id": None, "url": None, "timeout_seconds": _timeout_left(record, previous, earlier_cost)}
    history = list(record.status.get("job_history") or [])
    if previous.get("id"):
        history.append({"id": previous["id"], "url": previous.get("url"), "flavor": previous.get("flavor")})
    client = hub.api()
    store.update_status(
        record.dir,
        status="starting",
        error=None,
        ended_at=None,
        job=job,
        job_history=history,
        earlier_jobs_cost_usd=earlier_cost,
        job_cost_usd=None,
        job_running_seconds=None,
        resumed_at=store.now_iso(),
        job_phase=f"Uploading {last.name} to continue from it.",
    )
    _log(record.dir, f"\n=== resume {store.now_iso()} from {last.name} on Hugging Face Jobs ({job.get('flavor')})")
    try:
        _launch(client, store.get_run(record.run_id), job, resume_checkpoint=last)
    except Exception as error:  # noqa: BLE001 - any Hub client failure becomes a plain message
        problem = hub.explain(error, "send the resumed run to Hugging Face Jobs")
        store.update_status(
            record.dir,
            status="failed",
            ended_at=store.now_iso(),
            job_phase=None,
            error={"message": problem.message, "hint": problem.hint},
        )
        raise problem from error
    return store.get_run(record.run_id)


def spent_usd(status: dict) -> float:
    """What the run's jobs cost so far: the earlier jobs (a resumed run has several) and the current one."""
    return round(
        sum(
            value
            for value in (status.get("earlier_jobs_cost_usd"), status.get("job_cost_usd"))
            if isinstance(value, (int, float))
        ),
        4,
    )


def _timeout_left(record, job: dict, earlier_cost: float) -> int | None:
    """The cap covers the whole run, not each job: a resumed job gets the time the rest of the cap buys."""
    cap, price = job.get("max_cost_usd"), job.get("price_per_hour")
    if not isinstance(cap, (int, float)) or not isinstance(price, (int, float)) or price <= 0:
        return job.get("timeout_seconds")
    seconds_left = int((cap - earlier_cost) / price * 3600)
    if seconds_left < estimate_module.SHORTEST_JOB_SECONDS:
        raise StudioError(
            f"Not resumed: the jobs of '{record.name}' have cost about {format_usd(earlier_cost)} of its "
            f"{format_usd(cap)} cap.",
            "Train again with a higher cost cap (the new run starts where you choose), or on this machine.",
        )
    return seconds_left


def job_may_run(record) -> bool:
    stage = record.status.get("job_stage")
    return bool((record.status.get("job") or {}).get("id")) and stage not in (
        "COMPLETED",
        "CANCELED",
        "ERROR",
        "DELETED",
    )


def last_checkpoint(record) -> str | None:
    """The last checkpoint the run's job pushed to its outputs repo (its files reach the run folder only when the
    job ends): what a resume would continue from meanwhile."""
    pushed = (record.status or {}).get("job_last_upload")
    return Path(str(pushed)).name if pushed else None


def before_delete(record) -> None:
    """Cancel the job unless it has certainly ended; refuse (raise) when that cannot be confirmed."""
    import signal

    job = record.status.get("job") or {}
    if record.state in store.ACTIVE and not job.get("id"):
        raise StudioError(
            f"Not deleted: the run '{record.name}' is still being sent to Hugging Face Jobs, and its job may "
            "start any moment.",
            "Wait until it shows its job (a few seconds), then delete it; the studio cancels the job then.",
        )
    if job.get("id") and (record.state in store.ACTIVE or job_may_run(record)):
        client = hub.api()
        try:
            info = client.inspect_job(job_id=job["id"], namespace=job["namespace"])
            stage = str(getattr(info.status.stage, "value", info.status.stage))
        except Exception as error:  # noqa: BLE001 - any Hub client failure becomes a plain message
            raise StudioError(
                f"Not deleted: the studio could not check whether job {job['id']} still runs "
                f"({hub.explain(error, 'inspect the job').message}).",
                "Try again when Hugging Face is reachable, or cancel the job on its page first.",
            ) from error
        if stage not in ("COMPLETED", "CANCELED", "ERROR", "DELETED"):
            try:
                _cancel(client, job, "its run was deleted")
            except StudioError as error:
                raise StudioError(
                    f"Not deleted: {error.message}", "Cancel the job on its Hugging Face page, then delete the run."
                ) from error
    pid = record.status.get("follower_pid")
    if pid:
        if supervisor.pid_alive(pid, record.dir):
            try:
                os.killpg(os.getpgid(int(pid)), signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass


# ---- what the Train tab shows -------------------------------------------------------------
def stop_timeout() -> float:
    return follow.stop_timeout()


def describe(status: dict, full: bool = True) -> str:
    """One Markdown paragraph about the job: where, which, its stage, cost so far against the cap, metrics.
    Without `full` (a public studio's visitor looking at a shared run) only the flavour and the stage: the
    job, its cost and the operator's repos are the operator's business."""
    job = status.get("job") or {}
    parts = [f"☁ **Hugging Face Jobs** · {escape.md_inline(job.get('flavor_label') or job.get('flavor') or '?')}"]
    if job.get("id") and full:
        shown_id = escape.md_inline(job["id"])
        parts.append(f"job [{shown_id}]({job['url']})" if _is_web_link(job.get("url")) else f"job {shown_id}")
    if status.get("job_stage"):
        parts.append(
            f"stage {escape.md_inline(status['job_stage'])}"
            + (f" ({escape.md_inline(status['job_message'])})" if status.get("job_message") else "")
        )
    if not full:
        return " · ".join(parts)
    cost, cap = status.get("job_cost_usd"), job.get("max_cost_usd")
    earlier = status.get("earlier_jobs_cost_usd")
    if isinstance(cost, (int, float)) or earlier:
        running = format_duration(status.get("job_running_seconds"))
        so_far = "cost so far" if status.get("status") in store.ACTIVE else "cost"
        this_job = f"{running} at {format_usd(job.get('price_per_hour') or 0)}/h"
        if earlier:
            this_job += f" in this job, {format_usd(earlier)} in the run's earlier jobs"
        parts.append(
            f"{so_far} ≈ {format_usd(spent_usd(status))} ({this_job}; the bill is Hugging Face's)"
            + (f" of a {format_usd(cap)} cap" if isinstance(cap, (int, float)) else "")
        )
    elif isinstance(cap, (int, float)):
        parts.append(
            f"cap {format_usd(cap)}"
            + (
                f", estimated {format_usd(job['estimated_cost_usd'])}"
                if isinstance(job.get("estimated_cost_usd"), (int, float))
                else ""
            )
        )
    lines = [" · ".join(parts)]
    metrics = status.get("job_metrics") or {}
    if status.get("status") in store.ACTIVE and metrics:
        facts = []
        if metrics.get("gpu_percent") is not None:
            facts.append(
                f"GPU {metrics['gpu_percent']:.0f} %, {metrics.get('gpu_used_gb') or 0:.1f} of "
                f"{metrics.get('gpu_total_gb') or 0:.0f} GB"
            )
        if metrics.get("cpu_percent") is not None:
            facts.append(f"CPU {metrics['cpu_percent']:.0f} %")
        if metrics.get("ram_used_gb") is not None:
            facts.append(f"RAM {metrics['ram_used_gb']:.1f} GB")
        if facts:
            lines.append("Job machine: " + " · ".join(facts))
    if status.get("job_contact"):
        lines.append(f"⚠ {escape.md_inline(status['job_contact'])}")
    if job.get("outputs_repo"):
        lines.append(
            f"Checkpoints and the adapter are pushed to the private repo {escape.md_code(job['outputs_repo'])}"
            + (f" (last: {escape.md_inline(status['job_last_upload'])})" if status.get("job_last_upload") else "")
            + "."
        )
    return "\n\n".join(lines)


def _is_web_link(url) -> bool:
    """A job page link as the Hub returns it (http or https, no spaces or brackets to break the Markdown)."""
    return isinstance(url, str) and re.fullmatch(r"https?://[^\s<>()]+", url) is not None


executors.register(executors.HF_JOBS, sys.modules[__name__])  # supervisor and Train tab find remote runs' manager
