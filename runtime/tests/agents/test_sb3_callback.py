"""The reference agent's contract callback without training: a stand-in model steps it.

Pins what the callback owes the session contract, whatever it does to stay cheap:
checkpoints at the first step at or past each multiple of the interval (so within
n_envs - 1 steps of it), a SIGUSR1 request and a stop honoured on the very next step,
episodes counted from the Monitor infos, and progress written at most every
PROGRESS_INTERVAL seconds of the loop (and after each checkpoint).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from rlops_runtime.agents import sb3
from rlops_runtime.contract import CheckpointRequest

N_ENVS = 8


class FakeModel:
    """What BaseCallback and the Trainer read of an SB3 model."""

    num_timesteps = 0
    ep_info_buffer = ()
    logger = None

    def get_env(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(sb3.time, "monotonic", clock)
    return clock


def make(tmp_path: Path, interval: int = 100, start: int = 0):
    cfg = sb3.TrainConfig(
        session_id="cb-20261206t000000z", checkpoint_dir=tmp_path / "checkpoints",
        resume_from=None, tensorboard_dir=None, progress_file=tmp_path / "progress.json",
        hyperparameters=None, env_id="CartPole-v1", algo="ppo", total_timesteps=10**6,
        checkpoint_interval=interval, device="cpu", seed=0,
    )
    trainer = sb3.Trainer(cfg, CheckpointRequest(), threading.Event())
    trainer.model = FakeModel()
    trainer.model.num_timesteps = start
    trainer.last_saved = start
    saved, reports = [], []

    def checkpoint() -> None:  # what Trainer.checkpoint does, without writing
        trainer.request.clear()
        if trainer.model.num_timesteps != trainer.last_saved:
            saved.append(trainer.model.num_timesteps)
            trainer.last_saved = trainer.model.num_timesteps

    trainer.checkpoint = checkpoint
    trainer.report = lambda: reports.append(trainer.model.num_timesteps)
    callback = trainer._callback()
    callback.init_callback(trainer.model)
    callback.on_training_start({}, {})
    return trainer, callback, saved, reports


def step(trainer, callback, episodes_ended: int = 0) -> bool:
    trainer.model.num_timesteps += N_ENVS
    infos = [{"episode": {"r": 1.0}} if i < episodes_ended else {} for i in range(N_ENVS)]
    callback.update_locals({"infos": infos})
    return callback.on_step()


def test_checkpoints_at_each_multiple_of_the_interval(tmp_path: Path, clock: Clock) -> None:
    trainer, callback, saved, _reports = make(tmp_path, interval=100)
    for _rollout in range(100):  # 800 steps
        assert step(trainer, callback)
    # The first step at or past 100, 200, ...: within n_envs - 1 of the multiple.
    assert saved == [104, 200, 304, 400, 504, 600, 704, 800]


def test_a_resumed_run_checkpoints_at_the_next_multiple(tmp_path: Path, clock: Clock) -> None:
    trainer, callback, saved, _reports = make(tmp_path, interval=100, start=250)
    for _rollout in range(20):  # to 410
        step(trainer, callback)
    assert saved == [306, 402]


def test_request_and_stop_are_honoured_on_the_next_step(tmp_path: Path, clock: Clock) -> None:
    trainer, callback, saved, _reports = make(tmp_path, interval=10**6)
    for _rollout in range(3):
        assert step(trainer, callback)
    assert saved == []
    trainer.request._handle(0, None)  # what SIGUSR1 does
    assert step(trainer, callback)
    assert saved == [32] and not trainer.request.pending
    assert step(trainer, callback)
    trainer.stop.set()  # what SIGTERM does
    assert step(trainer, callback) is False
    assert saved == [32, 48]


def test_episodes_are_counted_from_the_infos(tmp_path: Path, clock: Clock) -> None:
    trainer, callback, _saved, _reports = make(tmp_path)
    step(trainer, callback, episodes_ended=3)
    step(trainer, callback)
    step(trainer, callback, episodes_ended=8)
    assert trainer.episodes == 11


def test_progress_is_written_at_most_every_interval(tmp_path: Path, clock: Clock) -> None:
    trainer, callback, _saved, reports = make(tmp_path, interval=10**6)
    step(trainer, callback)
    assert reports == [8]  # the first step reports at once
    for _rollout in range(40):
        clock.now += sb3.PROGRESS_INTERVAL / 8  # exact in binary: no rounding at the edges
        step(trainer, callback)
    # 5 intervals of loop: one report each, never two within one.
    assert len(reports) == 1 + 5
    assert reports[-1] <= trainer.model.num_timesteps
