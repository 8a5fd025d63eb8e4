"""End to end: DRfC's own compose files run the stand-in simapp image in Docker inside a
privileged lab host (tests/deepracer/README.md).

train (rl_coach starts the trainer through the docker socket, outside the stack's compose
project) -> the stack's `compose down` leaves the trainer running (the trap) -> the
trainer stopped through its compose file under /tmp/sagemaker writes .finished ->
increment (PRETRAINED from the last checkpoint, a new prefix) runs to its termination
condition -> evaluation with MP4. Checks every S3 key the simapp writes.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from docker_lab import SIMAPP_IMAGE, DockerLab
from dr_inputs import BUCKET, HYPER, METADATA, REWARD, eval_yaml, training_yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUILD = HERE / "simapp" / "build.sh"
DRFC = HERE / "drfc"
PROJECT = "deepracer-0"
KEYS = {"DR_LOCAL_ACCESS_KEY_ID": "standinkey", "DR_LOCAL_SECRET_ACCESS_KEY": "standinsecret"}

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("podman") is None,
    reason="needs root and podman (tests/lab/lab.sh setup)")

CKPT = re.compile(r"^(\d+)_Step-(\d+)\.ckpt$")

# S3 inside the lab host: the `minio` container (localbucket) on sagemaker-local, used from
# inside it with boto3 (nothing is published on the host).
S3_CODE = r'''
import base64, json, sys, boto3
args = json.loads(base64.b64decode(sys.argv[1]))
s3 = boto3.client("s3", endpoint_url="http://localhost:9000", region_name="us-east-1",
                  aws_access_key_id="k", aws_secret_access_key="s")
op = args["op"]
if op == "put":
    s3.put_object(Bucket=args["bucket"], Key=args["key"], Body=args["body"].encode())
    print("{}")
elif op == "get":
    try:
        body = s3.get_object(Bucket=args["bucket"], Key=args["key"])["Body"].read()
        print(json.dumps(base64.b64encode(body).decode()))
    except s3.exceptions.NoSuchKey:
        print("null")
elif op == "list":
    keys, token = [], None
    while True:
        kw = {"Bucket": args["bucket"], "Prefix": args["prefix"]}
        if token:
            kw["ContinuationToken"] = token
        resp = s3.list_objects_v2(**kw)
        keys += [o["Key"] for o in resp.get("Contents", [])]
        token = resp.get("NextContinuationToken")
        if not token:
            break
    print(json.dumps(keys))
'''


class Stack:
    """The lab host's docker, its S3 and DRfC's compose commands."""

    def __init__(self, lab: DockerLab):
        self.lab = lab

    def s3(self, **args):
        payload = base64.b64encode(json.dumps(args).encode()).decode()
        out = self.lab.sh(f"docker exec -i minio python3 - {payload}", stdin=S3_CODE).stdout
        return json.loads(out)

    def put(self, key: str, body: str) -> None:
        self.s3(op="put", bucket=BUCKET, key=key, body=body)

    def get(self, key: str) -> bytes | None:
        got = self.s3(op="get", bucket=BUCKET, key=key)
        return None if got is None else base64.b64decode(got)

    def keys(self, prefix: str) -> list[str]:
        return self.s3(op="list", bucket=BUCKET, prefix=prefix)

    def wait(self, what, predicate, timeout: float = 240, every: float = 2):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                logs = self.lab.sh("docker ps -a; for c in $(docker ps -aq); do"
                                   " docker logs --tail 15 $c 2>&1; done", check=False).stdout
                raise AssertionError(f"timed out waiting for {what}\n{logs[-6000:]}")
            time.sleep(every)

    def compose(self, kind: str, args: str, env: dict[str, str], timeout: float = 300):
        """docker-compose (v1) with DRfC's files: the training or evaluation stack."""
        files = (f"-f docker/docker-compose-{kind}.yml -f docker/docker-compose-endpoint.yml"
                 " -f docker/docker-compose-keys.yml")
        exports = " ".join(f"{k}={json.dumps(v)}" for k, v in env.items())
        return self.lab.sh(f"cd /opt/drfc && env {exports} docker-compose {files} -p {PROJECT}"
                           f" {args}", timeout=timeout)

    def trainer_containers(self) -> list[str]:
        out = self.lab.sh("docker ps --format '{{.Names}}'").stdout.split()
        return [n for n in out if "algo-1-" in n]


