"""Fine-Tune Studio. Run `python app.py` (or `python -m studio serve`) and open the printed URL.

Listens on GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (default 127.0.0.1:7860).
"""

import sys

from studio.access import ConfigurationError
from studio.ui import build_app
from studio.ui.shell import launch_kwargs, start_background

try:
    demo = build_app()
except ConfigurationError as error:  # contradictory settings: say which, never start half-configured
    sys.exit(f"Fine-Tune Studio cannot start: {error.message}\nHint: {error.hint}")

if __name__ == "__main__":
    start_background()
    demo.queue().launch(**launch_kwargs())
