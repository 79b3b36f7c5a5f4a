import sys
import types

from studio import access


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
