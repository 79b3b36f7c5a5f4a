"""Saved datasets on disk: one folder per dataset under paths.datasets_dir().

    <datasets_dir>/<id>/
        train.jsonl        one {"messages": [...]} per line (canonical roles, string content)
        validation.jsonl   same shape
        manifest.json      {"id", "name", "owner", "source_name", "source_sha256", ["source_hub_id",]
                            "format", "created_at", "counts": {"train", "validation", "rejected"},
                            "findings_summary": {rule: count},
                            "stats": {"model", "max_length", "rows", "tokens": {...}, "suggested_max_length"},
                            "column_mapping": {"user", "assistant", "context": [...], "system"} | null
                                (how the rows were built from the file's columns, studio.data.mapping),
                            "dismissals": [{"rule", "row" | null, "reason", "created_at"}]
                                (lint findings the owner dismissed, studio.data.dismissals)}
        rejected.jsonl     {"row", "raw", "reasons": [...]} for every row left out
        report.json        the full lint report
        report.md          the same for people

The folder is written under a temporary name and renamed into place at the end, so a reader
never sees half a dataset, and a failed save leaves nothing behind. Ids are random (never the
uploaded name unsanitised); saving never touches another dataset's folder.

"owner" is the id of the visitor (or "local"/"cli") who saved it: in public mode a visitor lists and
trains on their own datasets only (studio.access). `find()` turns what a form sends (an id, or a folder
path in private mode) into a folder the caller may use; manifests without an owner (older versions)
belong to the operator.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from studio import access, paths
from studio.errors import StudioError

MANIFEST = "manifest.json"
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"

SAMPLE_DESCRIPTIONS = {
    "assistant_style": "Clean chat dataset: a pirate-flavoured assistant that always opens with “Ahoy!” and signs "
    "off “— Captain Byte”. Easy for a small model to pick up.",
    "assistant_style_messy": "The same dataset with realistic flaws (broken lines, duplicates, empty answers, "
    "secrets, mixed formats …): shows what the linter catches.",
}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _jsonl(records) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def _utf8_safe(text: str) -> str:
    """Lone surrogates (from a broken upload) cannot be written as UTF-8: write them as \\udXXX escapes,
    which is also what JSON uses for them, so rejected rows are kept as found, not lost."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _write(path: Path, text: str) -> None:
    paths.atomic_write_text(path, _utf8_safe(text))


def new_dataset_id(name: str) -> str:
    """Readable and unguessable: '<sanitised name>-<random>'."""
    slug = paths.safe_name(Path(str(name)).stem if name else "dataset", default="dataset", max_length=40)
    return f"{slug}-{paths.new_id()}"


def save_dataset(
    clean,
    report,
    stats: dict[str, Any],
    source_name: str,
    source_sha256: str,
    name: str | None = None,
    report_json: str | None = None,
    report_markdown: str | None = None,
    column_mapping: dict[str, Any] | None = None,
    dismissals: list[dict[str, Any]] | None = None,
    source_hub_id: str | None = None,
    owner: str = "",
) -> Path:
    """Write a new dataset folder and return its path. Never overwrites anything.

    clean: a clean.CleanResult; report: the LintReport (its findings are the open ones: dismissed
    findings are listed in `dismissals`, not counted); stats: the manifest "stats" dict.
    """
    root = paths.datasets_dir()
    display_name = (name or Path(str(source_name or "dataset")).stem or "dataset").strip()[:80]
    dataset_id = new_dataset_id(display_name)
    final = root / dataset_id
    staging = root / f".staging-{dataset_id}"
    findings_summary: dict[str, int] = {}
    for finding in report.findings:
        findings_summary[finding.rule] = findings_summary.get(finding.rule, 0) + 1
    manifest = {
        "id": dataset_id,
        "name": display_name,
        "owner": owner or _default_owner(),
        "source_name": str(source_name or ""),
        "source_sha256": source_sha256,
        **({"source_hub_id": source_hub_id} if source_hub_id else {}),  # a Hub dataset: named in the model card
        "format": getattr(report, "format", None),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "counts": clean.counts,
        "findings_summary": dict(sorted(findings_summary.items())),
        "stats": stats,
        "split": {"validation_fraction": clean.validation_fraction, "seed": clean.seed, "leaks": len(clean.leaks)},
        "fixes": clean.fixes,
        "column_mapping": column_mapping or None,
        "dismissals": list(dismissals or []),
    }
    try:
        staging.mkdir(parents=True, exist_ok=False)
        _write(staging / "train.jsonl", _jsonl(clean.train))
        _write(staging / "validation.jsonl", _jsonl(clean.validation))
        _write(staging / "rejected.jsonl", _jsonl(clean.rejected))
        _write(staging / "report.json", report_json if report_json is not None else _report_json(report))
        _write(staging / "report.md", report_markdown or "")
        _write(staging / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        os.rename(staging, final)  # atomic; `final` is new (random id), so nothing is replaced
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        hint = (
            "Free some disk space and try again."
            if getattr(error, "errno", None) == 28
            else f"Check that {root} is writable (set STUDIO_HOME to choose another folder)."
        )
        raise StudioError(f"Could not save the dataset: {error.strerror or error}.", hint) from error
    return final


def _default_owner() -> str:
    return access.current().user_id or access.LOCAL_OWNER


def dataset_value(manifest: dict[str, Any]) -> str:
    """What a dataset dropdown holds for this dataset: its folder path in private mode (as the CLI and older
    versions use), its id in public mode (no server path in the page)."""
    return str(manifest.get("id") or Path(manifest["path"]).name) if access.is_public() else manifest["path"]


def find(value: str | os.PathLike | None) -> Path:
    """The folder of the dataset a form names (an id, or a path: any in private mode, only inside the datasets
    folder in public mode), checked with the caller's rights. Raises StudioError / AccessDenied."""
    text = str(value or "").strip()
    if not text:
        raise StudioError("No dataset chosen.", "Pick a saved dataset, or upload a file.")
    identity = access.current()
    root = paths.datasets_dir()
    if access.PATH_LIKE.search(text):
        if access.is_public():
            folder = access.inside(text, root)
            if folder is None or folder.parent != root.resolve():
                raise access.not_found(Path(text).name or text, kind="dataset")
        else:
            folder = Path(text).expanduser()
    else:
        folder = root / paths.safe_name(text, default="missing")
    manifest = read_manifest(folder)
    if manifest is None:
        if access.is_public():
            raise access.not_found(Path(text).name, kind="dataset")
        raise StudioError(f"'{text}' is not a saved dataset.", "Prepare and save it in the Data tab first.")
    if access.is_public() and not (identity.operator or access.owns(identity, manifest)):
        raise access.not_found(manifest.get("id") or folder.name, kind="dataset")
    return folder


def list_visible() -> list[dict[str, Any]]:
    """The datasets the caller may pick: all of them in private mode; in public mode their own (all for the
    operator)."""
    identity = access.current()
    items = list_datasets()
    if not access.is_public() or identity.operator:
        return items
    return [manifest for manifest in items if access.owns(identity, manifest)]


def _report_json(report) -> str:
    to_json = getattr(report, "to_json", None)
    if callable(to_json):
        value = to_json()
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2)
    return json.dumps({"findings": [f.to_dict() for f in report.findings]}, ensure_ascii=False, indent=2)


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest with "path" added, or None when the folder is not a complete dataset."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not (folder / "train.jsonl").is_file():
        return None
    manifest["path"] = str(folder)
    return manifest


