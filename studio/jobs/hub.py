"""The studio's handle on the Hugging Face Hub for remote runs: client, token, namespace, plain errors.

The client is built per call from the environment as it is then (HF_ENDPOINT, HF_TOKEN), not as it was when
huggingface_hub was imported: a test points HF_ENDPOINT at a local stand-in server after start-up, and an
operator may set the token later. The token is read from HF_TOKEN only, passed to the client in memory and
never written anywhere; `explain` scrubs it from any message it builds.
"""

from __future__ import annotations

import os
from functools import lru_cache

from studio.errors import StudioError

TOKEN_ENV = "HF_TOKEN"
NAMESPACE_ENV = "STUDIO_JOBS_NAMESPACE"  # an organisation to bill and to own the repos; default: the token's user
DEFAULT_ENDPOINT = "https://huggingface.co"


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def token() -> str:
    value = os.environ.get(TOKEN_ENV, "").strip()
    if not value:
        raise StudioError(
            "Remote runs need the operator's Hugging Face token, and HF_TOKEN is not set.",
            "Start the studio with HF_TOKEN set to a write token of the account (or organisation "
            "member) that pays for Jobs; on a Space, add it as a secret.",
        )
    return value


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def api(token_value: str | None = None):
    """An HfApi for the current endpoint and token (the operator's)."""
    if offline():
        raise StudioError(
            "The studio runs offline (HF_HUB_OFFLINE is set), so it cannot reach Hugging Face Jobs.",
            "Unset HF_HUB_OFFLINE to send runs to Jobs, or train here.",
        )
    _allow_requests()
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint(), token=token_value or token())


def _allow_requests() -> None:
    """huggingface_hub reads HF_HUB_OFFLINE once, at import; follow the environment as it is now."""
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = offline()


def namespace(client=None) -> str:
    configured = os.environ.get(NAMESPACE_ENV, "").strip()
    if configured:
        return configured
    client = client or api()
    return _whoami_name(client.endpoint, client.token)


@lru_cache(maxsize=8)
def _whoami_name(endpoint_url: str, token_value: str) -> str:
    # whoami is rate-limited on the Hub: once per endpoint and token for the life of the process.
    from huggingface_hub import HfApi

    try:
        return HfApi(endpoint=endpoint_url, token=token_value).whoami()["name"]
    except Exception as error:  # noqa: BLE001 - turned into a plain message
        raise explain(error, "check who the token belongs to") from error


def explain(error: BaseException, doing: str) -> StudioError:
    """A plain message for a failed Hub call, with the token scrubbed."""
    if isinstance(error, StudioError):
        return error
    status = getattr(getattr(error, "response", None), "status_code", None)
    text = scrub(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)[:300]
    if status == 401:
        return StudioError(
            f"Hugging Face refused the token while trying to {doing} (401).",
            "Check that HF_TOKEN is a valid token; Jobs need a write token.",
        )
    if status == 402:
        return StudioError(
            f"Hugging Face asked for payment while trying to {doing} (402).",
            "Jobs need a PRO account or a Team/Enterprise organisation with credits.",
        )
    if status == 403:
        return StudioError(
            f"Hugging Face did not allow it while trying to {doing} (403).",
            "The token needs write access to the namespace that runs the job.",
        )
    if status == 404:
        return StudioError(
            f"Hugging Face did not find it while trying to {doing} (404): {text}",
            "It may have been deleted on the Hub.",
        )
    if status is not None and status >= 500:
        return StudioError(
            f"Hugging Face had a server error while trying to {doing} ({status}).", "Try again in a minute."
        )
    if type(error).__name__ in (
        "ConnectError",
        "ConnectTimeout",
        "ReadTimeout",
        "OfflineModeIsEnabled",
        "TimeoutException",
    ):
        return StudioError(
            f"Could not reach Hugging Face while trying to {doing}.",
            "Check the network connection (and HF_ENDPOINT, if set).",
        )
    return StudioError(f"Could not {doing}: {type(error).__name__}: {text}", "Details are in the run's log.txt.")


def scrub(text: str) -> str:
    value = os.environ.get(TOKEN_ENV, "").strip()
    return text.replace(value, "***") if value else text
