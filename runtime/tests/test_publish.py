from __future__ import annotations

import logging
from pathlib import Path

import pytest
from rlops_runtime.manifest import check_folder
from rlops_runtime.publish import (
    ckpt_prefix,
    fetch_newest_complete,
    list_sessions,
    publish_checkpoint,
    read_latest,
    remote_steps,
)
from rlops_runtime.storage import StorageError, open_storage

SESSION = "sess-1"


@pytest.fixture
def storage(storage_uri: str):
    return open_storage(storage_uri)


@pytest.fixture
def local(tmp_path: Path) -> Path:
    return tmp_path / "local"


def test_publish_then_fetch_round_trip(storage, local, tmp_path, make_checkpoint):
    folder = make_checkpoint(local, 4096)
    assert publish_checkpoint(storage, SESSION, folder) == 4096
    assert ckpt_prefix(SESSION) == "sess-1/checkpoints"
    assert storage.list_keys(f"{SESSION}/") == [
        "sess-1/checkpoints/000000004096/manifest.json",
        "sess-1/checkpoints/000000004096/model.zip",
        "sess-1/checkpoints/000000004096/sub/extra.bin",
        "sess-1/checkpoints/LATEST",
    ]
    assert read_latest(storage, SESSION) == 4096
    assert remote_steps(storage, SESSION) == [4096]
    dest = tmp_path / "elsewhere"
    step, fetched = fetch_newest_complete(storage, SESSION, dest)
    assert (step, fetched) == (4096, dest / "000000004096")
    assert check_folder(fetched) == []
    extra = Path("sub", "extra.bin")
    assert (fetched / extra).read_bytes() == (folder / extra).read_bytes()
    assert sorted(p.name for p in dest.iterdir()) == ["000000004096"]


def test_nothing_published_means_nothing_to_fetch(storage, tmp_path):
    assert read_latest(storage, SESSION) is None
    assert remote_steps(storage, SESSION) == []
    assert fetch_newest_complete(storage, SESSION, tmp_path / "dest") is None


def test_a_damaged_local_folder_is_refused(storage, local, make_checkpoint):
    folder = make_checkpoint(local, 100)
    (folder / "model.zip").write_bytes(b"corrupt")
    with pytest.raises(ValueError, match="refusing to publish damaged checkpoint"):
        publish_checkpoint(storage, SESSION, folder)
    (folder / "manifest.json").unlink()
    with pytest.raises(ValueError, match=r"manifest\.json: missing"):
        publish_checkpoint(storage, SESSION, folder)
    assert storage.list_keys() == []


def test_a_publish_cut_short_is_invisible_then_completes(
    storage, local, tmp_path, make_checkpoint, faulty_storage
):
    publish_checkpoint(storage, SESSION, make_checkpoint(local, 100))
    newer = make_checkpoint(local, 200)
    for cut_after in (0, 1, 2):  # before any file, after one file, after all files
        flaky = faulty_storage(storage, fail_after_puts=cut_after)
        with pytest.raises(StorageError, match="injected"):
            publish_checkpoint(flaky, SESSION, newer)
        assert read_latest(storage, SESSION) == 100
        step, _folder = fetch_newest_complete(storage, SESSION, tmp_path / f"dest{cut_after}")
        assert step == 100
    retry = faulty_storage(storage)
    publish_checkpoint(retry, SESSION, newer)
    assert read_latest(storage, SESSION) == 200
    assert fetch_newest_complete(storage, SESSION, tmp_path / "dest")[0] == 200
    # The files uploaded before the cut are not sent again once the manifest matches.
    publish_checkpoint(retry, SESSION, newer)
    assert retry.puts[-2:] == [
        "sess-1/checkpoints/000000000200/manifest.json", "sess-1/checkpoints/LATEST"]


