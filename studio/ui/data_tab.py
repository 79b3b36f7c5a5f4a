import gradio as gr

from studio.ui.shared import Shared


def build(shared: Shared) -> None:
    gr.Markdown(
        "**Prepare your dataset.** This tab will take an upload (JSONL, JSON, CSV, Parquet), detect and "
        "convert its format, lint every row, show token statistics and plots, then fix and split it into a "
        "saved dataset for training. *(Coming with the Data issue.)*",
        elem_classes="tab-intro",
    )
