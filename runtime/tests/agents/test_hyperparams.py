"""Zoo defaults, merging, validation of hyperparameters and env ids."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch.nn
from rlops_runtime.agents.hyperparams import (
    LinearSchedule,
    load_defaults,
    merge,
    parse_kwargs,
    read_hyperparameters,
    resolve,
    validate_env_id,
    validate_hyperparameters,
)
from rlops_runtime.session_contract import ALGOS

ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3")


def test_cartpole_ppo_is_the_zoo_one() -> None:
    assert load_defaults("ppo", "CartPole-v1") == {
        "n_envs": 8, "n_timesteps": 100000, "policy": "MlpPolicy", "n_steps": 32,
        "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20, "ent_coef": 0.0,
        "learning_rate": "lin_0.001", "clip_range": "lin_0.2",
    }


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("env_id", ENVS)
def test_every_default_validates(algo: str, env_id: str) -> None:
    defaults = load_defaults(algo, env_id)
    assert defaults["policy"] == "MlpPolicy"
    assert validate_hyperparameters(algo, defaults) == []
    assert validate_env_id(env_id) is None


def test_unknown_env_gets_plain_defaults() -> None:
    assert load_defaults("dqn", "Pendulum-v1") == {"policy": "MlpPolicy"}


def test_merge_user_keys_win_whole() -> None:
    merged = merge({"n_envs": 8, "policy_kwargs": {"net_arch": [64]}},
                   {"policy_kwargs": {"ortho_init": False}})
    assert merged == {"n_envs": 8, "policy_kwargs": {"ortho_init": False}}


def test_resolve_turns_zoo_values_into_objects() -> None:
    ppo = resolve(load_defaults("ppo", "CartPole-v1"))
    assert (ppo.policy, ppo.n_envs, ppo.normalize) == ("MlpPolicy", 8, None)
    assert ppo.n_timesteps == 100000
    assert ppo.kwargs["learning_rate"] == LinearSchedule(0.001)
    assert ppo.kwargs["clip_range"](0.5) == pytest.approx(0.1)
    assert "n_envs" not in ppo.kwargs and "policy" not in ppo.kwargs
    dqn = resolve({**load_defaults("dqn", "CartPole-v1"), "train_freq": [4, "step"]})
    assert dqn.kwargs["policy_kwargs"] == {"net_arch": [256, 256]}
    assert dqn.kwargs["train_freq"] == (4, "step")
    assert resolve(load_defaults("ppo", "Acrobot-v1")).normalize == {}
    assert resolve({"normalize": "dict(norm_reward=False)"}).normalize == {"norm_reward": False}


def test_linear_schedule_pickles_by_reference() -> None:
    assert pickle.loads(pickle.dumps(LinearSchedule(0.2)))(1.0) == 0.2


def test_parse_kwargs() -> None:
    parsed = parse_kwargs(
        "dict(log_std_init=-2, ortho_init=False, activation_fn=nn.ReLU,\n"
        "     net_arch=[dict(pi=[256, 256], vf=[256, 256])])"
    )
    assert parsed == {"log_std_init": -2, "ortho_init": False, "activation_fn": torch.nn.ReLU,
                      "net_arch": [{"pi": [256, 256], "vf": [256, 256]}]}
    assert parse_kwargs("{'norm_obs': False}") == {"norm_obs": False}
    for text, message in (("__import__('os')", "only dict"), ("dict(a=nn.Nope)", "Nope"),
                          ("dict(a=b)", "not a literal"), ("[1]", "not a dict"),
                          ("dict(", "cannot parse")):
        with pytest.raises(ValueError, match=message):
            parse_kwargs(text)


def test_unknown_keys_are_named_with_suggestions() -> None:
    # The session contract's words, as the controller says them.
    problems = validate_hyperparameters("ppo", {"lerning_rate": 0.1, "frame_stack": 4})
    assert problems == [
        "'frame_stack' is not a PPO hyperparameter",
        "'lerning_rate' is not a PPO hyperparameter (did you mean 'learning_rate'?)",
    ]
    # Right key, wrong algorithm.
    assert validate_hyperparameters("ppo", {"buffer_size": 10}) == [
        "'buffer_size' is not a PPO hyperparameter"
    ]


def test_names_and_values_are_both_reported() -> None:
    assert validate_hyperparameters("ppo", {"n_step": 64, "gamma": "high"}) == [
        "'n_step' is not a PPO hyperparameter (did you mean 'n_steps'?)",
        "gamma must be a number, got 'high'",
    ]


def test_verbose_is_the_users() -> None:
    assert validate_hyperparameters("ppo", {"verbose": 1}) == []
    assert validate_hyperparameters("dqn", {"verbose": "loud"}) == [
        "verbose must be an integer, got 'loud'"]


@pytest.mark.parametrize("algo, hp, message", [
    ("ppo", {"n_steps": 32.0}, "n_steps must be an integer, got 32.0"),
    ("ppo", {"n_steps": True}, "n_steps must be an integer"),
    ("ppo", {"gamma": "0.99"}, "gamma must be a number, got '0.99'"),
    ("ppo", {"learning_rate": "fast"}, "learning_rate must be a number or lin_<number>"),
    ("ppo", {"clip_range_vf": "x"}, "clip_range_vf must be a number or lin_<number> or null"),
    ("ppo", {"normalize_advantage": 1}, "normalize_advantage must be true/false"),
    ("dqn", {"train_freq": "4"}, "train_freq must be an integer or a list"),
    ("ppo", {"n_envs": 0}, "n_envs must be an integer >= 1"),
    ("ppo", {"n_timesteps": "1e5"}, "n_timesteps must be a number > 0"),
    ("ppo", {"policy": 1}, "policy must be a string"),
    ("ppo", {"policy_kwargs": 3}, "policy_kwargs must be an object or a 'dict(...)' string"),
    ("ppo", {"policy_kwargs": "dict(a=b)"}, "policy_kwargs: cannot parse"),
    ("ppo", {"normalize": 1}, "normalize must be true/false, an object"),
    ("ppo", {"seed": 1}, "'seed' is set by the session, not by hyperparameters"),
    ("ppo", {"tensorboard_log": "/x"}, "'tensorboard_log' is set by the session"),
    ("a2c", {}, "unknown algo 'a2c'"),
])
def test_wrong_values(algo: str, hp: dict, message: str) -> None:
    problems = validate_hyperparameters(algo, hp)
    assert len(problems) == 1 and problems[0].startswith(message), problems


def test_accepted_values() -> None:
    assert validate_hyperparameters("ppo", {
        "learning_rate": 3e-4, "gamma": 1, "clip_range": "lin_0.1", "target_kl": None,
        "policy_kwargs": {"net_arch": [64, 64]}, "normalize": {"norm_reward": False},
        "n_timesteps": 1e5, "verbose": 1,
    }) == []
    assert validate_hyperparameters("dqn", {"train_freq": [1, "episode"],
                                            "max_grad_norm": 0.5}) == []


def test_read_hyperparameters(tmp_path: Path) -> None:
    path = tmp_path / "hp.json"
    path.write_text(json.dumps({"n_steps": 64}))
    assert read_hyperparameters(path) == {"n_steps": 64}
    path.write_text('{"n_steps": 64,}')
    with pytest.raises(ValueError, match="not valid JSON"):
        read_hyperparameters(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must be a JSON object"):
        read_hyperparameters(path)


def test_validate_env_id() -> None:
    assert validate_env_id("Acrobot-v1") is None
    message = validate_env_id("CartPol-v1")
    assert message.startswith(
        "env id 'CartPol-v1' is not registered in gymnasium: did you mean CartPole-v1")
    assert validate_env_id("zzzzzz-v0") == "env id 'zzzzzz-v0' is not registered in gymnasium"
    assert validate_env_id("zzzzzz") == (
        "env id 'zzzzzz' is not a gymnasium id: expected Name-vN, e.g. CartPole-v1")


def test_parameter_table_is_cached_per_sb3_version(tmp_path: Path, monkeypatch) -> None:
    from rlops_runtime.agents import hyperparams

    fresh = hyperparams.parameter_kinds("ppo", tmp_path)
    [cache] = tmp_path.glob(".rlops-ppo-parameters-*.json")
    assert json.loads(cache.read_text()) == fresh
    assert fresh["n_steps"] == ["int"] and "self" not in fresh

    def no_import(algo: str):
        raise AssertionError("SB3 imported although the table is cached")

    monkeypatch.setattr(hyperparams, "algorithm_class", no_import)
    assert validate_hyperparameters("ppo", {"n_steps": "many"}, tmp_path) == [
        "n_steps must be an integer, got 'many'"]
    assert validate_hyperparameters("a2c", {}, tmp_path) == [
        "unknown algo 'a2c'; choose one of ppo, dqn"]
    monkeypatch.setattr(hyperparams, "_sb3_version", lambda: "99.0")
    with pytest.raises(AssertionError, match="SB3 imported"):
        hyperparams.parameter_kinds("ppo", tmp_path)  # another version: read again


def test_parameter_table_cache_is_readable_by_all_and_an_unreadable_one_is_ignored(
        tmp_path: Path, monkeypatch) -> None:
    from rlops_runtime.agents import hyperparams

    fresh = hyperparams.parameter_kinds("ppo", tmp_path)
    [cache] = tmp_path.glob(".rlops-ppo-parameters-*.json")
    # Root validates into the venv, the job's user reads: the table is not private.
    assert cache.stat().st_mode & 0o777 == 0o644

    def unreadable(path, default=None):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(hyperparams, "read_json", unreadable)
    assert hyperparams.parameter_kinds("ppo", tmp_path) == fresh
