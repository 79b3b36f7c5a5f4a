"""Look and feel: one theme and a little CSS, passed to launch()."""

CSS = """
#studio-header h1 { margin-bottom: 0; }
#studio-header p { margin-top: 2px; opacity: 0.8; }
#studio-footer { font-size: 0.85em; opacity: 0.75; }
.tab-intro { opacity: 0.85; }
/* Decide: the recommendation card stays in view while the checklist scrolls. Gradio's container has
   overflow: hidden, which turns it into the sticky element's scroll box; clip looks the same but does not. */
.gradio-container { overflow: clip !important; }
#decide-card-column { position: sticky; top: 8px; align-self: flex-start; }
.decide-source { padding: 8px 12px; border-radius: 8px; background: var(--background-fill-secondary); }
"""


def theme():
    import gradio as gr

    return gr.themes.Soft(primary_hue="blue", secondary_hue="orange")
