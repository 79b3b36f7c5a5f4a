"""Load tokenizers and causal LMs with plain-language errors instead of tracebacks.

cached_tokenizer keeps the few most recently used tokenizers loaded (STUDIO_TOKENIZER_CACHE, see
studio.limits): visitors picking one model after another cannot grow the app's memory without end.
"""

from __future__ import annotations

import logging

from studio import access, limits
from studio.errors import StudioError
from studio.models import catalog

_TOKENIZERS = limits.LRUCache("tokenizers")
# bitsandbytes (imported by PEFT whenever it is installed) warns on every CPU with avx512_bf16 that it could not
# download an optional faster 4-bit kernel from the Hub; its own 4-bit kernels work, and the warning would open
# every run's log.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


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
    offline_markers = (
        "local_files_only",
        "outgoing traffic has been disabled",
        "offline",
        "connection",
        "resolve",
        "max retries",
        "name or service",
        "timed out",
        "couldn't connect",
        "cannot find the requested files",
    )
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

    return access.download_token()


def load_tokenizer(ref: str, trust_remote_code: bool = False, progress=None, token=None):
    from transformers import AutoTokenizer

    source = catalog.resolve(ref, progress)
    try:
        return AutoTokenizer.from_pretrained(
            source,
            trust_remote_code=trust_remote_code,
            local_files_only=catalog.local_files_only(ref),
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


def load_causal_lm(
    ref: str, trust_remote_code: bool = False, dtype: str = "float32", device: str = "cpu", progress=None, token=None
):
    """The model in `dtype`. A local 16-bit checkpoint wanted in fp32 (the bundled model in Compare) is read one
    tensor at a time into an uninitialised fp32 model (`load_widened`): from_pretrained keeps the whole weight file
    mapped until every fp32 tensor exists, a peak of file + model (1.16 GB of RSS for the bundled model instead of
    the 0.91 GB it holds afterwards; a local folder, so no download and no token). Anything that does not fit that
    path loads through from_pretrained, with the token hub_token() allows."""
    import torch
    from transformers import AutoModelForCausalLM

    source = catalog.resolve(ref, progress)
    model = load_widened(source, dtype) if dtype == "float32" and not trust_remote_code else None
    if model is not None:
        return model.to(device)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source,
            dtype=getattr(torch, dtype),
            trust_remote_code=trust_remote_code,
            local_files_only=catalog.local_files_only(ref),
            token=hub_token(token),
        )
    except Exception as error:  # noqa: BLE001 - any load failure gets a plain explanation
        raise explain_load_error(ref, error) from error
    return model.to(device)


def load_widened(source, dtype: str = "float32"):
    """A local safetensors checkpoint stored in bf16/fp16, read tensor by tensor into a `dtype` model; None when the
    folder does not fit this path (not local, not 16-bit, sharded oddly, a key the model does not have...)."""
    import json
    from pathlib import Path

    folder = Path(str(source))
    files = _safetensors_files(folder)
    if not files or stored_dtype(folder) not in ("bfloat16", "float16"):
        return None
    try:
        import torch
        from safetensors import safe_open
        from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig
        from transformers.initialization import no_init_weights

        config = AutoConfig.from_pretrained(str(folder))
        with no_init_weights():  # every weight is overwritten from the file below
            model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
        targets = dict(model.named_parameters(remove_duplicate=False))
        targets.update(model.named_buffers(remove_duplicate=False))
        loaded = set()
        with torch.no_grad():
            for file in files:
                with safe_open(str(file), framework="pt", device="cpu", backend="pread") as handle:
                    for key in handle.keys():
                        target = targets.get(key)
                        if target is None:
                            return None  # a renamed or extra key: leave it to from_pretrained
                        tensor = handle.get_tensor(key)
                        if tensor.shape != target.shape:
                            return None
                        target.copy_(tensor)
                        loaded.add(key)
        model.tie_weights()
        tied = {
            name
            for name, parameter in model.named_parameters(remove_duplicate=False)
            if any(parameter is targets[other] for other in loaded)
        }
        if set(dict(model.named_parameters(remove_duplicate=False))) - loaded - tied:
            return None  # a weight the file does not hold would stay uninitialised
        if (folder / "generation_config.json").is_file():
            model.generation_config = GenerationConfig.from_pretrained(str(folder))
        model.eval()
        return model
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, ImportError, json.JSONDecodeError):
        return None


def _safetensors_files(folder) -> list:
    import json

    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    index = folder / "model.safetensors.index.json"
    try:
        names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    except (OSError, ValueError, KeyError, AttributeError):
        return []
    return [folder / name for name in names] if all((folder / name).is_file() for name in names) else []


def stored_dtype(source) -> str | None:
    """The dtype a local checkpoint's config.json says its weights are stored in (None when unknown)."""
    import json
    from pathlib import Path

    try:
        config = json.loads((Path(str(source)) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None
    value = (config.get("dtype") or config.get("torch_dtype")) if isinstance(config, dict) else None
    return value if isinstance(value, str) else None


def release_freed_memory() -> bool:
    """Hand memory that Python and torch have freed back to the operating system (glibc's malloc_trim).

    Freed tensors below glibc's mmap threshold stay in the process's heap and keep counting as its memory until
    the heap is trimmed. Returns whether a trim ran (Linux with glibc only)."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False
