"""docs/lint-rules.md, the rule registry and the rules the code emits cannot drift apart."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from studio.data.rules import catalogue

ROOT = Path(__file__).resolve().parents[2]
# A finding built in the code: Finding("RULE", "E", …), _f("RULE", "W", …), add("RULE", "E" if … else "W", …).
EMITTED = re.compile(
    r"(?:Finding|_f|add)\(\s*\"([A-Z]+(?:-[A-Z0-9]+)+)\"\s*,\s*(?:\"([EWI])\"(?:\s+if\s+[^,]+?\s+else\s+\"([EWI])\")?)?"
)


def emitted_rules() -> dict[str, set[str]]:
    """Rule id -> the literal severities it is emitted with, from every module under studio/."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "studio").rglob("*.py"):
        if path.name == "catalogue.py":
            continue
        for match in EMITTED.finditer(path.read_text(encoding="utf-8")):
            found.setdefault(match.group(1), set()).update(s for s in match.group(2, 3) if s)
    return found


def test_docs_file_is_generated_from_the_registry():
    text = (ROOT / "docs" / "lint-rules.md").read_text(encoding="utf-8")
    assert text == catalogue.render_markdown(), "regenerate it: python -m studio.data.rules.catalogue --write"


def test_every_emitted_rule_is_in_the_registry_with_its_severities():
    emitted = emitted_rules()
    assert len(emitted) >= 60  # the pattern still finds the findings the code builds
    unknown = sorted(set(emitted) - set(catalogue.RULES))
    assert not unknown, f"rules emitted but not in the catalogue: {unknown}"
    for rule, severities in emitted.items():
        assert severities <= set(catalogue.RULES[rule].severities), (rule, severities, catalogue.RULES[rule].severities)


def test_every_registered_rule_is_emitted_somewhere():
    assert not sorted(set(catalogue.RULES) - set(emitted_rules())), "a registered rule no code emits"


def test_messy_sample_findings_use_registered_rules_and_severities():
    from studio.data.lint import lint_file

    report = lint_file(ROOT / "studio" / "data" / "samples" / "assistant_style_messy.jsonl")
    for finding in report.findings:
        assert finding.severity in catalogue.RULES[finding.rule].severities, finding


def test_nothing_in_the_data_package_cites_files_outside_the_repository():
    pattern = re.compile(r"LINT-RULES|STACK-NOTES|contract [12]|\.\./shared|shared/")
    files = list((ROOT / "studio" / "data").rglob("*.py")) + [
        ROOT / "bench" / "lint.py",
        ROOT / "studio" / "ui" / "data_tab.py",
    ]
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, offenders


def test_lint_help_points_at_the_docs_in_the_repository():
    result = subprocess.run(
        [sys.executable, "-m", "studio", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "shared/" not in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "studio", "lint", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "docs/lint-rules.md" in result.stdout and "shared/" not in result.stdout
