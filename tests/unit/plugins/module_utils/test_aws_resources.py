"""The pure decisions of aws_session_resources (module_utils/aws_resources.py): what stop
does to a session's AWS resources - each action only when asked, a volume deleted only with
the instance terminated - and the lines that say what is left; the session's security group
(rules, tags) and the engines' arguments at launch."""

from __future__ import annotations

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils.aws_resources import (
    flag,
    group_tags,
    launch_spot_params,
    launch_volume_params,
    rules_change,
    ssh_rule,
    tags_change,
    teardown_plan,
    teardown_report,
    waits,
)

FOUND = {"volumes": [{"volume_id": "vol-root", "role": "root"},
                     {"volume_id": "vol-data", "role": "data"}]}
NONE_FOUND = {"volumes": [{"volume_id": "vol-root", "role": "root"}]}


def plan(found=None, **asked):
    return teardown_plan(FOUND if found is None else found, "s-20261122t090000z",
                         "us-east-1", **asked)


def test_nothing_asked_does_nothing():
    assert plan() == {"problem": "", "terminate": False, "volumes": ["vol-data"],
                      "snapshot": [], "delete": []}


def test_everything_asked():
    got = plan(terminate=True, snapshot=True, delete_volume=True)
    assert got["problem"] == "" and got["terminate"]
    assert got["snapshot"] == got["delete"] == ["vol-data"]


def test_delete_without_terminate_is_refused_and_never_planned():
    got = plan(delete_volume=True, snapshot=True)
    assert got["problem"].startswith("rlops_aws_delete_volume needs rlops_aws_terminate: true")
    assert got["delete"] == []


@pytest.mark.parametrize("asked, verb", [({"snapshot": True}, "snapshot"),
                                         ({"delete_volume": True, "terminate": True}, "delete")])
def test_snapshot_or_delete_without_a_data_volume(asked, verb):
    assert plan(NONE_FOUND, **asked)["problem"] == (
        f"session s-20261122t090000z has no data volume in us-east-1 to {verb}")


def test_terminate_alone_needs_no_volume():
    assert plan(NONE_FOUND, terminate=True)["problem"] == ""


def test_report_after_everything():
    got = teardown_report(plan(terminate=True, snapshot=True, delete_volume=True),
                          running=["i-1"], terminated=["i-1"], snapshots=["snap-1"])
    assert got == ["instance: terminated i-1", "volume: vol-data deleted, snapshot snap-1"]


def test_report_of_a_kept_running_instance():
    got = teardown_report(plan(), running=["i-1"])
    assert got == ["instance: i-1 still running, and billed: terminate it with -e "
                   "rlops_aws_terminate=true (the volume stays)", "volume: vol-data kept"]


def test_report_without_instance_or_volume():
    assert teardown_report(plan(NONE_FOUND, terminate=True)) == [
        "instance: none running", "volume: none kept"]


def test_report_in_check_mode():
    got = teardown_report(plan(terminate=True, snapshot=True, delete_volume=True),
                          running=["i-1"], terminated=["i-1"], check_mode=True)
    assert got == ["instance: would terminate i-1",
                   "volume: vol-data would be snapshotted and deleted"]
    assert teardown_report(plan(), check_mode=True)[1] == "volume: vol-data would be kept"


SSH = ssh_rule("203.0.113.7/32")


def test_the_wanted_rules_change_nothing():
    current = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                "IpRanges": [{"CidrIp": "203.0.113.7/32"}]}]  # no description: still equal
    assert rules_change(current, [SSH]) == ([], [])
    all_out = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    assert rules_change([{"IpProtocol": "-1", "FromPort": -1, "ToPort": -1,
                          "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}], [all_out]) == ([], [])


def test_other_rules_go_and_the_ssh_rule_comes():
    current = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}, {"CidrIp": "203.0.113.7/32"}],
                "UserIdGroupPairs": [{"GroupId": "sg-1"}]}]
    revoke, grant = rules_change(current, [SSH])
    assert grant == []
    assert sorted(map(str, revoke)) == sorted(map(str, [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
         "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
         "UserIdGroupPairs": [{"GroupId": "sg-1"}]}]))
    assert rules_change([], [SSH]) == ([], [SSH])


def test_tags_become_exactly_the_wanted_ones_but_aws_own():
    wanted = group_tags("s-1", {"rlops_aws_tags": {"project": "rl", "Name": "mine", "n": 1}})
    assert wanted == {"project": "rl", "n": "1", "rlops:session": "s-1", "Name": "rlops-s-1"}
    have = {"project": "old", "rlops:session": "s-1", "Name": "rlops-s-1", "extra": "x",
            "aws:cloudformation:stack-name": "st"}
    assert tags_change(have, wanted) == ({"n": "1", "project": "rl"}, ["extra"])
    assert tags_change(wanted, wanted) == ({}, [])


def test_settings_read_as_ansible_reads_them():
    assert flag({"rlops_aws_terminate": "yes"}, "terminate") is True
    assert flag({"rlops_aws_terminate": "false"}, "terminate") is False
    assert flag({}, "terminate") is False
    assert waits({"rlops_aws_wait_timeout": "30", "rlops_aws_poll_interval": "0.5"}) == {
        "wait_timeout": 30, "poll_interval": 0.5}
    assert waits({}) == {"wait_timeout": 600, "poll_interval": 5.0}


SETTINGS = {"rlops_aws_instance_types": ["g4dn.xlarge"], "rlops_aws_image_id": "ami-1",
            "rlops_aws_key_name": "rlops", "rlops_aws_iam_instance_profile": "",
            "rlops_aws_volume_size": 100, "rlops_aws_force_detach": "true",
            "rlops_aws_wait_timeout": 60, "rlops_aws_poll_interval": 1}


def test_launch_gives_the_spot_engine_the_key_group_and_profile():
    got = launch_spot_params(SETTINGS, "s-1", "us-east-1b", "sg-1")
    assert got["security_group_ids"] == ["sg-1"] and got["key_name"] == "rlops"
    assert got["iam_instance_profile"] is None  # '' is no profile
    assert got["availability_zone"] == "us-east-1b" and got["wait_timeout"] == 60
    assert launch_spot_params(SETTINGS, "s-1", "", None)["security_group_ids"] is None


def test_launch_attaches_to_the_instance_or_plans_in_its_zone():
    got = launch_volume_params(SETTINGS, "s-1", None, {"instance_id": "i-1",
                                                       "availability_zone": "us-east-1b"})
    assert got["instance_id"] == "i-1" and got["availability_zone"] is None
    assert got["force_detach"] is True and got["size"] == 100 and got["poll_interval"] == 1.0
    planned = launch_volume_params(SETTINGS, "s-1", "vol-1", {"instance_id": None,
                                                              "availability_zone": "us-east-1c"})
    assert "instance_id" not in planned and planned["availability_zone"] == "us-east-1c"
    assert planned["volume_id"] == "vol-1"
