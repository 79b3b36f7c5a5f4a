"""Saved dataset folders: the contract, atomic saves, sanitised ids, earlier datasets untouched."""

import json
from pathlib import Path

import pytest

from studio import paths
from studio.data import clean, store
from studio.data.formats import convert
from studio.data.lint import LintReport
from studio.data.records import Finding, Row
from studio.errors import StudioError

CONTRACT_KEYS = {
    "id",
    "name",
    "source_name",
    "source_sha256",
    "format",
    "created_at",
    "counts",
    "findings_summary",
    "stats",
}


def make_report(count=20, findings=()):
    rows = []
    for number in range(1, count + 1):
        row = Row(
            number=number,
            raw={
                "messages": [
                    {"role": "user", "content": f"Question {number} about ships?"},
                    {"role": "assistant", "content": f"Ahoy! Answer {number}."},
                ]
            },
        )
        convert(row)
        rows.append(row)
    return LintReport(name="t.jsonl", format="messages", rows=rows, findings=list(findings))


STATS = {
    "model": "bundled:SmolLM2-135M-Instruct",
    "max_length": 512,
    "rows": 17,
    "tokens": {"total": 900, "trainable": 300, "p50": 50, "p95": 60, "p99": 61, "max": 62},
    "suggested_max_length": 64,
}


def save(name="my data.jsonl", report=None, **kwargs):
    report = report or make_report(
        findings=[
            Finding("CONT-EMPTY-ASSIST", "E", 4, "Empty.", "Fill."),
            Finding("CONT-EDGE-WS", "W", 5, "Space.", "Strip."),
            Finding("CONT-EDGE-WS", "W", 6, "Space.", "Strip."),
        ]
    )
    result = clean.clean_and_split(report, validation_fraction=0.1, seed=0)
    folder = store.save_dataset(
        result,
        report,
        STATS,
        source_name=name,
        source_sha256="ab" * 32,
        report_json='{"ok": true}',
        report_markdown="# report\n",
        **kwargs,
    )
    return folder, result


def test_saved_folder_follows_the_contract():
    folder, result = save()
    assert folder.parent == paths.datasets_dir()
    assert {p.name for p in folder.iterdir()} == {
        "train.jsonl",
        "validation.jsonl",
        "manifest.json",
        "rejected.jsonl",
        "report.json",
        "report.md",
    }
    manifest = json.loads((folder / "manifest.json").read_text())
    assert CONTRACT_KEYS <= set(manifest)
    assert (
        manifest["id"] == folder.name and manifest["name"] == "my data" and manifest["source_name"] == "my data.jsonl"
    )
    assert manifest["source_sha256"] == "ab" * 32 and manifest["format"] == "messages"
    assert manifest["counts"] == {"train": 17, "validation": 2, "rejected": 1}
    assert manifest["findings_summary"] == {"CONT-EDGE-WS": 2, "CONT-EMPTY-ASSIST": 1}
    assert manifest["stats"] == STATS
    train = [json.loads(line) for line in (folder / "train.jsonl").read_text().splitlines()]
    validation = [json.loads(line) for line in (folder / "validation.jsonl").read_text().splitlines()]
    assert train == result.train and validation == result.validation
    assert all(set(record) == {"messages"} for record in train + validation)
    rejected = [json.loads(line) for line in (folder / "rejected.jsonl").read_text().splitlines()]
    assert rejected[0]["row"] == 4 and rejected[0]["reasons"][0]["rule"] == "CONT-EMPTY-ASSIST"
    assert (folder / "report.md").read_text() == "# report\n" and json.loads((folder / "report.json").read_text()) == {
        "ok": True
    }


def test_a_hub_dataset_is_named_by_its_id_for_the_model_card():
    folder, _ = save(name="someone__pirate-chat-train.jsonl", source_hub_id="someone/pirate-chat")
    assert json.loads((folder / "manifest.json").read_text())["source_hub_id"] == "someone/pirate-chat"
    assert "source_hub_id" not in json.loads((save()[0] / "manifest.json").read_text())  # an upload has none


