"""Bare RLlib: the peer of the Ray backend's reference agent in ray_cluster.py, run by hand
on the cluster's head (as the nodes' user, in the session's venv).

    python _ray_bare.py train --seconds S [--hyperparameters FILE] [--env-id ID]
    python _ray_bare.py rollouts --seconds S

train: the same PPOConfig the agent builds for the session (rlops_runtime.agents.rllib's
defaults and hyperparameter names read as data, ray_layout.rllib_placement for the
cluster of RLOPS_RAY_EXPECTED, the same fault tolerance, one torch thread), then algo.train()
in a loop: no supervisor, no checkpoints, no progress file, no status. rollouts: the same
algorithm, but only its env runners sample (each remote env runner `sample()` at once, no
learning): the rollout throughput of the cluster's rollout hosts.

Prints one JSON line per iteration, {"t": monotonic seconds, "steps": env steps so far},
then {"done": ...}. The cluster comes from RLOPS_RAY_ADDRESS / RLOPS_RAY_EXPECTED and Ray's
RAY_AUTH_MODE / RAY_AUTH_TOKEN_PATH, as the agent's run.json env has them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["train", "rollouts"])
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--env-id", default="CartPole-v1")
    parser.add_argument("--hyperparameters", type=Path)
    parser.add_argument("--fragment", type=int, default=200,
                        help="rollouts: env steps each env runner samples per round")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as the agent

    import ray
    from rlops_runtime.agents.hyperparams import merge, read_hyperparameters
    from rlops_runtime.agents.rllib import load_defaults, ppo_config, training_settings
    from rlops_runtime.ray_layout import parse_expected, rllib_placement

    user = read_hyperparameters(args.hyperparameters) if args.hyperparameters else {}
    settings = training_settings(merge(load_defaults(args.env_id), user), 10**9)
    placement = rllib_placement(parse_expected(os.environ["RLOPS_RAY_EXPECTED"]))
    # The agent's own config, without its seed or the supervisor around it.
    config = ppo_config(args.env_id, placement, settings)
    ray.init(address=os.environ["RLOPS_RAY_ADDRESS"], logging_level="WARNING")
    started = time.monotonic()
    algo = config.build_algo()
    emit(built=time.monotonic() - started,
         env_runners=placement["env_runners"]["num_env_runners"])
    steps, started = 0, time.monotonic()
    group = algo.env_runner_group
    fragment = args.fragment
    while time.monotonic() - started < args.seconds:
        if args.mode == "train":
            result = algo.train()
            steps += int(result["env_runners"]["num_env_steps_sampled"])
        else:
            sampled = group.foreach_env_runner(
                lambda runner: sum(len(e) for e in runner.sample(num_timesteps=fragment)),
                local_env_runner=False)
            steps += sum(sampled)
        emit(t=time.monotonic(), steps=steps)
    emit(done=True, steps=steps, seconds=time.monotonic() - started)
    algo.stop()
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
