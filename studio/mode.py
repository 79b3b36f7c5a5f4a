"""The studio's mode and sign-in method, from the environment: the one answer to "is this studio public?".

Below everything that asks (studio.access for decisions, studio.limits for defaults, the pages for what they
show); studio.access re-exports these names, which is how the rest of the studio reads them."""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

from studio.errors import StudioError

ADMIN_ENV = "STUDIO_ADMIN_PASSWORD"
MODE_ENV = "STUDIO_MODE"
AUTH_ENV = "STUDIO_AUTH"
REMOTE_CODE_ENV = "STUDIO_ALLOW_REMOTE_CODE"
SECRET_ENV = "STUDIO_SECRET"


class ConfigurationError(StudioError):
    """The environment asks for two things that cannot both hold: the studio refuses to start."""


@dataclass(frozen=True)
class Access:
    """The authentication part of the settings (kept for launch(auth=...) and older callers)."""

    mode: str  # "open" | "password" | "oauth"
    owners: tuple[str, ...] = ()

    def launch_auth(self, env: dict | None = None):
        """The auth= argument for demo.launch(): a checker function, or None."""
        env = os.environ if env is None else env
        if self.mode != "password":
            return None
        expected_user = env.get("STUDIO_USER", "studio")
        expected_password = env["STUDIO_PASSWORD"]

        def check(username: str, password: str) -> bool:
            return hmac.compare_digest(username.encode(), expected_user.encode()) and hmac.compare_digest(
                password.encode(), expected_password.encode()
            )

        return check

    def may_train(self, username: str | None) -> bool:
        if self.mode != "oauth":
            return True
        return bool(username) and username.lower() in {owner.lower() for owner in self.owners}

    def why_not(self, username: str | None) -> str:
        if self.may_train(username):
            return ""
        if not username:
            return "This Space is read-only for visitors: sign in with Hugging Face as its owner to train."
        return f"@{username} may look around, but only the Space's owners ({', '.join(self.owners)}) may train here."


def _truthy(value: str | None) -> bool:
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


def from_env(env: dict | None = None) -> Access:
    env = os.environ if env is None else env
    auth = env.get(AUTH_ENV, "").strip().lower()
    if auth == "oauth":
        if env.get("STUDIO_PASSWORD"):
            raise ConfigurationError(
                "STUDIO_AUTH=oauth and STUDIO_PASSWORD are both set: the studio would either ignore the password or "
                "lock out the Hugging Face sign-in.",
                "Keep one: unset STUDIO_PASSWORD to let visitors sign in with Hugging Face, or unset STUDIO_AUTH to "
                "put the whole studio behind the password.",
            )
        owners = [name.strip() for name in env.get("STUDIO_OWNERS", "").split(",") if name.strip()]
        if not owners and env.get("SPACE_AUTHOR_NAME"):
            owners = [env["SPACE_AUTHOR_NAME"]]
        return Access("oauth", tuple(owners))
    if auth not in ("", "none", "password"):
        raise ConfigurationError(
            f"STUDIO_AUTH={env.get(AUTH_ENV)} is not a known sign-in method.",
            "Use STUDIO_AUTH=oauth (sign in with Hugging Face) or leave it unset.",
        )
    if env.get("STUDIO_PASSWORD"):
        return Access("password")
    return Access("open")


@dataclass(frozen=True)
class Settings:
    public: bool
    auth: Access
    admin_password_set: bool
    allow_remote_code: bool

    @property
    def oauth(self) -> bool:
        return self.auth.mode == "oauth"

    @property
    def mode_name(self) -> str:
        return "public" if self.public else "private"


def settings(env: dict | None = None) -> Settings:
    """The studio's mode from the environment; raises ConfigurationError on contradictory settings."""
    env = os.environ if env is None else env
    auth = from_env(env)
    mode = env.get(MODE_ENV, "").strip().lower()
    if mode not in ("", "public", "private"):
        raise ConfigurationError(
            f"STUDIO_MODE={env.get(MODE_ENV)} is not a mode.",
            "Use STUDIO_MODE=public (visitors isolated) or STUDIO_MODE=private (one trusted user).",
        )
    if auth.mode == "oauth" and mode == "private":
        raise ConfigurationError(
            "STUDIO_AUTH=oauth (visitors sign in) and STUDIO_MODE=private (one trusted user) contradict each other.",
            "Unset STUDIO_MODE to run a public Space with Hugging Face sign-in, or unset STUDIO_AUTH.",
        )
    if auth.mode == "oauth" and _truthy(env.get("STUDIO_OAUTH_LOCAL")) and not env.get("OAUTH_CLIENT_SECRET"):
        raise ConfigurationError(
            "STUDIO_OAUTH_LOCAL=1 without OAUTH_CLIENT_SECRET: Gradio would sign the sign-in cookie with a key "
            "anyone can compute, so anyone could pose as an owner.",
            "Set OAUTH_CLIENT_SECRET to a long random string (on a Space with `hf_oauth: true` it is set for you).",
        )
    if mode:
        public = mode == "public"
    else:
        public = bool(env.get("SPACE_ID")) or auth.mode == "oauth"
    return Settings(
        public=public,
        auth=auth,
        admin_password_set=bool(env.get(ADMIN_ENV)),
        allow_remote_code=_truthy(env.get(REMOTE_CODE_ENV)),
    )


def is_public(env: dict | None = None) -> bool:
    """The one answer to "is this studio public?" (access decisions, limits, what pages show). Contradictory
    settings make the app refuse to start; anywhere else they count as public, the stricter mode."""
    try:
        return settings(env).public
    except ConfigurationError:
        return True


def on_zero_gpu(env: dict | None = None) -> bool:
    """True on Hugging Face ZeroGPU hardware: short GPU calls only, no training jobs."""
    env = os.environ if env is None else env
    return env.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")