def test_list_and_load_saved_datasets():
    first, _ = save("first.jsonl")
    second, _ = save("second.csv")
    listed = store.list_datasets()
    by_path = {item["path"]: item for item in listed}
    assert str(first) in by_path and str(second) in by_path
    assert by_path[str(second)]["name"] == "second"
    loaded = store.load_dataset_folder(first)
    assert loaded.manifest["id"] == first.name and len(loaded.train) == 17 and len(loaded.validation) == 2
    with pytest.raises(StudioError):
        store.load_dataset_folder(paths.datasets_dir() / "nope")


@pytest.mark.parametrize(
    "hostile",
    [
        "../../etc/passwd",
        "/abs/path/x.jsonl",
        "..",
        "a\\..\\b.jsonl",
        "",
        "✨ data ✨.json",
        "x" * 500 + ".jsonl",
        "con:nul?*<>|.jsonl",
    ],
)
def test_ids_are_sanitised_and_unguessable(hostile):
    folder, _ = save(hostile)
    assert folder.parent == paths.datasets_dir()
    assert folder.name == paths.safe_name(folder.name) and ".." not in folder.name and "/" not in folder.name
    assert len(folder.name) <= 60
    again, _ = save(hostile)
    assert again != folder  # a random part: two saves of the same file never collide
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["source_name"] == hostile  # kept as data, never used as a path


def test_saving_never_touches_earlier_datasets():
    earlier, _ = save("earlier.jsonl")
    before = {p.name: p.read_bytes() for p in earlier.iterdir()}
    save("earlier.jsonl")
    save("later.jsonl")
    assert {p.name: p.read_bytes() for p in earlier.iterdir()} == before


def test_a_failed_save_leaves_nothing_behind(monkeypatch):
    existing = set(paths.datasets_dir().iterdir())
    real_write = paths.atomic_write_text

    def failing_write(path, text):
        if Path(path).name == "manifest.json":
            raise OSError(28, "No space left on device")
        real_write(path, text)

    monkeypatch.setattr(paths, "atomic_write_text", failing_write)
    with pytest.raises(StudioError) as error:
        save("will-fail.jsonl")
    assert "disk space" in error.value.hint
    assert set(paths.datasets_dir().iterdir()) == existing  # no half folder, no staging folder
    assert all(m["name"] != "will-fail" for m in store.list_datasets())


def test_broken_folders_are_skipped_in_the_list():
    broken = paths.datasets_dir() / "broken-one"
    broken.mkdir(exist_ok=True)
    (broken / "manifest.json").write_text("{not json")
    half = paths.datasets_dir() / "no-train"
    half.mkdir(exist_ok=True)
    (half / "manifest.json").write_text('{"id": "no-train"}')
    paths_listed = {item["path"] for item in store.list_datasets()}
    assert str(broken) not in paths_listed and str(half) not in paths_listed


def test_bundled_samples_are_listed_clean_one_first():
    samples = store.bundled_samples()
    names = [sample["name"] for sample in samples]
    assert names[0] == "assistant_style" and "assistant_style_messy" in names
    for sample in samples:
        assert Path(sample["path"]).is_file() and sample["rows"] > 0 and sample["description"]
    assert samples[0]["rows"] >= 120


def test_sha256_of_a_file(tmp_path):
    target = tmp_path / "x.bin"
    target.write_bytes(b"hello")
    assert (
        store.sha256_file(target)
        == store.sha256_bytes(b"hello")
        == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    )


def test_rows_with_lone_surrogates_are_saved_as_json_escapes():
    report = make_report()
    report.rows[4].raw = {"messages": [{"role": "user", "content": "bad \ud83d here"}]}
    report.findings.append(Finding("ENC-SURROGATE", "E", 5, "Lone surrogate \ud83d.", "Fix the encoding."))
    result = clean.clean_and_split(report, validation_fraction=0.1, seed=0)
    folder = store.save_dataset(result, report, STATS, source_name="s.jsonl", source_sha256="0" * 64)
    rejected = [json.loads(line) for line in (folder / "rejected.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rejected[0]["raw"]["messages"][0]["content"] == "bad \ud83d here"  # the row kept exactly as found
