# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""The AWS modules' way to wait: the one waiter (module_utils/waiting.py) with the module's
`wait_timeout` and `poll_interval`, and the timeout turned into the module's one message.
`wait_for` and `WaitTimeout` are waiting's, named here too for the AWS modules.
"""

from typing import Any, Callable

from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import FleetAWSError
from ansible_collections.rlops.fleet.plugins.module_utils.waiting import WaitTimeout, wait_for

__all__ = ["WaitTimeout", "wait_for", "wait_until"]


def wait_until(
    read: Callable[[], Any],
    done: Callable[[Any], bool],
    params: dict,
    timed_out: Callable[[Any, float], str],
) -> Any:
    """wait_for with the module's `wait_timeout` and `poll_interval`; the last state read.

    On timeout, raises FleetAWSError with `timed_out(last state, seconds waited)`.
    """
    try:
        state, _elapsed = wait_for(read, done, params["wait_timeout"], params["poll_interval"])
    except WaitTimeout as exc:
        raise FleetAWSError(timed_out(exc.last, exc.elapsed)) from exc
    return state
