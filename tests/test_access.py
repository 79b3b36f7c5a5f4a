import sys
import types

import pytest

from studio import access, quotas


def test_open_by_default():
    mode = access.from_env({})
    assert mode.mode == "open" and mode.launch_auth({}) is None and mode.may_train(None)


def test_password_mode_checks_user_and_password():
    env = {"STUDIO_PASSWORD": "s3cret"}
    mode = access.from_env(env)
    check = mode.launch_auth(env)
    assert mode.mode == "password"
    assert check("studio", "s3cret")
    assert not check("studio", "wrong") and not check("admin", "s3cret")
    env["STUDIO_USER"] = "team"
    assert mode.launch_auth(env)("team", "s3cret")


def test_oauth_visitors_read_only_owner_trains():
    mode = access.from_env({"STUDIO_AUTH": "oauth", "SPACE_AUTHOR_NAME": "alice"})
    assert mode.mode == "oauth" and mode.owners == ("alice",)
    assert mode.may_train("Alice")
    assert not mode.may_train(None) and "sign in" in mode.why_not(None)
    assert not mode.may_train("bob") and "owners" in mode.why_not("bob")
    listed = access.from_env({"STUDIO_AUTH": "oauth", "STUDIO_OWNERS": "bob, carol", "SPACE_AUTHOR_NAME": "alice"})
    assert listed.may_train("carol") and not listed.may_train("alice")


def test_zero_gpu_switch_wraps_only_on_zero_gpu(monkeypatch):
    calls = []
    fake_spaces = types.ModuleType("spaces")

    def gpu(duration):
        def wrap(function):
            calls.append(duration)
            return lambda *a, **k: ("on-gpu", function(*a, **k))

        return wrap

    fake_spaces.GPU = gpu
    monkeypatch.setitem(sys.modules, "spaces", fake_spaces)

    def generate(x):
        return x * 2

    assert access.gpu_call(generate, env={}) is generate
    wrapped = access.gpu_call(generate, duration=60, env={"SPACES_ZERO_GPU": "true"})
    assert wrapped(2) == ("on-gpu", 4) and calls == [60]
    assert access.on_zero_gpu({"SPACES_ZERO_GPU": "1"}) and not access.on_zero_gpu({})


# ---------------------------------------------------------------- modes, identities, the authorization function


def test_public_mode_turns_on_by_itself_on_a_space_unless_private():
    assert not access.settings({}).public
    assert access.settings({"SPACE_ID": "me/studio"}).public
    assert not access.settings({"SPACE_ID": "me/studio", "STUDIO_MODE": "private"}).public
    assert access.settings({"STUDIO_MODE": "public"}).public
    assert access.settings({"STUDIO_AUTH": "oauth"}).public  # sign-in means visitors


@pytest.mark.parametrize(
    "env, words",
    [
        ({"STUDIO_AUTH": "oauth", "STUDIO_PASSWORD": "x"}, "STUDIO_PASSWORD"),
        ({"STUDIO_AUTH": "oauth", "STUDIO_MODE": "private"}, "STUDIO_MODE=private"),
        ({"STUDIO_MODE": "open-to-all"}, "not a mode"),
        ({"STUDIO_AUTH": "github"}, "not a known sign-in"),
    ],
)
def test_contradictory_or_unknown_settings_refuse_with_a_clear_message(env, words):
    with pytest.raises(access.ConfigurationError) as refused:
        access.settings(env)
    assert words in refused.value.message and refused.value.hint


def test_tokens_are_signed_and_forgeries_refused(monkeypatch):
    monkeypatch.setenv("STUDIO_SECRET", "unit-secret")
    user_id = access.new_browser_id()
    token = access.sign(user_id)
    assert access.verify(token) == user_id
    assert access.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert access.verify(user_id) is None  # a bare id is no proof in public mode
    assert access.verify(user_id, allow_unsigned=True) == user_id  # private mode: older versions' ids
    monkeypatch.setenv("STUDIO_SECRET", "another-secret")
    assert access.verify(token) is None  # signed with another key


def test_identity_is_bound_to_the_page_session_and_operator_rights_need_the_password(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "me/studio")
    monkeypatch.setenv("STUDIO_ADMIN_PASSWORD", "s3cret")
    token = access.establish("session-a", None)
    visitor = access.identify("session-a")
    assert visitor.role == access.ANONYMOUS and token.startswith(visitor.user_id + ".")
    assert access.identify("session-b").user_id != visitor.user_id  # another page session: another visitor
    with pytest.raises(access.AccessDenied):
        access.become_operator("session-a", "wrong")
    assert access.become_operator("session-a", "s3cret").operator
    assert access.identify("session-a").user_id == visitor.user_id
    access.establish("session-a", token)  # a reload keeps the id; operator rights are not carried over
    assert access.identify("session-a").role == access.OPERATOR
    access.establish("session-a", None)
    assert access.identify("session-a").role == access.ANONYMOUS


