"""Who may do what: modes, roles, the caller's identity and the one authorization function.

Modes (chosen from the environment, checked at start-up by `settings()`):
- private (the default off a Space, or STUDIO_MODE=private): a studio for one person or one trusted team.
  Every caller is the operator; nothing is harder than a plain local tool. The one guard kept from earlier
  versions: a run started in another browser (or by the CLI) is stopped or deleted there, or with
  STUDIO_ADMIN_PASSWORD — it protects a run from a stray click in a second window, not from an attacker.
- public (on by itself when SPACE_ID is set, unless STUDIO_MODE=private; or STUDIO_MODE=public): anyone on
  the internet can open the page. Each visitor has a namespace (their datasets, runs, evaluations, ballots,
  reports); they see their own runs plus the runs an operator marked *shared*. No remote code, no server
  token and no server paths for visitors; per-visitor quotas.
Authentication, independent of the mode:
- STUDIO_PASSWORD (+ STUDIO_USER): Gradio's login in front of the whole studio.
- STUDIO_AUTH=oauth: sign in with Hugging Face (a Space with `hf_oauth: true`). Visitors may look and chat
  with shared runs; only the owners (STUDIO_OWNERS, else the Space's author) train. Implies public mode.
  Contradictory settings (oauth with a password, oauth with STUDIO_MODE=private) refuse to start.

Roles: *operator* (private mode: everyone; public mode: the OAuth owners, or whoever gives
STUDIO_ADMIN_PASSWORD), *signed-in visitor* (OAuth, not an owner), *anonymous visitor*.

Identity. Every Gradio handler is an HTTP endpoint anyone can call with any arguments and any
session_hash, so nothing the client sends is believed:
- a signed-in visitor is the Hugging Face username in Gradio's signed session cookie;
- otherwise the visitor is a server-minted id ("browser-<random>") handed to the browser with an HMAC
  signature (key: STUDIO_SECRET, else a random key kept in STUDIO_HOME/.studio-secret). The browser keeps
  the signed token in localStorage and returns it on load; the server checks the signature and binds the id
  to the page's Gradio session. A forged or missing token gets a fresh, empty namespace — never another's;
- operator rights given by the admin password live only in the server's session table (never in the
  browser's token), for that page session.
ui/guard.py resolves the identity of every request once and sets it here (`acting`); logic calls `current()`.

`authorize(identity, action, resource)` is the one decision; it raises AccessDenied (a StudioError whose
message starts with "Not allowed") with a hint. A run or dataset the caller may not see is refused with the
same words as one that does not exist, so ids cannot be probed.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import hashlib
import hmac
import os
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from studio import limits, paths
from studio.errors import StudioError
from studio.mode import (  # noqa: F401 - the mode is part of access's API: access.is_public(), access.settings()
    ADMIN_ENV,
    AUTH_ENV,
    MODE_ENV,
    REMOTE_CODE_ENV,
    SECRET_ENV,
    Access,
    ConfigurationError,
    Settings,
    _truthy,
    from_env,
    is_public,
    on_zero_gpu,
    settings,
)
from studio.models import catalog

# ---------------------------------------------------------------- environment (studio.mode)

OPERATOR = "operator"
SIGNED_IN = "signed-in visitor"
ANONYMOUS = "anonymous visitor"

# Owner ids that are never a visitor: the CLI and the local single user (and runs of older versions).
CLI_OWNER = "cli"
LOCAL_OWNER = "local"


class AccessDenied(StudioError):
    """The caller may not do this. The message always starts with "Not allowed"."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message if message.startswith("Not allowed") else f"Not allowed: {message}", hint)


def gpu_call(function, duration: int = 120, env: dict | None = None):
    """Wrap a generation function with @spaces.GPU on ZeroGPU; elsewhere return it unchanged."""
    if not on_zero_gpu(env):
        return function
    import spaces  # the Hugging Face `spaces` library, present on Spaces

    return spaces.GPU(duration=duration)(function)


# ---------------------------------------------------------------- identity


@dataclass(frozen=True)
class Identity:
    user_id: str  # the namespace key; "" for a caller with no identity (only possible outside a request)
    role: str
    username: str = ""  # the Hugging Face username when signed in
    client: str = field(default="", compare=False)  # the network address the request came from (rate limits only)

    @property
    def operator(self) -> bool:
        return self.role == OPERATOR

    @property
    def namespace(self) -> str:
        """A folder-safe form of user_id (ids are already letters, digits and '-')."""
        return re.sub(r"[^A-Za-z0-9_-]", "-", self.user_id) or "nobody"


