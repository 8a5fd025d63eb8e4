"""The spine on localhost, through the real playbooks: train_new -> status -> stop ->
resume -> retrieve -> evaluate, with file storage and with S3 storage on a moto server."""

from __future__ import annotations

import json
import re
import shutil

import boto3
import pytest
from harness import changed_hosts, has_checkpoint, status_table

# Large enough that the job is still training when stop.yml arrives, small enough to
# finish in about a minute on 2 cores after the resume.
BUDGET = {"trainer_total_timesteps": 250000, "trainer_checkpoint_interval": 8192}


def test_spine_with_file_storage(playbooks):
    out = playbooks.run("train_new", **BUDGET, rlops_name="e2e-file").stdout
    session = playbooks.session_from(out)
    assert session.startswith("e2e-file-")
    assert f"rlops_session={session}" in out

    status = playbooks.wait(session, has_checkpoint, 180, "checkpointed while running")
    table = playbooks.run("status").stdout
    assert [row["state"] for (listed, _host), row in status_table(table).items()
            if listed == session] == ["running"], table[-3000:]
    # Resume of a running session, the host already prepared: nothing changes.
    out = playbooks.run("resume", rlops_session=session).stdout
    assert changed_hosts(out) == {}, out[-4000:]

    playbooks.run("stop", rlops_session=session)
    stopped = playbooks.status(session)
    assert stopped["state"] == "stopped", stopped
    stopped_at = stopped["last_checkpoint_step"]
    assert status["last_checkpoint_step"] <= stopped_at < BUDGET["trainer_total_timesteps"]
    # The stop asked for a checkpoint and published it before the supervisor exited.
    storage_latest = playbooks.data_root / "storage" / session / "checkpoints" / "LATEST"
    assert int(storage_latest.read_text()) == stopped_at

    playbooks.run("resume", rlops_session=session)
    resumed = playbooks.wait(session, lambda s: s.get("state") == "completed", 400, "completed")
    assert resumed["resumed_from_step"] == stopped_at
    assert resumed["step"] >= BUDGET["trainer_total_timesteps"]
    ckpts = sorted(p.name for p in (playbooks.session_dir(session) / "checkpoints").iterdir()
                   if p.name.isdigit())
    after = [int(name) for name in ckpts if int(name) > stopped_at]
    assert after and min(after) > stopped_at
    # Resume of a completed session leaves it alone: nothing changes, nothing trains.
    out = playbooks.run("resume", rlops_session=session).stdout
    assert changed_hosts(out) == {}, out[-4000:]
    assert playbooks.status(session)["state"] == "completed"

    playbooks.run("retrieve", rlops_session=session)
    home = playbooks.results / session
    assert (home / "report" / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((home / "report" / "summary.json").read_text())
    assert summary["steps"] >= BUDGET["trainer_total_timesteps"]
    assert any((home / "tensorboard").rglob("events.out.tfevents.*"))
    assert (home / "logs" / "job.log").stat().st_size > 0
    assert not (home / "config" / "storage.env").exists()
    # A second retrieve copies only the rewritten report, not the session again.
    again = playbooks.run("retrieve", rlops_session=session).stdout
    copied = re.search(r"\((\d+) new or changed files\)", again)
    assert copied and int(copied.group(1)) <= 2, again[-2000:]

    out = playbooks.run("evaluate", rlops_session=session, rlops_eval_episodes=10).stdout
    evaluation = json.loads((home / "eval" / "eval.json").read_text())
    assert evaluation["mean_return"] >= 195, evaluation
    assert len(evaluation["returns"]) == 10
    assert any(p.suffix in (".mp4", ".gif") and p.stat().st_size > 0
               for p in (home / "eval").iterdir())
    assert "mean return" in out


# A secret only this test uses: it must appear in no playbook output, even at -vvv.
SECRET = "e2e-secret-7f3a9c0d51b2"


def test_spine_with_s3_storage_resumes_from_storage(playbooks, moto_endpoint):
    """The spine on S3 storage, every playbook at -vvv: the storage secret reaches the
    runtime (through stdin and the 0600 storage.env) and appears in none of the outputs."""
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key=SECRET
                 ).create_bucket(Bucket="rl-e2e")
    credentials = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": SECRET,
                   "AWS_DEFAULT_REGION": "us-east-1", "RLOPS_S3_ENDPOINT_URL": moto_endpoint}
    playbooks.extra.update(rlops_storage_uri="s3://rl-e2e/runs",
                           rlops_storage_credentials=credentials,
                           rlops_storage_check="controller")
    outputs = []

    def run(name, **extra):
        proc = playbooks.run(name, "-vvv", **extra)
        outputs.append((name, proc.stdout + proc.stderr))
        return proc.stdout

    session = playbooks.session_from(run("train_new", **BUDGET, rlops_name="e2e-s3"))
    playbooks.wait(session, has_checkpoint, 180, "checkpointed while running")
    run("status")
    run("stop", rlops_session=session)
    stopped_at = playbooks.status(session)["last_checkpoint_step"]

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    latest = s3.get_object(Bucket="rl-e2e", Key=f"runs/{session}/checkpoints/LATEST")
    assert int(latest["Body"].read()) == stopped_at

    # The host loses the session, its config/requirements.lock with it: resume takes the
    # recorded set (read by the controller's S3 client in the trainer's preflight), the config
    # and the checkpoints from storage. A budget one checkpoint past the stop, applied to the
    # config restored from storage: the session completes in seconds (the file spine above
    # trains to the end for its evaluation's return).
    shutil.rmtree(playbooks.session_dir(session))
    total = stopped_at + BUDGET["trainer_checkpoint_interval"]
    out = run("resume", rlops_session=session, trainer_total_timesteps=total)
    assert '"set_from": "storage"' in out, out[-3000:]
    assert f"changed total_timesteps {BUDGET['trainer_total_timesteps']} -> {total}" in out, \
        out[-3000:]
    resumed = playbooks.wait(session, lambda s: s.get("state") == "completed", 400, "completed")
    assert resumed["resumed_from_step"] == stopped_at and resumed["step"] >= total
    run("retrieve", rlops_session=session)
    run("evaluate", rlops_session=session, rlops_eval_episodes=2, rlops_eval_video=False)

    leaked = [name for name, output in outputs if SECRET in output]
    assert not leaked, f"the storage secret is in the -vvv output of {leaked}"
    # -vvv did show what Ansible runs (where an `environment:` secret used to appear).
    assert all("EXEC /bin/sh -c" in output for _name, output in outputs)
    storage_env = playbooks.session_dir(session) / "config" / "storage.env"
    assert storage_env.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("extra,message", [
    ({"rlops_session": "Bad_Id"}, "session id 'Bad_Id' is invalid"),
    ({"trainer_env_id": "CartPol-v1"}, "did you mean CartPole-v1"),
    ({"trainer_hyperparameters": "{n_steps: 3"}, "hyperparameters are not valid JSON"),
    ({"trainer_hyperparameters": {"n_step": 64}}, "'n_step' is not a PPO hyperparameter"),
    ({"rlops_storage_uri": "ftp://host/x"}, "unsupported storage URI 'ftp://host/x'"),
    ({"rlops_storage_uri": "az://Models/x"},
     "storage URI 'az://Models/x': 'Models' is not a valid Azure Blob container name"),
    ({"rlops_storage_uri": "s3://rl-missing/x",
      "rlops_storage_credentials": {"RLOPS_S3_ENDPOINT_URL": "http://127.0.0.1:9",
                                    "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}},
     "cannot reach the S3 endpoint http://127.0.0.1:9 (connection refused)"),
])
def test_train_new_refuses_bad_input_before_any_change(playbooks, extra, message):
    out = playbooks.run("train_new", ok=False, **extra).stdout
    assert message in out, out[-3000:]
    assert not (playbooks.data_root / "sessions").exists()


def test_resume_of_unknown_session_lists_known_ones(playbooks):
    out = playbooks.run("resume", ok=False, rlops_session="nope-20260101t000000z").stdout
    assert "session nope-20260101t000000z is not known" in out
    assert "known sessions" in out
