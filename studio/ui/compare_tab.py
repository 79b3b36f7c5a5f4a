"""Compare tab: base vs tuned side by side, held-out evaluation with one verdict, blind A/B votes, a report.

Two views: "Side by side" (labelled columns, the evaluation, the report) and "Blind A/B test" (only
answers A and B; no labelled answer anywhere on screen). Thin: every decision lives in studio.compare
(verdict, votes, engine); the handlers here turn its results into components. Heavy imports (torch,
peft) happen inside studio.compare.engine, only when a run is opened.
Every handler is wired through ui/guard.py; runs are opened only through studio.compare.runs.load_run, which
asks studio.access (public mode: the caller's own runs and the shared ones, by id, never a server path), and
Compare's files (evaluation, ballots, report) go to the viewer's own folder in the run (RunInfo.compare_dir).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from studio import access, escape, limits, paths
from studio.compare import engine, evaluate, report, runs, verdict, votes
from studio.compare.engine import DEFAULT_REPETITION_PENALTY, DEFAULT_TEMPERATURE, DEFAULT_TOP_P, Settings
from studio.compare.report import decoding_text
from studio.compare.runs import flatten_content, training_active
from studio.errors import StudioError
from studio.ui.guard import guarded
from studio.ui.shared import Shared, download_copy, message_markdown, read_url_param_js
from studio.ui.wiring import Parts, wired

INTRO = (
    "**What am I looking at?** The same question goes to two models at once: on the left the **base model** "
    "exactly as downloaded, on the right the **tuned model** — the same weights plus the small LoRA adapter your "
    "training run learned (both answer from one copy of the model in memory), or for a full fine-tune the whole "
    "model it trained. Both answer with the same settings, so any difference you see comes from the fine-tune."
)

BASE_PLACEHOLDER = "The **base** model's answers appear here."
TUNED_PLACEHOLDER = "The **tuned** model's answers appear here."
RUN_B_PLACEHOLDER = "**Run B**'s answers appear here."
EVAL_HEADERS = [
    "Prompt",
    "Reference",
    "Base answer",
    "Tuned answer",
    "Base loss",
    "Tuned loss",
    "Base ROUGE-L",
    "Tuned ROUGE-L",
    "Repeats itself",
]
VIEWS = ["Side by side", "Blind A/B test"]
# The chat columns (base, tuned, run B) and the stats line under each, in that order.
CHAT_COLUMNS = ("chat_base", "chat_tuned", "chat_b")
STATS_LINES = ("stats_base", "stats_tuned", "stats_b")
REVEAL_HEADERS = ["#", "Prompt", "A was", "B was", "Your vote", "Preferred"]
BLIND_INTRO = (
    "**Blind test.** For each evaluated prompt you see two answers, **A** and **B**, in a random order that "
    "changes from prompt to prompt (and from voter to voter). Nothing here says which model wrote which. Pick the "
    "better one, or *Tie*. When you are done — or want to stop early — press **Finish and reveal**: only then, and "
    "only for the prompts you voted on, you see which was which, and your ballot is closed. Several people? Each "
    "browser has its own ballot; on one shared screen press **New voter** between people."
)


# ---------------------------------------------------------------- helpers


def run_choices() -> list[tuple[str, str]]:
    return [(item["label"], item["run_id"]) for item in runs.list_comparable_runs()]


def _settings(system_prompt, temperature, top_p, max_new_tokens, seed, repetition_penalty=None, greedy=False):
    """The decoding settings from the form: the same for every column and for the evaluation."""

    def number(value, default, kind=float):
        try:
            return kind(value) if value not in (None, "") else default
        except (TypeError, ValueError):
            return default

    temperature = 0.0 if greedy else max(0.0, number(temperature, 0.0))
    penalty = number(repetition_penalty, DEFAULT_REPETITION_PENALTY)
    return Settings(
        system_prompt=system_prompt or "",
        temperature=temperature,
        top_p=min(1.0, max(0.05, number(top_p, 1.0))),
        repetition_penalty=min(2.0, max(1.0, penalty)),
        max_new_tokens=min(1024, max(1, number(max_new_tokens, 200, int))),
        seed=number(seed, 0, int),
        source="your settings in the Compare tab",
    )


def settings_note(settings) -> str:
    return f"*Both columns and the evaluation use: {settings.describe()}.*"


def _history_messages(history) -> list[dict]:
    """Chatbot history (Gradio 6: content as lists of text parts) → plain chat messages."""
    # The chat columns show escaped Markdown (see _shown); the models get back exactly what was said.
    return [
        {"role": m["role"], "content": escape.unmd(flatten_content(m.get("content")))}
        for m in history or []
        if isinstance(m, dict) and m.get("role") in ("user", "assistant")
    ]


def _shown(text: str) -> str:
    """A chat message as the Chatbot renders it: escaped, so a model's or a visitor's Markdown/HTML shows as text."""
    return escape.md(text)


def _run_summary(session) -> str:
    run = session.run
    items = dict(report.summary_items(run))
    text = (
        f"**Loaded:** {escape.md_inline(run.name)} — base model {escape.md_inline(items.get('Base model'))}, "
        f"data {escape.md_inline(items.get('Data'))}, training: {escape.md_inline(items.get('Training'))}, "
        f"training time {escape.md_inline(items.get('Training time'))}."
    )
    if run.from_checkpoint:
        text += (
            f" **Adapter:** its last checkpoint ({escape.md_inline(run.adapter_dir.name)}) — the run ended "
            f"{escape.md_inline(str(run.status.get('status', '')))} without a final adapter."
        )
    if session.run_b is not None:
        text += f" **Run B:** {escape.md_inline(session.run_b.name)}."
    return access.redact(text)


def verdict_markdown(info, result) -> str:
    """The verdict (loss, overlap and the finished blind ballots) for the evaluation shown."""
    if not result:
        return ""
    return verdict.markdown(verdict.verdict(result, votes.finished_ballots(info, result)))


def _eval_outputs(info, result) -> dict[str, Any]:
    """The verdict, the facts under it, the loss plot and the table for a saved evaluation or none."""
    if not result:
        return {
            "eval_verdict": "",
            "eval_headline": "*No evaluation yet for this run. Pick how many prompts and press **Evaluate**.*",
            "eval_plot": gr.update(value=None, visible=False),
            "eval_table": gr.update(value=None),
        }
    settings = result.get("settings") or {}

    when = (
        f"*(saved evaluation: {len(result['rows'])} prompts from the "
        f"{escape.md_inline(result.get('source') or 'prompt file')}, {escape.md_inline(result.get('seconds', '?'))} s; "
        f"{escape.md_inline(decoding_text(settings))})*"
    )
    figure = evaluate.loss_figure(result) if result["summary"].get("with_reference") else None
    facts = escape.md(evaluate.headline(result["summary"]))
    return {
        "eval_verdict": verdict_markdown(info, result),
        "eval_headline": (facts + " " if facts else "") + when,
        "eval_plot": gr.update(value=figure, visible=figure is not None),
        "eval_table": gr.update(value=evaluate.table_rows(result)),
    }


# ---------------------------------------------------------------- handlers


def refresh_runs(current=None, asked=None) -> dict[str, Any]:
    """The runs list; `asked`: the run in the page's address (?tab=compare&run=ID), when the caller may open it."""
    choices = run_choices()
    ids = [value for _, value in choices]
    value = asked if asked in ids else current if current else (ids[0] if ids else None)
    hint = (
        "*Pick a run and press **Open** — or just ask a question: the run loads with the first message.*"
        if choices
        else "*No finished runs with an adapter yet: train one in the **Train** tab, "
        "or paste the path of a run or adapter folder.*"
    )
    return {
        "run": gr.update(choices=choices, value=value),
        "run_b": gr.update(choices=[("(none)", "")] + choices),
        "status": hint,
    }