def drfc_env(prefix: str, yaml_name: str, command: str, **extra: str) -> dict[str, str]:
    """What DRfC's activate.sh exports for these compose files (local S3 at minio:9000)."""
    name, version = SIMAPP_IMAGE.split(":")
    return {"DR_SIMAPP_SOURCE": name, "DR_SIMAPP_VERSION": version, "DR_RUN_ID": "0",
            "DR_AWS_APP_REGION": "us-east-1", "DR_LOCAL_S3_BUCKET": BUCKET,
            "DR_LOCAL_S3_MODEL_PREFIX": prefix, "DR_LOCAL_S3_PRETRAINED": "False",
            "DR_LOCAL_S3_PRETRAINED_PREFIX": "rl-sagemaker-pretrained",
            "DR_LOCAL_S3_PRETRAINED_CHECKPOINT": "last",
            "DR_LOCAL_S3_HYPERPARAMETERS_KEY": "custom_files/hyperparameters.json",
            "DR_LOCAL_S3_MODEL_METADATA_KEY": "custom_files/model_metadata.json",
            "DR_ROBOMAKER_TRAIN_PORT": "8080", "DR_ROBOMAKER_EVAL_PORT": "8180",
            "DR_ROBOMAKER_GUI_PORT": "5900", "DR_WORLD_NAME": "reInvent2019_track",
            "DR_CURRENT_PARAMS_FILE": yaml_name, "DR_KINESIS_STREAM_NAME": "",
            "DR_CAMERA_KVS_ENABLE": "False", "DR_GUI_ENABLE": "False",
            "DR_EVAL_DEBUG_REWARD": "False", "DR_MINIO_URL": "http://minio:9000",
            "ROBOMAKER_COMMAND": command, **KEYS, **extra}


def checkpoints(stack: Stack, prefix: str) -> dict[int, str]:
    names = {}
    for key in stack.keys(f"{prefix}/model/"):
        base = key.rsplit("/", 1)[1]
        if base.endswith(".ckpt.index") and CKPT.match(base[:-len(".index")]):
            names[int(base.split("_", 1)[0])] = base[:-len(".index")]
    return names


def check_model(stack: Stack, prefix: str, min_checkpoints: int) -> dict[int, str]:
    """The keys the real simapp writes under <prefix>/ during training."""
    keys = set(stack.keys(f"{prefix}/"))
    for key in ("ip/ip.json", "ip/done", "ip/hyperparameters.json", "model/model_metadata.json",
                "model/.coach_checkpoint", "model/deepracer_checkpoints.json", "model/.ready",
                "metrics/TrainingMetrics.json", "training-simtrace/0-iteration.csv"):
        assert f"{prefix}/{key}" in keys, (key, sorted(keys))
    assert re.match(r"^\d+\.\d+\.\d+\.\d+$", json.loads(stack.get(f"{prefix}/ip/ip.json"))["IP"])
    assert json.loads(stack.get(f"{prefix}/model/model_metadata.json")) == METADATA
    assert json.loads(stack.get(f"{prefix}/ip/hyperparameters.json"))[
        "num_episodes_between_training"] == 4
    names = checkpoints(stack, prefix)
    assert len(names) >= min_checkpoints, names
    assert len(names) <= 5, names  # the newest four and the best are kept
    for number, name in names.items():
        for suffix in (".index", ".data-00000-of-00001", ".meta"):
            assert f"{prefix}/model/{name}{suffix}" in keys
        assert f"{prefix}/model/model_{number}.pb" in keys
    coach = stack.get(f"{prefix}/model/.coach_checkpoint").decode().strip()
    assert coach in names.values(), (coach, names)
    doc = json.loads(stack.get(f"{prefix}/model/deepracer_checkpoints.json"))
    for which in ("best_checkpoint", "last_checkpoint"):
        assert set(doc[which]) == {"name", "avg_eval_metric", "time_stamp"}, doc
        assert doc[which]["name"] in names.values(), (doc, names)
    metrics = json.loads(stack.get(f"{prefix}/metrics/TrainingMetrics.json"))
    assert metrics["version"] == 2.0 and metrics["best_model_metric"] == "progress"
    phases = {m["phase"] for m in metrics["metrics"]}
    assert phases == {"training", "evaluation"}, phases
    for entry in metrics["metrics"]:
        assert set(entry) == {"reward_score", "metric_time", "start_time",
                              "elapsed_time_in_milliseconds", "episode", "trial", "phase",
                              "completion_percentage", "episode_status"}, entry
        assert 0 <= entry["completion_percentage"] <= 100
    trace = stack.get(f"{prefix}/training-simtrace/0-iteration.csv").decode().splitlines()
    assert trace[0] == ("episode,steps,X,Y,yaw,steer,throttle,action,reward,done,"
                        "all_wheels_on_track,progress,closest_waypoint,track_len,tstamp,"
                        "episode_status,pause_duration,obstacle_crash_counter,wall_clock")
    assert len(trace) > 10
    return names


