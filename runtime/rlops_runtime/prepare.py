"""`rlops-run session prepare`: make a session ready to start, in one call with a JSON answer.

The trainer role calls it once per host, as the job's user, with one JSON request on stdin
(the storage credentials among it: never on a command line or in the environment):

    {"mode": "new"|"resume", "settings": {...run.json settings, storage_uri...},
     "hyperparameters": {...}|null, "credentials": {...}, "record": "<the venv's set>",
     "validate": true|false}

In order, and before the session's folder is created (an unknown or refused session leaves
nothing): the env id and hyperparameters (`validate`, the reference agent's rules), storage
(reach, credentials, write access; a new session must not be in storage nor have local
checkpoints), a resumed session's config restored from storage when the host lost it. Then
config/run.json and hyperparameters.json (a new session's, or what a resume may change),
config/requirements.lock (the venv's set) and config/storage.env (0600). With `check` it
reads only and answers what it would change. Every rule is the runtime's own: settings.py
(defaults, what a resume may change), the agents' hyperparameter checks, the storage client,
`restore_config`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import session_contract as contract
from .checkpoints import local_steps
from .jsonio import parse_json_object, read_json, write_bytes_atomic, write_json_atomic
from .session import SessionLayout, validate_session_id
from .status import read_status
from .storage import Storage, StorageError, open_storage

MODES = ("new", "resume")


class PrepareError(Exception):
    """The session cannot be prepared; the message says what and why."""


@dataclass
class Request:
    """What the role asks for (stdin)."""

    mode: str
    settings: dict[str, Any]
    hyperparameters: dict[str, Any] | None = None
    credentials: dict[str, str] = field(default_factory=dict)
    record: str = ""
    validate: bool = False

    @classmethod
    def parse(cls, text: str, mode: str | None = None) -> Request:
        try:
            data = parse_json_object(text, "prepare")
        except ValueError as exc:
            raise PrepareError(str(exc)) from None
        mode = mode or data.get("mode")
        if mode not in MODES:
            raise PrepareError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        settings = dict(data.get("settings") or {})
        if not settings.get("storage_uri"):
            raise PrepareError("settings.storage_uri is required")
        credentials = data.get("credentials") or {}
        if not isinstance(credentials, dict):
            raise PrepareError("credentials must be a JSON object of names to values")
        hp = data.get("hyperparameters")
        if hp is not None and not isinstance(hp, dict):
            raise PrepareError("hyperparameters must be a JSON object")
        return cls(mode, settings, hp, {str(k): str(v) for k, v in credentials.items()},
                   str(data.get("record") or ""), bool(data.get("validate")))


# --------------------------------------------------------------------------- decisions


def storage_env_text(session_id: str, credentials: dict[str, str]) -> str:
    """config/storage.env: KEY=VALUE lines read by the supervisor and systemd's
    EnvironmentFile= (supervisor.parse_env_file). Never copied to storage."""
    head = (f"# Storage credentials of session {session_id}: read by the rlops-run supervisor\n"
            "# (and systemd's EnvironmentFile=). Never copied to storage.\n")
    return head + "".join(f"{key}={credentials[key]}\n" for key in sorted(credentials))


def files_to_write(layout: SessionLayout, request: Request) -> dict[Path, bytes]:
    """The session's files besides run.json and hyperparameters.json: the venv's set (a new
    session's always, a resumed one keeps its own) and the credentials (when given)."""
    out: dict[Path, bytes] = {}
    if request.record and (request.mode == "new" or not layout.requirements_lock.exists()):
        out[layout.requirements_lock] = request.record.encode()
    if request.credentials:
        out[layout.storage_env] = storage_env_text(layout.session_id,
                                                   request.credentials).encode()
    return {path: data for path, data in out.items()
            if not path.is_file() or path.read_bytes() != data}


def reached_step(layout: SessionLayout) -> int:
    """The step a session has reached: its newest local checkpoint or its last status."""
    steps = local_steps(layout.checkpoints) if layout.checkpoints.is_dir() else []
    status = read_status(layout.status)
    reached = [*steps, *([status.step or 0, status.last_checkpoint_step or 0] if status else [])]
    return max(reached, default=0)


def plan_config(layout: SessionLayout, mode: str, settings: dict[str, Any],
                hyperparameters: dict[str, Any] | None, current: dict[str, Any] | None,
                ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """run.json as it should be, what changes, and hyperparameters.json to write (None: keep).
    Raises SettingsError (the runtime's rules: settings.py) or PrepareError."""
    from .settings import new_config, plan_resume

    if mode == "new":
        if local_steps(layout.checkpoints) if layout.checkpoints.is_dir() else []:
            raise PrepareError(f"session {layout.session_id} already has checkpoints in "
                               f"{layout.checkpoints}: run resume.yml")
        config = new_config({**settings, "session_id": layout.session_id})
        changes: dict[str, Any] = {} if current == config else {"run.json": "written"}
        hp = hyperparameters or {}
        if read_json(layout.hyperparameters) != hp:
            changes["hyperparameters.json"] = "written"
            return config, changes, hp
        return config, changes, None
    if current is None:
        raise PrepareError(f"session {layout.session_id} has no {layout.run_json}")
    plan = plan_resume(current, settings, reached_step(layout),
                       read_json(layout.hyperparameters, {}), hyperparameters)
    return plan.config, plan.changes, None


# --------------------------------------------------------------------------- the shell


def job_problems(env_id: str, algo: str, hyperparameters: dict[str, Any],
                 backend: str | None = None) -> list[str]:
    """What is wrong with the reference agent's env id (it must build in this venv) and
    hyperparameters (names and values, against the installed SB3; for the Ray backend, what
    its RLlib agent takes, in a venv without SB3): what prepare's `validate` and the hand
    tool `rlops-run validate` both ask."""
    if backend == contract.DEEPRACER_BACKEND:  # no gymnasium, no SB3: the stack's job
        return contract.hyperparameter_key_problems(algo, hyperparameters, backend)
    from .agents.hyperparams import validate_env_id, validate_hyperparameters

    env_problems = [p for p in [validate_env_id(env_id)] if p]
    if backend == contract.RAY_BACKEND:
        from .agents.rllib import hyperparameter_problems

        return env_problems + hyperparameter_problems(env_id, hyperparameters)
    return env_problems + validate_hyperparameters(algo, hyperparameters)


def _validate(request: Request) -> None:
    from .supervisor import RunConfig

    problems = job_problems(request.settings.get("env_id") or RunConfig.env_id,
                            request.settings.get("algo") or RunConfig.algo,
                            request.hyperparameters or {}, request.settings.get("backend"))
    if problems:
        raise PrepareError("; ".join(problems))


def _check_storage(storage: Storage, layout: SessionLayout, request: Request,
                   check: bool) -> None:
    """Reach, credentials and write access (a probe object, not in check mode); a new
    session must not be in storage already."""
    if not check:
        storage.check()
    if request.mode == "new":
        from .publish import list_sessions

        if layout.session_id in list_sessions(storage):
            raise PrepareError(f"session {layout.session_id} already exists in storage "
                               f"{storage.uri}: run resume.yml")


def _restore(storage: Storage, layout: SessionLayout, check: bool,
             ) -> tuple[list[str], dict[str, Any] | None]:
    """A resumed session's config that the host lost, from storage: the files restored (or
    that would be) and run.json as it is then."""
    from .cli import CliError, restore_config

    key = contract.config_key(layout.session_id, contract.RUN_JSON)
    if check:
        data = storage.get_bytes(key)
        if data is None:
            raise PrepareError(unknown(layout, storage))
        names = [name for name in contract.CONFIG_FILES
                 if storage.exists(contract.config_key(layout.session_id, name))]
        return names, json.loads(data)
    try:
        return restore_config(storage, layout), read_json(layout.run_json)
    except CliError:
        raise PrepareError(unknown(layout, storage)) from None


def unknown(layout: SessionLayout, storage: Storage) -> str:
    return (f"session {layout.session_id} cannot be resumed: the host has no "
            f"{layout.run_json} and storage {storage.uri} does not have it either "
            "(config/run.json)")


def prepare(layout: SessionLayout, request: Request, check: bool = False) -> dict[str, Any]:
    """Carry out the request; the answer says what changed (or would)."""
    from .settings import SettingsError, describe_changes

    validate_session_id(layout.session_id)
    try:
        if request.validate and request.mode == "new":
            _validate(request)
        os.environ.update(request.credentials)  # the storage client's, for this process
        storage = open_storage(request.settings["storage_uri"])
        _check_storage(storage, layout, request, check)
        restored: list[str] = []
        current = read_json(layout.run_json)
        if request.mode == "resume" and current is None:
            restored, current = _restore(storage, layout, check)
        config, changes, hp = plan_config(layout, request.mode, request.settings,
                                          request.hyperparameters, current)
    except SettingsError as exc:
        raise PrepareError(f"session {layout.session_id}: {exc}") from None
    except StorageError as exc:
        raise PrepareError(str(exc)) from None
    files = files_to_write(layout, request)
    if not check:
        layout.config_dir.mkdir(parents=True, exist_ok=True)
        if changes and config != read_json(layout.run_json):
            write_json_atomic(layout.run_json, config)
        if hp is not None:
            write_json_atomic(layout.hyperparameters, hp)
        for path, data in files.items():
            write_bytes_atomic(path, data)
            path.chmod(0o600 if path == layout.storage_env else 0o644)
    written = sorted(path.name for path in files)
    return {"session_id": layout.session_id, "mode": request.mode, "ok": True,
            "changed": bool(changes or restored or written), "restored": restored,
            "changes": changes, "summary": describe_changes(changes), "written": written,
            "config": config, "msg": ""}


def cmd_prepare(args: Any, stdin: str) -> dict[str, Any]:
    """`rlops-run session prepare`: the answer, or one that says what and why not."""
    layout = SessionLayout(Path(os.path.abspath(args.session_dir)))
    try:
        return prepare(layout, Request.parse(stdin, args.mode), check=args.check)
    except (PrepareError, ValueError, OSError) as exc:
        return {"session_id": layout.session_id, "mode": args.mode, "ok": False,
                "changed": False, "msg": str(exc)}
