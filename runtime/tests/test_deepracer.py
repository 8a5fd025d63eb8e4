"""rlops_runtime.deepracer's decisions (no Docker, no S3): the compose command lines, the
trainer rl_coach starts found by its SageMaker compose file's content, the model's state
from its checkpoints json and metrics, DRfC's params YAML, upload-model's plan, the
evaluation's answer; and the driver's step arithmetic (agents/deepracer.py)."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest
import yaml
from rlops_runtime import deepracer as dr
from rlops_runtime import session_contract as contract
from rlops_runtime.agents.deepracer import checkpoint_step, resume_base, simtrace_to_fetch

CODE = Path(__file__).resolve().parents[2] / "tests" / "deepracer" / "simapp" / "files" / "opt" \
    / "ml" / "code"
STACK = {"project": "deepracer-7", "eval_project": "deepracer-eval-7",
         "compose_command": ["docker-compose"], "compose_dir": "/srv/dr/compose",
         "sagemaker_dir": "/tmp/sagemaker", "run_id": 7, "model_prefix": "m1",
         "bucket": "bucket", "metrics_prefix": "m1/metrics"}


def sdk_compose_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_id: str,
                     prefix: str) -> tuple[str, str]:
    """The compose file the stand-in's rl_coach writes as SageMaker local mode does (its own
    code, the call to compose replaced): (path, text)."""
    spec = importlib.util.spec_from_file_location("standin_start", CODE / "rl_coach" / "start.py")
    start = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(start)
    root = tmp_path / "sagemaker"
    root.mkdir(exist_ok=True)
    monkeypatch.setattr(start, "container_root_dir", lambda: str(root))
    monkeypatch.setattr(start, "compose_command", lambda: ["docker-compose"])
    monkeypatch.setattr(start.subprocess, "call", lambda command: 0)

    class Session:
        region_name = "us-east-1"

        def get_credentials(self):
            return None

    start.local_fit("simapp:6.0.4-cpu", "local", {"s3_prefix": prefix},
                    {"RUN_ID": run_id, "SAGEMAKER_PROGRAM": "sage-train.sh"}, prefix, Session(),
                    "http://minio:9000")
    path = max(root.glob("*/docker-compose.yaml"), key=lambda p: p.stat().st_mtime_ns)
    return str(path), path.read_text()


def test_the_stack_from_run_json_and_its_command_lines():
    stack = dr.Stack.from_dict(STACK)
    assert stack.training_file == Path("/srv/dr/compose/training.yml")
    assert dr.compose_argv(["docker", "compose"], [stack.training_file], "deepracer-7", "up",
                           "--detach") == [
        "docker", "compose", "--project-name", "deepracer-7", "--file",
        "/srv/dr/compose/training.yml", "up", "--detach"]
    assert dr.docker_ps_argv(["docker-compose"], "deepracer-eval-7", "robomaker") == [
        "docker", "ps", "--quiet", "--filter", "label=com.docker.compose.project=deepracer-eval-7",
        "--filter", "label=com.docker.compose.service=robomaker"]
    assert dr.docker_ps_argv(["/usr/bin/docker", "compose"], "p")[0] == "/usr/bin/docker"
    with pytest.raises(dr.DeepRacerError, match="run.json: deepracer: missing bucket"):
        dr.Stack.from_dict({k: v for k, v in STACK.items() if k != "bucket"})


def inspected(path: str, text: str, running: bool = True) -> dict:
    """`docker inspect` of the container compose makes of an SDK compose file: its labels and
    the file's environment."""
    [(name, service)] = yaml.safe_load(text)["services"].items()
    project = Path(path).parent.name
    return {"Id": f"id-{project}", "Name": f"/{project}_{name}_1",
            "Config": {"Labels": {"com.docker.compose.project": project,
                                  "com.docker.compose.service": name,
                                  "com.docker.compose.project.config_files": path},
                       "Env": service["environment"]},
            "State": {"Running": running}}


