"""stop.yml's AWS options on a session whose instance is already gone (moto only): the
volume is snapshotted, then deleted - only because both were asked for."""

from __future__ import annotations

from awslab import REGION, AwsPlaybooks

SESSION = "gone-20261122t090000z"


def test_snapshot_then_delete_the_volume_of_a_session_without_instance(
    moto_url, ec2, tmp_path
):
    volume_id = ec2.create_volume(AvailabilityZone="us-east-1c", Size=8, TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "rlops:session", "Value": SESSION},
                                            {"Key": "rlops:role", "Value": "data"}]}]
    )["VolumeId"]
    playbooks = AwsPlaybooks(moto_url, tmp_path, {
        "rlops_aws_region": REGION, "rlops_aws_ssh_cidr": "127.0.0.1/32",
        "rlops_aws_connect": {"ansible_host": "127.0.0.1", "ansible_port": 9},
        "rlops_aws_poll_interval": 0.2, "rlops_aws_tags": {"project": "stop-options"}})

    out = playbooks.run("stop", rlops_session=SESSION, rlops_aws_terminate=True,
                        rlops_aws_snapshot=True, rlops_aws_delete_volume=True).stdout

    (snapshot,) = ec2.describe_snapshots(Filters=[
        {"Name": "tag:rlops:session", "Values": [SESSION]}])["Snapshots"]
    assert snapshot["VolumeId"] == volume_id
    tags = {t["Key"]: t["Value"] for t in snapshot["Tags"]}
    assert tags["project"] == "stop-options" and tags["Name"] == f"rlops-{SESSION}-data"
    assert ec2.describe_volumes(Filters=[
        {"Name": "tag:rlops:session", "Values": [SESSION]}])["Volumes"] == []
    assert f"volume: {volume_id} deleted, snapshot {snapshot['SnapshotId']}" in out, out[-3000:]
    assert "instance: none running" in out
