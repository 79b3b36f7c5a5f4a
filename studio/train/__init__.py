"""Training: RunConfig (config.py), the run store (store.py), the supervisor (supervisor.py) and the
worker subprocess (worker.py: `python -m studio.train.worker RUN_DIR`).

API for the Train tab and the CLI:
    config.RunConfig(...).validate() -> {field: message};  .check() raises StudioError;  .to_cli_command()
    supervisor.launch(config, owner) -> RunRecord      (validates, refuses while busy, starts the worker)
    supervisor.stop(run_id, requester, admin_password, force=False, timeout=None)
    supervisor.resume(run_id, requester, admin_password) / supervisor.delete(...)
    supervisor.busy() -> Busy | None (.message "busy until …");  supervisor.reconcile() on app start-up
    supervisor.is_authorized(record, requester, admin_password)
    store.list_runs() / store.get_run(run_id) -> RunRecord(.run_id .dir .config .status .state .adapter_dir)
    store.read_events(run_dir, since_offset) -> (events, next_offset)
    export.zip_adapter / merge / push_to_hub (the browser's and `python -m studio export`'s), with the model
    card from card.build_card; templates.choose_template (assistant-only loss per model family);
    archive.archive_run / restore_runs (finished runs in a mounted bucket, STUDIO_ARCHIVE_DIR)
Owner ids: use a stable per-browser id (e.g. a random id kept in gr.BrowserState) so ownership
survives page reloads; the CLI uses "cli".
"""
