"""Hyperparameters of the reference agent, in rl-baselines3-zoo's format.

Defaults per env id live in ppo.json / dqn.json (the zoo's tuned values); a session's
config/hyperparameters.json is merged over them key by key. Zoo-only keys: n_envs, policy,
normalize (bool or VecNormalize kwargs), n_timesteps, policy_kwargs (dict or the zoo's
"dict(...)" string). Schedules are written `lin_<initial value>`.
"""

from __future__ import annotations

import ast
import collections.abc
import inspect
import json
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..jsonio import read_json, write_json_atomic
from ..session_contract import (
    ALGO_KEYS,
    SESSION_OWNED,
    ContractError,
    check_algo,
    env_id_error,
    hyperparameter_key_problems,
)
from ..session_contract import ZOO_KEYS as _ZOO_KEYS

# Which keys a session takes is the session contract's (hyperparameter_key_problems); the
# installed SB3 says which values each takes.
ZOO_KEYS = frozenset(_ZOO_KEYS)
FALLBACK_DEFAULTS: dict[str, Any] = {"policy": "MlpPolicy"}

_LIN = re.compile(r"^lin_([0-9.eE+-]+)$")
_UNION_TYPES = (typing.Union, getattr(types, "UnionType", typing.Union))
_KIND_WORDS = {
    "int": "an integer", "float": "a number", "bool": "true/false", "str": "a string",
    "schedule": "lin_<number>", "dict": "an object", "list": "a list", "null": "null",
}


@dataclass(frozen=True)
class LinearSchedule:
    """Falls linearly from `initial` to 0 over training; picklable into model.zip."""

    initial: float

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.initial


@dataclass
class Resolved:
    """Merged hyperparameters split into what the agent needs and the algorithm kwargs."""

    policy: str
    n_envs: int
    normalize: dict[str, Any] | None
    n_timesteps: int | None
    kwargs: dict[str, Any] = field(default_factory=dict)


def algorithm_class(algo: str) -> type:
    import stable_baselines3

    return getattr(stable_baselines3, check_algo(algo).upper())


def load_defaults(algo: str, env_id: str) -> dict[str, Any]:
    table = json.loads((Path(__file__).parent / f"{algo}.json").read_text())
    return dict(table.get(env_id, FALLBACK_DEFAULTS))


