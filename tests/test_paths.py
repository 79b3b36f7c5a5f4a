from pathlib import Path

from studio import paths


def test_studio_home_env_wins(tmp_path):
    storage = tmp_path / "data"
    storage.mkdir()
    assert paths.studio_home({"STUDIO_HOME": str(tmp_path / "x")}, storage) == (tmp_path / "x").resolve()


def test_studio_home_uses_writable_spaces_storage(tmp_path):
    storage = tmp_path / "data"
    storage.mkdir()
    assert paths.studio_home({}, storage) == storage / "studio"


def test_studio_home_falls_back_to_local_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert paths.studio_home({}, tmp_path / "missing") == (tmp_path / "studio_data").resolve()


def test_studio_home_skips_read_only_storage(tmp_path, monkeypatch):
    storage = tmp_path / "data"
    storage.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(paths.os, "access", lambda path, mode: False)
    assert paths.studio_home({}, storage) == (tmp_path / "studio_data").resolve()


def test_subfolders_live_under_home(studio_home):
    for folder in (paths.datasets_dir(), paths.runs_dir(), paths.models_dir(), paths.uploads_dir()):
        assert folder.is_dir() and folder.parent == studio_home


def test_hf_caches_go_under_home_unless_user_chose(tmp_path):
    env = {}
    paths.configure_caches(env)
    assert Path(env["HF_HOME"]).parent == paths.home()
    mine = {"HF_HOME": str(tmp_path / "mine")}
    paths.configure_caches(mine)
    assert mine["HF_HOME"] == str(tmp_path / "mine")


def test_safe_name_never_escapes():
    for hostile in ("../../etc/passwd", "..", "/abs/path.jsonl", "a\\..\\b", "", "   ", "con:name?.jsonl", "é" * 200):
        name = paths.safe_name(hostile)
        assert name and "/" not in name and "\\" not in name and name not in (".", "..")
        assert len(name) <= 60
    assert paths.safe_name("my data.jsonl") == "my-data.jsonl"


def test_new_ids_are_unique_and_path_safe():
    ids = {paths.new_id("run-") for _ in range(200)}
    assert len(ids) == 200
    assert all(paths.safe_name(i) == i for i in ids)


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "status.json"
    paths.atomic_write_text(target, "old")
    paths.atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