def open_run(run, run_b, progress=gr.Progress()) -> dict[str, Any]:
    """Load the base once, attach the adapter(s); fill examples, the model's decoding defaults and any saved
    evaluation. The chat columns start empty."""
    cleared = dict.fromkeys(CHAT_COLUMNS, [])
    try:
        if run_b and run_b == run:
            run_b = None
        progress(0.1, desc="Loading the base model and the adapter…")
        session = engine.open_session(run, run_b or None)
        try:
            examples = [[item["prompt"]] for item in runs.validation_prompts(session.run, limit=8)]
        except StudioError:
            examples = []
        defaults = session.engine.default_settings()
        return {
            "status": _run_summary(session),
            "examples": gr.update(samples=examples or [["Hello! What can you do?"]]),
            "run_b_column": gr.update(visible=session.run_b is not None),
            **cleared,
            **_eval_outputs(session.run, evaluate.load(session.run)),
            "temperature": gr.update(value=defaults.temperature),
            "top_p": gr.update(value=defaults.top_p),
            "repetition_penalty": gr.update(value=defaults.repetition_penalty),
            "greedy": gr.update(value=defaults.greedy),
            "settings_note": settings_note(defaults),
        }
    except StudioError as error:
        return {
            "status": message_markdown(error),
            "run_b_column": gr.update(visible=False),
            **cleared,
            "eval_verdict": "",
            "eval_headline": "",
            "eval_plot": gr.update(value=None, visible=False),
            "eval_table": gr.update(value=None),
        }


