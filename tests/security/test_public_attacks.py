"""Attacks on a public studio (SPACE_ID set: public mode by itself) by anonymous visitors, over HTTP.

Each attack goes through Gradio's raw /queue/join (any fn_index, any session_hash) unless it says otherwise,
must be refused with a clear message ("Not allowed …"), and must leave every byte of the other visitors'
data and of the operator's runs unchanged (World.checksum). All responses of a test are searched for the
other visitors' canaries and for the server's folders.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.security.client import Visitor
from tests.security.conftest import ADMIN_PASSWORD, FAKE_TOKEN

pytestmark = pytest.mark.slow


def _no_leaks(app, *visitors: Visitor, home_path_check: bool = True) -> None:
    text = "\n".join(visitor.all_text() for visitor in visitors)
    for canary in app.world.canaries:
        assert canary not in text, f"another visitor's data reached the attacker ({canary})"
    assert FAKE_TOKEN not in text
    if home_path_check:
        for form in {str(app.world.home), str(app.world.home.resolve())}:
            assert form not in text, "a server path reached the page"


@pytest.fixture
def attacker(public_app):
    visitor = Visitor(public_app.url)
    yield visitor
    visitor.close()


@pytest.fixture
def before(public_app):
    return public_app.world.checksum()


def test_public_mode_turns_on_by_itself_and_the_page_says_what_a_visitor_may_do(public_app, attacker):
    config = attacker.config()
    text = json.dumps(config)
    assert "Public studio" in text and "private to this browser" in text
    assert "Operator tools" in text  # the operator's tools are there, and refused to visitors (below)
    token = attacker.load_page()
    assert token.startswith("browser-") and "." in token
    banner = attacker.call_named("visitor_banner", [])
    assert banner.success and "Public studio" in banner.data[0]
    _no_leaks(public_app, attacker)


def _sweep_value(component: dict, target: str):
    kind = component.get("type")
    if kind in ("state",):
        return None
    if kind in ("number", "slider"):
        return 1
    if kind in ("checkbox",):
        return True
    if kind in ("file", "uploadbutton", "downloadbutton", "image"):
        return {"path": target, "meta": {"_type": "gradio.FileData"}} if target.startswith("/") else None
    if kind in ("chatbot",):
        return []
    if kind in ("dataframe", "plot", "html", "markdown", "code", "json"):
        return None
    if kind in ("checkboxgroup",):
        return [target]
    if kind == "dataset":
        return [target]
    return target


SKIPPED = {"prepare"}  # converts the bundled model: no input, nobody's data, a minute of work


def test_every_handler_attacked_with_other_visitors_ids_and_paths_changes_and_leaks_nothing(public_app, before):
    """Every handler in the app's config, through raw /queue/join, fed the victim's run id, dataset id,
    folders and /etc paths in every input — once with a fresh session (no page load), once after loading the
    page. None may change the victim's or the operator's files, or return their data or a server path."""
    world = public_app.world
    targets = [
        world.victim_run.name,
        world.victim_dataset.name,
        world.operator_run.name,
        "/etc/passwd",
        str(world.victim_run),
        str(world.victim_dataset),
        "../../runs/" + world.victim_run.name,
    ]
    visitors = []
    for loaded in (False, True):
        visitor = Visitor(public_app.url)
        visitors.append(visitor)
        if loaded:
            visitor.load_page()
        deps = visitor.dependencies()
        assert len(deps) > 90  # the whole app, not a stub
        for target in targets:
            for dep in deps:
                if dep.get("api_name", "").split("_")[0] in SKIPPED or dep.get("api_name") in SKIPPED:
                    continue
                data = [_sweep_value(visitor.component(cid), target) for cid in dep["inputs"]]
                if (
                    target != targets[0]
                    and not any(isinstance(value, (str, dict, list)) for value in data)
                    and not dep.get("collects_event_data")
                ):
                    continue  # nothing of the target reaches this handler: once is enough
                event = (
                    {"index": [0, 0], "value": target, "row_value": [target] * 3}
                    if dep.get("collects_event_data")
                    else None
                )
                visitor.call(dep["id"], data, event_data=event, timeout=120)
    assert world.checksum() == before
    for visitor in visitors:
        for canary in world.canaries:
            assert canary not in visitor.all_text(), f"leak of {canary}"
        assert FAKE_TOKEN not in visitor.all_text()
    for visitor in visitors:
        visitor.close()


def test_operator_tools_are_refused_to_visitors(public_app, attacker, before):
    """Every handler whose rule is 'operate' (share a run, reorder the queue, see the whole queue)."""
    from studio.ui import guard

    attacker.load_page()
    rules = handler_rules()
    operate = [dep for dep in attacker.dependencies() if rules.get(dep["id"]) == "operate"]
    assert len(operate) >= 4
    for dep in operate:
        data = [
            None
            if attacker.component(cid).get("type") == "state"
            else attacker.component(cid).get("props", {}).get("value")
            for cid in dep["inputs"]
        ]
        result = attacker.call(dep["id"], data)
        assert not result.success and result.refused, (dep["api_name"], result.error)
        assert "operator" in result.error
    assert public_app.world.checksum() == before
    assert guard.RULE_ATTRIBUTE


def handler_rules() -> dict[int, str]:
    """fn_index → rule, from the same app built in this process (same code, same order as the server's)."""
    from tests.security.test_registry import build_public_app

    demo = build_public_app()
    return {index: getattr(block.fn, "__studio_rule__", None) for index, block in demo.fns.items()}


def test_lists_show_own_and_shared_runs_only(public_app, attacker):
    world = public_app.world
    attacker.load_page()
    runs = attacker.call_named("refresh_runs", [None])
    assert runs.success
    listed = json.dumps(runs.data)
    assert world.demo_run.name in listed and "shared demo" in listed
    assert world.victim_run.name not in listed and world.operator_run.name not in listed
    datasets = attacker.call_named("refresh_datasets", [None])
    assert datasets.success and world.victim_dataset.name not in json.dumps(datasets.data)
    _no_leaks(public_app, attacker)


def test_compare_on_another_visitors_run_is_refused_by_id_and_by_path(public_app, attacker, before, tmp_path):
    world = public_app.world
    attacker.load_page()
    outside = tmp_path / "elsewhere"
    (outside / "adapter").mkdir(parents=True)
    (outside / "config.json").write_text("{}")
    link = world.home / "runs" / "run-symlinkout"
    if not link.exists():
        link.symlink_to(outside)
    targets = [
        world.victim_run.name,
        str(world.victim_run),
        str(world.victim_run / "adapter"),
        "/etc",
        str(outside),
        link.name,
        str(link),
        "../" + world.victim_run.name,
        world.operator_run.name,
    ]
    for target in targets:
        opened = attacker.call_named("open_run", [target, ""])
        assert opened.refused, (target, opened.text[:300])
        for handler, data in (
            ("ab_start", [target, ""]),
            ("ab_new_voter", [target]),
            ("ab_reveal", [target, "voter-attacker"]),
            ("build_report", [target]),
            ("run_evaluation", [target, 2, None, "", 16, 0.7, 0.9, 1.0, False, 0]),
        ):
            result = attacker.call_named(handler, data)
            # Refused by the handler, or by Gradio itself: a value its dropdown never offered this session.
            assert result.refused or "not in the list of choices" in result.text, (handler, target, result.text[:300])
        vote = attacker.call(attacker.fn_index("vote_A"), [target, "voter-attacker", 0])
        assert vote.refused, (target, vote.text[:300])
    # The same words for a run that exists and one that does not: ids cannot be probed.
    missing = attacker.call_named("open_run", ["run-doesnotexist", ""])
    present = attacker.call_named("open_run", [world.victim_run.name, ""])
    assert missing.text.replace("run-doesnotexist", "X").count("Not allowed") == present.text.count("Not allowed")
    assert world.checksum() == before
    _no_leaks(public_app, attacker, home_path_check=False)


def test_train_form_refuses_other_datasets_server_models_and_remote_code(public_app, attacker, before):
    from studio.ui import train_form

    world = public_app.world
    attacker.load_page()
    check = attacker.fn_index("check_where")
    start = attacker.fn_index("start_where")
    here = ["local", None, None]  # Where to train: this machine (flavour and cost cap unused)
    rows = "".join(
        json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]})
        + "\n"
        for i in range(12)
    )
    own = attacker.call_named("upload_dataset", [attacker.upload("own.jsonl", rows.encode())]).data[0]["value"]

    def form(**changes):
        values = dict(zip(train_form.FORM_FIELDS, train_form.form_values({})))
        values.update({"dataset": own, **changes})
        return [values[name] for name in train_form.FORM_FIELDS]

    # Another visitor's dataset, by id or path: Gradio refuses a value its dropdown never offered this session,
    # and the handler refuses it too (tests/security/test_handler_checks.py calls it directly).
    for dataset in (world.victim_dataset.name, str(world.victim_dataset), "/etc"):
        for fn, extra in ((check, [{}, *here]), (start, [{}, *here, None])):
            result = attacker.call(fn, form(dataset=dataset) + extra)
            assert result.refused or "not in the list of choices" in result.text, result.text[:300]
    # Server folders as the model, and remote code, with the attacker's own dataset: the handler refuses.
    for values in (
        form(model="/etc"),
        form(model=str(world.victim_run / "adapter")),
        form(model="/definitely/not/here"),
        form(model="studio/data"),
        form(model=str(world.model_dir), trust_remote_code=True),
    ):
        for fn, extra in ((check, [{}, *here]), (start, [{}, *here, None])):
            result = attacker.call(fn, values + extra)
            assert result.refused, (values[:3], result.text[:400])
    # A folder that exists and one that does not get the same answer.
    exists = attacker.call(check, form(model="/etc") + [{}, *here])
    missing = attacker.call(check, form(model="/nowhere-at-all") + [{}, *here])
    assert exists.data == missing.data
    assert world.checksum() == before
    _no_leaks(public_app, attacker, home_path_check=False)


