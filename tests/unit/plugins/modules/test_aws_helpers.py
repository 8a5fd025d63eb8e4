"""Pure helpers shared by the AWS modules: attachment plans, device paths, tags, waiter."""

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils import aws_common, aws_ebs, aws_wait
from ansible_collections.rlops.fleet.plugins.module_utils.aws_ebs import PlanError
from botocore.exceptions import ClientError, NoCredentialsError


def _instance(iid="i-abc", zone="us-east-1b", state="running", mappings=()):
    return {"InstanceId": iid, "Placement": {"AvailabilityZone": zone},
            "State": {"Name": state},
            "BlockDeviceMappings": [{"DeviceName": d, "Ebs": {"VolumeId": v}}
                                    for d, v in mappings]}


def _volume(vid="vol-123", zone="us-east-1b", state="available", attachments=()):
    return {"VolumeId": vid, "AvailabilityZone": zone, "State": state,
            "Attachments": [{"InstanceId": i, "Device": d, "State": s}
                            for i, d, s in attachments]}


# ---- device paths -----------------------------------------------------------------------

def test_host_device_candidates_per_hypervisor():
    nvme = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc123"
    assert aws_ebs.host_device_candidates("vol-0abc123", "/dev/sdf", "nitro") == [nvme]
    assert aws_ebs.host_device_candidates("vol-0abc123", "/dev/sdf", "xen") == [
        "/dev/xvdf", "/dev/sdf"]
    assert aws_ebs.host_device_candidates("vol-0abc123", "/dev/xvdg", None) == [
        nvme, "/dev/xvdg", "/dev/sdg"]
    assert aws_ebs.host_device_candidates(None, "/dev/sdf", "nitro") == []


@pytest.mark.parametrize("name", ["/dev/sdf", "/dev/sdp", "/dev/xvdf", "/dev/sdba"])
def test_linux_device_names_are_accepted(name):
    assert aws_ebs.device_name_error(name) is None


@pytest.mark.parametrize("name", ["sdf", "/dev/nvme1n1", "/dev/sda", "xvdf", "/dev/sd1"])
def test_other_device_names_are_refused(name):
    assert "is not a Linux EBS device name" in aws_ebs.device_name_error(name)


def test_sd_and_xvd_name_the_same_slot():
    assert aws_ebs.same_device("/dev/sdf", "/dev/xvdf")
    assert not aws_ebs.same_device("/dev/sdf", "/dev/sdg")
    assert not aws_ebs.same_device(None, "/dev/sdf")


# ---- plan_attach ------------------------------------------------------------------------

def test_volume_in_another_zone_is_refused_with_the_zone_to_resume_in():
    with pytest.raises(PlanError) as err:
        aws_ebs.plan_attach(_volume(zone="us-east-1a"), _instance(), "/dev/sdf")
    assert str(err.value) == ("Attach volume vol-123 to i-abc at /dev/sdf: volume is in "
                              "us-east-1a, instance in us-east-1b; resume in us-east-1a")


def test_no_volume_plans_a_create_in_the_instance_zone():
    plan = aws_ebs.plan_attach(None, _instance(), "/dev/sdf", size=50, session="s1")
    assert plan.create_zone == "us-east-1b" and plan.attach and plan.changed
    assert plan.actions() == ["create a new volume in us-east-1b",
                              "attach a new volume to i-abc at /dev/sdf",
                              "wait until the attachment is attached"]


def test_no_volume_and_no_size_says_why_nothing_can_be_created():
    with pytest.raises(PlanError, match="no volume found for session s1 and size is not set"):
        aws_ebs.plan_attach(None, _instance(), "/dev/sdf", session="s1")


def test_no_instance_needs_a_zone_to_create_in():
    assert aws_ebs.plan_attach(None, None, "/dev/sdf", zone="us-east-1c",
                               size=5).create_zone == "us-east-1c"
    with pytest.raises(PlanError, match="give instance_id or availability_zone"):
        aws_ebs.plan_attach(None, None, "/dev/sdf", size=5)


def test_requested_zone_must_match_the_instance():
    with pytest.raises(PlanError, match="availability_zone is us-east-1a but the instance"):
        aws_ebs.plan_attach(None, _instance(), "/dev/sdf", zone="us-east-1a", size=5)


def test_already_attached_here_is_no_change_and_keeps_its_device():
    volume = _volume(attachments=[("i-abc", "/dev/sdg", "attached")])
    plan = aws_ebs.plan_attach(volume, _instance(), "/dev/sdf")
    assert not plan.changed and plan.device_name == "/dev/sdg" and plan.actions() == []


def test_attaching_here_is_waited_for_without_a_new_attach():
    volume = _volume(attachments=[("i-abc", "/dev/sdf", "attaching")])
    plan = aws_ebs.plan_attach(volume, _instance(), "/dev/sdf")
    assert plan.wait_attached and not plan.attach and not plan.changed


def test_held_by_a_terminated_instance_waits_for_the_release():
    volume = _volume(state="in-use", attachments=[("i-old", "/dev/sdf", "attached")])
    plan = aws_ebs.plan_attach(volume, _instance(), "/dev/sdf",
                               holder_states={"i-old": "terminated"})
    assert plan.wait_detached == ["i-old"] and plan.attach and not plan.force_detach


