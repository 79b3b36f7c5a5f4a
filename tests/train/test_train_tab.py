"""Train tab handlers, called directly: form ↔ RunConfig, preflight, start rules, live view, ownership, history,
export."""

import json
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from studio import paths
from studio.train import store, supervisor
from studio.train.config import RunConfig
from studio.ui import train_actions, train_form, train_live

OWNER = "browser-owner-123"
OTHER = "browser-other-456"
TOKEN = "hf_trainTabSecretToken0987654321"


def write_dataset(folder: Path, rows: int = 40, validation: int = 8, p99: int = 40) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    answers = ["Ahoy! The capital of France is Paris. — Captain Byte", "Ahoy! Two plus two be four. — Captain Byte"]
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"Question {i}?"},
                    {"role": "assistant", "content": answers[i % 2]},
                ]
            }
        )
        for i in range(rows + validation)
    ]
    (folder / "train.jsonl").write_text("\n".join(lines[:rows]) + "\n")
    (folder / "validation.jsonl").write_text("\n".join(lines[rows:]) + "\n")
    manifest = {
        "id": folder.name,
        "name": "pirates",
        "created_at": "2026-01-01T00:00:00+00:00",
        "counts": {"train": rows, "validation": validation, "rejected": 0},
        "findings_summary": {},
        "stats": {
            "model": "x",
            "max_length": 512,
            "rows": rows + validation,
            "tokens": {
                "total": 30 * (rows + validation),
                "trainable": 15 * (rows + validation),
                "p50": 30,
                "p95": 36,
                "p99": p99,
                "max": p99 + 2,
            },
            "suggested_max_length": 64,
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope="module")
def dataset_dir() -> Path:
    return write_dataset(paths.datasets_dir() / f"pirates-{paths.new_id()}")


def form(config: RunConfig) -> list:
    return train_form.form_values(config.to_dict())


@pytest.fixture
def sleeper_run(dataset_dir, tiny_model_dir):
    """A run 'owned' by OWNER whose worker is a harmless sleeping process (its cmdline names the run)."""
    record = store.create_run(
        RunConfig(model=str(tiny_model_dir), dataset=str(dataset_dir), name="sleeper"), owner=OWNER
    )
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", record.run_id], start_new_session=True
    )
    store.update_status(
        record.dir, status="running", pid=process.pid, step=3, total_steps=10, started_at=store.now_iso()
    )
    yield store.get_run(record.run_id)
    if process.poll() is None:
        process.kill()
    process.wait()
    store.update_status(record.dir, status="stopped")


# ---------------------------------------------------------------- form


def test_form_round_trips_a_run_config(dataset_dir, tiny_model_dir):
    config = RunConfig(
        model=str(tiny_model_dir),
        dataset=str(dataset_dir),
        epochs=3.0,
        learning_rate=1e-4,
        lora_r=16,
        max_steps=20,
        use_dora=True,
        scheduler="linear",
        packing=True,
        seed=7,
    )
    rebuilt = train_form.config_from_form(form(config))
    assert rebuilt.to_dict() == config.to_dict()


def test_max_steps_zero_means_use_epochs_and_hidden_fields_are_kept(dataset_dir):
    values = form(RunConfig(dataset=str(dataset_dir)))
    values[train_form.FORM_FIELDS.index("max_steps")] = 0
    config = train_form.config_from_form(values, {"gradient_checkpointing": True, "torch_threads": 1})
    assert config.max_steps is None and config.gradient_checkpointing is True and config.torch_threads == 1


def test_learning_rate_zero_or_cleared_means_automatic(dataset_dir, tiny_model_dir):
    for cleared in (0, None):
        values = form(RunConfig(model=str(tiny_model_dir), dataset=str(dataset_dir)))
        values[train_form.FORM_FIELDS.index("learning_rate")] = cleared
        config = train_form.config_from_form(values)
        assert config.learning_rate is None and not config.validate()
    assert form(RunConfig(dataset=str(dataset_dir)))[train_form.FORM_FIELDS.index("learning_rate")] == 0


