"""Checkpoint folder names and manifests: what makes a checkpoint folder complete.

A folder is complete when its manifest.json lists every file with the size and sha256
it has on disk, and the manifest's step matches the folder's name (docs/contract.md).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

from .jsonio import read_json, utc_iso

# What a manifest and a step folder's name are is the session contract's.
from .session_contract import MANIFEST, manifest_problems, parse_step, step_dirname
from .session_contract import MANIFEST_FORMAT as FORMAT

__all__ = ["FORMAT", "MANIFEST", "build_manifest", "check_folder", "file_sha256",
           "load_manifest", "manifest_problems", "parse_step", "step_dirname", "verify_folder"]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(
    folder: Path, step: int, session: str, now: datetime | None = None
) -> dict[str, Any]:
    folder = Path(folder)
    paths = sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and path != folder / MANIFEST
    )
    files = [
        {"path": rel, "size": (folder / rel).stat().st_size, "sha256": file_sha256(folder / rel)}
        for rel in paths
    ]
    return {
        "format": FORMAT,
        "session": session,
        "step": step,
        "created": utc_iso(now),
        "files": files,
    }


def verify_folder(folder: Path, manifest: Any, step: int | None = None) -> list[str]:
    """Problems that make `folder` not match `manifest`; empty when it is complete.

    `step` is the step the folder must hold; by default the one its name says (pass it
    when verifying a temporary folder before renaming it).
    """
    folder = Path(folder)
    problems = manifest_problems(manifest)
    if problems:
        return problems
    expected = parse_step(folder.name) if step is None else step
    if manifest["step"] != expected:
        problems.append(f"manifest step {manifest['step']} does not match folder {folder.name}")
    for entry in manifest["files"]:
        path = folder / entry["path"]
        if not path.is_file():
            problems.append(f"{entry['path']}: missing")
            continue
        size = path.stat().st_size
        if size != entry["size"]:
            problems.append(f"{entry['path']}: size {size}, manifest says {entry['size']}")
        elif file_sha256(path) != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 differs from the manifest")
    return problems


def load_manifest(folder: Path) -> dict[str, Any] | None:
    manifest = read_json(Path(folder) / MANIFEST)
    return manifest if isinstance(manifest, dict) else None


def check_folder(folder: Path, step: int | None = None) -> list[str]:
    """`verify_folder` against the folder's own manifest.json."""
    manifest = load_manifest(folder)
    if manifest is None:
        return [f"{MANIFEST}: missing or unreadable"]
    return verify_folder(folder, manifest, step)
