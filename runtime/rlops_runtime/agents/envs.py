"""Which extra of gymnasium an env needs, and whether this venv has it.

An env's registry entry point names the package it lives in: gymnasium.envs.box2d.lunar_lander
needs gymnasium[box2d] (Box2D), gymnasium.envs.mujoco.* needs gymnasium[mujoco]. The runtime
offers the extras it can install as its own (rlops-runtime[box2d], rlops-runtime[mujoco]);
the trainer role reads env_extras.json (every registered env id that needs one of them, made
from the registry by `python -m rlops_runtime.agents.envs --write`) on the controller and
installs the extra with the runtime, before the host has gymnasium. A runtime test keeps
the table equal to the registry of the locked gymnasium.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("env_extras.json")


@dataclass(frozen=True)
class Extra:
    name: str  # gymnasium's extra
    module: str  # what it installs, imported to tell whether it is there
    runtime: bool  # rlops-runtime offers it as an extra of its own (the role installs it)


# gymnasium.envs.<package> -> the extra its envs need. classic_control and toy_text need
# pygame only to render, and sb3's extra brings it.
EXTRAS = {
    "box2d": Extra("box2d", "Box2D", runtime=True),
    "mujoco": Extra("mujoco", "mujoco", runtime=True),
    "phys2d": Extra("jax", "jax", runtime=False),
    "tabular": Extra("jax", "jax", runtime=False),
}


def extra_for_entry_point(entry_point: Any) -> Extra | None:
    """The extra an entry point ('gymnasium.envs.box2d.lunar_lander:LunarLander') needs."""
    if not isinstance(entry_point, str):
        return None  # a class or a function: nothing to tell from a name
    parts = entry_point.split(":", 1)[0].split(".")
    if parts[:2] != ["gymnasium", "envs"] or len(parts) < 3:
        return None
    return EXTRAS.get(parts[2])


def pip_requirement(extra: Extra, gymnasium_version: str | None) -> str:
    """What to add to a venv for `extra`, pinned to the gymnasium it has."""
    pin = f"=={gymnasium_version}" if gymnasium_version else ""
    return f"gymnasium[{extra.name}]{pin}"


def runtime_table(registry: dict[str, Any]) -> dict[str, str]:
    """env id -> the rlops-runtime extra it needs, for every id that needs one."""
    table = {}
    for env_id, spec in registry.items():
        extra = extra_for_entry_point(getattr(spec, "entry_point", None))
        if extra is not None and extra.runtime:
            table[env_id] = extra.name
    return dict(sorted(table.items()))


def has_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def missing_extra(env_id: str) -> str | None:
    """A message when the env's extra is not installed in this venv; None when it is."""
    import gymnasium

    spec = gymnasium.registry.get(env_id)
    extra = extra_for_entry_point(getattr(spec, "entry_point", None))
    if extra is None or has_module(extra.module):
        return None
    requirement = pip_requirement(extra, getattr(gymnasium, "__version__", None))
    how = f"add '{requirement}' to trainer_requirements"
    if extra.runtime:
        how += f" (or '{extra.name}' to trainer_runtime_extras)"
    return (
        f"env {env_id} needs gymnasium's {extra.name} extra ({extra.module} is not installed "
        f"in {sys.prefix}): {how}"
    )


def build_problem(env_id: str) -> str | None:
    """Build the env once, as training will: a message when that fails."""
    import gymnasium

    try:
        gymnasium.make(env_id).close()
    except Exception as exc:  # any failure to build is the answer, whatever its type
        return f"env {env_id} cannot be built here: {type(exc).__name__}: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="env id -> rlops-runtime extra, from gymnasium's registry")
    parser.add_argument("--write", action="store_true", help=f"write {TABLE.name}")
    args = parser.parse_args(argv)
    import gymnasium

    text = json.dumps(runtime_table(dict(gymnasium.registry)), indent=2) + "\n"
    if args.write:
        TABLE.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
