"""One waiter for the runtime's deadlines: ask until there is an answer or time is up.

A check returns None to keep waiting and anything else to end the wait with it; the clock is
monotonic, so a changed wall clock neither shortens nor stretches a wait.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float, interval: float,
             clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> T | None:
    """check() until it answers (not None) or `timeout` seconds have passed; its answer, or
    None at the deadline. It is asked at least once."""
    deadline = clock() + timeout
    while True:
        answer = check()
        if answer is not None or clock() >= deadline:
            return answer
        sleep(interval)