BROWSER_ID_PATTERN = re.compile(r"^browser-[A-Za-z0-9]{12,64}$")
_UNSIGNED_PATTERN = re.compile(r"^[A-Za-z0-9_:-]{3,100}$")  # private mode: ids of older versions, the CLI's
_TOKEN_PATTERN = re.compile(r"^(browser-[A-Za-z0-9]{12,64})\.([A-Za-z0-9_-]{20,64})$")
_secret_lock = threading.Lock()
_secret_cache: dict[str, bytes] = {}


def _secret() -> bytes:
    """The key that signs visitor tokens: STUDIO_SECRET, else a random key kept (0600) in STUDIO_HOME."""
    if os.environ.get(SECRET_ENV):
        return hashlib.sha256(os.environ[SECRET_ENV].encode()).digest()
    path = paths.home() / ".studio-secret"
    key = str(path)
    with _secret_lock:
        if key in _secret_cache:
            return _secret_cache[key]
        try:
            value = bytes.fromhex(path.read_text().strip())
        except (OSError, ValueError):
            value = b""
        if len(value) < 32:
            value = secrets.token_bytes(32)
            fd = os.open(
                path.with_name(f".studio-secret.{os.getpid()}.tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600
            )
            with os.fdopen(fd, "w") as handle:
                handle.write(value.hex())
            try:  # first writer wins: a concurrent start-up must not end with two keys
                os.link(path.with_name(f".studio-secret.{os.getpid()}.tmp"), path)
            except FileExistsError:
                value = bytes.fromhex(path.read_text().strip())
            finally:
                os.unlink(path.with_name(f".studio-secret.{os.getpid()}.tmp"))
        _secret_cache[key] = value
        return value


def _signature(user_id: str) -> str:
    digest = hmac.new(_secret(), f"visitor:{user_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:43]


def new_browser_id() -> str:
    return "browser-" + "".join(
        secrets.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(20)
    )


def sign(user_id: str) -> str:
    """The token the browser keeps: the id and its signature."""
    return f"{user_id}.{_signature(user_id)}"


def verify(token: Any, allow_unsigned: bool = False) -> str | None:
    """The browser id in a token whose signature is right; else None. `allow_unsigned` (private mode only)
    also takes a bare id as older versions kept it."""
    if not isinstance(token, str):
        return None
    match = _TOKEN_PATTERN.match(token.strip())
    if match and hmac.compare_digest(match.group(2), _signature(match.group(1))):
        return match.group(1)
    if allow_unsigned and _UNSIGNED_PATTERN.match(token.strip()):
        return token.strip()
    return None


@dataclass
class _Session:
    user_id: str
    operator: bool = False


_SESSIONS: OrderedDict[str, _Session] = OrderedDict()
_SESSIONS_LOCK = threading.Lock()
MAX_SESSIONS = 50_000  # page sessions remembered (oldest forgotten first; a reload binds again)


def _remember(session_key: str, entry: _Session) -> _Session:
    with _SESSIONS_LOCK:
        _SESSIONS[session_key] = entry
        _SESSIONS.move_to_end(session_key)
        while len(_SESSIONS) > MAX_SESSIONS:
            _SESSIONS.popitem(last=False)
    return entry


def _session(session_key: str | None) -> _Session | None:
    if not session_key:
        return None
    with _SESSIONS_LOCK:
        return _SESSIONS.get(session_key)


def establish(session_key: str | None, token: Any) -> str:
    """Page load: take the browser's token if its signature holds (else mint a new id), bind it to this page
    session and return the token for the browser to keep. Operator rights are never carried over."""
    user_id = verify(token, allow_unsigned=not is_public()) or new_browser_id()
    if session_key:
        current_entry = _session(session_key)
        operator = bool(current_entry and current_entry.user_id == user_id and current_entry.operator)
        _remember(session_key, _Session(user_id, operator))
    return sign(user_id)


ADMIN_ATTEMPTS_ALL_CLIENTS = 10


def check_admin_password(given: str | None) -> bool:
    """True when STUDIO_ADMIN_PASSWORD is set and `given` matches it (constant-time). The one place the admin
    password is checked: wrong ones are counted (studio.limits.ADMIN_ATTEMPTS), and past
    STUDIO_MAX_PASSWORD_ATTEMPTS in 15 minutes every attempt, right or wrong, is refused with AccessDenied
    saying when to try again — so the password cannot be guessed fast. No password given counts nothing."""
    expected = os.environ.get(ADMIN_ENV, "")
    if not expected or not given:
        return False
    # Wrong attempts count per client address, so a stranger's guesses cannot lock the operator out; all clients
    # together get ADMIN_ATTEMPTS_ALL_CLIENTS times as many, against guesses spread over many addresses.
    client = f"admin:{current().client or 'unknown'}"
    try:
        limits.ADMIN_ATTEMPTS.check(client, "admin password")
        limits.ADMIN_ATTEMPTS.check("admin", "admin password", factor=ADMIN_ATTEMPTS_ALL_CLIENTS)
    except StudioError as error:
        raise AccessDenied(error.message, error.hint) from None
    if hmac.compare_digest(str(given).encode(), expected.encode()):
        return True
    limits.ADMIN_ATTEMPTS.failed(client)
    limits.ADMIN_ATTEMPTS.failed("admin")
    return False


def become_operator(session_key: str | None, password: str | None) -> Identity:
    """Give operator rights to this page session when the admin password is right."""
    if not check_admin_password(password):
        raise AccessDenied(
            "the admin password is wrong"
            if os.environ.get(ADMIN_ENV)
            else "no admin password is configured on this studio",
            "Ask the person who runs this studio."
            if os.environ.get(ADMIN_ENV)
            else "The operator sets STUDIO_ADMIN_PASSWORD (or signs in with Hugging Face as an owner).",
        )
    if session_key:
        entry = _session(session_key) or _Session(new_browser_id())
        _remember(session_key, _Session(entry.user_id, True))
    return identify(session_key)


def identify(session_key: str | None, oauth_username: str | None = None, token: Any = None) -> Identity:
    """The caller of one request: the signed-in user, else the page session's browser id (minted on first
    use when the page never loaded, e.g. a raw API call), else a token handed in by a direct call."""
    config = settings()
    entry = _session(session_key)
    if entry is None:
        user_id = verify(token, allow_unsigned=not config.public)
        if session_key:
            entry = _remember(session_key, _Session(user_id or new_browser_id()))
        elif user_id:
            entry = _Session(user_id)
    if not config.public:
        return Identity(entry.user_id if entry else LOCAL_OWNER, OPERATOR)
    if oauth_username and config.oauth:
        name = str(oauth_username)
        role = OPERATOR if config.auth.may_train(name) or (entry and entry.operator) else SIGNED_IN
        return Identity(f"hf-{name.lower()}", role, name)
    if entry is None:
        return Identity("", ANONYMOUS)
    return Identity(entry.user_id, OPERATOR if entry.operator else ANONYMOUS)


_CURRENT: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("studio_identity", default=None)


@contextlib.contextmanager
def acting(identity: Identity):
    """Run a block as `identity` (ui/guard.py around every handler; the CLI as the operator)."""
    handle = _CURRENT.set(identity)
    try:
        yield identity
    finally:
        _CURRENT.reset(handle)


def current(token: Any = None) -> Identity:
    """The caller: set by the guard for a request; else (a direct call) from `token`; else private mode's
    local user, or nobody in public mode."""
    identity = _CURRENT.get()
    if identity is not None:
        return identity
    return identify(None, None, token)


def with_admin_password(identity: Identity, password: str | None) -> Identity:
    """The identity with operator rights for this one action when the admin password is right."""
    if password and check_admin_password(password):
        return replace(identity, role=OPERATOR)
    return identity


# ---------------------------------------------------------------- the authorization function

LOOK = "look"  # pure UI, the caller's own state, public facts
LINT = "lint"  # check the sample or an uploaded file (nothing saved)
LINT_HUB = "lint_hub"  # download a Hub dataset onto the server
SAVE_DATASET = "save_dataset"
TRAIN = "train"  # start or queue a run
CONTROL = "control"  # stop, resume, delete, cancel a run
EXPORT = "export"  # zip, merge, push a run's adapter
VIEW = "view"  # see a run: status, charts, config, its saved evaluation
CHAT = "chat"  # generate with a run's adapter
EVALUATE = "evaluate"  # a held-out evaluation (compute; written to the caller's namespace)
VOTE = "vote"  # blind A/B ballot (the caller's own)
REPORT = "report"  # a stakeholder report (the caller's namespace)
OPERATE = "operate"  # operator tools: share runs, reorder the queue, remote code
ACTIONS = (LOOK, LINT, LINT_HUB, SAVE_DATASET, TRAIN, CONTROL, EXPORT, VIEW, CHAT, EVALUATE, VOTE, REPORT, OPERATE)

# What each role may do in public mode, before the per-resource rules (own / shared / operator).
_PUBLIC = {
    ANONYMOUS: {LOOK, LINT, LINT_HUB, SAVE_DATASET, TRAIN, CONTROL, EXPORT, VIEW, CHAT, EVALUATE, VOTE, REPORT},
    SIGNED_IN: {LOOK, LINT, LINT_HUB, SAVE_DATASET, TRAIN, CONTROL, EXPORT, VIEW, CHAT, EVALUATE, VOTE, REPORT},
    OPERATOR: set(ACTIONS),
}
# With Hugging Face sign-in, visitors (signed in or not) look, chat with shared runs and vote; owners train.
_OAUTH_VISITOR = {LOOK, LINT, VIEW, CHAT, VOTE, REPORT}

_WHY = {
    LINT_HUB: "download datasets from the Hub here",
    SAVE_DATASET: "save datasets here",
    TRAIN: "train here",
    CONTROL: "change runs here",
    EXPORT: "export runs here",
    EVALUATE: "run evaluations here",
    OPERATE: "use the operator's tools",
}


def allowed_actions(identity: Identity) -> set[str]:
    config = settings()
    if not config.public:
        return set(ACTIONS)
    if config.oauth and not identity.operator:
        return set(_OAUTH_VISITOR)
    return set(_PUBLIC.get(identity.role, {LOOK}))


def _role_refusal(identity: Identity, action: str) -> AccessDenied:
    config = settings()
    what = _WHY.get(action, f"do that ({action})")
    if config.oauth and not identity.operator:
        owners = ", ".join(config.auth.owners) or "its owner"
        who = f"@{identity.username} may look around, but only" if identity.username else "Only"
        return AccessDenied(
            f"{who} the owners of this Space ({owners}) {what}.",
            "Sign in with Hugging Face as an owner. Visitors can chat with the shared demo runs in "
            "Compare and vote in their blind tests.",
        )
    return AccessDenied(
        f"only the operator of this studio may {what}.",
        "The operator signs in with the admin password (or as an owner with Hugging Face).",
    )


def _owner_of(resource: Any) -> str:
    if resource is None:
        return ""
    if isinstance(resource, dict):
        return str(resource.get("owner") or "")
    status = getattr(resource, "status", None)
    if isinstance(status, dict):
        return str(status.get("owner") or "")
    return str(getattr(resource, "owner", "") or "")


def _is_shared(resource: Any) -> bool:
    status = getattr(resource, "status", None)
    return bool(isinstance(status, dict) and status.get("shared"))


def owns(identity: Identity, resource: Any) -> bool:
    """True when the resource (a run record, run info or dataset manifest) was made by this caller."""
    owner = _owner_of(resource)
    return bool(owner) and bool(identity.user_id) and hmac.compare_digest(owner.encode(), identity.user_id.encode())


def can_see(identity: Identity, resource: Any) -> bool:
    """Private mode: everything. Public mode: the caller's own, the shared runs, and all for the operator."""
    if not settings().public or identity.operator:
        return True
    return owns(identity, resource) or _is_shared(resource)


def _resource_name(resource: Any) -> str:
    name = getattr(resource, "name", None)
    if name is None and isinstance(resource, dict):
        name = resource.get("name")
    return str(name or getattr(resource, "run_id", "") or "")


def authorize(
    identity: Identity, action: str, resource: Any = None, admin_password: str | None = None, verb: str | None = None
) -> Identity:
    """The one authorization decision. Returns the identity to act as (with operator rights when the admin
    password was given and is right); raises AccessDenied with a clear message otherwise.

    `resource` is a run (RunRecord / RunInfo) or a dataset manifest; `verb` words the message ("stop", ...)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    config = settings()
    password_ok = check_admin_password(admin_password)  # checked (and counted) once per decision
    if password_ok:
        identity = replace(identity, role=OPERATOR)
    if action not in allowed_actions(identity):
        raise _role_refusal(identity, action)
    if config.public and action not in (LOOK, LINT) and not identity.user_id and not identity.operator:
        raise AccessDenied("this request carries no visitor identity.", "Reload the page and try again.")
    if resource is None:
        return identity
    if action in (CONTROL, EXPORT):
        if not config.public:
            # The local guard kept from earlier versions: the browser (or CLI) that started a run, or the admin
            # password, may stop/resume/delete it; runs from versions without owners are open.
            owner = _owner_of(resource)
            if not owner or owner == LOCAL_OWNER or owns(identity, resource) or action == EXPORT or password_ok:
                return identity
            raise AccessDenied(
                f"you cannot {verb or 'change'} the run '{_resource_name(resource)}': another session started it.",
                "Ask the person who started it, or enter the admin password."
                if config.admin_password_set
                else "Only the browser session that started it can do that.",
            )
        if identity.operator or owns(identity, resource):
            return identity
        if can_see(identity, resource):
            raise AccessDenied(
                f"you cannot {verb or action} the run '{_resource_name(resource)}': it belongs to "
                "someone else (it is shared for viewing only).",
                "Train your own run to export or change it.",
            )
        raise not_found(resource)
    if not can_see(identity, resource):
        raise not_found(resource)
    return identity


def not_found(resource: Any = None, kind: str = "run") -> AccessDenied:
    """The refusal for something the caller may not see — worded the same as for something that does not exist."""
    rid = (
        getattr(resource, "run_id", None)
        or (resource.get("id") if isinstance(resource, dict) else None)
        or (str(resource) if isinstance(resource, str) else "")
    )
    shown = f" '{str(rid)[:80]}'" if rid else ""
    return AccessDenied(
        f"no {kind}{shown} is available to you.", f"Pick one of your own {kind}s (or a shared demo run) from the list."
    )


def require_remote_code_allowed(identity: Identity) -> None:
    """trust_remote_code runs the model author's Python: in public mode only for an operator, and only when
    STUDIO_ALLOW_REMOTE_CODE=1."""
    config = settings()
    if not config.public:
        return
    if identity.operator and config.allow_remote_code:
        return
    raise AccessDenied(
        "this public studio does not run a model's own Python code (trust_remote_code).",
        "Pick a model that works without remote code. The operator can allow it for their own "
        "runs with STUDIO_ALLOW_REMOTE_CODE=1.",
    )


def hub_token_for(identity: Identity) -> bool | None:
    """The `token=` argument for Hub downloads on this caller's behalf: None (the server's token, if any) for an
    operator, False (no token at all) for anyone else, so a visitor's id never reaches private or gated repos."""
    return None if identity.operator else False


def download_token() -> bool | None:
    return hub_token_for(current())


# ---------------------------------------------------------------- paths (public mode)

PATH_LIKE = re.compile(r"^(/|~|\.|[A-Za-z]:\\)|[\\/]")


def inside(path: str | os.PathLike, root: str | os.PathLike) -> Path | None:
    """The path with symlinks resolved when it lies inside root (also resolved); else None."""
    try:
        resolved = Path(path).expanduser().resolve()
        base = Path(root).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if resolved == base or base in resolved.parents:
        return resolved
    return None


def check_upload_path(path: str | os.PathLike | None) -> Path | None:
    """A file handed in as an upload. Public mode: only files in Gradio's upload folder or the studio's uploads
    folder (symlinks resolved); private mode: any file."""
    if not path:
        return None
    if not settings().public:
        return Path(path)
    for root in upload_roots():
        found = inside(path, root)
        if found is not None:
            return found
    raise AccessDenied("that file was not uploaded to this studio.", "Upload the file with the upload box.")


def upload_roots() -> list[Path]:
    import tempfile

    gradio_dir = os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir()) / "gradio")
    return [Path(gradio_dir), paths.home() / "uploads"]


