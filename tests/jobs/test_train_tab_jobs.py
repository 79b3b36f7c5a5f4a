"""The Train tab's Hugging Face Jobs controls, called directly: flavours, the remote preflight, who may send.

Who may send: a job is paid with the server's HF_TOKEN, so only an operator (studio.access). On a public
studio visitors — anonymous, or signed in with Hugging Face but not an owner — are refused by the logic
itself (whichever handler or direct call asks) before the Hub is contacted at all.
"""

from __future__ import annotations

import pytest

from studio import access
from studio.train import store
from studio.ui import train_actions, train_form, train_live

OWNER = "browser-jobs-owner-1234"


def form(config) -> list:
    return train_form.form_values(config.to_dict())


def test_choosing_jobs_shows_the_flavours_with_prices(remote_env):
    where = train_form.choose_where("hf-jobs", None)
    flavor, note = where["flavor"], where["jobs_note"]
    assert where["jobs_box"]["visible"] is True and where["start_button"]["interactive"] is True
    names = [name for _, name in flavor["choices"]]
    assert names[0] == "t4-small" and "cpu-basic" in names and flavor["value"] == "t4-small"
    assert any("$0.40/h" in label for label, _ in flavor["choices"])
    assert "operators" in note
    assert train_form.choose_where("local", "t4-small")["jobs_box"]["visible"] is False


def test_check_shows_time_cost_cap_and_the_equivalent_command(remote_env, tiny_remote_config):
    checked = train_form.check_where(*form(tiny_remote_config()), {}, "hf-jobs", "cpu-basic", 2.0)
    markdown, command = checked["preflight"], checked["cli"]
    assert "Runs on Hugging Face Jobs" in markdown and "Cost: about" in markdown and "Cap: **$2.00**" in markdown
    assert command.endswith("--executor hf-jobs --flavor cpu-basic --max-cost 2")
    markdown = train_form.check_where(*form(tiny_remote_config()), {}, "hf-jobs", "cpu-basic", 0.0005)["preflight"]
    assert "above the cap" in markdown


VISITORS = {
    "public, anonymous visitor": (
        {"STUDIO_MODE": "public"},
        access.Identity("browser-visitor0123456789ab", access.ANONYMOUS),
    ),
    "oauth, signed-in visitor": (
        {"STUDIO_AUTH": "oauth", "STUDIO_OWNERS": "the-operator"},
        access.Identity("hf-a-visitor", access.SIGNED_IN, "a-visitor"),
    ),
    "oauth, not signed in": (
        {"STUDIO_AUTH": "oauth", "STUDIO_OWNERS": "the-operator"},
        access.Identity("browser-visitor0123456789ab", access.ANONYMOUS),
    ),
}


