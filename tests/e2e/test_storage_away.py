"""Storage away when a job ends: status.yml and retrieve.yml publish what it lacks.

A session on this machine whose job (the runtime's fake test job, under the real
`rlops-run run` supervisor) ends while its S3 storage (localbucket on loopback) is
stopped: the supervisor's bounded final retry gives up and status.json lists the
checkpoints storage lacks. Then the playbooks, as a user runs them: status with storage
still away (said, not failed), status --check (says what it would publish, sends
nothing), retrieve (publishes), status again (nothing left, nothing changed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from harness import changed_total
from servers import Localbucket

REPO = Path(__file__).resolve().parents[2]
FAKE_JOB = REPO / "runtime" / "tests" / "fake_job.py"
SESSION = "away-20261206t000000z"
BUCKET = "rl-away"


@pytest.fixture
def s3(tmp_path):
    server = Localbucket(str(tmp_path / "s3"))
    (tmp_path / "s3").mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _client(s3):
    return boto3.client("s3", endpoint_url=s3.url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def _stored_steps(s3) -> tuple[list[int], int | None]:
    keys = [item["Key"] for item in _client(s3).list_objects_v2(
        Bucket=BUCKET, Prefix=f"runs/{SESSION}/checkpoints/").get("Contents", [])]
    steps = sorted(int(key.split("/")[3]) for key in keys if key.endswith("/manifest.json"))
    latest = f"runs/{SESSION}/checkpoints/LATEST"
    has_latest = latest in keys
    body = _client(s3).get_object(Bucket=BUCKET, Key=latest)["Body"].read() if has_latest else None
    return steps, int(body) if body else None


def _local_steps(session_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in (session_dir / "checkpoints").iterdir() if p.name.isdigit())


def test_checkpoints_left_behind_are_published_by_status_and_retrieve(playbooks, s3):
    _client(s3).create_bucket(Bucket=BUCKET)
    credentials = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                   "AWS_DEFAULT_REGION": "us-east-1", "RLOPS_S3_ENDPOINT_URL": s3.url,
                   "AWS_EC2_METADATA_DISABLED": "true"}
    # The host as the trainer role leaves it: the runtime's CLI, the session's config.
    cli = playbooks.data_root / "bin" / "rlops-run"
    cli.parent.mkdir(parents=True)
    cli.symlink_to(Path(sys.executable).parent / "rlops-run")
    session_dir = playbooks.session_dir(SESSION)
    (session_dir / "config").mkdir(parents=True)
    (session_dir / "config" / "run.json").write_text(json.dumps({
        "session_id": SESSION, "storage_uri": f"s3://{BUCKET}/runs",
        "command": [sys.executable, str(FAKE_JOB)], "total_timesteps": 100,
        "sync_interval": 0.3, "final_sync_timeout": 1, "notices": "none",
        "env": {"FAKE_CHECKPOINT_SECONDS": "0.4"}}))
    storage_env = session_dir / "config" / "storage.env"
    storage_env.write_text("".join(f"{key}={value}\n" for key, value in credentials.items()))
    storage_env.chmod(0o600)

    # The job runs and ends while storage is away; the supervisor's last retry gives up.
    s3.stop()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AWS_", "RLOPS_"))}
    subprocess.run([str(cli), "run", "--session-dir", str(session_dir)], env=env, check=True,
                   timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ended = playbooks.status(SESSION)
    steps = _local_steps(session_dir)
    assert ended["state"] == "completed" and ended["unsynced_steps"] == steps and steps[-1] == 100
    pending = f"{len(steps)} checkpoints not in storage yet (newest 100)"

    away = playbooks.run("status").stdout
    assert f"{SESSION} on localhost: {pending}, not published now: " in away, away[-3000:]
    assert "cannot reach the S3 endpoint" in away

    s3.start()
    check = playbooks.run("status", "--check").stdout
    assert f"{SESSION} on localhost: {pending}: publish would send them" in check, check[-3000:]
    assert changed_total(check) == 1  # what it would publish, reported and not done
    assert _stored_steps(s3) == ([], None)
    assert playbooks.status(SESSION)["unsynced_steps"] == steps

    out = playbooks.run("retrieve", rlops_session=SESSION).stdout
    assert _stored_steps(s3) == (steps, 100), out[-3000:]
    assert f"published {len(steps)} checkpoints that storage lacked (newest 100)" in out
    status = playbooks.status(SESSION)
    assert (status["unsynced_steps"], status["sync_error"], status["last_synced_step"]) == (
        [], None, 100)
    assert json.loads(_client(s3).get_object(
        Bucket=BUCKET, Key=f"runs/{SESSION}/status.json")["Body"].read())["unsynced_steps"] == []
    assert (playbooks.results / SESSION / "checkpoints" / "000000000100").is_dir()

    again = playbooks.run("status").stdout
    assert "not in storage" not in again and "published" not in again, again[-3000:]
    assert changed_total(again) == 0
    assert _local_steps(session_dir) == steps  # nothing deleted


def _supervisor_gone(status: dict) -> bool:
    try:
        os.kill(status["supervisor_pid"], 0)
    except (KeyError, TypeError, ProcessLookupError):
        return True
    return False


def test_resume_publishes_what_storage_lacked_before_it_starts(playbooks, s3):
    """train_new with S3 storage, which goes away once the job runs: the job completes,
    the supervisor's short final retry gives up; storage comes back; resume.yml publishes
    every checkpoint before it would start anything (a completed session is not started
    again, so no supervisor's sync would)."""
    _client(s3).create_bucket(Bucket=BUCKET)
    playbooks.extra.update(
        rlops_storage_uri=f"s3://{BUCKET}/runs",
        rlops_storage_credentials={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                                   "AWS_DEFAULT_REGION": "us-east-1",
                                   "RLOPS_S3_ENDPOINT_URL": s3.url})
    out = playbooks.run("train_new", rlops_name="e2e-away", trainer_total_timesteps=30000,
                        trainer_checkpoint_interval=8192, trainer_final_sync_timeout=2).stdout
    session = playbooks.session_from(out)
    s3.stop()
    ended = playbooks.wait(session, lambda s: s.get("state") == "completed"
                           and _supervisor_gone(s), 400, "completed, its supervisor gone")
    session_dir = playbooks.session_dir(session)
    steps = sorted(int(p.name) for p in (session_dir / "checkpoints").iterdir()
                   if p.name.isdigit())
    assert ended["unsynced_steps"] == steps and steps[-1] >= 30000, ended
    assert "cannot reach the S3 endpoint" in ended["sync_error"]

    s3.start()
    out = playbooks.run("resume", rlops_session=session).stdout
    keys = [item["Key"] for item in _client(s3).list_objects_v2(
        Bucket=BUCKET, Prefix=f"runs/{session}/checkpoints/").get("Contents", [])]
    stored = sorted(int(key.split("/")[3]) for key in keys if key.endswith("/manifest.json"))
    latest = _client(s3).get_object(Bucket=BUCKET, Key=f"runs/{session}/checkpoints/LATEST")
    assert stored == steps and int(latest["Body"].read()) == steps[-1], out[-3000:]
    status = playbooks.status(session)
    assert (status["state"], status["unsynced_steps"], status["sync_error"]) == (
        "completed", [], None)
    assert status["supervisor_pid"] == ended["supervisor_pid"]  # not started again
