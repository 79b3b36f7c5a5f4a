"""A real app (`python app.py`, public mode) is sent Parquet bombs through its upload handler: a 1 GB page bomb of
a few kilobytes and a 20 GB dictionary bomb of under a kilobyte. Each is refused with a message naming the limit,
and the app's peak resident memory grows by less than 200 MB while it refuses them (Linux /proc: the peak is reset
before each upload, then read)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def page_bomb(path: Path, row_groups: int = 16, value_mb: int = 64) -> Path:
    """One 64 MB string per row group, zstd: 1 GB decoded from a few kilobytes (one value in memory at a time)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("text", pa.string())])
    with pq.ParquetWriter(path, schema, compression="zstd", use_dictionary=False) as writer:
        for _ in range(row_groups):
            writer.write_table(pa.table({"text": ["a" * (value_mb * MIB)]}, schema=schema))
    return path


def dictionary_bomb(path: Path) -> Path:
    """One 1 MB value referenced by 20,000 rows through a dictionary: 20 GB once expanded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    column = pa.DictionaryArray.from_arrays(pa.array([0] * 20_000, type=pa.int32()), pa.array(["x" * MIB]))
    buffer = io.BytesIO()
    pq.write_table(pa.table({"text": column}), buffer, compression="zstd")
    path.write_bytes(buffer.getvalue())
    return path


def _kb(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


@pytest.fixture
def public_app(tmp_path):
    port, log = _free_port(), tmp_path / "app.log"
    env = {
        **os.environ,
        "STUDIO_HOME": str(tmp_path / "home"),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "STUDIO_MODE": "public",
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("STUDIO_MAX_DECODED_MB", None)
    with open(log, "wb") as out:
        app = subprocess.Popen(
            [sys.executable, "app.py"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or app.poll() is not None:
                    raise AssertionError(f"the app did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.5)
        yield app.pid, url
    finally:
        app.terminate()
        try:
            app.wait(timeout=30)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()


def test_parquet_bombs_are_refused_while_the_app_stays_small(public_app, tmp_path):
    import pandas as pd
    from gradio_client import Client, handle_file

    pid, url = public_app
    client = Client(url, verbose=False)
    model = "HuggingFaceTB/SmolLM2-135M-Instruct"  # offline: no tokenizer, so no model memory in the figures

    def lint(path: Path) -> str:
        outputs = client.predict(handle_file(str(path)), model, 0, 8, api_name="/lint_upload")
        return next(o for o in outputs if isinstance(o, str) and "dv-verdict" in o)  # the verdict HTML

    warm = tmp_path / "warm.parquet"
    pd.DataFrame(
        {"messages": [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Ahoy!"}]] * 20}
    ).to_parquet(warm)
    assert "rows" in lint(warm)  # imports and first-call costs are paid before measuring

    figures = {}
    for name, bomb in (
        ("page bomb", page_bomb(tmp_path / "page-bomb.parquet")),
        ("dictionary bomb", dictionary_bomb(tmp_path / "dictionary-bomb.parquet")),
    ):
        _reset_peak(pid)
        before = _kb(pid, "VmRSS")
        verdict = lint(bomb)
        growth_mb = (_kb(pid, "VmHWM") - before) / 1024
        figures[name] = (bomb.stat().st_size, growth_mb)
        print(
            f"\n{name}: {bomb.stat().st_size:,} bytes on disk; app peak RSS grew {growth_mb:.1f} MB while refusing it"
        )
        assert "would grow to" in verdict and "STUDIO_MAX_DECODED_MB" in verdict, verdict
        assert growth_mb < 200, figures
    assert figures["page bomb"][0] < 64 * 1024 and figures["dictionary bomb"][0] < 4 * 1024
