"""plugins/module_utils/waiting.py, the one waiter: how a module waits for a device to appear
(volume_mount_device) or a resource to settle (aws_wait, tests/unit/plugins/modules/
test_aws_helpers.py), on a fake clock."""

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils.waiting import WaitTimeout, wait_for


class Clock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def found(look):
    return look[0] is not None


def test_wait_returns_when_the_device_appears():
    clock, looks = Clock(), iter([(None, "missing"), (None, "missing"), ("/dev/loop0", "found")])
    look, waited = wait_for(lambda: next(looks), found, 10, 2, clock=clock, sleep=clock.sleep)
    assert look == ("/dev/loop0", "found") and waited == 4 and clock.sleeps == [2, 2]


def test_wait_gives_up_at_the_deadline_with_the_last_reason():
    clock = Clock()
    with pytest.raises(WaitTimeout) as err:
        wait_for(lambda: (None, "none of /dev/x exists"), found, 5, 2, clock=clock,
                 sleep=clock.sleep)
    assert err.value.last == (None, "none of /dev/x exists") and err.value.elapsed == 5
    assert clock.sleeps == [2, 2, 1]


def test_wait_looks_once_with_no_timeout():
    clock = Clock()
    with pytest.raises(WaitTimeout) as err:
        wait_for(lambda: (None, "missing"), found, 0, 2, clock=clock, sleep=clock.sleep)
    assert err.value.elapsed == 0 and clock.sleeps == []


def test_done_may_end_the_wait_by_raising():
    class Terminated(Exception):
        pass

    def done(state):
        raise Terminated(state)  # an instance terminated while we waited for it to run

    clock = Clock()
    with pytest.raises(Terminated):
        wait_for(lambda: "terminated", done, 10, 1, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []


def test_the_aws_modules_wait_with_the_same_waiter():
    from ansible_collections.rlops.fleet.plugins.module_utils import aws_wait

    assert aws_wait.wait_for is wait_for and aws_wait.WaitTimeout is WaitTimeout
