"""Where sessions are published: one URI picks the backend (docs/contract.md)."""

from __future__ import annotations

from pathlib import Path

from ..session_contract import ContractError, parse_storage_uri
from .base import Storage, StorageError

__all__ = ["Storage", "StorageError", "open_storage", "parse_uri"]


def parse_uri(uri: str) -> tuple[str, str, str]:
    """(scheme, bucket, container or folder, prefix) by the session contract's one parser;
    its refusal as a StorageError."""
    try:
        parsed = parse_storage_uri(uri)
    except ContractError as exc:
        raise StorageError(str(exc)) from None
    return parsed.scheme, parsed.location, parsed.prefix


def open_storage(uri: str) -> Storage:
    scheme, location, prefix = parse_uri(uri)
    if scheme == "file":
        from .file import FileStorage

        return FileStorage(uri, Path(location))
    if scheme == "az":
        try:
            from .azure import AzureBlobStorage
        except ImportError as exc:  # azure-storage-blob is an optional dependency
            raise StorageError(f"storage URI {uri!r} needs azure-storage-blob: "
                               "pip install 'rlops-runtime[azure]'") from exc
        return AzureBlobStorage(uri, location, prefix)
    try:
        from .s3 import S3Storage
    except ImportError as exc:  # boto3 is an optional dependency
        raise StorageError(
            f"storage URI {uri!r} needs boto3: pip install 'rlops-runtime[s3]'") from exc
    return S3Storage(uri, location, prefix)
