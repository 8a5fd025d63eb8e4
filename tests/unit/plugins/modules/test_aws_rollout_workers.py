"""rlops.fleet.aws_session_resources with rollout workers (rlops_aws_rollout_workers), in-process
against moto's EC2: the head with its volume and N volume-less workers tagged by role and
slot, in the head's zone and security group (which lets its members talk); a re-run keeps
them, resume relaunches a lost one in its slot and terminates the ones beyond N; stop
terminates the workers whatever it was asked, and the head only as asked; bad worker
types are refused before anything is created."""

from __future__ import annotations

import pytest
from ansible_collections.rlops.fleet.plugins.modules import aws_session_plan, aws_session_resources

moto = pytest.importorskip("moto")

S = "ray-20261207t020000z"
COMMON = {"region": "us-east-1", "access_key": "AKIDTEST", "secret_key": "secret"}
PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHV0n7CwvN9bLk1Uf2V3Yk1xh1JtF1C4Qmy9gqYkKx3g "
              "unit\n")


@pytest.fixture
def settings(ec2_moto):
    image = ec2_moto.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return {"rlops_aws_instance_types": ["t3.micro"], "rlops_aws_image_id": image,
            "rlops_aws_availability_zones": [], "rlops_aws_subnet_ids": {},
            "rlops_aws_max_price": "", "rlops_aws_tags": {"project": "unit"},
            "rlops_aws_volume_id": "", "rlops_aws_volume_size": 8,
            "rlops_aws_volume_type": "gp3", "rlops_aws_volume_device": "/dev/sdf",
            "rlops_aws_key_name": "rlops", "rlops_aws_public_key_file": "/home/me/.ssh/id.pub",
            "rlops_aws_vpc_id": "", "rlops_aws_ssh_cidr": "127.0.0.1/32",
            "rlops_aws_iam_instance_profile": "", "rlops_aws_force_detach": False,
            "rlops_aws_wait_timeout": 30, "rlops_aws_poll_interval": 0,
            "rlops_aws_rollout_workers": 2, "rlops_aws_rollout_instance_types": ["c6i.large"],
            "rlops_aws_rollout_max_price": ""}


def launch(run_module, settings, mode="new", check_mode=False, **changed):
    return run_module(aws_session_resources.main, {
        "session": S, "mode": mode, "settings": dict(settings, **changed),
        "public_key": PUBLIC_KEY}, check_mode=check_mode, common=COMMON)


def stop(run_module, settings, **asked):
    return run_module(aws_session_resources.main, {
        "session": S, "state": "absent",
        "settings": dict(settings, **{f"rlops_aws_{k}": v for k, v in asked.items()})},
        common=COMMON)


def instances(ec2, states=("pending", "running")):
    found = ec2.describe_instances(Filters=[
        {"Name": "tag:rlops:session", "Values": [S]},
        {"Name": "instance-state-name", "Values": list(states)}])
    return {i["InstanceId"]: i for r in found["Reservations"] for i in r["Instances"]}


