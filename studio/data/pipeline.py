"""A chat file to a saved dataset in one call: the Data tab's pipeline (lint, refuse while it has errors, clean,
split, token statistics, save) for callers without the tab — the Train tab's quick upload and the command line.

    lint_clean_and_count(path, seed, model, max_length) -> (report, CleanResult, manifest stats)   nothing saved
    save_file(path, seed, model, max_length, owner) -> the new dataset folder (data.store writes it)
    save_checked(Checked(...), fraction, seed, name, owner) -> (folder, manifest): the Data tab's Fix and split of
        a report it checked (column mapping and dismissals applied), with report.json and report.md

One pipeline, so a file trained from the Train tab, from `python -m studio train --data file.jsonl` or saved in
the Data tab gets the same rules, the same validation split and the same statistics."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio import escape, paths
from studio.data import clean, dismissals, lint, stats, store
from studio.data.mapping import ColumnMapping
from studio.errors import StudioError

SHOWN_ERRORS = 5


def lint_clean_and_count(path: Path, seed: int = 42, model: str | None = None, max_length: int | None = None):
    """Lint (refused while any row has an error), clean, split and count tokens, in memory."""
    path = Path(path)
    report = lint.lint_file(
        path, paths.safe_name(path.name, default="upload"), tokenizer=model, max_length=max_length, model=model
    )  # tokens counted with the run's model
    errors = [finding for finding in report.findings if finding.severity == "E"]
    if errors:
        shown = "; ".join(
            f"row {f.row}: {f.message} [{f.rule}]" if f.row is not None else f"file: {f.message} [{f.rule}]"
            for f in errors[:SHOWN_ERRORS]
        )
        more = f" (and {len(errors) - SHOWN_ERRORS} more)" if len(errors) > SHOWN_ERRORS else ""
        raise StudioError(
            f"Not used: {len(errors)} error finding(s) — {shown}{more}.",
            "Open the file in the Data tab (or run `python -m studio lint FILE`): it lists every problem, "
            "fixes many automatically and saves a clean dataset for training.",
        )
    result = clean.clean_and_split(report, seed=seed)
    if not result.train:
        raise StudioError(
            f"'{paths.safe_name(path.name, default='upload')}' has no usable rows.",
            'Upload a file with one {"messages": [...]} object per line.',
        )
    try:  # the manifest's token statistics, as the Data tab writes them
        manifest_stats = stats.manifest_stats(
            stats.compute_stats(report, max_length=max_length, model=model, row_numbers=result.train_rows)
        )
    except Exception as error:  # noqa: BLE001 - statistics are informative; the dataset is still valid without them
        print(f"note: no token statistics for the manifest ({type(error).__name__}: {error})", file=sys.stderr)
        manifest_stats = {}
    return report, result, manifest_stats


def save_file(
    path: Path, seed: int = 42, model: str | None = None, max_length: int | None = None, owner: str = ""
) -> Path:
    """The whole pipeline on a file, saved as a new dataset folder (never overwrites anything)."""
    path = Path(path)
    report, result, manifest_stats = lint_clean_and_count(path, seed, model, max_length)
    return store.save_dataset(
        result,
        report,
        manifest_stats,
        source_name=paths.safe_name(path.name, default="upload"),
        source_sha256=store.sha256_file(path),
        owner=owner,
    )


def verdict_of(report) -> str:
    """'ready' | 'warnings' | 'blocked' from a lint report's verdict."""
    return {"blocked": "blocked", "ready with warnings": "warnings"}.get(report.verdict, "ready")


@dataclass(frozen=True)
class Checked:
    """What the Data tab checked: the report (column mapping and dismissals applied), its statistics, the source
    (a dict: path, name, mapping, dismissals, hub_id) and the settings it was checked with."""

    report: Any
    stats: dict
    source: dict
    model: str | None = None
    max_length: int | None = None
    batch_size: int | None = None
    context: int | None = None
    dismissed: list | None = None  # [(finding, dismissal)] the dismissals removed from the report


def save_checked(
    checked: Checked,
    validation_fraction: float = clean.DEFAULT_VALIDATION_FRACTION,
    seed: int = 0,
    name: str | None = None,
    owner: str = "",
    progress: Callable[[float, str], None] | None = None,
) -> tuple[Path, dict]:
    """Apply the safe fixes, split, count the training split's tokens and save the dataset folder with the
    check's report (JSON and Markdown). Returns (folder, manifest)."""
    report, source = checked.report, checked.source
    if progress:
        progress(0.1, "Applying fixes")
    result = clean.clean_and_split(
        report,
        validation_fraction=validation_fraction,
        seed=seed,
        progress=(lambda fraction, desc="": progress(fraction, desc)) if progress else None,
    )
    if progress:
        progress(0.7, "Computing statistics of the training split")
    train_stats = stats.compute_stats(
        report,
        max_length=checked.max_length,
        batch_size=checked.batch_size,
        model=checked.model,
        context=checked.context,
        row_numbers=result.train_rows,
    )
    manifest_stats = stats.manifest_stats(train_stats)
    manifest_stats["validation_rows"] = len(result.validation)
    if progress:
        progress(0.85, "Saving")
    folder = store.save_dataset(
        result,
        report,
        manifest_stats,
        source_name=source.get("name", ""),
        source_sha256=store.sha256_file(source["path"]),
        name=name,
        report_json=_report_json(checked),
        report_markdown=_report_markdown(checked),
        column_mapping=source.get("mapping"),
        source_hub_id=source.get("hub_id"),
        dismissals=source.get("dismissals") or [],
        owner=owner,
    )
    return folder, store.read_manifest(folder)


def _report_json(checked: Checked) -> str:
    report, source = checked.report, checked.source
    data = {
        **report.to_json(),
        "file": source.get("name") or report.name,
        "dismissals": source.get("dismissals") or [],
        "dismissed_findings": [
            {**finding.to_dict(), "reason": dismissal["reason"]} for finding, dismissal in checked.dismissed or []
        ],
    }
    if source.get("mapping"):
        data["column_mapping"] = source["mapping"]
    return json.dumps(data, ensure_ascii=False, indent=2, default=str)


def _report_markdown(checked: Checked) -> str:
    report, source = checked.report, checked.source
    text = stats.report_markdown(report, checked.stats, source.get("name", ""), verdict_of(report))
    text += "\n" + dismissals.markdown(source.get("dismissals") or [], checked.dismissed)
    if source.get("mapping"):
        text += (
            "\n## Column mapping\n\nRows were built from the file's columns: "
            f"{escape.md_inline(ColumnMapping.from_dict(source['mapping']).describe())}.\n"
        )
    return text
