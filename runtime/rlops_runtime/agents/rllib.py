"""The reference distributed agent: RLlib PPO (new API stack) on the session's Ray cluster,
following the same session contract as the single-host agent (agents/sb3.py).

    python -m rlops_runtime.agents.rllib train       configured by the RLOPS_* variables
    python -m rlops_runtime.agents.rllib evaluate --checkpoint DIR --episodes N --out DIR

train runs as the Ray driver on the cluster's head, under the supervisor. Besides the
contract's variables it reads the cluster's (set by the trainer role from ray_cluster's
result): RLOPS_RAY_ADDRESS (the GCS, host:port), RLOPS_RAY_EXPECTED (the ready cluster,
JSON, ray_layout.parse_expected), RLOPS_RAY_GPU (1: the learner on a GPU),
RLOPS_RAY_READY_TIMEOUT (seconds), and Ray's own RAY_AUTH_MODE / RAY_AUTH_TOKEN_PATH.

- It waits for every node and resource of RLOPS_RAY_EXPECTED before building the algorithm
  (RLlib's build waits forever for resources that never come), then places one env runner
  per rollout CPU on the rollout nodes and the learner on the head (ray_layout.rllib_placement).
- Env runners are fault tolerant (restarted when their node comes back, after
  RESTART_DELAY_S); the learner is not (RLlib has no learner fault tolerance): losing the
  head ends the run, and the supervisor resumes from the newest complete checkpoint.
- The step is the agent's own (RLlib's lifetime counter is wrong after a restore): the
  restored checkpoint's step (rlops_state.json inside it) plus each iteration's sampled env
  steps. Checkpoints go through contract.save_checkpoint around algo.save_to_path; a resume
  builds the algorithm from the current config and restores the checkpoint into it.
- Hyperparameters: the session's, in the single-host agent's names (the session contract's
  PPO keys), mapped to RLlib's (TRAINING_KEYS); a name RLlib has no equivalent for is
  refused with a message, never ignored.
- SIGUSR1: a checkpoint after the current iteration; SIGTERM: a checkpoint, then the
  algorithm and the driver stop (the cluster carries on; its units are the role's).

evaluate needs no cluster: the policy's RLModule is loaded from the checkpoint's learner
state and run greedily on the env in this process.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..contract import CheckpointRequest, report_progress, save_checkpoint
from ..ray_layout import DEFAULT_READY_TIMEOUT, parse_expected, readiness, rllib_placement
from ..waiting import wait_for
from .hyperparams import merge, read_hyperparameters

log = logging.getLogger(__name__)

STATE_FILE = "rlops_state.json"
# The policy's RLModule inside an Algorithm checkpoint (what evaluate loads).
MODULE_PATH = ("learner_group", "learner", "rl_module", "default_policy")
DEFAULTS = Path(__file__).with_name("rllib.json")
TENSORBOARD_RUN = "RLlib_PPO"
RETURN_TAG = "rollout/ep_rew_mean"  # report.py's learning curve, as SB3 names it
RESTART_DELAY_S = 5.0
READY_INTERVAL_S = 1.0

# The session's PPO hyperparameters (the single-host agent's names) -> PPOConfig.training().
TRAINING_KEYS = {
    "learning_rate": "lr",
    "gamma": "gamma",
    "gae_lambda": "lambda_",
    "clip_range": "clip_param",
    "clip_range_vf": "vf_clip_param",
    "ent_coef": "entropy_coeff",
    "vf_coef": "vf_loss_coeff",
    "max_grad_norm": "grad_clip",
    "n_epochs": "num_epochs",
    "batch_size": "minibatch_size",
}
# Keys the agent reads itself: n_steps * n_envs is the train batch (SB3's rollout size),
# n_timesteps the budget when the session sets none, policy_kwargs.net_arch the network.
OWN_KEYS = ("n_steps", "n_envs", "n_timesteps", "policy", "policy_kwargs", "verbose")
POLICIES = ("MlpPolicy",)


@dataclass
class RayTrainConfig:
    session_id: str
    checkpoint_dir: Path
    resume_from: Path | None
    tensorboard_dir: Path | None
    progress_file: Path | None
    hyperparameters: Path | None
    env_id: str
    algo: str
    total_timesteps: int | None
    checkpoint_interval: int
    seed: int | None
    address: str
    expected: dict[str, Any]
    gpu: bool
    ready_timeout: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RayTrainConfig:
        def path(name: str) -> Path | None:
            return Path(environ[name]) if environ.get(name) else None

        def integer(name: str, default: int | None) -> int | None:
            value = environ.get(name, "")
            return int(value) if value else default

        if not environ.get("RLOPS_CHECKPOINT_DIR"):
            raise ValueError("RLOPS_CHECKPOINT_DIR is not set: run the agent under rlops-run")
        for name in ("RLOPS_RAY_ADDRESS", "RLOPS_RAY_EXPECTED"):
            if not environ.get(name):
                raise ValueError(f"{name} is not set: the Ray backend's session sets it "
                                 "(run.json's env, from the ray_cluster role)")
        algo = (environ.get("RLOPS_ALGO") or "ppo").lower()
        if algo != "ppo":
            raise ValueError(f"algo {algo}: the Ray backend's agent trains ppo only")
        return cls(
            session_id=environ.get("RLOPS_SESSION_ID", ""),
            checkpoint_dir=Path(environ["RLOPS_CHECKPOINT_DIR"]),
            resume_from=path("RLOPS_RESUME_FROM"),
            tensorboard_dir=path("RLOPS_TENSORBOARD_DIR"),
            progress_file=path("RLOPS_PROGRESS_FILE"),
            hyperparameters=path("RLOPS_HYPERPARAMETERS"),
            env_id=environ.get("RLOPS_ENV_ID") or "CartPole-v1",
            algo=algo,
            total_timesteps=integer("RLOPS_TOTAL_TIMESTEPS", None),
            checkpoint_interval=integer("RLOPS_CHECKPOINT_INTERVAL", 10_000) or 10_000,
            seed=integer("RLOPS_SEED", None),
            address=environ["RLOPS_RAY_ADDRESS"],
            expected=parse_expected(environ["RLOPS_RAY_EXPECTED"]),
            gpu=environ.get("RLOPS_RAY_GPU", "0") not in ("", "0", "false", "False"),
            ready_timeout=float(environ.get("RLOPS_RAY_READY_TIMEOUT")
                                or DEFAULT_READY_TIMEOUT),
        )


# --- Decisions -----------------------------------------------------------------------------
def load_defaults(env_id: str) -> dict[str, Any]:
    table = json.loads(DEFAULTS.read_text())
    return dict(table.get(env_id, {}))


def _schedule(key: str, value: Any, total: int) -> Any:
    """`lin_<x>` (the single-host agent's linear schedule) as RLlib's [[step, value], ...];
    RLlib schedules only the learning rate."""
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            initial = float(value[4:])
        except ValueError:
            raise ValueError(f"{key}: {value!r} is not lin_<number>") from None
        if key != "learning_rate":
            raise ValueError(f"{key}: RLlib takes a schedule for learning_rate only, give "
                             f"{key} a number (not {value!r})")
        return [[0, initial], [total, 0.0]]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number, got {value!r}")
    return value


def ppo_config(env_id: str, placement: dict[str, Any], settings: dict[str, Any]) -> Any:
    """RLlib's PPOConfig of the agent: the env, the placement (ray_layout.rllib_placement),
    the training settings (training_settings) and fault-tolerant env runners. The agent adds
    its seed; bench/ray_cluster.py starts the same config by hand."""
    from ray.rllib.algorithms.ppo import PPOConfig

    config = (
        PPOConfig()
        .environment(env_id)
        .env_runners(**placement["env_runners"])
        .learners(**placement["learners"])
        .training(**settings["training"])
        .fault_tolerance(restart_failed_env_runners=True,
                         delay_between_env_runner_restarts_s=RESTART_DELAY_S)
    )
    if settings["model"]:
        config = config.rl_module(model_config=settings["model"])
    return config


def training_settings(hp: dict[str, Any], total_timesteps: int | None) -> dict[str, Any]:
    """The session's merged hyperparameters as RLlib settings: {"total": the step budget,
    "training": PPOConfig.training kwargs, "model": rl_module model_config}. ValueError
    naming every key RLlib cannot take."""
    settings, problems = _settings(hp, total_timesteps)
    if problems:
        raise ValueError("; ".join(problems))
    return settings


def hyperparameter_problems(env_id: str, hp: dict[str, Any]) -> list[str]:
    """What the agent would refuse of a session's hyperparameters (over its defaults for
    `env_id`), one message each: prepare's check of a new Ray session, before it starts. The
    step budget is the session's, not checked here."""
    return _settings(merge(load_defaults(env_id), hp), 1)[1]