def test_the_trainer_is_found_by_its_compose_labels_run_id_and_model_prefix(
        tmp_path, monkeypatch):
    """session_contract.trainer_containers: the runtime's stop and deepracer_stack's stop
    entry point (filter deepracer_trainer_containers) share it; its cases live here."""
    root = tmp_path / "sagemaker"
    mine = sdk_compose_text(tmp_path, monkeypatch, "7", "m1")
    other_run = sdk_compose_text(tmp_path, monkeypatch, "70", "m1")  # DRfC's grep: 7 in 70
    other_model = sdk_compose_text(tmp_path, monkeypatch, "7", "m10")  # DRfC's grep: m1 in m10
    stack_rl_coach = {"Id": "rl", "Name": "/deepracer-7_rl_coach_1", "State": {"Running": True},
                      "Config": {"Labels": {"com.docker.compose.project.config_files":
                                            "/srv/dr/compose/training.yml"},
                                 "Env": ["RUN_ID=7", "TRAINING_JOB_NAME=m1"]}}
    # Docker answers null for a container without labels or environment.
    bare = {"Id": "bare", "Name": "/bare", "State": {}, "Config": {"Labels": None, "Env": None}}
    # One of its files outside the sagemaker dir: not the SDK's.
    mixed = inspected(*mine)
    mixed["Id"], mixed["Name"] = "mixed", "/mixed"
    mixed["Config"]["Labels"][contract.CONFIG_FILES_LABEL] = f"{mine[0]},/srv/override.yml"
    records = [inspected(*mine), inspected(*other_run), inspected(*other_model, running=False),
               stack_rl_coach, bare, mixed]
    found = contract.trainer_containers(records, root, 7, "m1")
    assert [(t["id"], t["config_files"], t["running"]) for t in found] == [
        (f"id-{Path(mine[0]).parent.name}", [mine[0]], True)]
    assert found[0]["name"].startswith(f"{Path(mine[0]).parent.name}_")  # docker's '/' off
    # The folders are the SDK's mkdtemp, not named after the job: found by content only.
    assert Path(mine[0]).parent.name.startswith("tmp")
    assert [t["running"] for t in contract.trainer_containers(records, root, 7, "m10")] == [False]
    # Ansible's settings are strings; a trailing '/' on the folder is the same folder.
    assert [t["id"] for t in contract.trainer_containers(records, f"{root}/", "70", "m1")] == [
        f"id-{Path(other_run[0]).parent.name}"]
    assert contract.trainer_containers(records, root, 9, "m1") == []
    assert contract.trainer_containers(records, "/elsewhere", 7, "m1") == []
    assert contract.trainer_containers(records, str(root)[:-1], 7, "m1") == []  # not a folder
    assert contract.trainer_containers([], root, 7, "m1") == []
    assert contract.container_environment(["A=1", "B=x=y", "C"]) == {
        "A": "1", "B": "x=y", "C": ""}
    assert dr.trainer_containers is contract.trainer_containers  # one rule, the runtime's stop


def test_model_state_from_its_checkpoints_json_and_metrics():
    doc = {"last_checkpoint": {"name": "3_Step-120.ckpt", "avg_eval_metric": 40.0},
           "best_checkpoint": {"name": "2_Step-80.ckpt"}}
    assert dr.checkpoint_names(doc) == {"last": "3_Step-120.ckpt", "best": "2_Step-80.ckpt"}
    assert dr.checkpoint_names(None) == {"last": None, "best": None}
    assert dr.checkpoint_number("3_Step-120.ckpt") == 3
    assert dr.checkpoint_number("model_3.pb") is None

    def entry(episode, reward, progress, phase="training"):
        return {"episode": episode, "reward_score": reward, "completion_percentage": progress,
                "phase": phase}

    metrics = {"metrics": [entry(1, 10, 20), entry(2, 20, 40), entry(0, 99, 99, "evaluation"),
                           entry(3, 30, 60), entry(4, 50, 80), entry(5, 70, 100)]}
    assert dr.training_summary(metrics, 2) == {"episodes": 5, "iteration": 2,
                                               "mean_return": 40.0, "progress": 70.0}
    assert dr.training_summary(metrics, None) == {"episodes": 5, "iteration": None,
                                                  "mean_return": 36.0, "progress": 60.0}
    assert dr.training_summary({}, 4)["episodes"] == 0


