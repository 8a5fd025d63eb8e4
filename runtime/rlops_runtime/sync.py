"""Background sync of one session to storage while the job runs.

Every `interval` seconds: publish complete local checkpoints not yet published (oldest
first, so LATEST ends on the newest), copy changed TensorBoard events, logs, eval,
report, status and config files, then rotate local checkpoints if asked. Errors are
logged and retried on the next round; they never reach the job. The first round that
reaches storage learns which local checkpoints it already has (an earlier run published
them), so that only what storage lacks is sent and `unsynced()` is true from then on.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable, Iterable

from .checkpoints import local_steps, rotate_local
from .manifest import MANIFEST, step_dirname
from .publish import publish_checkpoint, raise_latest, stored_steps
from .session import SessionLayout
from .storage import Storage

log = logging.getLogger(__name__)


def unsynced_steps(local: Iterable[int], published: Iterable[int],
                   damaged: Iterable[int] = ()) -> list[int]:
    """Local checkpoints still to publish, ascending: neither published nor damaged (a
    damaged folder is never published, so it is not waiting for storage)."""
    done = set(published) | set(damaged)
    return sorted(step for step in set(local) if step not in done)


class Syncer:
    def __init__(
        self,
        storage: Storage,
        layout: SessionLayout,
        interval: float = 10,
        keep_local: int = 0,
        on_published: Callable[[int], None] | None = None,
    ) -> None:
        self.storage = storage
        self.layout = layout
        self.interval = interval
        self.keep_local = keep_local
        self.on_published = on_published
        self.last_published: int | None = None
        self.last_error: str | None = None
        self._published: set[int] = set()
        # Whether storage was asked which local checkpoints it already has.
        self._confirmed = False
        # Snapshots for other threads (the supervisor's status), replaced whole, never
        # changed in place.
        self.published_steps: frozenset[int] = frozenset()
        self.damaged_steps: frozenset[int] = frozenset()
        # step -> manifest mtime of a folder that failed verification: not re-hashed
        # every round unless it is replaced.
        self._damaged: dict[int, int] = {}
        # key -> (size, mtime_ns) last uploaded, so unchanged files are not sent again.
        self._sent: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rlops-sync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.sync_once()
            self._wake.wait(self.interval)
            self._wake.clear()  # a wake-up set after this is served by the next round
            if self._stopping.is_set():
                return

    def sync_soon(self) -> None:
        """Start the next round now rather than at the interval (the caller never waits)."""
        self._wake.set()

    def stop(self, final_sync: bool = True) -> None:
        """Stop the thread (waiting for a round in progress), then sync once more."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if final_sync:
            self.sync_once()

    def sync_once(self) -> list[int]:
        """One round; returns the steps newly published. Never raises."""
        published: list[int] = []
        with self._lock:
            try:
                self._publish_new(published)
                self._copy_changed_files()
                if self.keep_local:
                    rotate_local(self.layout.checkpoints, self.keep_local, self._published)
                self.last_error = None
            except Exception as exc:  # the job must never see a sync failure
                self.last_error = str(exc)
                log.warning("sync of %s failed, will retry: %s", self.layout.session_id, exc)
            self.published_steps = frozenset(self._published)
            self.damaged_steps = frozenset(self._damaged)
        return published

    @property
    def storage_checked(self) -> bool:
        """Whether storage said which local checkpoints it has: until then `unsynced()`
        counts every local checkpoint not published by this Syncer."""
        return self._confirmed

    def unsynced(self) -> list[int]:
        """Complete local checkpoints not known to be in storage yet, ascending."""
        return unsynced_steps(local_steps(self.layout.checkpoints), self.published_steps,
                              self.damaged_steps)

    def _confirm_stored(self) -> None:
        """Count what storage already has as published; LATEST up to the newest of it."""
        session_id = self.layout.session_id
        found = stored_steps(self.storage, session_id, self.layout.checkpoints)
        if found:
            if raise_latest(self.storage, session_id, max(found)):
                log.info("LATEST of %s moved up to %d, already in storage", session_id,
                         max(found))
            self._published |= found
            self.last_published = max(found)
            if self.on_published is not None:
                self.on_published(max(found))
        self._confirmed = True

    def _publish_new(self, published: list[int]) -> None:
        if not self._confirmed:
            self._confirm_stored()
        for step in local_steps(self.layout.checkpoints):
            if step in self._published:
                continue
            folder = self.layout.checkpoints / step_dirname(step)
            mtime = (folder / MANIFEST).stat().st_mtime_ns
            if self._damaged.get(step) == mtime:
                continue
            try:
                publish_checkpoint(self.storage, self.layout.session_id, folder)
            except ValueError as exc:
                self._damaged[step] = mtime
                log.warning("not publishing: %s", exc)
                continue
            self._published.add(step)
            self.last_published = step
            published.append(step)
            if self.on_published is not None:
                self.on_published(step)

    def _files_to_copy(self) -> list[Path]:
        layout = self.layout
        # config/ file by file: config/storage.env holds credentials and never leaves the host.
        files = [layout.status, layout.progress, layout.run_json, layout.hyperparameters,
                 layout.requirements_lock]
        for folder in (layout.tensorboard, layout.logs, layout.eval_dir, layout.report_dir):
            if folder.is_dir():
                files += sorted(folder.rglob("*"))
        # Dot-files are atomic writes in progress (jsonio's temporary files): skip them.
        return [path for path in files if path.is_file() and not path.name.startswith(".")]

    def _copy_changed_files(self) -> None:
        for path in self._files_to_copy():
            key = f"{self.layout.session_id}/{path.relative_to(self.layout.root).as_posix()}"
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed since the listing (e.g. an atomic replace)
                continue
            signature = (stat.st_size, stat.st_mtime_ns)
            if self._sent.get(key) == signature:
                continue
            self.storage.put_file(path, key)
            # The signature from before the upload: a change during it is sent next round.
            self._sent[key] = signature
