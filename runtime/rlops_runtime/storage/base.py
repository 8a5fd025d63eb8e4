"""The storage interface: keys relative to the URI's prefix, '/'-separated.

Nothing here deletes: sync and publishing only ever add or overwrite (docs/contract.md).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

from ..jsonio import utc_iso

CHECK_FOLDER = ".rlops-check"


class StorageError(Exception):
    """Storage cannot do what was asked; the message says what, where and why."""


def probe_key(hostname: str) -> str:
    """The key a host's storage check writes: one per host, so that hosts checking the
    same storage at once (a fleet starting together) never read each other's probe."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", hostname).strip(".-") or "host"
    return f"{CHECK_FOLDER}/{name}"


def check_key(key: str) -> str:
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"storage key {key!r} is invalid: use a relative 'a/b/c' path")
    return key


def dir_prefix(prefix: str) -> str:
    """'' or 'a/b/' for a folder given as 'a/b' or 'a/b/'."""
    prefix = prefix.strip("/")
    return prefix + "/" if prefix else ""


@contextlib.contextmanager
def atomic_local(local: Path) -> Iterator[Path]:
    """A temporary path next to `local` that replaces it only if the block succeeds."""
    local = Path(local)
    local.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=f".{local.name}.", suffix=".part")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, local)
    finally:
        Path(tmp).unlink(missing_ok=True)


class Storage(ABC):
    uri: str

    @abstractmethod
    def put_file(self, local: Path, key: str) -> None:
        """Upload the file `local` as `key`, replacing what is there."""

    @abstractmethod
    def get_file(self, key: str, local: Path) -> None:
        """Download to `local` atomically; StorageError if the key does not exist."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Store `data` as `key`, replacing what is there."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes | None:
        """The object's content, None if it does not exist."""

    @abstractmethod
    def size(self, key: str) -> int | None:
        """The object's size, None if it does not exist."""

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    @abstractmethod
    def list_keys(self, prefix: str = "") -> list[str]:
        """Every key starting with `prefix`, recursively, sorted."""

    @abstractmethod
    def list_dirs(self, prefix: str = "") -> list[str]:
        """Names of the immediate child folders of the folder `prefix`, sorted."""

    def check(self) -> None:
        """Raise StorageError with one clear message unless storage is reachable and writable.

        Writes a small probe key of this host's own and reads it back; the probe is left in
        place (overwritten next time) because storage code never deletes.
        """
        host = socket.gethostname()
        key = probe_key(host)
        probe = f"rlops check {utc_iso()} from {host} pid {os.getpid()}\n"
        self.put_bytes(key, probe.encode())
        if self.get_bytes(key) != probe.encode():
            raise StorageError(f"storage {self.uri}: wrote {key} but read back different content")
