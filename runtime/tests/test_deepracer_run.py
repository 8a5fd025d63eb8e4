"""The DeepRacer backend run for real, without Docker: the supervisor runs the driver
(agents/deepracer.py) on a stack the deepracer_stack role's own renderer made
(plugins/module_utils/deepracer_config.py), whose services are the stand-in simapp's
processes (tests/deepracer) started by fake_docker.py as `docker` and `docker-compose` on
PATH, against localbucket. rl_coach writes the trainer's compose file under the sagemaker
dir and starts it outside the project, as SageMaker local mode does, so the stop is tested
against that file's real content.

One flow: train m1 (session checkpoints as its checkpoints come, metrics and simtrace
mirrored, status.json's deepracer) -> a spot notice (the supervisor's stop: the trainer and
the project stopped, no process left, the final checkpoint, upload-model) -> resume as an
increment (m2 from m1, the step goes on) until the trainer finishes by itself (completed) ->
evaluate m2 (MP4s, metrics) -> retrieve's pack has the mirrored model data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest
import yaml
from conftest import free_port
from rlops_runtime.jsonio import read_json, write_json_atomic
from rlops_runtime.manifest import step_dirname
from rlops_runtime.session import SessionLayout
from rlops_runtime.settings import new_config, plan_resume

REPO = Path(__file__).resolve().parents[2]
FAKE = Path(__file__).with_name("fake_docker.py")
sys.path.insert(0, str(REPO / "plugins" / "module_utils"))
sys.path.insert(0, str(REPO / "tests" / "deepracer"))
import deepracer_config as dc  # noqa: E402 - the role's renderer, from the collection's tree
from dr_inputs import HYPER, METADATA, REWARD  # noqa: E402 - the stand-in tests' inputs

SESSION = "racer-20261207t090000z"
RUN_ID = 7
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)


def tracks_dir() -> Path:
    folder = REPO / "roles" / "deepracer_stack" / "files" / "tracks"
    if not list(folder.glob("*.npy")):
        pytest.skip("no DeepRacer track files")
    return folder


class Host:
    """A DeepRacer host without Docker: the fake's bin, state and home; the bucket."""

    def __init__(self, tmp: Path, endpoint: str, bucket: str) -> None:
        self.tmp, self.endpoint, self.bucket = tmp, endpoint, bucket
        self.bin = tmp / "bin"
        self.bin.mkdir()
        for tool in ("docker", "docker-compose"):
            path = self.bin / tool
            path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" {tool} "$@"\n')
            path.chmod(0o755)
        self.sagemaker = tmp / "sagemaker"
        self.sagemaker.mkdir()
        home = tmp / "home" / ".sagemaker"
        home.mkdir(parents=True)
        (home / "config.yaml").write_text(f"local:\n  container_root: {self.sagemaker}\n")
        self.compose_dir = tmp / "compose"
        self.compose_dir.mkdir()
        self.supervisors: list[subprocess.Popen] = []
        self.env = {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}",
                    "FAKE_DOCKER_STATE": str(tmp / "docker"),
                    "FAKE_DOCKER_HOME": str(tmp / "home"),
                    "STANDIN_TRACKS_DIR": str(tracks_dir()),
                    "STANDIN_MEMORY_PORT": str(free_port()),
                    "STANDIN_SAGEMAKER_WAIT_TIME": "60",
                    "RLOPS_DEEPRACER_POLL": "0.5", "AWS_REGION": "us-east-1",
                    "PYTHONPATH": str(REPO / "runtime")}
        self.s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                               aws_access_key_id="testing", aws_secret_access_key="testing")

    def put(self, key: str, body: str | bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def get(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def keys(self, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                  Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def plan(self, prefix: str, pretrained: str | None = None) -> dict:
        """What the role does for a model prefix: its env, params uploaded, compose files."""
        settings = {"deepracer_stack_local_s3_endpoint_url": self.endpoint,
                    "deepracer_stack_local_s3_bucket": self.bucket,
                    "deepracer_stack_run_id": RUN_ID,
                    "deepracer_stack_local_s3_model_prefix": prefix,
                    "deepracer_stack_world_name": "reInvent2019_track",
                    "deepracer_stack_train_min_eval_trials": 1,
                    "deepracer_stack_eval_number_of_trials": 2,
                    "deepracer_stack_eval_save_mp4": True}
        if pretrained:
            settings.update({"deepracer_stack_local_s3_pretrained": True,
                             "deepracer_stack_local_s3_pretrained_prefix": pretrained})
        env = dc.build_env(settings)
        for name, params in dc.training_files(env, [], NOW)["files"].items():
            self.put(dc.params_key(prefix, name), dc.params_yaml(params))
        self.put(f"{prefix}/reward_function.py", REWARD)  # prepare-config.py's copy
        for job, name in (("training", "training.yml"), ("evaluation", "evaluation.yml")):
            (self.compose_dir / name).write_text(yaml.safe_dump(dc.compose_project(env, job)))
        return {"project": dc.project_name(env, "training"),
                "eval_project": dc.project_name(env, "evaluation"),
                "compose_command": ["docker-compose"], "compose_dir": str(self.compose_dir),
                "sagemaker_dir": str(self.sagemaker), "run_id": RUN_ID, "model_prefix": prefix,
                "pretrained_prefix": pretrained, "bucket": self.bucket,
                "metrics_prefix": env["DR_LOCAL_S3_METRICS_PREFIX"],
                "upload_target": f"s3://{self.bucket}/uploads/{prefix}"}

    def evaluation_params(self, prefix: str) -> dict:
        env = dc.build_env({"deepracer_stack_local_s3_model_prefix": prefix,
                            "deepracer_stack_local_s3_bucket": self.bucket,
                            "deepracer_stack_local_s3_endpoint_url": self.endpoint,
                            "deepracer_stack_world_name": "reInvent2019_track",
                            "deepracer_stack_eval_number_of_trials": 2,
                            "deepracer_stack_eval_save_mp4": True})
        # As DRfC writes them: no MODEL_METADATA_FILE_S3_KEY, which the simapp fills in.
        return dc.evaluation_params(env, NOW)

    def processes(self) -> list[str]:
        """Containers of the fake whose process lives."""
        proc = subprocess.run([str(self.bin / "docker"), "ps", "--quiet"], env=self.env,
                              capture_output=True, text=True, check=True)
        return proc.stdout.split()


@pytest.fixture
def host(tmp_path, localbucket_bucket):
    bucket = localbucket_bucket.split("/")[2]
    made = Host(tmp_path, os.environ["RLOPS_S3_ENDPOINT_URL"], bucket)
    made.put("custom_files/reward_function.py", REWARD)
    made.put("custom_files/model_metadata.json", json.dumps(METADATA))
    made.put("custom_files/hyperparameters.json", json.dumps(HYPER))
    yield made
    for proc in made.supervisors:  # a test that failed half-way: its supervisor too
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for ident in made.processes():  # never leave a stand-in process behind
        record = json.loads((tmp_path / "docker" / "containers" / f"{ident}.json").read_text())
        os.killpg(record["pid"], signal.SIGKILL)


def supervise(host: Host, layout: SessionLayout) -> subprocess.Popen:
    with open(layout.root / "supervisor.out", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "rlops_runtime.cli", "run",
                                 "--session-dir", str(layout.root)], env=host.env, stdout=log,
                                stderr=log, start_new_session=True)
    host.supervisors.append(proc)
    return proc


def wait(what: str, check, timeout: float = 120.0, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = check()
        if answer:
            return answer
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout} s")


def test_train_spot_notice_increment_finish_evaluate(host, tmp_path, fake_imds):
    started = time.monotonic()
    host.env["RLOPS_IMDS_ENDPOINT"] = fake_imds.url  # conftest points it at a closed port
    layout = SessionLayout.for_session(tmp_path / "data", SESSION).create()
    config = new_config({
        "session_id": SESSION, "storage_uri": f"s3://{host.bucket}/sessions",
        "backend": "deepracer", "deepracer": host.plan("m1"), "notices": "imds",
        "imds_endpoint": fake_imds.url,
        "command": [sys.executable, "-m", "rlops_runtime.agents.deepracer", "train"],
        "sync_interval": 1, "stop_grace": 60, "final_sync_timeout": 10})
    write_json_atomic(layout.run_json, config)
    layout.storage_env.write_text(
        f"RLOPS_S3_ENDPOINT_URL={host.endpoint}\nAWS_ACCESS_KEY_ID=testing\n"
        "AWS_SECRET_ACCESS_KEY=testing\n")

    # --- train m1 until two session checkpoints are in storage
    proc = supervise(host, layout)

    def two_published():
        status = read_json(layout.status) or {}
        steps = [int(d) for d in os.listdir(layout.checkpoints) if d.isdigit()]
        return status if len(steps) >= 2 and status.get("last_synced_step") == max(
            steps) else None

    status = wait("two session checkpoints published", two_published, proc=proc)
    assert status["state"] == "running" and status["deepracer"]["model_prefix"] == "m1"
    assert status["deepracer"]["last_checkpoint"] and status["episodes"] >= 4
    assert host.processes(), "the stack runs"
    newest = layout.checkpoints / step_dirname(int((layout.checkpoints / "LATEST").read_text()))
    record = json.loads((newest / "rlops_deepracer.json").read_text())
    assert record["model_prefix"] == "m1" and record["base_step"] == 0
    assert (newest / "model" / f"{record['checkpoint']}.index").is_file()
    assert (newest / "model" / f"model_{record['checkpoint'].split('_')[0]}.pb").is_file()
    assert (newest / "manifest.json").is_file()
    assert f"sessions/{SESSION}/checkpoints/LATEST" in host.keys(f"sessions/{SESSION}/")
    mirror = layout.root / "deepracer" / "m1"
    assert json.loads((mirror / "metrics" / "TrainingMetrics.json").read_text())["metrics"]
    assert list((mirror / "training-simtrace").glob("*-iteration.csv"))
    trainer_files = list(host.sagemaker.glob("*/docker-compose.yaml"))
    assert len(trainer_files) == 1, "rl_coach started the trainer outside the project"

    # --- a spot notice: checkpoint, trainer and project stopped, final checkpoint, upload-model
    fake_imds.set_instance_action("terminate", "2026-12-07T09:30:00Z")
    assert proc.wait(timeout=120) == 0
    status = read_json(layout.status)
    assert status["state"] == "interrupted", status
    assert host.processes() == [], "the trainer rl_coach started is stopped too"
    assert b"" == host.get("m1/model/.finished")  # the trainer's own SIGTERM path
    uploaded = host.keys("uploads/m1/")
    chosen = json.loads(host.get("uploads/m1/model/deepracer_checkpoints.json"))
    name = chosen["last_checkpoint"]["name"]
    assert chosen["best_checkpoint"]["name"] == name
    assert host.get("uploads/m1/model/.coach_checkpoint").decode() == name
    for key in (f"model/{name}.index", "model_metadata.json", "model/model_metadata.json",
                "reward_function.py", "ip/hyperparameters.json", "training_params.yaml",
                "metrics/TrainingMetrics.json"):
        assert f"uploads/m1/{key}" in uploaded, key
    assert b"'SAGEMAKER_SHARED_S3_PREFIX': 'uploads/m1'" in host.get(
        "uploads/m1/training_params.yaml")
    m1_step = status["last_checkpoint_step"]
    assert status["last_synced_step"] == m1_step
    final = layout.checkpoints / step_dirname(m1_step)
    assert json.loads((final / "rlops_deepracer.json").read_text())["checkpoint"] == name, (
        "the model uploaded is the session's final checkpoint")

    layer = subprocess.run(
        [sys.executable, "-m", "rlops_runtime.cli", "session", "status", "--data-root",
         str(tmp_path / "data"), "--session", SESSION], env=host.env, capture_output=True,
        text=True, timeout=60, check=True)
    [record] = json.loads(layer.stdout)["records"]
    assert (record["state"], record["deepracer"]["model_prefix"]) == ("interrupted", "m1")

    # --- resume as an increment (on another host, as after a spot interruption): m2 from m1,
    # trains until the trainer finishes by itself
    fake_imds.clear("spot/instance-action")
    host.put("custom_files/hyperparameters.json",
             json.dumps({**HYPER, "term_cond_max_episodes": 8}))
    plan = plan_resume(read_json(layout.run_json),
                       {"deepracer": host.plan("m2", pretrained="m1")}, m1_step)
    assert plan.changes["deepracer"][1]["model_prefix"] == "m2"
    write_json_atomic(layout.run_json, plan.config)
    proc = supervise(host, layout)
    assert proc.wait(timeout=180) == 0
    status = read_json(layout.status)
    assert status["state"] == "completed", status
    assert status["deepracer"]["model_prefix"] == "m2" and status["deepracer"]["finished"]
    assert status["deepracer"]["pretrained_prefix"] == "m1"
    assert status["last_checkpoint_step"] > m1_step  # the session's count goes on
    assert status["episodes"] >= m1_step + 8  # m2 trains 8 episodes (term_cond_max_episodes)
    assert host.processes() == []
    newest = layout.checkpoints / step_dirname(int((layout.checkpoints / "LATEST").read_text()))
    assert json.loads((newest / "rlops_deepracer.json").read_text())["base_step"] == m1_step
    first = json.loads(host.get("m2/model/0_Step-0.ckpt.data-00000-of-00001"))
    assert first["pretrained_from"].startswith(f"s3://{host.bucket}/m1/model/")

    # --- evaluate m2: eval project up, robomaker waited for, metrics and MP4s copied
    params = host.evaluation_params("m2")
    host.put("m2/evaluation_params.yaml", dc.params_yaml(params))
    evaluated = subprocess.run(
        [sys.executable, "-m", "rlops_runtime.cli", "session", "evaluate", "--data-root",
         str(tmp_path / "data"), "--session", SESSION, "--episodes", "2", "--video"],
        env=host.env, capture_output=True, text=True, timeout=180, check=False)
    assert evaluated.returncode == 0, evaluated.stderr
    answer = json.loads(evaluated.stdout)
    result = answer["result"]
    assert result["episodes"] == 2 and result["model_prefix"] == "m2"
    assert result["mean_progress"] is not None and "note" not in result
    assert any(name.endswith(".mp4") for name in result["copied"])
    assert any(f.endswith(".mp4") for f in answer["files"])
    assert host.processes() == []

    # --- retrieve's pack brings the mirrored model data home
    packed = subprocess.run(
        [sys.executable, "-m", "rlops_runtime.cli", "session", "pack", "--data-root",
         str(tmp_path / "data"), "--session", SESSION, "--check"], input="{}",
        env=host.env, capture_output=True, text=True, timeout=60, check=False)
    files = json.loads(packed.stdout)["files"]
    for name in ("deepracer/m1/metrics/TrainingMetrics.json",
                 "deepracer/m2/model/deepracer_checkpoints.json",
                 "deepracer/m2/ip/hyperparameters.json", "deepracer/m2/training_params.yaml"):
        assert name in files, name
    assert any(f.startswith("deepracer/m1/training-simtrace/") for f in files)
    assert any(f.startswith("eval/") and f.endswith(".mp4") for f in files)
    print(f"deepracer run: {time.monotonic() - started:.1f} s")


def test_the_cli_starts_finds_and_stops_a_stack_without_a_session(host, tmp_path):
    """`rlops-run deepracer up|running|stop|upload-model --stack-stdin`, as the role's own
    start and stop entry points call it; a second stop changes nothing."""
    stack = host.plan("solo")

    def cli(action: str, *args: str, stack_obj: dict | None = None) -> tuple[int, dict, str]:
        proc = subprocess.run(
            [sys.executable, "-m", "rlops_runtime.cli", "deepracer", action, "--stack-stdin",
             *args], input=json.dumps({"deepracer": stack_obj or stack, "credentials": {
                 "RLOPS_S3_ENDPOINT_URL": host.endpoint}}),
            env=host.env, capture_output=True, text=True, timeout=120, check=False)
        return proc.returncode, json.loads(proc.stdout) if proc.stdout else {}, proc.stderr

    code, answer, err = cli("up", "--check")
    assert code == 0 and answer["changed"] and not host.processes(), err
    code, answer, err = cli("up")
    assert code == 0 and answer["changed"], err
    assert cli("up")[1]["changed"] is False  # running: nothing to do
    assert cli("running")[1]["running"] is True
    wait("the trainer rl_coach starts", lambda: list(host.sagemaker.glob("*/docker-compose.yaml")))
    wait("the model's first checkpoint", lambda: "solo/model/deepracer_checkpoints.json" in
         host.keys("solo/model/"))
    code, answer, err = cli("upload-model", "--check")
    assert code == 0 and answer["target"] == f"s3://{host.bucket}/uploads/solo", err
    assert answer["changed"] is False and not host.keys("uploads/solo/")
    code, answer, err = cli("stop", "--check")
    [trainer] = answer["trainers"]
    assert code == 0 and trainer["running"] and host.processes(), err
    assert trainer["config_files"][0].startswith(f"{host.sagemaker}/tmp")
    code, answer, err = cli("stop")
    assert code == 0 and answer["changed"] and answer["trainers"] == [trainer], err
    assert host.processes() == [], "the trainer, then the project"
    assert host.get("solo/model/.finished") == b""  # the trainer's SIGTERM path
    assert cli("running")[1]["running"] is False
    code, answer, err = cli("stop")
    assert code == 0 and answer["changed"] is False and answer["trainers"] == [], err
    code, answer, err = cli("up", stack_obj={**stack, "run_id": -1})
    assert code == 2 and "run_id must be an integer >= 0" in err
