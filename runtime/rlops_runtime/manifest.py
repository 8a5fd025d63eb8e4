"""Checkpoint folder names and manifests: what makes a checkpoint folder complete.

A folder is complete when its manifest.json lists every file with the size and sha256
it has on disk, and the manifest's step matches the folder's name (docs/contract.md).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from .jsonio import read_json, utc_iso

MANIFEST = "manifest.json"
FORMAT = 1
_STEP_RE = re.compile(r"[0-9]{12,}")


def step_dirname(step: int) -> str:
    if step < 0:
        raise ValueError(f"checkpoint step {step} is invalid: steps are >= 0")
    return f"{step:012d}"


def parse_step(name: str) -> int | None:
    """The step of a checkpoint folder name, None for anything else (.tmp-, .damaged-)."""
    return int(name) if _STEP_RE.fullmatch(name) else None


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


def _safe_relpath(path: Any) -> bool:
    # A manifest fetched from storage names the files to download: it must not be able
    # to point outside the checkpoint folder.
    if not isinstance(path, str) or "\\" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def manifest_problems(manifest: Any) -> list[str]:
    """Structural problems of a manifest (before looking at any file)."""
    if not isinstance(manifest, dict):
        return ["manifest is not a JSON object"]
    problems = []
    if manifest.get("format") != FORMAT:
        problems.append(f"manifest format {manifest.get('format')!r} is not {FORMAT}")
    step = manifest.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        problems.append(f"manifest step {step!r} is not a non-negative integer")
    files = manifest.get("files")
    if not isinstance(files, list):
        return [*problems, "manifest has no 'files' list"]
    for entry in files:
        if (
            not isinstance(entry, dict)
            or not _safe_relpath(entry.get("path"))
            or not isinstance(entry.get("size"), int)
            or not isinstance(entry.get("sha256"), str)
        ):
            problems.append(f"manifest entry {entry!r} is malformed")
    return problems


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
