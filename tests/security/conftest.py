"""The attack suite's world: a real `python app.py` in public mode (and one in oauth mode) with other
visitors' data already on disk, and a checksum that proves an attack changed none of it.

The world (written before the app starts, in the app's own STUDIO_HOME):
- a victim visitor (a signed browser id) with a dataset and a completed run (adapter, evaluation, ballot,
  report, log) — every file carries a canary string that must never reach the attacker;
- the operator's private run (canary too), and the operator's *shared* demo run with a real tiny adapter and
  a saved evaluation (visitors may see it, chat with it and vote in their own ballot, never change it);
- a tiny model in STUDIO_HOME/models (the only folder a visitor may name a model from).
One app process per mode is shared by the whole module (kept short: a few minutes in all).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECRET = "attack-suite-secret"  # STUDIO_SECRET of the app under test: the suite signs the victim's id with it
OAUTH_SECRET = "attack-suite-oauth-secret"  # OAUTH_CLIENT_SECRET: Gradio signs its session cookie with it
FAKE_TOKEN = "hf_attackSuiteFakeTokenNeverShown0123456789"
ADMIN_PASSWORD = "attack-suite-admin"
OWNER = "owner-alice"  # the Space owner in oauth mode


@contextlib.contextmanager
def studio_secret():
    """Sign ids here exactly as the app does (same key)."""
    previous = os.environ.get("STUDIO_SECRET")
    os.environ["STUDIO_SECRET"] = SECRET
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("STUDIO_SECRET", None)
        else:
            os.environ["STUDIO_SECRET"] = previous


def sign(user_id: str) -> str:
    from studio import access

    with studio_secret():
        return access.sign(user_id)


@dataclass
class Seeded:
    user_id: str
    token: str
    run: Path
    name: str


@dataclass
class World:
    home: Path
    victim_id: str
    victim_token: str
    victim_dataset: Path
    victim_run: Path
    operator_run: Path
    demo_run: Path
    model_dir: Path
    canaries: list[str] = field(default_factory=list)
    visitors: list[Seeded] = field(default_factory=list)  # two more visitors with a run each (browser test)

    def protected(self) -> list[Path]:
        return [self.victim_dataset, self.victim_run, self.operator_run, self.demo_run]

    def checksum(self) -> str:
        """Every byte of other visitors' data and of the operator's runs (visitors' own namespaces inside the
        shared run excepted: that is where a visitor's ballot on it goes)."""
        digest = hashlib.sha256()
        for root in self.protected():
            for path in sorted(root.rglob("*")):
                relative = path.relative_to(root)
                if relative.parts[:2] == ("compare", "visitors") or path.name.startswith(".status.lock"):
                    continue
                digest.update(str(relative).encode())
                if path.is_file():
                    digest.update(path.read_bytes())
        return digest.hexdigest()


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def _chat_rows(marker: str, count: int = 24) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"Question {i}? {marker}"},
                {"role": "assistant", "content": f"Ahoy! Answer {i}. {marker} — Captain Byte"},
            ]
        }
        for i in range(count)
    ]


