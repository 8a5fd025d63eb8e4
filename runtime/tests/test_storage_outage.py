"""Storage that goes away and comes back: nothing a job wrote is lost.

A real S3 server (localbucket, on loopback, its buckets on disk) is stopped while the
fake job trains and started again later: during the run (later syncs catch up), after
the job ended but within the supervisor's final_sync_timeout (its bounded retry publishes
the rest), and after that window (`rlops-run publish` does, from the session's own
config/storage.env).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RestartableS3
from rlops_runtime.checkpoints import local_steps
from rlops_runtime.manifest import MANIFEST, load_manifest, step_dirname
from rlops_runtime.publish import ckpt_prefix, read_latest, remote_steps
from rlops_runtime.session import SessionLayout
from rlops_runtime.status import read_status
from rlops_runtime.storage import Storage, open_storage
from rlops_runtime.supervisor import lock_session
from test_supervisor import SESSION, SupervisorThread, make_session, wait_for


def status_of(layout: SessionLayout) -> dict:
    status = read_status(layout.status)
    return status.to_dict() if status else {}


def assert_everything_published(storage: Storage, layout: SessionLayout) -> list[int]:
    """Every local checkpoint is in storage, whole and identical; LATEST is the newest."""
    steps = local_steps(layout.checkpoints)
    assert steps and remote_steps(storage, SESSION) == steps
    for step in steps:
        folder = layout.checkpoints / step_dirname(step)
        prefix = f"{ckpt_prefix(SESSION)}/{step_dirname(step)}"
        manifest = load_manifest(folder)
        assert json.loads(storage.get_bytes(f"{prefix}/{MANIFEST}")) == manifest
        for entry in manifest["files"]:
            assert storage.get_bytes(f"{prefix}/{entry['path']}") == (
                folder / entry["path"]).read_bytes()
    assert read_latest(storage, SESSION) == steps[-1]
    return steps


def outage_session(tmp_path: Path, s3: RestartableS3, **run: object) -> SessionLayout:
    return make_session(tmp_path, storage_uri=s3.uri, sync_interval=0.3,
                        env={"FAKE_CHECKPOINT_SECONDS": "0.3"}, **run)


def take_storage_away_after_a_publish(layout: SessionLayout, s3: RestartableS3) -> int:
    wait_for(lambda: status_of(layout).get("last_synced_step"))
    s3.stop()
    return status_of(layout)["last_synced_step"]


def rlops_run(*args: str) -> subprocess.CompletedProcess:
    """The CLI as the playbooks run it: no storage credentials in its environment."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AWS_", "RLOPS_S3_"))}
    return subprocess.run([sys.executable, "-m", "rlops_runtime.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_an_outage_during_the_run_is_caught_up_by_later_syncs(
        tmp_path: Path, restartable_s3: RestartableS3) -> None:
    layout = outage_session(tmp_path, restartable_s3)
    run = SupervisorThread(layout, status_interval=0.2)
    run.start()
    try:
        synced = take_storage_away_after_a_publish(layout, restartable_s3)
        wait_for(lambda: len(status_of(layout)["unsynced_steps"]) >= 3, timeout=30)
        during = status_of(layout)
        assert "cannot reach the S3 endpoint" in during["sync_error"]
        assert min(during["unsynced_steps"]) > synced and during["state"] == "running"

        restartable_s3.start()
        wait_for(lambda: status_of(layout)["sync_error"] is None, timeout=30)
        wait_for(lambda: read_latest(open_storage(restartable_s3.uri), SESSION)
                 >= during["unsynced_steps"][-1], timeout=30)
    finally:
        run.stop()
    assert run.code == 0
    status = status_of(layout)
    assert (status["state"], status["unsynced_steps"], status["sync_error"]) == (
        "stopped", [], None)
    steps = assert_everything_published(open_storage(restartable_s3.uri), layout)
    assert status["last_synced_step"] == steps[-1]


def test_storage_back_within_the_final_window_gets_the_last_checkpoints(
        tmp_path: Path, restartable_s3: RestartableS3) -> None:
    """The job completes while storage is away; the supervisor keeps trying."""
    layout = outage_session(tmp_path, restartable_s3, total_timesteps=150,
                            final_sync_timeout=120)
    run = SupervisorThread(layout)
    run.start()
    try:
        take_storage_away_after_a_publish(layout, restartable_s3)
        wait_for(lambda: status_of(layout)["state"] == "completed", timeout=30)
        ended = status_of(layout)
        assert ended["unsynced_steps"] and ended["unsynced_steps"][-1] == 150
        assert "cannot reach the S3 endpoint" in ended["sync_error"]
        run.join(3)
        assert run.is_alive(), "the supervisor gave up on storage at once"

        restartable_s3.start()
        run.join(90)
        assert not run.is_alive(), "the supervisor did not finish once storage was back"
    finally:
        if run.is_alive():
            run.stop()
    assert run.code == 0
    status = status_of(layout)
    assert (status["state"], status["unsynced_steps"], status["sync_error"]) == (
        "completed", [], None)
    storage = open_storage(restartable_s3.uri)
    assert assert_everything_published(storage, layout)[-1] == 150
    stored = json.loads(storage.get_bytes(f"{SESSION}/status.json"))
    assert (stored["state"], stored["unsynced_steps"], stored["last_synced_step"]) == (
        "completed", [], 150)


def test_storage_back_after_the_window_publish_sends_the_rest(
        tmp_path: Path, restartable_s3: RestartableS3) -> None:
    layout = outage_session(tmp_path, restartable_s3, total_timesteps=150,
                            final_sync_timeout=1)
    run = SupervisorThread(layout)
    run.start()
    try:
        take_storage_away_after_a_publish(layout, restartable_s3)
        run.join(60)
        assert not run.is_alive(), "the final retry is not bounded"
    finally:
        if run.is_alive():
            run.stop()
    assert run.code == 0
    ended = status_of(layout)
    assert ended["state"] == "completed" and ended["unsynced_steps"][-1] == 150
    assert ended["unsynced_steps"] == [
        step for step in local_steps(layout.checkpoints) if step > ended["last_synced_step"]]
    # The session's own credentials, as the trainer role writes them (0600).
    layout.storage_env.write_text(
        "".join(f"{key}={value}\n" for key, value in restartable_s3.env().items()))
    layout.storage_env.chmod(0o600)
    session_dir = str(layout.root)

    down = rlops_run("publish", "--session-dir", session_dir)
    assert down.returncode == 2 and "cannot reach the S3 endpoint" in down.stderr
    assert f"{len(ended['unsynced_steps'])} checkpoints not in storage yet (newest 150)" in (
        down.stderr)
    assert status_of(layout)["unsynced_steps"] == ended["unsynced_steps"]

    restartable_s3.start()
    dry = rlops_run("publish", "--session-dir", session_dir, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout) == {"session_id": SESSION,
                                      "would_publish": ended["unsynced_steps"], "damaged": []}
    storage = open_storage(restartable_s3.uri)
    assert read_latest(storage, SESSION) == ended["last_synced_step"]  # dry: nothing sent

    holder = lock_session(layout)  # a live supervisor publishes by itself
    try:
        busy = rlops_run("publish", "--session-dir", session_dir)
    finally:
        os.close(holder)
    assert busy.returncode == 2 and "has a running supervisor" in busy.stderr

    done = rlops_run("publish", "--session-dir", session_dir)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["published"] == ended["unsynced_steps"]
    assert (result["unsynced_steps"], result["latest"]) == ([], 150)
    steps = assert_everything_published(storage, layout)
    status = status_of(layout)
    assert (status["state"], status["unsynced_steps"], status["sync_error"],
            status["last_synced_step"]) == ("completed", [], None, 150)
    stored = json.loads(storage.get_bytes(f"{SESSION}/status.json"))
    assert stored["unsynced_steps"] == [] and stored["state"] == "completed"
    assert not storage.exists(f"{SESSION}/config/storage.env")

    again = rlops_run("publish", "--session-dir", session_dir)
    assert again.returncode == 0 and json.loads(again.stdout)["published"] == []
    assert local_steps(layout.checkpoints) == steps  # nothing deleted


def test_publish_never_sends_a_damaged_checkpoint(
        tmp_path: Path, restartable_s3: RestartableS3, make_checkpoint) -> None:
    layout = make_session(tmp_path, storage_uri=restartable_s3.uri)
    for step in (10, 20, 30):
        make_checkpoint(layout.checkpoints, step, session=SESSION)
    (layout.checkpoints / step_dirname(30) / "model.zip").write_bytes(b"torn")
    layout.storage_env.write_text(
        "".join(f"{key}={value}\n" for key, value in restartable_s3.env().items()))
    dry = rlops_run("publish", "--session-dir", str(layout.root), "--dry-run")
    assert json.loads(dry.stdout)["would_publish"] == [10, 20]
    assert json.loads(dry.stdout)["damaged"] == [30]
    done = rlops_run("publish", "--session-dir", str(layout.root))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["published"], result["damaged"], result["latest"]) == ([10, 20], [30], 20)
    storage = open_storage(restartable_s3.uri)
    assert remote_steps(storage, SESSION) == [10, 20]


@pytest.mark.parametrize("trouble, message", [
    ("no run.json", "run.json: missing"),
    ("no session", "does not exist"),
    ("unusable lock", "cannot publish session fake-20261122t000000z: "),
])
def test_publish_refuses_with_one_line(tmp_path: Path, trouble: str, message: str) -> None:
    layout = make_session(tmp_path)
    target = layout.root
    if trouble == "no run.json":
        layout.run_json.unlink()
    elif trouble == "no session":
        target = tmp_path / "nowhere"
    else:
        layout.lockfile.mkdir()  # what root cannot open either
    out = rlops_run("publish", "--session-dir", str(target))
    assert out.returncode == 2 and out.stderr.startswith("rlops-run: error: ")
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1
