from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import gymnasium
import pytest
from rlops_runtime.agents.envs import (
    TABLE,
    extra_for_entry_point,
    missing_extra,
    pip_requirement,
    runtime_table,
)
from rlops_runtime.agents.hyperparams import validate_env_id
from rlops_runtime.cli import main


@pytest.mark.parametrize("entry_point, extra", [
    ("gymnasium.envs.box2d.lunar_lander:LunarLander", "box2d"),
    ("gymnasium.envs.box2d:BipedalWalker", "box2d"),
    ("gymnasium.envs.mujoco.ant_v5:AntEnv", "mujoco"),
    ("gymnasium.envs.phys2d.cartpole:CartPoleJaxEnv", "jax"),
    ("gymnasium.envs.classic_control.cartpole:CartPoleEnv", None),
    ("gymnasium.envs.toy_text.frozen_lake:FrozenLakeEnv", None),
    ("gymnasium.envs:Nothing", None),
    ("my_envs.box2d:Mine", None),  # not gymnasium's own package
    ("", None),
    (None, None),
    (print, None),  # a callable entry point tells nothing by its name
])
def test_extra_for_entry_point(entry_point, extra) -> None:
    found = extra_for_entry_point(entry_point)
    assert (found.name if found else None) == extra


def test_runtime_table_lists_only_extras_the_runtime_installs() -> None:
    registry = {
        "LunarLander-v3": SimpleNamespace(entry_point="gymnasium.envs.box2d.lunar_lander:Lander"),
        "Ant-v5": SimpleNamespace(entry_point="gymnasium.envs.mujoco.ant_v5:AntEnv"),
        "CartPole-v1": SimpleNamespace(entry_point="gymnasium.envs.classic_control:CartPoleEnv"),
        "phys2d/CartPole-v1": SimpleNamespace(entry_point="gymnasium.envs.phys2d.cartpole:X"),
    }
    assert runtime_table(registry) == {"Ant-v5": "mujoco", "LunarLander-v3": "box2d"}


def test_pip_requirement() -> None:
    box2d = extra_for_entry_point("gymnasium.envs.box2d:X")
    assert pip_requirement(box2d, "1.4.0") == "gymnasium[box2d]==1.4.0"
    assert pip_requirement(box2d, None) == "gymnasium[box2d]"


def test_shipped_table_is_the_registry_of_the_locked_gymnasium() -> None:
    """The trainer role reads env_extras.json on the controller: it must say what this
    gymnasium's registry says (after an upgrade: python -m rlops_runtime.agents.envs --write)."""
    assert json.loads(TABLE.read_text()) == runtime_table(dict(gymnasium.registry))
    assert json.loads(TABLE.read_text())["LunarLander-v3"] == "box2d"


def test_lunar_lander_validates_with_box2d_installed(capsys) -> None:
    assert missing_extra("LunarLander-v3") is None
    assert validate_env_id("LunarLander-v3") is None
    assert main(["validate", "--env-id", "LunarLander-v3", "--algo", "ppo"]) == 0
    assert capsys.readouterr().out.strip() == "ok"


def test_lunar_lander_without_box2d_is_refused_with_the_requirement(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "Box2D", None)  # what `import Box2D` does when it is missing
    requirement = f"gymnasium[box2d]=={gymnasium.__version__}"
    message = validate_env_id("LunarLander-v3")
    assert message == (
        f"env LunarLander-v3 needs gymnasium's box2d extra (Box2D is not installed in "
        f"{sys.prefix}): add '{requirement}' to trainer_requirements (or 'box2d' to "
        "trainer_runtime_extras)"
    )
    assert main(["validate", "--env-id", "LunarLander-v3", "--algo", "ppo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlops-run: error: env LunarLander-v3 needs") and requirement in err
    # An env that needs nothing more is not affected.
    assert validate_env_id("CartPole-v1") is None


def test_an_env_that_cannot_be_built_is_refused() -> None:
    # gymnasium registers the mujoco-py versions only to raise when they are built.
    assert "cannot be built here" in validate_env_id("Ant-v2")
