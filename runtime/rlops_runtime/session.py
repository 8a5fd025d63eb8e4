"""Session ids and the on-disk layout of one session (docs/contract.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import session_contract as contract

# The rules of ids are the session contract's; re-exported for the runtime's callers.
from .session_contract import SESSION_ID_RE, make_session_id, validate_session_id

__all__ = ["SESSION_ID_RE", "SessionLayout", "make_session_id", "validate_session_id"]


class _Under:
    """A path of a session, relative to its folder (`layout.<name>` is that path)."""

    def __init__(self, *parts: str, doc: str = "") -> None:
        self.parts = parts
        self.__doc__ = doc or "/".join(parts)

    def __get__(self, layout: Any, owner: type | None = None) -> Path:
        if layout is None:
            return self  # type: ignore[return-value] - the class's own attribute
        return layout.root.joinpath(*self.parts)


@dataclass(frozen=True)
class SessionLayout:
    """Paths of one session under `<data_root>/sessions/<session>`."""

    root: Path

    config_dir = _Under(contract.CONFIG_DIR)
    run_json = _Under(contract.CONFIG_DIR, contract.RUN_JSON)
    hyperparameters = _Under(contract.CONFIG_DIR, contract.HYPERPARAMETERS_JSON)
    requirements_lock = _Under(contract.CONFIG_DIR, contract.REQUIREMENTS_LOCK,
                               doc="The set the session's venv was installed with.")
    storage_env = _Under(contract.CONFIG_DIR, contract.STORAGE_ENV)
    checkpoints = _Under(contract.CHECKPOINTS_DIR)
    tensorboard = _Under("tensorboard")
    logs = _Under("logs")
    job_log = _Under("logs", "job.log")
    supervisor_log = _Under("logs", "supervisor.log")
    progress = _Under("progress.json")
    status = _Under(contract.STATUS_JSON)
    lockfile = _Under("supervisor.lock")
    pidfile = _Under("supervisor.pid")
    eval_dir = _Under("eval")
    report_dir = _Under("report")

    @classmethod
    def for_session(cls, data_root: Path | str, session_id: str) -> SessionLayout:
        return cls(Path(data_root) / contract.SESSIONS_DIR / validate_session_id(session_id))

    @property
    def session_id(self) -> str:
        return self.root.name

    def create(self) -> SessionLayout:
        """Create the session's folders (the contract's SESSION_SUBDIRS; idempotent);
        returns self for chaining."""
        for name in contract.SESSION_SUBDIRS:
            (self.root / name).mkdir(parents=True, exist_ok=True)
        return self
