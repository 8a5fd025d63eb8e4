"""The job's settings in config/run.json: how a new session's are made, and what a resume
may change (docs/contract.md, "Settings").

A new session's run.json is the requested settings over RunConfig's defaults. A resumed
session keeps its run.json; a setting the request names with another value is applied when
that is safe (train longer, checkpoint more often, ...) and refused with a message when it
is not (another env or algorithm would not match the checkpoints). Nothing is ignored:
every requested setting is either unchanged, applied or refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from . import session_contract as contract
from .session_contract import (
    APPLY,
    BACKEND_AGENT_ARGS,
    DEEPRACER_RESUME,
    GROW,
    HOST,
    INPUT_PREFIX,
    REFUSE,
    RESUME_POLICY,
    ContractError,
)
from .supervisor import RunConfig

# What a resume may change, the values' types and ranges are the session contract's.
__all__ = ["APPLY", "GROW", "HOST", "REFUSE", "RESUME_POLICY", "ResumePlan", "SettingsError",
           "describe_changes", "new_config", "plan_resume", "requested_settings"]


class SettingsError(ValueError):
    """A request that cannot be applied, with every reason."""


@dataclass
class ResumePlan:
    """What a resume does with the requested settings."""

    config: dict[str, Any]                       # run.json after the plan
    changes: dict[str, Any] = field(default_factory=dict)  # name: [old, new]; env: keys

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _coerce(name: str, value: Any) -> Any:
    try:
        return contract.coerce_setting(name, value)
    except ContractError as exc:
        raise SettingsError(str(exc)) from None


def _check_ranges(config: dict[str, Any]) -> list[str]:
    return contract.setting_problems(config)


def requested_settings(request: dict[str, Any]) -> dict[str, Any]:
    """The run.json settings of a request, coerced; unknown names refused."""
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(request) - known - {"hyperparameters", "env_base"})
    if unknown:
        raise SettingsError(f"unknown settings: {', '.join(unknown)}")
    return {name: _coerce(name, value) for name, value in request.items()
            if name in known and value is not None}


def new_config(request: dict[str, Any]) -> dict[str, Any]:
    """run.json of a new session: RunConfig's defaults, then the request."""
    settings = requested_settings(request)
    env = {**_coerce("env", request.get("env_base") or {}), **settings.pop("env", {})}
    defaults = RunConfig(session_id=settings.get("session_id", "x"),
                         storage_uri=settings.get("storage_uri", "file:///x"))
    config = {f.name: getattr(defaults, f.name) for f in fields(RunConfig)}
    config.update(settings)
    config["env"] = env
    problems = _check_ranges(config)
    if problems:
        raise SettingsError("; ".join(problems))
    RunConfig.from_dict(config)  # the supervisor's own checks (ids, choices, URLs)
    return config


def plan_resume(current: dict[str, Any], request: dict[str, Any], step: int,
                hyperparameters: dict[str, Any] | None = None,
                requested_hyperparameters: dict[str, Any] | None = None) -> ResumePlan:
    """Apply what is safe of the request to a session's run.json; refuse the rest.

    `step` is the step the session has reached (its newest checkpoint, or its status).
    `env_base` in the request (the host's PATH and venv) replaces those keys of the job's
    environment; `env` adds or changes the user's own keys and removes none.
    """
    settings = requested_settings(request)
    config = dict(current)
    changes: dict[str, Any] = {}
    problems: list[str] = []
    fixed: list[str] = []
    env_update = {**_coerce("env", request.get("env_base") or {}), **settings.pop("env", {})}
    for name, value in settings.items():
        old = current.get(name)
        if value == old:
            continue
        policy = RESUME_POLICY.get(name, REFUSE)
        if policy == REFUSE:
            fixed.append(f"{INPUT_PREFIX}{name} ({old!r}, asked for {value!r})")
        elif policy == DEEPRACER_RESUME and contract.deepracer_resume_problems(old, value):
            problems += contract.deepracer_resume_problems(old, value)
        elif policy == HOST and name == "command" and _is_agent(old) != _is_agent(value):
            problems.append(
                f"this session runs {_describe_command(old)}, the request "
                f"{_describe_command(value)}: resume with the session's trainer_source and "
                "trainer_entrypoint"
            )
        elif policy == GROW and value <= step:
            problems.append(
                f"{INPUT_PREFIX}{name} {value} is not beyond step {step}, which the session "
                f"has reached: give more than {step} to train longer"
            )
        else:
            config[name] = value
            changes[name] = [old, value]
    env = {**(current.get("env") or {}), **env_update}
    if env != (current.get("env") or {}):
        changed_keys = sorted(k for k in env if (current.get("env") or {}).get(k) != env[k])
        config["env"] = env
        changes["env"] = changed_keys
    requested_hp = requested_hyperparameters
    if requested_hp is not None and requested_hp != (hyperparameters or {}):
        fixed.append(f"{INPUT_PREFIX}hyperparameters "
                     f"({_describe_difference(hyperparameters or {}, requested_hp)})")
    if fixed:
        problems.insert(0, (
            f"{' and '.join(fixed)} cannot change on resume: the session's checkpoints were "
            "made with the values it has; resume without them, or start a new session "
            "(train_new) for other values"))
    if problems:
        raise SettingsError("; ".join(problems))
    problems = _check_ranges({**_range_defaults(), **config})
    if problems:
        raise SettingsError("; ".join(problems))
    RunConfig.from_dict(config)
    return ResumePlan(config=config, changes=changes)


def describe_changes(changes: dict[str, Any]) -> list[str]:
    """One line per changed setting a user named, e.g. "total_timesteps 100000 -> 300000"
    (the host's venv paths are left out: they follow the host)."""
    return [f"{name} {values[0]} -> {values[1]}" for name, values in changes.items()
            if RESUME_POLICY.get(name) != HOST and name != "env" and isinstance(values, list)]


def _is_agent(command: Any) -> bool:
    """A reference agent's command (any backend's): its interpreter is the host's."""
    return isinstance(command, list) and any(
        command[1:] == list(args) for args in BACKEND_AGENT_ARGS.values())


def _describe_command(command: Any) -> str:
    if _is_agent(command):
        return "the reference agent"
    return "its own job (" + " ".join(command or []) + ")"


def _range_defaults() -> dict[str, Any]:
    defaults = RunConfig(session_id="x", storage_uri="file:///x")
    return {f.name: getattr(defaults, f.name) for f in fields(RunConfig)}


def _describe_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in keys)