def test_signed_in_owners_are_operators_and_others_visitors(monkeypatch):
    monkeypatch.setenv("STUDIO_AUTH", "oauth")
    monkeypatch.setenv("STUDIO_OWNERS", "alice")
    assert access.identify("s1", "Alice").operator
    mallory = access.identify("s2", "mallory")
    assert mallory.role == access.SIGNED_IN and mallory.user_id == "hf-mallory"


class _Run:
    def __init__(self, owner, shared=False, name="their run", run_id="run-x"):
        self.status = {"owner": owner, "shared": shared}
        self.name, self.run_id = name, run_id


def test_the_authorization_function_public_mode(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "me/studio")
    me = access.Identity("browser-me0000000000000", access.ANONYMOUS)
    operator = access.Identity("hf-alice", access.OPERATOR)
    mine, theirs, shared = _Run(me.user_id), _Run("browser-them00000000000"), _Run("local", shared=True)
    for action in (access.VIEW, access.CHAT, access.CONTROL, access.EXPORT, access.EVALUATE, access.VOTE):
        access.authorize(me, action, mine)
        access.authorize(operator, action, theirs)
        with pytest.raises(access.AccessDenied) as refused:
            access.authorize(me, action, theirs)
        assert refused.value.message.startswith("Not allowed") and "their run" not in refused.value.message
    for action in (access.VIEW, access.CHAT, access.VOTE, access.REPORT):
        access.authorize(me, action, shared)
    for action in (access.CONTROL, access.EXPORT):
        with pytest.raises(access.AccessDenied):
            access.authorize(me, action, shared)
    with pytest.raises(access.AccessDenied):
        access.authorize(me, access.OPERATE)
    with pytest.raises(access.AccessDenied):
        access.authorize(access.Identity("", access.ANONYMOUS), access.TRAIN)  # no identity: nothing to own
    monkeypatch.setenv("STUDIO_ADMIN_PASSWORD", "s3cret")
    assert access.authorize(me, access.CONTROL, theirs, admin_password="s3cret").operator


def test_the_authorization_function_oauth_mode(monkeypatch):
    monkeypatch.setenv("STUDIO_AUTH", "oauth")
    monkeypatch.setenv("STUDIO_OWNERS", "alice")
    visitor = access.Identity("hf-bob", access.SIGNED_IN, "bob")
    for action in (access.TRAIN, access.SAVE_DATASET, access.LINT_HUB, access.EXPORT, access.EVALUATE, access.OPERATE):
        with pytest.raises(access.AccessDenied) as refused:
            access.authorize(visitor, action)
        assert "owners of this Space (alice)" in refused.value.message
    for action in (access.LOOK, access.LINT, access.CHAT, access.VOTE):
        access.authorize(visitor, action)


def test_private_mode_keeps_the_local_run_guard(monkeypatch):
    local = access.Identity("browser-other", access.OPERATOR)
    access.authorize(local, access.TRAIN)
    with pytest.raises(access.AccessDenied) as refused:
        access.authorize(local, access.CONTROL, _Run("browser-owner"), verb="stop")
    assert "another session" in refused.value.message
    access.authorize(local, access.CONTROL, _Run("local"))  # the local user's runs (and older ones) are open
    access.authorize(local, access.EXPORT, _Run("browser-owner"))


def test_remote_code_only_for_operators_who_allow_it(monkeypatch):
    visitor, operator = access.Identity("v", access.ANONYMOUS), access.Identity("o", access.OPERATOR)
    access.require_remote_code_allowed(visitor)  # private mode: the local user decides
    monkeypatch.setenv("SPACE_ID", "me/studio")
    for who in (visitor, operator):
        with pytest.raises(access.AccessDenied):
            access.require_remote_code_allowed(who)
    monkeypatch.setenv("STUDIO_ALLOW_REMOTE_CODE", "1")
    access.require_remote_code_allowed(operator)
    with pytest.raises(access.AccessDenied):
        access.require_remote_code_allowed(visitor)


def test_hub_downloads_use_no_token_for_visitors():
    assert access.hub_token_for(access.Identity("v", access.ANONYMOUS)) is False
    assert access.hub_token_for(access.Identity("o", access.OPERATOR)) is None


