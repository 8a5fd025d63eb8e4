"""Waiting with a deadline, and the session states the suites wait for."""

from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class NotInTime(AssertionError):
    """A wait that ran out of time: fails the test that waited, with what it waited for."""


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 1.0,
               detail: Callable[[], str] | None = None) -> T:
    """Call `predicate` until it returns something true (returned) or `timeout` seconds pass
    (NotInTime, with `detail()` appended: the last status, a log's tail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            more = detail() if detail else ""
            raise NotInTime(f"not {what} within {timeout:.0f} s" + (f"; {more}" if more else ""))
        time.sleep(interval)


def has_checkpoint(status: dict[str, Any]) -> bool:
    """Running, with its first complete checkpoint."""
    return status.get("state") == "running" and (status.get("last_checkpoint_step") or 0) > 0


def in_state(*states: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate: the session's state is one of `states`."""
    return lambda status: status.get("state") in states
