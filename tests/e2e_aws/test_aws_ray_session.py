"""A Ray session with rollout workers on the AWS path through the real playbooks (moto server,
3 lab hosts of the lab's Ray image playing the instances: the head privileged, for its EBS
volume): train_new launches the head and 2 workers and starts the cluster over them, the
session on the head; status.json counts 3 nodes; stop takes the cluster and the session down
and terminates the workers (and, asked, the head and its volume).

Opt-in (RLOPS_AWS_RAY=1; ~3-4 min more on 2 cores): the Ray image is built by `make lab-ray`
(tests/lab/lab.sh ray-image), and the Ray cluster itself is tests/lab_ray's;
test_aws_rollout_workers.py covers the provider's side in every `make aws-e2e`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from awslab import REGION, TRAINER_VENV, AwsPlaybooks, EbsBridge, Lab, log
from harness import has_checkpoint
from lab_hosts import LAB_RAY_VARS, copy_runtime

IMAGE = "localhost/rlops-lab-ray:bookworm"
KEY = "rlops-ray-e2e"


@pytest.fixture
def ray_lab():
    if os.environ.get("RLOPS_AWS_RAY") != "1":
        pytest.skip("opt-in: RLOPS_AWS_RAY=1 (needs the lab's Ray image, make lab-ray)")
    if os.geteuid() != 0 or shutil.which("podman") is None:
        pytest.skip("lab hosts need root and podman (tests/lab/lab.sh setup)")
    if subprocess.run(["podman", "image", "exists", IMAGE], check=False).returncode != 0:
        pytest.skip(f"no {IMAGE}: tests/lab/lab.sh ray-image")
    state_dir = Path(tempfile.mkdtemp(prefix="rlops-aws-ray."))
    lab = Lab(state_dir, f"rlops-aws-ray-{os.getpid()}")
    try:
        lab.lab("up", "3", "--name", lab.prefix, "--privileged", "--image", IMAGE,
                "--timeout", "300", timeout=900)
        yield lab
    finally:
        lab.down()
        shutil.rmtree(state_dir, ignore_errors=True)


def live(ec2, session) -> dict:
    found = ec2.describe_instances(Filters=[
        {"Name": "tag:rlops:session", "Values": [session]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return {i["InstanceId"]: i for r in found["Reservations"] for i in r["Instances"]}


def test_ray_session_with_rollout_workers(ray_lab, ec2, ami, moto_url, tmp_path):
    started = time.monotonic()
    lab = ray_lab
    plays = {"head": lab.host(1), "rollout1": lab.host(2), "rollout2": lab.host(3)}
    ports = {key: lab.ssh_port(host) for key, host in plays.items()}
    which = "rlops_aws_instance.role ~ (rlops_aws_instance.slot | default('', true))"
    playbooks = AwsPlaybooks(moto_url, tmp_path, lab=lab, extra={
        **LAB_RAY_VARS, **TRAINER_VENV,
        "rlops_backend": "ray", "trainer_pip_extra_args": "--no-index",
        "trainer_runtime_source_path": str(copy_runtime(tmp_path / "runtime")),
        "ray_cluster_num_cpus": 1, "trainer_total_timesteps": 10_000_000,
        "trainer_checkpoint_interval": 2000,
        "trainer_hyperparameters": {"n_steps": 500, "n_envs": 1, "batch_size": 125,
                                    "n_epochs": 2},
        "rlops_storage_uri": "file:///mnt/rlops/rlops/storage",
        "rlops_results_dir": str(tmp_path / "results"), "rlops_aws_region": REGION,
        "rlops_aws_image_id": ami, "rlops_aws_instance_types": ["g4dn.xlarge"],
        "rlops_aws_rollout_workers": 2, "rlops_aws_rollout_instance_types": ["c6i.large"],
        "rlops_aws_iam_instance_profile": "", "rlops_aws_key_name": KEY,
        "rlops_aws_ssh_cidr": "127.0.0.1/32", "rlops_aws_public_key_file": str(lab.key) + ".pub",
        "rlops_aws_volume_size": 4, "rlops_aws_poll_interval": 0.5,
        "rlops_aws_connect": dict(lab.connect(lab.host(1)), ansible_port=(
            "{{ " + json.dumps(ports) + "[" + which + "] }}"))})
    session = "ray-aws-" + time.strftime("%Y%m%dt%H%M%Sz", time.gmtime())
    bridge = EbsBridge(ec2, lab, session)
    bridge.target = plays["head"]
    bridge.start()
    try:
        out = playbooks.run("train_new", rlops_session=session).stdout
        assert bridge.error is None, bridge.error
        heads = [i for i in live(ec2, session).values()
                 if {"Key": "rlops:role", "Value": "head"} in i["Tags"]]
        assert len(live(ec2, session)) == 3 and len(heads) == 1, live(ec2, session)
        head = heads[0]["InstanceId"]
        status = playbooks.wait(session, lambda s: has_checkpoint(s) and s.get("nodes") == 3,
                                300, "checkpointed, three nodes", host=plays["head"])
        assert status["state"] == "running", status
        log(f"train_new + 3 nodes + a checkpoint: {time.monotonic() - started:.0f} s")

        out = playbooks.run("stop", rlops_session=session, rlops_aws_terminate=True,
                            rlops_aws_delete_volume=True).stdout
        assert "rollout workers: terminated" in out, out[-3000:]
        assert f"instance: terminated {head}" in out, out[-3000:]
        assert live(ec2, session) == {}
    finally:
        bridge.stop()
        try:
            ec2.delete_key_pair(KeyName=KEY)
        except Exception:  # noqa: BLE001 - best effort: the moto server is the tests'
            pass
    log(f"ray session with rollout workers on AWS: {time.monotonic() - started:.0f} s")
