#!/usr/bin/env python
"""rl_coach: the stand-in of docker/files/rl-coach/start.py (deepracer-simapp).

The same environment and the same hyperparameter merge as the real start.py; where it calls
the SageMaker SDK's Estimator(...).fit() in local mode, this does what local mode does: a
folder under local.container_root (/tmp/sagemaker) with the config files and a
docker-compose.yaml for one training container algo-1-<5 chars> on the network
sagemaker-local, brought up with docker-compose through the docker socket. The trainer
is therefore not part of the stack's compose project.
"""

import io
import json
import os
import random
import shutil
import string
import subprocess
import sys
import tempfile

import boto3
import yaml

sys.path.insert(0, "/opt/ml/code")

CONTAINER_PREFIX = "algo"
DOCKER_COMPOSE_FILENAME = "docker-compose.yaml"


def str2bool(v):
    return v.lower() in ("yes", "true", "t", "1")


def container_root_dir():
    path = os.path.expanduser("~/.sagemaker/config.yaml")
    if os.path.exists(path):
        with open(path) as handle:
            root = ((yaml.safe_load(handle) or {}).get("local") or {}).get("container_root")
        if root:
            return os.path.abspath(root)
    return None


def compose_command():
    """sagemaker<3 prefers `docker compose` v2 and falls back to docker-compose."""
    try:
        out = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True,
                             check=False).stdout
    except FileNotFoundError:
        out = ""
    if "v2" in out:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise ImportError("'docker compose' is not installed: local mode needs it")


def local_fit(image, instance_type, hyperparameters, env_var, job_name, boto_session,
              endpoint_url):
    root = tempfile.mkdtemp(dir=container_root_dir())
    suffix = "".join(random.choice(string.ascii_lowercase + string.digits) for _i in range(5))
    host = f"{CONTAINER_PREFIX}-1-{suffix}"
    for sub in ("output", "output/data", "shared", "model", host + "/input/config",
                host + "/output", host + "/model"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    config = os.path.join(root, host, "input", "config")
    with open(os.path.join(config, "hyperparameters.json"), "w") as handle:
        json.dump({k: json.dumps(v) for k, v in hyperparameters.items()}, handle)
    with open(os.path.join(config, "resourceconfig.json"), "w") as handle:
        json.dump({"current_host": host, "hosts": [host]}, handle)
    with open(os.path.join(config, "inputdataconfig.json"), "w") as handle:
        json.dump({}, handle)
    creds = boto_session.get_credentials()
    environment = []
    if creds is not None:
        environment += [f"AWS_ACCESS_KEY_ID={creds.access_key}",
                        f"AWS_SECRET_ACCESS_KEY={creds.secret_key}"]
    training_env = {"AWS_REGION": boto_session.region_name, "TRAINING_JOB_NAME": job_name,
                    "S3_ENDPOINT_URL": endpoint_url or ""}
    environment += ["{}={}".format(*kv) for kv in {**training_env, **env_var}.items()]
    volumes = [f"{os.path.join(root, host, sub)}:/opt/ml/{sub}"
               for sub in ("output", "output/data", "input")]
    volumes.append("{}:/opt/ml/model".format(os.path.join(root, "model")))
    service = {"image": image, "stdin_open": True, "tty": True, "volumes": volumes,
               "environment": environment, "command": "train",
               "networks": {"sagemaker-local": {"aliases": [host]}}}
    if instance_type == "local_gpu":
        service["deploy"] = {"resources": {"reservations": {"devices": [
            {"count": "all", "capabilities": ["gpu"]}]}}}
    content = {"version": "2.3", "services": {host: service},
               "networks": {"sagemaker-local": {"name": "sagemaker-local"}}}
    compose_file = os.path.join(root, DOCKER_COMPOSE_FILENAME)
    with open(compose_file, "w") as handle:
        yaml.dump(content, handle, default_flow_style=False)
    command = compose_command() + ["-f", compose_file, "up", "--build",
                                   "--abort-on-container-exit"]
    print(f"Trying to launch image: {image}", flush=True)
    print("docker command: {}".format(" ".join(command)), flush=True)
    code = subprocess.call(command)
    if code != 0:
        raise RuntimeError(f"Failed to run: {command}, Process exited with code: {code}")
    print("===== Job Complete =====", flush=True)


def main():
    boto_session = boto3.session.Session(region_name=os.environ.get("AWS_REGION", "us-east-1"))
    endpoint_url = os.environ.get("S3_ENDPOINT_URL", None)
    if endpoint_url == "":
        s3_client = boto_session.client("s3")
    else:
        s3_client = boto_session.client("s3", endpoint_url=endpoint_url)
    aws_region = boto_session.region_name

    s3_bucket = os.environ.get("MODEL_S3_BUCKET", None)
    s3_prefix = os.environ.get("MODEL_S3_PREFIX", None)
    pretrained = str2bool(os.environ.get("PRETRAINED", "False"))
    s3_pretrained_bucket = os.environ.get("PRETRAINED_S3_BUCKET", "bucket")
    s3_pretrained_prefix = os.environ.get("PRETRAINED_S3_PREFIX", "rl-deepracer-pretrained")
    hyperparameter_file = os.environ.get("HYPERPARAMETER_FILE_S3_KEY",
                                         "custom_files/hyperparameters.json")
    modelmetadata_file = os.environ.get("MODELMETADATA_FILE_S3_KEY",
                                        "custom_files/model_petadata.json")
    job_name = s3_prefix
    print(f"Model checkpoints and other metadata will be stored at: s3://{s3_bucket}/{job_name}")
    sagemaker_image = os.environ.get("SAGEMAKER_IMAGE", None)
    if not sagemaker_image:
        print("ERROR: No defined image.")
        return 1
    instance_type = "local_gpu" if sagemaker_image.find("gpu") >= 0 else "local"
    print(f"Using image {sagemaker_image}")

    hyperparameters_core = {
        "s3_bucket": s3_bucket,
        "s3_prefix": s3_prefix,
        "aws_region": aws_region,
        "model_metadata_s3_key": f"s3://{s3_bucket}/{modelmetadata_file}",
    }
    if pretrained:
        hyperparameters_core["pretrained_s3_bucket"] = f"{s3_pretrained_bucket}"
        hyperparameters_core["pretrained_s3_prefix"] = s3_pretrained_prefix
        hyperparameters_core["pretrained_checkpoint"] = os.environ.get("PRETRAINED_CHECKPOINT",
                                                                       "best")
    data = io.BytesIO()
    s3_client.download_fileobj(s3_bucket, hyperparameter_file, data)
    hyperparameters = {**hyperparameters_core, **json.loads(data.getvalue().decode("utf-8"))}
    print(f"Configured following hyperparameters:\n{hyperparameters}", flush=True)

    env_var = {"RUN_ID": os.environ.get("RUN_ID", "Unknown"), "SAGEMAKER_PROGRAM": "sage-train.sh"}
    telegraf_host = os.environ.get("TELEGRAF_HOST", None)
    if telegraf_host is not None:
        env_var["TELEGRAF_HOST"] = telegraf_host
        env_var["TELEGRAF_PORT"] = os.environ.get("TELEGRAF_PORT", "8092")
    max_memory_steps = os.environ.get("MAX_MEMORY_STEPS", "")
    if max_memory_steps.isdigit():
        env_var["MAX_MEMORY_STEPS"] = max_memory_steps
    if instance_type == "local_gpu":
        devices = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        if devices:
            env_var["CUDA_VISIBLE_DEVICES"] = devices
    local_fit(sagemaker_image, instance_type, hyperparameters, env_var, job_name, boto_session,
              endpoint_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
