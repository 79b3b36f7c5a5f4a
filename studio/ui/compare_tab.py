"""Compare tab: base vs tuned side by side, held-out evaluation, blind A/B votes, a report.

Thin: every decision lives in studio.compare; the handlers here turn its results into components.
Heavy imports (torch, peft) happen inside studio.compare.engine, only when a run is opened.
Every handler is wired through ui/guard.py; runs are opened only through studio.compare.runs.load_run, which
asks studio.access (public mode: the caller's own runs and the shared ones, by id, never a server path).
"""

from __future__ import annotations

import gradio as gr

from studio import access, escape, limits
from studio.errors import StudioError
from studio.ui.guard import guarded
from studio.ui.shared import Shared, download_copy, message_markdown

INTRO = (
    "**What am I looking at?** The same question goes to two models at once: on the left the **base model** "
    "exactly as downloaded, on the right the **tuned model** — the same weights plus the small LoRA adapter your "
    "training run learned. Both answer from one copy of the model in memory, with the same settings, so any "
    "difference you see comes from the fine-tune."
)

BASE_PLACEHOLDER = "The **base** model's answers appear here."
TUNED_PLACEHOLDER = "The **tuned** model's answers appear here."
RUN_B_PLACEHOLDER = "**Run B**'s answers appear here."
EVAL_HEADERS = ["Prompt", "Reference", "Base answer", "Tuned answer", "Base loss", "Tuned loss", "Base ROUGE-L", "Tuned ROUGE-L"]


# ---------------------------------------------------------------- helpers


def run_choices() -> list[tuple[str, str]]:
    from studio.compare import runs

    return [(item["label"], item["run_id"]) for item in runs.list_comparable_runs()]


def _settings(system_prompt, temperature, top_p, max_new_tokens, seed):
    from studio.compare.engine import Settings

    return Settings(system_prompt=system_prompt or "", temperature=float(temperature or 0), top_p=float(top_p or 1),
                    max_new_tokens=int(max_new_tokens or 200), seed=int(seed or 0))


def _history_messages(history) -> list[dict]:
    """Chatbot history (Gradio 6: content as lists of text parts) → plain chat messages."""
    from studio.compare.runs import flatten_content

    # The chat columns show escaped Markdown (see _shown); the models get back exactly what was said.
    return [{"role": m["role"], "content": escape.unmd(flatten_content(m.get("content")))} for m in history or []
            if isinstance(m, dict) and m.get("role") in ("user", "assistant")]


def _shown(text: str) -> str:
    """A chat message as the Chatbot renders it: escaped, so a model's or a visitor's Markdown/HTML shows as text."""
    return escape.md(text)


def _run_summary(session) -> str:
    from studio.compare import report

    run = session.run
    items = dict(report.summary_items(run))
    text = (f"**Loaded:** {escape.md_inline(run.name)} — base model {escape.md_inline(items.get('Base model'))}, "
            f"data {escape.md_inline(items.get('Data'))}, training time {escape.md_inline(items.get('Training time'))}.")
    if session.run_b is not None:
        text += f" **Run B:** {escape.md_inline(session.run_b.name)}."
    return access.redact(text)


def _eval_outputs(result):
    from studio.compare import evaluate

    if not result:
        return ("*No evaluation yet for this run. Pick how many prompts and press **Evaluate**.*",
                gr.update(value=None, visible=False), gr.update(value=None))
    when = (f" *(saved evaluation, {len(result['rows'])} prompts from the {escape.md_inline(result.get('source') or 'prompt file')}, "
            f"{escape.md_inline(result.get('seconds', '?'))} s)*")
    figure = evaluate.loss_figure(result) if result["summary"].get("with_reference") else None
    return (escape.md(evaluate.headline(result["summary"])) + when, gr.update(value=figure, visible=figure is not None),
            gr.update(value=evaluate.table_rows(result)))


# ---------------------------------------------------------------- handlers


def refresh_runs(current=None):
    choices = run_choices()
    ids = [value for _, value in choices]
    value = current if current else (ids[0] if ids else None)
    hint = ("*Pick a run and press **Open** — or just ask a question: the run loads with the first message.*"
            if choices else "*No finished runs with an adapter yet: train one in the **Train** tab, "
                            "or paste the path of a run or adapter folder.*")
    return gr.update(choices=choices, value=value), gr.update(choices=[("(none)", "")] + choices), hint