def chat(
    message,
    base_history,
    tuned_history,
    run_b_history,
    run,
    run_b,
    system_prompt,
    temperature,
    top_p,
    max_new_tokens,
    seed,
    repetition_penalty=None,
    greedy=False,
):
    """Stream base, tuned (and run B) answers together, token by token, each into its own column."""
    message = (message or "").strip()
    histories = [list(base_history or []), list(tuned_history or []), list(run_b_history or [])]
    stats = ["", "", ""]

    def shown(asked: str, note=None) -> dict[str, Any]:
        """The message box, the three columns with their stats lines, and a note (None: left as it is)."""
        columns = {**dict(zip(CHAT_COLUMNS, histories)), **dict(zip(STATS_LINES, stats))}
        return {"message": asked, **columns, **({} if note is None else {"chat_error": note})}

    if not message:
        yield shown("")
        return
    try:
        if run_b and run_b == run:
            run_b = None
        session = engine.open_session(run, run_b or None)
        settings = _settings(system_prompt, temperature, top_p, max_new_tokens, seed, repetition_penalty, greedy)
        adapters = [engine.BASE, session.tuned] + ([session.tuned_b] if session.tuned_b else [])
        try:  # before anything is tokenized or shown: an oversized message is not echoed back either
            for index in range(len(adapters)):
                session.engine.check_size(
                    _history_messages(histories[index]) + [{"role": "user", "content": message}], settings.system_prompt
                )
        except StudioError as error:
            yield shown("", message_markdown(error))
            return
        jobs = []
        for index, adapter in enumerate(adapters):
            messages = _history_messages(histories[index]) + [{"role": "user", "content": message}]
            jobs.append((("Base", "Tuned", "Run B")[index], adapter, messages))
            histories[index] = histories[index] + [
                {"role": "user", "content": _shown(message)},
                {"role": "assistant", "content": ""},
            ]

        note = (
            "*A training run is active: answers use 1 CPU thread so the training keeps its speed.*"
            if training_active()
            else ""
        )
        for columns in session.engine.stream(jobs, settings):
            for index, column in enumerate(columns):
                empty = "*(no answer)*" if column.done else "…"
                histories[index][-1] = {"role": "assistant", "content": _shown(column.text) if column.text else empty}
                stats[index] = column.stats_line()
            yield shown("", note)
    except StudioError as error:
        yield shown(message, message_markdown(error))  # the question stays, to send again


def mark_stopped(*stats_lines):
    """Stop cancels the streaming event; say so in each column that was still generating."""
    return [(line or "").replace("generating…", "stopped") for line in stats_lines]


def clear_chat() -> dict[str, Any]:
    return {**dict.fromkeys(CHAT_COLUMNS, []), **dict.fromkeys(STATS_LINES, ""), "chat_error": ""}


def pick_example(values):
    return values[0] if values else ""


def describe_settings(system_prompt, temperature, top_p, max_new_tokens, seed, repetition_penalty, greedy):
    return settings_note(_settings(system_prompt, temperature, top_p, max_new_tokens, seed, repetition_penalty, greedy))


def run_evaluation(
    run,
    n,
    prompt_file,
    system_prompt,
    max_new_tokens,
    temperature=None,
    top_p=None,
    repetition_penalty=None,
    greedy=False,
    seed=0,
    progress=gr.Progress(),
):
    """Evaluate with the same decoding settings as the columns; the settings are saved with the results."""
    try:
        n = evaluate.validate_n(n)
        prompt_file = access.check_upload_path(prompt_file)
        session = engine.open_session(run)
        prompts, source = evaluate.load_prompts(session.run, prompt_file, n)
        if temperature is None:  # called without the form (API, tests): the model's fair defaults
            settings = session.engine.default_settings(
                system_prompt=system_prompt or "", max_new_tokens=int(max_new_tokens or 128)
            )
        else:
            settings = _settings(
                system_prompt, temperature, top_p, max_new_tokens or 128, seed, repetition_penalty, greedy
            )
        progress(0, desc="Loading…")

        def report_progress(done, total, text):
            progress((done, total), desc=text, unit="prompts")

        result = evaluate.evaluate(session, prompts, source, settings, progress=report_progress)
        evaluate.save(session.run, result)
        return _eval_outputs(session.run, result)
    except StudioError as error:
        return {"eval_verdict": message_markdown(error), "eval_headline": ""}


def refresh_verdict(run):
    """The verdict again (e.g. after blind ballots were finished)."""
    try:
        info = runs.load_run(run)
    except StudioError:
        return gr.update()
    return verdict_markdown(info, evaluate.load(info))


