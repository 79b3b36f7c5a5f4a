"""Who may do what on a shared deployment.

Modes, chosen from the environment:
- open (default): a local studio; everyone may train.
- password: STUDIO_PASSWORD set → the whole studio sits behind Gradio's login (user STUDIO_USER, default "studio").
- oauth: STUDIO_AUTH=oauth on a Space with `hf_oauth: true` → anyone may look (Decide, Data, Compare), only
  the owners may train: STUDIO_OWNERS (comma-separated Hugging Face usernames), else the Space's author.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Access:
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


def from_env(env: dict | None = None) -> Access:
    env = os.environ if env is None else env
    if env.get("STUDIO_AUTH", "").lower() == "oauth":
        owners = [name.strip() for name in env.get("STUDIO_OWNERS", "").split(",") if name.strip()]
        if not owners and env.get("SPACE_AUTHOR_NAME"):
            owners = [env["SPACE_AUTHOR_NAME"]]
        return Access("oauth", tuple(owners))
    if env.get("STUDIO_PASSWORD"):
        return Access("password")
    return Access("open")


def on_zero_gpu(env: dict | None = None) -> bool:
    """True on Hugging Face ZeroGPU hardware: short GPU calls only, no training jobs."""
    env = os.environ if env is None else env
    return env.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")


def gpu_call(function, duration: int = 120, env: dict | None = None):
    """Wrap a generation function with @spaces.GPU on ZeroGPU; elsewhere return it unchanged."""
    if not on_zero_gpu(env):
        return function
    import spaces  # the Hugging Face `spaces` library, present on Spaces

    return spaces.GPU(duration=duration)(function)