def test_a_forged_or_guessed_identity_gets_a_fresh_empty_namespace(public_app, before):
    world = public_app.world
    forged = [world.victim_id, world.victim_id + ".forgedsignatureforgedsignature", world.victim_token + "x", ""]
    for token in forged:
        visitor = Visitor(public_app.url)
        kept = visitor.load_page(token)
        assert not kept.startswith(world.victim_id + "."), token
        runs = visitor.call_named("refresh_runs", [None])
        assert world.victim_run.name not in json.dumps(runs.data)
        visitor.close()
    # Positive control: the victim's own signed token does reach the victim's runs (the check is not vacuous).
    victim = Visitor(public_app.url)
    assert victim.load_page(world.victim_token) == world.victim_token
    assert world.victim_run.name in json.dumps(victim.call_named("refresh_runs", [None]).data)
    victim.close()
    assert world.checksum() == before


def test_a_vote_on_the_shared_demo_goes_to_the_voters_own_ballot(public_app, attacker, before):
    world = public_app.world
    attacker.load_page()
    started = attacker.call_named("ab_start", [world.demo_run.name, ""])
    assert started.success and not started.refused, started.text[:300]
    voter, index = started.data[0], started.data[5]
    voted = attacker.call(attacker.fn_index("vote_A"), [world.demo_run.name, voter, index])
    assert voted.success and "1 of" in json.dumps(voted.data), voted.text[:300]
    ballots = list((world.demo_run / "compare" / "visitors").glob("*/votes.json"))
    assert len(ballots) >= 1 and any(voter in json.loads(path.read_text())["ballots"] for path in ballots)
    # Finishing closes this visitor's ballot; their verdict counts it, the owner's box is untouched.
    finished = attacker.call_named("ab_reveal", [world.demo_run.name, voter])
    assert finished.success and "Ballot closed" in json.dumps(finished.data), finished.text[:300]
    report = attacker.call_named("build_report", [world.demo_run.name])
    assert report.success and "$STUDIO_HOME" in json.dumps(report.data)
    assert world.checksum() == before  # the owner's ballot and evaluation are untouched
    _no_leaks(public_app, attacker)


