"""The RLlib agent's decisions, without Ray: its configuration from the environment, the
session's hyperparameters in RLlib's names, the step and progress it keeps. The agent on a
real cluster: tests/ray/test_rllib_agent.py (make ray-test)."""

from __future__ import annotations

import json
import math
import sys

import pytest
from rlops_runtime.agents import rllib
from rlops_runtime.session_contract import ALGO_KEYS, BACKEND_ALGO_KEYS, RAY_PPO_KEYS, ZOO_KEYS

EXPECTED = {"nodes": 2, "resources": {"rlops_learner": 1, "rlops_rollout": 2}}


def _environ(tmp_path, **extra):
    return {"RLOPS_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
            "RLOPS_RAY_ADDRESS": "10.0.0.1:6379",
            "RLOPS_RAY_EXPECTED": json.dumps(EXPECTED), **extra}


def test_config_from_the_environment(tmp_path):
    cfg = rllib.RayTrainConfig.from_env(_environ(
        tmp_path, RLOPS_TOTAL_TIMESTEPS="5000", RLOPS_RAY_GPU="1",
        RLOPS_RAY_READY_TIMEOUT="30", RLOPS_SEED="3", RLOPS_RESUME_FROM=""))
    assert cfg.address == "10.0.0.1:6379" and cfg.expected == EXPECTED
    assert cfg.gpu and cfg.ready_timeout == 30 and cfg.seed == 3
    assert cfg.total_timesteps == 5000 and cfg.resume_from is None
    assert cfg.env_id == "CartPole-v1" and cfg.algo == "ppo"
    plain = rllib.RayTrainConfig.from_env(_environ(tmp_path, RLOPS_RAY_GPU="0"))
    assert not plain.gpu and plain.ready_timeout == 120


@pytest.mark.parametrize("drop, extra, words", [
    ("RLOPS_RAY_ADDRESS", {}, "RLOPS_RAY_ADDRESS is not set"),
    ("RLOPS_RAY_EXPECTED", {}, "RLOPS_RAY_EXPECTED is not set"),
    ("RLOPS_CHECKPOINT_DIR", {}, "run the agent under rlops-run"),
    (None, {"RLOPS_ALGO": "dqn"}, "trains ppo only"),
    (None, {"RLOPS_RAY_EXPECTED": "{"}, "not JSON"),
])
def test_config_refuses_what_it_cannot_run(tmp_path, drop, extra, words, monkeypatch, caplog):
    environ = _environ(tmp_path, **extra)
    environ.pop(drop, None)
    with pytest.raises(ValueError, match=words):
        rllib.RayTrainConfig.from_env(environ)
    # The job's last words, exit 2: before Ray is imported or asked.
    monkeypatch.setattr(rllib.os, "environ", environ)
    monkeypatch.setattr(rllib.signal, "signal", lambda *args: None)  # not pytest's handlers
    assert rllib.main(["train"]) == 2
    assert words.split("(")[0] in caplog.text


def test_the_single_host_names_map_to_rllibs():
    hp = {"learning_rate": 0.001, "gamma": 0.98, "gae_lambda": 0.8, "clip_range": 0.2,
          "clip_range_vf": 10.0, "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5,
          "n_epochs": 4, "batch_size": 64, "n_steps": 32, "n_envs": 8, "n_timesteps": 9000,
          "policy": "MlpPolicy", "policy_kwargs": {"net_arch": [64, 64]}, "verbose": 1}
    settings = rllib.training_settings(hp, None)
    assert settings == {
        "total": 9000,
        "training": {"lr": 0.001, "gamma": 0.98, "lambda_": 0.8, "clip_param": 0.2,
                     "vf_clip_param": 10.0, "entropy_coeff": 0.01, "vf_loss_coeff": 0.5,
                     "grad_clip": 0.5, "num_epochs": 4, "minibatch_size": 64,
                     "train_batch_size_per_learner": 256},
        "model": {"fcnet_hiddens": [64, 64]},
    }
    # The session's budget wins over n_timesteps; a linear learning rate falls to 0 there.
    settings = rllib.training_settings({"learning_rate": "lin_0.001", "n_timesteps": 9}, 500)
    assert settings["total"] == 500 and settings["training"]["lr"] == [[0, 0.001], [500, 0.0]]


def test_the_agent_takes_exactly_the_keys_the_contract_gives_the_ray_backend():
    # The controller refuses a key by the contract's RAY_PPO_KEYS before anything starts;
    # the agent's own mapping must take that set, no more and no less.
    assert sorted({*rllib.TRAINING_KEYS, *rllib.OWN_KEYS}) == sorted(RAY_PPO_KEYS)
    assert BACKEND_ALGO_KEYS["ray"] == {"ppo": RAY_PPO_KEYS}


def test_every_key_the_contract_knows_is_mapped_or_refused_by_name():
    # A key of the contract's PPO set is either taken or refused with its name: never dropped.
    for key in sorted(set(ALGO_KEYS["ppo"]) | set(ZOO_KEYS)):
        taken = key in rllib.TRAINING_KEYS or key in rllib.OWN_KEYS
        if not taken:
            with pytest.raises(ValueError, match=repr(key)):
                rllib.training_settings({key: 1, "n_timesteps": 10}, None)


