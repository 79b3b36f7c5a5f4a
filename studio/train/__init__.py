"""Training: RunConfig (config.py), the run store (store.py), the supervisor (supervisor.py) and the
worker subprocess (worker.py: `python -m studio.train.worker RUN_DIR`).

API for the Train tab and the CLI:
    config.RunConfig(...).validate() -> {field: message};  .check() raises StudioError;  .to_cli_command()
    supervisor.launch(config, owner) -> RunRecord      (validates, refuses while busy, starts the worker: the CLI)
    supervisor.submit(config, owner, owner_role, estimated_seconds) -> RunRecord  (queues; the pages)
    supervisor.dispatch() / start_dispatcher()         (start the next queued run; queue.py keeps the order)
    supervisor.stop(run_id, requester, admin_password, force=False, timeout=None)
    supervisor.resume(run_id, requester, admin_password) / supervisor.delete(...)
    supervisor.busy() -> Busy | None (.message "busy until …");  supervisor.reconcile() on app start-up
    supervisor.is_authorized(record, requester, admin_password)
    store.list_runs() / store.get_run(run_id) -> RunRecord(.run_id .dir .config .status .state .adapter_dir)
    store.read_events(run_dir, since_offset) -> (events, next_offset)
Owner ids come from studio.access (a visitor's server-signed browser id, "hf-<user>" when signed in with
Hugging Face, "local" for the local user); the CLI uses "cli". A run's owner is never empty.
"""
