"""python -m studio compare RUN --prompts FILE --json: the contract, through a real subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "studio", "compare", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


def test_cli_json_contract(tiny_run_dir, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "\n".join(
            json.dumps(row)
            for row in [
                {
                    "messages": [
                        {"role": "user", "content": "What is 2 + 2?"},
                        {"role": "assistant", "content": "Ahoy! 2 + 2 is 4. — Captain Byte"},
                    ]
                },
                {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]},
                {
                    "messages": [
                        {"role": "user", "content": "Name a primary colour."},
                        {"role": "assistant", "content": "Ahoy! Red. — Captain Byte"},
                    ]
                },
                "not a chat row",
            ]
        )
        + "\n"
    )
    out = tmp_path / "out" / "report.html"
    done = _run(
        [
            tiny_run_dir.name,
            "--prompts",
            str(prompts),
            "--n",
            "2",
            "--max-new-tokens",
            "8",
            "--out",
            str(out),
            "--greedy",
            "--json",
        ]
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout.strip().splitlines()[-1])
    assert [row["prompt"] for row in payload["rows"]] == ["What is 2 + 2?", "Say hello."]
    first, second = payload["rows"]
    assert first["reference"].startswith("Ahoy!") and first["tuned_loss"] < first["base_loss"]
    assert "reference" not in second and "base_loss" not in second  # no trailing assistant turn
    assert isinstance(first["base"], str) and isinstance(first["tuned"], str)
    assert payload["summary"]["prompts"] == 2 and payload["summary"]["with_reference"] == 1
    assert payload["report"] == str(out) and out.is_file() and out.with_suffix(".md").is_file()
    assert (tiny_run_dir / "compare" / "eval.json").is_file()
    # The verdict object: the same as Compare and the report; one scored prompt cannot carry a conclusion.
    verdict = payload["verdict"]
    assert verdict["conclusion"] == "inconclusive" and verdict["headline"].startswith("Inconclusive:")
    assert verdict["evidence"]["scored_prompts"] == 1 and verdict["evidence"]["votes"] == 0
    assert {s["key"] for s in verdict["signals"]} == {"loss", "rouge_l", "chrf"}
    assert all(s["direction"] == "too few" and len(s["interval"]) == 2 for s in verdict["signals"])
    assert payload["settings"]["decoding"] == "greedy" and payload["settings"]["repetition_penalty"] > 1
    assert "Inconclusive:" in done.stderr and "Decoding: greedy decoding" in done.stderr
    assert "Verdict: inconclusive" in out.read_text()


def test_cli_plain_errors(tmp_path):
    done = _run(["no-such-run", "--prompts", str(tmp_path / "x.jsonl")])
    assert done.returncode == 1 and "error:" in done.stderr and "hint:" in done.stderr
    assert "Traceback" not in done.stderr
    assert _run(["some-run", "--n", "0"]).returncode == 2
