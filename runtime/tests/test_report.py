"""report/summary.json and learning_curve.png from TensorBoard scalars."""

from __future__ import annotations

import json
from pathlib import Path

from rlops_runtime.jsonio import write_json_atomic
from rlops_runtime.report import build_report, read_scalars, summarize
from rlops_runtime.session import SessionLayout
from rlops_runtime.status import Status, write_status
from torch.utils.tensorboard import SummaryWriter

SESSION = "rep-20261122t000000z"


def write_scalars(folder: Path, points: list[tuple[int, float]]) -> None:
    writer = SummaryWriter(str(folder))
    for step, value in points:
        writer.add_scalar("rollout/ep_rew_mean", value, step)
        writer.add_scalar("train/loss", -value, step)
    writer.close()


def test_summarize_pure() -> None:
    status = Status(SESSION, state="stopped", step=3000, started="2026-11-22T05:00:00Z",
                    updated="2026-11-22T05:01:30Z")
    curve = [(1000, 10.0), (2000, 50.0), (3000, 40.0)]
    summary = summarize(SESSION, {"algo": "ppo", "env_id": "CartPole-v1"}, status, curve,
                        [1024, 2048])
    assert {k: v for k, v in summary.items() if k != "created"} == {
        "session": SESSION, "algo": "ppo", "env_id": "CartPole-v1", "state": "stopped",
        "steps": 3000, "last_mean_return": 40.0, "best_mean_return": 50.0, "best_step": 2000,
        "checkpoints": [1024, 2048], "wall_time_s": 90.0,
    }
    empty = summarize(SESSION, {}, None, [], [])
    assert empty["steps"] == 0 and empty["last_mean_return"] is None
    assert empty["wall_time_s"] is None and empty["state"] is None


def test_build_report(tmp_path: Path, make_checkpoint) -> None:
    layout = SessionLayout.for_session(tmp_path, SESSION).create()
    write_json_atomic(layout.run_json, {"session_id": SESSION, "algo": "dqn",
                                        "env_id": "CartPole-v1"})
    write_status(layout.status, Status(SESSION, state="completed", step=600,
                                       started="2026-11-22T05:00:00Z",
                                       updated="2026-11-22T05:00:10Z"))
    make_checkpoint(layout.checkpoints, 600)
    # A resumed run writes a second event file into the same run folder.
    write_scalars(layout.tensorboard / "DQN_0", [(100, 9.0), (200, 20.0)])
    write_scalars(layout.tensorboard / "DQN_0", [(300, 35.0), (600, 30.0)])

    assert read_scalars(layout.tensorboard) == [(100, 9.0), (200, 20.0), (300, 35.0),
                                                (600, 30.0)]
    summary = build_report(layout)

    assert summary["best_mean_return"] == 35.0 and summary["last_mean_return"] == 30.0
    assert summary["steps"] == 600 and summary["checkpoints"] == [600]
    assert summary["wall_time_s"] == 10.0
    assert json.loads((layout.report_dir / "summary.json").read_text()) == summary
    png = (layout.report_dir / "learning_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_report_without_scalars(tmp_path: Path) -> None:
    layout = SessionLayout.for_session(tmp_path, SESSION).create()
    summary = build_report(layout)
    assert summary["algo"] is None and summary["last_mean_return"] is None
    assert (layout.report_dir / "learning_curve.png").is_file()


def test_build_report_without_tensorboard_or_matplotlib(tmp_path: Path, monkeypatch) -> None:
    """A job that writes no event files in a set without tensorboard and matplotlib (the
    DeepRacer driver's): the summary, no picture, no ImportError."""
    import builtins

    real_import = builtins.__import__

    def no_plots(name, *args, **kwargs):
        if name.split(".")[0] in ("tensorboard", "matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    layout = SessionLayout.for_session(tmp_path, SESSION).create()
    write_json_atomic(layout.run_json, {"session_id": SESSION, "backend": "deepracer"})
    monkeypatch.setattr(builtins, "__import__", no_plots)
    summary = build_report(layout)
    assert summary["steps"] == 0 and summary["last_mean_return"] is None
    assert (layout.report_dir / "summary.json").is_file()
    assert not (layout.report_dir / "learning_curve.png").exists()
