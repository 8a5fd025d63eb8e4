"""The pure decisions of the AWS path: cost so far, records, volume checks, the table."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from ansible_collections.rlops.fleet.plugins.filter.aws_volume_problem import (
    aws_volume_problem,
)
from ansible_collections.rlops.fleet.plugins.module_utils.aws_session import (
    as_utc,
    data_volumes_by_instance,
    instance_record,
    instance_table,
    price_points,
    run_window,
    spot_cost,
    transition_time,
    volume_problem,
    volume_record,
)

UTC = timezone.utc
T0 = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
SESSION = "cartpole-20261122t051500z"


def hours(n):
    return T0 + timedelta(hours=n)


# ---- cost so far ---------------------------------------------------------------------

def test_one_price_for_the_whole_run():
    assert spot_cost([(hours(-5), Decimal("0.2"))], T0, hours(1.5)) == Decimal("0.300000")


def test_price_changes_during_the_run_are_integrated():
    points = [(hours(-1), Decimal("0.20")), (hours(1), Decimal("0.40")),
              (hours(2), Decimal("0.10"))]
    # 1 h at 0.20, 1 h at 0.40, 0.5 h at 0.10
    assert spot_cost(points, T0, hours(2.5)) == Decimal("0.650000")


def test_changes_after_the_end_do_not_count():
    points = [(hours(-1), Decimal("0.20")), (hours(3), Decimal("9.99"))]
    assert spot_cost(points, T0, hours(1)) == Decimal("0.200000")


def test_before_the_first_known_change_the_first_price_applies():
    points = [(hours(0.5), Decimal("0.30")), (hours(1), Decimal("0.10"))]
    # 1 h at 0.30 (first known), then 1 h at 0.10
    assert spot_cost(points, T0, hours(2)) == Decimal("0.400000")


def test_a_change_exactly_at_the_start_is_the_price_in_effect():
    points = [(hours(-1), Decimal("0.50")), (T0, Decimal("0.10"))]
    assert spot_cost(points, T0, hours(1)) == Decimal("0.100000")


def test_no_prices_means_unknown_and_an_empty_run_costs_nothing():
    assert spot_cost([], T0, hours(1)) is None
    assert spot_cost([(hours(-1), Decimal("1"))], T0, T0) == Decimal("0")


def test_per_second_billing():
    assert spot_cost([(hours(-1), Decimal("3.6"))], T0, T0 + timedelta(seconds=10)) \
        == Decimal("0.010000")


def test_price_points_keep_one_type_and_zone_and_skip_bad_records():
    records = [
        {"InstanceType": "g4dn.xlarge", "AvailabilityZone": "us-east-1b",
         "SpotPrice": "0.21", "Timestamp": hours(1)},
        {"InstanceType": "g4dn.xlarge", "AvailabilityZone": "us-east-1b",
         "SpotPrice": "0.20", "Timestamp": hours(-1)},
        # moto ignores the zone filter: other zones come back too
        {"InstanceType": "g4dn.xlarge", "AvailabilityZone": "us-east-1a",
         "SpotPrice": "0.01", "Timestamp": hours(0)},
        {"InstanceType": "g5.xlarge", "AvailabilityZone": "us-east-1b",
         "SpotPrice": "0.90", "Timestamp": hours(0)},
        {"InstanceType": "g4dn.xlarge", "AvailabilityZone": "us-east-1b",
         "SpotPrice": "n/a", "Timestamp": hours(0)},
        {"InstanceType": "g4dn.xlarge", "AvailabilityZone": "us-east-1b", "SpotPrice": "0.3"},
        # the two product descriptions report the same change twice
        {"InstanceType": "g4dn.xlarge", "AvailabilityZone": "us-east-1b",
         "SpotPrice": "0.21", "Timestamp": hours(1)},
    ]
    assert price_points(records, "g4dn.xlarge", "us-east-1b") == [
        (hours(-1), Decimal("0.20")), (hours(1), Decimal("0.21"))]


# ---- run windows ---------------------------------------------------------------------

def test_a_running_instance_runs_until_now():
    instance = {"LaunchTime": T0, "State": {"Name": "running"}}
    assert run_window(instance, hours(2)) == (T0, hours(2))


def test_a_terminated_instance_ran_until_its_transition():
    instance = {"LaunchTime": T0, "State": {"Name": "terminated"},
                "StateTransitionReason": "User initiated (2026-11-22 07:30:00 GMT)"}
    assert run_window(instance, hours(5)) == (T0, hours(1.5))


def test_unknown_ends_and_starts_give_no_window():
    assert run_window({"LaunchTime": T0, "State": {"Name": "stopped"}}, hours(1)) is None
    assert run_window({"State": {"Name": "running"}}, hours(1)) is None


def test_times_from_strings_and_naive_datetimes():
    assert as_utc("2026-11-22T06:00:00Z") == T0
    assert as_utc(datetime(2026, 11, 22, 6, 0)) == T0
    assert as_utc("yesterday") is None and as_utc(None) is None
    assert transition_time("Service initiated (2026-11-22 06:00:00 UTC)") == T0
    assert transition_time("") is None


# ---- records -------------------------------------------------------------------------

def test_instance_record():
    instance = {"InstanceId": "i-1", "State": {"Name": "running"}, "LaunchTime": T0,
                "InstanceType": "g4dn.xlarge", "InstanceLifecycle": "spot",
                "Placement": {"AvailabilityZone": "us-east-1b"},
                "PrivateIpAddress": "10.0.0.5", "KeyName": "rlops",
                "Tags": [{"Key": "rlops:session", "Value": SESSION}]}
    record = instance_record(instance, hours(0.5), Decimal("0.1"), Decimal("0.2"))
    assert record["session"] == SESSION and record["lifecycle"] == "spot"
    assert record["running_hours"] == 0.5 and record["cost_so_far"] == "0.1"
    assert record["public_ip"] is None and record["private_ip"] == "10.0.0.5"
    assert record["launch_time"] == "2026-11-22T06:00:00+00:00"


def test_volume_record_keeps_live_attachments_with_their_instance_state():
    volume = {"VolumeId": "vol-1", "AvailabilityZone": "us-east-1b", "State": "in-use",
              "Size": 100, "VolumeType": "gp3",
              "Tags": [{"Key": "rlops:session", "Value": SESSION},
                       {"Key": "rlops:role", "Value": "data"}],
              "Attachments": [{"InstanceId": "i-1", "Device": "/dev/sdf", "State": "attached"},
                              {"InstanceId": "i-0", "Device": "/dev/sdf", "State": "detached"}]}
    record = volume_record(volume, {"i-1": "running"})
    assert record["role"] == "data" and record["session"] == SESSION
    assert record["attachments"] == [{"instance_id": "i-1", "device": "/dev/sdf",
                                      "state": "attached", "instance_state": "running"}]


# ---- may this volume be the session's? ----------------------------------------------

def volume(**changes):
    record = {"volume_id": "vol-1", "session": None, "role": None,
              "availability_zone": "us-east-1b", "state": "available", "attachments": []}
    record.update(changes)
    return record


def attached(instance_state, instance_id="i-9"):
    return [{"instance_id": instance_id, "device": "/dev/sdf", "state": "attached",
             "instance_state": instance_state}]


def test_a_free_volume_of_no_session_can_be_used():
    assert volume_problem(volume(), SESSION) is None
    assert volume_problem(volume(session=SESSION), SESSION, ["us-east-1b"]) is None


@pytest.mark.parametrize("changes, zones, words", [
    ({"state": "error"}, [], "vol-1 is error"),
    ({"role": "root"}, [], "root volume"),
    ({"session": "other-1"}, [], "belongs to session other-1"),
    ({}, ["us-east-1a", "us-east-1c"], "is in us-east-1b, but rlops_aws_availability_zones"),
    ({"state": "in-use", "attachments": attached("running")}, [],
     "attached to i-9 (running) at /dev/sdf"),
    ({"state": "in-use", "attachments": attached("stopped")}, [], "attached to i-9 (stopped)"),
    ({"state": "in-use", "attachments": attached(None)}, [], "i-9 (state unknown)"),
])
def test_refusals_say_what_and_why(changes, zones, words):
    problem = volume_problem(volume(**changes), SESSION, zones)
    assert problem and words in problem


def test_attachments_that_are_fine():
    # to the session's own instance, to one that EC2 is taking away, or forced
    assert volume_problem(volume(attachments=attached("running", "i-own")), SESSION,
                          own_instances=["i-own"]) is None
    assert volume_problem(volume(attachments=attached("terminated")), SESSION) is None
    assert volume_problem(volume(attachments=attached("shutting-down")), SESSION) is None
    assert volume_problem(volume(attachments=attached("running")), SESSION,
                          force_detach=True) is None


def test_no_volume_and_the_filter():
    assert volume_problem(None, SESSION) == "the volume does not exist"
    assert aws_volume_problem(volume(), SESSION) == ""
    assert "belongs to" in aws_volume_problem(volume(session="x-1"), SESSION, None, False, None)


# ---- the status table ----------------------------------------------------------------

def test_instance_table_aligns_and_formats():
    lines = instance_table([
        {"session": SESSION, "instance_id": "i-1", "instance_type": "g4dn.xlarge",
         "availability_zone": "us-east-1b", "lifecycle": "spot", "state": "running",
         "running_hours": 1.5, "spot_price": "0.2133", "cost_so_far": "0.319950"},
        {"session": SESSION, "instance_id": "i-2", "instance_type": "g5.xlarge",
         "availability_zone": "us-east-1a", "lifecycle": "on-demand", "state": "terminated",
         "running_hours": None, "spot_price": None, "cost_so_far": None},
    ])
    assert lines[0].split()[:3] == ["SESSION", "INSTANCE", "TYPE"]
    assert lines[1].split()[-3:] == ["1.50", "0.2133", "$0.319950"]
    assert lines[2].split()[-3:] == ["-", "-", "-"]
    assert len({line.index("INSTANCE") if i == 0 else line.index("i-") for i, line
                in enumerate(lines)}) == 1


def test_the_table_rounds_the_hours_once():
    # 17.9 s is 0.00497 h: 0.00 at two places (rounded to 0.0050 first, it showed 0.01).
    instance = {"InstanceId": "i-1", "State": {"Name": "running"}, "LaunchTime": T0}
    record = instance_record(instance, T0 + timedelta(seconds=17.9))
    assert instance_table([record])[1].split()[6] == "0.00"
    assert record["running_hours"] == 17.9 / 3600


def test_volume_lines_follow_the_table():
    volume = volume_record({
        "VolumeId": "vol-1", "AvailabilityZone": "us-east-1b", "State": "in-use", "Size": 100,
        "VolumeType": "gp3", "Tags": [{"Key": "rlops:session", "Value": SESSION},
                                      {"Key": "rlops:role", "Value": "data"}],
        "Attachments": [{"InstanceId": "i-1", "Device": "/dev/sdf", "State": "attached"}]},
        {"i-1": "running"})
    root = dict(volume, role="root", volume_id="vol-2")
    lines = instance_table([], [volume, root])
    assert lines[1:] == [f"volume vol-1 of {SESSION}: 100 GiB gp3 in us-east-1b, in-use, "
                         "attached to i-1 (running)"]


def test_data_volume_of_each_instance():
    records = [
        {"volume_id": "vol-root", "role": "root",
         "attachments": [{"instance_id": "i-1", "device": "/dev/xvda"}]},
        {"volume_id": "vol-data", "role": "data",
         "attachments": [{"instance_id": "i-1", "device": "/dev/sdf"}]},
        {"volume_id": "vol-free", "role": "data", "attachments": []},
    ]
    assert data_volumes_by_instance(records) == {
        "i-1": {"volume_id": "vol-data", "device": "/dev/sdf"}}
