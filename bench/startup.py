"""Start-up figures: app import+build, first HTTP 200, one-time conversion, converted-model load.

Run: .venv/bin/python bench/startup.py   (prints figures; targets: serving <= 15 s, model load <= 8 s)
Uses a fresh temporary STUDIO_HOME, so the conversion really happens once here.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed_python(code: str, env: dict) -> float:
    started = time.time()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True)
    return time.time() - started


def main() -> None:
    home = tempfile.mkdtemp(prefix="studio-bench-")
    env = {**os.environ, "STUDIO_HOME": home, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}

    build = timed_python("import app", env)
    print(f"import + build the app (fresh process):   {build:6.1f} s")
    torch_free = subprocess.run(
        [
            sys.executable,
            "-c",
            "import app, sys; print(sorted(m for m in ('torch','transformers','trl','peft') if m in sys.modules))",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"heavy modules imported by the shell:       {torch_free}")

    port = free_port()
    started = time.time()
    server = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env={**env, "GRADIO_SERVER_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit("the app exited before serving") from None
                time.sleep(0.2)
        print(f"python app.py to first HTTP 200:           {time.time() - started:6.1f} s   (target <= 15 s)")
    finally:
        server.terminate()
        server.wait(10)

    convert = timed_python("from studio.models import bundled; bundled.ensure_converted()", env)
    print(f"one-time conversion of the bundled GGUF:   {convert:6.1f} s   (includes ~10 s of imports)")
    load_code = (
        "import time, transformers; from studio.models import bundled; t = time.time(); "
        "transformers.AutoModelForCausalLM.from_pretrained(bundled.converted_dir()); "
        "transformers.AutoTokenizer.from_pretrained(bundled.converted_dir()); print(time.time() - t)"
    )
    loads = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", load_code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        loads.append(float(out.stdout.strip().splitlines()[-1]))
    print(
        f"converted model + tokenizer load:          {min(loads):6.1f} s best of 3 (all: "
        f"{', '.join(f'{x:.1f}' for x in loads)}; target <= 8 s)"
    )
    size = sum(p.stat().st_size for p in (Path(home) / "models").rglob("*") if p.is_file())
    print(f"converted model on disk:                   {size / 1e6:6.0f} MB")


if __name__ == "__main__":
    main()
