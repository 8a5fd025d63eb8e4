# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""The one waiter of rlops.fleet's modules: read, test, sleep, on a monotonic clock.

Shaped after kubernetes.core's waiter: a small predicate decides, the clock bounds the
wait, and nothing else in the modules sleeps. `done` may raise to end the wait early (an
instance terminated while we waited for it to run). aws_wait gives the AWS modules their
`wait_timeout` / `poll_interval` and message on top; volume_mount_device waits here for a
device to appear.
"""

import time
from typing import Any, Callable, Tuple


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

    Reads at least once, even with timeout 0, and never sleeps past the deadline. Raises
    WaitTimeout when the deadline passes.
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