@pytest.mark.parametrize("hp, words", [
    ({"clip_range": "lin_0.2"}, "schedule for learning_rate only"),
    ({"learning_rate": "fast"}, "learning_rate must be a number"),
    ({"learning_rate": "lin_x"}, "not lin_<number>"),
    ({"use_sde": True}, "'use_sde' has no RLlib equivalent"),
    ({"normalize": True}, "'normalize' has no RLlib equivalent"),
    ({"policy": "CnnPolicy"}, "MlpPolicy only"),
    ({"policy_kwargs": {"activation_fn": "tanh"}}, "only {'net_arch'"),
    ({"n_steps": 0}, "n_steps must be a count"),
    ({"n_steps": 8, "batch_size": 64}, "batch_size 64 is larger than n_steps * n_envs 8"),
])
def test_hyperparameters_rllib_cannot_take_are_refused(hp, words):
    with pytest.raises(ValueError, match=words.replace("*", r"\*").replace("{", r"\{")):
        rllib.training_settings({"n_timesteps": 10, **hp}, None)


def test_no_budget_is_refused_with_the_other_problems():
    with pytest.raises(ValueError) as err:
        rllib.training_settings({"use_sde": True}, None)
    assert "no step budget" in str(err.value) and "use_sde" in str(err.value)


def test_the_shipped_defaults_are_valid():
    for env_id, hp in json.loads(rllib.DEFAULTS.read_text()).items():
        assert rllib.training_settings(hp, None)["total"] > 0, env_id
    assert rllib.load_defaults("Unknown-v0") == {}


def test_next_checkpoint_and_the_iteration_record():
    assert [rllib.next_checkpoint(s, 100) for s in (0, 99, 100, 250)] == [100, 100, 200, 300]
    record = rllib.iteration_record({
        "env_runners": {"num_env_steps_sampled": 200, "num_episodes": 7,
                        "episode_return_mean": 21.5},
        "fault_tolerance": {"num_healthy_workers": 2, "num_remote_worker_restarts": 1}})
    assert record == {"steps": 200, "episodes": 7, "mean_return": 21.5, "healthy": 2,
                      "restarts": 1}
    # Before the first episode ends RLlib gives NaN or nothing: no return yet.
    assert rllib.iteration_record({"env_runners": {"episode_return_mean": math.nan}})[
        "mean_return"] is None
    # Nothing sampled (no healthy env runner): NaN counts, which count as none.
    assert rllib.iteration_record({"env_runners": {"num_env_steps_sampled": math.nan,
                                                   "num_episodes": None}})["steps"] == 0
    assert rllib.iteration_record({}) == {"steps": 0, "episodes": 0, "mean_return": None,
                                          "healthy": None, "restarts": None}


def test_a_new_ray_sessions_hyperparameters_are_checked_by_this_agent_without_sb3(
        monkeypatch, tmp_path, capsys):
    from rlops_runtime.cli import main
    from rlops_runtime.prepare import job_problems

    monkeypatch.setitem(sys.modules, "stable_baselines3", None)  # the Ray venv has no SB3
    assert rllib.hyperparameter_problems("CartPole-v1", {"n_steps": 64}) == []
    assert job_problems("CartPole-v1", "ppo", {"n_steps": 64}, "ray") == []
    [problem] = job_problems("CartPole-v1", "ppo", {"use_sde": True}, "ray")
    assert "'use_sde' has no RLlib equivalent" in problem
    hp = tmp_path / "hp.json"
    hp.write_text(json.dumps({"clip_range": "lin_0.2"}))
    assert main(["validate", "--backend", "ray", "--hyperparameters", str(hp)]) == 2
    assert "schedule for learning_rate only" in capsys.readouterr().err


def test_wait_for_cluster_until_ready_or_the_deadline_naming_what_is_missing():
    import threading

    class Ray:
        def __init__(self, answers):
            self.answers = answers

        def nodes(self):
            return [{"Alive": True}] * self.answers[0][0]

        def cluster_resources(self):
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            return answer[1]

    stop = threading.Event()
    ray = Ray([(1, {"rlops_learner": 1}), (2, {"rlops_learner": 1, "rlops_rollout": 2})])
    assert rllib.wait_for_cluster(ray, EXPECTED, 5, stop, interval=0.01).startswith("ready")
    with pytest.raises(rllib.ClusterNotReady, match="not ready within 0.05 s: missing: 1 of 2"):
        rllib.wait_for_cluster(Ray([(1, {"rlops_learner": 1})]), EXPECTED, 0.05, stop,
                               interval=0.01)
    stop.set()  # a stop ends the wait at once, without an error
    assert rllib.wait_for_cluster(Ray([(1, {})]), EXPECTED, 60, stop).startswith("missing")


def test_a_head_that_never_answers_ends_the_run_at_the_deadline(tmp_path):
    import socket
    import threading

    from rlops_runtime.contract import CheckpointRequest

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    cfg = rllib.RayTrainConfig.from_env(_environ(
        tmp_path, RLOPS_RAY_ADDRESS=f"127.0.0.1:{port}", RLOPS_RAY_READY_TIMEOUT="0.2",
        RLOPS_TOTAL_TIMESTEPS="1000"))
    driver = rllib.Driver(cfg, CheckpointRequest(), threading.Event())
    with pytest.raises(rllib.ClusterNotReady, match=f"nothing answers at 127.0.0.1:{port}"):
        driver.run()  # before Ray is imported: ray.init would retry it forever