def phase(name: str, started: list[float]) -> None:
    print(f"[deepracer-lab] {name}: {time.monotonic() - started[0]:.0f} s", flush=True)


def test_drfc_compose_runs_the_standin(tmp_path):
    started = [time.monotonic()]
    tar = Path(subprocess.run([str(BUILD)], capture_output=True, text=True, check=True,
                              timeout=900).stdout.strip())
    phase("image built or current", started)
    with DockerLab() as lab:
        assert lab.storage_driver == "overlay2"
        phase("docker host up", started)
        lab.load_simapp(tar)
        phase("image loaded", started)
        for yml in DRFC.glob("*.yml"):
            lab.copy_in(yml, f"/opt/drfc/docker/{yml.name}")
        # What the role must provide: the network with the labels the SDK's compose file
        # expects, /tmp/sagemaker on the host, and the S3 endpoint on that network.
        lab.sh("docker network create --label com.docker.compose.network=sagemaker-local"
               " --label com.docker.compose.project=sagemaker-local sagemaker-local >/dev/null"
               " && mkdir -p /tmp/sagemaker && chmod g+w /tmp/sagemaker")
        lab.sh(f"docker run -d --name minio --network sagemaker-local {SIMAPP_IMAGE}"
               f" 'mkdir -p /data/{BUCKET} && exec python3 /opt/localbucket/localbucket.py /data"
               " --host 0.0.0.0 --port 9000' >/dev/null")
        stack = Stack(lab)
        stack.wait("the S3 server", lambda: lab.sh("docker exec minio python3 -c \"import "
                                                   "urllib.request as u; u.urlopen('http://"
                                                   "localhost:9000/')\"", check=False
                                                   ).returncode == 0, timeout=60, every=1)
        stack.put("custom_files/reward_function.py", REWARD)
        stack.put("custom_files/model_metadata.json", json.dumps(METADATA))
        stack.put("custom_files/hyperparameters.json", json.dumps(HYPER))

        # ---- train m1 until three checkpoints after the first, then stop it as DRfC does
        stack.put("m1/training_params.yaml", training_yaml("m1"))
        stack.put("m1/reward_function.py", REWARD)
        train = "/opt/ml/code/run.sh run distributed_training.launch.py"
        env = drfc_env("m1", "training_params.yaml", train)
        stack.compose("training", "up -d --scale robomaker=1", env)
        stack.wait("three trained checkpoints", lambda: len(checkpoints(stack, "m1")) >= 4)
        stack.wait("a best checkpoint", lambda: stack.get("m1/model/deepracer_checkpoints.json"))
        trainers = stack.trainer_containers()
        assert len(trainers) == 1, trainers
        labels = json.loads(lab.sh(f"docker inspect --format '{{{{json .Config.Labels}}}}'"
                                   f" {trainers[0]}").stdout)
        assert labels["com.docker.compose.project"] != PROJECT
        compose_file = labels["com.docker.compose.project.config_files"]
        assert re.match(r"^/tmp/sagemaker/tmp[a-z0-9_]{8}/docker-compose\.yaml$", compose_file)
        content = lab.sh(f"cat {compose_file}").stdout
        assert "RUN_ID=0" in content and "m1" in content and "sagemaker-local" in content
        # The trap: the stack's own down leaves the trainer running.
        stack.compose("training", "down", env)
        assert stack.trainer_containers() == trainers
        assert "m1/model/.finished" not in stack.keys("m1/model/.finished")
        # DRfC's stop: the trainer's service through its compose file under /tmp/sagemaker.
        service = re.search(r"(algo-1-[a-z0-9]{5})", trainers[0]).group(1)
        lab.sh(f"docker-compose -f {compose_file} stop {service} && docker rm {trainers[0]}")
        assert stack.trainer_containers() == []
        assert stack.keys("m1/model/.finished") == ["m1/model/.finished"]
        names = check_model(stack, "m1", 4)
        last = json.loads(stack.get("m1/model/deepracer_checkpoints.json"))[
            "last_checkpoint"]["name"]
        last_state = json.loads(stack.get(f"m1/model/{last}.data-00000-of-00001"))
        assert last_state["skill"] > 0, last_state
        assert last_state["iteration"] == int(CKPT.match(last).group(1)), (last_state, names)

        phase("trained and stopped m1", started)
        # ---- increment: m2 from m1's last checkpoint, runs to its termination condition
        stack.put("custom_files/hyperparameters.json",
                  json.dumps({**HYPER, "term_cond_max_episodes": 8}))
        stack.put("m2/training_params.yaml", training_yaml("m2"))
        env = drfc_env("m2", "training_params.yaml", train, DR_LOCAL_S3_PRETRAINED="True",
                       DR_LOCAL_S3_PRETRAINED_PREFIX="m1")
        stack.compose("training", "up -d --scale robomaker=1", env)
        stack.wait("m2 to finish", lambda: stack.keys("m2/model/.finished"))
        stack.wait("rl_coach to end", lambda: "Job Complete" in lab.sh(
            f"docker logs {PROJECT}_rl_coach_1 2>&1", check=False).stdout)
        first = json.loads(stack.get("m2/model/0_Step-0.ckpt.data-00000-of-00001"))
        assert first["pretrained_from"] == f"s3://{BUCKET}/m1/model/{last}", first
        assert first["skill"] == last_state["skill"]
        check_model(stack, "m2", 3)
        stack.compose("training", "down", env)
        assert stack.trainer_containers() == []

        phase("increment m2 done", started)
        # ---- evaluation of m2 with MP4
        stamp = "20261207000000"
        stack.put("m2/evaluation_params.yaml", eval_yaml("m2", stamp))
        env = drfc_env("m2", "evaluation_params.yaml",
                       "/opt/ml/code/run.sh run evaluation.launch.py")
        stack.compose("eval", "up -d", env)
        key = f"m2/metrics/evaluation/evaluation-{stamp}.json"
        stack.wait("the evaluation", lambda: len(json.loads(stack.get(key) or b'{"metrics": []}')[
            "metrics"]) == 3 and stack.keys("m2/mp4/camera-topview/0-video.mp4"))
        metrics = json.loads(stack.get(key))["metrics"]
        assert [m["trial"] for m in metrics] == [1, 2, 3]
        assert set(metrics[0]) == {"completion_percentage", "metric_time", "start_time",
                                   "elapsed_time_in_milliseconds", "episode_status",
                                   "crash_count", "immobilized_count", "off_track_count",
                                   "reversed_count", "reset_count", "trial"}
        trace = stack.get(f"m2/evaluation-{stamp}/evaluation-simtrace/0-iteration.csv")
        assert trace.decode().startswith("episode,steps,X,Y,")
        for camera in ("camera-pip", "camera-45degree", "camera-topview"):
            assert stack.get(f"m2/mp4/{camera}/0-video.mp4")[4:8] == b"ftyp"
        stack.compose("eval", "down", env)
        phase("evaluation done", started)
