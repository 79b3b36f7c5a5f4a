"""The Train tab's layout and wiring: settings → preflight → start; live view of the run; actions; history.

Thin on purpose. The handlers live beside it — train_form (settings, preflight, start), train_live (the live
view and history), train_actions (stop, resume, delete, export, operator tools) — and the logic below them in
studio.train. Components are registered under names (`page`, studio/ui/wiring.py) and handlers return
`{name: value}`. Every handler is wired through ui/guard.py with its rule.
"""

from __future__ import annotations

import os

import gradio as gr

from studio import access
from studio.jobs.estimate import default_max_cost
from studio.models.cost import STRATEGY_LABELS
from studio.train import preflight
from studio.train.config import SCHEDULERS, RunConfig
from studio.ui import train_actions, train_form, train_live
from studio.ui.guard import guarded
from studio.ui.shared import URL_PARAM_JS, Shared
from studio.ui.train_common import dataset_choices, model_choices, open_view, this_machine
from studio.ui.wiring import Parts, wired


def build(shared: Shared) -> None:
    defaults = RunConfig()
    hardware = this_machine()
    qlora_reason = preflight.qlora_reason(hardware)
    zero_gpu = preflight.zero_gpu_message()
    admin_enabled = bool(os.environ.get("STUDIO_ADMIN_PASSWORD"))

    browser_id = gr.State(None)  # set on load from localStorage (BROWSER_ID_JS)
    browser_id_carrier = gr.Textbox(visible=False)
    view = gr.State(open_view(None))
    hidden = gr.State({})
    run_ids = gr.State([])

    gr.Markdown(
        "**Train a LoRA adapter (or the whole model).** Pick a model and a dataset, check the estimate, start. "
        "Training runs in its own process: you can close or reload this page and come back — the run keeps going "
        "and this view reattaches.",
        elem_classes="tab-intro",
    )
    if zero_gpu:
        gr.Markdown(
            f"⚠ **{zero_gpu}** Or send the run to *Hugging Face Jobs* (Where to train, below).", elem_id="train-zerogpu"
        )

    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            gr.Markdown("#### 1 · Settings")
            with gr.Row():
                model = gr.Dropdown(
                    model_choices(),
                    value=defaults.model,
                    label="Model",
                    allow_custom_value=True,
                    info="The bundled model works offline. Or type a Hub id (owner/name) or a local folder.",
                    scale=4,
                    elem_id="train-model",
                )
                remote_code_offered = not access.is_public() or access.settings().allow_remote_code
                trust = gr.Checkbox(
                    value=False,
                    label="Allow remote code",
                    scale=1,
                    visible=remote_code_offered,
                    info="Only for models whose authors you trust."
                    if not access.is_public()
                    else "Operators only (STUDIO_ALLOW_REMOTE_CODE=1).",
                )
            with gr.Row():
                datasets = dataset_choices()
                dataset = gr.Dropdown(
                    datasets,
                    value=datasets[0][1] if datasets else None,
                    label="Dataset",
                    info="Saved in the Data tab (cleaned and split).",
                    scale=5,
                    elem_id="train-dataset",
                )
                refresh = gr.Button("↻", scale=0, min_width=40, size="sm", elem_id="train-dataset-refresh")
            dataset_info = gr.Markdown(elem_id="train-dataset-info")
            with gr.Accordion("…or upload a file (linted first)", open=False):
                upload = gr.File(
                    label='Chat data: JSONL or JSON with a "messages" list per row',
                    file_types=[".jsonl", ".json"],
                    type="filepath",
                )
                upload_message = gr.Markdown()
            prefill_note = gr.Markdown()
            with gr.Row():
                epochs = gr.Number(defaults.epochs, label="Epochs", step=1, elem_id="train-epochs")
                learning_rate = gr.Number(
                    0,
                    label="Learning rate (0 = auto)",
                    step=0.0001,
                    elem_id="train-lr",
                    info="auto: 1e-3 below 1B parameters, else 2e-4",
                )
                lora_r = gr.Number(defaults.lora_r, label="LoRA rank", precision=0, step=4, elem_id="train-lora-r")
                max_steps = gr.Number(
                    0, label="Max steps (0 = all)", precision=0, elem_id="train-max-steps", info="A short trial run"
                )
            name = gr.Textbox(
                label="Run name (optional)", placeholder="e.g. pirate style, r8, 3 epochs", elem_id="train-name"
            )
            with gr.Accordion("Advanced settings", open=False, elem_id="train-advanced"):
                with gr.Row():
                    lora_alpha = gr.Number(
                        defaults.lora_alpha, label="LoRA alpha", precision=0, info="Usually 2 × rank"
                    )
                    lora_dropout = gr.Number(defaults.lora_dropout, label="LoRA dropout", step=0.05)
                    target_modules = gr.Textbox(
                        defaults.target_modules, label="Target modules", info="all-linear, or e.g. q_proj,v_proj"
                    )
                    use_dora = gr.Checkbox(
                        defaults.use_dora, label="DoRA", info="Often better at low rank; ~20 % slower"
                    )
                with gr.Row():
                    batch_size = gr.Number(defaults.batch_size, label="Batch size", precision=0)
                    grad_accum = gr.Number(defaults.grad_accum, label="Gradient accumulation", precision=0)
                    max_length = gr.Number(
                        defaults.max_length,
                        label="Max length (tokens)",
                        precision=0,
                        info="Set from the dataset's p99",
                        elem_id="train-max-length",
                    )
                    packing = gr.Checkbox(defaults.packing, label="Packing", info="Joins short rows; no padding")
                with gr.Row():
                    assistant_only = gr.Checkbox(
                        defaults.assistant_only_loss,
                        label="Assistant-only loss",
                        info="Learn the answers, not the prompts",
                    )
                    warmup = gr.Number(defaults.warmup, label="Warmup", info="< 1: fraction of steps; ≥ 1: steps")
                    scheduler = gr.Dropdown(list(SCHEDULERS), value=defaults.scheduler, label="LR scheduler")
                    weight_decay = gr.Number(defaults.weight_decay, label="Weight decay", step=0.01)
                assistant_note = gr.Markdown(train_form.ASSISTANT_ONLY_OFF, visible=not defaults.assistant_only_loss)
                with gr.Row():
                    seed = gr.Number(defaults.seed, label="Seed", precision=0)
                    eval_steps = gr.Number(
                        defaults.eval_steps, label="Eval every N steps", precision=0, info="0 = automatic"
                    )
                    save_steps = gr.Number(
                        defaults.save_steps, label="Checkpoint every N steps", precision=0, info="0 = automatic"
                    )
                    logging_steps = gr.Number(
                        defaults.logging_steps, label="Log every N steps", precision=0, info="0 = automatic"
                    )
                with gr.Row():
                    qlora = gr.Checkbox(
                        False,
                        label="QLoRA 4-bit",
                        interactive=qlora_reason is None,
                        info=qlora_reason
                        or "The base model's linear layers in 4 bits (bitsandbytes, GPU or CPU): 3–4× less memory "
                        "for the weights, steps 20–30 % slower.",
                    )
                    full_finetune = gr.Checkbox(
                        defaults.full_finetune,
                        label="Full fine-tuning",
                        elem_id="train-full",
                        info="Every weight trains, no adapter (the LoRA settings do not apply): about 16 bytes of "
                        "memory per parameter; the output is a whole model.",
                    )
                with gr.Row():
                    processes = gr.Number(
                        defaults.processes,
                        label="Processes",
                        precision=0,
                        minimum=0,
                        elem_id="train-processes",
                        info="0 = one per GPU (one on a CPU); 2+ on a CPU tests the multi-process path",
                    )
                    strategy = gr.Dropdown(
                        [(label, key) for key, label in STRATEGY_LABELS.items()],
                        value=defaults.strategy,
                        label="Strategy (several processes)",
                        elem_id="train-strategy",
                    )

        with gr.Column(scale=2):
            gr.Markdown("#### 2 · Check and start")
            jobs_label = "Hugging Face Jobs (the operator only)" if access.is_public() else "Hugging Face Jobs"
            where = gr.Radio(
                [("This machine", "local"), (jobs_label, "hf-jobs")],
                value="local",
                label="Where to train",
                info=f"This machine: {hardware.summary}",
                elem_id="train-where",
            )
            with gr.Group(visible=False, elem_id="train-jobs") as jobs_box:
                with gr.Row():
                    flavor = gr.Dropdown(
                        [],
                        label="Jobs hardware (flavour)",
                        scale=5,
                        elem_id="train-flavor",
                        info="GPU or CPU machine on Hugging Face, billed by the second",
                    )
                    flavor_refresh = gr.Button("↻", scale=0, min_width=40, size="sm", elem_id="train-flavor-refresh")
                max_cost = gr.Number(
                    default_max_cost(),
                    label="Cost cap (US$)",
                    minimum=0,
                    elem_id="train-max-cost",
                    info="Hugging Face stops the job when it has cost this much",
                )
                jobs_note = gr.Markdown(elem_id="train-jobs-note")
            check_button = gr.Button("Check settings", elem_id="train-check")
            preflight_md = gr.Markdown(
                "*Press **Check settings** for the steps, time and memory of this run where it will train.*",
                elem_id="train-preflight",
            )
            with gr.Row(equal_height=True):
                start_button = gr.Button(
                    "Start training", variant="primary", elem_id="train-start", interactive=zero_gpu is None, scale=1
                )
                # Beside the button: what happened, with the number of warnings that went with it (never blocking).
                start_message = gr.Markdown(elem_id="train-start-message", container=False)
            with gr.Accordion("Equivalent command and config JSON", open=False):
                cli_code = gr.Code(
                    label="Same run from a terminal", language="shell", interactive=False, elem_id="train-cli"
                )
                config_code = gr.Code(label="RunConfig JSON", language="json", interactive=False)

    gr.Markdown("#### 3 · Run")
    header = gr.Markdown("*No run yet. Pick your settings above and press Start training.*", elem_id="train-run-header")
    with gr.Column(visible=False, elem_id="train-run-panel") as run_panel:
        progress = gr.HTML(elem_id="train-progress")
        status_md = gr.Markdown(elem_id="train-status")
        with gr.Row():
            stop_button = gr.Button("Stop (save and end)", variant="secondary", visible=False, elem_id="train-stop")
            force_button = gr.Button("Force stop", variant="secondary", visible=False, elem_id="train-force-stop")
            resume_button = gr.Button("Resume", variant="primary", visible=False, elem_id="train-resume")
            delete_button = gr.Button("Delete run…", variant="secondary", visible=False, elem_id="train-delete")
        with gr.Row(visible=False) as confirm_row:
            confirm_button = gr.Button("Yes, delete it", variant="stop", elem_id="train-delete-confirm")
            cancel_button = gr.Button("Cancel")
        action_message = gr.Markdown(elem_id="train-action-message")
        admin_password = gr.Textbox(
            label="Admin password (to stop or delete another session's run)", type="password", visible=admin_enabled
        )
        overfit_md = gr.Markdown(elem_id="train-overfitting")
        loss_plot = gr.Plot(label="Loss", show_label=False, elem_id="train-loss-plot")
        rate_plot = gr.Plot(label="Learning rate and speed", show_label=False, elem_id="train-rate-plot")
        with gr.Accordion("Log (last lines)", open=False):
            log_code = gr.Code(language=None, interactive=False, elem_id="train-log", max_lines=30)
        with gr.Row():
            again_button = gr.Button("Train again with these settings", elem_id="train-again")
            compare_button = gr.Button("Open in Compare →", variant="primary", elem_id="train-open-compare")
        with gr.Accordion("Export: download, merge, push to the Hub", open=False, elem_id="train-export"):
            with gr.Row():
                zip_button = gr.Button("Download adapter (.zip)", elem_id="train-zip")
                merge_button = gr.Button("Merge into full weights…", elem_id="train-merge")
            zip_file = gr.File(label="Adapter zip", visible=False, interactive=False)
            export_message = gr.Markdown()
            merge_confirm = gr.Button("Merge now", variant="primary", visible=False)
            with gr.Row():
                repo_id = gr.Textbox(label="Hub repository", placeholder="your-name/my-adapter", scale=2)
                token = gr.Textbox(
                    label="Hugging Face token (write)",
                    type="password",
                    scale=2,
                    info="Used for this upload only; never saved.",
                )
                what = gr.Radio(["Adapter", "Merged model"], value="Adapter", label="Push", scale=1)
                private_repo = gr.Checkbox(True, label="Private repo", scale=1)
            push_button = gr.Button("Push to the Hub", elem_id="train-push")
            push_message = gr.Markdown()
        with gr.Accordion("Config of this run", open=False):
            run_config_code = gr.Code(language="json", interactive=False)
        public = access.is_public()
        with gr.Accordion("Operator tools (the operator only)", open=False, visible=public, elem_id="train-operator"):
            gr.Markdown(
                "Share the viewed run with every visitor (a demo they can open and chat with in Compare), "
                "or move a queued run to the front. Visitors who press these are refused."
            )
            with gr.Row():
                share_button = gr.Button("Share this run with every visitor", elem_id="train-share")
                unshare_button = gr.Button("Stop sharing it", elem_id="train-unshare")
                front_button = gr.Button("Move it to the front of the queue", elem_id="train-queue-front")
                queue_button = gr.Button("Show the queue", elem_id="train-queue-show")
            operator_message = gr.Markdown(elem_id="train-operator-message")

    gr.Markdown("#### 4 · History")
    history = gr.Dataframe(
        headers=train_live.HISTORY_HEADERS,
        value=[],
        interactive=False,
        wrap=True,
        elem_id="train-history",
        label="All runs (click a row to open it)",
        show_row_numbers=False,
        column_widths=["22%", "16%", "14%", "9%", "8%", "10%", "9%", "12%"],
    )

    # ---- wiring
    form = [
        model,
        trust,
        dataset,
        name,
        epochs,
        learning_rate,
        lora_r,
        max_steps,
        lora_alpha,
        lora_dropout,
        target_modules,
        use_dora,
        full_finetune,
        batch_size,
        grad_accum,
        max_length,
        packing,
        assistant_only,
        warmup,
        scheduler,
        weight_decay,
        seed,
        eval_steps,
        save_steps,
        logging_steps,
        qlora,
        processes,
        strategy,
    ]
    assert len(form) == len(train_form.FORM_FIELDS)
    # Every component a handler changes, by the name handlers return (train_form, train_live, train_actions).
    page = Parts(
        **dict(zip(train_form.FORM_FIELDS, form)),
        hidden=hidden,
        prefill_note=prefill_note,
        dataset_info=dataset_info,
        upload_message=upload_message,
        assistant_note=assistant_note,
        where=where,
        jobs_box=jobs_box,
        flavor=flavor,
        max_cost=max_cost,
        jobs_note=jobs_note,
        start_button=start_button,
        preflight=preflight_md,
        cli=cli_code,
        config_json=config_code,
        start_message=start_message,
        view=view,
        panel=run_panel,
        header=header,
        status=status_md,
        progress=progress,
        loss=loss_plot,
        rates=rate_plot,
        overfitting=overfit_md,
        log=log_code,
        stop=stop_button,
        force_stop=force_button,
        resume=resume_button,
        delete=delete_button,
        action_message=action_message,
        confirm_row=confirm_row,
        history=history,
        run_ids=run_ids,
        run_config=run_config_code,
        zip_file=zip_file,
        export_message=export_message,
        merge_confirm=merge_confirm,
        push_message=push_message,
        token=token,
        operator_message=operator_message,
        compare_run=shared.run,
        tabs=shared.tabs,
    )
    live = page.pick(*train_live.LIVE_VIEW)
    # A run's settings include where it trained: train again / a reload restores a Jobs run's flavour and cap too.
    form_fill = page.pick(
        *train_form.FORM_FIELDS,
        "hidden",
        "prefill_note",
        "dataset_info",
        "where",
        *train_form.WHERE_OUTPUTS,
        "max_cost",
        "start_message",
    )
    checked = page.pick("preflight", "cli", "config_json")
    started_parts = page.pick("preflight", "cli", "config_json", "start_message", "view", "prefill_note")

    g = guarded  # every handler below goes through the guard (studio/ui/guard.py) with its rule
    private = {"api_visibility": "private"}
    describe = page.pick("dataset_info", "max_length")
    # A dataset picked by hand suggests its max length; one set with other settings (train again, Decide, a
    # reload) comes with its own, so this follows the user's pick only (and an upload, below).
    dataset.input(wired(access.LOOK, describe, train_form.describe_dataset), dataset, describe.outputs(), **private)
    refresh.click(g(access.LOOK, train_form.refresh_datasets), dataset, dataset, **private)
    uploaded = page.pick("dataset", "dataset_info", "max_length", "upload_message")
    upload.upload(
        wired(access.SAVE_DATASET, uploaded, train_form.upload_dataset), upload, uploaded.outputs(), **private
    )
    assistant_only.change(g(access.LOOK, train_form.toggle_assistant_note), assistant_only, assistant_note, **private)
    picked = page.pick("dataset", "dataset_info", "max_length")
    shared.dataset.change(
        wired(access.LOOK, picked, train_form.pick_shared_dataset), shared.dataset, picked.outputs(), **private
    )
    shared.train_prefill.change(
        wired(access.LOOK, form_fill, train_form.apply_prefill),
        [shared.train_prefill, hidden],
        form_fill.outputs(),
        **private,
    )

    # Where to train: looking is free; the flavour list and a Jobs run use the server's token, so the logic
    # (studio.jobs.executor.require_operator) refuses everyone but an operator, whichever handler asks.
    where_inputs = [where, flavor, max_cost]
    where_parts = page.pick(*train_form.WHERE_OUTPUTS)
    # The user's choice only (.input): a form filled from a run (train again, a reload) sets where, flavour and cap
    # together, and a .change here would then re-pick the flavour from a list the page had not loaded yet.
    where.input(
        wired(access.LOOK, where_parts, train_form.choose_where), [where, flavor], where_parts.outputs(), **private
    )
    flavors = page.pick("flavor", "jobs_note")
    flavor_refresh.click(
        wired(access.OPERATE, flavors, train_form.refresh_flavors), flavor, flavors.outputs(), **private
    )
    # No Gradio validator on Check or Start: the handlers run with any values and list every field problem in the
    # preflight panel, where it stays. A validator's message under a field vanished after about 2 s in this page
    # and left the panel saying nothing (found in a browser walk with max steps -5).
    check_button.click(
        wired(access.LOOK, checked, train_form.check_where),
        form + [hidden] + where_inputs,
        checked.outputs(),
        **private,
    )
    redraw = wired(access.LOOK, live, train_live.render_forced)
    # The viewed run in the page's address (?run=ID): a reload or a shared link opens it again.
    run_param, viewed_run = gr.Textbox("run", visible=False), gr.Textbox(visible=False)

    def address_follows(event):
        return event.then(g(access.LOOK, train_live.run_of_view), view, viewed_run, **private).then(
            None, [run_param, viewed_run], None, js=URL_PARAM_JS, **private
        )

    started = start_button.click(
        wired(access.TRAIN, started_parts, train_form.start_where),
        form + [hidden] + where_inputs + [browser_id],
        started_parts.outputs(),
        **private,
    ).then(redraw, [view, browser_id], live.outputs(), **private)
    address_follows(started)

    timer = gr.Timer(train_live.POLL_SECONDS)
    timer.tick(
        wired(access.LOOK, live, train_live.poll),
        [view, browser_id],
        live.outputs(),
        show_progress="hidden",
        concurrency_limit=None,
        trigger_mode="once",
        **private,
    )

    acting = [view, browser_id, admin_password]
    stop_button.click(g(access.CONTROL, train_actions.stop_run), acting, action_message, **private)
    force_button.click(g(access.CONTROL, train_actions.force_stop_run), acting, action_message, **private).then(
        redraw, [view, browser_id], live.outputs(), **private
    )
    resumed = page.pick("action_message", "view")
    resume_button.click(
        wired(access.CONTROL, resumed, train_actions.resume_run), acting, resumed.outputs(), **private
    ).then(redraw, [view, browser_id], live.outputs(), **private)
    confirming = page.pick("action_message", "confirm_row")
    delete_button.click(wired(access.LOOK, confirming, train_actions.ask_delete), view, confirming.outputs(), **private)
    cancel_button.click(
        wired(access.LOOK, confirming, train_actions.cancel_delete), None, confirming.outputs(), **private
    )
    deleted = page.pick("action_message", "confirm_row", "view")
    confirm_button.click(
        wired(access.CONTROL, deleted, train_actions.delete_run), acting, deleted.outputs(), **private
    ).then(redraw, [view, browser_id], live.outputs(), **private)

    picked_row = live.plus(run_config=run_config_code)
    address_follows(
        history.select(
            wired(access.LOOK, picked_row, train_live.pick_history_row),
            [run_ids, browser_id],
            picked_row.outputs(),
            **private,
        )
    )
    again_button.click(wired(access.LOOK, form_fill, train_form.train_again), view, form_fill.outputs(), **private)
    to_compare = page.pick("compare_run", "tabs", "action_message")
    compare_button.click(
        wired(access.LOOK, to_compare, train_actions.open_in_compare), view, to_compare.outputs(), **private
    )

    zipped = page.pick("zip_file", "export_message")
    zip_button.click(wired(access.EXPORT, zipped, train_actions.export_zip), view, zipped.outputs(), **private)
    merging = page.pick("export_message", "merge_confirm")
    merge_button.click(wired(access.EXPORT, merging, train_actions.ask_merge), view, merging.outputs(), **private)
    merge_confirm.click(wired(access.EXPORT, merging, train_actions.merge_run), view, merging.outputs(), **private)
    pushed = page.pick("push_message", "token")
    push_button.click(
        wired(access.EXPORT, pushed, train_actions.push_run),
        [view, repo_id, token, what, private_repo],
        pushed.outputs(),
        **private,
    )

    share_button.click(g(access.OPERATE, train_actions.share_run), view, operator_message, **private)
    unshare_button.click(g(access.OPERATE, train_actions.unshare_run), view, operator_message, **private)
    front_button.click(g(access.OPERATE, train_actions.move_to_front), view, operator_message, **private)
    queue_button.click(g(access.OPERATE, train_actions.queue_overview), None, operator_message, **private)

    # The identity comes first: the other load work (here and in Compare) follows it, so it lists this
    # visitor's runs, not those of a fresh page session.
    root = gr.context.Context.root_block
    asked_run = gr.Textbox(visible=False)  # the run in the page's address, filled by BROWSER_ID_JS
    ready = root.load(
        g(access.LOOK, train_live.on_load),
        [browser_id_carrier, view, asked_run],
        [browser_id, view],
        js=train_live.BROWSER_ID_JS,
        **private,
    )
    ready.then(g(access.LOOK, train_live.hand_back_token), browser_id, browser_id_carrier, **private).then(
        None, browser_id_carrier, None, js=train_live.STORE_ID_JS, **private
    )
    address_follows(ready)
    ready.then(
        wired(access.LOOK, form_fill, train_form.form_after_reload), [view, browser_id], form_fill.outputs(), **private
    )
    ready.then(redraw, [view, browser_id], live.outputs(), **private).then(
        g(access.LOOK, train_form.refresh_datasets), dataset, dataset, **private
    ).then(wired(access.LOOK, describe, train_form.describe_dataset), dataset, describe.outputs(), **private).then(
        g(access.LOOK, lambda v, b: train_live.run_config_json((v or {}).get("run_id"), b)),
        [view, browser_id],
        run_config_code,
        **private,
    )
    shared.ready = ready
