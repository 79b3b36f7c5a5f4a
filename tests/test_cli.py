import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "studio", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout
    )


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
    entries = json.loads(result.stdout)  # one JSON array
    assert entries[0]["source"] == "bundled"
    assert all({"ref", "label", "ready"} <= set(entry) for entry in entries)


def test_version_and_exit_codes_in_help():
    from studio import __version__

    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"python -m studio {__version__}"
    help_text = run_cli("--help").stdout
    assert "exit codes:" in help_text
    for code in ("0", "1", "2", "130", "141"):
        assert f"\n  {code} " in help_text


def test_a_closed_output_pipe_ends_quietly():
    process = subprocess.Popen(
        [sys.executable, "-m", "studio", "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    process.stdout.close()  # the reader is gone before the command writes, as with `| head` that already exited
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 141 and stderr == b""


def test_runs_json_is_one_array_even_when_empty(tmp_path):
    import os

    env = {**os.environ, "STUDIO_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "studio", "runs", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0 and json.loads(result.stdout) == []