def open_run(run, run_b, progress=gr.Progress()):
    """Load the base once, attach the adapter(s); fill examples and any saved evaluation."""
    from studio.compare import engine, evaluate, runs

    cleared = ([], [], [])
    try:
        if run_b and run_b == run:
            run_b = None
        progress(0.1, desc="Loading the base model and the adapter…")
        session = engine.open_session(run, run_b or None)
        try:
            examples = [[item["prompt"]] for item in runs.validation_prompts(session.run, limit=8)]
        except StudioError:
            examples = []
        result = evaluate.load(session.run)
        headline, figure, table = _eval_outputs(result)
        return (_run_summary(session), gr.update(samples=examples or [["Hello! What can you do?"]]),
                gr.update(visible=session.run_b is not None), *cleared, headline, figure, table)
    except StudioError as error:
        return (message_markdown(error), gr.update(), gr.update(visible=False), *cleared,
                "", gr.update(value=None, visible=False), gr.update(value=None))


def chat(message, base_history, tuned_history, run_b_history, run, run_b, system_prompt, temperature, top_p,
         max_new_tokens, seed):
    """Stream base, tuned (and run B) answers together, token by token, each into its own column."""
    from studio.compare import engine

    message = (message or "").strip()
    histories = [list(base_history or []), list(tuned_history or []), list(run_b_history or [])]
    stats = ["", "", ""]
    if not message:
        yield "", *histories, *stats, gr.update()
        return
    try:
        if run_b and run_b == run:
            run_b = None
        session = engine.open_session(run, run_b or None)
        settings = _settings(system_prompt, temperature, top_p, max_new_tokens, seed)
        adapters = [engine.BASE, session.tuned] + ([session.tuned_b] if session.tuned_b else [])
        jobs = []
        for index, adapter in enumerate(adapters):
            messages = _history_messages(histories[index]) + [{"role": "user", "content": message}]
            jobs.append((("Base", "Tuned", "Run B")[index], adapter, messages))
            histories[index] = histories[index] + [{"role": "user", "content": _shown(message)},
                                                   {"role": "assistant", "content": ""}]
        from studio.compare.runs import training_active

        note = ("*A training run is active: answers use 1 CPU thread so the training keeps its speed.*"
                if training_active() else "")
        for columns in session.engine.stream(jobs, settings):
            for index, column in enumerate(columns):
                histories[index][-1] = {"role": "assistant", "content": _shown(column.text) if column.text else "…"}
                stats[index] = column.stats_line()
            yield "", *histories, *stats, note
    except StudioError as error:
        yield message, *histories, *stats, message_markdown(error)


def mark_stopped(*stats_lines):
    """Stop cancels the streaming event; say so in each column that was still generating."""
    return [(line or "").replace("generating…", "stopped") for line in stats_lines]


def clear_chat():
    return [], [], [], "", "", "", ""


def pick_example(values):
    return values[0] if values else ""


def run_evaluation(run, n, prompt_file, system_prompt, max_new_tokens, progress=gr.Progress()):
    from studio.compare import engine, evaluate, runs

    try:
        n = evaluate.validate_n(n)
        prompt_file = access.check_upload_path(prompt_file)
        session = engine.open_session(run)
        prompts, source = evaluate.load_prompts(session.run, prompt_file, n)
        progress(0, desc="Loading…")

        def report_progress(done, total, text):
            progress((done, total), desc=text)

        result = evaluate.evaluate(session, prompts, source,
                                   engine.Settings(system_prompt=system_prompt or "", max_new_tokens=int(max_new_tokens or 128)),
                                   progress=report_progress)
        evaluate.save(session.run, result)
        headline, figure, table = _eval_outputs(result)
        return headline, figure, table
    except StudioError as error:
        return message_markdown(error), gr.update(), gr.update()


def _ab_view(ballot, result, index):
    from studio.compare import votes

    tally = votes.tally(ballot)
    if index is None:
        return (f"**All {tally['of']} prompts voted.** Press *Reveal* to see which answer came from which model.",
                "", "", votes.tally_text(tally), None)
    shown = votes.pair(ballot, result, index)
    return (f"**Prompt {index + 1} of {tally['of']}:** {escape.md(shown['prompt'])}", shown["A"], shown["B"],
            votes.tally_text(tally), index)


def ab_start(run):
    """Blind test over the saved evaluation: answers in a stored random order, labelled A and B."""
    from studio.compare import evaluate, runs, votes

    try:
        info = runs.load_run(run)
        result = evaluate.load(info)
        if not result:
            raise StudioError("The blind test uses the evaluation's answers, and there is none yet.",
                              "Press Evaluate above first (a few prompts are enough).")
        ballot = votes.load_or_create(info, result)
        return (*_ab_view(ballot, result, votes.next_unvoted(ballot)), gr.update(value=None, visible=False))
    except StudioError as error:
        return message_markdown(error), "", "", "", None, gr.update(visible=False)


