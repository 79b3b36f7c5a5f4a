"""Dismissed lint findings: the dataset owner's "this finding is wrong for this data", always with a reason.

A dismissal is {"rule", "row" (None = every finding of that rule in this dataset), "reason", "created_at"}.
Dismissed findings leave the report's findings, so they no longer count in the verdict, no longer set
rows aside when the data is fixed and split (a dismissed error no longer blocks), and no longer show
as open findings; they are listed with their reasons in the lint report (report.md / report.json) and
kept in the dataset's manifest ("dismissals"), and the Compare report repeats them.

Errors that make a row untrainable (broken files, schema, roles, tool pairing, templates that cannot
render, rows with nothing to train on) cannot be dismissed: letting such a row through would crash
or silently corrupt training. Their warnings and notes can be.

    dismissal = make(findings, rule, reason, row=None)    # StudioError when it does not apply or is not allowed
    dismissals = add(dismissals, dismissal)               # replaces an earlier one for the same rule and row
    kept, dismissed = split(findings, dismissals)         # dismissed: [(finding, dismissal)]
    apply_to_report(report, dismissals, all_findings)     # report.findings = kept; returns dismissed
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from studio import escape
from studio.data.stats import compute_stats
from studio.errors import StudioError

MAX_REASON = 500
MAX_DISMISSALS = 500
# Error findings of these rules mean the row cannot be trained on as it is: fix it instead.
STRUCTURAL_PREFIXES = ("FILE-", "SCH-", "ROLE-", "TOOL-")
STRUCTURAL_RULES = {"TPL-NONE", "TPL-RENDER", "LEN-NO-TRAIN", "LEN-TRUNC", "ENC-SURROGATE"}


def is_structural(rule: str) -> bool:
    return rule in STRUCTURAL_RULES or rule.startswith(STRUCTURAL_PREFIXES)


def may_dismiss(finding) -> bool:
    return not (finding.severity == "E" and is_structural(finding.rule))


def matches(finding, dismissal: dict) -> bool:
    if finding.rule != dismissal.get("rule"):
        return False
    return dismissal.get("row") is None or finding.row == dismissal.get("row")


def make(findings: list, rule: str, reason: str, row: int | None = None) -> dict[str, Any]:
    """A checked dismissal of one finding (rule + row) or of every finding of `rule` (row None)."""
    rule = str(rule or "").strip()
    reason = " ".join(str(reason or "").split())
    if not rule:
        raise StudioError("Pick the finding to dismiss.", "Click it in the findings table, or choose its rule.")
    if not reason:
        raise StudioError(
            "Say why the finding does not apply.",
            "A reason is required: it is saved with the dataset and shown in its report.",
        )
    if len(reason) > MAX_REASON:
        raise StudioError(f"The reason is longer than {MAX_REASON} characters.", "Keep it to a sentence or two.")
    if row is not None:
        try:
            row = int(row)
        except (TypeError, ValueError):
            raise StudioError(
                "The row must be a number.", "Leave it empty to dismiss the rule for every row."
            ) from None
    targets = [f for f in findings if f.rule == rule and (row is None or f.row == row)]
    if not targets:
        where = f" in row {row}" if row is not None else ""
        raise StudioError(f"There is no {rule} finding{where} to dismiss.", "Click a finding in the table to pick it.")
    blocked = [f for f in targets if not may_dismiss(f)]
    if blocked:
        raise StudioError(
            f"{rule} errors cannot be dismissed: the row cannot be trained on as it is.",
            "Fix the row in the file, or let Fix and split set it aside.",
        )
    return {
        "rule": rule,
        "row": row,
        "reason": reason,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def add(dismissals: list[dict] | None, dismissal: dict) -> list[dict]:
    kept = [d for d in dismissals or [] if (d.get("rule"), d.get("row")) != (dismissal["rule"], dismissal["row"])]
    if len(kept) >= MAX_DISMISSALS:
        raise StudioError(
            f"This dataset already has {MAX_DISMISSALS} dismissals.",
            "Dismiss the whole rule instead of single findings.",
        )
    return kept + [dismissal]


def remove(dismissals: list[dict] | None, rule: str, row: int | None = None) -> list[dict]:
    return [d for d in dismissals or [] if (d.get("rule"), d.get("row")) != (rule, row)]


def clean(dismissals) -> list[dict]:
    """Dismissals from an untrusted source (a form, an old manifest): well-formed ones only."""
    out = []
    for item in dismissals or []:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("rule"), str)
            or not str(item.get("reason") or "").strip()
        ):
            continue
        row = item.get("row")
        if row is not None and not isinstance(row, int):
            continue
        out.append(
            {
                "rule": item["rule"],
                "row": row,
                "reason": str(item["reason"])[:MAX_REASON],
                "created_at": str(item.get("created_at") or ""),
            }
        )
    return out[:MAX_DISMISSALS]


def split(findings: list, dismissals: list[dict] | None) -> tuple[list, list[tuple[Any, dict]]]:
    """(open findings, [(dismissed finding, its dismissal)]). Structural errors are never dismissed."""
    kept, dismissed = [], []
    for finding in findings:
        match = next((d for d in dismissals or [] if matches(finding, d)), None) if may_dismiss(finding) else None
        if match is None:
            kept.append(finding)
        else:
            dismissed.append((finding, match))
    return kept, dismissed


def apply_to_report(report, dismissals: list[dict] | None, all_findings: list | None = None) -> list[tuple[Any, dict]]:
    """Set report.findings to the open findings of `all_findings` (default: the report's own) and return the dismissed.

    The report's verdict, counts and statistics follow: they are computed from report.findings."""
    all_findings = list(report.findings if all_findings is None else all_findings)
    kept, dismissed = split(all_findings, dismissals)
    report.findings = kept
    if dismissed:  # the statistics count the rows with errors: computed again from the open findings
        report.stats = compute_stats(report)
    return dismissed


def describe(dismissal: dict) -> str:
    where = f"row {dismissal['row']}" if dismissal.get("row") is not None else "every row"
    return f"{dismissal['rule']} ({where}): {dismissal['reason']}"


def markdown(dismissals: list[dict], dismissed: list[tuple[Any, dict]] | None = None) -> str:
    """The "Dismissed findings" section of a lint report."""
    if not dismissals:
        return ""
    counts: dict[tuple, int] = {}
    for _, dismissal in dismissed or []:
        key = (dismissal["rule"], dismissal.get("row"))
        counts[key] = counts.get(key, 0) + 1
    lines = [
        "## Dismissed findings",
        "",
        "These findings were dismissed by the dataset's owner; they do not count in the verdict and did not "
        "set rows aside.",
        "",
    ]
    for dismissal in dismissals:
        n = counts.get((dismissal["rule"], dismissal.get("row")), 0)
        where = f"row {dismissal['row']}" if dismissal.get("row") is not None else "every row"
        # The rule and reason come from the owner's form or a manifest: user text, shown literally.
        lines.append(
            f"- **{escape.md_inline(dismissal['rule'])}** ({where}, {n} finding{'s' if n != 1 else ''}): "
            f"{escape.md_inline(dismissal['reason'])}"
        )
    return "\n".join(lines) + "\n"
