"""Remote runs on Hugging Face Jobs: the `hf-jobs` executor (see studio.train.executors for the choice).

    flavors.py   the Jobs hardware list (list_jobs_hardware), cached, with prices per hour
    estimate.py  preflight for a flavour: time, memory, cost against the operator's cap
    package.py   what the job takes (the studio's own code, pins, data, model) and the command that starts it
    executor.py  submit / stop / resume / reconcile / delete for a remote run; who may start one
    follow.py    `python -m studio.jobs.follow RUN_DIR`: a detached local process that follows the job's
                 logs and metrics into the run folder, and brings the adapter home at the end
    remote.py    runs INSIDE the job: starts the studio's worker, relays its files as log lines, pushes
                 checkpoints and the adapter to the run's private outputs repo, honours a stop request
    protocol.py  the log-line format between remote.py and follow.py
    hub.py       the Hub client (endpoint and token read at call time), plain-language Hub errors

A remote run's folder is an ordinary run folder (status.json, events.jsonl, log.txt, adapter/,
checkpoints/): status.json additionally holds "executor": "hf-jobs" and "job" (id, namespace, flavour,
repos, price, cap), and "pid" stays empty, so the local trainer is never "busy" because of a remote run.
"""
