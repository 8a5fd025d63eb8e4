"""The spot-launch engine's decisions (module_utils/ec2_launch.py), without AWS or mocks."""

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils import ec2_launch as el
from ansible_collections.rlops.fleet.plugins.module_utils.ec2_placement import Candidate

SESSION = "cartpole-20261122t051500z"
CHEAP = Candidate("g4dn.xlarge", "us-east-1a", "0.20")
DEAR = Candidate("g5.xlarge", "us-east-1b", "0.90")


def params(**overrides):
    base = {"session": SESSION, "state": "present", "tags": {}, "instance_types": ["g4dn.xlarge"],
            "image_id": "ami-1", "launch_template": None, "max_price": None,
            "spot_type": "one-time", "instance_interruption_behavior": "terminate",
            "root_volume_size": None, "key_name": None, "security_group_ids": None,
            "user_data": None, "iam_instance_profile": None, "subnet_ids": None}
    return dict(base, **overrides)


@pytest.mark.parametrize("overrides, words", [
    ({"instance_types": []}, "instance_types is required"),
    ({"image_id": None}, "nothing to launch"),
    ({"image_id": None, "launch_template": {"id": "lt-1", "name": "x", "version": "1"}},
     "exactly one of id and name"),
    ({"max_price": "free"}, "'free' is not a positive number"),
    ({"max_price": "-1"}, "is not a positive number"),
    ({"root_volume_size": 0}, "at least 1 GiB"),
    ({"spot_type": "one-time", "instance_interruption_behavior": "stop"}, "needs spot_type"),
    ({"tags": {"rlops:session": "x"}}, "set by the module"),
    ({"session": "Bad Session"}, ""),
])
def test_params_error_names_the_first_problem(overrides, words):
    problem = el.params_error(params(**overrides))
    assert problem and words in problem


def test_params_error_is_empty_for_good_arguments_and_absent_needs_less():
    assert el.params_error(params()) == ""
    assert el.params_error(params(state="absent", instance_types=None, image_id=None)) == ""


