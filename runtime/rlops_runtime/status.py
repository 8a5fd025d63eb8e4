"""status.json: the supervisor's record of a session (see docs/contract.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .jsonio import read_json, write_json_atomic

# The states and the moves between them are the session contract's.
from .session_contract import (
    ACTIVE_STATES,
    LOST,
    RESUMABLE_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
)

__all__ = ["ACTIVE_STATES", "RESUMABLE_STATES", "TERMINAL_STATES", "TRANSITIONS", "Status",
           "checkpoint_age", "observed_state", "parse_utc", "read_status", "write_status"]


def parse_utc(value: str) -> datetime:
    """The datetime of a `jsonio.utc_iso` string."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


@dataclass
class Status:
    session_id: str
    state: str = "starting"
    pid: int | None = None
    supervisor_pid: int | None = None
    host: str = ""
    step: int = 0
    total_timesteps: int | None = None
    episodes: int = 0
    mean_return: float | None = None
    last_checkpoint_step: int | None = None
    last_checkpoint_time: str | None = None
    last_synced_step: int | None = None
    started: str | None = None
    updated: str | None = None
    resumed_from_step: int | None = None
    exit_code: int | None = None
    exit_reason: str | None = None
    notice: str | None = None
    # Whether spot notices are watched: {"mode", "source", "watching", "since", "last_error"}.
    notices: dict[str, Any] | None = None
    # Complete local checkpoints not known to be in storage yet, ascending; the last sync
    # round's error (None when it went through).
    unsynced_steps: list[int] = field(default_factory=list)
    sync_error: str | None = None
    # Ray backend (agents/rllib.py's progress): alive nodes of the cluster, and its env
    # runners {"healthy", "total", "restarts"}; None for a single-host session.
    nodes: int | None = None
    env_runners: dict[str, Any] | None = None
    # DeepRacer backend (agents/deepracer.py's progress): model_prefix, pretrained_prefix,
    # iteration, episodes (this model's), progress (mean completion %), last_checkpoint,
    # best_checkpoint, finished; None otherwise.
    deepracer: dict[str, Any] | None = None

    def transition(self, new_state: str) -> None:
        """Move to `new_state`; ValueError for a move the supervisor never makes."""
        if new_state not in TRANSITIONS.get(self.state, frozenset()):
            raise ValueError(
                f"status of {self.session_id}: {self.state} -> {new_state} is not allowed"
            )
        self.state = new_state

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Status:
        """Build from status.json content, ignoring fields a newer writer may add."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def write_status(path: Path, status: Status) -> None:
    write_json_atomic(path, status.to_dict())


def read_status(path: Path) -> Status | None:
    data = read_json(path)
    return Status.from_dict(data) if isinstance(data, dict) and "session_id" in data else None


def checkpoint_age(status: Status, now: datetime) -> float | None:
    """Seconds since the last checkpoint, None when there is none."""
    if not status.last_checkpoint_time:
        return None
    return max(0.0, (now - parse_utc(status.last_checkpoint_time)).total_seconds())


def observed_state(status: Status, supervisor_alive: bool) -> str:
    """The state to report: `lost` when an active session's supervisor is gone."""
    if status.state in ACTIVE_STATES and not supervisor_alive:
        return LOST
    return status.state
