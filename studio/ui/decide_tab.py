import gradio as gr

from studio.ui.shared import Shared


def build(shared: Shared) -> None:
    gr.Markdown(
        "**Should you fine-tune at all?** This tab will walk you through a checklist — use case, "
        "alternatives tried (few-shot prompting, RAG) and their results, costs and benefits — and end in a "
        "recommendation with reasons, estimates of time, memory and money from your real dataset, and a "
        "decision record to download. *(Coming with the Decide issue.)*",
        elem_classes="tab-intro",
    )
