"""Bring a session home from storage (`rlops-run fetch`, docs/contract.md).

Into a folder of the session's layout: the newest complete checkpoint in storage, verified
against its manifest with the same fallback as a resume (LATEST first, then earlier steps
whose manifest verifies), and every other file of the session (config without credentials,
TensorBoard events, logs, status.json, eval/, report/). Older checkpoints stay in storage.
Nothing in the destination is deleted: a file is replaced only by different content from
storage, and a damaged local copy of the chosen checkpoint is moved aside. `check` writes
nothing there: it verifies the checkpoint it would bring in a scratch folder, and counts a
file of the session as changed when its size differs.
"""

from __future__ import annotations

import filecmp
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .checkpoints import newest_complete_local
from .jsonio import write_bytes_atomic
from .manifest import check_folder
from .publish import _fetch_step, read_latest, remote_steps
from .session_contract import (
    CHECKPOINTS_DIR,
    CONFIG_DIR,
    LATEST,
    STORAGE_ENV,
    fetch_candidates,
    safe_relpath,
    step_dirname,
    validate_session_id,
)
from .storage import Storage, StorageError

log = logging.getLogger(__name__)


class FetchError(Exception):
    """The session cannot be fetched; the message says why."""


@dataclass
class FetchResult:
    session_id: str
    storage_uri: str
    dest: str
    check: bool
    checkpoint: int | None = None        # the step brought (or that would be), None: none
    checkpoint_fetched: bool = False     # downloaded now (False: the local copy was complete)
    skipped_checkpoints: list[int] = field(default_factory=list)  # tried first, not complete
    fetched: list[str] = field(default_factory=list)  # other files new or changed here
    unchanged: int = 0
    latest_written: bool = False         # checkpoints/LATEST here now names the checkpoint

    def to_dict(self) -> dict:
        changed = self.checkpoint_fetched or bool(self.fetched) or self.latest_written
        return {**asdict(self), "changed": changed}


def session_files(keys: list[str], session_id: str) -> list[str]:
    """The session's files to bring besides its checkpoints, relative to its folder: every key
    under `<session>/` except checkpoints/ (the chosen one comes verified) and credentials,
    and nothing that could be written outside the destination."""
    prefix = f"{session_id}/"
    wanted = []
    for key in keys:
        if not key.startswith(prefix):
            continue
        rel = key[len(prefix):]
        if not safe_relpath(rel):
            log.warning("skipping storage key %s: not a plain relative path", key)
        elif rel.split("/")[0] != CHECKPOINTS_DIR and rel != f"{CONFIG_DIR}/{STORAGE_ENV}":
            wanted.append(rel)
    return sorted(wanted)


def _same_size(local: Path, size: int | None) -> bool:
    return local.is_file() and size is not None and local.stat().st_size == size


def _bring_file(storage: Storage, key: str, local: Path) -> bool:
    """Download `key` next to `local` and replace it only when the content differs; returns
    whether it changed."""
    local.parent.mkdir(parents=True, exist_ok=True)
    part = local.with_name(f".{local.name}.fetch-{os.getpid()}")
    try:
        storage.get_file(key, part)
        if local.is_file() and filecmp.cmp(part, local, shallow=False):
            return False
        os.replace(part, local)
        return True
    finally:
        part.unlink(missing_ok=True)


def _checkpoint(storage: Storage, session_id: str, checkpoints: Path, result: FetchResult) -> None:
    candidates = fetch_candidates(read_latest(storage, session_id),
                                  remote_steps(storage, session_id))
    with tempfile.TemporaryDirectory(prefix="rlops-fetch-check-") as scratch:
        # --check verifies as the real run does, into a scratch folder it then forgets.
        target = Path(scratch) if result.check else checkpoints
        for step in candidates:
            local = checkpoints / step_dirname(step)
            present = local.is_dir() and not check_folder(local)
            if present or _fetch_step(storage, session_id, step, target) is not None:
                result.checkpoint, result.checkpoint_fetched = step, not present
                return
            result.skipped_checkpoints.append(step)


def fetch_session(storage: Storage, session_id: str, dest: Path, check: bool = False
                  ) -> FetchResult:
    """Bring session `session_id` from `storage` into `dest` (its folder's layout); with
    `check`, only read storage and say what would change. Raises FetchError, StorageError."""
    validate_session_id(session_id)
    dest = Path(dest)
    result = FetchResult(session_id, storage.uri, str(dest), check)
    keys = storage.list_keys(f"{session_id}/")
    if not keys:
        raise FetchError(f"session {session_id} is not in storage {storage.uri} "
                         f"(nothing under {session_id}/)")
    checkpoints = dest / CHECKPOINTS_DIR
    if not check:
        checkpoints.mkdir(parents=True, exist_ok=True)
    _checkpoint(storage, session_id, checkpoints, result)
    if result.checkpoint is not None and not check:
        # Local LATEST names the newest complete checkpoint here (an earlier fetch may have
        # brought a newer one than storage now offers).
        newest = newest_complete_local(checkpoints)
        latest = str(newest[0] if newest else result.checkpoint).encode()
        latest_file = checkpoints / LATEST
        if not latest_file.is_file() or latest_file.read_bytes() != latest:
            write_bytes_atomic(latest_file, latest)
            result.latest_written = True
    for rel in session_files(keys, session_id):
        key, local = f"{session_id}/{rel}", dest / rel
        if check:
            # Read only: a file of the same size may still differ, which the real run finds.
            if _same_size(local, storage.size(key)):
                result.unchanged += 1
            else:
                result.fetched.append(rel)
        elif _bring_file(storage, key, local):
            result.fetched.append(rel)
        else:
            result.unchanged += 1
    return result


__all__ = ["FetchError", "FetchResult", "StorageError", "fetch_session", "session_files"]
