"""Bad input on the AWS path ends the playbook with one clear message, before anything is
created in AWS (moto only, no lab hosts: nothing gets as far as SSH). The runs go four at
a time: each is an ansible-playbook start, which dominates their time."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from awslab import REGION, AwsPlaybooks

SESSION = "bad-input-20261122t080000z"
# No instance is ever reached: the address only satisfies the tests' network rule.
NOWHERE = {"ansible_host": "127.0.0.1", "ansible_port": 9}
PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHV0n7CwvN9bLk1Uf2V3Yk1xh1JtF1C4Qmy9gqYkKx3g "
              "bad-input\n")


def inventory_of_aws(ec2) -> dict:
    """Everything the playbooks could create, to compare before and after the runs."""
    return {
        "instances": {i["InstanceId"] for r in ec2.describe_instances()["Reservations"]
                      for i in r["Instances"]},
        "volumes": {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]},
        "groups": {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]},
        "keys": {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]},
        "snapshots": {s["SnapshotId"]
                      for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]},
    }


def volume_in(ec2, zone: str) -> str:
    volume_id = ec2.create_volume(AvailabilityZone=zone, Size=8)["VolumeId"]
    deadline = time.monotonic() + 30
    while ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"] != "available":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return volume_id


@pytest.fixture(scope="module")
def refusals(moto_url, ami, ec2, tmp_path_factory):
    """{case: (output, expected message)}, and what AWS held before and after all runs."""
    workdir = tmp_path_factory.mktemp("bad-input")
    key = workdir / "id.pub"
    key.write_text(PUBLIC_KEY)
    playbooks = AwsPlaybooks(moto_url, workdir, {
        "rlops_aws_region": REGION, "rlops_aws_image_id": ami,
        "rlops_aws_instance_types": ["g4dn.xlarge"], "rlops_aws_iam_instance_profile": "",
        "rlops_aws_ssh_cidr": "127.0.0.1/32", "rlops_aws_public_key_file": str(key),
        "rlops_aws_connect": NOWHERE, "rlops_aws_poll_interval": 0.2,
        "rlops_storage_uri": "s3://rlops-bad-input/sessions", "rlops_storage_credentials": {}})

    elsewhere = volume_in(ec2, "us-east-1a")
    other = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                              Placement={"AvailabilityZone": "us-east-1a"}
                              )["Instances"][0]["InstanceId"]
    held = volume_in(ec2, "us-east-1a")
    ec2.attach_volume(VolumeId=held, InstanceId=other, Device="/dev/sdg")
    # A session whose instance is gone: only its data volume is left.
    idle = "idle-20261122t080000z"
    ec2.create_volume(AvailabilityZone="us-east-1b", Size=8, TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "rlops:session", "Value": idle},
                                            {"Key": "rlops:role", "Value": "data"}]}])

    new = dict(rlops_session=SESSION)
    cases = {  # case: (playbook, extra vars, environment, the message)
        "unknown instance type": (
            "train_new", dict(new, rlops_aws_instance_types=["x9.bogus"]), {},
            "Check instance types x9.bogus: The following supplied instance types do not exist"),
        "zone not in the region": (
            "train_new", dict(new, rlops_aws_availability_zones=["us-east-9z"]), {},
            "availability zone us-east-9z is not in us-east-1"),
        "volume in another zone": (
            "train_new", dict(new, rlops_aws_volume_id=elsewhere,
                              rlops_aws_availability_zones=["us-east-1b", "us-east-1c"]), {},
            f"volume {elsewhere} is in us-east-1a, but rlops_aws_availability_zones allows "
            "only us-east-1b, us-east-1c"),
        "volume attached elsewhere without force": (
            "train_new", dict(new, rlops_aws_volume_id=held), {},
            f"volume {held} is attached to {other} (running) at /dev/sdg: detach it there "
            "first, or set rlops_aws_force_detach: true"),
        "missing credentials": (
            "train_new", new, {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
            "no usable AWS credentials"),
        "invalid tags": (
            "train_new", dict(new, rlops_aws_tags={"aws:owner": "me"}), {},
            "invalid tags: 'aws:owner': the aws: prefix is reserved for AWS"),
        "unknown volume": (
            "train_new", dict(new, rlops_aws_volume_id="vol-0123456789abcdef0"), {},
            "Read volume vol-0123456789abcdef0: it does not exist in us-east-1"),
        "image that is no AMI id": (
            "train_new", dict(new, rlops_aws_image_id="ubuntu-22.04"), {},
            "rlops_aws_image_id 'ubuntu-22.04' is not an AMI id"),
        "VPC without subnets": (
            "train_new", dict(new, rlops_aws_vpc_id="vpc-0123456789abcdef0"), {},
            "rlops_aws_vpc_id vpc-0123456789abcdef0 needs rlops_aws_subnet_ids"),
        "unknown connection setting": (
            "train_new", dict(new, rlops_aws_connect=dict(NOWHERE, ansible_become_user="x")), {},
            "rlops_aws_connect knows only ansible_host, ansible_port, ansible_user, "
            "ansible_ssh_private_key_file, ansible_ssh_common_args, ansible_connection; got "
            "ansible_become_user"),
        "rollout workers without the Ray backend": (
            "train_new", dict(new, rlops_aws_rollout_workers=2, rlops_backend="supervisor"), {},
            "rlops_aws_rollout_workers 2 adds rollout hosts to a Ray session, but rlops_backend "
            "is supervisor: set rlops_backend: ray, or rlops_aws_rollout_workers: 0"),
        "unknown rollout instance type": (
            "train_new", dict(new, rlops_aws_rollout_workers=2, rlops_backend="ray",
                              rlops_aws_rollout_instance_types=["c9x.bogus"]), {},
            "rollout workers (rlops_aws_rollout_instance_types, rlops_aws_rollout_max_price) in "
            "us-east-1"),
        "unknown env id": (
            "train_new", dict(new, trainer_env_id="CartPol-v1"), {}, "did you mean CartPole-v1"),
        "resume without a volume": (
            "resume", {"rlops_session": "nope-20260101t000000z"}, {},
            "session nope-20260101t000000z has no data volume in us-east-1"),
        "evaluate without a running instance": (
            "evaluate", {"rlops_session": idle}, {},
            f"session {idle} has no running instance in us-east-1 (none), and evaluate needs "
            f"one: run resume.yml -e rlops_session={idle}"),
        "retrieve from file storage without an instance": (
            "retrieve", {"rlops_session": idle,
                         "rlops_storage_uri": "file:///mnt/rlops/rlops/storage"}, {},
            f"session {idle} has no running instance, and its storage "
            "file:///mnt/rlops/rlops/storage is not S3"),
        "delete the volume but keep the instance": (
            "stop", {"rlops_session": idle, "rlops_aws_delete_volume": True}, {},
            "rlops_aws_delete_volume needs rlops_aws_terminate: true"),
        "stop of an unknown session": (
            "stop", {"rlops_session": "nope-20260101t000000z", "rlops_aws_terminate": True}, {},
            "session nope-20260101t000000z has no instance or volume in us-east-1"),
    }
    before = inventory_of_aws(ec2)

    def attempt(case):
        playbook, extra, env, _message = cases[case]
        return playbooks.run(playbook, ok=False, env=env, timeout=300, **extra).stdout

    with ThreadPoolExecutor(max_workers=4) as pool:
        outputs = dict(zip(cases, pool.map(attempt, cases)))
    after = inventory_of_aws(ec2)
    yield {case: (outputs[case], cases[case][3]) for case in cases}, before, after
    ec2.terminate_instances(InstanceIds=[other])


CASES = ["unknown instance type", "zone not in the region", "volume in another zone",
         "volume attached elsewhere without force", "missing credentials", "invalid tags",
         "unknown volume", "image that is no AMI id", "VPC without subnets",
         "unknown connection setting", "rollout workers without the Ray backend",
         "unknown rollout instance type", "unknown env id",
         "resume without a volume", "evaluate without a running instance",
         "retrieve from file storage without an instance",
         "delete the volume but keep the instance", "stop of an unknown session"]


@pytest.mark.parametrize("case", CASES)
def test_refused_with_one_message(refusals, case):
    output, message = refusals[0][case]
    assert message in output, output[-3000:]
    assert output.count("fatal: [") + output.count("failed: [") == 1, output[-3000:]


def test_nothing_was_created(refusals):
    _results, before, after = refusals
    assert after == before
