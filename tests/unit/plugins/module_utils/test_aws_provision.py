"""The AWS provider's preflight decisions (plugins/module_utils/aws_provision.py): the
arguments the settings give ec2_spot_request and ebs_volume_attachment, the volume a
session takes, and the one message that refuses a request."""

from __future__ import annotations

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils.aws_provision import (
    choose_volume,
    key_problem,
    launch_report,
    locate_facts,
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


SPOT = {"instance_id": "i-1", "instance_state": "running", "lifecycle": "spot",
        "instance_type": "g4dn.xlarge", "availability_zone": "us-east-1b", "spot_price": "0.2",
        "public_ip": "198.51.100.1", "private_ip": "10.0.0.1"}
ATTACHED = {"volume_id": "vol-1", "device_name": "/dev/sdf", "created": True,
            "availability_zone": "us-east-1b", "actions": ["attach vol-1 to i-1 at /dev/sdf"]}


def test_launch_report_of_a_running_instance():
    got = launch_report(SPOT, ATTACHED, S, SETTINGS)
    assert got["to_create"] == []
    (host,) = got["hosts"]
    assert host["instance_id"] == "i-1" and host["state"] == "running"
    assert host["data_volume"] == {"volume_id": "vol-1", "device": "/dev/sdf"}
    assert got["lines"] == [f"session {S}: spot g4dn.xlarge i-1 in us-east-1b (0.2 USD/h) "
                            "with volume vol-1 (new) at /dev/sdf"]


def test_launch_report_in_check_mode_before_anything_exists():
    spot = dict(SPOT, instance_id=None, instance_state=None, spot_price=None)
    attached = {"volume_id": None, "created": True, "availability_zone": "us-east-1b",
                "actions": ["create a new volume in us-east-1b"]}
    got = launch_report(spot, attached, S, dict(SETTINGS, rlops_aws_public_key_file="/k.pub"),
                        key_changed=True, group={"changed": True, "group_id": None},
                        ssh_cidr="203.0.113.7/32", check_mode=True)
    assert got["hosts"] == [] and got["to_create"] == [f"instance of session {S}"]
    assert [line.removeprefix(f"session {S}: ") for line in got["lines"]] == [
        "would import the key pair rlops from /k.pub",
        f"would create the security group rlops-{S}: tcp/22 from 203.0.113.7/32",
        "would launch a spot g4dn.xlarge in us-east-1b (unknown USD/h)",
        "would create a 100 GiB gp3 volume in us-east-1b and attach it at /dev/sdf",
        "check mode stops here: the instance does not exist yet, so its host can be neither "
        "checked nor prepared; without --check, the volume is mounted on it and volume_mount, "
        "gpu_host and the trainer start the session there"]


def test_launch_report_of_a_stopped_instance_in_check_mode():
    got = launch_report(dict(SPOT, instance_state="stopped"),
                        dict(ATTACHED, created=False, actions=[]), S, SETTINGS, check_mode=True)
    assert got["hosts"] == []
    lines = [line.removeprefix(f"session {S}: ") for line in got["lines"]]
    assert lines[0] == ("would start the stopped instance i-1, a spot g4dn.xlarge in "
                        "us-east-1b (0.2 USD/h)")
    assert lines[1] == "volume vol-1 stays attached at /dev/sdf"
    assert lines[2].endswith("the trainer resume the session there")


RUNNING = {"instance_id": "i-1", "state": "running", "session": S}
GONE = {"instance_id": "i-0", "state": "terminated", "session": S}


def located(instances=(), purpose="stop", **kwargs):
    found = {"sessions": [S] if instances else [], "instances": list(instances), "volumes": []}
    return locate_facts(found, kwargs.pop("session", S), purpose, "us-east-1", **kwargs)


def test_locate_adds_the_running_instances():
    got = located([GONE, RUNNING])
    assert got["problem"] == "" and got["running"] == got["hosts"] == [RUNNING]
    assert got["session_provided"] is True and got["retrieve_from_storage"] is False
    assert got["report"] == []


@pytest.mark.parametrize("retrieve_from, instances, from_storage", [
    ("auto", [RUNNING], False), ("auto", [GONE], True), ("storage", [RUNNING], True),
    ("host", [GONE], False)])
def test_retrieve_from_storage(retrieve_from, instances, from_storage):
    got = located(instances, "retrieve", retrieve_from=retrieve_from)
    assert got["retrieve_from_storage"] is from_storage
    assert got["hosts"] == ([] if from_storage else got["running"])


def test_status_of_every_session_reports_the_table():
    got = located([RUNNING], "status", session="")
    assert got["session_provided"] is False and got["report"][0].startswith("SESSION")


def test_locate_refusals():
    assert located([RUNNING], hosts_listed=["h1"], hosts_group="trainers")["problem"].startswith(
        "rlops_provider aws adds the sessions' instances to the group trainers, but the "
        "inventory already lists hosts there (h1)")
    assert located(region_sessions=["a"])["problem"] == (
        f"session {S} has no instance or volume in us-east-1 (tag rlops:session={S}); "
        "sessions with resources there: a")
    assert located([GONE], "evaluate")["problem"] == (
        f"session {S} has no running instance in us-east-1 (i-0 terminated), and evaluate "
        f"needs one: run resume.yml -e rlops_session={S}")
