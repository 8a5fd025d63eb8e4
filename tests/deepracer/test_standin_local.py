"""The stand-in simapp's processes on this machine, without Docker: the trainer and a
rollout worker as local processes against localbucket on 127.0.0.1, then an evaluation.
Checks the S3 protocol between them and the keys they write (seconds; the same code runs
in the image, see test_simapp_standin.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import localbucket
import pytest
from dr_inputs import HYPER, METADATA, REWARD, eval_yaml, training_yaml

HERE = Path(__file__).resolve().parent
CODE = HERE / "simapp" / "files" / "opt" / "ml" / "code"
REPO = HERE.parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tracks_dir() -> Path:
    for folder in (REPO / "roles" / "deepracer_stack" / "files" / "tracks",
                   REPO.parent / "shared" / "deepracer" / "tracks",
                   Path("/work/shared/deepracer/tracks")):
        if list(folder.glob("*.npy")):
            return folder
    pytest.skip("no DeepRacer track files")


@pytest.fixture
def s3(tmp_path):
    port = free_port()
    (tmp_path / "s3" / "bucket").mkdir(parents=True)
    server = subprocess.Popen([sys.executable, localbucket.__file__, str(tmp_path / "s3"),
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="k", aws_secret_access_key="s")
    for _attempt in range(100):
        try:
            client.list_buckets()
            break
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.1)
    yield client, endpoint
    server.terminate()
    server.wait(timeout=10)


def env(endpoint: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "us-east-1", "APP_REGION": "us-east-1",
            "STANDIN_TRACKS_DIR": str(tracks_dir()), "STANDIN_MEMORY_PORT": str(free_port()),
            "PYTHONPATH": str(CODE), **extra}


def body(client, key: str) -> bytes:
    return client.get_object(Bucket="bucket", Key=key)["Body"].read()


def train(client, endpoint: str, prefix: str, *extra_args: str) -> None:
    client.put_object(Bucket="bucket", Key=f"{prefix}/training_params.yaml",
                      Body=training_yaml(prefix).replace("http://minio:9000", endpoint))
    e = env(endpoint, SAGEMAKER_SHARED_S3_BUCKET="bucket", SAGEMAKER_SHARED_S3_PREFIX=prefix,
            S3_YAML_NAME="training_params.yaml")
    trainer = subprocess.Popen(
        [sys.executable, "-m", "standin.trainer", "--s3_bucket", "bucket", "--s3_prefix", prefix,
         "--aws_region", "us-east-1", "--model_metadata_s3_key",
         "s3://bucket/custom_files/model_metadata.json", "--num_episodes_between_training", "4",
         "--term_cond_max_episodes", "12", "--lr", "0.0003", *extra_args],
        env=e, cwd=CODE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rollout = subprocess.run([sys.executable, "-m", "standin.robomaker",
                              "distributed_training.launch.py"], env=e, cwd=CODE,
                             capture_output=True, text=True, timeout=120, check=False)
    if rollout.returncode != 0:
        trainer.terminate()  # SIGTERM, as `docker-compose stop`: .finished, exit 0
    out = trainer.communicate(timeout=60)[0]
    assert trainer.returncode == 0 and rollout.returncode == 0, (out, rollout.stdout,
                                                                 rollout.stderr)


def test_train_increment_evaluate(s3):
    client, endpoint = s3
    client.put_object(Bucket="bucket", Key="custom_files/reward_function.py", Body=REWARD)
    client.put_object(Bucket="bucket", Key="custom_files/model_metadata.json",
                      Body=json.dumps(METADATA))
    client.put_object(Bucket="bucket", Key="custom_files/hyperparameters.json",
                      Body=json.dumps(HYPER))
    train(client, endpoint, "m1")
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="bucket", Prefix="m1/")["Contents"]}
    for key in ("ip/ip.json", "ip/done", "ip/hyperparameters.json", "model/.finished",
                "model/.ready", "model/.coach_checkpoint", "model/deepracer_checkpoints.json",
                "model/model_metadata.json", "model/0_Step-0.ckpt.index", "model/model_3.pb",
                "metrics/TrainingMetrics.json", "training-simtrace/2-iteration.csv"):
        assert f"m1/{key}" in keys, key
    assert body(client, "m1/model/.coach_checkpoint").decode().startswith("3_Step-")
    metrics = json.loads(body(client, "m1/metrics/TrainingMetrics.json"))["metrics"]
    assert [m["episode"] for m in metrics if m["phase"] == "training"] == list(range(1, 13))
    last = json.loads(body(client, "m1/model/deepracer_checkpoints.json"))["last_checkpoint"]

    train(client, endpoint, "m2", "--pretrained_s3_bucket", "bucket",
          "--pretrained_s3_prefix", "m1", "--pretrained_checkpoint", "last")
    first = json.loads(body(client, "m2/model/0_Step-0.ckpt.data-00000-of-00001"))
    assert first["pretrained_from"] == f"s3://bucket/m1/model/{last['name']}"

    client.put_object(Bucket="bucket", Key="m2/evaluation_params.yaml", Body=eval_yaml("m2", "1"))
    proc = subprocess.run([sys.executable, "-m", "standin.robomaker", "evaluation.launch.py"],
                          env=env(endpoint, MODEL_S3_BUCKET="bucket", MODEL_S3_PREFIX="m2",
                                  S3_YAML_NAME="evaluation_params.yaml"),
                          cwd=CODE, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(body(client, "m2/metrics/evaluation/evaluation-1.json"))["metrics"]) == 3
    assert body(client, "m2/mp4/camera-pip/0-video.mp4")[4:8] == b"ftyp"
    trace = body(client, "m2/evaluation-1/evaluation-simtrace/0-iteration.csv")
    assert trace.startswith(b"episode,")


def test_bad_reward_stops_the_worker(s3):
    client, endpoint = s3
    client.put_object(Bucket="bucket", Key="custom_files/reward_function.py",
                      Body="def reward_function(params):\n    return float('nan')\n")
    client.put_object(Bucket="bucket", Key="custom_files/model_metadata.json",
                      Body=json.dumps(METADATA))
    with pytest.raises(AssertionError, match="RewardFunctionError: reward_function returned nan"):
        train(client, endpoint, "bad")
    assert body(client, "bad/model/.finished") == b""  # the trainer's SIGTERM path
