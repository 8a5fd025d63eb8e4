"""The reference SB3 agent for real: train, checkpoint on request, stop, resume, evaluate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rlops_runtime.checkpoints import local_steps
from rlops_runtime.evaluate import evaluate_session
from rlops_runtime.jsonio import read_json, write_json_atomic
from rlops_runtime.manifest import check_folder, step_dirname
from rlops_runtime.publish import publish_checkpoint
from rlops_runtime.report import read_scalars
from rlops_runtime.session import SessionLayout
from rlops_runtime.storage import open_storage

AGENT = [sys.executable, "-m", "rlops_runtime.agents.sb3", "train"]


def agent_env(layout: SessionLayout, **overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RLOPS_")}
    env.update({
        "RLOPS_SESSION_ID": layout.session_id,
        "RLOPS_CHECKPOINT_DIR": str(layout.checkpoints),
        "RLOPS_RESUME_FROM": "",
        "RLOPS_TENSORBOARD_DIR": str(layout.tensorboard),
        "RLOPS_PROGRESS_FILE": str(layout.progress),
        "RLOPS_HYPERPARAMETERS": str(layout.hyperparameters),
        "RLOPS_ENV_ID": "CartPole-v1",
        "RLOPS_ALGO": "ppo",
        "RLOPS_TOTAL_TIMESTEPS": "4096",
        "RLOPS_CHECKPOINT_INTERVAL": "1024",
        "RLOPS_DEVICE": "cpu",
        "RLOPS_SEED": "0",
    })
    env.update(overrides)
    return env


def train(layout: SessionLayout, **overrides: str) -> None:
    with open(layout.job_log, "ab") as log:
        result = subprocess.run(AGENT, env=agent_env(layout, **overrides), stdout=log,
                                stderr=subprocess.STDOUT, timeout=180, check=False)
    assert result.returncode == 0, layout.job_log.read_text()[-2000:]


def state(layout: SessionLayout, step: int) -> dict:
    folder = layout.checkpoints / step_dirname(step)
    assert check_folder(folder) == []
    return json.loads((folder / "state.json").read_text())


def wait_for(predicate, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, "agent exited early"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_ppo_checkpoints_resumes_stops_and_evaluates(tmp_path: Path, monkeypatch) -> None:
    layout = SessionLayout.for_session(tmp_path, "ppo-20261122t000000z").create()
    train(layout)
    assert local_steps(layout.checkpoints) == [1024, 2048, 3072, 4096]
    first = state(layout, 4096)
    assert first["num_timesteps"] == 4096 and first["episodes"] > 0
    assert first["algo"] == "ppo" and first["session"] == layout.session_id
    assert read_json(layout.progress)["step"] == 4096

    # Resume with a budget it cannot finish; checkpoint on SIGUSR1; stop with SIGTERM.
    env = agent_env(layout, RLOPS_RESUME_FROM=str(layout.checkpoints / step_dirname(4096)),
                    RLOPS_TOTAL_TIMESTEPS="1000000", RLOPS_CHECKPOINT_INTERVAL="1000000")
    with open(layout.job_log, "ab") as log:
        proc = subprocess.Popen(AGENT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (read_json(layout.progress) or {}).get("step", 0) > 4096, 60, proc)
        proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: local_steps(layout.checkpoints)[-1] > 4096, 30, proc)
        requested = local_steps(layout.checkpoints)[-1]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    stopped = local_steps(layout.checkpoints)[-1]
    assert stopped >= requested > 4096  # the counter continued, never from 0
    assert state(layout, stopped)["num_timesteps"] == stopped
    assert state(layout, stopped)["episodes"] >= first["episodes"]  # carried over
    assert "resumed from" in layout.job_log.read_text()
    steps = [step for step, _value in read_scalars(layout.tensorboard)]
    assert steps and 4096 in steps and max(steps) <= stopped
    # The resumed run continues the same TensorBoard run folder, in a second event file.
    [run_dir] = layout.tensorboard.iterdir()
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 2

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    result = evaluate_session(layout, episodes=2, video=True)
    assert result["step"] == stopped and len(result["returns"]) == 2
    assert result["mean_return"] == pytest.approx(sum(result["returns"]) / 2)
    assert json.loads((layout.eval_dir / "eval.json").read_text()) == result
    video = layout.eval_dir / result["video"]
    assert video.suffix in (".mp4", ".gif") and video.stat().st_size > 1000

    # Elsewhere (no local checkpoints), from the session's storage.
    storage_uri = f"file://{tmp_path / 'storage'}"
    publish_checkpoint(open_storage(storage_uri), layout.session_id,
                       layout.checkpoints / step_dirname(stopped))
    other = SessionLayout.for_session(tmp_path / "elsewhere", layout.session_id).create()
    write_json_atomic(other.run_json, {"session_id": layout.session_id,
                                       "storage_uri": storage_uri})
    remote = evaluate_session(other, episodes=1, video=False, from_storage=True)
    assert remote["step"] == stopped and remote["video"] is None
    assert local_steps(other.checkpoints) == [stopped]


def test_dqn_saves_and_reloads_its_replay_buffer(tmp_path: Path) -> None:
    layout = SessionLayout.for_session(tmp_path, "dqn-20261122t000000z").create()
    layout.hyperparameters.write_text(json.dumps({
        "buffer_size": 5000, "learning_starts": 100, "train_freq": 50, "gradient_steps": 1,
        "verbose": 0,  # the contract lets a user set it: the agent must take it, not clash
    }))
    train(layout, RLOPS_ALGO="dqn", RLOPS_TOTAL_TIMESTEPS="600", RLOPS_CHECKPOINT_INTERVAL="300")
    steps = local_steps(layout.checkpoints)
    assert steps[:2] == [300, 600]
    end = steps[-1]
    assert (layout.checkpoints / step_dirname(end) / "replay_buffer.pkl").stat().st_size > 0
    train(layout, RLOPS_ALGO="dqn", RLOPS_TOTAL_TIMESTEPS="1000",
          RLOPS_CHECKPOINT_INTERVAL="300",
          RLOPS_RESUME_FROM=str(layout.checkpoints / step_dirname(end)))
    resumed = [step for step in local_steps(layout.checkpoints) if step > end]
    assert resumed and resumed[-1] >= 1000
    assert state(layout, resumed[-1])["num_timesteps"] == resumed[-1]


def test_bad_hyperparameters_end_with_one_clear_line(tmp_path: Path) -> None:
    layout = SessionLayout.for_session(tmp_path, "bad-20261122t000000z").create()
    layout.hyperparameters.write_text(json.dumps({"n_stepz": 8}))
    result = subprocess.run(AGENT, env=agent_env(layout), capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 2
    assert "'n_stepz' is not a PPO hyperparameter" in result.stderr.strip().splitlines()[-1]
