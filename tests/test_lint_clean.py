"""The whole tree passes ruff: `ruff check` (rules and line length in pyproject.toml) and `ruff format --check`.

Runs the ruff installed next to the interpreter (requirements-dev.txt pins it), on the repository root.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUFF = Path(sys.executable).parent / "ruff"


def _ruff(*args: str) -> subprocess.CompletedProcess:
    assert RUFF.is_file(), f"ruff is not installed next to {sys.executable}: pip install -r requirements-dev.txt"
    return subprocess.run([str(RUFF), *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_ruff_check_reports_nothing():
    result = _ruff("check", "--no-cache", ".")
    assert result.returncode == 0, f"ruff check found problems:\n{result.stdout}\n{result.stderr}"


def test_ruff_format_changes_nothing():
    result = _ruff("format", "--check", "--no-cache", ".")
    assert result.returncode == 0, f"ruff format would change files:\n{result.stdout}\n{result.stderr}"


# A suppression says which rule and why: "# noqa: BLE001 - any Hub failure becomes a plain message".
NOQA = re.compile(r"#\s*noqa\b(?P<rest>.*)$")
REASONED = re.compile(r"^:\s*[A-Z]+[0-9]+(\s*,\s*[A-Z]+[0-9]+)*\s+-\s+\S")


def test_every_noqa_names_its_rule_and_says_why():
    bare = []
    for path in sorted(ROOT.rglob("*.py")):
        if any(part.startswith(".") or part in ("node_modules", "build") for part in path.relative_to(ROOT).parts):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            found = NOQA.search(line)
            if found and not REASONED.match(found.group("rest")):
                bare.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not bare, "suppressions without a rule and a reason:\n" + "\n".join(bare)
