"""rlops-run report: report/summary.json and report/learning_curve.png from TensorBoard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .checkpoints import local_steps
from .jsonio import read_json, utc_iso, write_json_atomic
from .session import SessionLayout
from .status import Status, parse_utc, read_status

RETURN_TAG = "rollout/ep_rew_mean"


def read_scalars(tensorboard_dir: Path, tag: str = RETURN_TAG) -> list[tuple[int, float]]:
    """(step, value) of `tag` over every run folder, by step; a later value wins. No event
    files (a job that writes none, e.g. the DeepRacer driver, whose set has no tensorboard):
    none, without importing tensorboard."""
    run_dirs = sorted({path.parent for path in tensorboard_dir.rglob("events.out.tfevents.*")})
    if not run_dirs:
        return []
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points: dict[int, float] = {}
    for run_dir in run_dirs:
        accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
        accumulator.Reload()
        if tag in accumulator.Tags().get("scalars", []):
            points.update((event.step, event.value) for event in accumulator.Scalars(tag))
    return sorted(points.items())


def summarize(
    session_id: str,
    run: dict[str, Any],
    status: Status | None,
    curve: list[tuple[int, float]],
    checkpoints: list[int],
) -> dict[str, Any]:
    """The summary.json content (pure)."""
    steps = [status.step if status else 0, checkpoints[-1] if checkpoints else 0]
    steps.append(curve[-1][0] if curve else 0)
    best = max(curve, key=lambda point: point[1]) if curve else None
    wall = None
    if status and status.started and status.updated:
        wall = (parse_utc(status.updated) - parse_utc(status.started)).total_seconds()
    return {
        "session": session_id,
        "algo": run.get("algo"),
        "env_id": run.get("env_id"),
        "state": status.state if status else None,
        "steps": max(steps),
        "last_mean_return": curve[-1][1] if curve else None,
        "best_mean_return": best[1] if best else None,
        "best_step": best[0] if best else None,
        "checkpoints": checkpoints,
        "wall_time_s": wall,
        "created": utc_iso(),
    }


def plot_curve(curve: list[tuple[int, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    if curve:
        ax.plot([step for step, _value in curve], [value for _step, value in curve])
    else:
        ax.text(0.5, 0.5, f"no {RETURN_TAG} scalars yet", ha="center", transform=ax.transAxes)
    ax.set_xlabel("step")
    ax.set_ylabel("mean episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def build_report(layout: SessionLayout) -> dict[str, Any]:
    run = read_json(layout.run_json, default={})
    curve = read_scalars(layout.tensorboard)
    summary = summarize(
        layout.session_id, run if isinstance(run, dict) else {}, read_status(layout.status),
        curve, local_steps(layout.checkpoints),
    )
    layout.report_dir.mkdir(parents=True, exist_ok=True)
    title = f"{layout.session_id}: {summary['algo'] or '?'} on {summary['env_id'] or '?'}"
    try:
        plot_curve(curve, layout.report_dir / "learning_curve.png", title)
    except ImportError:  # a set without matplotlib (the DeepRacer driver's): the summary only
        pass
    write_json_atomic(layout.report_dir / "summary.json", summary)
    return summary
