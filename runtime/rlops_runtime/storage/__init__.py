"""Where sessions are published: one URI picks the backend (docs/contract.md)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from .base import Storage, StorageError

__all__ = ["Storage", "StorageError", "open_storage", "parse_uri"]

_SUPPORTED = "use file:///path or s3://bucket/prefix"


def parse_uri(uri: str) -> tuple[str, str, str]:
    """(scheme, bucket or container, prefix) for s3/az; ("file", "", absolute path) for file."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/"):
            raise StorageError(f"storage URI {uri!r} is invalid: use file:///absolute/path")
        return "file", "", parts.path
    if parts.scheme in ("s3", "az"):
        if not parts.netloc:
            raise StorageError(f"storage URI {uri!r} has no bucket or container: {_SUPPORTED}")
        return parts.scheme, parts.netloc, parts.path.strip("/")
    raise StorageError(f"unsupported storage URI {uri!r}: {_SUPPORTED}")


def open_storage(uri: str) -> Storage:
    scheme, bucket, path = parse_uri(uri)
    if scheme == "file":
        from .file import FileStorage

        return FileStorage(uri, Path(path))
    if scheme == "s3":
        try:
            from .s3 import S3Storage
        except ImportError as exc:  # boto3 is an optional dependency
            raise StorageError(
                f"storage URI {uri!r} needs boto3: pip install 'rlops-runtime[s3]'"
            ) from exc
        return S3Storage(uri, bucket, path)
    # az:// is reserved for Azure Blob storage; the collection's session_checks refuses it
    # on the controller in the same words.
    raise StorageError(
        f"storage URI {uri!r}: Azure Blob storage is not available yet: {_SUPPORTED}"
    )
