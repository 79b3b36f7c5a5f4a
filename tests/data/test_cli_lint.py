"""The `python -m studio lint` contract, run as a subprocess like a data team's CI would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "studio" / "data" / "samples"


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "studio", "lint", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lint-cli")
    good = folder / "good.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Question {i} about {w}?"},
                {"role": "assistant", "content": f"Answer {i}: the {w} is fine and well kept."},
            ]
        }
        for i, w in enumerate(
            [
                "anchor",
                "harbour",
                "compass",
                "river",
                "mountain",
                "bread",
                "lantern",
                "rope",
                "island",
                "storm",
                "parrot",
                "cannon",
            ]
        )
    ]
    good.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    bad = folder / "bad.jsonl"
    bad.write_text(good.read_text() + '{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    return good, bad


def test_json_output_one_object_per_file_and_exit_1_on_errors(files, tiny_model_dir):
    good, bad = files
    result = run(str(good), str(bad), "--model", str(tiny_model_dir), "--json")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["file"] == str(good) and second["file"] == str(bad)
    for payload in (first, second):
        assert {"file", "format", "rows", "findings", "stats"} <= set(payload)
        for finding in payload["findings"]:
            assert set(finding) == {"rule", "severity", "row", "message", "hint"}
    assert first["format"] == "messages" and first["rows"] == 12
    assert not [f for f in first["findings"] if f["severity"] == "E"]
    assert first["stats"]["tokens"]["total"] > 0 and first["stats"]["max_length"] == 512
    rules = {(f["rule"], f["row"]) for f in second["findings"]}
    assert ("ROLE-NO-ASSIST", 13) in rules and ("FILE-JSON", 14) in rules


def test_exit_0_when_no_file_has_an_error_and_max_length(files, tiny_model_dir):
    good, _ = files
    result = run(
        str(good),
        str(SAMPLES / "assistant_style.jsonl"),
        "--model",
        str(tiny_model_dir),
        "--max-length",
        "128",
        "--json",
    )
    assert result.returncode == 0, result.stdout[:2000]
    first, clean = (json.loads(line) for line in result.stdout.strip().splitlines())
    assert first["stats"]["max_length"] == 128 and clean["rows"] >= 120


def test_readable_report_and_usage_errors(files, tmp_path, capsys):
    from studio.cli import main

    _, bad = files
    result = run(str(bad), "--no-tokens")  # one real subprocess; the rest in-process through the same entry point
    assert result.returncode == 1
    assert "BLOCKED" in result.stdout and "ROLE-NO-ASSIST" in result.stdout and "→" in result.stdout
    assert main(["lint"]) == 2
    assert main(["lint", str(tmp_path / "missing.jsonl")]) == 2
    assert main(["lint", str(bad), "--max-length", "0"]) == 2
    assert main(["lint", str(bad), "--max-length", "many"]) == 2


def test_unknown_model_is_a_plain_error(files, capsys):
    from studio.cli import main

    good, _ = files
    assert main(["lint", str(good), "--model", "/no/such/model/folder"]) == 1
    error = capsys.readouterr().err
    assert "error:" in error and "hint:" in error and "Traceback" not in error


def test_messy_sample_fails_ci(tiny_model_dir, capsys):
    from studio.cli import main

    assert main(["lint", str(SAMPLES / "assistant_style_messy.jsonl"), "--model", str(tiny_model_dir), "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert len({f["rule"] for f in payload["findings"]}) >= 40


def test_map_reads_a_question_answer_csv_and_unknown_tables_get_the_flags_as_a_hint(tmp_path):
    table = tmp_path / "qa.csv"
    table.write_text(
        "question,answer\n"
        + "".join(
            f'"What does item {i} of the list do, briefly?","Item {i} keeps the list in order number {i}."\n'
            for i in range(12)
        )
    )
    plain = run(str(table), "--no-tokens")
    assert plain.returncode == 1 and "--map user=question --map assistant=answer" in plain.stdout
    mapped = run(str(table), "--no-tokens", "--map", "user=question", "--map", "assistant=answer", "--json")
    assert mapped.returncode == 0, mapped.stdout[-2000:]
    payload = json.loads(mapped.stdout)
    assert payload["format"] == "messages" and payload["stats"]["rows"]["valid"] == 12
    assert payload["column_mapping"] == {"user": "question", "assistant": "answer", "context": [], "system": None}
    wrong = run(str(table), "--no-tokens", "--map", "user=question", "--map", "assistant=reply")
    assert wrong.returncode == 1 and "no column called 'reply'" in wrong.stderr and "question, answer" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    assert run(str(table), "--no-tokens", "--map", "bot=answer").returncode == 1