def test_checkpoint_keys_are_its_files_and_frozen_graph():
    keys = [f"m1/model/{n}" for n in (
        "3_Step-120.ckpt.index", "3_Step-120.ckpt.meta", "3_Step-120.ckpt.data-00000-of-00001",
        "30_Step-999.ckpt.index", "model_3.pb", "model_30.pb", "deepracer_checkpoints.json")]
    assert dr.checkpoint_keys(keys, "m1", "3_Step-120.ckpt") == sorted(keys[:3] + [keys[4]])


def test_params_yaml_as_drfc_writes_it_round_trips():
    text = ("---\n'CAR_COLOR':\n- 'Black'\n'METRICS_S3_OBJECT_KEY': 'm1/metrics/x.json'\n"
            "'NUMBER_OF_TRIALS': '3'\n'RACER_NAME': 'it''s me'\n")
    doc = dr.parse_params(text)
    assert doc == {"CAR_COLOR": ["Black"], "METRICS_S3_OBJECT_KEY": "m1/metrics/x.json",
                   "NUMBER_OF_TRIALS": "3", "RACER_NAME": "it's me"}
    assert dr.render_params(doc) == text
    with pytest.raises(dr.DeepRacerError, match="is not DRfC's form"):
        dr.parse_params("KEY: value\n")
    moved = dr.retarget_params({"SAGEMAKER_SHARED_S3_BUCKET": "bucket",
                                "SAGEMAKER_SHARED_S3_PREFIX": "m1", "WORLD_NAME": "x",
                                "METRICS_S3_OBJECT_KEY": "m1/metrics/TrainingMetrics.json"},
                               "away", "models/m1")
    assert moved == {"SAGEMAKER_SHARED_S3_BUCKET": "away", "SAGEMAKER_SHARED_S3_PREFIX":
                     "models/m1", "WORLD_NAME": "x",
                     "METRICS_S3_OBJECT_KEY": "models/m1/metrics/TrainingMetrics.json"}


def test_upload_plan_is_dr_upload_models_layout():
    keys = ["m1/model/2_Step-80.ckpt.index", "m1/model/2_Step-80.ckpt.meta",
            "m1/model/3_Step-120.ckpt.index", "m1/model/model_2.pb", "m1/model/model_3.pb",
            "m1/model/model_metadata.json", "m1/ip/hyperparameters.json",
            "m1/reward_function.py", "m1/metrics/TrainingMetrics.json"]
    doc = {"last_checkpoint": {"name": "3_Step-120.ckpt"},
           "best_checkpoint": {"name": "2_Step-80.ckpt", "avg_eval_metric": 9.5}}
    plan = dr.upload_plan("m1", "models/m1", keys, doc, "best")
    assert plan["checkpoint"] == "2_Step-80.ckpt"
    assert dict(plan["copy"]) == {
        "m1/model/2_Step-80.ckpt.index": "models/m1/model/2_Step-80.ckpt.index",
        "m1/model/2_Step-80.ckpt.meta": "models/m1/model/2_Step-80.ckpt.meta",
        "m1/model/model_2.pb": "models/m1/model/model_2.pb",
        "m1/model/model_metadata.json": "models/m1/model_metadata.json",
        "m1/reward_function.py": "models/m1/reward_function.py",
        "m1/ip/hyperparameters.json": "models/m1/ip/hyperparameters.json",
        "m1/metrics/TrainingMetrics.json": "models/m1/metrics/TrainingMetrics.json"}
    assert ["m1/model/model_metadata.json", "models/m1/model/model_metadata.json"] in plan["copy"]
    chosen = {"name": "2_Step-80.ckpt", "avg_eval_metric": 9.5}
    assert json.loads(plan["write"]["models/m1/model/deepracer_checkpoints.json"]) == {
        "last_checkpoint": chosen, "best_checkpoint": chosen}
    assert plan["write"]["models/m1/model/.coach_checkpoint"] == "2_Step-80.ckpt"
    with pytest.raises(dr.DeepRacerError, match="missing m1/reward_function.py"):
        dr.upload_plan("m1", "t", [k for k in keys if "reward" not in k], doc)
    with pytest.raises(dr.DeepRacerError, match="names no last checkpoint"):
        dr.upload_plan("m1", "t", keys, {})
    with pytest.raises(dr.DeepRacerError, match="has no files under m1/model/"):
        dr.upload_plan("m1", "t", keys, {"last_checkpoint": {"name": "1_Step-9.ckpt"}})


