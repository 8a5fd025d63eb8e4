"""The reference agent: Stable-Baselines3 PPO (default) or DQN following the session contract.

    python -m rlops_runtime.agents.sb3 train       configured by the RLOPS_* variables
    python -m rlops_runtime.agents.sb3 evaluate --checkpoint DIR --episodes N --out DIR

torch and SB3 are imported inside the functions that need them: `train` installs its
SIGUSR1/SIGTERM handlers first, so a request that arrives while torch is still loading
(seconds) is remembered instead of killing the process with the signal's default action.
A checkpoint folder holds model.zip, state.json, replay_buffer.pkl (off-policy) and
vecnormalize.pkl (when observations are normalised). torch uses one thread unless
OMP_NUM_THREADS is set (two threads on two cores made PPO several times slower).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..contract import CheckpointRequest, report_progress, save_checkpoint
from ..jsonio import utc_iso, write_json_atomic
from .hyperparams import (
    algorithm_class,
    load_defaults,
    merge,
    read_hyperparameters,
    resolve,
    validate_hyperparameters,
)

log = logging.getLogger(__name__)

OFF_POLICY = frozenset({"dqn"})
PROGRESS_INTERVAL = 2.0
VIDEO_FPS = 30


@dataclass
class TrainConfig:
    session_id: str
    checkpoint_dir: Path
    resume_from: Path | None
    tensorboard_dir: str | None
    progress_file: Path | None
    hyperparameters: Path | None
    env_id: str
    algo: str
    total_timesteps: int | None
    checkpoint_interval: int
    device: str
    seed: int | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> TrainConfig:
        def path(name: str) -> Path | None:
            return Path(environ[name]) if environ.get(name) else None

        def integer(name: str, default: int | None) -> int | None:
            value = environ.get(name, "")
            return int(value) if value else default

        if not environ.get("RLOPS_CHECKPOINT_DIR"):
            raise ValueError("RLOPS_CHECKPOINT_DIR is not set: run the agent under rlops-run")
        return cls(
            session_id=environ.get("RLOPS_SESSION_ID", ""),
            checkpoint_dir=Path(environ["RLOPS_CHECKPOINT_DIR"]),
            resume_from=path("RLOPS_RESUME_FROM"),
            tensorboard_dir=environ.get("RLOPS_TENSORBOARD_DIR") or None,
            progress_file=path("RLOPS_PROGRESS_FILE"),
            hyperparameters=path("RLOPS_HYPERPARAMETERS"),
            env_id=environ.get("RLOPS_ENV_ID") or "CartPole-v1",
            algo=(environ.get("RLOPS_ALGO") or "ppo").lower(),
            total_timesteps=integer("RLOPS_TOTAL_TIMESTEPS", None),
            checkpoint_interval=integer("RLOPS_CHECKPOINT_INTERVAL", 10_000),
            device=environ.get("RLOPS_DEVICE") or "auto",
            seed=integer("RLOPS_SEED", None),
        )


def read_state(checkpoint: Path) -> dict[str, Any]:
    """state.json of a checkpoint folder: num_timesteps, episodes, algo, env_id, session."""
    return json.loads((checkpoint / "state.json").read_text())


def _limit_threads() -> None:
    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)


def session_hyperparameters(cfg: TrainConfig) -> dict[str, Any]:
    user = {}
    if cfg.hyperparameters and cfg.hyperparameters.is_file():
        user = read_hyperparameters(cfg.hyperparameters)
    hp = merge(load_defaults(cfg.algo, cfg.env_id), user)
    problems = validate_hyperparameters(cfg.algo, hp)
    if problems:
        raise ValueError("; ".join(problems))
    return hp


class Trainer:
    """One training run: builds or resumes the model, learns, checkpoints, reports."""

    def __init__(self, cfg: TrainConfig, request: CheckpointRequest, stop: threading.Event):
        self.cfg = cfg
        self.request = request
        self.stop = stop
        self.episodes = 0
        self.last_saved: int | None = None
        self.model: Any = None
        self.venv: Any = None
        self.normalized = False

    def setup(self) -> int:
        """Build the env and the model; returns the total step budget."""
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

        cfg = self.cfg
        hp = resolve(session_hyperparameters(cfg))
        total = cfg.total_timesteps or hp.n_timesteps
        if not total:
            raise ValueError("no step budget: set RLOPS_TOTAL_TIMESTEPS or n_timesteps")
        state = read_state(cfg.resume_from) if cfg.resume_from else {}
        done = int(state.get("num_timesteps", 0))
        seed = None if cfg.seed is None else cfg.seed + done  # new episodes after a resume
        venv = make_vec_env(cfg.env_id, n_envs=hp.n_envs, seed=seed, vec_env_cls=DummyVecEnv)
        algo_cls = algorithm_class(cfg.algo)
        if hp.normalize is not None:
            stats = cfg.resume_from / "vecnormalize.pkl" if cfg.resume_from else None
            if stats and stats.is_file():
                venv = VecNormalize.load(str(stats), venv)
            else:
                gamma = hp.kwargs.get("gamma")
                extra = {"gamma": gamma} if gamma is not None else {}
                venv = VecNormalize(venv, **{**extra, **hp.normalize})
            self.normalized = True
        self.venv = venv
        if cfg.resume_from:
            self.model = algo_cls.load(
                cfg.resume_from / "model.zip", env=venv, device=cfg.device,
                tensorboard_log=cfg.tensorboard_dir,
            )
            buffer = cfg.resume_from / "replay_buffer.pkl"
            if cfg.algo in OFF_POLICY and buffer.is_file():
                self.model.load_replay_buffer(buffer)
            self.episodes = int(state.get("episodes", 0))
            log.info("resumed from %s at step %d", cfg.resume_from, self.model.num_timesteps)
        else:
            self.model = algo_cls(
                hp.policy, venv, tensorboard_log=cfg.tensorboard_dir, seed=cfg.seed,
                device=cfg.device, **{"verbose": 0, **hp.kwargs},  # verbose: the user's when set
            )
        self.last_saved = self.model.num_timesteps  # already saved, or step 0
        return total

    def _write(self, folder: Path) -> None:
        self.model.save(folder / "model.zip")
        if self.cfg.algo in OFF_POLICY:
            self.model.save_replay_buffer(folder / "replay_buffer.pkl")
        if self.normalized:
            self.venv.save(str(folder / "vecnormalize.pkl"))
        state = {
            "num_timesteps": self.model.num_timesteps, "episodes": self.episodes,
            "algo": self.cfg.algo, "env_id": self.cfg.env_id, "session": self.cfg.session_id,
        }
        (folder / "state.json").write_text(json.dumps(state, indent=2) + "\n")

    def checkpoint(self) -> None:
        step = self.model.num_timesteps
        self.request.clear()
        if step == self.last_saved:
            return
        folder = save_checkpoint(self.cfg.checkpoint_dir, step, self._write, self.cfg.session_id)
        self.last_saved = step
        log.info("checkpoint %s", folder.name)
        self.report()

    def report(self) -> None:
        if not self.cfg.progress_file:
            return
        returns = [float(info["r"]) for info in self.model.ep_info_buffer or ()]
        report_progress(
            self.cfg.progress_file, step=self.model.num_timesteps, episodes=self.episodes,
            mean_return=statistics.fmean(returns) if returns else None,
        )

    def run(self) -> int:
        total = self.setup()
        done = self.model.num_timesteps
        if done < total and not self.stop.is_set():
            self.model.learn(
                total - done, callback=self._callback(), reset_num_timesteps=False,
                tb_log_name=self.cfg.algo.upper(),
            )
        self.checkpoint()
        self.report()
        log.info("%s at step %d", "stopped" if self.stop.is_set() else "done",
                 self.model.num_timesteps)
        return 0

    def _callback(self) -> Any:
        from stable_baselines3.common.callbacks import BaseCallback

        trainer = self
        interval = max(1, self.cfg.checkpoint_interval)

        class ContractCallback(BaseCallback):
            """Checkpoints every `interval` steps and on request; stops on SIGTERM."""

            def _on_training_start(self) -> None:
                self.next_checkpoint = (self.num_timesteps // interval + 1) * interval
                self.next_report = time.monotonic()

            def _on_step(self) -> bool:
                trainer.episodes += sum("episode" in info for info in self.locals["infos"])
                if (self.num_timesteps >= self.next_checkpoint or trainer.request.pending
                        or trainer.stop.is_set()):
                    trainer.checkpoint()
                    self.next_checkpoint = (self.num_timesteps // interval + 1) * interval
                if time.monotonic() >= self.next_report:
                    trainer.report()
                    self.next_report = time.monotonic() + PROGRESS_INTERVAL
                return not trainer.stop.is_set()

        return ContractCallback()


def train(environ: Mapping[str, str]) -> int:
    # Handlers before anything slow: see the module docstring.
    request = CheckpointRequest().install()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    cfg = TrainConfig.from_env(environ)
    _limit_threads()
    return Trainer(cfg, request, stop).run()


def write_video(frames: list[Any], out_dir: Path, fps: int = VIDEO_FPS) -> Path:
    """episode.mp4 through imageio-ffmpeg, or episode.gif when ffmpeg is not usable."""
    import imageio.v2 as imageio

    mp4 = out_dir / "episode.mp4"
    try:
        imageio.mimwrite(mp4, frames, fps=fps, macro_block_size=1)
        return mp4
    except Exception as exc:  # any ffmpeg trouble: missing binary, codec, plugin
        log.warning("cannot write MP4 (%s); writing a GIF instead", exc)
        mp4.unlink(missing_ok=True)
    gif = out_dir / "episode.gif"
    imageio.mimwrite(gif, frames, duration=1000 / fps, loop=0)
    return gif


def evaluate(checkpoint: Path, episodes: int, out_dir: Path, video: bool = True,
             seed: int = 0) -> dict[str, Any]:
    """Run `episodes` deterministic episodes; writes out_dir/eval.json (+ one episode's video)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame renders without a display
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    _limit_threads()
    checkpoint = Path(checkpoint)
    state = read_state(checkpoint)
    model = algorithm_class(state["algo"]).load(checkpoint / "model.zip", device="cpu")
    render_mode = "rgb_array" if video else None
    dummy = DummyVecEnv([lambda: gym.make(state["env_id"], render_mode=render_mode)])
    venv: Any = dummy
    stats = checkpoint / "vecnormalize.pkl"
    if stats.is_file():
        venv = VecNormalize.load(str(stats), dummy)
        venv.training = False
        venv.norm_reward = False  # returns are reported in the env's own reward units
    venv.seed(seed)
    obs = venv.reset()
    frames = [dummy.envs[0].render()] if video else []
    returns: list[float] = []
    current = 0.0
    while len(returns) < episodes:
        action, _state = model.predict(obs, deterministic=True)
        obs, rewards, dones, _infos = venv.step(action)
        current += float(rewards[0])
        if dones[0]:
            returns.append(current)
            current = 0.0
        elif video and len(returns) == 0:
            frames.append(dummy.envs[0].render())
    venv.close()
    return write_eval(out_dir, state.get("session", ""), state["num_timesteps"], state["algo"],
                      state["env_id"], returns, frames if video else None)


def write_eval(out_dir: Path, session: str, step: int, algo: str, env_id: str,
               returns: list[float], frames: list[Any] | None) -> dict[str, Any]:
    """An evaluation's record, out_dir/eval.json (the returns' mean and spread), and the
    recorded episode's video when frames are given (None: no video); returns the record.
    Both reference agents' evaluate end here."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "session": session, "step": step, "algo": algo, "env_id": env_id,
        "episodes": len(returns),
        "mean_return": statistics.fmean(returns),
        "std_return": statistics.pstdev(returns),
        "returns": returns,
        "video": write_video(frames, out_dir).name if frames is not None else None,
        "created": utc_iso(),
    }
    write_json_atomic(out_dir / "eval.json", result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlops_runtime.agents.sb3")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", help="train under rlops-run (configured by RLOPS_* variables)")
    ev = sub.add_parser("evaluate", help="evaluate a checkpoint folder")
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
        except ValueError as exc:  # bad configuration: one clear line as the job's last words
            log.error("%s", exc)
            return 2
    print(json.dumps(evaluate(args.checkpoint, args.episodes, args.out, args.video, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
