"""status.json: states, transitions, round trip, `lost`, checkpoint age."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from rlops_runtime.status import (
    RESUMABLE_STATES,
    TERMINAL_STATES,
    Status,
    checkpoint_age,
    observed_state,
    read_status,
    write_status,
)


def test_stop_path_and_terminal_states() -> None:
    status = Status("s-1")
    for state in ("running", "stopping", "stopped"):
        status.transition(state)
    assert status.state in TERMINAL_STATES and status.state in RESUMABLE_STATES
    with pytest.raises(ValueError, match="stopped -> running"):
        status.transition("running")


@pytest.mark.parametrize("path", [
    ["running", "completed"],
    ["running", "failed"],
    ["failed"],
    ["running", "stopping", "interrupted"],
    ["running", "stopping", "timeout"],
    ["stopping", "stopped"],
])
def test_allowed_paths(path: list[str]) -> None:
    status = Status("s-1")
    for state in path:
        status.transition(state)
    assert status.state in TERMINAL_STATES


@pytest.mark.parametrize("old, new", [
    ("starting", "completed"), ("running", "stopped"), ("running", "interrupted"),
    ("stopping", "running"), ("completed", "stopping"), ("running", "lost"),
])
def test_forbidden_transitions(old: str, new: str) -> None:
    with pytest.raises(ValueError):
        Status("s-1", state=old).transition(new)


def test_round_trip_and_tolerant_read(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    assert read_status(path) is None
    status = Status("s-1", state="running", pid=12, step=8192, mean_return=187.5,
                    last_checkpoint_time="2026-11-22T05:16:02Z")
    write_status(path, status)
    assert read_status(path) == status
    path.write_text('{"session_id": "s-1", "state": "running", "added_later": 1}')
    assert read_status(path) == Status("s-1", state="running")
    path.write_text('{"state": "runn')
    assert read_status(path) is None


@pytest.mark.parametrize("state, alive, expected", [
    ("running", False, "lost"), ("starting", False, "lost"), ("stopping", False, "lost"),
    ("running", True, "running"), ("stopped", False, "stopped"), ("failed", False, "failed"),
])
def test_observed_state(state: str, alive: bool, expected: str) -> None:
    assert observed_state(Status("s-1", state=state), supervisor_alive=alive) == expected


def test_lost_is_resumable_not_terminal() -> None:
    assert "lost" in RESUMABLE_STATES and "lost" not in TERMINAL_STATES
    assert "completed" not in RESUMABLE_STATES and "failed" not in RESUMABLE_STATES


def test_checkpoint_age() -> None:
    now = datetime(2026, 11, 22, 5, 16, 32, tzinfo=timezone.utc)
    assert checkpoint_age(Status("s-1"), now) is None
    status = Status("s-1", last_checkpoint_time="2026-11-22T05:16:02Z")
    assert checkpoint_age(status, now) == 30.0
    assert checkpoint_age(status, datetime(2026, 11, 22, tzinfo=timezone.utc)) == 0.0