def switch_view(view) -> dict[str, Any]:
    blind = view == VIEWS[1]
    return {"labelled_view": gr.update(visible=not blind), "blind_view": gr.update(visible=blind)}


# ---- blind A/B (studio.compare.votes holds the rules; a voter id per browser, or per "New voter")

# What the blind view shows (the ab_* handlers return these names).
AB_OUTPUTS = ("voter", "who", "prompt", "a", "b", "index", "tally", "reveal", "vote_a", "vote_tie", "vote_b", "finish")
VOTE_BUTTONS = ("vote_a", "vote_tie", "vote_b")


def _ab_render(voter, info, result, ballot) -> dict[str, Any]:
    """Everything the blind view shows for this ballot: the next pair while open, the reveal once closed."""
    tally = votes.tally(ballot)
    total = len(ballot["items"])
    who = f"**{ballot.get('label', 'Voter')}** · {tally['total']} of {total} prompts voted"
    if votes.is_revealed(ballot):
        rows = [
            [
                votes.position(ballot, r["index"]),
                r["prompt"],
                "tuned" if r["tuned_is"] == "A" else "base",
                "tuned" if r["tuned_is"] == "B" else "base",
                r["vote"],
                r["winner"],
            ]
            for r in votes.reveal(ballot, result)
        ]
        everyone = votes.finished_ballots(info, result)
        lines = [f"**Your ballot:** {votes.tally_text(tally)}"]
        if len(everyone) > 1:
            lines.append(f"**All {len(everyone)} finished ballots:** {votes.tally_text(votes.tally(everyone))}")
        prompt = (
            f"**Ballot closed.** You voted on {tally['total']} of {total} prompts; below is which answer was "
            "which for those only. Press **New voter** to let someone else vote."
        )
        return {
            **_ab_pair(voter, who + " · closed", prompt),
            "tally": "\n\n".join(lines),
            "reveal": gr.update(value=rows, visible=True),
            **dict.fromkeys(VOTE_BUTTONS, gr.update(interactive=False)),
            "finish": gr.update(interactive=False, value="Ballot closed"),
        }
    index = votes.next_unvoted(ballot)
    hidden_reveal = gr.update(value=None, visible=False)
    if index is None:
        done = f"**All {total} prompts voted.** Press **Finish and reveal** to see which answer was which."
        return {
            **_ab_pair(voter, who, done),
            "tally": "",
            "reveal": hidden_reveal,
            **dict.fromkeys(VOTE_BUTTONS, gr.update(interactive=False)),
            "finish": gr.update(interactive=True, value="Finish and reveal"),
        }
    shown = votes.pair(ballot, result, index)
    finish_label = "Finish and reveal" if not tally["total"] else "Stop here and reveal"
    question = f"**Prompt {votes.position(ballot, index)} of {total}:** {escape.md(shown['prompt'])}"
    return {
        **_ab_pair(voter, who, question, shown["A"], shown["B"], index),
        "tally": "",
        "reveal": hidden_reveal,
        **dict.fromkeys(VOTE_BUTTONS, gr.update(interactive=True)),
        "finish": gr.update(interactive=True, value=finish_label),
    }


def _ab_pair(voter, who, prompt, a="", b="", index=None) -> dict[str, Any]:
    """The ballot's header and the pair on show (none once all are voted or the ballot is closed)."""
    return {"voter": voter, "who": who, "prompt": prompt, "a": a, "b": b, "index": index}


def _ab_failed(voter, error) -> dict[str, Any]:
    return {
        **_ab_pair(voter, gr.update(), message_markdown(error)),
        "tally": "",
        "reveal": gr.update(visible=False),
        **dict.fromkeys(VOTE_BUTTONS, gr.update(interactive=False)),
        "finish": gr.update(interactive=False),
    }


def _ab_context(run):
    info = runs.load_run(run)
    result = evaluate.load(info)
    if not result:
        raise StudioError(
            "The blind test uses the evaluation's answers, and there is none yet.",
            "Switch to “Side by side” and press Evaluate first (10 or more prompts give a useful tally).",
        )
    return info, result


def ab_start(run, voter):
    """Start or continue this browser's ballot (a voter id is made on first use and kept in the browser)."""
    try:
        info, result = _ab_context(run)
        voter = voter or votes.new_voter_id()
        return _ab_render(voter, info, result, votes.ballot_for(info, result, voter))
    except StudioError as error:
        return _ab_failed(voter, error)


def ab_new_voter(run):
    """A fresh ballot for the next person at this screen (the previous ballot stays saved)."""
    return ab_start(run, votes.new_voter_id())