def test_damaged_latest_falls_back_to_an_earlier_step(
    storage, local, tmp_path, make_checkpoint, caplog
):
    for step in (100, 200, 300):
        publish_checkpoint(storage, SESSION, make_checkpoint(local, step))
    storage.put_bytes(f"{SESSION}/checkpoints/000000000300/model.zip", b"model 3XX")  # same size
    before = storage.list_keys()
    dest = tmp_path / "dest"
    with caplog.at_level(logging.WARNING):
        step, folder = fetch_newest_complete(storage, SESSION, dest)
    assert step == 200 and check_folder(folder) == []
    assert "skipping damaged checkpoint 300" in caplog.text
    assert sorted(p.name for p in dest.iterdir()) == ["000000000200"]  # no temp leftovers
    assert fetch_newest_complete(storage, SESSION, tmp_path / "d2", below=200)[0] == 100
    assert storage.list_keys() == before  # readers never change storage


def test_missing_file_and_unreadable_latest_fall_back(storage, local, tmp_path, make_checkpoint):
    for step in (100, 200):
        publish_checkpoint(storage, SESSION, make_checkpoint(local, step))
    # Step 300: its manifest arrived, its files never did.
    broken = make_checkpoint(local, 300)
    storage.put_file(broken / "manifest.json", f"{SESSION}/checkpoints/000000000300/manifest.json")
    assert remote_steps(storage, SESSION) == [100, 200, 300]
    storage.put_bytes(f"{SESSION}/checkpoints/LATEST", b"garbage")
    assert read_latest(storage, SESSION) is None
    assert fetch_newest_complete(storage, SESSION, tmp_path / "d1")[0] == 200
    storage.put_bytes(f"{SESSION}/checkpoints/LATEST", b"400")  # points at nothing
    assert fetch_newest_complete(storage, SESSION, tmp_path / "d2")[0] == 200


def test_latest_never_moves_back(storage, local, make_checkpoint):
    old = make_checkpoint(local, 100)
    publish_checkpoint(storage, SESSION, make_checkpoint(local, 200))
    publish_checkpoint(storage, SESSION, old)
    assert read_latest(storage, SESSION) == 200
    assert remote_steps(storage, SESSION) == [100, 200]


def test_nothing_is_ever_deleted(storage, local, tmp_path, make_checkpoint):
    publish_checkpoint(storage, SESSION, make_checkpoint(local, 100))
    publish_checkpoint(storage, SESSION, make_checkpoint(local, 200))
    before = set(storage.list_keys())
    # Same step again with other files: the old keys stay, the manifest decides.
    other = make_checkpoint(tmp_path / "other", 200, files={"policy.pt": b"new"})
    publish_checkpoint(storage, SESSION, other)
    assert before < set(storage.list_keys())
    step, folder = fetch_newest_complete(storage, SESSION, tmp_path / "dest")
    assert step == 200
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "policy.pt"]


def test_fetch_keeps_a_complete_local_copy_and_moves_a_damaged_one_aside(
    storage, local, make_checkpoint
):
    folder = make_checkpoint(local, 100)
    publish_checkpoint(storage, SESSION, folder)
    assert fetch_newest_complete(storage, SESSION, local) == (100, folder)
    (folder / "model.zip").write_bytes(b"bad")
    assert fetch_newest_complete(storage, SESSION, local) == (100, folder)
    assert check_folder(folder) == []
    damaged = [p for p in local.iterdir() if p.name.startswith(".damaged-100-")]
    assert len(damaged) == 1 and (damaged[0] / "model.zip").read_bytes() == b"bad"


def test_list_sessions(storage, local, make_checkpoint):
    storage.check()  # leaves .rlops-check/, which is not a session
    publish_checkpoint(storage, "b-sess", make_checkpoint(local, 1))
    storage.put_bytes("a-sess/status.json", b"{}")
    storage.put_bytes("Not_A_Session/x", b"{}")
    assert list_sessions(storage) == ["a-sess", "b-sess"]