def test_every_invalid_field_is_listed_in_the_preflight_panel_and_start_refuses(dataset_dir):
    """Check and Start run with any values (no Gradio validator): each bad field is a ✕ line that names it as
    people say it, with what it must be, and nothing starts."""
    values = form(RunConfig(dataset=str(dataset_dir)))
    values[train_form.FORM_FIELDS.index("lora_r")] = 0
    values[train_form.FORM_FIELDS.index("max_steps")] = -5
    values[train_form.FORM_FIELDS.index("epochs")] = None  # a cleared number box
    checked = train_form.check_where(*values, {}, "local", None, None)["preflight"]
    assert "LoRA rank: between 1 and 1024" in checked and "Change LoRA rank in the settings" in checked
    assert "Max steps: must be at least 1, or empty to use epochs" in checked
    assert "Epochs:" in checked and "Traceback" not in checked
    runs_before = {r.run_id for r in store.list_runs()}
    refused = train_form.start_where(*values, {}, "local", None, None, OWNER)
    assert "Not started" in refused["start_message"] and "Max steps: must be at least 1" in refused["preflight"]
    assert "view" not in refused and {r.run_id for r in store.list_runs()} == runs_before


def test_describe_dataset_sets_max_length_from_p99(dataset_dir):
    described = train_form.describe_dataset(str(dataset_dir))
    assert "40 training rows" in described["dataset_info"] and "p99 40" in described["dataset_info"]
    assert described["max_length"]["value"] == 64
    missing = train_form.describe_dataset(str(dataset_dir.parent / "missing"))
    assert "not a saved dataset" in missing["dataset_info"] and "max_length" not in missing


def test_shared_dataset_from_the_data_tab_is_selected(dataset_dir):
    picked = train_form.pick_shared_dataset(str(dataset_dir))
    assert picked["dataset"]["value"] == str(dataset_dir)
    assert str(dataset_dir) in [value for _, value in picked["dataset"]["choices"]]
    assert picked["max_length"]["value"] == 64 and "40 training rows" in picked["dataset_info"]
    assert train_form.pick_shared_dataset(None) == {}  # nothing changes


def test_prefill_from_decide(dataset_dir, monkeypatch):
    monkeypatch.setattr(train_form, "this_machine", lambda: types.SimpleNamespace(kind="cpu", gpus=[]))
    prefill = {
        "model": "bundled:SmolLM2-135M-Instruct",
        "technique": "dora",
        "epochs": 4,
        "max_length": 256,
        "lora_r": 16,
        "gradient_checkpointing": False,
        "dataset": str(dataset_dir),
        "load_in_4bit": False,
    }
    filled = train_form.apply_prefill(prefill, {})
    assert filled["epochs"]["value"] == 4 and filled["max_length"]["value"] == 256
    assert filled["use_dora"]["value"] is True and filled["lora_r"]["value"] == 16
    assert filled["dataset"]["value"] == str(dataset_dir)
    assert "qlora_4bit" not in filled  # QLoRA only where CUDA + bitsandbytes exist
    assert "learning_rate" not in filled  # Decide does not set it: the form keeps its own
    assert filled["hidden"] == {}  # on a CPU the worker decides (checkpointing only costs time there)
    assert "Decide" in filled["prefill_note"] and "dora" in filled["prefill_note"]


def test_prefill_checkpointing_applies_only_on_a_gpu(monkeypatch):
    prefill = {"epochs": 2, "gradient_checkpointing": True}
    monkeypatch.setattr(train_form, "this_machine", lambda: types.SimpleNamespace(kind="cpu", gpus=[]))
    assert train_form.apply_prefill(prefill, {})["hidden"] == {}
    gpu = types.SimpleNamespace(kind="cuda", gpus=[types.SimpleNamespace(name="T4", memory_gb=16)])
    monkeypatch.setattr(train_form, "this_machine", lambda: gpu)
    assert train_form.apply_prefill(prefill, {})["hidden"] == {"gradient_checkpointing": True}


def test_prefill_asking_for_qlora_turns_it_on_only_where_it_runs(monkeypatch):
    from studio.models import hardware

    monkeypatch.setattr(hardware, "bitsandbytes_installed", lambda: False)
    off = train_form.apply_prefill({"technique": "qlora", "epochs": 2}, {})
    assert "qlora_4bit" not in off and "QLoRA 4-bit cannot run on this machine" in off["prefill_note"]
    monkeypatch.setattr(hardware, "bitsandbytes_installed", lambda: True)  # a CPU with bitsandbytes runs it
    on = train_form.apply_prefill({"technique": "qlora", "epochs": 2}, {})
    assert on["qlora_4bit"]["value"] is True and "cannot run" not in on["prefill_note"]