def test_evaluation_result_from_eval_metrics():
    doc = {"metrics": [
        {"trial": 1, "completion_percentage": 100, "elapsed_time_in_milliseconds": 12500,
         "episode_status": "Lap complete", "off_track_count": 0, "crash_count": 0},
        {"trial": 2, "completion_percentage": 40, "elapsed_time_in_milliseconds": 5000,
         "episode_status": "Off track", "off_track_count": 1, "crash_count": 0},
        {"trial": 3, "completion_percentage": 100, "elapsed_time_in_milliseconds": 11000,
         "episode_status": "Lap complete", "off_track_count": 0, "crash_count": 0}]}
    result = dr.evaluation_result(doc)
    assert (result["episodes"], result["mean_progress"], result["laps_completed"],
            result["mean_lap_time"], result["best_lap_time"]) == (3, 80.0, 2, 11.75, 11.0)
    assert [row["lap_time"] for row in result["trials"]] == [12.5, None, 11.0]
    assert dr.evaluation_result({})["mean_progress"] is None


def test_evaluation_keys_from_the_params_yaml():
    stack = dr.Stack.from_dict(STACK)
    keys = dr.evaluation_keys({"METRICS_S3_OBJECT_KEY": ["m1/metrics/evaluation/e-1.json"],
                               "NUMBER_OF_TRIALS": "5", "MP4_S3_BUCKET": ["bucket"],
                               "MP4_S3_OBJECT_PREFIX": ["m1/mp4"], "EVAL_CHECKPOINT": "best",
                               "SIMTRACE_S3_PREFIX": ["m1/evaluation-1"]}, stack)
    assert (keys.metrics_key, keys.trials, keys.mp4_prefix, keys.checkpoint) == (
        "m1/metrics/evaluation/e-1.json", 5, "m1/mp4", "best")
    assert dr.evaluation_keys({"METRICS_S3_OBJECT_KEY": "k"}, stack).mp4_prefix is None
    with pytest.raises(dr.DeepRacerError, match="has no METRICS_S3_OBJECT_KEY"):
        dr.evaluation_keys({}, stack)


def test_the_sessions_step_continues_across_an_increment():
    assert resume_base(None, "m1") == (0, None)
    same = {"model_prefix": "m1", "base_step": 0, "step": 12, "checkpoint": "3_Step-1.ckpt"}
    assert resume_base(same, "m1") == (0, "3_Step-1.ckpt")
    assert resume_base(same, "m2") == (12, None)  # the increment's model starts after 12
    assert checkpoint_step(12, 4, None) == 16
    assert checkpoint_step(12, 4, 16) == 17  # a request with no new episodes: still new
    assert checkpoint_step(0, 8, 3) == 8


def test_training_minutes_left():
    start = time.monotonic()
    assert dr.wait_seconds(start, None) is None
    assert 59 < dr.wait_seconds(start, 1) <= 60
    assert dr.wait_seconds(start - 120, 1) < 0


def test_simtrace_fetches_the_new_ones_and_the_newest_again():
    keys = [f"m1/training-simtrace/{i}-iteration.csv" for i in (0, 1, 2, 10)]
    assert simtrace_to_fetch(keys, set()) == [keys[0], keys[1], keys[2], keys[3]]
    assert simtrace_to_fetch(keys, set(keys)) == [keys[3]]
    assert simtrace_to_fetch(keys, set(keys[:2])) == [keys[2], keys[3]]
