"""file:///abs/path storage: a folder, e.g. on a shared or persistent disk."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .base import Storage, StorageError, atomic_local, check_key, dir_prefix

# Temporary files of puts in progress; a crash can leave one behind, listings skip them.
_TMP_MARK = ".rlops-tmp-"


class FileStorage(Storage):
    def __init__(self, uri: str, root: Path) -> None:
        self.uri = uri
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _put(self, key: str, write) -> None:
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f"{_TMP_MARK}{target.name}.{os.getpid()}")
            try:
                write(tmp)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        except PermissionError as exc:
            raise StorageError(f"storage {self.uri}: no write permission: {exc}") from exc
        except OSError as exc:
            raise StorageError(f"storage {self.uri}: cannot write {key}: {exc}") from exc

    def put_file(self, local: Path, key: str) -> None:
        self._put(key, lambda tmp: shutil.copyfile(local, tmp))

    def put_bytes(self, key: str, data: bytes) -> None:
        self._put(key, lambda tmp: tmp.write_bytes(data))

    def get_file(self, key: str, local: Path) -> None:
        source = self._path(key)
        try:
            with atomic_local(local) as tmp:
                shutil.copyfile(source, tmp)
        except FileNotFoundError as exc:
            raise StorageError(f"storage {self.uri}: {key} not found") from exc
        except OSError as exc:
            raise StorageError(f"storage {self.uri}: cannot read {key}: {exc}") from exc

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            raise StorageError(f"storage {self.uri}: cannot read {key}: {exc}") from exc

    def size(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None

    def list_keys(self, prefix: str = "") -> list[str]:
        # Walk only the folder that can hold matches, then filter by the full prefix.
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        keys = []
        for folder, _dirs, names in os.walk(base):
            for name in names:
                if name.startswith(_TMP_MARK):
                    continue
                key = (Path(folder) / name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def list_dirs(self, prefix: str = "") -> list[str]:
        folder = self.root / dir_prefix(prefix)
        if not folder.is_dir():
            return []
        return sorted(entry.name for entry in folder.iterdir() if entry.is_dir())

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"storage {self.uri}: cannot create {self.root}: {exc}") from exc
        super().check()