def ab_vote(run, voter, index, choice):
    try:
        info, result = _ab_context(run)
        if index is None:
            return _ab_render(voter, info, result, votes.ballot_for(info, result, voter))
        return _ab_render(voter, info, result, votes.cast(info, result, voter, int(index), choice))
    except StudioError as error:
        return _ab_failed(voter, error)


def vote_button(choice: str):
    """The handler of one vote button (named vote_A, vote_tie, vote_B: one API name per button)."""

    def vote(run, voter, index):
        return ab_vote(run, voter, index, choice)

    vote.__name__ = vote.__qualname__ = f"vote_{choice}"
    return vote


def ab_reveal(run, voter):
    """Finish (or stop) this voter's ballot: it closes, and which was which shows for the voted prompts."""
    try:
        info, result = _ab_context(run)
        ballot = votes.finish(info, result, voter)
        evaluate.save_verdict(info)  # the model card's verdict counts this ballot
        return _ab_render(voter, info, result, ballot)
    except StudioError as error:
        return _ab_failed(voter, error)


def ab_clear() -> dict[str, Any]:
    """Another run was opened: the blind view starts over (a prompt index of the old run must not vote on the new
    one)."""
    return {
        "who": "",
        "prompt": "",
        "a": "",
        "b": "",
        "index": None,
        "tally": "",
        "reveal": gr.update(value=None, visible=False),
        **dict.fromkeys(VOTE_BUTTONS, gr.update(interactive=False)),
        "finish": gr.update(interactive=False),
    }


def build_report(run) -> dict[str, Any]:
    try:
        info = runs.load_run(run)
        html_path, md_path = report.write(info)
        # Gradio serves downloads only from its own folders: hand it copies with a telling name (named inside
        # the run folder: Compare writes nowhere else).
        import shutil

        stem = f"report-{paths.safe_name(info.run_id, 'run')}"
        html_named = shutil.copyfile(html_path, html_path.with_name(f"{stem}.html"))
        md_named = shutil.copyfile(md_path, md_path.with_name(f"{stem}.md"))
        return {
            "report_status": f"Report saved in {escape.md_code(access.redact(str(html_path.parent)))} — one HTML file "
            "that opens offline (e-mail it as is).",
            "report_html": gr.update(value=download_copy(html_named), visible=True),
            "report_md": gr.update(value=download_copy(md_named), visible=True),
        }
    except StudioError as error:
        problem = message_markdown(error)
    except OSError as error:
        problem = f"**Could not write the report: {escape.md_inline(error)}**"
    hidden = gr.update(visible=False)
    return {"report_status": problem, "report_html": hidden, "report_md": hidden}


def preselect(run_id):
    """Train's "Open in Compare" sets shared.run: select that run (and refresh the list)."""
    choices = run_choices()
    return gr.update(choices=choices, value=run_id) if run_id else gr.update(choices=choices)


# ---------------------------------------------------------------- layout


