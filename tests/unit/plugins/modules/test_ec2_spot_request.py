"""ec2_spot_request against botocore's Stubber: the exact EC2 call sequence per scenario."""

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils.ec2_placement import (
    Candidate,
    client_token,
)
from ansible_collections.rlops.fleet.plugins.modules import ec2_spot_request
from botocore.stub import ANY

SESSION = "cartpole-20261122t051500z"
AMI = "ami-0123456789abcdef0"
ZONES = ("us-east-1a", "us-east-1b")
TAGS = [{"Key": "Name", "Value": f"rlops-{SESSION}"}, {"Key": "project", "Value": "rl"},
        {"Key": "rlops:session", "Value": SESSION}]
ROOT_TAGS = [TAGS[0], TAGS[1], {"Key": "rlops:role", "Value": "root"}, TAGS[2]]
ARGS = {"session": SESSION, "instance_types": ["g4dn.xlarge"], "image_id": AMI,
        "tags": {"project": "rl"}}


def main():
    ec2_spot_request.main()


# ---- stubbed calls, in the order the module makes them --------------------------------

def zones(stub, names=ZONES):
    stub.add_response(
        "describe_availability_zones",
        {"AvailabilityZones": [{"ZoneName": z, "State": "available"} for z in names]},
        {"Filters": [{"Name": "zone-type", "Values": ["availability-zone"]}]})


def types_ok(stub, kinds=("g4dn.xlarge",)):
    stub.add_response("describe_instance_types",
                      {"InstanceTypes": [{"InstanceType": k} for k in kinds]},
                      {"InstanceTypes": list(kinds)})


def live(stub, instances=()):
    stub.add_response(
        "describe_instances",
        {"Reservations": [{"Instances": list(instances)}] if instances else []},
        {"Filters": [{"Name": "tag:rlops:session", "Values": [SESSION]},
                     {"Name": "instance-state-name",
                      "Values": ["pending", "running", "stopping", "stopped"]}]})


def offerings(stub, pairs, kinds=("g4dn.xlarge",), zone_names=ZONES):
    stub.add_response(
        "describe_instance_type_offerings",
        {"InstanceTypeOfferings": [{"InstanceType": t, "Location": z,
                                    "LocationType": "availability-zone"} for t, z in pairs]},
        {"LocationType": "availability-zone",
         "Filters": [{"Name": "instance-type", "Values": list(kinds)},
                     {"Name": "location", "Values": list(zone_names)}]})


def prices(stub, table, kinds=("g4dn.xlarge",), zone=None):
    expected = {"InstanceTypes": list(kinds),
                "ProductDescriptions": ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
                "StartTime": ANY}
    if zone:
        expected["AvailabilityZone"] = zone
    stub.add_response(
        "describe_spot_price_history",
        {"SpotPriceHistory": [{"InstanceType": t, "AvailabilityZone": z, "SpotPrice": p,
                               "ProductDescription": "Linux/UNIX"}
                              for (t, z), p in table.items()]},
        expected)


def image(stub):
    stub.add_response(
        "describe_images",
        {"Images": [{"ImageId": AMI, "RootDeviceName": "/dev/xvda",
                     "BlockDeviceMappings": [{"DeviceName": "/dev/xvda",
                                              "Ebs": {"VolumeSize": 8}}]}]},
        {"ImageIds": [AMI]})


