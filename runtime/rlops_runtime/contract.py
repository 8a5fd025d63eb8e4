"""What a training job imports to follow the session contract (docs/contract.md)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from .jsonio import fsync_dir, utc_iso, write_bytes_atomic, write_json_atomic
from .manifest import MANIFEST, build_manifest, check_folder, step_dirname
from .session_contract import LATEST

log = logging.getLogger(__name__)


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):  # children before their folders
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        elif path.is_dir():
            fsync_dir(path)
    fsync_dir(folder)


def move_aside(folder: Path, step: int) -> Path:
    """Rename a damaged checkpoint out of the way; it is kept for inspection, never deleted."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dt%H%M%Sz")
    target = folder.with_name(f".damaged-{step}-{stamp}")
    os.rename(folder, target)
    log.warning("moved damaged checkpoint %s aside to %s", folder, target.name)
    return target


def save_checkpoint(
    checkpoint_dir: Path | str,
    step: int,
    write_fn: Callable[[Path], Any],
    session: str = "",
) -> Path:
    """Write one checkpoint so that a kill at any moment leaves it complete or absent.

    `write_fn(tmp)` writes the job's files into a temporary folder; the manifest is
    written last and the folder renamed to its step name only once everything is on disk.
    """
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir / step_dirname(step)
    tmp = checkpoint_dir / f".tmp-{step}-{os.getpid()}"
    if tmp.exists():  # left by an earlier process that had our pid and died
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        write_fn(tmp)
        _fsync_tree(tmp)
        manifest = build_manifest(tmp, step, session)
        write_json_atomic(tmp / MANIFEST, manifest)
        if final.exists():
            if not check_folder(final):
                log.info("checkpoint %s already exists and is complete", final)
                shutil.rmtree(tmp)
                return final
            move_aside(final, step)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(checkpoint_dir)
    write_bytes_atomic(checkpoint_dir / LATEST, str(step).encode())
    return final


def report_progress(path: Path | str, **fields: Any) -> None:
    """Replace the progress file with `fields` plus an `updated` UTC time.

    Called every few seconds from inside the training loop: atomic but not fsynced, since
    the next report replaces it and the checkpoints, not progress, are what must survive."""
    write_json_atomic(path, {**fields, "updated": utc_iso()}, durable=False)


class CheckpointRequest:
    """A 'checkpoint now' request delivered by SIGUSR1; the job polls `.pending`."""

    def __init__(self) -> None:
        self._pending = False
        self._then: Callable[[], None] | None = None

    def install(self, then: Callable[[], None] | None = None) -> CheckpointRequest:
        """Install the handler (main thread only); `then`, when given, is called after the
        flag is set (e.g. an Event's `set`, to wake a loop that waits); returns self."""
        self._then = then
        signal.signal(signal.SIGUSR1, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        # Only a flag: the job checkpoints at its next safe point, not inside the handler.
        self._pending = True
        if self._then is not None:
            self._then()

    @property
    def pending(self) -> bool:
        return self._pending

    def clear(self) -> None:
        self._pending = False