def test_quota_limits_a_visitors_saved_datasets(public_app, attacker):
    attacker.load_page()
    upload = attacker.fn_index("upload_dataset")
    rows = "".join(
        json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]})
        + "\n"
        for i in range(12)
    )
    results = [attacker.call(upload, [attacker.upload(f"mine-{n}.jsonl", rows.encode())]) for n in range(3)]
    assert all(result.success for result in results)
    texts = [json.dumps(result.data) for result in results]
    assert "no errors" in texts[0] and "no errors" in texts[1]
    assert "Not allowed" in texts[2] and "2 datasets" in texts[2]
    _no_leaks(public_app, attacker)


def test_files_not_uploaded_here_are_refused(public_app, attacker, before):
    attacker.load_page()
    for path in ("/etc/passwd", str(public_app.world.victim_dataset / "train.jsonl")):
        result = attacker.call_named("upload_dataset", [{"path": path, "meta": {"_type": "gradio.FileData"}}])
        assert not result.success or result.refused, result.text[:300]
        lint = attacker.call_named("lint_upload", [{"path": path, "meta": {"_type": "gradio.FileData"}}, None, 0, 8])
        assert not lint.success or lint.refused
        assert "root:" not in lint.text and public_app.world.canaries[0] not in lint.text
    assert public_app.world.checksum() == before