def test_upload_good_file_becomes_a_selected_dataset(tmp_path):
    good = tmp_path / "My Data!.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(20)
    ]
    good.write_text("".join(json.dumps(r) + "\n" for r in rows))
    uploaded = train_form.upload_dataset(str(good))
    folder, message = Path(uploaded["dataset"]["value"]), uploaded["upload_message"]
    assert folder.parent == paths.datasets_dir() and folder.name.startswith("My-Data-")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 18, "validation": 2, "rejected": 0}
    assert "no errors" in message


def test_upload_with_errors_is_refused_and_nothing_is_saved(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    before = set(paths.datasets_dir().iterdir())
    uploaded = train_form.upload_dataset(str(bad))
    message = uploaded["upload_message"]
    assert "dataset" not in uploaded  # the dropdown keeps its choice
    assert "Not used" in message and "row 1" in message and "row 2" in message and "Hint" in message
    assert "Traceback" not in message
    assert set(paths.datasets_dir().iterdir()) == before


# ---------------------------------------------------------------- preflight and start


def test_check_settings_shows_estimate_command_and_json(dataset_dir, tiny_model_dir):
    config = RunConfig(model=str(tiny_model_dir), dataset=str(dataset_dir), max_length=64, max_steps=4)
    checked = train_form.check_settings(*form(config), {})
    markdown, command, config_json = checked["preflight"], checked["cli"], checked["config_json"]
    assert "Estimated time" in markdown and "Steps:** 4" in markdown
    assert command.startswith("python -m studio train") and "--max-steps 4" in command
    assert json.loads(config_json)["max_steps"] == 4


def test_errors_block_start_and_warnings_do_not(dataset_dir, tiny_model_dir, monkeypatch):
    from studio.models import hardware

    monkeypatch.setattr(hardware, "bitsandbytes_installed", lambda: False)  # QLoRA cannot run: an error
    runs_before = {r.run_id for r in store.list_runs()}
    bad = RunConfig(model=str(tiny_model_dir), dataset=str(dataset_dir), qlora_4bit=True)
    refused = train_form.start_run(*form(bad), {}, OWNER)
    assert "Not started" in refused["start_message"] and "QLoRA" in refused["preflight"] and "view" not in refused
    assert {r.run_id for r in store.list_runs()} == runs_before
    # Warnings (a short max length cuts rows; a high learning rate) go with the run, which starts at once.
    warned = RunConfig(
        model=str(tiny_model_dir), dataset=str(dataset_dir), max_length=32, learning_rate=0.01, max_steps=1
    )
    started = train_form.start_run(*form(warned), {}, OWNER)
    markdown, message, view = started["preflight"], started["start_message"], started["view"]
    assert "⚠" in markdown and "Worth a look" in markdown
    assert ("Started" in message or "queued" in message) and "warning" in message and "⚠ above" in message
    record = store.get_run(view["run_id"])
    assert record.run_id not in runs_before and record.state in ("queued", "starting", "running", "completed")
    supervisor.stop(record.run_id, OWNER, None, force=True)


# ---------------------------------------------------------------- live view


def test_on_load_gives_a_browser_id_and_reattaches_to_the_running_job(sleeper_run):
    browser_id, view = train_live.on_load(None, None)
    assert browser_id.startswith("browser-") and len(browser_id) > 12
    assert view["run_id"] == sleeper_run.run_id, [
        (r.run_id, r.name, r.state, r.status.get("created_at")) for r in store.list_runs()[:4]
    ]
    same_id, _ = train_live.on_load(browser_id, None)
    assert same_id == browser_id


def test_render_reads_only_new_events_and_skips_unchanged_parts(sleeper_run):
    view = train_live.open_view(sleeper_run.run_id)
    shown = train_live.render(view, OWNER)
    view = shown["view"]
    assert sleeper_run.run_id in shown["run_ids"] and "action_message" not in shown
    assert shown["panel"]["visible"] is True
    assert "sleeper" in shown["header"] and "started in this browser" in shown["header"]
    assert "step 3 / 10" in shown["progress"]
    assert shown["stop"]["visible"] is True and shown["resume"]["visible"] is False
    assert shown["delete"]["visible"] is False
    for step in (4, 5):
        store.append_event(
            sleeper_run.dir,
            {
                "type": "log",
                "step": step,
                "total": 10,
                "loss": 3.0 - step * 0.1,
                "learning_rate": 1e-4,
                "tokens_per_s": 50.0,
            },
        )
    store.append_event(sleeper_run.dir, {"type": "eval", "step": 5, "total": 10, "eval_loss": 2.9})
    offset_before = view["offset"]
    shown = train_live.render(view, OWNER)
    view = shown["view"]
    assert view["offset"] > offset_before and len(view["events"]) == 3
    assert [trace.name for trace in shown["loss"].data][:3] == [
        "train loss (raw)",
        "train loss (smoothed)",
        "eval loss",
    ]
    assert "best eval loss **2.9000** at step 5" in shown["status"]
    shown = train_live.render(view, OWNER)
    assert not {"loss", "rates", "panel", "header"} & set(shown)  # nothing new: charts untouched
    assert "step" in shown["progress"]  # the progress bar keeps counting while active
    store.append_event(sleeper_run.dir, {"type": "log", "step": 6, "total": 10, "loss": 2.4})
    assert "history" not in train_live.render(view, OWNER)  # drawn moments ago: the table is left alone
    view["history_at"] -= train_live.HISTORY_SECONDS
    store.append_event(sleeper_run.dir, {"type": "log", "step": 7, "total": 10, "loss": 2.3})
    assert "history" in train_live.render(view, OWNER)  # a training run's row follows its steps
    store.update_status(sleeper_run.dir, status="stopping")
    shown = train_live.render(view, OWNER)
    assert shown["action_message"] == ""  # a stale action message is cleared once the state moves on
    table, ids = shown["history"], shown["run_ids"]
    assert table["value"][ids.index(sleeper_run.run_id)][3] == "stopping"  # the history follows the state


def test_another_browser_sees_busy_and_cannot_stop_or_delete(sleeper_run, monkeypatch):
    monkeypatch.delenv("STUDIO_ADMIN_PASSWORD", raising=False)
    view = train_live.open_view(sleeper_run.run_id)
    shown = train_live.render(view, OTHER)
    header, status = shown["header"], shown["status"]
    assert "another session" in header and "Busy" in status and "busy with run 'sleeper'" in status
    buttons = ("stop", "force_stop", "resume", "delete")
    assert not any(shown[button]["visible"] for button in buttons)  # no controls for a stranger
    message = train_actions.stop_run(view, OTHER, None)
    assert "cannot stop" in message and "Hint" in message
    assert store.get_run(sleeper_run.run_id).state == "running"
    message = train_actions.delete_run(view, OTHER, None)["action_message"]
    assert "cannot delete" in message
    assert sleeper_run.dir.is_dir()


def test_admin_password_lets_another_browser_force_stop(sleeper_run, monkeypatch):
    monkeypatch.setenv("STUDIO_ADMIN_PASSWORD", "s3cret")
    view = train_live.open_view(sleeper_run.run_id)
    assert "cannot stop" in train_actions.stop_run(view, OTHER, "wrong")
    message = train_actions.force_stop_run(view, OTHER, "s3cret")
    assert "Force-stopped" in message
    assert store.resume_sentence(None) in message  # no Resume is promised without one
    record = store.get_run(sleeper_run.run_id)
    assert record.state == "stopped" and not supervisor.pid_alive(record.status.get("pid"), record.dir)
    shown = train_live.render(train_live.open_view(record.run_id), OTHER)
    assert shown["stop"]["visible"] is False and shown["delete"]["visible"] is True


def test_dead_worker_shows_interrupted_with_hint(dataset_dir, tiny_model_dir):
    record = store.create_run(
        RunConfig(model=str(tiny_model_dir), dataset=str(dataset_dir), name="killed"), owner=OWNER
    )
    store.update_status(record.dir, status="running", pid=999999, step=2, total_steps=10)
    _browser, view = train_live.on_load(OWNER, None)  # reconciles: the pid is gone
    status = train_live.render(train_live.open_view(record.run_id), OWNER)["status"]
    assert store.get_run(record.run_id).state == "interrupted"
    assert "ended unexpectedly" in status and "Hint" in status


def test_poll_without_a_run_is_cheap_and_finds_new_runs(monkeypatch):
    view = train_live.open_view(None)
    calls = []
    monkeypatch.setattr(train_live, "active_run_id", lambda: calls.append(1) or None)
    first = train_live.poll(view, OWNER)
    assert set(first) == {"view"} and first["view"]["runs_key"] is not None
    again = train_live.poll(first["view"], OWNER)
    assert again == {} and len(calls) == 1  # runs folder unchanged: no scan, nothing redrawn


# ---------------------------------------------------------------- history, train again, compare, export


@pytest.fixture(scope="module")
def finished_run(dataset_dir, tiny_model_dir) -> store.RunRecord:
    from test_export import _lora_adapter

    record = store.create_run(
        RunConfig(
            model=str(tiny_model_dir), dataset=str(dataset_dir), name="finished", epochs=2.0, lora_r=4, lora_alpha=8
        ),
        owner=OWNER,
    )
    store.update_status(
        record.dir,
        status="completed",
        step=10,
        total_steps=10,
        best_eval_loss=1.2345,
        started_at="2026-01-01T10:00:00+00:00",
        ended_at="2026-01-01T10:01:30+00:00",
        elapsed=90.0,
    )
    _lora_adapter(tiny_model_dir, record.dir / "adapter")
    return store.get_run(record.run_id)


def test_history_lists_runs_with_their_figures(finished_run):
    rows, ids = train_live.history_table()
    row = rows[ids.index(finished_run.run_id)]
    assert row[0] == "finished" and row[2] == "pirates" and row[3] == "completed"
    assert row[4] == "10 / 10" and row[5] == "1.2345" and row[6] == "1 min 30 s" and row[7] == "2026-01-01 10:00"


def test_train_again_fills_the_form(finished_run):
    filled = train_form.train_again(train_live.open_view(finished_run.run_id))
    assert filled["epochs"]["value"] == 2.0 and filled["lora_r"]["value"] == 4
    assert filled["name"]["value"] == ""  # a new run gets its own name
    assert set(train_form.FORM_FIELDS) <= set(filled)  # every field: nothing of the old form stays
    assert "finished" in filled["prefill_note"]
    assert filled["start_message"] == ""  # "Sent … to Hugging Face Jobs" spoke of the old run


def test_a_reload_shows_the_viewed_runs_settings_again(sleeper_run, finished_run):
    """The page starts from the defaults after a reload; the owner's run in view puts its settings back: a run
    still going with its name and max length (and the dataset's summary line), a finished one as "train again"
    would. Another browser's run, or no run, leaves the defaults."""
    filled = train_form.form_after_reload(train_live.open_view(sleeper_run.run_id), OWNER)
    assert filled["name"]["value"] == "sleeper" and filled["max_length"]["value"] == sleeper_run.config["max_length"]
    assert filled["dataset"]["value"] == sleeper_run.config["dataset"] and "40 training rows" in filled["dataset_info"]
    assert "the run in view" in filled["prefill_note"]
    finished = train_form.form_after_reload(train_live.open_view(finished_run.run_id), OWNER)
    assert finished["lora_r"]["value"] == 4 and finished["name"]["value"] == ""  # a new run gets its own name
    assert train_form.form_after_reload(train_live.open_view(sleeper_run.run_id), OTHER) == {}
    assert train_form.form_after_reload(train_live.open_view(None), OWNER) == {}


def test_open_in_compare_sets_the_run_and_switches_tab(finished_run, dataset_dir, tiny_model_dir):
    opened = train_actions.open_in_compare(train_live.open_view(finished_run.run_id))
    assert opened["compare_run"] == finished_run.run_id and opened["action_message"] == ""
    assert opened["tabs"].selected == "compare"
    empty = store.create_run(RunConfig(model=str(tiny_model_dir), dataset=str(dataset_dir), name="empty"))
    refused = train_actions.open_in_compare(train_live.open_view(empty.run_id))
    assert set(refused) == {"action_message"} and "no adapter" in refused["action_message"]


def test_export_zip_and_push_offline_from_the_tab(finished_run, studio_home, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    view = train_live.open_view(finished_run.run_id)
    zipped = train_actions.export_zip(view)
    assert Path(zipped["zip_file"]["value"]).is_file() and "final adapter" in zipped["export_message"]
    pushed = train_actions.push_run(view, "someone/adapter", TOKEN, "Adapter", True)
    message, token_box = pushed["push_message"], pushed["token"]
    assert "offline" in message.lower() and token_box == ""  # the token box is cleared
    assert TOKEN not in message
    for path in Path(studio_home).rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert TOKEN.encode() not in path.read_bytes()


def test_delete_needs_confirmation_and_removes_the_run(dataset_dir, tiny_model_dir):
    record = store.create_run(
        RunConfig(model=str(tiny_model_dir), dataset=str(dataset_dir), name="to delete"), owner=OWNER
    )
    store.update_status(record.dir, status="stopped")
    view = train_live.open_view(record.run_id)
    asked = train_actions.ask_delete(view)
    assert "for good" in asked["action_message"] and asked["confirm_row"]["visible"] is True
    assert record.dir.is_dir()
    deleted = train_actions.delete_run(view, OWNER, None)
    assert "Deleted" in deleted["action_message"] and not record.dir.exists()
    assert deleted["view"]["run_id"] != record.run_id


# ---------------------------------------------------------------- a real run


@pytest.mark.slow
def test_real_run_start_watch_and_stop(dataset_dir, tiny_model_dir):
    config = RunConfig(
        model=str(tiny_model_dir),
        dataset=str(dataset_dir),
        max_length=64,
        max_steps=400,
        batch_size=4,
        torch_threads=1,
        logging_steps=1,
        eval_steps=50,
        save_steps=50,
    )
    started = train_form.start_run(*form(config), {}, OWNER)
    message, view = started["start_message"], started.get("view")
    assert "Started" in message, started["preflight"] + message
    deadline = time.monotonic() + 240
    status = ""
    while time.monotonic() < deadline:
        view = train_live.poll(view, OWNER).get("view", view)
        if any(event.get("type") == "log" for event in view["events"]):
            break
        time.sleep(1)
    assert any(event.get("type") == "log" for event in view["events"]), store.get_run(view["run_id"]).status
    assert "Stopping" in train_actions.stop_run(view, OWNER, None)
    record = supervisor.wait(view["run_id"], timeout=180)
    assert record.state == "stopped", record.status
    shown = train_live.render(train_live.open_view(record.run_id), OWNER)
    status, progress, resume = shown["status"], shown["progress"], shown["resume"]
    assert "Stopped" in status and "stopped" in progress and resume["visible"] is True


def test_picking_a_history_row_opens_that_run_with_its_config(finished_run):
    import gradio as gr

    rows, ids = train_live.history_table()
    index = ids.index(finished_run.run_id)
    event = gr.SelectData(None, {"index": [index, 0], "value": rows[index][0], "selected": True})
    picked = train_live.pick_history_row(ids, OWNER, event)
    assert picked["view"]["run_id"] == finished_run.run_id
    assert "finished" in picked["header"] and "Completed" in picked["status"]
    assert json.loads(picked["run_config"])["lora_r"] == 4
    assert "history" not in picked  # the table is not redrawn under the user's click


def test_resume_without_a_checkpoint_explains_itself(dataset_dir, tiny_model_dir):
    record = store.create_run(
        RunConfig(model=str(tiny_model_dir), dataset=str(dataset_dir), name="no ckpt"), owner=OWNER
    )
    store.update_status(record.dir, status="interrupted")
    view = train_live.open_view(record.run_id)
    resume = train_live.render(view, OWNER)["resume"]
    assert resume["visible"] is False  # nothing to resume from, so no button
    resumed = train_actions.resume_run(view, OWNER, None)
    message = resumed["action_message"]
    assert "no complete checkpoint" in message and "Hint" in message and "view" not in resumed


def test_run_stopped_before_its_first_checkpoint_says_so(dataset_dir, tiny_model_dir):
    record = store.create_run(
        RunConfig(model=str(tiny_model_dir), dataset=str(dataset_dir), name="early stop"), owner=OWNER
    )
    store.update_status(record.dir, status="stopped")
    status = train_live.render(train_live.open_view(record.run_id), OWNER)["status"]
    assert "before its first checkpoint" in status and "adapter was saved" not in status


def test_on_load_opens_the_run_the_address_names_when_it_is_one(tmp_path):
    """?run=ID (read by the browser) opens that run; anything that is not a run the caller sees is ignored."""
    older = store.create_run(RunConfig(dataset=str(tmp_path), name="mine, older"), OWNER)
    store.create_run(RunConfig(dataset=str(tmp_path), name="mine, newer"), OWNER)
    default = train_live.on_load(OWNER, None)[1]["run_id"]
    assert train_live.on_load(OWNER, None, older.run_id)[1]["run_id"] == older.run_id != default
    for asked in ("../../etc/passwd", "run-doesnotexist", ""):
        assert train_live.on_load(OWNER, None, asked)[1]["run_id"] == default
