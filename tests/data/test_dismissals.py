"""Dismissing lint findings: what may be dismissed, what it changes, and that the reason is kept."""

import pytest

from studio.data import dismissals
from studio.data.lint import LintReport
from studio.data.records import Finding, Row
from studio.errors import StudioError


def _report():
    rows = [
        Row(number=n, raw={}, messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
        for n in (1, 2, 3)
    ]
    findings = [
        Finding("PII-SECRET", "E", 1, "looks like a secret", "remove it"),
        Finding("PII-SECRET", "E", 2, "looks like a secret", "remove it"),
        Finding("ROLE-NO-ASSIST", "E", 3, "no assistant turn", "add one"),
        Finding("DUP-EXACT", "W", 2, "duplicate", "drop it"),
    ]
    return LintReport(name="x", rows=rows, findings=findings)


def test_a_dismissed_error_no_longer_blocks_or_sets_its_row_aside():
    report = _report()
    everything = list(report.findings)
    assert report.verdict == "blocked" and report.error_rows() == {1, 2, 3}
    one = dismissals.make(everything, "PII-SECRET", "  a Wikimedia image path,\n not a secret ", row=1)
    assert one["reason"] == "a Wikimedia image path, not a secret" and one["row"] == 1
    dismissed = dismissals.apply_to_report(report, [one], everything)
    assert [(f.rule, f.row) for f, _ in dismissed] == [("PII-SECRET", 1)]
    assert report.error_rows() == {2, 3}
    every = dismissals.make(everything, "PII-SECRET", "image paths", row=None)
    dismissals.apply_to_report(report, dismissals.add([one], every), everything)
    assert report.error_rows() == {3} and len(report.findings) == 2


def test_structural_errors_cannot_be_dismissed_but_their_warnings_can():
    report = _report()
    with pytest.raises(StudioError, match="cannot be dismissed"):
        dismissals.make(report.findings, "ROLE-NO-ASSIST", "I like it", row=3)
    assert dismissals.may_dismiss(Finding("ROLE-WEIGHT", "W", 1, "", ""))
    # Even a hand-written dismissal (an old manifest, an API call) does not let a broken row through.
    kept, dismissed = dismissals.split(report.findings, [{"rule": "ROLE-NO-ASSIST", "row": None, "reason": "x"}])
    assert not dismissed and len(kept) == 4


def test_a_reason_and_an_existing_finding_are_required():
    findings = _report().findings
    with pytest.raises(StudioError, match="why"):
        dismissals.make(findings, "PII-SECRET", "   ", row=1)
    with pytest.raises(StudioError, match="no PII-SECRET finding in row 3"):
        dismissals.make(findings, "PII-SECRET", "reason", row=3)
    with pytest.raises(StudioError, match="longer than"):
        dismissals.make(findings, "PII-SECRET", "x" * 600, row=1)


def test_add_replaces_remove_and_clean():
    findings = _report().findings
    first = dismissals.make(findings, "DUP-EXACT", "first", row=2)
    second = dismissals.make(findings, "DUP-EXACT", "second thoughts", row=2)
    items = dismissals.add(dismissals.add([], first), second)
    assert [d["reason"] for d in items] == ["second thoughts"]
    assert dismissals.remove(items, "DUP-EXACT", 2) == []
    assert dismissals.clean(
        [
            {"rule": "X", "row": "3", "reason": "r"},
            {"rule": "Y", "reason": ""},
            "junk",
            {"rule": "Z", "row": None, "reason": "ok"},
        ]
    ) == [{"rule": "Z", "row": None, "reason": "ok", "created_at": ""}]


def test_the_report_section_lists_reasons_and_counts():
    report = _report()
    items = [dismissals.make(report.findings, "PII-SECRET", "image paths", row=None)]
    dismissed = dismissals.apply_to_report(report, items)
    text = dismissals.markdown(items, dismissed)
    assert "## Dismissed findings" in text and "**PII-SECRET** (every row, 2 findings): image paths" in text
    assert dismissals.markdown([]) == ""
