"""What stop does to a session's AWS resources (plugins/filter/aws_teardown.py): each action
only when asked, a volume deleted only with the instance terminated, and the lines that say
what is left."""

from __future__ import annotations

import pytest
from ansible_collections.rlops.fleet.plugins.filter.aws_teardown import (
    aws_teardown_plan,
    aws_teardown_report,
)

FOUND = {"volumes": [{"volume_id": "vol-root", "role": "root"},
                     {"volume_id": "vol-data", "role": "data"}]}
NONE_FOUND = {"volumes": [{"volume_id": "vol-root", "role": "root"}]}


def plan(found=None, **asked):
    return aws_teardown_plan(FOUND if found is None else found, "s-20261122t090000z",
                             "us-east-1", **asked)


def test_nothing_asked_does_nothing():
    assert plan() == {"problem": "", "terminate": False, "volumes": ["vol-data"],
                      "snapshot": [], "delete": []}


def test_everything_asked():
    got = plan(terminate=True, snapshot=True, delete_volume=True)
    assert got["problem"] == "" and got["terminate"]
    assert got["snapshot"] == got["delete"] == ["vol-data"]


def test_delete_without_terminate_is_refused_and_never_planned():
    got = plan(delete_volume=True, snapshot=True)
    assert got["problem"].startswith("rlops_aws_delete_volume needs rlops_aws_terminate: true")
    assert got["delete"] == []


@pytest.mark.parametrize("asked, verb", [({"snapshot": True}, "snapshot"),
                                         ({"delete_volume": True, "terminate": True}, "delete")])
def test_snapshot_or_delete_without_a_data_volume(asked, verb):
    assert plan(NONE_FOUND, **asked)["problem"] == (
        f"session s-20261122t090000z has no data volume in us-east-1 to {verb}")


def test_terminate_alone_needs_no_volume():
    assert plan(NONE_FOUND, terminate=True)["problem"] == ""


def test_report_after_everything():
    got = aws_teardown_report(plan(terminate=True, snapshot=True, delete_volume=True),
                              running=["i-1"], terminated=["i-1"], snapshots=["snap-1"])
    assert got == ["instance: terminated i-1", "volume: vol-data deleted, snapshot snap-1"]


def test_report_of_a_kept_running_instance():
    got = aws_teardown_report(plan(), running=["i-1"])
    assert got == ["instance: i-1 still running, and billed: terminate it with -e "
                   "rlops_aws_terminate=true (the volume stays)", "volume: vol-data kept"]


def test_report_without_instance_or_volume():
    assert aws_teardown_report(plan(NONE_FOUND, terminate=True)) == [
        "instance: none running", "volume: none kept"]


def test_report_in_check_mode():
    got = aws_teardown_report(plan(terminate=True, snapshot=True, delete_volume=True),
                              running=["i-1"], terminated=["i-1"], check_mode=True)
    assert got == ["instance: would terminate i-1",
                   "volume: vol-data would be snapshotted and deleted"]
    assert aws_teardown_report(plan(), check_mode=True)[1] == "volume: vol-data would be kept"
