# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""The one waiter of the rlops.fleet AWS modules: read, test, sleep, on a monotonic clock.

Shaped after kubernetes.core's waiter: a small predicate decides, the clock bounds the
wait, and nothing else in the modules sleeps. `done` may raise to end the wait early
(an instance terminated while we waited for it to run). `wait_until` is what the modules
call: the same loop, with the timeout turned into the module's one message.
"""

import time
from typing import Any, Callable, Tuple

from ansible_collections.rlops.fleet.plugins.module_utils.aws_common import FleetAWSError


class WaitTimeout(Exception):
    """The deadline passed; `last` is the last state read, for the error message."""

    def __init__(self, last: Any, elapsed: float):
        super().__init__(f"timed out after {elapsed:.0f}s")
        self.last = last
        self.elapsed = elapsed


def wait_for(
    read: Callable[[], Any],
    done: Callable[[Any], bool],
    timeout: float,
    interval: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Tuple[Any, float]:
    """Call `read` until `done(state)` is true; return (state, seconds waited).

    Reads at least once, even with timeout 0. Raises WaitTimeout when the deadline passes.
    """
    start = clock()
    while True:
        state = read()
        if done(state):
            return state, clock() - start
        elapsed = clock() - start
        if elapsed >= timeout:
            raise WaitTimeout(state, elapsed)
        sleep(max(0.0, min(interval, timeout - elapsed)))


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
