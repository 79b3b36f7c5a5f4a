"""Fine-Tune Studio. Run `python app.py` (or `python -m studio serve`) and open the printed URL.

Listens on GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (default 127.0.0.1:7860).
"""

from studio.ui import build_app
from studio.ui.shell import launch_kwargs

demo = build_app()

if __name__ == "__main__":
    demo.queue().launch(**launch_kwargs())
