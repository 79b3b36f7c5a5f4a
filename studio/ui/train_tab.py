import gradio as gr

from studio.ui.shared import Shared


def build(shared: Shared) -> None:
    gr.Markdown(
        "**Train a LoRA adapter.** This tab will run TRL SFT with LoRA in a separate process, with live "
        "progress and loss curves, stop and resume, a history of runs and export. *(Coming with the Train issue.)*",
        elem_classes="tab-intro",
    )
