"""rlops.fleet.aws_session_plan in-process against moto's EC2 (mock_aws): one call answers
what provision would do, or refuses with the one message, and creates nothing."""

from __future__ import annotations

import pytest
from ansible_collections.rlops.fleet.plugins.modules import aws_session_plan

moto = pytest.importorskip("moto")

S = "plan-20261122t051500z"
REGION = "us-east-1"
COMMON = {"region": REGION, "access_key": "AKIDTEST", "secret_key": "secret"}


@pytest.fixture
def settings(ec2_moto):
    image = ec2_moto.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return {"rlops_aws_instance_types": ["t3.micro"], "rlops_aws_image_id": image,
            "rlops_aws_availability_zones": [], "rlops_aws_subnet_ids": {},
            "rlops_aws_max_price": "", "rlops_aws_tags": {}, "rlops_aws_volume_id": "",
            "rlops_aws_volume_size": 8, "rlops_aws_volume_type": "gp3",
            "rlops_aws_volume_device": "/dev/sdf", "rlops_aws_key_name": "rlops",
            "rlops_aws_public_key_file": "/home/me/.ssh/id.pub", "rlops_aws_vpc_id": "",
            "rlops_aws_ssh_cidr": "127.0.0.1/32"}


def everything(ec2_moto):
    return (ec2_moto.describe_instances()["Reservations"], ec2_moto.describe_volumes()["Volumes"],
            len(ec2_moto.describe_security_groups()["SecurityGroups"]))


def plan(run_module, settings, mode="new", check_mode=False):
    return run_module(aws_session_plan.main, {"session": S, "mode": mode,
                                              "settings": settings},
                      check_mode=check_mode, common=COMMON)


def test_a_new_session_is_planned_and_nothing_is_created(ec2_moto, settings, run_module):
    before = everything(ec2_moto)
    result, failed = plan(run_module, settings)
    assert not failed, result
    assert result["volume"] is None and result["availability_zone"] == ""
    assert result["instance"]["instance_type"] == "t3.micro"
    assert result["instance"]["availability_zone"].startswith(REGION)
    assert result["attachment"]["created"] is True
    assert result["vpc_id"].startswith("vpc-") and result["ssh_cidr"] == "127.0.0.1/32"
    assert everything(ec2_moto) == before


def test_resume_follows_the_volumes_zone(ec2_moto, settings, run_module):
    ec2_moto.create_volume(AvailabilityZone="us-east-1c", Size=8, TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "rlops:session", "Value": S},
                                            {"Key": "rlops:role", "Value": "data"}]}])
    result, failed = plan(run_module, settings, mode="resume", check_mode=True)
    assert not failed, result
    assert result["availability_zone"] == "us-east-1c"
    assert result["instance"]["availability_zone"] == "us-east-1c"


@pytest.mark.parametrize("change, message", [
    ({"rlops_aws_instance_types": ["x9.bogus"]}, "Check instance types x9.bogus"),
    ({"rlops_aws_tags": {"aws:x": "1"}}, "invalid tags: 'aws:x': the aws: prefix is reserved"),
    ({"rlops_aws_public_key_file": ""}, "key pair rlops does not exist in us-east-1"),
    ({"rlops_aws_vpc_id": "vpc-0123456789abcdef0"}, "VPC vpc-0123456789abcdef0 does not exist"),
    ({"rlops_aws_volume_id": "vol-0123456789abcdef0"},
     "Read volume vol-0123456789abcdef0: it does not exist in us-east-1"),
])
def test_refused_with_one_message(ec2_moto, settings, run_module, change, message):
    result, failed = plan(run_module, dict(settings, **change))
    assert failed and message in result["msg"], result["msg"]


def test_resume_without_a_volume_names_the_sessions(ec2_moto, settings, run_module):
    ec2_moto.create_volume(AvailabilityZone="us-east-1a", Size=8, TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "rlops:session", "Value": "other-1"}]}])
    result, failed = plan(run_module, settings, mode="resume")
    assert failed
    assert result["msg"].startswith(f"session {S} has no data volume in us-east-1")
    assert result["msg"].endswith("sessions with resources in us-east-1: other-1")
