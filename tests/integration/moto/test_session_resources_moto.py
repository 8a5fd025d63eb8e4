"""aws_session_resources through real ansible-playbook runs against a moto server, as the
AWS provider runs it: check mode creates nothing; launch makes the key pair, the security
group, the instance and its volume; a re-run changes nothing; resume after EC2 took the
instance launches a new one in the volume's zone and moves the volume to it; stop
terminates and snapshots, keeping the volume, and deletes it only when asked."""

import pytest

# The fixtures ami, ec2 and moto_url are used by name (pytest), not in the code.
# pylint: disable-next=unused-import
from test_modules_moto import Runner, ami, ec2, moto_url, session_instances  # noqa: F401

SESSION = "moto-res-20261206t160000z"
PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHV0n7CwvN9bLk1Uf2V3Yk1xh1JtF1C4Qmy9gqYkKx3g "
              "moto")


@pytest.fixture
def run(moto_url, tmp_path):  # noqa: F811
    return Runner(moto_url, tmp_path)


def settings(ami, **more):  # noqa: F811
    return {"rlops_aws_instance_types": ["t3.micro"], "rlops_aws_image_id": ami,
            "rlops_aws_tags": {"project": "rl"}, "rlops_aws_volume_size": 8,
            "rlops_aws_volume_type": "gp3", "rlops_aws_volume_device": "/dev/sdf",
            "rlops_aws_key_name": "rlops-moto", "rlops_aws_public_key_file": "/k.pub",
            "rlops_aws_ssh_cidr": "127.0.0.1/32", "rlops_aws_wait_timeout": 60,
            "rlops_aws_poll_interval": 0.2, **more}


def launch(ami, mode):  # noqa: F811
    return ("aws_session_resources", {"session": SESSION, "mode": mode,
                                      "settings": settings(ami), "public_key": PUBLIC_KEY},
            False)


def stop(ami, **asked):  # noqa: F811
    return ("aws_session_resources", {
        "session": SESSION, "state": "absent",
        "settings": settings(ami, **{f"rlops_aws_{k}": v for k, v in asked.items()})}, False)


def volumes(ec2):  # noqa: F811
    return ec2.describe_volumes(Filters=[{"Name": "tag:rlops:session", "Values": [SESSION]},
                                         {"Name": "tag:rlops:role", "Values": ["data"]}]
                                )["Volumes"]


def test_launch_resume_stop(run, ec2, ami):  # noqa: F811
    module, args, _check = launch(ami, "new")
    planned, made, again = run.steps((module, args, True), (module, args, False),
                                     (module, dict(args, mode="resume"), False))
    assert not planned.get("failed"), planned.get("msg")
    assert planned["changed"] and planned["hosts"] == []
    assert planned["lines"][0] == (
        f"session {SESSION}: would import the key pair rlops-moto from /k.pub")
    assert not made.get("failed"), made.get("msg")
    (host,) = made["hosts"]
    assert made["changed"] and made["key_pair_imported"]
    assert again["changed"] is False and again["hosts"][0]["instance_id"] == host["instance_id"]
    (volume,) = volumes(ec2)
    assert [a["InstanceId"] for a in volume["Attachments"]] == [host["instance_id"]]
    assert ec2.describe_key_pairs(KeyNames=["rlops-moto"])["KeyPairs"]

    # EC2 takes the instance; resume launches a new one in the volume's zone and moves it.
    ec2.terminate_instances(InstanceIds=[host["instance_id"]])
    (resumed,) = run.steps(launch(ami, "resume"))
    assert not resumed.get("failed"), resumed.get("msg")
    (new,) = resumed["hosts"]
    assert new["instance_id"] != host["instance_id"]
    assert new["availability_zone"] == volume["AvailabilityZone"]
    assert [a["InstanceId"] for a in volumes(ec2)[0]["Attachments"]] == [new["instance_id"]]

    # Stop: terminate and snapshot (the volume stays); then delete it, asked for.
    kept, deleted = run.steps(stop(ami, terminate=True, snapshot=True),
                              stop(ami, terminate=True, delete_volume=True))
    assert not kept.get("failed"), kept.get("msg")
    (snapshot,) = ec2.describe_snapshots(Filters=[
        {"Name": "tag:rlops:session", "Values": [SESSION]}])["Snapshots"]
    assert kept["lines"] == [
        f"instance: terminated {new['instance_id']}",
        f"volume: {volume['VolumeId']} kept, snapshot {snapshot['SnapshotId']}"]
    assert session_instances(ec2, SESSION) == []
    assert not deleted.get("failed"), deleted.get("msg")
    assert deleted["lines"] == ["instance: none running", f"volume: {volume['VolumeId']} deleted"]
    assert volumes(ec2) == []
    assert ec2.describe_security_groups(Filters=[
        {"Name": "group-name", "Values": [f"rlops-{SESSION}"]}])["SecurityGroups"] == []