def build(shared: Shared) -> None:
    gr.Markdown(INTRO, elem_classes="tab-intro", elem_id="compare-intro")
    with gr.Row(equal_height=True):
        run = gr.Dropdown(
            label="Training run (or paste a run / adapter folder path)",
            choices=run_choices(),
            allow_custom_value=True,
            elem_id="compare-run",
            scale=4,
        )
        run_b = gr.Dropdown(
            label="Optional third column: run B on the same base",
            choices=[("(none)", "")],
            value="",
            allow_custom_value=True,
            elem_id="compare-run-b",
            scale=3,
        )
        refresh = gr.Button("↻ Refresh list", size="sm", scale=1, elem_id="compare-refresh")
        open_button = gr.Button("Open", variant="primary", scale=1, elem_id="compare-open")
    status = gr.Markdown("", elem_id="compare-status")
    view = gr.Radio(VIEWS, value=VIEWS[0], show_label=False, elem_id="compare-view")

    with gr.Column(visible=True, elem_id="compare-labelled") as labelled_view:
        with gr.Accordion(
            "Generation settings (the same for every column and for the evaluation)",
            open=False,
            elem_id="compare-settings",
        ):
            with gr.Row():
                system_prompt = gr.Textbox(
                    label="System prompt (empty: the model's default)", lines=2, scale=3, elem_id="compare-system"
                )
                with gr.Column(scale=2):
                    greedy = gr.Checkbox(
                        value=False,
                        label="Greedy decoding (no sampling: the same answer every time)",
                        elem_id="compare-greedy",
                    )
                    temperature = gr.Slider(
                        0, 1.5, value=DEFAULT_TEMPERATURE, step=0.05, label="Temperature", elem_id="compare-temperature"
                    )
                    top_p = gr.Slider(0.05, 1, value=DEFAULT_TOP_P, step=0.05, label="Top-p", elem_id="compare-top-p")
                with gr.Column(scale=2):
                    repetition_penalty = gr.Slider(
                        1.0,
                        2.0,
                        value=DEFAULT_REPETITION_PENALTY,
                        step=0.05,
                        label="Repetition penalty (1 = off)",
                        elem_id="compare-repetition",
                    )
                    max_new_tokens = gr.Slider(
                        8,
                        min(1024, limits.whole("new_tokens") or 1024),
                        value=min(200, limits.whole("new_tokens") or 200),
                        step=8,
                        label="Max new tokens",
                    )
                    seed = gr.Number(value=0, precision=0, label="Seed (the same for every column)")
            settings_md = gr.Markdown(settings_note(Settings()), elem_id="compare-settings-note")

        with gr.Row(equal_height=True):
            with gr.Column():
                # A heading above the chat, not the Chatbot's own label: that label floats over the first bubble.
                gr.Markdown("**Base model** — as downloaded", elem_classes="compare-column-title")
                base_chat = gr.Chatbot(
                    show_label=False,
                    height=420,
                    elem_id="compare-base-chat",
                    placeholder=BASE_PLACEHOLDER,
                    feedback_options=None,
                )
                base_stats = gr.Markdown("", elem_id="compare-base-stats")
            with gr.Column():
                gr.Markdown(
                    "**Tuned** — base + your LoRA adapter, or your fully tuned model",
                    elem_classes="compare-column-title",
                )
                tuned_chat = gr.Chatbot(
                    show_label=False,
                    height=420,
                    elem_id="compare-tuned-chat",
                    placeholder=TUNED_PLACEHOLDER,
                    feedback_options=None,
                )
                tuned_stats = gr.Markdown("", elem_id="compare-tuned-stats")
            with gr.Column(visible=False) as run_b_column:
                gr.Markdown("**Run B** — base + run B's adapter", elem_classes="compare-column-title")
                run_b_chat = gr.Chatbot(
                    show_label=False,
                    height=420,
                    elem_id="compare-runb-chat",
                    placeholder=RUN_B_PLACEHOLDER,
                    feedback_options=None,
                )
                run_b_stats = gr.Markdown("", elem_id="compare-runb-stats")
        with gr.Row(equal_height=True):
            message = gr.Textbox(
                placeholder="Ask both models the same question…",
                show_label=False,
                scale=6,
                elem_id="compare-input",
                autofocus=False,
            )
            send = gr.Button("Send to both", variant="primary", scale=1, elem_id="compare-send")
            stop = gr.Button("Stop", variant="stop", scale=1, elem_id="compare-stop")
            clear = gr.Button("Clear", scale=1, elem_id="compare-clear")
        examples = gr.Dataset(
            label="Example prompts from the run's validation data (click one)",
            components=[message],
            samples=[["Hello! What can you do?"]],
            elem_id="compare-examples",
        )
        chat_error = gr.Markdown("", elem_id="compare-chat-error")

        with gr.Accordion("Held-out evaluation — is the tuned model better on unseen prompts?", open=True):
            gr.Markdown(
                "Generates base and tuned answers for prompts the model did not train on (the run's validation "
                "split, or your own JSONL file) with the generation settings above, and scores both against the "
                "reference answers: **loss** (how surprised the model is by the reference; lower is better), "
                "**ROUGE-L** and **chrF** overlap (higher is better). The verdict weighs them together with the "
                "finished blind ballots, each with its uncertainty, and says *inconclusive* when the evidence "
                "cannot carry a conclusion."
            )
            with gr.Row():
                eval_n = gr.Number(
                    value=min(20, limits.whole("eval_prompts") or 20),
                    precision=0,
                    minimum=1,
                    maximum=limits.whole("eval_prompts"),
                    label="Prompts",
                    elem_id="compare-eval-n",
                    scale=1,
                )
                eval_tokens = gr.Slider(
                    16,
                    max(16, min(512, limits.whole("new_tokens") or 512)),
                    value=max(16, min(128, limits.whole("new_tokens") or 128)),
                    step=16,
                    label="Max new tokens per answer",
                    scale=2,
                    elem_id="compare-eval-tokens",
                )
                prompt_file = gr.File(
                    label="Optional prompt file (JSONL chat rows)",
                    file_types=[".jsonl"],
                    type="filepath",
                    scale=2,
                    height=120,
                    elem_id="compare-eval-file",
                )
                eval_button = gr.Button("Evaluate", variant="primary", scale=1, elem_id="compare-eval-run")
            eval_verdict = gr.Markdown("", elem_id="compare-verdict")
            eval_headline = gr.Markdown("", elem_id="compare-eval-summary")
            eval_plot = gr.Plot(label="Loss per prompt", elem_id="compare-eval-plot", visible=False)
            eval_table = gr.Dataframe(
                headers=EVAL_HEADERS,
                wrap=True,
                interactive=False,
                elem_id="compare-eval-table",
                column_widths=["15%", "15%", "19%", "19%", "6%", "6%", "6%", "6%", "8%"],
            )

        with gr.Accordion("Report for stakeholders", open=False):
            gr.Markdown(
                "One HTML file (opens offline, fine to e-mail) and a Markdown copy: the verdict, what the run "
                "was, the loss chart, the evaluation table and the finished blind ballots."
            )
            report_button = gr.Button("Build report", elem_id="compare-report-build")
            report_status = gr.Markdown("", elem_id="compare-report-status")
            with gr.Row():
                report_html = gr.DownloadButton("Download report (HTML)", visible=False, elem_id="compare-report-html")
                report_md = gr.DownloadButton("Download report (Markdown)", visible=False, elem_id="compare-report-md")

    with gr.Column(visible=False, elem_id="compare-blind") as blind_view:
        gr.Markdown(BLIND_INTRO)
        # One ballot per browser: the voter id lives in this browser's storage (encrypted by Gradio).
        voter = gr.BrowserState("", storage_key="studio-blind-voter")
        with gr.Row(equal_height=True):
            ab_who = gr.Markdown("", elem_id="compare-ab-voter")
            ab_start_button = gr.Button(
                "Start / continue my ballot", variant="primary", scale=0, elem_id="compare-ab-start"
            )
            ab_new_button = gr.Button("New voter", scale=0, elem_id="compare-ab-new-voter")
        ab_prompt = gr.Markdown("", elem_id="compare-ab-prompt")
        with gr.Row(equal_height=True):
            ab_a = gr.Textbox(label="Answer A", lines=8, interactive=False, elem_id="compare-ab-a")
            ab_b = gr.Textbox(label="Answer B", lines=8, interactive=False, elem_id="compare-ab-b")
        with gr.Row():
            vote_a = gr.Button("A is better", interactive=False, elem_id="compare-vote-a")
            vote_tie = gr.Button("Tie", interactive=False, elem_id="compare-vote-tie")
            vote_b = gr.Button("B is better", interactive=False, elem_id="compare-vote-b")
        ab_finish = gr.Button("Finish and reveal", size="sm", interactive=False, elem_id="compare-ab-reveal")
        ab_tally = gr.Markdown("", elem_id="compare-ab-tally")
        ab_reveal_table = gr.Dataframe(
            headers=REVEAL_HEADERS, visible=False, interactive=False, wrap=True, elem_id="compare-ab-reveal-table"
        )
        ab_index = gr.State(None)

    # ---- events
    chats = [base_chat, tuned_chat, run_b_chat]
    stats = [base_stats, tuned_stats, run_b_stats]
    setting_inputs = [system_prompt, temperature, top_p, max_new_tokens, seed, repetition_penalty, greedy]
    page = Parts(
        run=run,
        run_b=run_b,
        status=status,
        examples=examples,
        run_b_column=run_b_column,
        **dict(zip(CHAT_COLUMNS, chats)),
        **dict(zip(STATS_LINES, stats)),
        message=message,
        chat_error=chat_error,
        eval_verdict=eval_verdict,
        eval_headline=eval_headline,
        eval_plot=eval_plot,
        eval_table=eval_table,
        temperature=temperature,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        greedy=greedy,
        settings_note=settings_md,
        labelled_view=labelled_view,
        blind_view=blind_view,
        report_status=report_status,
        report_html=report_html,
        report_md=report_md,
    )
    listed = page.pick("run", "run_b", "status")
    opened = page.pick(
        "status",
        "examples",
        "run_b_column",
        *CHAT_COLUMNS,
        "eval_verdict",
        "eval_headline",
        "eval_plot",
        "eval_table",
        "temperature",
        "top_p",
        "repetition_penalty",
        "greedy",
        "settings_note",
    )
    g = guarded  # every handler goes through the guard (studio/ui/guard.py) with its rule
    private = {"api_visibility": "private"}
    refresh.click(wired(access.LOOK, listed, refresh_runs), inputs=run, outputs=listed.outputs(), **private)
    opener = wired(access.CHAT, opened, open_run)
    open_button.click(opener, inputs=[run, run_b], outputs=opened.outputs(), **private)
    run.input(opener, inputs=[run, run_b], outputs=opened.outputs(), **private)
    run_b.input(opener, inputs=[run, run_b], outputs=opened.outputs(), **private)
    shared.run.change(g(access.LOOK, preselect), inputs=shared.run, outputs=run, **private).then(
        opener, inputs=[run, run_b], outputs=opened.outputs(), **private
    )
    for control in setting_inputs:
        control.change(
            g(access.LOOK, describe_settings),
            inputs=setting_inputs,
            outputs=settings_md,
            **private,
            show_progress="hidden",
        )

    # On ZeroGPU hardware a GPU is attached only inside @spaces.GPU calls: generation runs in them.
    chatted = page.pick("message", *CHAT_COLUMNS, *STATS_LINES, "chat_error")
    evaluated = page.pick("eval_verdict", "eval_headline", "eval_plot", "eval_table")
    # (names are translated inside the GPU call: it then wraps the same kind of function as before, a generator)
    chat_on_gpu = g(access.CHAT, access.gpu_call(chatted.handler(chat), duration=120))
    evaluation_on_gpu = g(access.EVALUATE, access.gpu_call(evaluated.handler(run_evaluation), duration=300))
    chat_inputs = [
        message,
        *chats,
        run,
        run_b,
        system_prompt,
        temperature,
        top_p,
        max_new_tokens,
        seed,
        repetition_penalty,
        greedy,
    ]
    sent = send.click(chat_on_gpu, inputs=chat_inputs, outputs=chatted.outputs(), **private)
    submitted = message.submit(chat_on_gpu, inputs=chat_inputs, outputs=chatted.outputs(), **private)
    stop.click(g(access.LOOK, mark_stopped), inputs=stats, outputs=stats, cancels=[sent, submitted], **private)
    cleared = page.pick(*CHAT_COLUMNS, *STATS_LINES, "chat_error")
    clear.click(
        wired(access.LOOK, cleared, clear_chat), outputs=cleared.outputs(), cancels=[sent, submitted], **private
    )
    examples.click(g(access.LOOK, pick_example), inputs=examples, outputs=message, **private)

    # Progress shows once, on the verdict, not over every output (it used to cover the plot and table too).
    eval_button.click(
        evaluation_on_gpu,
        inputs=[
            run,
            eval_n,
            prompt_file,
            system_prompt,
            eval_tokens,
            temperature,
            top_p,
            repetition_penalty,
            greedy,
            seed,
        ],
        outputs=evaluated.outputs(),
        **private,
        show_progress_on=[eval_verdict],
    )

    views = page.pick("labelled_view", "blind_view")
    view.change(wired(access.LOOK, views, switch_view), inputs=view, outputs=views.outputs(), **private).then(
        g(access.VIEW, refresh_verdict), inputs=run, outputs=eval_verdict, **private, show_progress="hidden"
    )
    ballot = Parts(
        voter=voter,
        who=ab_who,
        prompt=ab_prompt,
        a=ab_a,
        b=ab_b,
        index=ab_index,
        tally=ab_tally,
        reveal=ab_reveal_table,
        vote_a=vote_a,
        vote_tie=vote_tie,
        vote_b=vote_b,
        finish=ab_finish,
    )
    assert ballot.names == AB_OUTPUTS
    # Ballot events take milliseconds: no progress overlay flickering over the answers and the tally.
    quiet = {**private, "show_progress": "hidden"}
    run.change(wired(access.LOOK, ballot, ab_clear), outputs=ballot.outputs(), **quiet)
    ab_start_button.click(wired(access.VOTE, ballot, ab_start), inputs=[run, voter], outputs=ballot.outputs(), **quiet)
    ab_new_button.click(wired(access.VOTE, ballot, ab_new_voter), inputs=run, outputs=ballot.outputs(), **quiet)
    for button, choice in ((vote_a, "A"), (vote_tie, "tie"), (vote_b, "B")):
        button.click(
            wired(access.VOTE, ballot, vote_button(choice)),
            inputs=[run, voter, ab_index],
            outputs=ballot.outputs(),
            **quiet,
        )
    ab_finish.click(wired(access.VOTE, ballot, ab_reveal), inputs=[run, voter], outputs=ballot.outputs(), **quiet)
    reported = page.pick("report_status", "report_html", "report_md")
    report_button.click(wired(access.REPORT, reported, build_report), inputs=run, outputs=reported.outputs(), **private)

    # Runs finish while the app is up: refresh the list whenever the page loads (once the visitor is known).
    if shared.ready is not None:
        asked_run = gr.Textbox(visible=False)  # filled by the browser from the page's address
        shared.ready.then(
            wired(access.LOOK, listed, refresh_runs),
            inputs=[run, asked_run],
            outputs=listed.outputs(),
            js=read_url_param_js("run", inputs=1),
            **private,
        )
    else:
        from gradio.context import Context

        if Context.root_block is not None:
            Context.root_block.load(
                wired(access.LOOK, listed, refresh_runs), inputs=run, outputs=listed.outputs(), **private
            )
