"""The checks live in the handlers, not in the UI: each handler called directly (as Gradio would, or as a
crafted request could make it) as another visitor in public mode, on a victim's run and dataset.

Fast, in-process companions of the HTTP attack suite; also the token rules of downloads and workers.
"""

from __future__ import annotations

import json

import pytest

from studio import access, paths
from studio.errors import StudioError
from studio.train import store, supervisor
from studio.train.config import RunConfig


@pytest.fixture
def public(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "attack-suite/studio")
    monkeypatch.delenv("STUDIO_ADMIN_PASSWORD", raising=False)


@pytest.fixture
def victim_world(tmp_path):
    victim = access.Identity(access.new_browser_id(), access.ANONYMOUS)
    dataset = paths.datasets_dir() / f"victim-{victim.user_id}"
    dataset.mkdir()
    (dataset / "train.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "CANARY"}]}) + "\n")
    (dataset / "manifest.json").write_text(
        json.dumps({"id": dataset.name, "name": "victim data", "owner": victim.user_id, "counts": {"train": 1}})
    )
    record = store.create_run(
        RunConfig(dataset=str(dataset), name="victim run"), victim.user_id, owner_role=access.ANONYMOUS
    )
    store.update_status(record.dir, status="completed")
    adapter = record.dir / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    return victim, dataset, store.get_run(record.run_id)


def _attacker():
    return access.Identity(access.new_browser_id(), access.ANONYMOUS)


def test_train_tab_handlers_refuse_another_visitors_run(public, victim_world):
    from studio.ui import train_actions, train_form, train_live

    victim, dataset, record = victim_world
    view = train_live.open_view(record.run_id)
    with access.acting(_attacker()):
        refusals = [
            train_actions.stop_run(view, None, None),
            train_actions.force_stop_run(view, None, None),
            train_actions.resume_run(view, None, None)["action_message"],
            train_actions.delete_run(view, None, None)["action_message"],
            train_actions.ask_delete(view)["action_message"],
            train_actions.export_zip(view)["export_message"],
            train_actions.ask_merge(view)["export_message"],
            train_actions.merge_run(view, progress=lambda *a, **k: None)["export_message"],
            train_actions.push_run(view, "me/x", "hf_x", "Adapter", True)["push_message"],
            train_form.train_again(view)["prefill_note"],
            train_actions.open_in_compare(view)["action_message"],
            train_live.render(view, None)["header"],
            train_form.describe_dataset(str(dataset))["dataset_info"],
            train_form.describe_dataset(dataset.name)["dataset_info"],
            train_actions.share_run(view),
        ]
        assert train_live.run_config_json(record.run_id) == ""
        assert record.run_id not in train_live.history_table()[1]
    for message in refusals:
        assert "Not allowed" in str(message), message
        assert "victim run" not in str(message) and "CANARY" not in str(message)
    assert record.dir.is_dir() and store.get_run(record.run_id).state == "completed"
    with access.acting(victim):  # positive control: the owner may
        assert "Zipped" in train_actions.export_zip(view)["export_message"]
        assert record.run_id in train_live.history_table()[1]


def test_export_logic_checks_the_caller_on_every_path(public, victim_world, capsys, tmp_path):
    """zip, merge and push refuse another visitor's run (and a caller with no identity) even when called past the
    Train tab; the owner may, and so may the command line, which acts as the operator."""
    from studio import cli
    from studio.train import export

    victim, _dataset, record = victim_world
    attempts = {
        "zip": lambda: export.zip_adapter(record.dir),
        "merge": lambda: export.merge(record.dir),
        "push": lambda: export.push_to_hub(record.dir, "me/stolen", "hf_attackerToken0123456789"),
    }
    for who in (_attacker(), access.Identity(None, access.ANONYMOUS)):
        with access.acting(who):
            for attempt in attempts.values():
                with pytest.raises(access.AccessDenied):
                    attempt()
    assert not (record.dir / "exports").exists() and not (record.dir / "merged").exists()
    with access.acting(victim):
        assert export.zip_adapter(record.dir).is_file()
    target = tmp_path / "operator.zip"
    assert cli.main(["export", record.run_id, "--zip", str(target)]) == 0, capsys.readouterr().err
    assert target.is_file()


def test_merging_a_remote_code_run_is_refused_on_every_path(public, victim_world, capsys, monkeypatch):
    """trust_remote_code runs the model author's Python: a merge is refused to its owner and to the command line
    until the operator sets STUDIO_ALLOW_REMOTE_CODE=1 (and then to the visitor still)."""
    from studio import cli
    from studio.train import export

    victim, dataset, _record = victim_world
    record = store.create_run(
        RunConfig(dataset=str(dataset), name="remote code run", trust_remote_code=True),
        victim.user_id,
        owner_role=access.ANONYMOUS,
    )
    store.update_status(record.dir, status="completed")
    (record.dir / "adapter").mkdir()
    (record.dir / "adapter" / "adapter_config.json").write_text("{}")
    with access.acting(victim), pytest.raises(access.AccessDenied, match="trust_remote_code"):
        export.merge(record.dir)
    assert cli.main(["export", record.run_id, "--merge", str(record.dir / "cli-merged")]) == 1
    assert "trust_remote_code" in capsys.readouterr().err
    monkeypatch.setenv("STUDIO_ALLOW_REMOTE_CODE", "1")
    with access.acting(victim), pytest.raises(access.AccessDenied, match="trust_remote_code"):
        export.merge(record.dir)
    assert not (record.dir / "merged").exists() and not (record.dir / "cli-merged").exists()


def test_compare_handlers_refuse_another_visitors_run(public, victim_world):
    from studio.ui import compare_tab

    victim, _dataset, record = victim_world
    with access.acting(_attacker()):
        voter = "voter-attacker"  # the blind view's outputs: (voter, who, prompt or message, ...)
        outputs = [
            compare_tab.open_run(record.run_id, "")["status"],
            compare_tab.ab_start(record.run_id, "")["prompt"],
            compare_tab.ab_new_voter(record.run_id)["prompt"],
            compare_tab.ab_vote(record.run_id, voter, 0, "A")["prompt"],
            compare_tab.vote_button("B")(record.run_id, voter, 0)["prompt"],
            compare_tab.ab_reveal(record.run_id, voter)["prompt"],
            compare_tab.build_report(record.run_id)["report_status"],
            compare_tab.run_evaluation(record.run_id, 2, None, "", 16, progress=lambda *a, **k: None)["eval_verdict"],
            compare_tab.open_run(str(record.dir), "")["status"],
            compare_tab.open_run("/etc", "")["status"],
        ]
        chat = list(compare_tab.chat("hi", [], [], [], record.run_id, "", "", 0, 1, 8, 0))[-1]
        assert record.run_id not in json.dumps(compare_tab.run_choices())
        assert compare_tab.refresh_verdict(record.run_id) == compare_tab.gr.update()  # no verdict of another's run
    for message in outputs + [chat["chat_error"]]:
        assert "Not allowed" in str(message), message
    assert not (record.dir / "compare").exists()  # nothing written into the victim's run


def test_decide_reads_no_other_visitors_dataset(public, victim_world):
    """The Decide handlers take the dataset folder from the request: another visitor's is not read (name, counts)."""
    from studio.ui import decide_tab

    victim, dataset, _record = victim_world
    with access.acting(_attacker()):
        assert decide_tab._manifest(str(dataset)) == {} and decide_tab._dataset_name(str(dataset)) == dataset.name
    with access.acting(victim):  # positive control: the owner's own dataset is read
        assert decide_tab._manifest(str(dataset))["counts"] == {"train": 1}
        assert decide_tab._dataset_name(str(dataset)) == "victim data"


def test_the_worker_gets_the_token_only_for_an_operators_hub_run(public, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secretForWorkerEnvTest")
    config = RunConfig(dataset="/x", model="Qwen/Qwen2.5-0.5B-Instruct")
    stripped = supervisor.worker_env(config, hub_token=False)
    assert "HF_TOKEN" not in stripped and stripped["HF_HUB_DISABLE_IMPLICIT_TOKEN"] == "1"
    assert supervisor.worker_env(config, hub_token=True)["HF_TOKEN"] == "hf_secretForWorkerEnvTest"
    visitor_run = store.create_run(config, "browser-v0000000000000", owner_role=access.ANONYMOUS)
    operator_run = store.create_run(config, "hf-alice", owner_role=access.OPERATOR)
    bundled_run = store.create_run(RunConfig(dataset="/x"), "hf-alice", owner_role=access.OPERATOR)
    assert not supervisor.needs_hub_token(visitor_run)
    assert supervisor.needs_hub_token(operator_run)
    assert not supervisor.needs_hub_token(bundled_run)
    remote = store.create_run(RunConfig(dataset="/x", trust_remote_code=True), "hf-alice", owner_role=access.OPERATOR)
    assert not supervisor.remote_code_allowed(remote)  # public mode, not allowed by the operator
    monkeypatch.setenv("STUDIO_ALLOW_REMOTE_CODE", "1")
    assert supervisor.remote_code_allowed(remote)
    assert (
        supervisor.worker_env(RunConfig(dataset="/x", trust_remote_code=True), remote_code=False)[
            supervisor.REMOTE_CODE_FLAG
        ]
        == "0"
    )


def test_downloads_for_a_visitors_ids_use_no_token(public, monkeypatch):
    """/lint_hub and the tokenizer of a typed model id: token=False for a visitor, the server's for an operator."""
    import transformers

    from studio.data import load
    from studio.models import catalog, loading
    from studio.ui import data_tab

    seen = []

    def fake_listing(dataset_id, revision, token):  # the first Hub call: list the split's files and sizes
        seen.append(("dataset", token))
        raise RuntimeError("stop here")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(load, "_offline", lambda: False)
    monkeypatch.setattr(load, "_hub_listing", fake_listing)
    with access.acting(_attacker()):
        data_tab.lint_hub("someone/private-set", "train", "", 0, 8)
    with access.acting(access.Identity("o", access.OPERATOR)):
        data_tab.lint_hub("someone/private-set", "train", "", 0, 8)
    assert seen == [("dataset", False), ("dataset", None)]

    def fake_tokenizer(source, token=None, **kwargs):
        seen.append(("tokenizer", token))
        raise RuntimeError("stop here")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake_tokenizer)
    monkeypatch.setattr(catalog, "local_files_only", lambda ref: False)
    with access.acting(_attacker()):
        with pytest.raises(StudioError):
            loading.load_tokenizer("someone/gated-model")
    assert seen[-1] == ("tokenizer", False)


def test_a_visitors_dataset_path_outside_the_datasets_folder_is_refused(public, tmp_path):
    from studio.data import store as data_store

    (tmp_path / "train.jsonl").write_text("{}\n")
    (tmp_path / "manifest.json").write_text(json.dumps({"id": "x", "owner": "whoever"}))
    with access.acting(_attacker()):
        for value in (str(tmp_path), "/etc", "../../etc", str(paths.datasets_dir() / ".." / "runs")):
            with pytest.raises(access.AccessDenied):
                data_store.find(value)


def test_a_start_without_an_identity_is_refused_and_no_run_is_ever_ownerless(public, victim_world):
    from studio.ui import train_form

    _victim, dataset, _record = victim_world
    values = train_form.form_values({"dataset": str(dataset)})
    before = {record.run_id for record in store.list_runs()}
    with access.acting(access.Identity("", access.ANONYMOUS)):
        message = train_form.start_run(*values, {}, None)["preflight"]
    assert "Not allowed" in message and {record.run_id for record in store.list_runs()} == before
    assert store.create_run(RunConfig(dataset=str(dataset)), "").owner == access.LOCAL_OWNER


def test_no_server_path_on_a_public_page(public):
    from studio.errors import StudioError
    from studio.ui import shell
    from studio.ui.shared import message_markdown

    assert str(paths.home()) not in shell.footer_text()
    assert "Data folder" in shell.footer_text()
    shown = message_markdown(StudioError(f"Could not write {paths.home()}/runs/x", f"Check {paths.home()}"))
    assert str(paths.home()) not in shown and "$STUDIO_HOME/runs/x" in shown
