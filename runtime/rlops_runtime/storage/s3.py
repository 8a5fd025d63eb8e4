"""s3://bucket/prefix storage: AWS S3 or any S3-compatible endpoint (MinIO, moto, ...)."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from .base import Storage, StorageError, atomic_local, check_key, dir_prefix

MULTIPART_THRESHOLD = 64 * 1024 * 1024
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidClientTokenId",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
}
_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}
_DENIED_CODES = {"403", "AccessDenied", "AllAccessDisabled"}
# The IAM permission each kind of request needs: a denial names the one that is missing.
# Servers differ in which request of a check they deny first (moto 5.2.6 refuses a
# read-only user's listing that 5.2.5 allowed), so every request says its own.
WRITE, READ, LIST = "s3:PutObject", "s3:GetObject", "s3:ListBucket"
# Seconds to wait for an answer once connected, for each of the ATTEMPTS of a request
# (RLOPS_S3_READ_TIMEOUT): an endpoint that accepts connections and never answers fails
# after ATTEMPTS x READ_TIMEOUT s and a little backoff.
READ_TIMEOUT, ATTEMPTS = 30.0, 2


def endpoint_from_env() -> str | None:
    return os.environ.get("RLOPS_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL") or None


def _code(exc: Exception) -> str:
    return exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""


class S3Storage(Storage):
    def __init__(
        self,
        uri: str,
        bucket: str,
        prefix: str,
        multipart_threshold: int = MULTIPART_THRESHOLD,
    ) -> None:
        self.uri = uri
        self.bucket = bucket
        self._root = dir_prefix(prefix)
        endpoint = endpoint_from_env()
        region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
        self._read_timeout = float(os.environ.get("RLOPS_S3_READ_TIMEOUT") or READ_TIMEOUT)
        config = Config(
            # Short connect timeout and two attempts: an unreachable endpoint fails in
            # about 10 s instead of botocore's default minutes.
            connect_timeout=4,
            read_timeout=self._read_timeout,
            retries={"total_max_attempts": ATTEMPTS, "mode": "standard"},
            # S3-compatible servers (MinIO, moto, localbucket) rarely do virtual hosts.
            s3={"addressing_style": "path"} if endpoint else None,
        )
        # A session of its own: the sync thread and the supervisor share this object.
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint, region_name=region, config=config
        )
        self._transfer = TransferConfig(multipart_threshold=multipart_threshold)

    @property
    def endpoint(self) -> str:
        return self._client.meta.endpoint_url

    def _key(self, key: str) -> str:
        return self._root + check_key(key)

    def _error(self, exc: Exception, doing: str, permission: str) -> StorageError:
        if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, ClientError):
            exc = exc.__context__  # boto3 wraps the real error in a generic one
        code = _code(exc)
        if isinstance(exc, ReadTimeoutError):
            why = (
                f"the S3 endpoint {self.endpoint} accepted the connection but sent no answer "
                f"within {self._read_timeout:g} s ({ATTEMPTS} attempts)"
            )
        elif isinstance(exc, (BotoConnectionError, HTTPClientError)):
            why = f"cannot reach the S3 endpoint {self.endpoint} ({exc})"
        elif isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            why = (
                "no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "or AWS_PROFILE, or give the host an instance role"
            )
        elif code in _CREDENTIAL_CODES:
            why = (
                f"credentials rejected by {self.endpoint} ({code}): "
                "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        elif code == "NoSuchBucket":
            why = f"bucket '{self.bucket}' does not exist at {self.endpoint}"
        elif code in _DENIED_CODES:
            what = "no write permission" if permission == WRITE else "access denied"
            why = (
                f"{what} ({code}): the credentials lack {permission} on bucket "
                f"'{self.bucket}'"
            )
        else:
            why = str(exc)
        return StorageError(f"storage {self.uri}: {doing} failed: {why}")

    def put_file(self, local: Path, key: str) -> None:
        # Upload from one open handle: status.json and friends are replaced (rename) while
        # sync runs, and upload_file would take the size of one version and read another,
        # leaving the server waiting for bytes that never come.
        try:
            with open(local, "rb") as handle:
                self._client.upload_fileobj(
                    handle, self.bucket, self._key(key), Config=self._transfer
                )
        except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
            raise self._error(exc, f"writing {key}", WRITE) from exc

    def get_file(self, key: str, local: Path) -> None:
        try:
            with atomic_local(local) as tmp:
                self._client.download_file(
                    self.bucket, self._key(key), str(tmp), Config=self._transfer
                )
        except (BotoCoreError, ClientError) as exc:
            if _code(exc) in _NOT_FOUND_CODES:
                raise StorageError(f"storage {self.uri}: {key} not found") from exc
            raise self._error(exc, f"reading {key}", READ) from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, f"writing {key}", WRITE) from exc

    def get_bytes(self, key: str) -> bytes | None:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            return response["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            if _code(exc) in _NOT_FOUND_CODES:
                return None
            raise self._error(exc, f"reading {key}", READ) from exc

    def size(self, key: str) -> int | None:
        try:
            return self._client.head_object(Bucket=self.bucket, Key=self._key(key))[
                "ContentLength"
            ]
        except (BotoCoreError, ClientError) as exc:
            if _code(exc) in _NOT_FOUND_CODES:
                return None
            raise self._error(exc, f"reading {key}", READ) from exc

    def _list(self, prefix: str, delimiter: str = "") -> tuple[list[str], list[str]]:
        keys, dirs = [], []
        kwargs = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(**kwargs):
                keys += [item["Key"][len(self._root) :] for item in page.get("Contents", [])]
                dirs += [item["Prefix"][len(prefix) :] for item in page.get("CommonPrefixes", [])]
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, f"listing s3://{self.bucket}/{prefix}", LIST) from exc
        return keys, dirs

    def list_keys(self, prefix: str = "") -> list[str]:
        return sorted(self._list(self._root + prefix)[0])

    def list_dirs(self, prefix: str = "") -> list[str]:
        dirs = self._list(self._root + dir_prefix(prefix), "/")[1]
        return sorted(name.rstrip("/") for name in dirs)

    def check(self) -> None:
        # A listing first: its error tells a missing bucket and bad credentials apart
        # (a HEAD request's 403/404 carries no error code).
        self._list(self._root, "/")
        super().check()