def test_visitor_runs_queue_get_no_token_and_cancel(public_app):
    """Two visitors start real runs on the tiny model: the first trains (its worker's environment holds no
    Hugging Face token), the second waits in the queue with its position and an estimated start; its owner
    cancels it; an operator's move-to-front is refused to a visitor."""
    from studio.ui import train_form

    world = public_app.world
    first, second = Visitor(public_app.url), Visitor(public_app.url)
    runs = []
    try:
        for visitor in (first, second):
            visitor.load_page()
            rows = "".join(
                json.dumps(
                    {
                        "messages": [
                            {"role": "user", "content": f"What is {i}+1?"},
                            {"role": "assistant", "content": f"Ahoy! {i + 1}."},
                        ]
                    }
                )
                + "\n"
                for i in range(40)
            )
            saved = visitor.call_named("upload_dataset", [visitor.upload("sums.jsonl", rows.encode())])
            assert saved.success and "no errors" in json.dumps(saved.data), saved.text[:400]
            dataset_value = saved.data[0]["value"]
            assert not str(dataset_value).startswith("/")  # an id, not a server path
            values = dict(zip(train_form.FORM_FIELDS, train_form.form_values({})))
            values.update(
                model=str(world.model_dir),
                dataset=dataset_value,
                max_steps=400,
                max_length=32,
                batch_size=2,
                learning_rate=0.001,
                save_steps=0,
                eval_steps=0,
            )
            form = [values[name] for name in train_form.FORM_FIELDS]
            started = visitor.call_named("start_where", form + [{}, "local", None, None, None])
            assert started.success and ("Started" in started.text or "queued" in started.text), started.text[:500]
            me = visitor.call_named("hand_back_token", [None]).data[0].split(".")[0]
            (mine,) = [
                folder.name
                for folder in (world.home / "runs").glob("run-*")
                if (folder / "status.json").is_file()
                and json.loads((folder / "status.json").read_text()).get("owner") == me
            ]
            runs.append(mine)
        first_dir, second_dir = (world.home / "runs" / run_id for run_id in runs)
        deadline = time.monotonic() + 60
        pid = None
        while time.monotonic() < deadline and not pid:
            status = json.loads((first_dir / "status.json").read_text())
            pid = status.get("pid")
            time.sleep(0.2)
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        names = {item.split(b"=", 1)[0] for item in environ if b"=" in item}
        assert b"HF_TOKEN" not in names and FAKE_TOKEN.encode() not in b"\0".join(environ)
        assert b"HF_HUB_DISABLE_IMPLICIT_TOKEN=1" in environ
        status = json.loads((second_dir / "status.json").read_text())
        assert status["status"] == "queued" and status.get("queue_key") is not None
        # The estimate needs the first run's ETA, known once its training has begun (after the imports, the model
        # load and, the first time on a machine, the precision measurement): until then it says "not known yet".
        deadline = time.monotonic() + 120
        while True:
            shown = second.call_named("render_forced", [None, None])
            assert "Queued: position 1 of 1" in shown.text, shown.text[-600:]
            if "starts at about" in shown.text or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert "starts at about" in shown.text, shown.text[-600:]
        assert first.call_named("move_to_front", [None]).refused  # operator only
        cancelled = second.call_named("stop_run", [None, None, None])
        assert cancelled.success and "Cancelled" in cancelled.text
        assert json.loads((second_dir / "status.json").read_text())["status"] == "stopped"
        # The other visitor cannot stop the first one's run (its view holds its own run only).
        other_stop = second.call_named("stop_run", [None, None, None])
        assert json.loads((first_dir / "status.json").read_text())["status"] in ("starting", "running")
        assert "Stopping" not in other_stop.text
        stopped = first.call_named("force_stop_run", [None, None, None])
        assert stopped.success and "Force-stopped" in stopped.text
    finally:
        for visitor in (first, second):
            visitor.close()