def test_root_device_takes_the_image_size_unless_larger_is_asked():
    image = {"RootDeviceName": "/dev/sda1",
             "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}}]}
    assert el.root_device(image, None) == ("/dev/sda1", 8, None)
    assert el.root_device(image, 100) == ("/dev/sda1", 100, None)
    device, size, problem = el.root_device(image, 4)
    assert size is None and "smaller than the image's root snapshot (8 GiB)" in problem
    assert el.root_device({}, None) == ("/dev/xvda", None, None)  # moto leaves fields out


def test_a_template_without_an_ami_cannot_be_encrypted():
    template = {"name": "rlops", "version": "$Default"}
    assert el.template_image_error({"ImageId": "ami-1"}, template) is None
    problem = el.template_image_error({"ImageId": "resolve:ssm:/x"}, template)
    assert "Read launch template rlops: version $Default names no AMI id" in problem


def test_base_request_encrypts_the_root_volume_and_requires_imdsv2():
    request = el.base_request(params(key_name="k", security_group_ids=["sg-1"],
                                     iam_instance_profile="arn:aws:iam::1:instance-profile/p",
                                     launch_template={"id": "lt-1", "version": "3"}),
                              "/dev/xvda", 50)
    assert request["MetadataOptions"]["HttpTokens"] == "required"
    assert request["BlockDeviceMappings"] == [{"DeviceName": "/dev/xvda", "Ebs": {
        "Encrypted": True, "VolumeType": "gp3", "DeleteOnTermination": True, "VolumeSize": 50}}]
    assert request["LaunchTemplate"] == {"Version": "3", "LaunchTemplateId": "lt-1"}
    assert request["IamInstanceProfile"] == {"Arn": "arn:aws:iam::1:instance-profile/p"}
    assert request["KeyName"] == "k" and request["SecurityGroupIds"] == ["sg-1"]
    assert "UserData" not in request
    # No size asked and none in the image: no VolumeSize at all.
    assert "VolumeSize" not in el.base_request(params(), "/dev/xvda", None)[
        "BlockDeviceMappings"][0]["Ebs"]


def test_candidate_request_places_tags_and_market():
    tags = {"Name": "rlops-x", "rlops:session": SESSION}
    spot = el.candidate_request({"MinCount": 1}, params(max_price="0.5"), tags, CHEAP, "spot")
    assert spot["Placement"] == {"AvailabilityZone": "us-east-1a"}
    assert spot["InstanceMarketOptions"]["SpotOptions"]["MaxPrice"] == "0.5"
    assert [s["ResourceType"] for s in spot["TagSpecifications"]] == [
        "instance", "spot-instances-request", "volume"]
    assert {"Key": "rlops:role", "Value": "root"} in spot["TagSpecifications"][-1]["Tags"]
    on_demand = el.candidate_request({}, params(subnet_ids={"us-east-1a": "subnet-1"}), tags,
                                     CHEAP, "on-demand")
    assert on_demand["SubnetId"] == "subnet-1" and "Placement" not in on_demand
    assert "InstanceMarketOptions" not in on_demand


def test_launch_plan_skips_the_dear_and_falls_back_on_demand_to_every_candidate():
    plan, skipped = el.launch_plan([CHEAP, DEAR], [CHEAP], [DEAR], "0.5", True)
    assert plan == [(CHEAP, "spot"), (CHEAP, "on-demand"), (DEAR, "on-demand")]
    assert skipped[0]["outcome"] == "skipped"
    assert skipped[0]["message"] == "latest price 0.90 is above max_price 0.5"
    assert el.launch_plan([DEAR], [], [DEAR], "0.5", False)[0] == []


def test_planned_result_reports_the_first_candidate_and_all_to_try():
    plan = [(CHEAP, "spot"), (DEAR, "spot")]
    result = el.planned_result(plan, [], None)
    assert result["changed"] and result["instance_id"] is None
    assert (result["instance_type"], result["lifecycle"]) == ("g4dn.xlarge", "spot")
    assert [c["outcome"] for c in result["candidates"]] == ["planned", "planned"]


def test_no_capacity_message_lists_every_try_and_what_to_change():
    tried = [el.candidate_record(CHEAP, "spot", "InsufficientInstanceCapacity")]
    message = el.no_capacity_message(SESSION, tried, False)
    assert "spot g4dn.xlarge in us-east-1a: InsufficientInstanceCapacity" in message
    assert "set on_demand_fallback: true" in message
    assert "on_demand_fallback" not in el.no_capacity_message(SESSION, tried, True)


def instance(state, reason=None, **extra):
    found = {"InstanceId": "i-1", "State": {"Name": state}, **extra}
    if reason:
        found["StateReason"] = {"Code": reason, "Message": f"{reason} happened"}
    return found


def request(code):
    return {"SpotInstanceRequestId": "sir-1", "Status": {"Code": code, "Message": code}}


@pytest.mark.parametrize("found, spot, verdict", [
    (instance("running"), request("fulfilled"), "done"),
    (instance("pending"), request("pending-fulfillment"), "wait"),
    (instance("pending"), None, "wait"),
    (instance("pending"), request("capacity-not-available"), "next"),
    (instance("terminated", "Server.InsufficientInstanceCapacity"), None, "next"),
    (instance("terminated", "Client.UserInitiatedShutdown"), request("fulfilled"), "fail"),
    (instance("stopped"), request("bad-parameters"), "fail"),
])
def test_running_verdict(found, spot, verdict):
    assert el.running_verdict(found, spot)[0] == verdict


def test_running_verdict_says_why_it_failed_and_the_timeout_what_to_do():
    _v, code, message = el.running_verdict(
        instance("terminated", "Client.UserInitiatedShutdown"), request("fulfilled"))
    assert code == "terminated"
    assert message == ("instance i-1 went terminated before it ran (Client.UserInitiatedShutdown "
                       "happened; spot request status fulfilled)")
    late = el.still_pending_message(instance("pending"), None, 61.2)
    assert late.startswith("instance i-1 is still pending after 61s (spot request status: none)")


def test_a_found_instance_in_another_zone_or_stopping_is_refused():
    placed = {"Placement": {"AvailabilityZone": "us-east-1a"}}
    assert el.found_instance_problem(instance("running", **placed), None) is None
    assert el.found_instance_problem(instance("running", **placed), "us-east-1a") is None
    assert "availability_zone is us-east-1b" in el.found_instance_problem(
        instance("running", **placed), "us-east-1b")
    assert "stopping" in el.found_instance_problem(instance("stopping"), None)


def test_a_stopped_instance_is_restarted_only_when_a_user_stopped_it():
    assert el.restart_problem(None) is None  # on-demand
    assert el.restart_problem(request("instance-stopped-by-user")) is None
    assert "EC2 stopped it (instance-stopped-no-capacity)" in el.restart_problem(
        request("instance-stopped-no-capacity"))


def test_instance_diff_and_summary():
    found = instance("running", InstanceType="g4dn.xlarge", InstanceLifecycle="spot",
                     Placement={"AvailabilityZone": "us-east-1a"})
    summary = el.instance_summary(found)
    assert summary["lifecycle"] == "spot" and summary["availability_zone"] == "us-east-1a"
    diff = el.instance_diff(summary, None)
    assert diff["before"] == {} and diff["after"]["instance_id"] == "i-1"
    assert el.instance_diff(summary, found)["before"]["instance_type"] == "g4dn.xlarge"


def test_the_launch_options_spec_matches_its_doc_fragment():
    import yaml
    from ansible_collections.rlops.fleet.plugins.doc_fragments.ec2_launch import (
        ModuleDocFragment,
    )
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    assert sorted(documented) == sorted(el.LAUNCH_ARGUMENT_SPEC)
