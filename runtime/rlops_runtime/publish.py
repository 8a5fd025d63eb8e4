"""Checkpoints in storage: publish complete-or-nothing, fetch the newest complete one.

Order of a publish: every file, then manifest.json, then `<session>/checkpoints/LATEST`.
A reader that finds anything missing or different falls back to an earlier step, so a
publish cut short at any point never hands out a broken checkpoint. Nothing is deleted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from .checkpoints import local_steps
from .contract import move_aside
from .jsonio import fsync_dir
from .manifest import (
    MANIFEST,
    check_folder,
    load_manifest,
    manifest_problems,
    parse_step,
    step_dirname,
    verify_folder,
)
from .session_contract import (
    SESSION_ID_RE,
    checkpoints_key,
    fetch_candidates,
    latest_key,
    manifest_key,
    parse_latest,
    step_key,
)
from .storage import Storage, StorageError

log = logging.getLogger(__name__)


def ckpt_prefix(session_id: str) -> str:
    return checkpoints_key(session_id)


def _step_prefix(session_id: str, step: int) -> str:
    return step_key(session_id, step)


def _remote_manifest(storage: Storage, session_id: str, step: int) -> dict | None:
    data = storage.get_bytes(manifest_key(session_id, step))
    try:
        manifest = json.loads(data) if data is not None else None
    except ValueError:
        return None
    return manifest if isinstance(manifest, dict) else None


def read_latest(storage: Storage, session_id: str) -> int | None:
    data = storage.get_bytes(latest_key(session_id))
    step = parse_latest(data)
    if data is not None and step is None:
        log.warning("ignoring unreadable %s: %r", latest_key(session_id), data[:40])
    return step


def publish_checkpoint(storage: Storage, session_id: str, folder: Path) -> int:
    """Upload one complete local checkpoint folder; returns its step.

    Raises ValueError for a damaged folder (nothing is uploaded) and StorageError when
    storage fails (readers keep seeing the previous LATEST).
    """
    folder = Path(folder)
    manifest = load_manifest(folder)
    problems = verify_folder(folder, manifest) if manifest else [f"{MANIFEST}: missing"]
    if problems:
        raise ValueError(f"refusing to publish damaged checkpoint {folder}: {'; '.join(problems)}")
    step = manifest["step"]
    prefix = _step_prefix(session_id, step)
    remote = _remote_manifest(storage, session_id, step)
    same_content = remote is not None and remote.get("files") == manifest["files"]
    for entry in manifest["files"]:
        key = f"{prefix}/{entry['path']}"
        if same_content and storage.size(key) == entry["size"]:
            continue  # already uploaded by an earlier, interrupted or repeated publish
        storage.put_file(folder / entry["path"], key)
    storage.put_file(folder / MANIFEST, f"{prefix}/{MANIFEST}")
    latest = read_latest(storage, session_id)
    if latest is None or step >= latest:
        storage.put_bytes(latest_key(session_id), str(step).encode())
    log.info("published checkpoint %s of %s to %s", step, session_id, storage.uri)
    return step


def raise_latest(storage: Storage, session_id: str, step: int) -> bool:
    """Move LATEST up to `step` (never down); True when it moved."""
    latest = read_latest(storage, session_id)
    if latest is not None and latest >= step:
        return False
    storage.put_bytes(latest_key(session_id), str(step).encode())
    return True


def same_checkpoint(local: dict | None, remote: dict | None) -> bool:
    """Whether two manifests describe the same checkpoint (step and every file's digest)."""
    return (local is not None and remote is not None
            and local.get("step") == remote.get("step")
            and local.get("files") == remote.get("files"))


def stored_steps(storage: Storage, session_id: str, checkpoint_dir: Path) -> set[int]:
    """Local checkpoints that storage already has: one listing, then one read per step.

    A checkpoint's manifest is uploaded after all its files, so a manifest in storage that
    matches the local one means the whole checkpoint is there. Raises StorageError.
    """
    remote = set(remote_steps(storage, session_id))
    found = set()
    for step in local_steps(checkpoint_dir):
        if step in remote and same_checkpoint(
                load_manifest(Path(checkpoint_dir) / step_dirname(step)),
                _remote_manifest(storage, session_id, step)):
            found.add(step)
    return found


def remote_steps(storage: Storage, session_id: str) -> list[int]:
    """Steps that have a manifest in storage, ascending (not verified)."""
    steps = []
    for key in storage.list_keys(ckpt_prefix(session_id) + "/"):
        name, _sep, rest = key[len(ckpt_prefix(session_id)) + 1 :].partition("/")
        step = parse_step(name)
        if rest == MANIFEST and step is not None:
            steps.append(step)
    return sorted(steps)


def _fetch_step(storage: Storage, session_id: str, step: int, dest: Path) -> Path | None:
    final = dest / step_dirname(step)
    if final.is_dir() and not check_folder(final):
        return final  # a complete local copy: nothing to download
    manifest = _remote_manifest(storage, session_id, step)
    problems = manifest_problems(manifest) if manifest else [f"{MANIFEST}: missing or unreadable"]
    if problems:
        log.warning("skipping checkpoint %s in storage: %s", step, "; ".join(problems))
        return None
    prefix = _step_prefix(session_id, step)
    tmp = dest / f".tmp-fetch-{step}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)  # our own leftover, never a checkpoint
    try:
        for entry in manifest["files"]:
            storage.get_file(f"{prefix}/{entry['path']}", tmp / entry["path"])
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        problems = verify_folder(tmp, manifest, step=step)
    except StorageError as exc:
        problems = [str(exc)]
    if problems:
        shutil.rmtree(tmp, ignore_errors=True)
        log.warning("skipping damaged checkpoint %s in storage: %s", step, "; ".join(problems))
        return None
    if final.exists():
        move_aside(final, step)
    os.rename(tmp, final)
    fsync_dir(dest)
    return final


def fetch_newest_complete(
    storage: Storage, session_id: str, dest_checkpoint_dir: Path, below: int | None = None
) -> tuple[int, Path] | None:
    """Download the newest complete checkpoint in storage into `dest_checkpoint_dir`.

    Tries LATEST first, then earlier steps that have a manifest, newest first; only steps
    below `below` when given. Returns (step, local folder) or None.
    """
    dest = Path(dest_checkpoint_dir)
    dest.mkdir(parents=True, exist_ok=True)
    candidates = fetch_candidates(read_latest(storage, session_id),
                                  remote_steps(storage, session_id))
    for step in candidates:
        if below is not None and step >= below:
            continue
        folder = _fetch_step(storage, session_id, step, dest)
        if folder is not None:
            return step, folder
    return None


def list_sessions(storage: Storage) -> list[str]:
    return [name for name in storage.list_dirs("") if SESSION_ID_RE.fullmatch(name)]
