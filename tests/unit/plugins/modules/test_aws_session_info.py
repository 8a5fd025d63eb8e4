"""aws_session_info against botocore's Stubber: the exact read-only EC2 call sequence."""

from datetime import datetime, timedelta, timezone

import pytest
import yaml
from ansible_collections.amazon.aws.plugins.module_utils.modules import aws_argument_spec
from ansible_collections.rlops.fleet.plugins.modules import aws_session_info
from botocore.stub import ANY
from docfragments import module_arguments

SESSION = "cartpole-20261122t051500z"
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)
COMMON = {"region": "us-east-1", "access_key": "AKIDTEST", "secret_key": "secret"}
SESSION_FILTER = [{"Name": "tag:rlops:session", "Values": [SESSION]}]
TAGS = [{"Key": "rlops:session", "Value": SESSION}]


class FixedClock(datetime):
    @classmethod
    def now(cls, tz=None):
        return NOW


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    monkeypatch.setattr(aws_session_info, "datetime", FixedClock)


def main():
    aws_session_info.main()


def spot_instance(instance_id="i-1", state="running", launched=NOW - timedelta(hours=2)):
    return {"InstanceId": instance_id, "State": {"Name": state}, "LaunchTime": launched,
            "InstanceType": "g4dn.xlarge", "InstanceLifecycle": "spot",
            "Placement": {"AvailabilityZone": "us-east-1b"}, "Tags": TAGS}


def data_volume(attachments=()):
    return {"VolumeId": "vol-1", "AvailabilityZone": "us-east-1b", "Size": 100,
            "VolumeType": "gp3", "State": "in-use" if attachments else "available",
            "Tags": TAGS + [{"Key": "rlops:role", "Value": "data"}],
            "Attachments": [{"VolumeId": "vol-1", "InstanceId": i, "Device": "/dev/sdf",
                             "State": "attached"} for i in attachments]}


def instances(stub, found, filters=None):
    stub.add_response("describe_instances",
                      {"Reservations": [{"Instances": list(found)}] if found else []},
                      {"Filters": SESSION_FILTER if filters is None else filters})


def volumes(stub, found, filters=None):
    stub.add_response("describe_volumes", {"Volumes": list(found)},
                      {"Filters": SESSION_FILTER if filters is None else filters})


def test_running_spot_instance_with_its_volume_and_cost(ec2_stub, run_module):
    _client, stub = ec2_stub
    instances(stub, [spot_instance()])
    volumes(stub, [data_volume(["i-1"])])
    stub.add_response(
        "describe_spot_price_history",
        {"SpotPriceHistory": [
            {"InstanceType": "g4dn.xlarge", "AvailabilityZone": "us-east-1b",
             "SpotPrice": "0.30", "Timestamp": NOW - timedelta(hours=3)},
            {"InstanceType": "g4dn.xlarge", "AvailabilityZone": "us-east-1b",
             "SpotPrice": "0.10", "Timestamp": NOW - timedelta(hours=1)}]},
        {"InstanceTypes": ["g4dn.xlarge"], "AvailabilityZone": "us-east-1b",
         "ProductDescriptions": ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
         "StartTime": NOW - timedelta(hours=2), "EndTime": NOW})

    result, failed = run_module(main, {"session": SESSION}, common=COMMON)

    assert not failed, result
    stub.assert_no_pending_responses()
    (instance,) = result["instances"]
    assert instance["cost_so_far"] == "0.400000"  # 1 h at 0.30, 1 h at 0.10
    assert instance["spot_price"] == "0.10" and instance["running_hours"] == 2.0
    assert instance["data_volume"] == {"volume_id": "vol-1", "device": "/dev/sdf"}
    (volume,) = result["volumes"]
    assert volume["attachments"][0]["instance_state"] == "running"
    assert result["sessions"] == [SESSION] and result["volume"] is None
    assert result["changed"] is False


