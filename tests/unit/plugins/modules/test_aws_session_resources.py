"""rlops.fleet.aws_session_resources in-process against moto's EC2 (mock_aws): launch makes
the key pair, the security group, the instance and its volume (nothing in check mode), a
re-run finds them; stop does only what its settings ask, and keeps the volume unless both
terminate and delete are asked."""

from __future__ import annotations

import pytest
from ansible_collections.rlops.fleet.plugins.modules import aws_session_resources

moto = pytest.importorskip("moto")

S = "res-20261122t051500z"
REGION = "us-east-1"
COMMON = {"region": REGION, "access_key": "AKIDTEST", "secret_key": "secret"}
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
            "rlops_aws_wait_timeout": 30, "rlops_aws_poll_interval": 0}


def everything(ec2):
    return {
        "instances": [(i["InstanceId"], i["State"]["Name"])
                      for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]],
        "volumes": sorted((v["VolumeId"], v["State"]) for v in ec2.describe_volumes()["Volumes"]),
        "groups": sorted(g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]),
        "keys": [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]],
        "snapshots": [s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])[
            "Snapshots"]],
    }


def launch(run_module, settings, mode="new", check_mode=False):
    return run_module(aws_session_resources.main, {
        "session": S, "mode": mode, "settings": settings, "public_key": PUBLIC_KEY},
        check_mode=check_mode, common=COMMON)


def stop(run_module, settings, check_mode=False, step="apply", **asked):
    return run_module(aws_session_resources.main, {
        "session": S, "state": "absent", "step": step,
        "settings": dict(settings, **{f"rlops_aws_{k}": v for k, v in asked.items()})},
        check_mode=check_mode, common=COMMON)


def session_group(ec2_moto):
    (group,) = ec2_moto.describe_security_groups(Filters=[
        {"Name": "group-name", "Values": [f"rlops-{S}"]}])["SecurityGroups"]
    return group


def test_check_mode_says_what_it_would_create_and_creates_nothing(ec2_moto, settings, run_module):
    before = everything(ec2_moto)
    result, failed = launch(run_module, settings, check_mode=True)
    assert not failed, result
    assert everything(ec2_moto) == before
    assert result["changed"] and result["hosts"] == []
    assert result["to_create"] == [f"instance of session {S}"]
    lines = [line.removeprefix(f"session {S}: ") for line in result["lines"]]
    assert lines[0] == "would import the key pair rlops from /home/me/.ssh/id.pub"
    assert lines[1] == f"would create the security group rlops-{S}: tcp/22 from 127.0.0.1/32"
    assert lines[2].startswith("would launch a spot t3.micro in us-east-1")
    assert lines[3].startswith("would create a 8 GiB gp3 volume in us-east-1")


def test_launch_creates_everything_and_a_rerun_finds_it(ec2_moto, settings, run_module):
    result, failed = launch(run_module, settings)
    assert not failed, result
    assert result["changed"] and result["key_pair_imported"]
    (host,) = result["hosts"]
    assert result["to_create"] == []
    volume_id = host["data_volume"]["volume_id"]
    (volume,) = ec2_moto.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    assert [a["InstanceId"] for a in volume["Attachments"]] == [host["instance_id"]]
    group = session_group(ec2_moto)
    assert group["GroupId"] == result["security_group"]["group_id"]
    assert [(p["FromPort"], [r["CidrIp"] for r in p["IpRanges"]])
            for p in group["IpPermissions"]] == [(22, ["127.0.0.1/32"])]
    tags = {t["Key"]: t["Value"] for t in group["Tags"]}
    assert tags == {"project": "unit", "rlops:session": S, "Name": f"rlops-{S}"}
    (instance,) = [i for r in ec2_moto.describe_instances()["Reservations"] for i in r["Instances"]]
    assert instance["SecurityGroups"][0]["GroupId"] == group["GroupId"]
    assert instance["KeyName"] == "rlops"
    assert result["lines"] == [
        f"session {S}: spot t3.micro {host['instance_id']} in "
        f"{host['availability_zone']} ({host['spot_price'] or 'unknown'} USD/h) with volume "
        f"{volume_id} (new) at /dev/sdf"]

    before = everything(ec2_moto)
    again, failed = launch(run_module, settings, mode="resume")
    assert not failed, again
    assert not again["changed"], again
    assert again["hosts"][0]["instance_id"] == host["instance_id"]
    assert everything(ec2_moto) == before


def test_launch_puts_the_groups_ingress_and_tags_back(ec2_moto, settings, run_module):
    launch(run_module, settings)
    group_id = session_group(ec2_moto)["GroupId"]
    ec2_moto.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
         "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    ec2_moto.authorize_security_group_egress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
         "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    egress = session_group(ec2_moto)["IpPermissionsEgress"]
    ec2_moto.create_tags(Resources=[group_id], Tags=[{"Key": "extra", "Value": "1"}])
    result, failed = launch(run_module, settings, mode="resume")
    assert not failed and result["security_group"] == {"group_id": group_id, "changed": True}
    group = session_group(ec2_moto)
    assert [p["FromPort"] for p in group["IpPermissions"]] == [22]
    assert group["IpPermissionsEgress"] == egress  # egress is left as it is
    assert "extra" not in {t["Key"] for t in group["Tags"]}


