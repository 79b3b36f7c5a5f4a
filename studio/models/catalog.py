"""The model catalog: the bundled default, any Hugging Face Hub id, or a local folder.

A model reference is a string: BUNDLED (the default), a local folder path, or a Hub id.
`resolve()` turns it into something `from_pretrained` accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from studio.errors import StudioError
from studio.models import bundled

BUNDLED = "bundled:SmolLM2-135M-Instruct"
BUNDLED_LABEL = "SmolLM2-135M-Instruct (bundled, offline)"
DEFAULT_MODEL = BUNDLED

# A few Hub models that fine-tune well with LoRA; shown as suggestions, any id works.
SUGGESTED_HUB_MODELS = (
    "HuggingFaceTB/SmolLM2-360M-Instruct",
    "Qwen/Qwen2.5-0.5B-Instruct",
    "Qwen/Qwen2.5-1.5B-Instruct",
    "meta-llama/Llama-3.2-1B-Instruct",
)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class ModelEntry:
    ref: str
    label: str
    source: str  # "bundled" | "local" | "hub"
    ready: bool  # usable without a download or conversion
    detail: str = ""


def classify(ref: str) -> str:
    ref = (ref or "").strip()
    if ref in ("", BUNDLED, BUNDLED_LABEL, "bundled"):
        return "bundled"
    if Path(ref).expanduser().is_dir():
        return "local"
    if ref.startswith(("/", ".", "~")):
        raise StudioError(f"The folder {ref} does not exist.", "Check the path, or pick the bundled model or a Hub id.")
    if _HUB_ID.match(ref):
        return "hub"
    raise StudioError(
        f"'{ref}' is neither a local folder nor a Hugging Face model id.",
        "Use an id like 'Qwen/Qwen2.5-0.5B-Instruct', a folder with config.json, or the bundled model.",
    )


def entries() -> list[ModelEntry]:
    installed = bundled.gguf_path() is not None
    converted = bundled.is_converted()
    if converted:
        detail = f"converted at {bundled.converted_dir()}"
    elif installed:
        detail = "installed; converted on first use (about a minute, once)"
    else:
        detail = "not installed: run the README setup, or use a Hub id / local folder"
    items = [ModelEntry(BUNDLED, BUNDLED_LABEL, "bundled", converted, detail)]
    items += [
        ModelEntry(hub_id, hub_id, "hub", False, "downloaded from the Hub on first use")
        for hub_id in SUGGESTED_HUB_MODELS
    ]
    return items


def label(ref: str) -> str:
    return BUNDLED_LABEL if classify(ref) == "bundled" else ref


def resolve(ref: str, progress=None) -> str:
    """Return a path or Hub id for from_pretrained; converts the bundled model on first use."""
    kind = classify(ref)
    if kind == "bundled":
        if bundled.gguf_path() is None and not _offline():
            # e.g. on a Space, where the GGUF package is not installed: the same model from the Hub.
            return bundled.HUB_ID
        return str(bundled.ensure_converted(progress))
    if kind == "local":
        folder = Path(ref).expanduser().resolve()
        if not (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file():
            raise StudioError(
                f"The folder {folder} has no config.json, so it is not a Hugging Face model folder.",
                "Pick the folder that holds config.json and the weights (model.safetensors).",
            )
        return str(folder)
    if bundled.HUB_ID == ref.strip() and bundled.gguf_path() is not None and _offline():
        # The Hub copy of the bundled model is the same model: use it offline.
        return str(bundled.ensure_converted(progress))
    return ref.strip()


def _offline() -> bool:
    import os

    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


_reachability: dict[str, tuple[float, bool]] = {}


def hub_reachable(timeout: float = 3.0, ttl: float = 60.0) -> bool:
    """Can we open a connection to the Hub? Cached briefly: without it, an offline load retries for a minute."""
    import os
    import socket
    import time
    from urllib.parse import urlparse

    if _offline():
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    cached = _reachability.get(host)
    if cached and time.monotonic() - cached[0] < ttl:
        return cached[1]
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        reachable = True
    except OSError:
        reachable = False
    _reachability[host] = (time.monotonic(), reachable)
    return reachable


def local_files_only(ref: str) -> bool:
    """True when from_pretrained must not try the network for this ref (offline or a local source)."""
    return classify(ref) != "hub" or not hub_reachable()
