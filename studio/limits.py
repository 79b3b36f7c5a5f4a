"""Every limit the studio enforces, in one place: its environment variable and its default per mode.

Which mode applies is studio.access's decision (`access.is_public`): public on a Hugging Face Space
(SPACE_ID set) or with STUDIO_AUTH=oauth, unless STUDIO_MODE=private; STUDIO_MODE=public turns it on
anywhere. Locally (private mode) the one person at their own machine is not hampered: training and
evaluation caps are off and the byte budgets are generous; they only stop files that would take the
machine down.

Each limit is read from its environment variable when it is used, so an operator changes one with
an environment variable and a restart, never with code. A value of "off" (or "none") removes a limit;
an unreadable value falls back to the default of the mode (and says so once on stderr).

    limits.value("epochs")                      -> 10.0 in public mode, None (no limit) locally
    limits.max_bytes("upload_mb")               -> the upload limit in bytes
    limits.check_at_most("epochs", 50, "Epochs")  raises StudioError naming STUDIO_MAX_EPOCHS

Password and admin-password attempts are counted by AttemptLimiter (PASSWORD_ATTEMPTS for the login form,
ADMIN_ATTEMPTS for access.check_admin_password, the one admin check): after the
allowed number of wrong attempts in ATTEMPT_WINDOW_S, every attempt (right or wrong) is refused until
the oldest wrong one leaves the window, so guessing stays slow.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

from studio import mode
from studio.errors import StudioError

MIB = 1024 * 1024
ATTEMPT_WINDOW_S = 15 * 60


@dataclass(frozen=True)
class Limit:
    env: str
    public: float | None  # None = no limit
    private: float | None
    unit: str
    meaning: str


LIMITS: dict[str, Limit] = {
    "upload_mb": Limit(
        "STUDIO_MAX_UPLOAD_MB",
        50,
        200,
        "MB",
        "largest file accepted: the upload is cut off while it streams in, and files read from disk are checked too",
    ),
    "decoded_mb": Limit(
        "STUDIO_MAX_DECODED_MB",
        256,
        4096,
        "MB",
        "most a dataset file may grow to when decompressed (Parquet pages, .gz, .zip), checked before decoding",
    ),
    "rows": Limit("STUDIO_MAX_ROWS", 100_000, None, "rows", "most rows one dataset file may hold"),
    "hub_dataset_mb": Limit(
        "STUDIO_MAX_HUB_DATASET_MB",
        100,
        2048,
        "MB",
        "largest Hugging Face Hub dataset split downloaded (checked before the download; the files are deleted "
        "afterwards)",
    ),
    "epochs": Limit("STUDIO_MAX_EPOCHS", 10, None, "epochs", "most epochs a run may ask for"),
    "steps": Limit(
        "STUDIO_MAX_STEPS",
        2000,
        None,
        "steps",
        "most optimizer steps a run may take (set or worked out from the epochs)",
    ),
    "run_minutes": Limit(
        "STUDIO_MAX_RUN_MINUTES",
        60,
        None,
        "minutes",
        "training time of a run (resumes count too); then it stops gracefully with a checkpoint and its adapter",
    ),
    "eval_prompts": Limit("STUDIO_MAX_EVAL_PROMPTS", 50, None, "prompts", "most prompts one evaluation may answer"),
    "new_tokens": Limit(
        "STUDIO_MAX_NEW_TOKENS", 512, None, "tokens", "most new tokens per answer in chat and evaluation"
    ),
    "upload_cache_hours": Limit(
        "STUDIO_UPLOAD_CACHE_HOURS",
        1,
        24,
        "hours",
        "uploaded files in Gradio's cache are deleted after this long (and all of them on restart)",
    ),
    "tokenizers": Limit(
        "STUDIO_TOKENIZER_CACHE",
        2,
        4,
        "tokenizers",
        "tokenizers kept loaded for the Data tab (least recently used dropped)",
    ),
    "password_attempts": Limit(
        "STUDIO_MAX_PASSWORD_ATTEMPTS",
        10,
        10,
        "attempts",
        "wrong STUDIO_PASSWORD sign-ins or admin passwords allowed in 15 minutes before attempts pause",
    ),
}

_OFF_WORDS = ("off", "none", "unlimited", "no")
_warned: set[str] = set()


def default(name: str, env: dict | None = None) -> float | None:
    spec = LIMITS[name]
    return spec.public if mode.is_public(env) else spec.private


def value(name: str, env: dict | None = None) -> float | None:
    """The limit in force (None = no limit): the environment variable if set and readable, else the mode's default."""
    env = os.environ if env is None else env
    spec = LIMITS[name]
    raw = str(env.get(spec.env, "")).strip()
    if not raw:
        return default(name, env)
    if raw.lower() in _OFF_WORDS:
        return None
    try:
        number = float(raw)
        if not number > 0 or number == float("inf"):
            raise ValueError(raw)
        return number
    except ValueError:
        if spec.env not in _warned:
            _warned.add(spec.env)
            print(
                f"[studio] {spec.env}={raw!r} is not a positive number or 'off'; using {default(name, env)}",
                file=sys.stderr,
            )
        return default(name, env)


