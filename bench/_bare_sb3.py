"""Bare SB3: the peer of the reference agent in supervisor_overhead.py.

The same work as `rlops_runtime.agents.sb3 train` on a fresh session, without the
runtime: the zoo hyperparameters of ppo.json / dqn.json (read as data), the same env,
n_envs, seed, device, one torch thread, TensorBoard logging into the same kind of folder,
`learn(..., reset_num_timesteps=False, tb_log_name=ALGO)` and no callbacks. Prints one
JSON line: steps done and learn() wall seconds.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ZOO_KEYS = {"n_envs", "policy", "normalize", "n_timesteps", "policy_kwargs"}


def linear(initial: float):
    return lambda progress_remaining: progress_remaining * initial


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="ppo", choices=["ppo", "dqn"])
    parser.add_argument("--env-id", default="CartPole-v1")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tensorboard-dir", type=Path, required=True)
    args = parser.parse_args()

    import rlops_runtime.agents
    import stable_baselines3
    import torch
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(1)
    table = Path(rlops_runtime.agents.__file__).with_name(f"{args.algo}.json")
    hp = json.loads(table.read_text())[args.env_id]
    if hp.get("normalize") or hp.get("policy_kwargs"):
        sys.exit("the bare peer covers the plain zoo entries only (no normalize/policy_kwargs)")
    kwargs = {}
    for key, value in hp.items():
        if key in ZOO_KEYS:
            continue
        match = re.fullmatch(r"lin_([0-9.eE+-]+)", value) if isinstance(value, str) else None
        kwargs[key] = linear(float(match.group(1))) if match else value
    venv = make_vec_env(args.env_id, n_envs=hp.get("n_envs", 1), seed=args.seed,
                        vec_env_cls=DummyVecEnv)
    model = getattr(stable_baselines3, args.algo.upper())(
        hp.get("policy", "MlpPolicy"), venv, tensorboard_log=str(args.tensorboard_dir),
        seed=args.seed, device=args.device, verbose=0, **kwargs,
    )
    started = time.perf_counter()
    model.learn(args.steps, reset_num_timesteps=False, tb_log_name=args.algo.upper())
    seconds = time.perf_counter() - started
    print(json.dumps({"steps": model.num_timesteps, "learn_seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
