"""The EC2 read layer (module_utils/ec2_read.py) against botocore's Stubber: every page is
read, a throttled call is retried, a resource EC2 does not know reads as None, and an error
says what was being read."""

import boto3
import pytest
from ansible_collections.amazon.aws.plugins.module_utils import cloud
from ansible_collections.amazon.aws.plugins.module_utils.retries import (
    AWSRetry,
    RetryingBotoClientWrapper,
)
from ansible_collections.rlops.fleet.plugins.module_utils import ec2_read
from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import FleetAWSError
from botocore.exceptions import NoCredentialsError
from botocore.stub import Stubber

SESSION = "cartpole-20261122t051500z"
BY_TAG = [{"Name": "tag:rlops:session", "Values": [SESSION]}]


@pytest.fixture
def ec2():
    """The client as module.client("ec2", retry_decorator=...) gives it, and its Stubber."""
    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="AKIDTEST",
                          aws_secret_access_key="secret")
    with Stubber(client) as stub:
        yield RetryingBotoClientWrapper(client, AWSRetry.jittered_backoff(retries=5)), stub
        stub.assert_no_pending_responses()


@pytest.fixture(autouse=True)
def no_backoff_sleep(monkeypatch):
    slept = []
    monkeypatch.setattr(cloud.time, "sleep", slept.append)
    return slept


def reservation(*ids):
    return {"Instances": [{"InstanceId": i, "State": {"Name": "running"}} for i in ids]}


def test_session_instances_reads_every_page(ec2):
    client, stub = ec2
    filters = BY_TAG + [{"Name": "instance-state-name", "Values": list(ec2_read.LIVE_STATES)}]
    stub.add_response("describe_instances",
                      {"Reservations": [reservation("i-1")], "NextToken": "page2"},
                      {"Filters": filters})
    stub.add_response("describe_instances", {"Reservations": [reservation("i-2", "i-3")]},
                      {"Filters": filters, "NextToken": "page2"})
    found = ec2_read.session_instances(client, SESSION, "Find", ec2_read.LIVE_STATES)
    assert [i["InstanceId"] for i in found] == ["i-1", "i-2", "i-3"]


def test_every_session_is_found_by_the_tag_key(ec2):
    client, stub = ec2
    stub.add_response("describe_volumes", {"Volumes": [{"VolumeId": "vol-1"}]},
                      {"Filters": [{"Name": "tag-key", "Values": ["rlops:session"]}]})
    assert ec2_read.session_volumes(client, None, "Find")[0]["VolumeId"] == "vol-1"


def test_a_throttled_read_is_retried(ec2, no_backoff_sleep):
    client, stub = ec2
    stub.add_client_error("describe_spot_instance_requests",
                          service_error_code="RequestLimitExceeded",
                          expected_params={"SpotInstanceRequestIds": ["sir-1"]})
    stub.add_response("describe_spot_instance_requests",
                      {"SpotInstanceRequests": [{"SpotInstanceRequestId": "sir-1"}]},
                      {"SpotInstanceRequestIds": ["sir-1"]})
    assert ec2_read.spot_request(client, "sir-1")["SpotInstanceRequestId"] == "sir-1"
    assert len(no_backoff_sleep) == 1


def test_what_ec2_does_not_know_reads_as_none(ec2):
    client, stub = ec2
    stub.add_client_error("describe_instances", service_error_code="InvalidInstanceID.NotFound",
                          expected_params={"InstanceIds": ["i-gone"]})
    stub.add_client_error("describe_volumes", service_error_code="InvalidVolume.NotFound",
                          expected_params={"VolumeIds": ["vol-gone"]})
    stub.add_client_error("describe_volumes", service_error_code="InvalidVolumeID.Malformed",
                          expected_params={"VolumeIds": ["vol-bad"]})
    assert ec2_read.instance(client, "i-gone") is None
    assert ec2_read.volume(client, "vol-gone") is None
    assert ec2_read.volume(client, "vol-bad", also_missing=("InvalidVolumeID.Malformed",)) is None
    assert ec2_read.spot_request(client, None) is None  # no call at all


def test_instance_states_keep_the_order_given_and_none_for_the_forgotten(ec2):
    client, stub = ec2
    stub.add_response("describe_instances", {"Reservations": [reservation("i-2")]},
                      {"InstanceIds": ["i-2"]})
    stub.add_response("describe_instances", {"Reservations": []}, {"InstanceIds": ["i-1"]})
    assert ec2_read.instance_states(client, ["i-2", "i-1", "i-2"]) == {
        "i-2": "running", "i-1": None}


def test_an_error_says_what_was_being_read(ec2):
    client, stub = ec2
    stub.add_client_error("describe_volumes", service_error_code="UnauthorizedOperation",
                          service_message="not allowed", expected_params={"Filters": BY_TAG})
    with pytest.raises(FleetAWSError) as err:
        ec2_read.session_volumes(client, SESSION, f"Find the volume of session {SESSION}")
    assert err.value.message == f"Find the volume of session {SESSION}"
    assert "UnauthorizedOperation" in str(err.value.exception)


def test_missing_credentials_through_amazon_aws_helpers_say_what_to_do(monkeypatch):
    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="y")

    def no_credentials(*_args, **_kwargs):
        raise NoCredentialsError()

    monkeypatch.setattr(client, "describe_instances", no_credentials)
    monkeypatch.setattr(client, "get_paginator", lambda _name: type(
        "P", (), {"paginate": lambda self, **kw: type(
            "R", (), {"build_full_result": lambda self: no_credentials()})()})())
    with pytest.raises(FleetAWSError) as err:
        ec2_read.instance(client, "i-1")
    assert err.value.message.startswith("Read instance i-1: no usable AWS credentials")


def test_an_unknown_instance_type_fails_in_ec2s_words(ec2):
    client, stub = ec2
    stub.add_client_error("describe_instance_types", service_error_code="InvalidInstanceType",
                          service_message="The instance type 'g9.huge' does not exist",
                          expected_params={"InstanceTypes": ["g9.huge"]})
    with pytest.raises(FleetAWSError) as err:
        ec2_read.check_instance_types(client, ["g9.huge"])
    assert err.value.message == ("Check instance types g9.huge: The instance type 'g9.huge' "
                                 "does not exist")


def test_region_zones_skip_unavailable_ones_and_offerings_are_pairs(ec2):
    client, stub = ec2
    stub.add_response("describe_availability_zones", {"AvailabilityZones": [
        {"ZoneName": "us-east-1a", "State": "available"},
        {"ZoneName": "us-east-1b", "State": "impaired"}, {"ZoneName": "us-east-1c"}]},
        {"Filters": [{"Name": "zone-type", "Values": ["availability-zone"]}]})
    stub.add_response("describe_instance_type_offerings", {"InstanceTypeOfferings": [
        {"InstanceType": "g4dn.xlarge", "Location": "us-east-1a"}]},
        {"LocationType": "availability-zone",
         "Filters": [{"Name": "instance-type", "Values": ["g4dn.xlarge"]},
                     {"Name": "location", "Values": ["us-east-1a", "us-east-1c"]}]})
    zones = ec2_read.region_zones(client, "us-east-1")
    assert zones == ["us-east-1a", "us-east-1c"]
    assert ec2_read.offerings(client, ["g4dn.xlarge"], zones) == {("g4dn.xlarge", "us-east-1a")}
