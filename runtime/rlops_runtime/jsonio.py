"""Small files written atomically and read tolerantly, plus the UTC timestamps in them.

Readers (status, sync, the controller) may look at a file while it is being replaced and
a host may lose power at any moment: writers go through a temporary file in the same
folder, fsync it, then `os.replace` it over the target, so a reader sees the old content
or the new, never half of it.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def utc_iso(now: datetime | None = None) -> str:
    """`2026-11-22T05:15:30Z`; a naive `now` is taken to be UTC."""
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path | str, data: bytes, durable: bool = True) -> None:
    """Replace `path` with `data` atomically; `durable=False` skips the fsyncs (the file
    is still whole or old after a crash of the process, but may be lost with the host)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def write_json_atomic(path: Path | str, data: Any, durable: bool = True) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=2) + "\n").encode(), durable=durable)


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    """The JSON object a command reads on stdin ({} for nothing): the one reader of the
    runtime's stdin requests (credentials, prepare, configure, pack). ValueError saying
    that `what` reads one JSON object on stdin, and why this is not one, otherwise."""
    try:
        data = json.loads(text or "{}")
    except ValueError as exc:
        raise ValueError(f"{what} reads one JSON object on stdin: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} reads one JSON object on stdin, got {type(data).__name__}")
    return data


def read_json(path: Path | str, default: Any = None) -> Any:
    """The parsed file, or `default` if it is missing or not valid JSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, NotADirectoryError, ValueError):
        # ValueError covers JSONDecodeError and UnicodeDecodeError (a torn write).
        return default
