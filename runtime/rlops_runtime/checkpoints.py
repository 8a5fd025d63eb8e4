"""Local checkpoints: which exist, which is newest and complete, which may go."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from .manifest import MANIFEST, check_folder, parse_step, step_dirname

log = logging.getLogger(__name__)


def local_steps(checkpoint_dir: Path) -> list[int]:
    """Steps of the folders that have a manifest, ascending (.tmp-/.damaged- never count)."""
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        return []
    steps = (
        parse_step(entry.name)
        for entry in checkpoint_dir.iterdir()
        if (entry / MANIFEST).is_file()
    )
    return sorted(step for step in steps if step is not None)


def remove_partial(checkpoint_dir: Path) -> list[str]:
    """Delete the `.tmp-*` folders that killed writers left behind; returns their names.

    Only call this while no job of the session runs: a live writer's folder has that name
    too. A `.tmp-` folder is never a checkpoint (it is renamed to its step once complete),
    so nothing a reader could use is lost; `.damaged-` folders are kept for inspection.
    """
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        return []
    removed = []
    for entry in sorted(checkpoint_dir.iterdir()):
        if entry.name.startswith(".tmp-") and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
            removed.append(entry.name)
    if removed:
        log.info("removed unfinished checkpoint writes: %s", ", ".join(removed))
    return removed


def newest_complete_local(checkpoint_dir: Path) -> tuple[int, Path] | None:
    """The newest local checkpoint that verifies; damaged ones are skipped with a warning."""
    for step in reversed(local_steps(checkpoint_dir)):
        folder = Path(checkpoint_dir) / step_dirname(step)
        problems = check_folder(folder)
        if not problems:
            return step, folder
        log.warning("skipping damaged checkpoint %s: %s", folder, "; ".join(problems))
    return None


def choose_resume(local_step: int | None, remote_step: int | None) -> tuple[str, int] | None:
    """Where to resume from: the newer of the two, local on a tie (no download needed)."""
    if local_step is None and remote_step is None:
        return None
    if remote_step is None or (local_step is not None and local_step >= remote_step):
        return "local", local_step
    return "remote", remote_step


def rotate_local(checkpoint_dir: Path, keep: int, published: set[int]) -> list[int]:
    """Remove local checkpoints beyond the newest `keep`, only ones already published.

    `keep` 0 keeps everything. Returns the removed steps.
    """
    if keep <= 0:
        return []
    removed = []
    for step in local_steps(checkpoint_dir)[:-keep]:
        if step in published:
            shutil.rmtree(Path(checkpoint_dir) / step_dirname(step))
            removed.append(step)
    if removed:
        log.info("removed local checkpoints already in storage: %s", removed)
    return removed
