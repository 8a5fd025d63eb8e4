"""Session ids and the on-disk layout of one session (docs/contract.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import session_contract as contract

# The rules of ids are the session contract's; re-exported for the runtime's callers.
from .session_contract import SESSION_ID_RE, make_session_id, validate_session_id

__all__ = ["SESSION_ID_RE", "SessionLayout", "make_session_id", "validate_session_id"]


@dataclass(frozen=True)
class SessionLayout:
    """Paths of one session under `<data_root>/sessions/<session>`."""

    root: Path

    @classmethod
    def for_session(cls, data_root: Path | str, session_id: str) -> SessionLayout:
        return cls(Path(data_root) / contract.SESSIONS_DIR / validate_session_id(session_id))

    @property
    def session_id(self) -> str:
        return self.root.name

    @property
    def config_dir(self) -> Path:
        return self.root / contract.CONFIG_DIR

    @property
    def run_json(self) -> Path:
        return self.config_dir / contract.RUN_JSON

    @property
    def hyperparameters(self) -> Path:
        return self.config_dir / contract.HYPERPARAMETERS_JSON

    @property
    def requirements_lock(self) -> Path:
        """The set the session's venv was installed with (the trainer role writes it)."""
        return self.config_dir / contract.REQUIREMENTS_LOCK

    @property
    def storage_env(self) -> Path:
        return self.config_dir / contract.STORAGE_ENV

    @property
    def checkpoints(self) -> Path:
        return self.root / contract.CHECKPOINTS_DIR

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def job_log(self) -> Path:
        return self.logs / "job.log"

    @property
    def supervisor_log(self) -> Path:
        return self.logs / "supervisor.log"

    @property
    def progress(self) -> Path:
        return self.root / "progress.json"

    @property
    def status(self) -> Path:
        return self.root / contract.STATUS_JSON

    @property
    def lockfile(self) -> Path:
        return self.root / "supervisor.lock"

    @property
    def pidfile(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    def create(self) -> SessionLayout:
        """Create the session's folders (idempotent); returns self for chaining."""
        for folder in (
            self.config_dir,
            self.checkpoints,
            self.tensorboard,
            self.logs,
            self.eval_dir,
            self.report_dir,
        ):
            folder.mkdir(parents=True, exist_ok=True)
        return self