def test_held_by_an_instance_ec2_forgot_waits_too():
    volume = _volume(attachments=[("i-gone", "/dev/sdf", "attached")])
    plan = aws_ebs.plan_attach(volume, _instance(), "/dev/sdf", holder_states={"i-gone": None})
    assert plan.wait_detached == ["i-gone"]


def test_held_by_a_running_instance_is_refused_unless_forced():
    volume = _volume(attachments=[("i-def", "/dev/sdf", "attached")])
    with pytest.raises(PlanError) as err:
        aws_ebs.plan_attach(volume, _instance(), "/dev/sdf", holder_states={"i-def": "running"})
    assert str(err.value) == ("Attach volume vol-123 to i-abc at /dev/sdf: volume is attached to "
                              "i-def (running); stop the session there, or set force_detach: true")
    plan = aws_ebs.plan_attach(volume, _instance(), "/dev/sdf", force_detach=True,
                               holder_states={"i-def": "running"})
    assert plan.force_detach == [("i-def", "/dev/sdf")] and plan.attach


def test_device_held_by_another_volume_is_refused():
    instance = _instance(mappings=[("/dev/xvda", "vol-root"), ("/dev/xvdf", "vol-other")])
    with pytest.raises(PlanError, match="/dev/xvdf already holds vol-other"):
        aws_ebs.plan_attach(_volume(), instance, "/dev/sdf")


def test_gone_instance_or_unusable_volume_is_refused():
    with pytest.raises(PlanError, match="the instance is terminated"):
        aws_ebs.plan_attach(_volume(), _instance(state="terminated"), "/dev/sdf")
    with pytest.raises(PlanError, match="the volume is error"):
        aws_ebs.plan_attach(_volume(state="error"), _instance(), "/dev/sdf")


# ---- plan_detach and picking the session's volume ---------------------------------------

def test_plan_detach_all_or_one_instance():
    volume = _volume(attachments=[("i-a", "/dev/sdf", "attached"),
                                  ("i-b", "/dev/sdf", "detaching")])
    plan = aws_ebs.plan_detach(volume)
    assert plan.detach == [("i-a", "/dev/sdf")] and plan.wait_detached == ["i-b"]
    assert aws_ebs.plan_detach(volume, "i-b").detach == []
    assert not aws_ebs.plan_detach(_volume()).changed


def test_pick_session_volume_ignores_deleted_and_refuses_two():
    assert aws_ebs.pick_session_volume([], "s") is None
    one = _volume("vol-1")
    assert aws_ebs.pick_session_volume([one, _volume("vol-0", state="deleting")], "s") == one
    with pytest.raises(PlanError, match=r"2 volumes carry its tag \(vol-1, vol-2\)"):
        aws_ebs.pick_session_volume([one, _volume("vol-2")], "s")


# ---- tags and errors --------------------------------------------------------------------

def test_tags_error_names_each_problem():
    assert aws_common.tags_error({"project": "rl", "team": "a b/c"}) is None
    message = aws_common.tags_error({"rlops:session": "x", "aws:foo": "y", "k": "v" * 300,
                                     "bad#key": "v"})
    assert message.startswith("invalid tags: ")
    for part in ("'rlops:session' is set by the module", "aws: prefix is reserved",
                 "values are at most 256", "'bad#key': use letters"):
        assert part in message
    assert "too many" in aws_common.tags_error({f"k{i}": "v" for i in range(49)})


def test_session_tags_add_name_unless_given():
    assert aws_common.session_tags("s1", {"a": 1}, "rlops-s1") == {
        "a": "1", "Name": "rlops-s1", "rlops:session": "s1"}
    assert aws_common.session_tags("s1", {"Name": "mine"}, "rlops-s1")["Name"] == "mine"


def test_aws_errors_prefix_what_and_explain_missing_credentials():
    with pytest.raises(aws_common.FleetAWSError) as err:
        with aws_common.aws_errors("Read volume vol-1"):
            raise NoCredentialsError()
    assert err.value.message.startswith("Read volume vol-1: no usable AWS credentials")
    assert err.value.exception is None
    client_error = ClientError({"Error": {"Code": "Boom", "Message": "no"}}, "DescribeVolumes")
    with pytest.raises(aws_common.FleetAWSError) as err:
        with aws_common.aws_errors("Read volume vol-1"):
            raise client_error
    assert err.value.message == "Read volume vol-1" and err.value.exception is client_error
    assert aws_common.error_code(client_error) == "Boom"


# ---- waiter: the one waiter (module_utils/waiting.py, test_waiting.py) with the module's
# wait_timeout and poll_interval, and its timeout in the module's words ---------------------

def test_wait_until_gives_the_state_read_when_done():
    states = iter(["attached"])
    assert aws_wait.wait_until(lambda: next(states), lambda s: s == "attached",
                               {"wait_timeout": 60, "poll_interval": 5},
                               lambda last, waited: "never") == "attached"


def test_wait_until_says_the_timeout_in_the_modules_words():
    with pytest.raises(aws_common.FleetAWSError) as err:
        aws_wait.wait_until(lambda: "attaching", lambda s: False,
                            {"wait_timeout": 0, "poll_interval": 5},
                            lambda last, waited: f"volume is {last} after {waited:.0f} s")
    assert err.value.message == "volume is attaching after 0 s"
    assert isinstance(err.value.__cause__, aws_wait.WaitTimeout)
