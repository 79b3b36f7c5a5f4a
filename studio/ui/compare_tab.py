import gradio as gr

from studio.ui.shared import Shared


def build(shared: Shared) -> None:
    gr.Markdown(
        "**Base vs tuned, side by side.** This tab will chat with the base and the tuned model at once, "
        "evaluate both on held-out prompts, run blind A/B votes and export a report for stakeholders. "
        "*(Coming with the Compare issue.)*",
        elem_classes="tab-intro",
    )
