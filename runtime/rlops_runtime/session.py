"""Session ids and the on-disk layout of one session (docs/contract.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

SESSION_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_TIMESTAMP_FORMAT = "-%Y%m%dt%H%M%Sz"
_TIMESTAMP_LEN = len("-20261122t051500z")
_MAX_ID_LEN = 63


def validate_session_id(value: str) -> str:
    """Return `value` if it is a valid session id, else raise ValueError saying why."""
    # fullmatch: `$` alone would accept a trailing newline.
    if not isinstance(value, str) or not SESSION_ID_RE.fullmatch(value):
        raise ValueError(
            f"session id {value!r} is invalid: use 1-63 lowercase letters, digits and '-', "
            "starting with a letter or digit"
        )
    return value


def make_session_id(name: str, now: datetime) -> str:
    """`<sanitised name>-<UTC timestamp>`, e.g. `cartpole-20261122t051500z`.

    A naive `now` is taken to be UTC already.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    slug = slug[: _MAX_ID_LEN - _TIMESTAMP_LEN].rstrip("-")
    if not slug:
        raise ValueError(
            f"session name {name!r} is invalid: it needs at least one letter or digit"
        )
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return validate_session_id(slug + now.astimezone(timezone.utc).strftime(_TIMESTAMP_FORMAT))


@dataclass(frozen=True)
class SessionLayout:
    """Paths of one session under `<data_root>/sessions/<session>`."""

    root: Path

    @classmethod
    def for_session(cls, data_root: Path | str, session_id: str) -> SessionLayout:
        return cls(Path(data_root) / "sessions" / validate_session_id(session_id))

    @property
    def session_id(self) -> str:
        return self.root.name

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def run_json(self) -> Path:
        return self.config_dir / "run.json"

    @property
    def hyperparameters(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def requirements_lock(self) -> Path:
        """The set the session's venv was installed with (the trainer role writes it)."""
        return self.config_dir / "requirements.lock"

    @property
    def storage_env(self) -> Path:
        return self.config_dir / "storage.env"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

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
        return self.root / "status.json"

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
