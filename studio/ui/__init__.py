"""The browser UI. The only package that imports gradio."""

from studio.ui.shell import build_app

__all__ = ["build_app"]