def check_model_ref(ref: str) -> None:
    """A model named in a form. Public mode: the bundled model, a Hub id, or a folder inside the studio's
    models folder (symlinks resolved) — never another server folder, and no hint whether one exists. A
    visitor's Hub id must be downloadable now (the Hub, without a token), not read from the server's cache,
    where the operator's gated models may sit."""
    if not settings().public:
        return

    ref = str(ref or "").strip()
    if ref in ("", catalog.BUNDLED, catalog.BUNDLED_LABEL, "bundled"):
        return
    if PATH_LIKE.match(ref) or ref.count("/") > 1 or "\\" in ref or Path(ref).expanduser().exists():
        if inside(ref, paths.models_dir()) is None:
            raise AccessDenied(
                "this public studio loads models only from the Hub or its own models folder, "
                "not from other server folders.",
                "Pick the bundled model, or type a Hub id such as 'HuggingFaceTB/SmolLM2-360M-Instruct'.",
            )
        return
    identity = current()
    if not identity.operator and catalog.classify(ref) == "hub" and catalog.local_files_only(ref):
        raise AccessDenied(
            f"'{ref}' would come from the server's download cache: the Hub cannot be reached now.",
            "Pick the bundled model, which works offline.",
        )


def redact(text: Any) -> Any:
    """Text for the page without the server's folders (public mode only): STUDIO_HOME and the other roots
    become $STUDIO_HOME, $HF_HOME, $APP, $PYTHON, $TMP."""
    if not isinstance(text, str) or not text or not settings().public:
        return text
    import sys
    import tempfile

    roots = {}
    for name, folder in (
        ("$STUDIO_HOME", paths.studio_home()),
        ("$HF_HOME", os.environ.get("HF_HOME")),
        ("$APP", Path(__file__).resolve().parents[1]),
        ("$PYTHON", sys.prefix),
        ("$TMP", tempfile.gettempdir()),
    ):
        if folder:
            for form in {str(folder), str(Path(folder).resolve())}:
                if len(form) > 1:
                    roots[form] = name
    for folder in sorted(roots, key=len, reverse=True):
        text = text.replace(folder, roots[folder])
    return text


