"""A hostile visitor's HTTP client for the attack suite: Gradio's own wire protocol, no browser, no gradio_client.

`Visitor.call(fn_index, data)` posts to /gradio_api/queue/join with any fn_index and this visitor's
session_hash (any string the attacker likes), then reads the session's event stream until that event
completes. Nothing here trusts the app: every response is kept (`Visitor.transcript`) so a test can search
all of it for another visitor's data or a server path.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

API = "/gradio_api"


@dataclass
class Result:
    success: bool
    data: list | None  # the outputs when it succeeded
    error: str  # the message (and title) when it failed
    raw: list[dict] = field(default_factory=list)

    @property
    def text(self) -> str:
        """Everything the server sent for this event, as one string (outputs, errors, progress)."""
        return json.dumps(self.raw, ensure_ascii=False, default=str)

    @property
    def refused(self) -> bool:
        """Refused with the studio's clear message ("Not allowed…"), as an error or in an output."""
        return "Not allowed" in self.text


class Visitor:
    def __init__(self, base_url: str, session_hash: str | None = None, cookies: dict[str, str] | None = None):
        self.base = base_url.rstrip("/")
        self.session_hash = session_hash or secrets.token_hex(6)
        headers = {}
        if cookies:
            headers["Cookie"] = "; ".join(f"{key}={value}" for key, value in cookies.items())
        self.http = httpx.Client(timeout=120, headers=headers)
        self.transcript: list[str] = []
        self._config: dict | None = None

    def close(self) -> None:
        self.http.close()

    # ---- the app's own description of itself
    def config(self) -> dict:
        if self._config is None:
            self._config = self.http.get(f"{self.base}/config").json()
            self.transcript.append(json.dumps(self._config))
        return self._config

    def dependencies(self) -> list[dict]:
        return [dep for dep in self.config()["dependencies"] if dep.get("backend_fn")]

    def component(self, component_id: int) -> dict:
        return next(c for c in self.config()["components"] if c["id"] == component_id)

    def fn_index(self, api_name: str) -> int:
        matches = [dep["id"] for dep in self.config()["dependencies"] if dep.get("api_name") == api_name]
        assert matches, f"no handler named {api_name}"
        return matches[0]

    # ---- calls
    def call(self, fn_index: int, data: list[Any], event_data: Any = None, timeout: float = 180) -> Result:
        body = {
            "data": data,
            "fn_index": fn_index,
            "session_hash": self.session_hash,
            "event_data": event_data,
            "trigger_id": None,
        }
        joined = self.http.post(f"{self.base}{API}/queue/join", json=body)
        if joined.status_code != 200:
            text = joined.text
            self.transcript.append(text)
            return Result(False, None, f"HTTP {joined.status_code}: {text[:500]}", [{"http": text}])
        event_id = joined.json()["event_id"]
        raw: list[dict] = []
        deadline = time.monotonic() + timeout  # Gradio's heartbeats keep the stream alive: bound the whole call
        with self.http.stream(
            "GET", f"{self.base}{API}/queue/data", params={"session_hash": self.session_hash}, timeout=timeout
        ) as stream:
            for line in stream.iter_lines():
                if time.monotonic() > deadline:
                    break
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:].strip())
                if message.get("event_id") not in (None, event_id):
                    continue
                raw.append(message)
                if message.get("msg") == "process_completed" and message.get("event_id") == event_id:
                    break
                if message.get("msg") in ("close_stream", "unexpected_error"):
                    break
        self.transcript.append(json.dumps(raw, ensure_ascii=False, default=str))
        done = next((m for m in raw if m.get("msg") == "process_completed"), None)
        if done is None:
            return Result(False, None, "no completion", raw)
        output = done.get("output") or {}
        if done.get("success"):
            return Result(True, output.get("data"), "", raw)
        error = " ".join(str(output.get(key) or "") for key in ("title", "error")).strip()
        return Result(False, None, error, raw)

    def call_named(self, api_name: str, data: list[Any], **kwargs) -> Result:
        return self.call(self.fn_index(api_name), data, **kwargs)

    def upload(self, name: str, content: bytes) -> dict:
        """Upload a file the way the browser does; returns the FileData to pass as an input."""
        response = self.http.post(f"{self.base}{API}/upload", files={"files": (name, content)})
        response.raise_for_status()
        path = response.json()[0]
        return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}

    def load_page(self, token: str | None = None) -> str:
        """What the page does on load: hand the stored token (if any) to the server, get the one to keep."""
        on_load = self.fn_index("on_load")
        result = self.call(on_load, [token or "", None, ""])  # stored token, view, the run in the address
        assert result.success, result.error
        back = self.call(self.fn_index("hand_back_token"), [None])
        assert back.success, back.error
        return back.data[0]

    def all_text(self) -> str:
        return "\n".join(self.transcript)


def session_cookie(secret_key: str, session: dict) -> str:
    """A session cookie as Starlette's SessionMiddleware signs it (what Gradio's Hugging Face sign-in sets)."""
    from itsdangerous import TimestampSigner

    data = base64.b64encode(json.dumps(session).encode())
    return TimestampSigner(secret_key).sign(data).decode()


def oauth_session(username: str) -> dict:
    import time

    return {
        "oauth_info": {
            "access_token": "stand-in-token",
            "token_type": "bearer",
            "expires_at": int(time.time()) + 3600,
            "scope": "openid profile",
            "userinfo": {
                "sub": "1",
                "name": username,
                "preferred_username": username,
                "profile": f"https://huggingface.co/{username}",
                "picture": "",
            },
        }
    }
