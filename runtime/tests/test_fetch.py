"""rlops-run fetch: a session home from storage, its checkpoint verified as a resume does."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rlops_runtime.cli import main
from rlops_runtime.fetch import FetchError, fetch_session, session_files
from rlops_runtime.manifest import check_folder
from rlops_runtime.publish import publish_checkpoint
from rlops_runtime.storage import open_storage

SESSION = "fetch-20261122t051500z"
OTHER_FILES = {
    "config/run.json": b'{"session_id": "fetch-20261122t051500z"}',
    "status.json": b'{"state": "stopped"}',
    "logs/job.log": b"step 100\n",
    "tensorboard/events.out.tfevents.1": b"\x00events",
}


@pytest.fixture
def storage(storage_uri: str):
    return open_storage(storage_uri)


def publish_session(storage, tmp_path: Path, make_checkpoint, steps=(100, 200, 300)) -> None:
    local = tmp_path / "host" / "checkpoints"
    for step in steps:
        publish_checkpoint(storage, SESSION, make_checkpoint(local, step, session=SESSION))
    for rel, data in OTHER_FILES.items():
        storage.put_bytes(f"{SESSION}/{rel}", data)


def test_session_files_leave_out_checkpoints_credentials_and_escapes():
    keys = [f"{SESSION}/config/run.json", f"{SESSION}/config/storage.env",
            f"{SESSION}/checkpoints/LATEST", f"{SESSION}/checkpoints/000000000100/model.zip",
            f"{SESSION}/logs/../../etc/passwd", f"{SESSION}/status.json",
            "fetch-20261122t051500zz/status.json"]
    assert session_files(keys, SESSION) == ["config/run.json", "status.json"]


def test_newest_complete_checkpoint_and_the_rest(storage, tmp_path, make_checkpoint):
    publish_session(storage, tmp_path, make_checkpoint)
    before = storage.list_keys()
    dest = tmp_path / "results" / SESSION
    result = fetch_session(storage, SESSION, dest).to_dict()
    assert result["checkpoint"] == 300 and result["checkpoint_fetched"]
    assert result["skipped_checkpoints"] == [] and result["changed"]
    assert sorted(result["fetched"]) == sorted(OTHER_FILES)
    assert (dest / "checkpoints/LATEST").read_text() == "300"
    assert sorted(p.name for p in (dest / "checkpoints").iterdir()) == ["000000000300", "LATEST"]
    assert check_folder(dest / "checkpoints/000000000300") == []
    for rel, data in OTHER_FILES.items():
        assert (dest / rel).read_bytes() == data
    assert storage.list_keys() == before  # a reader never changes storage
    # Again: nothing new. Then storage moves on: only what changed comes.
    again = fetch_session(storage, SESSION, dest).to_dict()
    assert not again["changed"] and again["unchanged"] == len(OTHER_FILES)
    storage.put_bytes(f"{SESSION}/logs/job.log", b"step 200\n")  # same size, other content
    assert fetch_session(storage, SESSION, dest).fetched == ["logs/job.log"]


def test_latest_damaged_falls_back_as_a_resume_does(storage, tmp_path, make_checkpoint):
    publish_session(storage, tmp_path, make_checkpoint)
    storage.put_bytes(f"{SESSION}/checkpoints/000000000300/model.zip", b"model 3XX")
    dest = tmp_path / "results"
    result = fetch_session(storage, SESSION, dest)
    assert (result.checkpoint, result.skipped_checkpoints) == (200, [300])
    assert (dest / "checkpoints/LATEST").read_text() == "200"
    assert not list((dest / "checkpoints").glob(".tmp-*"))


def test_latest_missing_takes_the_newest_complete(storage, tmp_path, make_checkpoint):
    publish_session(storage, tmp_path, make_checkpoint, steps=(100, 200))
    # A newer checkpoint whose files never arrived, and no LATEST at all.
    broken = make_checkpoint(tmp_path / "x", 300, session=SESSION)
    storage.put_file(broken / "manifest.json", f"{SESSION}/checkpoints/000000000300/manifest.json")
    storage.put_bytes(f"{SESSION}/checkpoints/LATEST", b"")
    result = fetch_session(storage, SESSION, tmp_path / "results")
    assert (result.checkpoint, result.skipped_checkpoints) == (200, [300])


def test_check_reads_only(storage, tmp_path, make_checkpoint):
    publish_session(storage, tmp_path, make_checkpoint)
    dest = tmp_path / "results"
    result = fetch_session(storage, SESSION, dest, check=True).to_dict()
    assert result["checkpoint"] == 300 and result["checkpoint_fetched"] and result["changed"]
    assert sorted(result["fetched"]) == sorted(OTHER_FILES)
    assert not dest.exists()
    # It verifies what it would bring, as the real run does.
    storage.put_bytes(f"{SESSION}/checkpoints/000000000300/model.zip", b"model 3XX")
    result = fetch_session(storage, SESSION, dest, check=True)
    assert (result.checkpoint, result.skipped_checkpoints) == (200, [300])
    assert not dest.exists()


def test_a_damaged_local_copy_is_moved_aside_never_deleted(storage, tmp_path, make_checkpoint):
    publish_session(storage, tmp_path, make_checkpoint)
    dest = tmp_path / "results"
    fetch_session(storage, SESSION, dest)
    (dest / "checkpoints/000000000300/model.zip").write_bytes(b"mine")
    result = fetch_session(storage, SESSION, dest)
    assert result.checkpoint == 300 and result.checkpoint_fetched
    assert check_folder(dest / "checkpoints/000000000300") == []
    (aside,) = (dest / "checkpoints").glob(".damaged-300-*")
    assert (aside / "model.zip").read_bytes() == b"mine"


def test_unknown_session(storage, tmp_path):
    with pytest.raises(FetchError, match=f"session {SESSION} is not in storage"):
        fetch_session(storage, SESSION, tmp_path / "results")
    assert not (tmp_path / "results").exists()


def test_the_command_answers_in_json(tmp_path, capsys, make_checkpoint, monkeypatch):
    uri = f"file://{tmp_path / 'storage'}"
    publish_session(open_storage(uri), tmp_path, make_checkpoint)
    dest = tmp_path / "results"
    monkeypatch.setattr("sys.stdin", io.StringIO('{"RLOPS_X": "1"}'))
    code = main(["fetch", "--storage-uri", uri, "--session", SESSION, "--dest", str(dest),
                 "--storage-env-stdin"])
    out, _err = capsys.readouterr()
    assert code == 0 and json.loads(out)["checkpoint"] == 300
    code = main(["fetch", "--storage-uri", uri, "--session", "nope-1", "--dest", str(dest)])
    _out, err = capsys.readouterr()
    assert code == 2 and err == f"rlops-run: error: session nope-1 is not in storage {uri} " \
                                "(nothing under nope-1/)\n"
    code = main(["fetch", "--storage-uri", "az://c/p", "--session", SESSION, "--dest", str(dest)])
    _out, err = capsys.readouterr()
    assert code == 2 and "'c' is not a valid Azure Blob container name" in err


def test_no_complete_checkpoint_still_brings_the_rest(storage, tmp_path):
    for rel, data in OTHER_FILES.items():
        storage.put_bytes(f"{SESSION}/{rel}", data)
    result = fetch_session(storage, SESSION, tmp_path / "results")
    assert result.checkpoint is None and not result.checkpoint_fetched
    assert sorted(result.fetched) == sorted(OTHER_FILES)
    assert not (tmp_path / "results/checkpoints/LATEST").exists()