# ---------------------------------------------------------------- quotas (public mode, visitors)

QUOTA_DEFAULTS = {
    "STUDIO_QUOTA_DATASETS": 10,  # saved datasets kept per visitor
    "STUDIO_QUOTA_RUNS": 10,  # runs kept per visitor (delete old ones to start more)
    "STUDIO_QUOTA_ACTIVE_RUNS": 2,  # runs per visitor queued or training at once
    "STUDIO_QUOTA_MB": 2000,  # disk per visitor: their datasets and runs (checkpoints, adapters, merges)
    "STUDIO_QUEUE_MAX": 20,  # runs of all visitors waiting at once (visitor ids are free to make)
    # Visitor ids are free to make, so per-visitor shares alone do not bound the disk: all visitors together keep
    # at most this much, and nobody writes when the disk has less than STUDIO_MIN_FREE_MB left.
    "STUDIO_QUOTA_ALL_VISITORS_MB": 20000,
    "STUDIO_MIN_FREE_MB": 2000,
}


def quota(name: str) -> int:
    try:
        value = int(float(os.environ.get(name, "")))
        return max(0, value)
    except ValueError:
        return QUOTA_DEFAULTS[name]


# ---------------------------------------------------------------- what the page says


def describe(identity: Identity) -> str:
    """One paragraph for the top of the page: what this visitor may do here (public mode only)."""
    config = settings()
    if not config.public:
        return ""
    if identity.operator:
        return (
            "🔑 **You are this studio's operator.** You see every visitor's runs, can stop, delete or share any "
            "run (shared runs are visible to every visitor), and reorder the training queue."
        )
    if config.oauth:
        who = f"Signed in as **@{identity.username}**." if identity.username else "You are not signed in."
        return (
            f"🔒 **Public studio — look around.** {who} You can check data, chat with the shared demo runs in "
            "**Compare** and vote in their blind tests. Only the Space's owners train here."
        )
    return (
        "🔒 **Public studio.** You can prepare data, train (one run at a time on this machine: runs wait in a "
        f"queue; at most {quota('STUDIO_QUOTA_ACTIVE_RUNS')} of yours at once) and compare your runs with the "
        "base model and the shared demo runs. Your datasets and runs are private to this browser: other visitors "
        "cannot see them, and you cannot see theirs. No remote model code and no server token are used for you."
    )
