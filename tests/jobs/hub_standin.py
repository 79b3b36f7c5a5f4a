"""A small local stand-in for the parts of the Hugging Face Hub that remote runs use (tests only).

Point the real `huggingface_hub` client at it with HF_ENDPOINT=http://127.0.0.1:PORT. Routes and payloads are
taken from the pinned client's code (huggingface_hub 2.4: hf_api.py, _commit_api.py, file_download.py,
_snapshot_download.py, _jobs_api.py), not from the service's documentation:

    GET  /api/whoami-v2                                   whoami
    POST /api/repos/create                                create_repo (409 when it exists)
    GET  /api/{models|datasets}/{repo}[/revision/{rev}]   repo_info (sha, siblings)
    GET  /api/{type}s/{repo}/tree/{rev}[/{path}]          list_repo_tree (recursive listing, one page)
    POST /api/{type}s/{repo}/preupload/{rev}              upload modes: always "regular" (see below)
    POST /api/{type}s/{repo}/commit/{rev}                 create_commit (NDJSON: header, file, deletedFile)
    POST /api/validate-yaml                               README.md check before a commit
    HEAD|GET /[datasets/]{repo}/resolve/{rev}/{path}      file metadata (X-Repo-Commit, ETag) and download
    GET  /api/jobs/hardware                               list_jobs_hardware (SAMPLE_HARDWARE)
    POST /api/jobs/{ns}                                   run_job / run_uv_job: starts a local process
    GET  /api/jobs/{ns}/{id}                              inspect_job
    GET  /api/jobs/{ns}/{id}/logs                         fetch_job_logs: server-sent events, replayed from
                                                          the start, then live until the job ends
    GET  /api/jobs/{ns}/{id}/metrics                      fetch_job_metrics: an event per second; 406 once ended
    POST /api/jobs/{ns}/{id}/cancel                       cancel_job: kills the job's whole process tree

What a "job" is here: the submitted command runs as a local process tree, with an environment made of the
job's env and secrets, HOME/TMPDIR in a scratch folder, and HF_ENDPOINT pointing back at this server (on Jobs
the container talks to the real Hub). `uv` need not exist: `uv run [--with DEP]... [--python V] CMD ARGS...`
is run as CMD ARGS with `python` replaced by this interpreter, whose environment must already hold the pins;
the `--with` and `--python` values are recorded on the job (`uv_with`, `uv_python`) so tests can check them.

What it does NOT model (so it is not evidence about the real service): Xet/LFS storage (every file is a
"regular" base64 upload), pagination, rate limits, gated repos, scheduling delays, billing, what the real
platform sends a container on cancel (here: SIGKILL to the whole tree at once) or on timeout (here: killed,
stage ERROR, message "Job timeout"), the real log service's line-length limits and timestamps, real prices
(SAMPLE_HARDWARE prices are made up for tests), and metrics beyond CPU and RAM.

Run it by hand: `python tests/jobs/hub_standin.py --port 7885 --token hf_test` (Ctrl-C to stop).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

USER = "studio-tester"
TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}

# Shapes as list_jobs_hardware returns them; prices are made-up test values, not Hugging Face's.
SAMPLE_HARDWARE = [
    {
        "name": "cpu-basic",
        "prettyName": "CPU Basic",
        "cpu": "2 vCPU",
        "ram": "16 GB",
        "ephemeralStorage": "20 GB",
        "accelerator": None,
        "unitCostMicroUSD": 167,
        "unitCostUSD": 0.000167,
        "unitLabel": "minute",
    },
    {
        "name": "cpu-upgrade",
        "prettyName": "CPU Upgrade",
        "cpu": "8 vCPU",
        "ram": "32 GB",
        "ephemeralStorage": "50 GB",
        "accelerator": None,
        "unitCostMicroUSD": 500,
        "unitCostUSD": 0.0005,
        "unitLabel": "minute",
    },
    {
        "name": "t4-small",
        "prettyName": "Nvidia T4 - small",
        "cpu": "4 vCPU",
        "ram": "15 GB",
        "ephemeralStorage": "50 GB",
        "accelerator": {"type": "gpu", "model": "T4", "quantity": "1", "vram": "16 GB", "manufacturer": "Nvidia"},
        "unitCostMicroUSD": 6667,
        "unitCostUSD": 0.006667,
        "unitLabel": "minute",
    },
    {
        "name": "l4x1",
        "prettyName": "Nvidia 1xL4",
        "cpu": "8 vCPU",
        "ram": "30 GB",
        "ephemeralStorage": "400 GB",
        "accelerator": {"type": "gpu", "model": "L4", "quantity": "1", "vram": "24 GB", "manufacturer": "Nvidia"},
        "unitCostMicroUSD": 13333,
        "unitCostUSD": 0.013333,
        "unitLabel": "minute",
    },
    {
        "name": "a100-large",
        "prettyName": "Nvidia A100 - large",
        "cpu": "12 vCPU",
        "ram": "142 GB",
        "ephemeralStorage": "1000 GB",
        "accelerator": {"type": "gpu", "model": "A100", "quantity": "1", "vram": "80 GB", "manufacturer": "Nvidia"},
        "unitCostMicroUSD": 41667,
        "unitCostUSD": 0.041667,
        "unitLabel": "minute",
    },
]
TERMINAL = ("COMPLETED", "CANCELED", "ERROR", "DELETED")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Repo:
    def __init__(self, repo_type: str, repo_id: str, private: bool):
        self.type, self.id, self.private = repo_type, repo_id, private
        self.commits: list[tuple[str, dict[str, bytes]]] = []  # (oid, files), oldest first
        self.lock = threading.Lock()

    def files(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        if not self.commits:
            return ("0" * 40, {}) if revision == "main" else None
        if revision in ("main", "HEAD"):
            return self.commits[-1]
        for oid, files in self.commits:
            if oid == revision or (len(revision) >= 7 and oid.startswith(revision)):
                return oid, files
        return None


class Job:
    def __init__(self, job_id: str, namespace: str, spec: dict):
        self.id, self.namespace, self.spec = job_id, namespace, spec
        self.created_at = now_iso()
        self.started_at: str | None = None
        self.finished_at: str | None = None
        self.started_mono: float | None = None
        self.finished_mono: float | None = None
        self.stage, self.message = "SCHEDULING", None
        self.logs: list[tuple[str, str]] = []
        self.changed = threading.Condition()
        self.process: subprocess.Popen | None = None
        self.uv_with: list[str] = []
        self.uv_python: str | None = None
        self.cancelled = False
        self.folder: Path | None = None

    def info(self, endpoint: str) -> dict:
        running = None
        if self.started_mono is not None:
            running = int((self.finished_mono or time.monotonic()) - self.started_mono)
        return {
            "id": self.id,
            "createdAt": self.created_at,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "dockerImage": self.spec.get("dockerImage"),
            "spaceId": self.spec.get("spaceId"),
            "command": self.spec.get("command"),
            "arguments": self.spec.get("arguments") or [],
            "environment": self.spec.get("environment") or {},
            "secrets": {name: "***" for name in (self.spec.get("secrets") or {})},
            "flavor": self.spec.get("flavor"),
            "labels": self.spec.get("labels"),
            "status": {"stage": self.stage, "message": self.message},
            "durations": {"schedulingSecs": 0, "runningSecs": running, "totalSecs": running},
            "owner": {"id": "0" * 24, "name": self.namespace, "type": "user"},
        }

    def add_log(self, line: str) -> None:
        with self.changed:
            self.logs.append((now_iso(), line))
            self.changed.notify_all()

    def end(self, stage: str, message: str | None) -> None:
        with self.changed:
            if self.stage in TERMINAL:
                return
            self.stage, self.message = stage, message
            self.finished_at, self.finished_mono = now_iso(), time.monotonic()
            self.changed.notify_all()


def interpret_uv(command: list[str], job: Job) -> list[str]:
    """`uv run [--with DEP]... [--python V] CMD ARGS...` → CMD ARGS in this interpreter (see the module doc)."""
    if command[:2] != ["uv", "run"]:
        return command
    index = 2
    while index < len(command) and command[index].startswith("-"):
        option = command[index]
        if option in ("--with", "--python") and index + 1 < len(command):
            if option == "--with":
                job.uv_with.append(command[index + 1])
            else:
                job.uv_python = command[index + 1]
            index += 2
        else:
            index += 1
    rest = command[index:]
    if rest and rest[0] in ("python", "python3"):
        rest = [sys.executable] + rest[1:]
    elif rest and rest[0].endswith(".py"):
        rest = [sys.executable] + rest
    return rest


def kill_tree(pid: int) -> None:
    import psutil

    try:
        parent = psutil.Process(pid)
        processes = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        return
    for process in processes:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


class StandIn:
    """The server's state: repos and jobs. `start()` serves it on 127.0.0.1 in a background thread."""

    def __init__(self, token: str = "hf_standin_token", port: int = 0, python_env: dict | None = None):
        self.token = token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for tests
        self.root = Path(tempfile.mkdtemp(prefix="hub-standin-"))
        self.python_env = python_env or {}
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self.server.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> StandIn:
        self.thread = threading.Thread(target=self.server.serve_forever, name="hub-standin", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        for job in list(self.jobs.values()):
            if job.process is not None and job.process.poll() is None:
                kill_tree(job.process.pid)
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.root, ignore_errors=True)  # its repos and job folders (about 55 MB a test module)

    # ---- jobs --------------------------------------------------------------------------
    def run_job(self, namespace: str, spec: dict) -> Job:
        job_id = hashlib.sha1(f"{time.time_ns()}-{len(self.jobs)}".encode()).hexdigest()[:24]
        job = Job(job_id, namespace, spec)
        job.folder = self.root / f"job-{job_id}"
        (job.folder / "home").mkdir(parents=True)
        (job.folder / "tmp").mkdir()
        with self.lock:
            self.jobs[job_id] = job
        argv = interpret_uv(list(spec.get("command") or []), job) + list(spec.get("arguments") or [])
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(job.folder / "home"),
            "TMPDIR": str(job.folder / "tmp"),
            **self.python_env,
            **{k: str(v) for k, v in (spec.get("environment") or {}).items()},
            **{k: str(v) for k, v in (spec.get("secrets") or {}).items()},
            "HF_ENDPOINT": self.url,
        }
        threading.Thread(target=self._run, args=(job, argv, env, spec.get("timeoutSeconds")), daemon=True).start()
        return job

    def _run(self, job: Job, argv: list[str], env: dict, timeout: int | None) -> None:
        job.add_log(f"===== Job started at {now_iso()} =====")
        try:
            job.process = subprocess.Popen(
                argv,
                cwd=str(job.folder),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            job.add_log(f"could not start: {error}")
            job.end("ERROR", f"could not start the command: {error}")
            return
        with job.changed:
            job.stage, job.started_at, job.started_mono = "RUNNING", now_iso(), time.monotonic()
        if timeout:

            def expire():
                if job.process.poll() is None and job.stage == "RUNNING":
                    job.end("ERROR", "Job timeout")
                    kill_tree(job.process.pid)

            timer = threading.Timer(float(timeout), expire)
            timer.daemon = True
            timer.start()
        for raw in job.process.stdout:
            job.add_log(raw.decode("utf-8", errors="replace").rstrip("\n"))
        code = job.process.wait()
        if job.cancelled:
            job.end("CANCELED", None)
        elif code == 0:
            job.end("COMPLETED", None)
        else:
            job.end("ERROR", f"Process exited with code {code}")

    def cancel(self, job: Job) -> None:
        job.cancelled = True
        if job.process is not None and job.process.poll() is None:
            kill_tree(job.process.pid)
        else:
            job.end("CANCELED", None)


def _handler_for(state: StandIn):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # streamed bodies end when the connection closes

        def log_message(self, format, *args):  # noqa: A002 - quiet
            pass

        # ---- plumbing -----------------------------------------------------------------
        def _send(self, status: int, body=None, headers: dict | None = None, head_only: bool = False) -> None:
            data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
            self.send_response(status)
            if not isinstance(body, bytes):
                self.send_header("Content-Type", "application/json")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not head_only:
                self.wfile.write(data)

        def _error(self, status: int, message: str, code: str | None = None) -> None:
            self._send(status, {"error": message}, {"X-Error-Code": code} if code else None)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {state.token}":
                return True
            self._error(401, "Invalid credentials in Authorization header")
            return False

        def _route(self, method: str) -> None:
            parsed = urlparse(self.path)
            path, query = unquote(parsed.path), parse_qs(parsed.query)
            state.requests.append((method, path))
            try:
                self._dispatch(method, path, query)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_GET(self):  # noqa: N802 - http.server's method names
            self._route("GET")

        def do_HEAD(self):  # noqa: N802 - http.server's method names
            self._route("HEAD")

        def do_POST(self):  # noqa: N802 - http.server's method names
            self._route("POST")

        # ---- routes -------------------------------------------------------------------
        def _dispatch(self, method: str, path: str, query: dict) -> None:
            if not self._authorized():
                return
            if path == "/api/whoami-v2":
                return self._send(
                    200,
                    {
                        "type": "user",
                        "name": USER,
                        "fullname": "Studio Tester",
                        "auth": {"type": "access_token", "accessToken": {"role": "write"}},
                    },
                )
            if path == "/api/validate-yaml" and method == "POST":
                return self._send(200, {"errors": [], "warnings": []})
            if path == "/api/repos/create" and method == "POST":
                return self._create_repo(json.loads(self._body() or b"{}"))
            if path == "/api/jobs/hardware":
                return self._send(200, SAMPLE_HARDWARE)
            match = re.fullmatch(r"/api/jobs/([^/]+)(?:/([0-9a-f]+)(?:/(logs|metrics|cancel))?)?", path)
            if match:
                return self._jobs(method, match.group(1), match.group(2), match.group(3))
            match = re.fullmatch(r"/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(.*))?", path)
            if match:
                return self._repo_api(method, TYPES[match.group(1)], match.group(2), match.group(3) or "", query)
            match = re.fullmatch(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            if match and method in ("GET", "HEAD"):
                return self._resolve(
                    method,
                    TYPES.get(match.group(1) or "models", "model"),
                    match.group(2),
                    match.group(3),
                    match.group(4),
                )
            self._error(404, f"the stand-in does not serve {method} {path}")

        def _repo(self, repo_type: str, repo_id: str) -> Repo | None:
            repo = state.repos.get((repo_type, repo_id))
            if repo is None:
                self._error(404, "Repository not found", "RepoNotFound")
            return repo

        def _create_repo(self, payload: dict) -> None:
            repo_type = payload.get("type") or "model"
            repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
            with state.lock:
                url = f"{state.url}/{URL_PREFIX[repo_type]}{repo_id}"
                if (repo_type, repo_id) in state.repos:
                    return self._send(409, {"error": "You already created this repo", "url": url})
                state.repos[(repo_type, repo_id)] = Repo(repo_type, repo_id, payload.get("visibility") != "public")
            self._send(200, {"url": url, "name": repo_id})

        def _repo_api(self, method: str, repo_type: str, repo_id: str, rest: str, query: dict) -> None:
            repo = self._repo(repo_type, repo_id)
            if repo is None:
                return
            if method == "POST" and rest.startswith("preupload/"):
                files = json.loads(self._body())["files"]
                current = (repo.files("main") or ("", {}))[1]
                return self._send(
                    200,
                    {
                        "files": [
                            {
                                "path": f["path"],
                                "uploadMode": "regular",
                                "shouldIgnore": False,
                                "oid": _blob_oid(current[f["path"]]) if f["path"] in current else None,
                            }
                            for f in files
                        ]
                    },
                )
            if method == "POST" and rest.startswith("commit/"):
                return self._commit(repo, unquote(rest[len("commit/") :]))
            if method == "GET" and (rest == "" or rest.startswith("revision/")):
                found = repo.files(unquote(rest[len("revision/") :]) if rest else "main")
                if found is None:
                    return self._error(404, "Invalid rev id", "RevisionNotFound")
                oid, files = found
                return self._send(
                    200,
                    {
                        "id": repo_id,
                        "sha": oid,
                        "private": repo.private,
                        "siblings": [{"rfilename": name} for name in sorted(files)],
                        "lastModified": now_iso(),
                    },
                )
            if method == "GET" and rest.startswith("tree/"):
                revision, _, folder = rest[len("tree/") :].partition("/")
                found = repo.files(revision)
                if found is None:
                    return self._error(404, "Invalid rev id", "RevisionNotFound")
                prefix = folder.strip("/") + "/" if folder.strip("/") else ""
                entries = [
                    {"type": "file", "oid": _blob_oid(data), "size": len(data), "path": name}
                    for name, data in sorted(found[1].items())
                    if name.startswith(prefix)
                ]
                return self._send(200, entries)
            self._error(404, f"the stand-in does not serve {method} {rest}")

        def _commit(self, repo: Repo, revision: str) -> None:
            lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
            with repo.lock:
                base = repo.files(revision)
                if base is None:
                    return self._error(404, "Invalid rev id", "RevisionNotFound")
                files = dict(base[1])
                summary = ""
                for item in lines:
                    key, value = item["key"], item["value"]
                    if key == "header":
                        summary = value.get("summary", "")
                    elif key == "file":
                        files[value["path"]] = base64.b64decode(value["content"])
                    elif key == "deletedFile":
                        files.pop(value["path"], None)
                    elif key == "deletedFolder":
                        for name in [n for n in files if n.startswith(value["path"].rstrip("/") + "/")]:
                            files.pop(name)
                    else:
                        return self._error(400, f"the stand-in does not take '{key}' commit lines (LFS/Xet)")
                oid = hashlib.sha1(f"{repo.id}{len(repo.commits)}{summary}{time.time_ns()}".encode()).hexdigest()
                repo.commits.append((oid, files))
            prefix = URL_PREFIX[repo.type]
            self._send(
                200, {"success": True, "commitOid": oid, "commitUrl": f"{state.url}/{prefix}{repo.id}/commit/{oid}"}
            )

        def _resolve(self, method: str, repo_type: str, repo_id: str, revision: str, filename: str) -> None:
            repo = self._repo(repo_type, repo_id)
            if repo is None:
                return
            found = repo.files(revision)
            if found is None:
                return self._error(404, "Invalid rev id", "RevisionNotFound")
            oid, files = found
            if filename not in files:
                return self._error(404, "Entry not found", "EntryNotFound")
            data = files[filename]
            headers = {"X-Repo-Commit": oid, "ETag": f'"{_blob_oid(data)}"', "Content-Type": "application/octet-stream"}
            self._send(200, data, headers, head_only=method == "HEAD")

        def _jobs(self, method: str, namespace: str, job_id: str | None, action: str | None) -> None:
            if job_id is None:
                if method == "POST":
                    job = state.run_job(namespace, json.loads(self._body()))
                    return self._send(200, job.info(state.url))
                return self._send(
                    200, [job.info(state.url) for job in state.jobs.values() if job.namespace == namespace]
                )
            job = state.jobs.get(job_id)
            if job is None or job.namespace != namespace:
                return self._error(404, "Job not found")
            if action is None:
                return self._send(200, job.info(state.url))
            if action == "cancel" and method == "POST":
                state.cancel(job)
                return self._send(200, {})
            if action == "logs":
                return self._stream_logs(job)
            if action == "metrics":
                return self._stream_metrics(job)
            self._error(404, "unknown job action")

        def _start_stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()

        def _stream_logs(self, job: Job) -> None:
            self._start_stream()
            sent = 0
            while True:
                with job.changed:
                    if sent >= len(job.logs) and job.stage not in TERMINAL:
                        job.changed.wait(timeout=5.0)
                    batch = job.logs[sent:]
                    ended = job.stage in TERMINAL
                if batch:
                    payload = b"".join(
                        b"data: " + json.dumps({"timestamp": ts, "data": line}).encode() + b"\n\n" for ts, line in batch
                    )
                    self.wfile.write(payload)
                    sent += len(batch)
                elif not ended:
                    self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
                if ended and sent >= len(job.logs):
                    return

        def _stream_metrics(self, job: Job) -> None:
            if job.stage in TERMINAL:
                return self._error(406, "Job is not running")
            import psutil

            self._start_stream()
            while job.stage not in TERMINAL:
                sample = {
                    "cpu_usage_pct": 0,
                    "cpu_millicores": 0,
                    "memory_used_bytes": 0,
                    "memory_total_bytes": psutil.virtual_memory().total,
                    "rx_bps": 0,
                    "tx_bps": 0,
                    "gpus": {},
                    "replica": "standin",
                }
                if job.process is not None:
                    try:
                        tree = psutil.Process(job.process.pid)
                        processes = [tree] + tree.children(recursive=True)
                        sample["memory_used_bytes"] = sum(p.memory_info().rss for p in processes)
                        sample["cpu_usage_pct"] = round(sum(p.cpu_percent(interval=None) for p in processes), 1)
                    except psutil.Error:
                        pass
                self.wfile.write(b"event: metric\ndata: " + json.dumps(sample).encode() + b"\n\n")
                self.wfile.flush()
                time.sleep(1.0)

        do_PUT = do_POST

    return Handler


def _blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob " + str(len(data)).encode() + b"\0" + data).hexdigest()


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Local stand-in for the Hugging Face Hub and Jobs API (tests).")
    parser.add_argument("--port", type=int, default=7885)
    parser.add_argument("--token", default="hf_standin_token")
    args = parser.parse_args()
    standin = StandIn(token=args.token, port=args.port).start()
    print(f"stand-in on {standin.url} (token {args.token}); HF_ENDPOINT={standin.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