@pytest.mark.parametrize("who", list(VISITORS))
def test_a_visitor_never_sends_or_resumes_a_run_nor_uses_the_token(who, remote_env, tiny_remote_config, monkeypatch):
    from studio.jobs import executor
    from studio.train import executors, supervisor

    env, visitor = VISITORS[who]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runs_before = {record.run_id for record in store.list_runs()}
    requests_before = len(remote_env.requests)
    with access.acting(visitor):
        refusals = [
            train_form.start_where(*form(tiny_remote_config()), {}, "hf-jobs", "cpu-basic", 1.0, OWNER)["preflight"],
            train_form.check_where(*form(tiny_remote_config()), {}, "hf-jobs", "cpu-basic", 1.0)["preflight"],
            train_form.choose_where("hf-jobs", None)["jobs_note"],
            train_form.refresh_flavors(None)["jobs_note"],
        ]
        with pytest.raises(access.AccessDenied):  # the logic refuses a direct call too, not only the tab
            supervisor.launch_with(
                tiny_remote_config(),
                owner=visitor.user_id,
                choice=executors.Choice(executors.HF_JOBS, "cpu-basic", 1.0),
            )
    for message in refusals:
        assert "Not allowed" in message and "operator" in message, message
    assert {record.run_id for record in store.list_runs()} == runs_before  # nothing created
    assert len(remote_env.requests) == requests_before  # the Hub was never asked: no token was used for them

    # A remote run this visitor owns (sent while they had operator rights) may be stopped or deleted by them —
    # that ends spending — but resuming it would start a new paid job: refused, still without a Hub request.
    record = store.create_run(
        tiny_remote_config(name="owned remote run"), owner=visitor.user_id, owner_role=access.OPERATOR
    )
    (record.dir / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    (record.dir / "checkpoints" / "checkpoint-5" / "trainer_state.json").write_text("{}")
    store.update_status(
        record.dir,
        status="stopped",
        executor="hf-jobs",
        job={"id": "old-job", "namespace": "someone", "flavor": "cpu-basic"},
        job_stage="COMPLETED",
    )
    try:
        with access.acting(visitor), pytest.raises(access.AccessDenied, match="operator"):
            supervisor.resume(record.run_id, requester=visitor)
        with access.acting(visitor):
            assert (
                "operator"
                in train_actions.resume_run(train_live.open_view(record.run_id), None, None)["action_message"]
            )
        assert store.get_run(record.run_id).state == "stopped"
        assert len(remote_env.requests) == requests_before
        with pytest.raises(access.AccessDenied):
            executor.require_operator(visitor)
    finally:
        store.delete_run(record.run_id)


def test_an_operator_of_a_public_studio_may_send(remote_env, tiny_remote_config, monkeypatch):
    """Positive control: the owner signed in with Hugging Face (or the admin password) is the operator."""
    from studio.jobs import executor

    monkeypatch.setenv("STUDIO_AUTH", "oauth")
    monkeypatch.setenv("STUDIO_OWNERS", "the-operator")
    operator = access.identify(None, "the-operator")
    assert operator.operator
    with access.acting(operator):
        assert executor.require_operator() == operator
        where = train_form.choose_where("hf-jobs", None)
        flavor, note = where["flavor"], where["jobs_note"]
    assert "cpu-basic" in [name for _, name in flavor["choices"]] and "Not allowed" not in note
    # Handed in explicitly (no request around it), the operator gets past every check to the cost cap.
    from studio.errors import StudioError
    from studio.train import executors, supervisor

    runs_before = {record.run_id for record in store.list_runs()}
    with pytest.raises(StudioError, match="Not sent to Hugging Face Jobs") as refused:
        supervisor.launch_with(
            tiny_remote_config(),
            owner=operator.user_id,
            identity=operator,
            choice=executors.Choice(executors.HF_JOBS, "cpu-basic", 0.00001),
        )
    assert not isinstance(refused.value, access.AccessDenied)
    assert {record.run_id for record in store.list_runs()} == runs_before


def test_a_run_above_the_cap_is_not_sent(remote_env, tiny_remote_config):
    runs_before = {record.run_id for record in store.list_runs()}
    outputs = train_form.start_where(*form(tiny_remote_config()), {}, "hf-jobs", "cpu-basic", 0.0005, OWNER)
    assert "Not sent" in outputs["start_message"]
    assert {record.run_id for record in store.list_runs()} == runs_before


def test_a_remote_run_shows_its_job_cost_and_repo(remote_env, tiny_remote_config):
    record = store.create_run(tiny_remote_config(name="shown remotely"), owner=OWNER)
    job = {
        "id": "abc123",
        "url": "https://huggingface.co/jobs/someone/abc123",
        "flavor": "t4-small",
        "flavor_label": "Nvidia T4 - small (t4-small)",
        "price_per_hour": 0.4,
        "max_cost_usd": 3.0,
        "outputs_repo": "someone/fine-tune-studio-x",
        "namespace": "someone",
    }
    store.update_status(
        record.dir,
        status="running",
        executor="hf-jobs",
        job=job,
        job_stage="RUNNING",
        job_cost_usd=0.12,
        job_running_seconds=1080,
        started_at=store.now_iso(),
        job_metrics={"gpu_percent": 91, "gpu_used_gb": 9.5, "gpu_total_gb": 16},
    )
    # A live follower is not needed to show it: reconcile would start one, so look at the text directly.
    text = train_live._status_markdown(store.get_run(record.run_id), [], OWNER)
    assert "[abc123](https://huggingface.co/jobs/someone/abc123)" in text
    assert "≈ $0.12" in text and "$3.00 cap" in text and "GPU 91 %" in text and "someone/fine-tune-studio-x" in text
    rows, ids = train_live.history_table()
    assert rows[ids.index(record.run_id)][3] == "running · Jobs t4-small"
    store.update_status(record.dir, status="failed", job_stage="ERROR")
    store.delete_run(record.run_id)


def test_training_a_jobs_run_again_keeps_its_flavour_and_cap(remote_env, tiny_remote_config):
    """Found in a walk: 'Train again' on a Jobs run switched the form to this machine, losing flavour and cap."""
    remote = store.create_run(tiny_remote_config(name="sent before"), owner=OWNER)
    store.update_status(
        remote.dir, status="completed", executor="hf-jobs", job={"id": "j1", "flavor": "cpu-basic", "max_cost_usd": 2.5}
    )
    local = store.create_run(tiny_remote_config(name="here before"), owner=OWNER)
    store.update_status(local.dir, status="completed")
    try:
        again = train_form.train_again(train_live.open_view(remote.run_id))
        assert again["where"] == "hf-jobs" and again["jobs_box"]["visible"] is True
        assert again["flavor"]["value"] == "cpu-basic" and again["max_cost"] == 2.5
        again = train_form.train_again(train_live.open_view(local.run_id))
        assert again["where"] == "local" and again["jobs_box"]["visible"] is False
    finally:
        store.delete_run(remote.run_id)
        store.delete_run(local.run_id)


def test_force_stopping_a_job_promises_resume_from_the_checkpoint_it_pushed(
    remote_env, tiny_remote_config, monkeypatch
):
    """Found in a walk: a Jobs run's checkpoints reach the run folder only after the job ends, so the force-stop
    message said 'cannot resume' beside a status offering Resume from checkpoint-12."""
    from studio.train import executors

    record = store.create_run(tiny_remote_config(name="pushed"), owner=OWNER)
    store.update_status(
        record.dir, status="running", executor="hf-jobs", job={"id": "j2", "flavor": "cpu-basic"}, job_stage="RUNNING"
    )

    from studio.jobs import executor

    class Remote:  # the job itself is not what this checks: only the message beside it
        last_checkpoint = staticmethod(executor.last_checkpoint)

        def stop(self, run, force=False, timeout=None):
            return store.get_run(run.run_id)

    original = executors.remote_for
    monkeypatch.setattr(executors, "remote_for", lambda run: Remote() if run.run_id == record.run_id else original(run))
    try:
        view = train_live.open_view(record.run_id)
        assert store.resume_sentence(None) in train_actions.force_stop_run(view, OWNER, None)
        store.update_status(record.dir, job_last_upload="checkpoints/checkpoint-12")
        message = train_actions.force_stop_run(view, OWNER, None)
        assert "Cancelling the job" in message and "Resume continues from checkpoint-12." in message
    finally:
        store.update_status(record.dir, status="stopped")
        store.delete_run(record.run_id)