def test_the_operator_signs_in_with_the_admin_password_and_shares_a_run(public_app, before):
    world = public_app.world
    operator = Visitor(public_app.url)
    operator.load_page()
    wrong = operator.call_named("sign_in_operator", ["not-the-password"])
    assert "Not allowed" in wrong.text
    signed = operator.call_named("sign_in_operator", [ADMIN_PASSWORD])
    assert signed.success and "operator" in json.dumps(signed.data)
    listed = json.dumps(operator.call_named("refresh_runs", [None]).data)
    assert world.victim_run.name in listed and world.operator_run.name in listed  # the operator sees all
    overview = operator.call_named("queue_overview", [])
    assert overview.success
    operator.close()
    assert world.checksum() == before


def test_contradictory_settings_refuse_to_start(tmp_path):
    import subprocess
    import sys

    from tests.security.conftest import REPO

    env = {**os.environ, "STUDIO_HOME": str(tmp_path), "STUDIO_AUTH": "oauth", "STUDIO_PASSWORD": "x"}
    done = subprocess.run([sys.executable, "app.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "cannot start" in done.stderr and "STUDIO_PASSWORD" in done.stderr and "Traceback" not in done.stderr


def test_the_script_api_refuses_other_visitors_runs_datasets_and_server_paths(public_app, attacker, before):
    """The JSON endpoints for scripts (docs/api.md) give a visitor their own runs and datasets only."""
    world = public_app.world
    for target in (world.victim_run.name, world.operator_run.name, str(world.victim_run), "../../etc", "/etc"):
        for endpoint, data in (
            ("run_status", [target]),
            ("stop", [target]),
            ("ask", [target, "hello", 8, 0]),
            ("evaluate", [target, 2, 8]),
        ):
            result = attacker.call_named(endpoint, data)
            assert result.refused, (endpoint, target, result.text[:300])
    runs = attacker.call_named("runs", [])
    assert runs.success and world.victim_run.name not in json.dumps(runs.data)
    assert world.demo_run.name in json.dumps(runs.data)  # the operator's shared demo is every visitor's to see
    datasets = attacker.call_named("datasets", [])
    assert datasets.success and world.victim_dataset.name not in json.dumps(datasets.data)
    for settings in (
        {"dataset": world.victim_dataset.name},
        {"dataset": str(world.victim_dataset)},
        {"dataset": "/etc"},
        {"model": "/etc", "dataset": world.victim_dataset.name},
    ):
        for endpoint in ("estimate", "start_run"):
            result = attacker.call_named(endpoint, [settings])
            assert result.refused, (endpoint, settings, result.text[:300])
    malformed = attacker.call_named("start_run", ["not an object"])
    assert not malformed.success and "JSON object" in malformed.text
    for path in ("/etc/passwd", str(world.victim_dataset / "train.jsonl")):
        for endpoint, data in (("lint", [{"path": path, "meta": {"_type": "gradio.FileData"}}, "", 0]),):
            assert not attacker.call_named(endpoint, data).success  # Gradio or the handler refuses the path
        added = attacker.call_named("add_dataset", [{"path": path, "meta": {"_type": "gradio.FileData"}}])
        assert not added.success
    assert world.checksum() == before
    _no_leaks(public_app, attacker, home_path_check=False)