def launch_params(kind, zone, market="spot", generation=0, size=8):
    """What RunInstances must receive: IMDSv2 only, encrypted root, tags everywhere."""
    params = {
        "ClientToken": client_token(SESSION, Candidate(kind, zone), market, generation),
        "MinCount": 1, "MaxCount": 1,
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled",
                            "HttpPutResponseHopLimit": 2},
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {
            "Encrypted": True, "VolumeType": "gp3", "DeleteOnTermination": True,
            "VolumeSize": size}}],
        "ImageId": AMI,
        "InstanceType": kind,
        "Placement": {"AvailabilityZone": zone},
        "TagSpecifications": [{"ResourceType": "instance", "Tags": TAGS}],
    }
    if market == "spot":
        params["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": {
            "SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}}
        params["TagSpecifications"].append(
            {"ResourceType": "spot-instances-request", "Tags": TAGS})
    params["TagSpecifications"].append({"ResourceType": "volume", "Tags": ROOT_TAGS})
    return params


def instance(iid, kind, zone, state="running", request="sir-1", **extra):
    found = {"InstanceId": iid, "InstanceType": kind, "State": {"Name": state},
             "Placement": {"AvailabilityZone": zone}, "PrivateIpAddress": "10.0.0.5", **extra}
    if request:
        found.update(SpotInstanceRequestId=request, InstanceLifecycle="spot")
    return found


def launched(stub, params, found):
    stub.add_response("run_instances", {"Instances": [found]}, params)


def launch_refused(stub, params, code):
    stub.add_client_error("run_instances", service_error_code=code,
                          service_message=f"{code} for this candidate",
                          expected_params=params)


def read_instance(stub, found):
    stub.add_response("describe_instances", {"Reservations": [{"Instances": [found]}]},
                      {"InstanceIds": [found["InstanceId"]]})


def read_request(stub, rid, state="active", code="fulfilled", price="0.526"):
    stub.add_response(
        "describe_spot_instance_requests",
        {"SpotInstanceRequests": [{"SpotInstanceRequestId": rid, "State": state,
                                   "Status": {"Code": code}, "SpotPrice": price}]},
        {"SpotInstanceRequestIds": [rid]})


# ---- present ------------------------------------------------------------------------------

def test_capacity_error_on_the_cheapest_candidate_moves_to_the_next(ec2_stub, run_module):
    _client, stub = ec2_stub
    zones(stub)
    types_ok(stub)
    live(stub)
    offerings(stub, [("g4dn.xlarge", z) for z in ZONES])
    prices(stub, {("g4dn.xlarge", "us-east-1a"): "0.31", ("g4dn.xlarge", "us-east-1b"): "0.21"})
    image(stub)
    # 1b is cheaper, so it goes first, and has no capacity.
    launch_refused(stub, launch_params("g4dn.xlarge", "us-east-1b"),
                   "InsufficientInstanceCapacity")
    running = instance("i-2", "g4dn.xlarge", "us-east-1a", state="running")
    launched(stub, launch_params("g4dn.xlarge", "us-east-1a"), dict(running, State={
        "Name": "pending"}))
    read_instance(stub, running)  # wait: running at the first read
    read_request(stub, "sir-1")
    read_instance(stub, dict(running, PublicIpAddress="203.0.113.7"))  # result read
    read_request(stub, "sir-1")

    result, failed = run_module(main, ARGS)

    assert not failed, result["msg"]
    stub.assert_no_pending_responses()
    assert result["changed"] is True
    assert (result["instance_id"], result["availability_zone"], result["instance_type"]) == (
        "i-2", "us-east-1a", "g4dn.xlarge")
    assert (result["lifecycle"], result["request_id"], result["spot_price"],
            result["max_price"], result["public_ip"]) == (
        "spot", "sir-1", "0.31", "0.526", "203.0.113.7")
    assert [(c["availability_zone"], c["outcome"]) for c in result["candidates"]] == [
        ("us-east-1b", "InsufficientInstanceCapacity"), ("us-east-1a", "launched")]


def test_request_status_without_capacity_cleans_up_and_moves_on(ec2_stub, run_module):
    _client, stub = ec2_stub
    zones(stub)
    types_ok(stub)
    live(stub)
    offerings(stub, [("g4dn.xlarge", z) for z in ZONES])
    prices(stub, {("g4dn.xlarge", "us-east-1a"): "0.2", ("g4dn.xlarge", "us-east-1b"): "0.3"})
    image(stub)
    pending = instance("i-1", "g4dn.xlarge", "us-east-1a", state="pending", request="sir-1")
    launched(stub, launch_params("g4dn.xlarge", "us-east-1a"), pending)
    read_instance(stub, pending)
    read_request(stub, "sir-1", state="open", code="capacity-not-available")
    stub.add_response("cancel_spot_instance_requests", {}, {"SpotInstanceRequestIds": ["sir-1"]})
    stub.add_response("terminate_instances", {}, {"InstanceIds": ["i-1"]})
    running = instance("i-2", "g4dn.xlarge", "us-east-1b", request="sir-2")
    launched(stub, launch_params("g4dn.xlarge", "us-east-1b"), running)
    read_instance(stub, running)
    read_request(stub, "sir-2")
    read_instance(stub, running)
    read_request(stub, "sir-2")

    result, failed = run_module(main, ARGS)

    assert not failed, result["msg"]
    stub.assert_no_pending_responses()
    assert result["instance_id"] == "i-2"
    assert [c["outcome"] for c in result["candidates"]] == ["capacity-not-available", "launched"]


def test_no_spot_capacity_anywhere_falls_back_to_on_demand(ec2_stub, run_module):
    _client, stub = ec2_stub
    zones(stub, ["us-east-1a"])
    types_ok(stub)
    live(stub)
    offerings(stub, [("g4dn.xlarge", "us-east-1a")], zone_names=["us-east-1a"])
    prices(stub, {("g4dn.xlarge", "us-east-1a"): "0.2"}, zone="us-east-1a")
    image(stub)
    launch_refused(stub, launch_params("g4dn.xlarge", "us-east-1a"), "SpotMaxPriceTooLow")
    running = instance("i-9", "g4dn.xlarge", "us-east-1a", request=None)
    launched(stub, launch_params("g4dn.xlarge", "us-east-1a", market="on-demand"), running)
    read_instance(stub, running)
    read_instance(stub, running)

    result, failed = run_module(main, dict(ARGS, on_demand_fallback=True))

    assert not failed, result["msg"]
    stub.assert_no_pending_responses()
    assert (result["lifecycle"], result["spot_price"], result["request_id"]) == (
        "on-demand", None, None)
    assert [(c["market"], c["outcome"]) for c in result["candidates"]] == [
        ("spot", "SpotMaxPriceTooLow"), ("on-demand", "launched")]


def test_no_capacity_and_no_fallback_fails_with_every_candidate(ec2_stub, run_module):
    _client, stub = ec2_stub
    zones(stub, ["us-east-1a"])
    types_ok(stub)
    live(stub)
    offerings(stub, [("g4dn.xlarge", "us-east-1a")], zone_names=["us-east-1a"])
    prices(stub, {}, zone="us-east-1a")
    image(stub)
    launch_refused(stub, launch_params("g4dn.xlarge", "us-east-1a"),
                   "MaxSpotInstanceCountExceeded")

    result, failed = run_module(main, ARGS)

    assert failed
    stub.assert_no_pending_responses()
    assert result["msg"] == (
        f"Launch an instance for session {SESSION}: no candidate had capacity (spot "
        "g4dn.xlarge in us-east-1a: MaxSpotInstanceCountExceeded); add instance types or "
        "zones, raise max_price, or set on_demand_fallback: true")
    assert len(result["candidates"]) == 1


def test_a_token_of_a_terminated_instance_moves_to_the_next_generation(ec2_stub, run_module):
    _client, stub = ec2_stub
    zones(stub, ["us-east-1a"])
    types_ok(stub)
    live(stub)
    offerings(stub, [("g4dn.xlarge", "us-east-1a")], zone_names=["us-east-1a"])
    prices(stub, {}, zone="us-east-1a")
    image(stub)
    launch_refused(stub, launch_params("g4dn.xlarge", "us-east-1a"),
                   "IdempotentInstanceTerminated")
    running = instance("i-3", "g4dn.xlarge", "us-east-1a")
    launched(stub, launch_params("g4dn.xlarge", "us-east-1a", generation=1), running)
    read_instance(stub, running)
    read_request(stub, "sir-1")
    read_instance(stub, running)
    read_request(stub, "sir-1")
    prices(stub, {("g4dn.xlarge", "us-east-1a"): "0.24"}, zone="us-east-1a")

    result, failed = run_module(main, ARGS)

    assert not failed, result["msg"]
    stub.assert_no_pending_responses()
    assert result["instance_id"] == "i-3" and result["spot_price"] == "0.24"


def test_rerun_finds_the_session_instance_and_changes_nothing(ec2_stub, run_module):
    _client, stub = ec2_stub
    zones(stub)
    types_ok(stub)
    running = instance("i-1", "g4dn.xlarge", "us-east-1b")
    live(stub, [running])
    read_instance(stub, running)
    read_request(stub, "sir-1")
    prices(stub, {("g4dn.xlarge", "us-east-1b"): "0.22"}, zone="us-east-1b")

    result, failed = run_module(main, ARGS)

    assert not failed, result["msg"]
    stub.assert_no_pending_responses()
    assert result["changed"] is False and result["candidates"] == []
    assert result["instance_id"] == "i-1" and result["spot_price"] == "0.22"


def test_session_instance_in_another_zone_than_the_volume_is_refused(ec2_stub, run_module):
    _client, stub = ec2_stub
    zones(stub)
    types_ok(stub)
    live(stub, [instance("i-1", "g4dn.xlarge", "us-east-1b")])

    result, failed = run_module(main, dict(ARGS, availability_zone="us-east-1a"))

    assert failed
    stub.assert_no_pending_responses()
    assert result["msg"].startswith(
        f"Use instance i-1 of session {SESSION}: it runs in us-east-1b but availability_zone "
        "is us-east-1a")


def test_check_mode_plans_the_candidates_and_launches_nothing(ec2_stub, run_module):
    _client, stub = ec2_stub
    zones(stub)
    types_ok(stub)
    live(stub)
    offerings(stub, [("g4dn.xlarge", z) for z in ZONES])
    prices(stub, {("g4dn.xlarge", "us-east-1a"): "0.3", ("g4dn.xlarge", "us-east-1b"): "0.2"})
    image(stub)

    result, failed = run_module(main, ARGS, check_mode=True, diff=True)

    assert not failed, result["msg"]
    stub.assert_no_pending_responses()
    assert result["changed"] is True and result["instance_id"] is None
    assert (result["availability_zone"], result["spot_price"]) == ("us-east-1b", "0.2")
    assert [c["outcome"] for c in result["candidates"]] == ["planned", "planned"]
    assert result["diff"]["after"]["availability_zone"] == "us-east-1b"


# ---- bad input: one message, no mutation ------------------------------------------------

def test_unknown_instance_type_fails_before_any_change(ec2_stub, run_module):
    _client, stub = ec2_stub
    zones(stub)
    stub.add_client_error(
        "describe_instance_types", service_error_code="InvalidInstanceType",
        service_message="The following supplied instance types do not exist: [g9.huge]",
        expected_params={"InstanceTypes": ["g9.huge"]})

    result, failed = run_module(main, dict(ARGS, instance_types=["g9.huge"]))

    assert failed
    stub.assert_no_pending_responses()
    assert result["msg"] == ("Check instance types g9.huge: The following supplied instance "
                             "types do not exist: [g9.huge]")


def test_zone_outside_the_region_fails_before_any_change(ec2_stub, run_module):
    _client, stub = ec2_stub
    zones(stub)

    result, failed = run_module(main, dict(ARGS, availability_zones=["eu-west-1a"]))

    assert failed
    stub.assert_no_pending_responses()
    assert result["msg"] == (
        f"Launch an instance for session {SESSION}: availability zone eu-west-1a is not in "
        "us-east-1 (zones there: us-east-1a, us-east-1b)")


@pytest.mark.parametrize("args, message", [
    ({"tags": {"aws:owner": "x"}}, "the aws: prefix is reserved"),
    ({"tags": {"rlops:session": "x"}}, "is set by the module"),
    ({"session": "Bad_Session"}, "session id 'Bad_Session' is invalid"),
    ({"instance_interruption_behavior": "stop"}, "needs spot_type=persistent"),
    ({"image_id": None}, "give image_id or launch_template"),
    ({"max_price": "cheap"}, "max_price 'cheap' is not a positive number"),
])
def test_bad_arguments_fail_before_any_call(ec2_stub, run_module, args, message):
    _client, stub = ec2_stub
    result, failed = run_module(main, dict(ARGS, **args))
    assert failed and message in result["msg"]
    stub.assert_no_pending_responses()


def test_missing_credentials_give_one_clear_message(run_module, monkeypatch, tmp_path):
    # A real client (no Stubber): botocore fails while signing, before any request is sent.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result, failed = run_module(
        main, dict(ARGS, endpoint_url="http://127.0.0.1:9", poll_interval=0),
        common={"region": "us-east-1"})
    assert failed
    assert result["msg"].startswith(
        "List the availability zones of region us-east-1: no usable AWS credentials")


# ---- absent -------------------------------------------------------------------------------

def test_absent_cancels_the_request_terminates_and_waits(ec2_stub, run_module):
    _client, stub = ec2_stub
    running = instance("i-1", "g4dn.xlarge", "us-east-1a", request="sir-1")
    live(stub, [running])
    stub.add_response(
        "describe_spot_instance_requests",
        {"SpotInstanceRequests": [{"SpotInstanceRequestId": "sir-1", "State": "active"}]},
        {"Filters": [{"Name": "tag:rlops:session", "Values": [SESSION]},
                     {"Name": "state", "Values": ["open", "active", "disabled"]}]})
    stub.add_response("cancel_spot_instance_requests", {}, {"SpotInstanceRequestIds": ["sir-1"]})
    stub.add_response("terminate_instances", {}, {"InstanceIds": ["i-1"]})
    read_instance(stub, dict(running, State={"Name": "shutting-down"}))
    read_instance(stub, dict(running, State={"Name": "terminated"}))

    result, failed = run_module(main, {"session": SESSION, "state": "absent",
                                       "terminate_instance": True})

    assert not failed, result["msg"]
    stub.assert_no_pending_responses()
    assert result["changed"] is True
    assert result["cancelled_requests"] == ["sir-1"]
    assert result["terminated_instances"] == ["i-1"]


def test_absent_with_nothing_left_changes_nothing(ec2_stub, run_module):
    _client, stub = ec2_stub
    live(stub)
    stub.add_response(
        "describe_spot_instance_requests", {"SpotInstanceRequests": []},
        {"Filters": [{"Name": "tag:rlops:session", "Values": [SESSION]},
                     {"Name": "state", "Values": ["open", "active", "disabled"]}]})

    result, failed = run_module(main, {"session": SESSION, "state": "absent",
                                       "terminate_instance": True})

    assert not failed and result["changed"] is False
    stub.assert_no_pending_responses()