def merge(defaults: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """The user's keys replace the defaults' (whole values, as in the zoo)."""
    return {**defaults, **user}


def read_hyperparameters(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: must be a JSON object of hyperparameters")
    return data


def parse_kwargs(text: str) -> dict[str, Any]:
    """Parse the zoo's `dict(a=1, activation_fn=nn.ReLU)` or `{'a': 1}` strings, without eval."""
    try:
        value = _literal(ast.parse(text.strip(), mode="eval").body)
    except (SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot parse {text!r}: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"cannot parse {text!r}: not a dict")
    return value


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "nn":
        import torch.nn

        if not hasattr(torch.nn, node.attr):
            raise ValueError(f"torch.nn has no {node.attr}")
        return getattr(torch.nn, node.attr)
    if isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id == "dict") or node.args:
            raise ValueError("only dict(key=value, ...) calls are allowed")
        if any(kw.arg is None for kw in node.keywords):
            raise ValueError("only dict(key=value, ...) calls are allowed")
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(elt) for elt in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ValueError(f"{ast.unparse(node)} is not a literal") from None


def parse_schedule(value: Any) -> Any:
    """`lin_0.001` -> LinearSchedule(0.001); anything else unchanged."""
    match = _LIN.match(value) if isinstance(value, str) else None
    return LinearSchedule(float(match.group(1))) if match else value


def resolve(hp: dict[str, Any]) -> Resolved:
    """Turn validated, merged hyperparameters into objects the algorithm accepts."""
    kwargs = {key: parse_schedule(value) for key, value in hp.items() if key not in ZOO_KEYS}
    if isinstance(kwargs.get("train_freq"), list):
        kwargs["train_freq"] = tuple(kwargs["train_freq"])
    policy_kwargs = hp.get("policy_kwargs")
    if isinstance(policy_kwargs, str):
        policy_kwargs = parse_kwargs(policy_kwargs)
    if policy_kwargs:
        kwargs["policy_kwargs"] = policy_kwargs
    normalize = hp.get("normalize", False)
    if isinstance(normalize, str):
        normalize = parse_kwargs(normalize)
    n_timesteps = hp.get("n_timesteps")
    return Resolved(
        policy=hp.get("policy", "MlpPolicy"),
        n_envs=hp.get("n_envs", 1),
        normalize=(normalize if isinstance(normalize, dict) else {}) if normalize else None,
        n_timesteps=int(n_timesteps) if n_timesteps is not None else None,
        kwargs=kwargs,
    )


def _annotation_kinds(annotation: Any) -> set[str] | None:
    """JSON kinds a parameter annotation admits; None when it cannot be told."""
    origin = typing.get_origin(annotation)
    if origin in _UNION_TYPES:
        kinds: set[str] = set()
        for arg in typing.get_args(annotation):
            sub = _annotation_kinds(arg)
            if sub is None:
                continue
            kinds |= sub
        return kinds or None
    simple = {int: {"int"}, float: {"int", "float"}, bool: {"bool"}, str: {"str"},
              type(None): {"null"}, dict: {"dict"}, list: {"list"}, tuple: {"list"}}
    if annotation in simple:
        return simple[annotation]
    if origin in simple:
        return simple[origin]
    if origin is collections.abc.Callable:
        return {"schedule"}
    return None


def _value_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "schedule" if _LIN.match(value) else "str"
    return {int: "int", float: "float", dict: "dict", list: "list", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _expected(kinds: set[str]) -> str:
    if "float" in kinds:
        kinds = kinds - {"int"}  # "a number" covers integers
    return " or ".join(words for kind, words in _KIND_WORDS.items() if kind in kinds)


def _check_zoo_key(key: str, value: Any) -> str | None:
    if key == "n_envs":
        ok = _value_kind(value) == "int" and value >= 1
        return None if ok else f"n_envs must be an integer >= 1, got {value!r}"
    if key == "n_timesteps":
        ok = _value_kind(value) in ("int", "float") and value > 0
        return None if ok else f"n_timesteps must be a number > 0, got {value!r}"
    if key == "policy":
        return None if isinstance(value, str) else f"policy must be a string, got {value!r}"
    if key == "normalize" and isinstance(value, bool):
        return None
    if isinstance(value, dict):
        return None
    if isinstance(value, str):
        try:
            parse_kwargs(value)
        except ValueError as exc:
            return f"{key}: {exc}"
        return None
    extra = "true/false, " if key == "normalize" else ""
    return f"{key} must be {extra}an object or a 'dict(...)' string, got {value!r}"


def _sb3_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stable-baselines3")
    except PackageNotFoundError:
        return "none"


def parameter_kinds(algo: str, cache_dir: Path | None = None) -> dict[str, list[str] | None]:
    """The algorithm's constructor parameters and the JSON kinds each admits (None: any).

    Reading them imports SB3 and torch (seconds); the table is kept per SB3 version in the
    venv (`cache_dir`, default sys.prefix), so that later checks need neither.
    """
    check_algo(algo)
    cache = Path(cache_dir or sys.prefix) / f".rlops-{algo}-parameters-{_sb3_version()}.json"
    try:
        table = read_json(cache)
    except PermissionError:
        table = None  # written by another user: read the parameters again
    if isinstance(table, dict):
        return table
    params = inspect.signature(algorithm_class(algo).__init__).parameters
    table = {}
    for name, param in params.items():
        if name != "self":
            kinds = _annotation_kinds(param.annotation)
            table[name] = sorted(kinds) if kinds is not None else None
    try:
        write_json_atomic(cache, table)
        # The venv is root's on a host prepared over SSH (the role validates as root),
        # the job runs as another user: the table must be readable by all.
        cache.chmod(0o644)
    except OSError:
        pass  # a read-only venv: checks stay correct, only slower
    return table


def validate_hyperparameters(algo: str, hp: dict[str, Any],
                             cache_dir: Path | None = None) -> list[str]:
    """Problems with `hp` for `algo`, one message each; empty when fine. The keys by the
    session contract, the values by the installed SB3's constructor."""
    problems = hyperparameter_key_problems(algo, hp)
    try:
        params = parameter_kinds(algo, cache_dir)
    except ContractError:
        return problems  # an unknown algo: the contract said so
    for key, value in hp.items():
        if key in SESSION_OWNED or (key not in ALGO_KEYS[algo] and key not in ZOO_KEYS):
            continue  # refused by its name above
        if key in ZOO_KEYS:
            problem = _check_zoo_key(key, value)
            if problem:
                problems.append(problem)
        else:
            kinds = params.get(key)
            if kinds is not None and _value_kind(value) not in kinds:
                problems.append(f"{key} must be {_expected(set(kinds))}, got {value!r}")
    return problems


def validate_env_id(env_id: str) -> str | None:
    """None when gymnasium knows `env_id` and the env builds in this venv, else a message:
    close matches of an unknown id, the pip requirement of a missing extra (LunarLander-v3
    needs gymnasium[box2d]), or why building it failed."""
    import gymnasium

    from .envs import build_problem, missing_extra

    return (env_id_error(env_id, gymnasium.registry) or missing_extra(env_id)
            or build_problem(env_id))
