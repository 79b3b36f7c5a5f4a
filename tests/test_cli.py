import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "studio", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def test_help_lists_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "serve" in result.stdout and "models" in result.stdout


def test_every_command_has_help():
    from studio.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name in commands:
        result = run_cli(name, "--help")
        assert result.returncode == 0, (name, result.stderr)
        assert "usage:" in result.stdout


def test_usage_error_exits_2():
    assert run_cli("no-such-command").returncode == 2
    assert run_cli().returncode == 2


def test_models_json_lists_bundled_first():
    result = run_cli("models", "--json")
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert entries[0]["source"] == "bundled"
    assert all({"ref", "label", "ready"} <= set(entry) for entry in entries)
