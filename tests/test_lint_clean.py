"""The whole tree passes ruff: `ruff check` (rules and line length in pyproject.toml) and `ruff format --check`.

Runs the ruff installed next to the interpreter (requirements-dev.txt pins it), on the repository root.
"""

from __future__ import annotations

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