def _settings(hp: dict[str, Any], total_timesteps: int | None
              ) -> tuple[dict[str, Any], list[str]]:
    total = total_timesteps or hp.get("n_timesteps")
    problems = []
    if not isinstance(total, int) or isinstance(total, bool) or total < 1:
        problems.append("no step budget: set total_timesteps (RLOPS_TOTAL_TIMESTEPS) or "
                        "n_timesteps")
        total = 1
    training: dict[str, Any] = {}
    model: dict[str, Any] = {}
    for key in sorted(hp):
        value = hp[key]
        if key in TRAINING_KEYS:
            try:
                training[TRAINING_KEYS[key]] = _schedule(key, value, total)
            except ValueError as exc:
                problems.append(str(exc))
        elif key in ("n_steps", "n_envs"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{key} must be a count of 1 or more, got {value!r}")
        elif key == "policy":
            if value not in POLICIES:
                problems.append(f"policy {value!r}: the Ray backend's agent has "
                                f"{', '.join(POLICIES)} only")
        elif key == "policy_kwargs":
            net_arch = value.get("net_arch") if isinstance(value, dict) else None
            if (not isinstance(value, dict) or set(value) != {"net_arch"}
                    or not isinstance(net_arch, list)
                    or not all(isinstance(n, int) and n > 0 for n in net_arch)):
                problems.append(f"policy_kwargs {value!r}: the Ray backend's agent takes "
                                "only {'net_arch': [sizes of its hidden layers]}")
            else:
                model["fcnet_hiddens"] = list(net_arch)
        elif key in ("n_timesteps", "verbose"):
            continue
        else:
            problems.append(f"{key!r} has no RLlib equivalent in the Ray backend's agent "
                            f"(it takes {', '.join(sorted([*TRAINING_KEYS, *OWN_KEYS]))})")
    n_steps, n_envs = hp.get("n_steps"), hp.get("n_envs", 1)
    if isinstance(n_steps, int) and isinstance(n_envs, int) and n_steps > 0 and n_envs > 0:
        training["train_batch_size_per_learner"] = n_steps * n_envs
    batch = training.get("train_batch_size_per_learner")
    minibatch = training.get("minibatch_size")
    if isinstance(batch, int) and isinstance(minibatch, int) and minibatch > batch:
        problems.append(f"batch_size {minibatch} is larger than n_steps * n_envs {batch}")
    return {"total": total, "training": training, "model": model}, problems


def next_checkpoint(step: int, interval: int) -> int:
    """The first step at which the next interval checkpoint is due."""
    return (step // interval + 1) * interval


def finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def count(value: Any) -> int:
    """A count from RLlib's metrics, which give NaN or nothing for what did not happen."""
    number = finite(value)
    return int(number) if number is not None else 0


def iteration_record(result: dict[str, Any]) -> dict[str, Any]:
    """What the agent keeps of one algo.train() result: steps and episodes of this
    iteration, the mean return (None until an episode ended), and the env runners' health."""
    runners = result.get("env_runners") or {}
    fault = result.get("fault_tolerance") or {}
    return {
        "steps": count(runners.get("num_env_steps_sampled")),
        "episodes": count(runners.get("num_episodes")),
        "mean_return": finite(runners.get("episode_return_mean")),
        "healthy": fault.get("num_healthy_workers"),
        "restarts": fault.get("num_remote_worker_restarts"),
    }


def read_state(checkpoint: Path) -> dict[str, Any]:
    """rlops_state.json of a checkpoint: step, episodes, algo, env_id, session."""
    return json.loads((Path(checkpoint) / STATE_FILE).read_text())


# --- The driver ----------------------------------------------------------------------------
def session_hyperparameters(cfg: RayTrainConfig) -> dict[str, Any]:
    user = {}
    if cfg.hyperparameters and cfg.hyperparameters.is_file():
        user = read_hyperparameters(cfg.hyperparameters)
    return merge(load_defaults(cfg.env_id), user)


class ConfigError(ValueError):
    """The session's settings cannot run (found before training starts): exit 2."""


class ClusterNotReady(RuntimeError):
    """The cluster did not become what RLOPS_RAY_EXPECTED says within the deadline."""


def wait_for_cluster(ray: Any, expected: dict[str, Any], timeout: float,
                     stop: threading.Event, interval: float = READY_INTERVAL_S) -> str:
    """Until the cluster is as `expected` (ClusterNotReady naming what is missing at the
    deadline) or a stop; returns the readiness message."""
    last = ""

    def check() -> str | None:
        nonlocal last
        ready, last = readiness(expected, ray.nodes(), ray.cluster_resources())
        return last if ready or stop.is_set() else None

    if wait_for(check, timeout, interval) is None:
        raise ClusterNotReady(f"the Ray cluster was not ready within {timeout:g} s: {last}")
    return last


class Driver:
    """One training run on the cluster: connect, wait, build or restore, train, checkpoint."""

    def __init__(self, cfg: RayTrainConfig, request: CheckpointRequest, stop: threading.Event):
        self.cfg = cfg
        self.request = request
        self.stop = stop
        self.step = 0
        self.episodes = 0
        self.mean_return: float | None = None
        self.health: dict[str, Any] = {}
        self.last_saved: int | None = None
        self.algo: Any = None
        self.ray: Any = None
        self.writer: Any = None

    def build_config(self, settings: dict[str, Any]) -> Any:
        cfg = self.cfg
        config = ppo_config(cfg.env_id, rllib_placement(cfg.expected, cfg.gpu), settings)
        if cfg.seed is not None:
            config = config.debugging(seed=cfg.seed + self.step)  # new episodes on resume
        return config

    def setup(self) -> int:
        """Connect, wait for the cluster, build the algorithm (restored on resume); returns
        the step budget."""
        cfg = self.cfg
        from .hyperparams import validate_env_id

        problem = validate_env_id(cfg.env_id)
        if problem:
            raise ValueError(problem)
        settings = training_settings(session_hyperparameters(cfg), cfg.total_timesteps)
        if cfg.resume_from:
            state = read_state(cfg.resume_from)
            self.step, self.episodes = int(state["step"]), int(state.get("episodes", 0))
        from ..ray_cli import gcs_unreachable

        # ray.init retries an address that never answers forever: the GCS's port first.
        unreachable = ""

        def gcs() -> bool | None:
            nonlocal unreachable
            unreachable = gcs_unreachable(cfg.address) or ""
            return True if not unreachable or self.stop.is_set() else None

        if wait_for(gcs, cfg.ready_timeout, READY_INTERVAL_S) is None:
            raise ClusterNotReady(f"the Ray cluster at {cfg.address} did not answer within "
                                  f"{cfg.ready_timeout:g} s: {unreachable}")
        if self.stop.is_set():
            return settings["total"]
        import ray

        self.ray = ray
        ray.init(address=cfg.address, logging_level=logging.WARNING)
        _install_handlers(self.request, self.stop)  # again: ours, not any Ray set
        log.info("connected to %s; %s", cfg.address,
                 wait_for_cluster(ray, cfg.expected, cfg.ready_timeout, self.stop))
        if self.stop.is_set():
            return settings["total"]
        self.algo = self.build_config(settings).build_algo()
        if cfg.resume_from:
            self.algo.restore_from_path(str(Path(cfg.resume_from).resolve()))
            log.info("resumed from %s at step %d", cfg.resume_from, self.step)
        self.last_saved = self.step
        if cfg.tensorboard_dir:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(str(cfg.tensorboard_dir / TENSORBOARD_RUN))
        return settings["total"]

    def _write(self, folder: Path) -> None:
        self.algo.save_to_path(str(folder.resolve()))
        state = {"step": self.step, "episodes": self.episodes, "algo": self.cfg.algo,
                 "env_id": self.cfg.env_id, "session": self.cfg.session_id}
        (folder / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    def checkpoint(self) -> None:
        self.request.clear()
        if self.algo is None or self.step == self.last_saved:
            return
        folder = save_checkpoint(self.cfg.checkpoint_dir, self.step, self._write,
                                 self.cfg.session_id)
        self.last_saved = self.step
        log.info("checkpoint %s", folder.name)

    def report(self) -> None:
        if not self.cfg.progress_file:
            return
        nodes = sum(1 for node in self.ray.nodes() if node.get("Alive")) if self.ray else 0
        report_progress(self.cfg.progress_file, step=self.step, episodes=self.episodes,
                        mean_return=self.mean_return, nodes=nodes,
                        env_runners=self.health or None)

    def iterate(self) -> None:
        record = iteration_record(self.algo.train())
        self.step += record["steps"]
        self.episodes += record["episodes"]
        if record["mean_return"] is not None:
            self.mean_return = record["mean_return"]
            if self.writer is not None:
                self.writer.add_scalar(RETURN_TAG, self.mean_return, self.step)
                self.writer.flush()
        group = self.algo.env_runner_group
        self.health = {"healthy": group.num_healthy_remote_workers(),
                       "total": group.num_remote_workers(),
                       "restarts": group.num_remote_worker_restarts()}

    def run(self) -> int:
        try:
            try:
                total = self.setup()
            except ValueError as exc:  # the settings, not a failure of training
                raise ConfigError(str(exc)) from exc
            due = next_checkpoint(self.step, self.cfg.checkpoint_interval)
            self.report()
            while self.algo is not None and self.step < total and not self.stop.is_set():
                self.iterate()
                if self.step >= due or self.request.pending:
                    self.checkpoint()
                    due = next_checkpoint(self.step, self.cfg.checkpoint_interval)
                self.report()
            self.checkpoint()
            self.report()
            log.info("%s at step %d", "stopped" if self.stop.is_set() else "done", self.step)
            return 0
        finally:
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.algo is not None:
            self.algo.stop()
            self.algo = None
        if self.ray is not None and self.ray.is_initialized():
            self.ray.shutdown()


def _install_handlers(request: CheckpointRequest, stop: threading.Event) -> None:
    request.install()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())


def train(environ: Mapping[str, str]) -> int:
    # Handlers before anything slow (importing Ray and torch takes seconds): a request that
    # comes meanwhile is remembered instead of killing the process.
    request = CheckpointRequest()
    stop = threading.Event()
    _install_handlers(request, stop)
    try:
        cfg = RayTrainConfig.from_env(environ)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = "1"  # as the single-host agent: one torch thread
    return Driver(cfg, request, stop).run()


# --- Evaluate ------------------------------------------------------------------------------
def load_module(checkpoint: Path) -> Any:
    """The policy's RLModule from an Algorithm checkpoint, with no cluster."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    return RLModule.from_checkpoint(Path(checkpoint).resolve().joinpath(*MODULE_PATH))


def evaluate(checkpoint: Path, episodes: int, out_dir: Path, video: bool = True,
             seed: int = 0) -> dict[str, Any]:
    """Run `episodes` greedy episodes; writes out_dir/eval.json (+ one episode's video)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    import gymnasium as gym
    import torch

    from .sb3 import write_eval

    checkpoint = Path(checkpoint)
    state = read_state(checkpoint)
    module = load_module(checkpoint)
    dist_cls = module.get_inference_action_dist_cls()
    env = gym.make(state["env_id"], render_mode="rgb_array" if video else None)
    returns: list[float] = []
    frames: list[Any] = []
    for episode in range(episodes):
        obs, _info = env.reset(seed=seed + episode)
        done, total = False, 0.0
        while not done:
            if video and episode == 0:
                frames.append(env.render())
            with torch.no_grad():
                out = module.forward_inference(
                    {"obs": torch.as_tensor(obs, dtype=torch.float32)[None]})
            dist = dist_cls.from_logits(out["action_dist_inputs"]).to_deterministic()
            action = dist.sample()[0].numpy()
            obs, reward, terminated, truncated, _info = env.step(
                action.item() if action.ndim == 0 else action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return write_eval(out_dir, state.get("session", ""), state["step"], state["algo"],
                      state["env_id"], returns, frames if video else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlops_runtime.agents.rllib")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", help="train under rlops-run on the session's Ray cluster")
    ev = sub.add_parser("evaluate", help="evaluate a checkpoint folder (no cluster needed)")
    ev.add_argument("--checkpoint", type=Path, required=True)
    ev.add_argument("--episodes", type=int, default=10)
    ev.add_argument("--out", type=Path, required=True)
    ev.add_argument("--no-video", dest="video", action="store_false")
    ev.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.command == "train":
        try:
            return train(os.environ)
        except ConfigError as exc:  # bad settings: one clear line as the job's last words
            log.error("%s", exc)
            return 2
        except ClusterNotReady as exc:  # the supervisor's restart asks again
            log.error("%s", exc)
            return 1
    print(json.dumps(evaluate(args.checkpoint, args.episodes, args.out, args.video, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