def ab_vote(run, index, choice):
    from studio.compare import evaluate, runs, votes

    try:
        info = runs.load_run(run)
        result = evaluate.load(info)
        saved = runs.read_json(votes.votes_path(info), None)
        if index is None or not result or not saved:
            if result and saved and votes.next_unvoted(saved) is None:
                return _ab_view(saved, result, None)  # every prompt voted: keep showing the tally
            raise StudioError("There is nothing to vote on right now.", "Press Start blind test.")
        ballot = votes.record_vote(info, result, int(index), choice)
        return _ab_view(ballot, result, votes.next_unvoted(ballot))
    except StudioError as error:
        return message_markdown(error), gr.update(), gr.update(), gr.update(), index


def voter(choice: str):
    """The handler of one vote button (named vote_A, vote_tie, vote_B)."""
    def vote(run, index):
        return ab_vote(run, index, choice)

    vote.__name__ = vote.__qualname__ = f"vote_{choice}"
    return vote


def ab_reveal(run):
    from studio.compare import evaluate, runs, votes

    try:
        info = runs.load_run(run)
        result = evaluate.load(info)
        ballot = runs.read_json(votes.votes_path(info), None)
        if not result or not ballot:
            raise StudioError("No blind votes yet.", "Start the blind test and vote first.")
        rows = [[r["index"] + 1, r["prompt"], "tuned" if r["tuned_is"] == "A" else "base",
                 "tuned" if r["tuned_is"] == "B" else "base", r["vote"] or "—", r["winner"] or "—"]
                for r in votes.reveal(ballot, result)]
        return votes.tally_text(votes.tally(ballot)), gr.update(value=rows, visible=True)
    except StudioError as error:
        return message_markdown(error), gr.update(visible=False)


def build_report(run):
    from studio.compare import report, runs

    try:
        info = runs.load_run(run)
        html_path, md_path = report.write(info)
        # Gradio serves downloads only from its own folders: hand it copies with a telling name (named inside
        # the run folder: Compare writes nowhere else).
        import shutil

        from studio import paths

        stem = f"report-{paths.safe_name(info.run_id, 'run')}"
        html_named = shutil.copyfile(html_path, html_path.with_name(f"{stem}.html"))
        md_named = shutil.copyfile(md_path, md_path.with_name(f"{stem}.md"))
        return (f"Report saved in {escape.md_code(access.redact(str(html_path.parent)))} — one HTML file that opens "
                "offline (e-mail it as is).",
                gr.update(value=download_copy(html_named), visible=True),
                gr.update(value=download_copy(md_named), visible=True))
    except StudioError as error:
        return message_markdown(error), gr.update(visible=False), gr.update(visible=False)
    except OSError as error:
        return f"**Could not write the report: {escape.md_inline(error)}**", gr.update(visible=False), gr.update(visible=False)


def preselect(run_id):
    """Train's "Open in Compare" sets shared.run: select that run (and refresh the list)."""
    choices = run_choices()
    return gr.update(choices=choices, value=run_id) if run_id else gr.update(choices=choices)


# ---------------------------------------------------------------- layout