def whole(name: str, env: dict | None = None) -> int | None:
    """The limit as a whole number (rounded down, at least 1), or None."""
    limit = value(name, env)
    return None if limit is None else max(1, int(limit))


def max_bytes(name: str, env: dict | None = None) -> int | None:
    """A megabyte limit in bytes (1 MB = 1024 × 1024 bytes), or None."""
    limit = value(name, env)
    return None if limit is None else int(limit * MIB)


def _shown(number: float) -> str:
    return f"{number:,.0f}" if float(number).is_integer() else f"{number:,.2f}"


def raise_hint(name: str, env: dict | None = None) -> str:
    """Who can raise a limit, and how."""
    spec = LIMITS[name]
    if mode.is_public(env):
        return f"The operator of this studio can raise it with the {spec.env} environment variable."
    return f"Raise it with the {spec.env} environment variable (or set it to 'off')."


def check_at_most(name: str, amount: float | None, what: str, hint: str = "", env: dict | None = None) -> None:
    """Raise a StudioError when `amount` is over the limit `name`; `what` names the thing in the message."""
    limit = value(name, env)
    if limit is None or amount is None or amount <= limit:
        return
    spec = LIMITS[name]
    raise StudioError(
        f"{what} is {_shown(amount)} {spec.unit}, over this studio's limit of {_shown(limit)} {spec.unit}.",
        " ".join(part for part in (hint, raise_hint(name, env)) if part),
    )


def delete_cache(env: dict | None = None) -> tuple[int, int] | None:
    """Gradio's Blocks(delete_cache=(every, older_than)) in seconds: uploads are removed after upload_cache_hours."""
    hours = value("upload_cache_hours", env)
    if hours is None:
        return None
    age = max(60, int(hours * 3600))
    return (min(age, 3600), age)


# ---- attempts ----------------------------------------------------------------------------
class AttemptLimiter:
    """Wrong attempts per key in a sliding window; over the limit every attempt is refused until one expires."""

    def __init__(self, limit_name: str = "password_attempts", window_s: float = ATTEMPT_WINDOW_S, clock=time.monotonic):
        self.limit_name = limit_name
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str) -> deque:
        failures = self._failures.setdefault(key, deque())
        cutoff = self.clock() - self.window_s
        while failures and failures[0] <= cutoff:
            failures.popleft()
        return failures

    def wait_seconds(self, key: str, factor: int = 1) -> float:
        """0 when an attempt may be made now, else how long until one may (`factor` times the limit for `key`)."""
        allowed = whole(self.limit_name)
        if allowed is None:
            return 0.0
        allowed *= factor
        with self._lock:
            failures = self._recent(key)
            if len(failures) < allowed:
                return 0.0
            return max(1.0, failures[-allowed] + self.window_s - self.clock())

    def check(self, key: str, what: str = "password", factor: int = 1) -> None:
        """Raise a StudioError while `key` has used up its wrong attempts."""
        wait = self.wait_seconds(key, factor)
        if wait:
            minutes = max(1, round(wait / 60))
            spec = LIMITS[self.limit_name]
            raise StudioError(
                f"Too many wrong {what} attempts: try again in about {minutes} minute{'s' if minutes != 1 else ''}.",
                f"Attempts pause after {whole(self.limit_name) * factor} wrong ones in "
                f"{self.window_s / 60:.0f} minutes ({spec.env}).",
            )

    def failed(self, key: str) -> None:
        with self._lock:
            self._recent(key).append(self.clock())

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()


PASSWORD_ATTEMPTS = AttemptLimiter()  # STUDIO_PASSWORD sign-ins (one key: the login form gives no client address)
ADMIN_ATTEMPTS = AttemptLimiter()  # STUDIO_ADMIN_PASSWORD checks


# ---- a bounded cache ---------------------------------------------------------------------
class LRUCache:
    """A thread-safe mapping that keeps the `limit_name` most recently used entries (loads happen outside the lock)."""

    def __init__(self, limit_name: str):
        self.limit_name = limit_name
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get_or_load(self, key, load):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        item = load()
        with self._lock:
            self._items[key] = item
            self._items.move_to_end(key)
            keep = whole(self.limit_name)  # None: the operator turned the bound off
            while keep is not None and len(self._items) > keep:
                self._items.popitem(last=False)
        return item

    def keys(self) -> list:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def markdown_table(env: dict | None = None) -> str:
    """The README's table of limits (variable, meaning, public default, local default)."""

    def shown(number):
        return "no limit" if number is None else _shown(number)

    lines = ["| variable | limit | public mode | local (private) |", "| --- | --- | --- | --- |"]
    for spec in LIMITS.values():
        lines.append(f"| `{spec.env}` | {spec.meaning} ({spec.unit}) | {shown(spec.public)} | {shown(spec.private)} |")
    return "\n".join(lines)
