"""ebs_volume_attachment's argument checks, create request and tag decisions
(module_utils/aws_ebs.py), and the waiter's timeout message (module_utils/aws_wait.py)."""

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils import aws_ebs, aws_wait
from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import (
    FleetAWSError,
    tag_dict,
)

SESSION = "cartpole-20261122t051500z"


def params(**overrides):
    base = {"state": "present", "session": SESSION, "tags": {}, "device_name": "/dev/sdf",
            "volume_type": "gp3", "size": 100, "iops": None, "throughput": None,
            "kms_key_id": None}
    return dict(base, **overrides)


@pytest.mark.parametrize("overrides, words", [
    ({"size": 0}, "size must be at least 1 GiB"),
    ({"volume_type": "st1", "iops": 3000}, "iops applies to gp3, io1 and io2 volumes, not st1"),
    ({"volume_type": "io2"}, "volume_type io2 needs iops"),
    ({"volume_type": "gp2", "throughput": 250}, "throughput applies to gp3 volumes only"),
    ({"device_name": "/dev/nvme1n1"}, "is not a Linux EBS device name"),
    ({"tags": {"aws:x": "y"}}, "the aws: prefix is reserved"),
])
def test_params_error(overrides, words):
    assert words in aws_ebs.params_error(params(**overrides))


def test_params_error_accepts_good_arguments_and_absent_checks_only_tags_and_session():
    assert aws_ebs.params_error(params(volume_type="io1", iops=3000)) == ""
    assert aws_ebs.params_error(params(state="absent", size=0, device_name="x")) == ""


def test_create_request_is_encrypted_and_carries_only_given_options():
    tags = {"rlops:session": SESSION, "rlops:role": "data"}
    request = aws_ebs.create_request(params(throughput=250), "us-east-1b", tags)
    assert request == {"AvailabilityZone": "us-east-1b", "Size": 100, "VolumeType": "gp3",
                       "Encrypted": True, "Throughput": 250, "TagSpecifications": [
                           {"ResourceType": "volume", "Tags": [
                               {"Key": "rlops:role", "Value": "data"},
                               {"Key": "rlops:session", "Value": SESSION}]}]}


def test_missing_tags_never_relabel_or_rename_a_found_volume():
    wanted = {"Name": f"rlops-{SESSION}-data", "rlops:session": SESSION, "rlops:role": "data"}
    assert aws_ebs.missing_tags(None, wanted, SESSION) == {}
    bare = {"VolumeId": "vol-1"}
    assert aws_ebs.missing_tags(bare, wanted, SESSION) == wanted
    assert aws_ebs.missing_tags(bare, wanted, None) == {
        "Name": f"rlops-{SESSION}-data", "rlops:session": SESSION}
    labelled = {"Tags": [{"Key": "Name", "Value": "mine"}, {"Key": "rlops:role", "Value": "x"}]}
    assert aws_ebs.missing_tags(labelled, wanted, SESSION) == {"rlops:session": SESSION}


def test_attachment_state_snapshot_and_holders():
    volume = {"VolumeId": "vol-1", "Attachments": [
        {"InstanceId": "i-1", "Device": "/dev/sdf"},  # moto: no State
        {"InstanceId": "i-2", "Device": "/dev/sdg", "State": "attaching"},
        {"InstanceId": "i-3", "State": "detached"}]}
    assert aws_ebs.is_attached(aws_ebs.attachment_to(volume, "i-1"))
    assert not aws_ebs.is_attached(aws_ebs.attachment_to(volume, "i-2"))
    assert aws_ebs.attachment_to(volume, "i-3") is None
    assert aws_ebs.attachment_snapshot(volume, "i-2") == {
        "volume_id": "vol-1", "attached_to": ["i-1", "i-2"], "device_name": "/dev/sdg"}
    assert aws_ebs.holders_text(volume) == "i-1 (attached), i-2 (attaching)"
    assert aws_ebs.holders_text(None) == "none"
    assert aws_ebs.volume_summary(None) is None


def test_tag_dict_tolerates_what_moto_leaves_out():
    assert tag_dict({}) == {}
    assert tag_dict({"Tags": [{"Key": "a"}, {"Key": "b", "Value": "c"}, "junk"]}) == {
        "a": "", "b": "c"}


def test_wait_until_turns_the_timeout_into_the_modules_message():
    with pytest.raises(FleetAWSError) as err:
        aws_wait.wait_until(lambda: "attaching", lambda state: False,
                            {"wait_timeout": 0, "poll_interval": 0},
                            lambda last, elapsed: f"still {last} after {elapsed:.0f}s")
    assert err.value.message == "still attaching after 0s"
    assert aws_wait.wait_until(lambda: "attached", lambda state: state == "attached",
                               {"wait_timeout": 0, "poll_interval": 0}, str) == "attached"