def build(shared: Shared) -> None:
    gr.Markdown(INTRO, elem_classes="tab-intro", elem_id="compare-intro")
    with gr.Row(equal_height=True):
        run = gr.Dropdown(label="Training run (or paste a run / adapter folder path)", choices=run_choices(),
                          allow_custom_value=True, elem_id="compare-run", scale=4)
        run_b = gr.Dropdown(label="Optional third column: run B on the same base", choices=[("(none)", "")],
                            value="", allow_custom_value=True, elem_id="compare-run-b", scale=3)
        refresh = gr.Button("↻ Refresh list", size="sm", scale=1, elem_id="compare-refresh")
        open_button = gr.Button("Open", variant="primary", scale=1, elem_id="compare-open")
    status = gr.Markdown("", elem_id="compare-status")

    with gr.Accordion("Generation settings (the same for every column)", open=False):
        with gr.Row():
            system_prompt = gr.Textbox(label="System prompt (empty: the model's default)", lines=2, scale=3,
                                       elem_id="compare-system")
            with gr.Column(scale=2):
                temperature = gr.Slider(0, 1.5, value=0, step=0.05, label="Temperature (0 = greedy, reproducible)",
                                        elem_id="compare-temperature")
                top_p = gr.Slider(0.05, 1, value=1, step=0.05, label="Top-p")
            with gr.Column(scale=2):
                max_new_tokens = gr.Slider(8, min(1024, limits.whole("new_tokens") or 1024),
                                           value=min(200, limits.whole("new_tokens") or 200), step=8,
                                           label="Max new tokens")
                seed = gr.Number(value=0, precision=0, label="Seed (for sampling)")

    with gr.Row(equal_height=True):
        with gr.Column():
            base_chat = gr.Chatbot(label="Base model — as downloaded", height=420, elem_id="compare-base-chat",
                                   placeholder=BASE_PLACEHOLDER, feedback_options=None)
            base_stats = gr.Markdown("", elem_id="compare-base-stats")
        with gr.Column():
            tuned_chat = gr.Chatbot(label="Tuned — base + your LoRA adapter", height=420, elem_id="compare-tuned-chat",
                                    placeholder=TUNED_PLACEHOLDER, feedback_options=None)
            tuned_stats = gr.Markdown("", elem_id="compare-tuned-stats")
        with gr.Column(visible=False) as run_b_column:
            run_b_chat = gr.Chatbot(label="Run B — base + run B's adapter", height=420, elem_id="compare-runb-chat",
                                    placeholder=RUN_B_PLACEHOLDER, feedback_options=None)
            run_b_stats = gr.Markdown("", elem_id="compare-runb-stats")
    with gr.Row(equal_height=True):
        message = gr.Textbox(placeholder="Ask both models the same question…", show_label=False, scale=6,
                             elem_id="compare-input", autofocus=False)
        send = gr.Button("Send to both", variant="primary", scale=1, elem_id="compare-send")
        stop = gr.Button("Stop", variant="stop", scale=1, elem_id="compare-stop")
        clear = gr.Button("Clear", scale=1, elem_id="compare-clear")
    examples = gr.Dataset(label="Example prompts from the run's validation data (click one)", components=[message],
                          samples=[["Hello! What can you do?"]], elem_id="compare-examples")
    chat_error = gr.Markdown("", elem_id="compare-chat-error")

    with gr.Accordion("Held-out evaluation — does the tuned model match unseen reference answers better?", open=True):
        gr.Markdown("Generates base and tuned answers for prompts the model did not train on (the run's validation "
                    "split, or your own JSONL file), and scores both against the reference answers: **loss** "
                    "(how surprised the model is by the reference; lower is better) and **ROUGE-L** word overlap.")
        with gr.Row():
            eval_n = gr.Number(value=min(20, limits.whole("eval_prompts") or 20), precision=0, minimum=1,
                               maximum=limits.whole("eval_prompts"), label="Prompts", elem_id="compare-eval-n", scale=1)
            eval_tokens = gr.Slider(16, max(16, min(512, limits.whole("new_tokens") or 512)),
                                    value=max(16, min(128, limits.whole("new_tokens") or 128)), step=16,
                                    label="Max new tokens per answer", scale=2,
                                    elem_id="compare-eval-tokens")
            prompt_file = gr.File(label="Optional prompt file (JSONL chat rows)", file_types=[".jsonl"], type="filepath",
                                  scale=2, height=120, elem_id="compare-eval-file")
            eval_button = gr.Button("Evaluate", variant="primary", scale=1, elem_id="compare-eval-run")
        eval_headline = gr.Markdown("", elem_id="compare-eval-summary")
        eval_plot = gr.Plot(label="Loss per prompt", elem_id="compare-eval-plot", visible=False)
        eval_table = gr.Dataframe(headers=EVAL_HEADERS, wrap=True, interactive=False, elem_id="compare-eval-table",
                                  column_widths=["16%", "16%", "20%", "20%", "7%", "7%", "7%", "7%"])

    with gr.Accordion("Blind A/B test — which answer do people prefer, without knowing which model wrote it?", open=False):
        gr.Markdown("For each evaluated prompt you see two answers in a random order. Pick the better one; the "
                    "tally shows how often the tuned model won. *Reveal* shows which was which.")
        ab_start_button = gr.Button("Start blind test", elem_id="compare-ab-start")
        ab_prompt = gr.Markdown("", elem_id="compare-ab-prompt")
        with gr.Row(equal_height=True):
            ab_a = gr.Textbox(label="Answer A", lines=6, interactive=False, elem_id="compare-ab-a")
            ab_b = gr.Textbox(label="Answer B", lines=6, interactive=False, elem_id="compare-ab-b")
        with gr.Row():
            vote_a = gr.Button("A is better", elem_id="compare-vote-a")
            vote_tie = gr.Button("Tie", elem_id="compare-vote-tie")
            vote_b = gr.Button("B is better", elem_id="compare-vote-b")
        ab_tally = gr.Markdown("", elem_id="compare-ab-tally")
        ab_reveal_button = gr.Button("Reveal", size="sm", elem_id="compare-ab-reveal")
        ab_reveal_table = gr.Dataframe(headers=["#", "Prompt", "A was", "B was", "Vote", "Winner"], visible=False,
                                       interactive=False, wrap=True, elem_id="compare-ab-reveal-table")
        ab_index = gr.State(None)

    with gr.Accordion("Report for stakeholders", open=False):
        gr.Markdown("One HTML file (opens offline, fine to e-mail) and a Markdown copy: run summary, loss chart, "
                    "evaluation table and the blind-test tally.")
        report_button = gr.Button("Build report", elem_id="compare-report-build")
        report_status = gr.Markdown("", elem_id="compare-report-status")
        with gr.Row():
            report_html = gr.DownloadButton("Download report (HTML)", visible=False, elem_id="compare-report-html")
            report_md = gr.DownloadButton("Download report (Markdown)", visible=False, elem_id="compare-report-md")

    # ---- events
    chats = [base_chat, tuned_chat, run_b_chat]
    stats = [base_stats, tuned_stats, run_b_stats]
    open_outputs = [status, examples, run_b_column, *chats, eval_headline, eval_plot, eval_table]
    g = guarded  # every handler goes through the guard (studio/ui/guard.py) with its rule
    private = {"api_visibility": "private"}
    refresh.click(g(access.LOOK, refresh_runs), inputs=run, outputs=[run, run_b, status], **private)
    opener = g(access.CHAT, open_run)
    open_button.click(opener, inputs=[run, run_b], outputs=open_outputs, **private)
    run.input(opener, inputs=[run, run_b], outputs=open_outputs, **private)
    run_b.input(opener, inputs=[run, run_b], outputs=open_outputs, **private)
    shared.run.change(g(access.LOOK, preselect), inputs=shared.run, outputs=run, **private).then(
        opener, inputs=[run, run_b], outputs=open_outputs, **private)

    # On ZeroGPU hardware a GPU is attached only inside @spaces.GPU calls: generation runs in them.
    chat_on_gpu = g(access.CHAT, access.gpu_call(chat, duration=120))
    evaluation_on_gpu = g(access.EVALUATE, access.gpu_call(run_evaluation, duration=300))
    chat_inputs = [message, *chats, run, run_b, system_prompt, temperature, top_p, max_new_tokens, seed]
    chat_outputs = [message, *chats, *stats, chat_error]
    sent = send.click(chat_on_gpu, inputs=chat_inputs, outputs=chat_outputs, **private)
    submitted = message.submit(chat_on_gpu, inputs=chat_inputs, outputs=chat_outputs, **private)
    stop.click(g(access.LOOK, mark_stopped), inputs=stats, outputs=stats, cancels=[sent, submitted], **private)
    clear.click(g(access.LOOK, clear_chat), outputs=[*chats, *stats, chat_error], cancels=[sent, submitted], **private)
    examples.click(g(access.LOOK, pick_example), inputs=examples, outputs=message, **private)

    eval_button.click(evaluation_on_gpu, inputs=[run, eval_n, prompt_file, system_prompt, eval_tokens],
                      outputs=[eval_headline, eval_plot, eval_table], **private)

    ab_outputs = [ab_prompt, ab_a, ab_b, ab_tally, ab_index]
    ab_start_button.click(g(access.VOTE, ab_start), inputs=run, outputs=[*ab_outputs, ab_reveal_table], **private)
    for button, choice in ((vote_a, "A"), (vote_tie, "tie"), (vote_b, "B")):
        button.click(g(access.VOTE, voter(choice)), inputs=[run, ab_index], outputs=ab_outputs, **private)
    ab_reveal_button.click(g(access.VOTE, ab_reveal), inputs=run, outputs=[ab_tally, ab_reveal_table], **private)
    report_button.click(g(access.REPORT, build_report), inputs=run, outputs=[report_status, report_html, report_md],
                        **private)

    # Runs finish while the app is up: refresh the list whenever the page loads (once the visitor is known).
    if shared.ready is not None:
        shared.ready.then(g(access.LOOK, refresh_runs), inputs=run, outputs=[run, run_b, status], **private)
    else:
        from gradio.context import Context

        if Context.root_block is not None:
            Context.root_block.load(g(access.LOOK, refresh_runs), inputs=run, outputs=[run, run_b, status], **private)
