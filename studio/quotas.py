"""What a visitor of a public studio may keep: datasets, runs and disk (the limits are access.quota's settings).

Above both stores (it counts a visitor's datasets and runs), so studio.access stays below them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from studio import access, paths
from studio.data import store as data_store
from studio.train import store as run_store


def folder_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def visitors_bytes() -> int:
    """What all visitors keep together (everything not the operator's, the command line's or the local user's)."""
    mine = (access.LOCAL_OWNER, access.CLI_OWNER, "")
    datasets = [m for m in data_store.list_datasets() if str(m.get("owner") or "") not in mine]
    runs = [r for r in run_store.list_runs() if r.owner not in mine and r.status.get("owner_role") != access.OPERATOR]
    return sum(folder_bytes(Path(m["path"])) for m in datasets) + sum(folder_bytes(r.dir) for r in runs)


def usage(identity: access.Identity) -> dict[str, int]:
    """What this visitor keeps: datasets, runs, runs queued or active, bytes on disk."""
    datasets = [m for m in data_store.list_datasets() if access.owns(identity, m)]
    runs = [r for r in run_store.list_runs() if access.owns(identity, r)]
    active = [r for r in runs if r.state in ("queued",) + run_store.ACTIVE]
    used = sum(folder_bytes(Path(m["path"])) for m in datasets) + sum(folder_bytes(r.dir) for r in runs)
    return {"datasets": len(datasets), "runs": len(runs), "active_runs": len(active), "bytes": used}


def check_quota(identity: access.Identity, kind: str, extra_bytes: int = 0) -> None:
    """Refuse a new dataset ("datasets"), run ("runs") or big write ("bytes") past the visitor's quota.
    Operators and private mode have none."""
    if not access.settings().public or identity.operator:
        return
    used = usage(identity)
    limit_mb = access.quota("STUDIO_QUOTA_MB")
    if kind == "datasets" and used["datasets"] >= access.quota("STUDIO_QUOTA_DATASETS"):
        raise access.AccessDenied(
            f"you already keep {used['datasets']} datasets, the most a visitor may keep here.",
            "Train on one you have, or ask the operator for more room (STUDIO_QUOTA_DATASETS).",
        )
    if kind == "runs":
        if used["active_runs"] >= access.quota("STUDIO_QUOTA_ACTIVE_RUNS"):
            raise access.AccessDenied(
                f"you already have {used['active_runs']} runs queued or training, the most a visitor may have at once.",
                "Wait for one to finish, or cancel one.",
            )
        if used["runs"] >= access.quota("STUDIO_QUOTA_RUNS"):
            raise access.AccessDenied(
                f"you already keep {used['runs']} runs, the most a visitor may keep here.",
                "Delete a run you no longer need, then start again.",
            )
    free_mb = shutil.disk_usage(paths.studio_home()).free / 1024**2
    if free_mb - extra_bytes / 1024**2 < access.quota("STUDIO_MIN_FREE_MB"):
        raise access.AccessDenied(
            f"the studio's disk is nearly full ({free_mb:,.0f} MB free).",
            "Try again later, or ask the operator to make room (STUDIO_MIN_FREE_MB).",
        )
    everyone_mb = access.quota("STUDIO_QUOTA_ALL_VISITORS_MB")
    if visitors_bytes() + extra_bytes > everyone_mb * 1024**2:
        raise access.AccessDenied(
            f"visitors together already keep the most this studio allows ({everyone_mb:,} MB).",
            "Delete runs or datasets you no longer need, or try again later (STUDIO_QUOTA_ALL_VISITORS_MB).",
        )
    if used["bytes"] + extra_bytes > limit_mb * 1024**2:
        raise access.AccessDenied(
            f"this would take your disk use past {limit_mb:,} MB, a visitor's share here "
            f"(you use {used['bytes'] / 1024**2:,.0f} MB).",
            "Delete runs or datasets you no longer need (merged models are the largest).",
        )