def test_an_existing_key_pair_is_kept(ec2_moto, settings, run_module):
    ec2_moto.create_key_pair(KeyName="rlops")
    before = ec2_moto.describe_key_pairs()["KeyPairs"]
    result, failed = launch(run_module, settings)
    assert not failed and not result["key_pair_imported"]
    assert ec2_moto.describe_key_pairs()["KeyPairs"] == before


def test_stop_without_options_changes_nothing(ec2_moto, settings, run_module):
    launch(run_module, settings)
    before = everything(ec2_moto)
    result, failed = stop(run_module, settings)
    assert not failed and not result["changed"], result
    assert everything(ec2_moto) == before
    assert result["lines"][0].endswith("still running, and billed: terminate it with -e "
                                       "rlops_aws_terminate=true (the volume stays)")
    assert result["lines"][1].endswith(" kept")


def test_stop_check_mode_and_check_step_change_nothing(ec2_moto, settings, run_module):
    launched, _failed = launch(run_module, settings)
    (host,) = launched["hosts"]
    before = everything(ec2_moto)
    asked = dict(terminate=True, snapshot=True, delete_volume=True)
    result, failed = stop(run_module, settings, check_mode=True, **asked)
    assert not failed, result
    assert result["lines"] == [f"instance: would terminate {host['instance_id']}",
                               f"volume: {host['data_volume']['volume_id']} would be "
                               "snapshotted and deleted"]
    result, failed = stop(run_module, settings, step="check", **asked)
    assert not failed and result["lines"] == [] and not result["changed"]
    assert everything(ec2_moto) == before


def test_stop_terminates_snapshots_and_keeps_the_volume(ec2_moto, settings, run_module):
    launched, _failed = launch(run_module, settings)
    (host,) = launched["hosts"]
    volume_id = host["data_volume"]["volume_id"]
    result, failed = stop(run_module, settings, terminate=True, snapshot=True)
    assert not failed, result
    (snapshot,) = ec2_moto.describe_snapshots(Filters=[
        {"Name": "tag:rlops:session", "Values": [S]}])["Snapshots"]
    assert snapshot["VolumeId"] == volume_id
    assert {t["Key"]: t["Value"] for t in snapshot["Tags"]} == {
        "project": "unit", "rlops:session": S, "Name": f"rlops-{S}-data"}
    assert result["lines"] == [f"instance: terminated {host['instance_id']}",
                               f"volume: {volume_id} kept, snapshot {snapshot['SnapshotId']}"]
    assert ec2_moto.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"] == "available"
    assert ec2_moto.describe_security_groups(Filters=[
        {"Name": "group-name", "Values": [f"rlops-{S}"]}])["SecurityGroups"] == []


def test_stop_deletes_the_volume_only_when_asked_with_terminate(ec2_moto, settings, run_module):
    launched, _failed = launch(run_module, settings)
    volume_id = launched["hosts"][0]["data_volume"]["volume_id"]
    before = everything(ec2_moto)
    result, failed = stop(run_module, settings, step="check", delete_volume=True)
    assert failed and result["msg"].startswith(
        "rlops_aws_delete_volume needs rlops_aws_terminate: true")
    assert everything(ec2_moto) == before
    result, failed = stop(run_module, settings, terminate="yes", delete_volume="true")
    assert not failed, result
    assert volume_id not in [v["VolumeId"] for v in ec2_moto.describe_volumes()["Volumes"]]
    assert result["lines"][1] == f"volume: {volume_id} deleted"


def test_stop_refuses_a_snapshot_without_a_volume(ec2_moto, settings, run_module):
    result, failed = stop(run_module, settings, snapshot=True)
    assert failed and result["msg"] == f"session {S} has no data volume in us-east-1 to snapshot"


def test_a_bad_session_id_is_refused_before_any_call(ec2_moto, settings, run_module):
    before = everything(ec2_moto)
    result, failed = run_module(aws_session_resources.main, {
        "session": "Bad Session", "mode": "new", "settings": settings}, common=COMMON)
    assert failed and result["msg"].startswith("aws_session_resources for session Bad Session")
    assert everything(ec2_moto) == before


@pytest.mark.parametrize("change, message", [
    ({"rlops_aws_instance_types": ["x9.bogus"]}, "Check instance types x9.bogus"),
    ({"rlops_aws_vpc_id": "vpc-0123456789abcdef0"}, "VPC vpc-0123456789abcdef0 does not exist"),
])
def test_launch_refuses_bad_input_before_anything_is_created(ec2_moto, settings, run_module,
                                                             change, message):
    before = everything(ec2_moto)
    result, failed = launch(run_module, dict(settings, **change))
    assert failed and message in result["msg"], result["msg"]
    assert everything(ec2_moto) == before


def test_resume_after_ec2_took_the_instance_moves_the_volume(ec2_moto, settings, run_module):
    launched, _failed = launch(run_module, settings)
    (old,) = launched["hosts"]
    ec2_moto.terminate_instances(InstanceIds=[old["instance_id"]])
    result, failed = launch(run_module, settings, mode="resume")
    assert not failed, result
    (new,) = result["hosts"]
    assert new["instance_id"] != old["instance_id"]
    assert new["availability_zone"] == old["availability_zone"]
    assert new["data_volume"]["volume_id"] == old["data_volume"]["volume_id"]
    (volume,) = ec2_moto.describe_volumes(VolumeIds=[old["data_volume"]["volume_id"]])["Volumes"]
    assert [a["InstanceId"] for a in volume["Attachments"]] == [new["instance_id"]]