def tags(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def by_role(result):
    return {(h.get("role"), h.get("slot")): h for h in result["hosts"]}


def test_launch_makes_the_head_and_its_workers(ec2_moto, settings, run_module):
    result, failed = launch(run_module, settings)
    assert not failed, result
    hosts = by_role(result)
    assert set(hosts) == {("head", None), ("rollout", 1), ("rollout", 2)}
    head = hosts[("head", None)]
    assert head["data_volume"]["volume_id"].startswith("vol-")
    live = instances(ec2_moto)
    assert set(live) == {h["instance_id"] for h in result["hosts"]}
    group_id = result["security_group"]["group_id"]
    for (role, slot), host in hosts.items():
        instance = live[host["instance_id"]]
        assert tags(instance)["rlops:session"] == S and tags(instance)["rlops:role"] == role
        assert tags(instance).get("rlops:slot") == (str(slot) if slot else None)
        assert instance["Placement"]["AvailabilityZone"] == head["availability_zone"]
        assert [g["GroupId"] for g in instance["SecurityGroups"]] == [group_id]
        if role == "rollout":
            assert instance["InstanceType"] == "c6i.large"
            assert host["data_volume"] is None
            assert tags(instance)["Name"] == f"rlops-{S}-rollout-{slot}"
            # no volume but its root (deleted with it)
            attached = ec2_moto.describe_volumes(Filters=[
                {"Name": "attachment.instance-id", "Values": [host["instance_id"]]}])["Volumes"]
            assert [tags(v).get("rlops:role") for v in attached] == ["root"]
    (group,) = ec2_moto.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    members = [p for p in group["IpPermissions"] if p.get("UserIdGroupPairs")]
    assert [(p["IpProtocol"], p["FromPort"], p["ToPort"],
             [g["GroupId"] for g in p["UserIdGroupPairs"]]) for p in members] == [
        ("tcp", 0, 65535, [group_id])]
    assert any("rollout worker 2: spot c6i.large" in line and "launched, no volume" in line
               for line in result["lines"]), result["lines"]

    again, failed = launch(run_module, settings, mode="resume")
    assert not failed and not again["changed"], again
    assert {h["instance_id"] for h in again["hosts"]} == set(live)


def test_check_mode_names_the_workers_it_would_launch(ec2_moto, settings, run_module):
    result, failed = launch(run_module, settings, check_mode=True)
    assert not failed, result
    assert instances(ec2_moto) == {}
    assert result["hosts"] == []
    assert result["to_create"] == [f"instance of session {S}", f"rollout worker 1 of session {S}",
                                   f"rollout worker 2 of session {S}"]
    assert f"session {S}: would launch rollout worker 1: spot c6i.large in " in "\n".join(
        result["lines"])


def test_resume_relaunches_a_lost_worker_in_its_slot_and_keeps_the_rest(
        ec2_moto, settings, run_module):
    first, _failed = launch(run_module, settings)
    hosts = by_role(first)
    lost = hosts[("rollout", 2)]["instance_id"]
    ec2_moto.terminate_instances(InstanceIds=[lost])  # EC2 took it (an interruption)
    result, failed = launch(run_module, settings, mode="resume")
    assert not failed, result
    again = by_role(result)
    assert again[("head", None)]["instance_id"] == hosts[("head", None)]["instance_id"]
    assert again[("rollout", 1)]["instance_id"] == hosts[("rollout", 1)]["instance_id"]
    assert again[("rollout", 2)]["instance_id"] not in (lost, None)
    assert len(instances(ec2_moto)) == 3

    fewer, failed = launch(run_module, settings, mode="resume", rlops_aws_rollout_workers=1)
    assert not failed, fewer
    assert set(by_role(fewer)) == {("head", None), ("rollout", 1)}
    assert again[("rollout", 2)]["instance_id"] not in instances(ec2_moto)
    assert fewer["lines"][-1] == (f"session {S}: terminated rollout workers beyond 1: "
                                  f"{again[('rollout', 2)]['instance_id']}")


def test_stop_terminates_the_workers_and_keeps_the_head_unless_asked(ec2_moto, settings,
                                                                     run_module):
    first, _failed = launch(run_module, settings)
    hosts = by_role(first)
    head = hosts[("head", None)]["instance_id"]
    workers = sorted(h["instance_id"] for k, h in hosts.items() if k[0] == "rollout")
    result, failed = stop(run_module, settings)
    assert not failed, result
    assert sorted(result["terminated_workers"]) == workers
    assert list(instances(ec2_moto)) == [head]
    assert result["lines"][0] == (f"instance: {head} still running, and billed: terminate it "
                                  "with -e rlops_aws_terminate=true (the volume stays)")
    assert result["lines"][2] == f"rollout workers: terminated {', '.join(workers)}"
    assert result["removed_groups"] == []

    result, failed = stop(run_module, settings, terminate=True)
    assert not failed, result
    assert result["terminated_instances"] == [head] and result["terminated_workers"] == []
    assert instances(ec2_moto) == {}
    assert ec2_moto.describe_volumes(VolumeIds=[hosts[("head", None)]["data_volume"][
        "volume_id"]])["Volumes"][0]["State"] in ("available", "in-use")


def test_unknown_worker_types_are_refused_before_anything_is_created(ec2_moto, settings,
                                                                     run_module):
    result, failed = launch(run_module, settings, rlops_aws_rollout_instance_types=["x9.bogus"])
    assert failed and "Check instance types x9.bogus" in result["msg"], result["msg"]
    assert result["msg"].startswith("rollout workers (rlops_aws_rollout_instance_types"), (
        result["msg"])
    assert instances(ec2_moto, ("pending", "running", "terminated")) == {}
    assert ec2_moto.describe_volumes(Filters=[
        {"Name": "tag:rlops:session", "Values": [S]}])["Volumes"] == []


def test_the_plan_checks_a_worker_in_the_heads_zone(ec2_moto, settings, run_module):
    result, failed = run_module(aws_session_plan.main, {
        "session": S, "mode": "new", "settings": settings}, common=COMMON)
    assert not failed, result
    assert result["rollout_worker"]["instance_type"] == "c6i.large"
    assert result["rollout_worker"]["availability_zone"] == result["instance"][
        "availability_zone"]
    without, failed = run_module(aws_session_plan.main, {
        "session": S, "mode": "new", "settings": dict(settings, rlops_aws_rollout_workers=0)},
        common=COMMON)
    assert not failed and without["rollout_worker"] is None
