"""The AWS provider's preflight decisions (plugins/module_utils/aws_provision.py): the
arguments the settings give ec2_spot_request and ebs_volume_attachment, the volume a
session takes, and the one message that refuses a request."""

from __future__ import annotations

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils.aws_provision import (
    choose_volume,
    key_problem,
    spot_params,
    ssh_cidr,
    volume_params,
    vpc_problem,
)

S = "cartpole-20261122t051500z"
SETTINGS = {"rlops_aws_instance_types": ["g4dn.xlarge"], "rlops_aws_availability_zones": [],
            "rlops_aws_image_id": "ami-0123abcd", "rlops_aws_subnet_ids": {},
            "rlops_aws_max_price": "", "rlops_aws_spot_type": "one-time",
            "rlops_aws_interruption_behavior": "terminate",
            "rlops_aws_on_demand_fallback": False, "rlops_aws_root_volume_size": 0,
            "rlops_aws_tags": {"project": "x"}, "rlops_aws_volume_id": "",
            "rlops_aws_volume_size": "100", "rlops_aws_volume_type": "gp3",
            "rlops_aws_volume_device": "/dev/sdf", "rlops_aws_force_detach": False,
            "rlops_aws_key_name": "rlops", "rlops_aws_public_key_file": "",
            "rlops_aws_ssh_cidr": "", "rlops_aws_address_url": "https://checkip.example"}


def volume(volume_id="vol-1", session=S, zone="us-east-1b", role="data", attachments=()):
    return {"volume_id": volume_id, "session": session, "role": role, "state": "available",
            "availability_zone": zone, "attachments": list(attachments)}


def found(instances=(), volumes=(), named=None):
    return {"instances": list(instances), "volumes": list(volumes), "volume": named}


def test_spot_params_leave_out_what_is_not_set():
    got = spot_params(SETTINGS, S, "")
    assert got["availability_zone"] is None and got["availability_zones"] is None
    assert got["max_price"] is None and got["root_volume_size"] is None
    assert got["subnet_ids"] is None and got["tags"] == {"project": "x"}
    assert got["instance_types"] == ["g4dn.xlarge"] and got["session"] == S


def test_spot_params_in_the_volumes_zone_with_a_price_cap():
    got = spot_params(dict(SETTINGS, rlops_aws_max_price=0.5, rlops_aws_root_volume_size=40,
                           rlops_aws_availability_zones=["us-east-1b"]), S, "us-east-1b")
    assert (got["availability_zone"], got["max_price"], got["root_volume_size"]) == (
        "us-east-1b", "0.5", 40)
    assert got["availability_zones"] == ["us-east-1b"]


def test_volume_params():
    assert volume_params(SETTINGS, S, None, "us-east-1c") == {
        "state": "present", "session": S, "volume_id": None, "availability_zone": "us-east-1c",
        "size": 100, "volume_type": "gp3", "device_name": "/dev/sdf", "tags": {"project": "x"}}


def test_a_new_session_takes_no_volume():
    assert choose_volume("new", S, "us-east-1", found(), SETTINGS) == (None, "")


def test_a_new_session_with_resources_is_refused():
    _volume, problem = choose_volume("new", S, "us-east-1", found(
        [{"instance_id": "i-1", "state": "running"}], [volume()]), SETTINGS)
    assert problem == (f"session {S} already has i-1, vol-1 in us-east-1: run resume.yml "
                       f"-e rlops_session={S}")


def test_resume_takes_the_sessions_data_volume():
    mine = volume()
    assert choose_volume("resume", S, "us-east-1", found(
        volumes=[volume("vol-r", role="root"), mine]), SETTINGS) == (mine, "")


def test_resume_without_a_data_volume_names_the_regions_sessions():
    _volume, problem = choose_volume("resume", S, "us-east-1", found(), SETTINGS, ["a", "b"])
    assert problem.startswith(f"session {S} has no data volume in us-east-1 (tag ")
    assert problem.endswith("sessions with resources in us-east-1: a, b")


def test_resume_refuses_to_guess_between_data_volumes():
    _volume, problem = choose_volume("resume", S, "us-east-1", found(
        volumes=[volume("vol-1"), volume("vol-2")]), SETTINGS)
    assert problem == (f"session {S} has 2 data volumes (vol-1, vol-2): name the one to "
                       "resume with -e rlops_aws_volume_id=vol-...")


def test_the_named_volume_wins():
    named = volume("vol-9", session=None)
    settings = dict(SETTINGS, rlops_aws_volume_id="vol-9")
    assert choose_volume("resume", S, "us-east-1", found(
        volumes=[volume("vol-1"), volume("vol-2")], named=named), settings) == (named, "")


@pytest.mark.parametrize("holder_state, force, refused", [
    ("running", False, True), ("running", True, False), ("terminated", False, False)])
def test_a_volume_held_elsewhere(holder_state, force, refused):
    held = volume(session=None, attachments=[{"instance_id": "i-other", "device": "/dev/sdg",
                                              "instance_state": holder_state}])
    settings = dict(SETTINGS, rlops_aws_volume_id="vol-1", rlops_aws_force_detach=force)
    _volume, problem = choose_volume("new", S, "us-east-1", found(named=held), settings)
    assert bool(problem) == refused
    if refused:
        assert problem.startswith(f"session {S}: volume vol-1 is attached to i-other (running)")


def test_a_volume_outside_the_zones():
    settings = dict(SETTINGS, rlops_aws_volume_id="vol-1",
                    rlops_aws_availability_zones=["us-east-1a"])
    _volume, problem = choose_volume("new", S, "us-east-1", found(named=volume()), settings)
    assert "volume vol-1 is in us-east-1b, but rlops_aws_availability_zones allows only" in problem


def test_key_pair():
    assert key_problem(SETTINGS, "us-east-1", True) == ""
    assert key_problem(dict(SETTINGS, rlops_aws_public_key_file="/k.pub"), "us-east-1", False) == ""
    assert key_problem(SETTINGS, "us-east-1", False).startswith(
        "key pair rlops does not exist in us-east-1 and rlops_aws_public_key_file is empty")


def test_vpc():
    assert vpc_problem("", "us-east-1").startswith("there is no default VPC in us-east-1")
    assert vpc_problem("vpc-1", "us-east-1").startswith("VPC vpc-1 does not exist in us-east-1")


def test_ssh_cidr():
    assert ssh_cidr(dict(SETTINGS, rlops_aws_ssh_cidr="10.0.0.0/8"), None) == ("10.0.0.0/8", "")
    assert ssh_cidr(SETTINGS, "203.0.113.7\n") == ("203.0.113.7/32", "")
    cidr, problem = ssh_cidr(SETTINGS, "<html>" + "x" * 60)
    assert cidr == "" and problem.startswith("https://checkip.example answered <html>")
    assert problem.endswith("not an IPv4 address: set rlops_aws_ssh_cidr (e.g. 203.0.113.7/32)")