def has_train_split(folder: str | os.PathLike) -> bool:
    return (Path(folder) / "train.jsonl").is_file()


def train_rows(folder: str | os.PathLike) -> int | None:
    """Rows of a saved dataset's training split: its manifest's count, else the lines of train.jsonl."""
    counts = (read_manifest(folder) or {}).get("counts") or {}
    if isinstance(counts.get("train"), int):
        return counts["train"]
    try:
        with open(Path(folder) / "train.jsonl", "rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError:
        return None


def list_datasets() -> list[dict[str, Any]]:
    """Every saved dataset's manifest (with "path"), newest first. Broken folders are skipped."""
    root = paths.datasets_dir()
    items = []
    for folder in root.iterdir():
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        manifest = read_manifest(folder)
        if manifest is not None:
            items.append(manifest)
    return sorted(items, key=lambda m: (str(m.get("created_at", "")), m["path"]), reverse=True)


def carried_over(source_sha256: str) -> dict[str, Any]:
    """The column mapping and dismissals of the newest saved dataset made from the same file (same bytes),
    so checking a file again keeps the owner's decisions: {"column_mapping", "dismissals", "dataset"} or {}.
    Only the caller's own datasets count (list_visible): another visitor's decisions and reasons stay theirs."""
    for manifest in list_visible():
        if (
            source_sha256
            and manifest.get("source_sha256") == source_sha256
            and (manifest.get("column_mapping") or manifest.get("dismissals"))
        ):
            return {
                "column_mapping": manifest.get("column_mapping"),
                "dismissals": manifest.get("dismissals") or [],
                "dataset": manifest.get("name") or manifest.get("id"),
            }
    return {}


@dataclass
class SavedDataset:
    path: Path
    manifest: dict[str, Any]
    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError as error:
                raise StudioError(
                    f"{path.name} in {path.parent.name} is damaged (line {number} is not JSON).",
                    "Save the dataset again from the Data tab.",
                ) from error
    return records


def load_dataset_folder(path: str | os.PathLike) -> SavedDataset:
    """Read a saved dataset folder (manifest + both splits). Raises StudioError if it is not one."""
    folder = Path(path)
    manifest = read_manifest(folder)
    if manifest is None:
        raise StudioError(
            f"{folder} is not a saved dataset (no manifest.json and train.jsonl).",
            "Pick a dataset saved by the Data tab (Fix and split).",
        )
    validation_path = folder / "validation.jsonl"
    validation = _read_jsonl(validation_path) if validation_path.is_file() else []
    return SavedDataset(
        path=folder, manifest=manifest, train=_read_jsonl(folder / "train.jsonl"), validation=validation
    )


def bundled_samples() -> list[dict[str, Any]]:
    """The sample datasets shipped in studio/data/samples/: [{"name", "path", "rows", "description"}]."""
    items = []
    if SAMPLES_DIR.is_dir():
        for path in sorted(SAMPLES_DIR.glob("*.jsonl")):
            try:
                with open(path, "rb") as handle:
                    rows = sum(1 for line in handle if line.strip())
            except OSError:
                continue
            items.append(
                {
                    "name": path.stem,
                    "path": str(path),
                    "rows": rows,
                    "description": SAMPLE_DESCRIPTIONS.get(path.stem, ""),
                }
            )
    # The clean sample first: it is the one to start with.
    return sorted(items, key=lambda item: (item["name"] != "assistant_style", item["name"]))