def test_every_session_and_a_volume_attached_to_a_forgotten_instance(ec2_stub, run_module):
    _client, stub = ec2_stub
    any_session = [{"Name": "tag-key", "Values": ["rlops:session"]}]
    instances(stub, [], any_session)
    volumes(stub, [], any_session)
    stub.add_response("describe_volumes", {"Volumes": [data_volume(["i-gone"])]},
                      {"VolumeIds": ["vol-1"]})
    stub.add_client_error("describe_instances", "InvalidInstanceID.NotFound",
                          expected_params={"InstanceIds": ["i-gone"]})

    result, failed = run_module(main, {"volume_id": "vol-1"}, common=COMMON)

    assert not failed, result
    stub.assert_no_pending_responses()
    assert result["volume"]["attachments"][0]["instance_state"] is None
    assert result["instances"] == [] and result["volumes"] == []


def test_terminated_and_on_demand_instances_need_no_price_history(ec2_stub, run_module):
    _client, stub = ec2_stub
    gone = dict(spot_instance("i-1", "terminated"),
                StateTransitionReason="User initiated (2026-11-22 07:00:00 GMT)")
    on_demand = dict(spot_instance("i-2"), InstanceLifecycle=None)
    del on_demand["InstanceLifecycle"]
    instances(stub, [gone, on_demand])
    volumes(stub, [])
    stub.add_response(
        "describe_spot_price_history",
        {"SpotPriceHistory": [{"InstanceType": "g4dn.xlarge", "AvailabilityZone": "us-east-1b",
                               "SpotPrice": "0.25", "Timestamp": NOW - timedelta(days=1)}]},
        {"InstanceTypes": ["g4dn.xlarge"], "AvailabilityZone": "us-east-1b",
         "ProductDescriptions": ANY, "StartTime": NOW - timedelta(hours=2),
         "EndTime": NOW - timedelta(hours=1)})

    result, failed = run_module(main, {"session": SESSION}, common=COMMON)

    assert not failed, result
    stub.assert_no_pending_responses()
    by_id = {i["instance_id"]: i for i in result["instances"]}
    assert by_id["i-1"]["cost_so_far"] == "0.250000"
    assert by_id["i-2"]["lifecycle"] == "on-demand" and by_id["i-2"]["cost_so_far"] is None


def test_unknown_volume_is_one_message(ec2_stub, run_module):
    _client, stub = ec2_stub
    instances(stub, [])
    volumes(stub, [])
    stub.add_client_error("describe_volumes", "InvalidVolume.NotFound",
                          expected_params={"VolumeIds": ["vol-0abc"]})

    result, failed = run_module(main, {"session": SESSION, "volume_id": "vol-0abc"},
                                common=COMMON)

    assert failed
    assert result["msg"] == "Read volume vol-0abc: it does not exist in us-east-1"


def test_bad_session_id_is_refused_before_any_call(ec2_stub, run_module):
    result, failed = run_module(main, {"session": "Not A Session"}, common=COMMON)
    assert failed and "Not A Session" in result["msg"]
    ec2_stub[1].assert_no_pending_responses()


def test_cost_false_reads_no_prices(ec2_stub, run_module):
    _client, stub = ec2_stub
    instances(stub, [spot_instance()])
    volumes(stub, [])
    result, failed = run_module(main, {"session": SESSION, "cost": False}, common=COMMON)
    assert not failed and result["instances"][0]["cost_so_far"] is None


def test_documentation_matches_the_argument_spec(monkeypatch):
    captured = module_arguments(aws_session_info, monkeypatch, "AnsibleAWSModule")
    common = set(aws_argument_spec())
    spec = {k: v for k, v in captured["argument_spec"].items() if k not in common}
    documented = yaml.safe_load(aws_session_info.DOCUMENTATION)["options"]
    assert sorted(documented) == sorted(spec)
    for name, option in spec.items():
        assert documented[name]["type"] == option["type"], name
        assert documented[name].get("default") == option.get("default"), name