def _dataset(home: Path, dataset_id: str, owner: str, marker: str) -> Path:
    folder = home / "datasets" / dataset_id
    folder.mkdir(parents=True)
    rows = _chat_rows(marker)
    _jsonl(folder / "train.jsonl", rows[:20])
    _jsonl(folder / "validation.jsonl", rows[20:])
    manifest = {
        "id": dataset_id,
        "name": f"data {marker}",
        "owner": owner,
        "created_at": "2026-12-01T00:00:00+00:00",
        "counts": {"train": 20, "validation": 4, "rejected": 0},
        "findings_summary": {},
        "stats": {},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _run(
    home: Path,
    run_id: str,
    owner: str,
    role: str,
    model: Path,
    dataset: Path,
    marker: str,
    adapter_from: Path | None = None,
    shared: bool = False,
) -> Path:
    folder = home / "runs" / run_id
    (folder / "checkpoints").mkdir(parents=True)
    config = {
        "run_id": run_id,
        "name": f"run {marker}",
        "model": str(model),
        "dataset": str(dataset),
        "max_length": 128,
        "lora_r": 8,
        "lora_alpha": 16,
        "epochs": 1,
        "max_steps": 10,
        "learning_rate": 5e-3,
    }
    (folder / "config.json").write_text(json.dumps(config))
    status = {
        "status": "completed",
        "pid": None,
        "step": 10,
        "total_steps": 10,
        "created_at": "2026-12-01T00:00:00+00:00",
        "started_at": "2026-12-01T00:00:00+00:00",
        "ended_at": "2026-12-01T00:05:00+00:00",
        "error": None,
        "owner": owner,
        "owner_role": role,
        "shared": shared,
        "notes": [f"note {marker}"],
    }
    (folder / "status.json").write_text(json.dumps(status))
    _jsonl(
        folder / "events.jsonl",
        [{"type": "log", "step": step, "total": 10, "loss": 3.0 - step * 0.1, "time": 1.0} for step in range(1, 11)],
    )
    (folder / "log.txt").write_text(f"=== start: training {marker}\nstep 10 loss 2.0\n")
    adapter = folder / "adapter"
    if adapter_from is not None:
        shutil.copytree(adapter_from, adapter)
    else:
        adapter.mkdir()
        (adapter / "adapter_config.json").write_text(
            json.dumps({"base_model_name_or_path": str(model), "r": 8, "peft_type": "LORA", "note": marker})
        )
        (adapter / "adapter_model.safetensors").write_bytes(b"not really weights " + marker.encode())
    (folder / "README.md").write_text(f"# model card {marker}\n")
    compare = folder / "compare"
    compare.mkdir()
    rows = [
        {
            "prompt": f"Question {i}? {marker}",
            "messages": [{"role": "user", "content": f"Question {i}? {marker}"}],
            "reference": f"Ahoy! Answer {i}. {marker}",
            "base": f"base answer {i} {marker}",
            "tuned": f"Ahoy! tuned answer {i} {marker}",
            "base_loss": 3.0,
            "tuned_loss": 1.0,
            "base_rouge_l": 0.1,
            "tuned_rouge_l": 0.8,
        }
        for i in range(3)
    ]
    from studio.compare.evaluate import summarize

    evaluation = {
        "run_id": run_id,
        "base_model": str(model),
        "source": "validation split",
        "created_at": 1.0,
        "seconds": 1.0,
        "settings": {},
        "rows": rows,
        "summary": summarize(rows),
    }
    (compare / "eval.json").write_text(json.dumps(evaluation))
    ballot = {
        "seed": 1,
        "eval_created_at": 1.0,
        "items": [{"index": i, "tuned_is": "A"} for i in range(3)],
        "votes": {"0": "A"},
        "created_at": 1.0,
        "voter": marker,
    }
    (compare / "votes.json").write_text(json.dumps(ballot))
    (compare / "report.html").write_text(f"<html>{marker}</html>")
    return folder


def build_world(home: Path, tiny_model_dir: Path, demo_adapter: Path) -> World:
    home.mkdir(parents=True, exist_ok=True)
    model_dir = home / "models" / "tiny-llama"
    shutil.copytree(tiny_model_dir, model_dir)
    canaries = {name: f"CANARY-{name}-{secrets.token_hex(4)}" for name in ("victim", "operator", "demo")}
    with studio_secret():
        from studio import access

        victim_id = access.new_browser_id()
        victim_token = access.sign(victim_id)
    victim_dataset = _dataset(home, f"victim-data-{secrets.token_hex(4)}", victim_id, canaries["victim"])
    victim_run = _run(
        home,
        f"run-victim{secrets.token_hex(4)}",
        victim_id,
        "anonymous visitor",
        model_dir,
        victim_dataset,
        canaries["victim"],
    )
    operator_dataset = _dataset(home, f"operator-data-{secrets.token_hex(4)}", "local", canaries["operator"])
    operator_run = _run(
        home,
        f"run-operator{secrets.token_hex(4)}",
        "local",
        "operator",
        model_dir,
        operator_dataset,
        canaries["operator"],
    )
    demo_dataset = _dataset(home, f"demo-data-{secrets.token_hex(4)}", "local", "shared-demo")
    demo_run = _run(
        home,
        f"run-demo{secrets.token_hex(4)}",
        "local",
        "operator",
        model_dir,
        demo_dataset,
        "shared-demo",
        adapter_from=demo_adapter,
        shared=True,
    )
    seeded = []
    for label in ("A", "B"):
        with studio_secret():
            from studio import access

            user_id = access.new_browser_id()
            token = access.sign(user_id)
        marker = f"visitor{label}-{secrets.token_hex(3)}"
        own_dataset = _dataset(home, f"visitor{label}-data-{secrets.token_hex(4)}", user_id, marker)
        run = _run(
            home,
            f"run-visitor{label}{secrets.token_hex(4)}",
            user_id,
            "anonymous visitor",
            model_dir,
            own_dataset,
            marker,
        )
        seeded.append(Seeded(user_id, token, run, f"run {marker}"))
    return World(
        home,
        victim_id,
        victim_token,
        victim_dataset,
        victim_run,
        operator_run,
        demo_run,
        model_dir,
        [canaries["victim"], canaries["operator"]],
        seeded,
    )


def free_port() -> int:
    for port in range(7810, 7820):  # this suite's assigned range first
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class App:
    url: str
    world: World
    process: subprocess.Popen
    log: Path
    env: dict


def start_app(world: World, extra_env: dict, launcher: list[str] | None = None) -> App:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("STUDIO_", "SPACE", "OAUTH_"))}
    env.update(
        {
            "STUDIO_HOME": str(world.home),
            "STUDIO_PREPARE_AT_START": "0",  # (the session's setting, cleared with the other STUDIO_ variables)
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(port),
            "HF_HUB_OFFLINE": "1",
            "HF_HOME": str(world.home / "hf_cache"),
            "HF_TOKEN": FAKE_TOKEN,
            "STUDIO_SECRET": SECRET,
            "STUDIO_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "GRADIO_TEMP_DIR": str(world.home.parent / "gradio-uploads"),  # not a prefix match of home
            "GRADIO_ANALYTICS_ENABLED": "False",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra_env)
    log = world.home.parent / f"{world.home.name}-app.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            launcher or [sys.executable, "app.py"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the app exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return App(url, world, process, log, env)
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise AssertionError(f"the app did not start: {log.read_text()[-3000:]}")


def stop_app(app: App) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(app.process.pid, signal.SIGKILL)
    app.process.wait(timeout=30)
    import psutil

    for process in psutil.process_iter(["cmdline"]):  # workers the app started (their command names the home)
        try:
            if any(str(app.world.home) in part for part in process.info["cmdline"] or []):
                process.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


@pytest.fixture(scope="session")
def demo_adapter(tiny_model_dir, tmp_path_factory) -> Path:
    """A real LoRA adapter on the tiny model (a few steps): the shared demo run answers with it."""
    from tests.compare.conftest import style_rows, train_tiny_adapter

    out = tmp_path_factory.mktemp("demo-adapter")
    adapter, _history = train_tiny_adapter(tiny_model_dir, style_rows(), out, steps=12, lr=5e-3)
    return adapter


# The sweep sends every handler wrong values, the admin sign-in too: room for those attempts so the operator test
# after it can still sign in (the limiter itself is tested in test_limits_and_writes).
PUBLIC_ENV = {
    "SPACE_ID": "attack-suite/studio",
    "SPACE_AUTHOR_NAME": OWNER,
    "STUDIO_QUOTA_DATASETS": "2",
    "STUDIO_QUOTA_ACTIVE_RUNS": "1",
    "STUDIO_MAX_PASSWORD_ATTEMPTS": "100",
}
OAUTH_ENV = {
    "SPACE_ID": "attack-suite/studio",
    "SPACE_AUTHOR_NAME": OWNER,
    "STUDIO_AUTH": "oauth",
    "STUDIO_OWNERS": OWNER,
    "STUDIO_OAUTH_LOCAL": "1",
    "OAUTH_CLIENT_SECRET": OAUTH_SECRET,
    "STUDIO_TEST_OAUTH_USER": OWNER,
}


@pytest.fixture(scope="session")
def public_app(tmp_path_factory, tiny_model_dir, demo_adapter):
    world = build_world(tmp_path_factory.mktemp("public") / "home", tiny_model_dir, demo_adapter)
    app = start_app(world, PUBLIC_ENV)
    yield app
    stop_app(app)


@pytest.fixture(scope="session")
def oauth_app(tmp_path_factory, tiny_model_dir, demo_adapter):
    world = build_world(tmp_path_factory.mktemp("oauth") / "home", tiny_model_dir, demo_adapter)
    app = start_app(world, OAUTH_ENV, launcher=[sys.executable, str(Path(__file__).with_name("oauth_stand_in.py"))])
    yield app
    stop_app(app)


def signed_in_cookie(username: str) -> dict[str, str]:
    """Gradio's session cookie for a visitor signed in with Hugging Face as `username`."""
    from tests.security.client import oauth_session, session_cookie

    key = hashlib.sha256((OAUTH_SECRET + "-v4").encode()).hexdigest()
    return {"session": session_cookie(key, oauth_session(username))}
