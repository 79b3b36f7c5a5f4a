"""Load tokenizers and causal LMs with plain-language errors instead of tracebacks.

cached_tokenizer keeps the few most recently used tokenizers loaded (STUDIO_TOKENIZER_CACHE, see
studio.limits): visitors picking one model after another cannot grow the app's memory without end.
"""

from __future__ import annotations

from studio import limits
from studio.errors import StudioError
from studio.models import catalog

_TOKENIZERS = limits.LRUCache("tokenizers")


def explain_load_error(ref: str, error: Exception) -> StudioError:
    """Map the many ways from_pretrained fails to one message and a hint."""
    text = f"{type(error).__name__}: {error}"
    lowered = text.lower()
    if "trust_remote_code" in lowered:
        return StudioError(
            f"{ref} ships its own Python code, which the studio does not run by default.",
            "Only if you trust its authors, turn on 'Allow remote code' and load it again.",
        )
    if "gated" in lowered or "401" in lowered or "403" in lowered or "access to model" in lowered:
        return StudioError(
            f"{ref} is gated or private on the Hugging Face Hub.",
            "Accept its licence on the model page and give a Hugging Face token (HF_TOKEN) with access.",
        )
    if "repositorynotfound" in lowered or "404" in lowered or "is not a valid model identifier" in lowered:
        return StudioError(
            f"No model called '{ref}' was found on the Hugging Face Hub.",
            "Check the spelling (owner/name), or pick the bundled model or a local folder.",
        )
    if "unrecognized configuration class" in lowered or "automodelforcausallm" in lowered:
        return StudioError(
            f"{ref} is not a text-generation (causal LM) model.",
            "Pick a decoder model such as SmolLM2, Qwen2.5 or Llama 3 (an '-Instruct' variant for chat).",
        )
    if "no file named" in lowered and ("safetensors" in lowered or "pytorch_model" in lowered):
        return StudioError(
            f"{ref} has no model weights (model.safetensors).",
            "Pick the folder that holds the weights, or re-download the model.",
        )
    offline_markers = ("local_files_only", "outgoing traffic has been disabled", "offline", "connection", "resolve", "max retries", "name or service", "timed out", "couldn't connect", "cannot find the requested files")
    if any(marker in lowered for marker in offline_markers):
        return StudioError(
            f"Could not reach the Hugging Face Hub to download {ref}.",
            "You seem to be offline: use the bundled model or a local model folder.",
        )
    if isinstance(error, MemoryError) or "out of memory" in lowered:
        return StudioError(f"Not enough memory to load {ref}.", "Pick a smaller model or close other runs.")
    return StudioError(f"Could not load {ref}: {error}", "Check the model id or folder; details are in the log.")


def hub_token(token=None):
    """The `token=` for a Hub download: as given, else decided by who is asking (studio.access): the server's
    token for an operator, none at all for a visitor."""
    if token is not None:
        return token
    from studio import access

    return access.download_token()


def load_tokenizer(ref: str, trust_remote_code: bool = False, progress=None, token=None):
    from transformers import AutoTokenizer

    source = catalog.resolve(ref, progress)
    try:
        return AutoTokenizer.from_pretrained(
            source, trust_remote_code=trust_remote_code, local_files_only=catalog.local_files_only(ref),
            token=hub_token(token),
        )
    except Exception as error:  # noqa: BLE001 - every failure becomes a plain message
        raise explain_load_error(ref, error) from error


def cached_tokenizer(ref: str, progress=None):
    """load_tokenizer(ref) from a bounded least-recently-used cache (per process). Keyed by whose token the
    download may use too: a tokenizer the operator loaded with the server's token is never handed to a visitor."""
    ref = (ref or catalog.BUNDLED).strip()
    token = hub_token()
    key = (ref, "no token" if token is False else "server token")
    return _TOKENIZERS.get_or_load(key, lambda: load_tokenizer(ref, progress=progress, token=token))


def load_causal_lm(ref: str, trust_remote_code: bool = False, dtype: str = "float32", device: str = "cpu", progress=None,
                   token=None):
    import torch
    from transformers import AutoModelForCausalLM

    source = catalog.resolve(ref, progress)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code,
            local_files_only=catalog.local_files_only(ref), token=hub_token(token),
        )
    except Exception as error:  # noqa: BLE001
        raise explain_load_error(ref, error) from error
    return model.to(device)