def test_model_paths_in_public_mode(monkeypatch, tmp_path):
    from studio import paths

    access.check_model_ref("/etc")  # private mode: the operator's own machine
    monkeypatch.setenv("SPACE_ID", "me/studio")
    for ref in ("/etc", "/nowhere/at/all", "../../etc", str(paths.runs_dir() / "run-x" / "merged"), "a/b/c"):
        with pytest.raises(access.AccessDenied) as refused:
            access.check_model_ref(ref)
        assert "other server folders" in refused.value.message
    inside = paths.models_dir() / "mine"
    inside.mkdir(exist_ok=True)
    access.check_model_ref(str(inside))
    link = paths.models_dir() / "escape"
    if not link.exists():
        link.symlink_to(tmp_path)
    with pytest.raises(access.AccessDenied):
        access.check_model_ref(str(link))  # symlinks resolved


def test_redact_hides_server_folders_in_public_mode_only(monkeypatch):
    from studio import paths

    text = f"saved in {paths.home()}/runs/x"
    assert access.redact(text) == text
    monkeypatch.setenv("SPACE_ID", "me/studio")
    assert access.redact(text) == "saved in $STUDIO_HOME/runs/x"


def test_quotas_count_a_visitors_datasets(monkeypatch):
    import json

    from studio import paths

    monkeypatch.setenv("SPACE_ID", "me/studio")
    monkeypatch.setenv("STUDIO_QUOTA_DATASETS", "1")
    me = access.Identity(access.new_browser_id(), access.ANONYMOUS)
    quotas.check_quota(me, "datasets")
    folder = paths.datasets_dir() / f"quota-{me.user_id}"
    folder.mkdir()
    (folder / "train.jsonl").write_text("{}\n")
    (folder / "manifest.json").write_text(json.dumps({"id": folder.name, "owner": me.user_id}))
    with pytest.raises(access.AccessDenied) as refused:
        quotas.check_quota(me, "datasets")
    assert "1 datasets" in refused.value.message
    quotas.check_quota(access.Identity("o", access.OPERATOR), "datasets")  # operators have no quota
    assert quotas.usage(me)["bytes"] > 0


def test_the_local_sign_in_stand_in_needs_a_cookie_secret():
    env = {"STUDIO_AUTH": "oauth", "STUDIO_OAUTH_LOCAL": "1"}
    with pytest.raises(access.ConfigurationError) as refused:
        access.settings(env)
    assert "OAUTH_CLIENT_SECRET" in refused.value.message
    assert access.settings({**env, "OAUTH_CLIENT_SECRET": "long-random"}).oauth


def test_a_relative_folder_is_a_server_folder_too(monkeypatch, tmp_path):
    monkeypatch.setenv("SPACE_ID", "me/studio")
    (tmp_path / "owner" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(access.AccessDenied):
        access.check_model_ref("owner/name")  # exists here: a folder, not a Hub id


def test_all_visitors_together_and_a_nearly_full_disk_are_bounded(monkeypatch):
    """Visitor ids are free to make, so a per-visitor share alone does not bound the disk (hostile-visitor
    finding: three fresh ids kept 10 datasets each)."""
    import json
    import shutil

    from studio import paths

    monkeypatch.setenv("SPACE_ID", "me/studio")
    folders = []
    try:
        for number in range(3):
            someone = access.new_browser_id()
            folder = paths.datasets_dir() / f"all-visitors-{number}-{someone}"
            folder.mkdir()
            (folder / "train.jsonl").write_bytes(b"x" * 400_000)
            (folder / "manifest.json").write_text(json.dumps({"id": folder.name, "owner": someone}))
            folders.append(folder)
        me = access.Identity(access.new_browser_id(), access.ANONYMOUS)
        quotas.check_quota(me, "datasets")  # well within every share
        monkeypatch.setenv("STUDIO_QUOTA_ALL_VISITORS_MB", "1")  # 1.2 MB kept by visitors in all: over it
        with pytest.raises(access.AccessDenied, match="visitors together"):
            quotas.check_quota(me, "datasets")
        monkeypatch.delenv("STUDIO_QUOTA_ALL_VISITORS_MB")
        free_mb = shutil.disk_usage(paths.studio_home()).free / 1024**2
        monkeypatch.setenv("STUDIO_MIN_FREE_MB", str(int(free_mb) + 1000))
        with pytest.raises(access.AccessDenied, match="nearly full"):
            quotas.check_quota(me, "datasets")
        quotas.check_quota(access.Identity("operator", access.OPERATOR), "datasets")  # operators are not limited
    finally:
        for folder in folders:
            shutil.rmtree(folder)
