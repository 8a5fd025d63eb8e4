"""Retrying with exponential backoff: how long to wait before the next attempt.

Used for what the supervisor keeps trying without ever blocking on it: the metadata
service that has not answered yet (notices.py) and storage that is away when the job
ends (supervisor.py, the final publish). The decision is pure; callers keep the clock.
"""

from __future__ import annotations

from dataclasses import dataclass


def retry_delay(failures: int, base: float, cap: float) -> float:
    """Seconds to wait after `failures` failed attempts in a row: base, 2*base, ... cap."""
    if failures <= 0:
        return 0.0
    # min() on the exponent too: 2.0 ** 1100 overflows a float.
    return min(cap, base * 2.0 ** min(failures - 1, 64))


@dataclass
class Backoff:
    """When the next attempt is due, after each failure or success (monotonic seconds)."""

    base: float
    cap: float
    failures: int = 0
    next_attempt: float = 0.0

    def due(self, now: float) -> bool:
        return now >= self.next_attempt

    def failed(self, now: float) -> float:
        """Record a failure at `now`; returns the delay until the next attempt."""
        self.failures += 1
        delay = retry_delay(self.failures, self.base, self.cap)
        self.next_attempt = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.next_attempt = 0.0
