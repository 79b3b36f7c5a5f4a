"""A chat file to a saved dataset in one call: the Data tab's pipeline (lint, refuse while it has errors, clean,
split, token statistics, save) for callers without the tab — the Train tab's quick upload and the command line.

    lint_clean_and_count(path, seed, model, max_length) -> (report, CleanResult, manifest stats)   nothing saved
    save_file(path, seed, model, max_length, owner) -> the new dataset folder (data.store writes it)

One pipeline, so a file trained from the Train tab, from `python -m studio train --data file.jsonl` or saved in
the Data tab gets the same rules, the same validation split and the same statistics."""

from __future__ import annotations

import sys
from pathlib import Path

from studio import paths
from studio.data import clean, lint, stats, store
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
