"""Hub datasets: the split's files are sized before anything is downloaded, downloaded into a temporary folder,
read like uploads (same limits) and deleted afterwards. The Hub itself is replaced by two stand-in functions."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from studio import paths
from studio.data import load
from studio.errors import StudioError

ROW = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ahoy!"}]}


def jsonl(count: int) -> bytes:
    return ("\n".join(json.dumps(ROW) for _ in range(count)) + "\n").encode()


class FakeHub:
    def __init__(self, files: dict[str, bytes], parquet_branch: dict[str, bytes] | None = None, sizes=None):
        self.branches = {None: files, load.PARQUET_REVISION: parquet_branch or {}}
        self.sizes = sizes or {}
        self.downloads: list[tuple[str, str | None, Path]] = []

    def listing(self, dataset_id, revision, token):
        return [(name, self.sizes.get(name, len(data))) for name, data in self.branches[revision].items()]

    def download(self, dataset_id, filename, revision, folder, token):
        target = Path(folder) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.branches[revision][filename])
        self.downloads.append((filename, revision, Path(folder)))
        return target


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("STUDIO_MAX_HUB_DATASET_MB", raising=False)
    monkeypatch.delenv("STUDIO_MAX_ROWS", raising=False)

    def install(*args, **kwargs) -> FakeHub:
        fake = FakeHub(*args, **kwargs)
        monkeypatch.setattr(load, "_hub_listing", fake.listing)
        monkeypatch.setattr(load, "_hub_download", fake.download)
        return fake

    return install


def leftover_downloads() -> list[Path]:
    return sorted(paths.home().glob("hub-*"))


def test_the_split_is_downloaded_read_and_deleted(hub):
    fake = hub(
        {
            "README.md": b"# card",
            "data/train-00000.jsonl": jsonl(3),
            "data/train-00001.jsonl.gz": gzip.compress(jsonl(2)),
            "data/test-00000.jsonl": jsonl(7),
        }
    )
    result = load.load_hub("someone/pirates", "train")
    assert len(result.rows) == 5 and [row.number for row in result.rows] == [1, 2, 3, 4, 5]
    assert sorted(name for name, _, _ in fake.downloads) == ["data/train-00000.jsonl", "data/train-00001.jsonl.gz"]
    assert all(folder.parent == paths.home() for _, _, folder in fake.downloads)
    assert not any(folder.exists() for _, _, folder in fake.downloads) and not leftover_downloads()
    assert len(load.load_hub("someone/pirates", "test").rows) == 7


def test_too_large_is_refused_before_any_download(hub, monkeypatch):
    fake = hub({"train.parquet": b"PAR1"}, sizes={"train.parquet": 3 * 1024**3})
    with pytest.raises(StudioError) as caught:
        load.load_hub("someone/huge")
    assert "3,072 MB to download" in caught.value.message and "STUDIO_MAX_HUB_DATASET_MB" in caught.value.hint
    assert fake.downloads == []
    monkeypatch.setenv("SPACE_ID", "owner/space")  # public mode: 100 MB
    fake = hub({"train.jsonl": b""}, sizes={"train.jsonl": 150 * 1024**2})
    with pytest.raises(StudioError, match="over this studio's limit of 100 MB"):
        load.load_hub("someone/medium")
    assert fake.downloads == []


def test_files_that_name_no_split_are_the_train_split_and_the_parquet_copy_is_the_fallback(hub):
    hub({"chat.jsonl": jsonl(4), "notes.txt": b"x"})
    assert len(load.load_hub("someone/plain").rows) == 4
    fake = hub(
        {"data.arrow": b"x"}, parquet_branch={"default/train/0000.jsonl": jsonl(2), "other/train/0000.jsonl": jsonl(9)}
    )
    assert len(load.load_hub("someone/converted").rows) == 2
    assert [revision for _, revision, _ in fake.downloads] == [load.PARQUET_REVISION]
    hub({"train.jsonl": jsonl(1)})
    with pytest.raises(StudioError, match="no data files for the split 'validation'"):
        load.load_hub("someone/plain", "validation")


def test_a_bad_file_fails_with_its_name_and_leaves_nothing_behind(hub, monkeypatch):
    monkeypatch.setenv("STUDIO_MAX_DECODED_MB", "1")
    hub({"train.jsonl.gz": gzip.compress(bytes(4 * 1024 * 1024))})
    with pytest.raises(StudioError) as caught:
        load.load_hub("someone/bomb")
    assert "train.jsonl.gz in someone/bomb" in caught.value.message and "grow to more than" in caught.value.message
    assert not leftover_downloads()


def test_rows_limit_applies_to_hub_splits(hub, monkeypatch):
    monkeypatch.setenv("STUDIO_MAX_ROWS", "5")
    hub({"data/train-0.jsonl": jsonl(4), "data/train-1.jsonl": jsonl(4)})
    with pytest.raises(StudioError, match="more than 5 rows"):
        load.load_hub("someone/long")
    assert not leftover_downloads()


def test_split_names_match_whole_words():
    listing = [
        ("data/train-0000.parquet", 1),
        ("data/training_extra.jsonl", 1),
        ("data/test.jsonl", 1),
        ("contest.jsonl", 1),
        ("validation/part.csv", 1),
        ("README.md", 1),
    ]
    assert [p for p, _ in load.split_files(listing, "train")] == ["data/train-0000.parquet"]
    assert [p for p, _ in load.split_files(listing, "test")] == ["data/test.jsonl"]
    assert [p for p, _ in load.split_files(listing, "validation")] == ["validation/part.csv"]


def test_bad_ids_and_splits_are_refused_before_the_network(hub):
    fake = hub({})
    for dataset_id, split in (("not a valid id!", "train"), ("a/b", "../etc"), ("a/b", "x" * 100)):
        with pytest.raises(StudioError):
            load.load_hub(dataset_id, split)
    assert fake.downloads == []
