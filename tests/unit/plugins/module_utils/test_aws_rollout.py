"""The pure decisions about a session's rollout workers on AWS (module_utils/aws_rollout.py):
what the settings ask and why they are refused, which instance is the head and which worker
holds which slot, the workers' launch arguments and tags, the security group rule between
the session's instances, what to keep, launch and terminate, the lines that say so; and
where workers show in the status (aws_session) and in stop's lines (aws_resources)."""

from __future__ import annotations

import pytest
from ansible_collections.rlops.fleet.plugins.filter.aws_settings_problem import (
    aws_settings_problem,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_resources import (
    rules_change,
    ssh_rule,
    teardown_plan,
    teardown_report,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_rollout import (
    instance_role,
    members_rule,
    role_tags,
    rollout_problem,
    token_key,
    worker_count,
    worker_host,
    worker_plan,
    worker_spot_params,
    workers_report,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_session import (
    session_cost_lines,
)

S = "ray-20261207t020000z"
GOOD = {"rlops_aws_rollout_workers": 2, "rlops_aws_rollout_instance_types": ["c6i.large"],
        "rlops_aws_rollout_max_price": ""}


def test_no_workers_need_nothing_else() -> None:
    assert rollout_problem({}, "supervisor") == ""
    assert rollout_problem({"rlops_aws_rollout_workers": "0"}, "supervisor") == ""
    assert rollout_problem(GOOD, "ray") == ""
    assert rollout_problem(dict(GOOD, rlops_aws_rollout_max_price="0.05"), "ray") == ""
    assert worker_count(GOOD) == 2 and worker_count({}) == 0


@pytest.mark.parametrize(("changes", "backend", "message"), [
    ({}, "supervisor",
     "rlops_aws_rollout_workers 2 adds rollout hosts to a Ray session, but rlops_backend is "
     "supervisor: set rlops_backend: ray, or rlops_aws_rollout_workers: 0"),
    ({"rlops_aws_rollout_workers": -1}, "ray",
     "rlops_aws_rollout_workers must be a whole number of rollout instances (0 to 64), got -1"),
    ({"rlops_aws_rollout_workers": "two"}, "ray",
     "rlops_aws_rollout_workers must be a whole number of rollout instances (0 to 64), got two"),
    ({"rlops_aws_rollout_workers": 1000}, "ray",
     "rlops_aws_rollout_workers 1000 is more than 64 instances: ask for fewer"),
    ({"rlops_aws_rollout_instance_types": []}, "ray",
     "rlops_aws_rollout_instance_types must list instance types such as [c6i.large, c7i.large],"
     " got []"),
    ({"rlops_aws_rollout_instance_types": "c6i.large"}, "ray",
     "rlops_aws_rollout_instance_types must list instance types such as [c6i.large, c7i.large],"
     " got c6i.large"),
    ({"rlops_aws_rollout_max_price": "cheap"}, "ray",
     "rlops_aws_rollout_max_price 'cheap' is not a price in USD per hour (e.g. 0.05; empty: the"
     " on-demand price)"),
])
def test_bad_worker_settings_are_named(changes, backend, message) -> None:
    assert rollout_problem(dict(GOOD, **changes), backend) == message


def test_the_settings_filter_refuses_workers_without_ray() -> None:
    settings = {"rlops_aws_region": "us-east-1", "rlops_aws_instance_types": ["g4dn.xlarge"],
                "rlops_aws_image_id": "ami-0123abcd", "rlops_aws_availability_zones": [],
                "rlops_aws_tags": {}, "rlops_aws_connect": {}, "rlops_aws_subnet_ids": {},
                "rlops_aws_address": "public", "rlops_aws_volume_size": 8,
                "rlops_aws_wait_timeout": 60, **GOOD}
    assert aws_settings_problem(settings, "trainers", [], True, backend="ray") == ""
    assert aws_settings_problem(settings, "trainers", [], True).startswith(
        "rlops_aws_rollout_workers 2 adds rollout hosts to a Ray session")


def test_roles_and_slots_from_tags() -> None:
    assert instance_role({}) == ("head", None)  # launched before workers existed
    assert instance_role({"rlops:role": "head"}) == ("head", None)
    assert instance_role({"rlops:role": "rollout", "rlops:slot": "3"}) == ("rollout", 3)
    assert instance_role({"rlops:role": "rollout"}) == ("rollout", None)
    assert role_tags(S, {"project": "x"}, "rollout", 2) == {
        "project": "x", "rlops:session": S, "rlops:role": "rollout", "rlops:slot": "2",
        "Name": f"rlops-{S}-rollout-2"}
    assert role_tags(S, {"Name": "mine"}, "head") == {
        "Name": "mine", "rlops:session": S, "rlops:role": "head"}
    # The head's launch token is the one it had before workers; each slot has its own.
    assert token_key(S, "head", None) == S
    assert token_key(S, "rollout", 1) != token_key(S, "rollout", 2)


def test_worker_launch_arguments() -> None:
    settings = dict(GOOD, rlops_aws_image_id="ami-1", rlops_aws_key_name="rlops",
                    rlops_aws_subnet_ids={"us-east-1b": "subnet-1"},
                    rlops_aws_rollout_max_price="0.04", rlops_aws_tags={"p": "1"},
                    rlops_aws_instance_types=["g4dn.xlarge"], rlops_aws_max_price="0.5",
                    rlops_aws_spot_type="persistent", rlops_aws_root_volume_size=30,
                    rlops_aws_iam_instance_profile="")
    params = worker_spot_params(settings, S, "us-east-1b", "sg-1",
                                {"wait_timeout": 60, "poll_interval": 1})
    assert params == {
        "wait_timeout": 60, "poll_interval": 1, "state": "present", "session": S,
        "instance_types": ["c6i.large"], "availability_zones": None,
        "availability_zone": "us-east-1b", "image_id": "ami-1",
        "subnet_ids": {"us-east-1b": "subnet-1"}, "max_price": "0.04", "spot_type": "one-time",
        "instance_interruption_behavior": "terminate", "on_demand_fallback": False,
        "root_volume_size": 30, "tags": {"p": "1"}, "key_name": "rlops",
        "security_group_ids": ["sg-1"], "iam_instance_profile": None}
    planned = worker_spot_params(GOOD, S, None, None, {})
    assert planned["security_group_ids"] is None and planned["max_price"] is None
    assert planned["root_volume_size"] is None and planned["availability_zone"] is None


def test_the_members_rule_is_kept_beside_ssh() -> None:
    have = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
             "IpRanges": [{"CidrIp": "127.0.0.1/32"}]}]
    revoke, grant = rules_change(have, [ssh_rule("127.0.0.1/32"), members_rule("sg-1")])
    assert revoke == [] and grant == [{"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535,
                                       "UserIdGroupPairs": [{
                                           "GroupId": "sg-1",
                                           "Description": "all TCP between the instances of "
                                                          "the session (Ray)"}]}]
    granted = have + [{"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535,
                       "UserIdGroupPairs": [{"GroupId": "sg-1", "UserId": "123"}]}]
    assert rules_change(granted, [ssh_rule("127.0.0.1/32"), members_rule("sg-1")]) == ([], [])
    # Without workers the rule goes.
    assert rules_change(granted, [ssh_rule("127.0.0.1/32")])[0][0]["UserIdGroupPairs"][0][
        "GroupId"] == "sg-1"


@pytest.mark.parametrize(("count", "live", "expected"), [
    (2, [], {"keep": [], "launch": [1, 2], "terminate": []}),
    (2, [{"instance_id": "i-1", "slot": 1}, {"instance_id": "i-2", "slot": 2}],
     {"keep": ["i-1", "i-2"], "launch": [], "terminate": []}),
    (3, [{"instance_id": "i-2", "slot": 2}], {"keep": ["i-2"], "launch": [1, 3], "terminate": []}),
    (1, [{"instance_id": "i-1", "slot": 1}, {"instance_id": "i-2", "slot": 2}],
     {"keep": ["i-1"], "launch": [], "terminate": ["i-2"]}),
    (0, [{"instance_id": "i-1", "slot": 1}], {"keep": [], "launch": [], "terminate": ["i-1"]}),
    (2, [{"instance_id": "i-1", "slot": 1}, {"instance_id": "i-3", "slot": 1},
         {"instance_id": "i-9", "slot": None}],
     {"keep": ["i-1"], "launch": [2], "terminate": ["i-3", "i-9"]}),
])
def test_worker_plan(count, live, expected) -> None:
    assert worker_plan(count, live) == expected


def test_worker_hosts_and_lines() -> None:
    spot = {"instance_id": "i-1", "instance_state": "running", "lifecycle": "spot",
            "instance_type": "c6i.large", "availability_zone": "us-east-1a",
            "spot_price": "0.03", "changed": True, "slot": 1}
    assert worker_host(spot, S, 1) == dict(spot, session=S, state="running", role="rollout",
                                           slot=1, data_volume=None)
    kept = dict(spot, instance_id="i-2", changed=False, slot=2)
    planned = dict(spot, instance_id=None, slot=3)
    assert workers_report(S, 3, [spot, kept, planned], ["i-9"]) == [
        f"session {S}: rollout worker 1: spot c6i.large in us-east-1a (0.03 USD/h) i-1 launched,"
        " no volume",
        f"session {S}: rollout worker 2: spot c6i.large in us-east-1a (0.03 USD/h) i-2 kept,"
        " no volume",
        f"session {S}: would launch rollout worker 3: spot c6i.large in us-east-1a (0.03 USD/h),"
        " no volume",
        f"session {S}: terminated rollout workers beyond 3: i-9"]
    assert workers_report(S, 0, []) == []


def test_status_adds_up_a_session_with_workers() -> None:
    records = [{"session": S, "role": "head", "cost_so_far": "0.100000"},
               {"session": S, "role": "rollout", "cost_so_far": "0.020000"},
               {"session": S, "role": "rollout", "cost_so_far": None},
               {"session": "other", "role": "head", "cost_so_far": "1.0"}]
    assert session_cost_lines(records) == [
        f"session {S}: 1 head and 2 rollout worker instance(s), $0.120000 so far together"]


def test_stop_says_which_workers_it_terminated() -> None:
    plan = teardown_plan({"volumes": []}, S, "us-east-1")
    assert teardown_report(plan, ["i-h"], workers=["i-2", "i-1"])[2] == (
        "rollout workers: terminated i-1, i-2")
    assert teardown_report(plan, ["i-h"], check_mode=True, workers=["i-1"])[2] == (
        "rollout workers: would terminate i-1")
    assert len(teardown_report(plan, ["i-h"])) == 2
