"""az://container/prefix storage: Azure Blob storage (or Azurite) through azure-storage-blob.

Sync clients only. What the environment (a host's config/storage.env) says decides how to
reach the account; that choice is the pure function `connection_settings`:

- AZURE_STORAGE_CONNECTION_STRING: a whole connection string (Azurite's too); or
- AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY (account key) or AZURE_STORAGE_SAS_TOKEN (a
  SAS, with or without its leading '?'); or
- AZURE_STORAGE_ACCOUNT alone: the VM's managed identity (a token from the instance
  metadata service; AZURE_CLIENT_ID picks a user-assigned identity). The identity needs the
  role "Storage Blob Data Contributor" on the container or the account.

RLOPS_AZURE_BLOB_ENDPOINT names another account URL than https://<account>.blob.core.windows.net
(Azurite: http://127.0.0.1:10000/devstoreaccount1). RLOPS_AZURE_API_VERSION pins the
x-ms-version sent (default: the SDK's newest); a server older than the SDK (Azurite 3.35
serves 2025-11-05) refuses newer versions, and the refusal says to set it.

No credential is logged or put into a message: error texts are redacted (`redact`).
Nothing here deletes.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobPrefix, BlobServiceClient, LinearRetry

from ..session_contract import (
    AZ_ACCOUNT,
    AZ_CONNECTION_STRING,
    AZ_KEY,
    AZ_SAS,
    az_credentials_problem,
)
from .base import Storage, StorageError, atomic_local, check_key, dir_prefix

CONNECTION_STRING_ENV = AZ_CONNECTION_STRING
ACCOUNT_ENV = AZ_ACCOUNT
KEY_ENV = AZ_KEY
SAS_ENV = AZ_SAS
CLIENT_ID_ENV = "AZURE_CLIENT_ID"
ENDPOINT_ENV = "RLOPS_AZURE_BLOB_ENDPOINT"
API_VERSION_ENV = "RLOPS_AZURE_API_VERSION"
IDENTITY_ENDPOINT_ENV = "RLOPS_AZURE_IMDS_ENDPOINT"
READ_TIMEOUT_ENV = "RLOPS_AZURE_READ_TIMEOUT"
DEFAULT_IMDS = "http://169.254.169.254"
TOKEN_PATH = "/metadata/identity/oauth2/token"
TOKEN_API_VERSION = "2018-02-01"
STORAGE_RESOURCE = "https://storage.azure.com/"
TOKEN_REFRESH_MARGIN = 300  # seconds before expiry a cached token is renewed

# Blobs above this size go up as blocks, committed at once by Put Block List: a blob is
# complete or absent, as an S3 multipart upload is.
SINGLE_PUT_SIZE = 64 * 1024 * 1024
BLOCK_SIZE = 8 * 1024 * 1024
# Seconds to wait for an answer once connected, for each of ATTEMPTS (as s3.py); a short
# connect timeout and one retry a second later: an unreachable account fails in seconds.
READ_TIMEOUT, CONNECT_TIMEOUT, ATTEMPTS = 30.0, 4.0, 2

# What each kind of request needs: a denial names it (SAS permission letter; RBAC role).
WRITE = "write (SAS permission 'w'; role Storage Blob Data Contributor)"
READ = "read (SAS permission 'r'; role Storage Blob Data Reader or Contributor)"
LIST = "list (SAS permission 'l'; role Storage Blob Data Reader or Contributor)"
_CREDENTIAL_CODES = {
    "AuthenticationFailed", "InvalidAuthenticationInfo", "NoAuthenticationInformation"}
_DENIED_CODES = {
    "AuthorizationFailure",
    "AuthorizationPermissionMismatch",
    "AuthorizationResourceTypeMismatch",
    "AuthorizationServiceMismatch",
    "AuthorizationProtocolMismatch",
    "AuthorizationSourceIPMismatch",
    "InsufficientAccountPermissions",
}
# A SAS's signature in a URL; the rest of a SAS (permissions, expiry) is no secret.
_SECRET_QUERY = re.compile(r"(?i)\b(sig)=[^&\s'\"]+")
_SECRET_FIELD = re.compile(r"(?i)(AccountKey|SharedAccessSignature)=[^;\s'\"]+")


# decisions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionSettings:
    """How to reach the account: `kind` is connection-string, account-key, sas or
    managed-identity; `secrets` are the values never to show."""

    kind: str
    account_url: str = ""
    connection_string: str = ""
    account: str = ""
    key: str = ""
    sas: str = ""
    client_id: str = ""
    api_version: str = ""
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:  # never a secret in a traceback or log
        return f"ConnectionSettings(kind={self.kind!r}, account_url={self.account_url!r})"


def _connection_string_fields(text: str) -> dict[str, str]:
    fields = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep and name.strip():
            fields[name.strip()] = value.strip()
    return fields


def connection_settings(environ: Mapping[str, str]) -> ConnectionSettings:
    """The way to the account that `environ` names; StorageError (one message, no secret)
    when it names none or a broken one."""
    api_version = (environ.get(API_VERSION_ENV) or "").strip()
    endpoint = (environ.get(ENDPOINT_ENV) or "").strip().rstrip("/")
    connection = (environ.get(CONNECTION_STRING_ENV) or "").strip()
    if connection:
        fields = _connection_string_fields(connection)
        if not ({"AccountName", "BlobEndpoint", "UseDevelopmentStorage"} & set(fields)):
            raise StorageError(
                f"{CONNECTION_STRING_ENV} is not an Azure Storage connection string (it names "
                "no AccountName or BlobEndpoint)")
        secrets = tuple(v for k, v in fields.items()
                        if k in ("AccountKey", "SharedAccessSignature") and v)
        account = fields.get("AccountName", "")
        url = endpoint or fields.get("BlobEndpoint", "").rstrip("/") or (
            f"https://{account}.blob.{fields.get('EndpointSuffix', 'core.windows.net')}"
            if account else "")
        return ConnectionSettings("connection-string", url, connection_string=connection,
                                  account=account, api_version=api_version,
                                  secrets=(connection, *secrets))
    problem = az_credentials_problem(dict(environ))
    if problem:
        raise StorageError(problem)
    account = (environ.get(ACCOUNT_ENV) or "").strip()
    url = endpoint or f"https://{account}.blob.core.windows.net"
    key = (environ.get(KEY_ENV) or "").strip()
    sas = (environ.get(SAS_ENV) or "").strip().lstrip("?")
    if key:
        return ConnectionSettings("account-key", url, account=account, key=key,
                                  api_version=api_version, secrets=(key,))
    if sas:
        return ConnectionSettings("sas", url, account=account, sas=sas,
                                  api_version=api_version, secrets=(sas,))
    return ConnectionSettings("managed-identity", url, account=account,
                              client_id=(environ.get(CLIENT_ID_ENV) or "").strip(),
                              api_version=api_version)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` without credentials: the given secret values, SAS query fields and
    connection-string keys."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _SECRET_FIELD.sub(lambda m: f"{m.group(1)}=***", text)
    return _SECRET_QUERY.sub(lambda m: f"{m.group(1)}=***", text)


def token_is_fresh(now: float, expires_on: float, margin: float = TOKEN_REFRESH_MARGIN) -> bool:
    return now < expires_on - margin


def token_request_url(endpoint: str, client_id: str = "") -> str:
    query = {"api-version": TOKEN_API_VERSION, "resource": STORAGE_RESOURCE}
    if client_id:
        query["client_id"] = client_id
    return f"{endpoint.rstrip('/')}{TOKEN_PATH}?{urllib.parse.urlencode(query)}"


def parse_token(body: bytes) -> AccessToken:
    """The token of the identity endpoint's answer; ValueError when it is none."""
    data = json.loads(body.decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    token, expires = data.get("access_token"), data.get("expires_on")
    if not isinstance(token, str) or not token or expires in (None, ""):
        raise ValueError("the answer holds no access_token and expires_on")
    return AccessToken(token, int(float(expires)))


# the shells ------------------------------------------------------------------------------


class ManagedIdentityCredential:
    """A token for Blob storage from the VM's instance metadata service (stdlib, no
    azure-identity): GET /metadata/identity/oauth2/token with `Metadata: true`, cached until
    five minutes before it expires. RLOPS_AZURE_IMDS_ENDPOINT names another endpoint."""

    def __init__(self, endpoint: str = DEFAULT_IMDS, client_id: str = "",
                 timeout: float = 10.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.client_id = client_id
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._token: AccessToken | None = None
        self._lock = threading.Lock()

    def get_token(self, *scopes: str, **_kwargs: Any) -> AccessToken:
        with self._lock:
            if self._token is None or not token_is_fresh(time.time(), self._token.expires_on):
                self._token = self._fetch()
            return self._token

    def _fetch(self) -> AccessToken:
        request = urllib.request.Request(token_request_url(self.endpoint, self.client_id),
                                         headers={"Metadata": "true"})
        where = f"the managed identity endpoint {self.endpoint}"
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return parse_token(response.read(65536))
        except urllib.error.HTTPError as exc:
            body = exc.read(512).decode("utf-8", "replace")
            exc.close()
            raise ClientAuthenticationError(
                f"{where} answered {exc.code}: {redact(body)} (does the VM have a managed "
                f"identity{' with client id ' + self.client_id if self.client_id else ''}?)"
            ) from None
        except (OSError, ValueError) as exc:
            raise ClientAuthenticationError(f"{where} gave no token: {exc}") from None


def _code(exc: Exception) -> str:
    code = getattr(exc, "error_code", None) or ""
    return str(getattr(code, "value", code))  # the SDK's StorageErrorCode is an enum


class AzureBlobStorage(Storage):
    def __init__(
        self,
        uri: str,
        container: str,
        prefix: str,
        environ: Mapping[str, str] | None = None,
        single_put_size: int = SINGLE_PUT_SIZE,
        block_size: int = BLOCK_SIZE,
    ) -> None:
        self.uri = uri
        self.container = container
        self._root = dir_prefix(prefix)
        environ = os.environ if environ is None else environ
        self.settings = connection_settings(environ)
        self._read_timeout = float(environ.get(READ_TIMEOUT_ENV) or READ_TIMEOUT)
        options: dict[str, Any] = {
            "connection_timeout": CONNECT_TIMEOUT,
            "read_timeout": self._read_timeout,
            "retry_policy": LinearRetry(backoff=1, random_jitter_range=0,
                                        retry_total=ATTEMPTS - 1),
            "max_single_put_size": single_put_size,
            "max_block_size": block_size,
            "max_single_get_size": single_put_size,
        }
        if self.settings.api_version:
            options["api_version"] = self.settings.api_version
        settings = self.settings
        try:
            if settings.kind == "connection-string":
                self._service = BlobServiceClient.from_connection_string(
                    settings.connection_string, **options)
            else:
                credential: Any
                if settings.kind == "account-key":
                    credential = {"account_name": settings.account, "account_key": settings.key}
                elif settings.kind == "sas":
                    credential = settings.sas
                else:
                    credential = ManagedIdentityCredential(
                        environ.get(IDENTITY_ENDPOINT_ENV) or DEFAULT_IMDS, settings.client_id)
                self._service = BlobServiceClient(settings.account_url, credential=credential,
                                                  **options)
        except ValueError as exc:
            why = redact(str(exc), settings.secrets)
            if settings.api_version and "version" in why.lower():
                why = (f"{API_VERSION_ENV}={settings.api_version} is not an API version this "
                       f"azure-storage-blob takes ({why})")
            raise StorageError(f"storage {uri}: {why}") from None
        self._container = self._service.get_container_client(container)
        self._key_auth = settings.kind == "account-key" or (
            settings.kind == "connection-string"
            and "AccountKey" in _connection_string_fields(settings.connection_string))

    @property
    def endpoint(self) -> str:
        return self._service.url.rstrip("/")

    def _key(self, key: str) -> str:
        return self._root + check_key(key)

    def _error(self, exc: Exception, doing: str, permission: str) -> StorageError:
        code = _code(exc)
        status = getattr(exc, "status_code", None)
        text = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                      self.settings.secrets)
        if isinstance(exc, ServiceResponseError):
            why = (f"the Blob endpoint {self.endpoint} accepted the connection but sent no "
                   f"answer within {self._read_timeout:g} s ({ATTEMPTS} attempts)")
        elif isinstance(exc, ServiceRequestError):
            why = f"cannot reach the Blob endpoint {self.endpoint} ({text})"
        elif code == "ContainerNotFound":
            why = f"container '{self.container}' does not exist at {self.endpoint}"
        elif code in _CREDENTIAL_CODES or status == 401 or (status == 403 and self._key_auth):
            # An account key may do everything: its 403 is a wrong key (Azure says
            # AuthenticationFailed, Azurite AuthorizationFailure).
            why = (f"credentials rejected by {self.endpoint} ({code or status}): check "
                   f"{self._credential_names()}")
        elif isinstance(exc, ClientAuthenticationError) and status is None:
            why = f"no token for the managed identity: {text}"
        elif code in _DENIED_CODES or status == 403:
            what = "no write permission" if permission == WRITE else "access denied"
            why = (f"{what} ({code or status}): the credentials lack {permission} on "
                   f"container '{self.container}'")
        elif status == 400 and ("x-ms-version" in str(exc).lower()
                                or "api version" in str(exc).lower()):
            version = self._service.api_version
            why = (f"the server at {self.endpoint} does not take API version {version} "
                   f"({code or status}): set {API_VERSION_ENV} to one it serves "
                   "(Azurite 3.35: 2025-11-05)")
        else:
            why = text
        return StorageError(f"storage {self.uri}: {doing} failed: {why}")

    def _credential_names(self) -> str:
        kind = self.settings.kind
        return {"connection-string": CONNECTION_STRING_ENV,
                "account-key": f"{ACCOUNT_ENV} and {KEY_ENV}",
                "sas": f"{SAS_ENV} (its expiry too)"}.get(kind, "the VM's managed identity")

    def put_file(self, local: Path, key: str) -> None:
        # From one open handle: files replaced by rename while sync runs are read whole.
        try:
            with open(local, "rb") as handle:
                self._container.upload_blob(self._key(key), handle, overwrite=True,
                                            max_concurrency=2)
        except AzureError as exc:
            raise self._error(exc, f"writing {key}", WRITE) from None

    def get_file(self, key: str, local: Path) -> None:
        try:
            with atomic_local(local) as tmp:
                with open(tmp, "wb") as handle:
                    self._container.download_blob(self._key(key), max_concurrency=2).readinto(
                        handle)
        except ResourceNotFoundError:
            raise StorageError(f"storage {self.uri}: {key} not found") from None
        except AzureError as exc:
            raise self._error(exc, f"reading {key}", READ) from None

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self._container.upload_blob(self._key(key), data, overwrite=True)
        except AzureError as exc:
            raise self._error(exc, f"writing {key}", WRITE) from None

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._container.download_blob(self._key(key)).readall()
        except ResourceNotFoundError as exc:
            if _code(exc) == "ContainerNotFound":
                raise self._error(exc, f"reading {key}", READ) from None
            return None
        except AzureError as exc:
            raise self._error(exc, f"reading {key}", READ) from None

    def size(self, key: str) -> int | None:
        try:
            return self._container.get_blob_client(self._key(key)).get_blob_properties().size
        except ResourceNotFoundError:
            # A HEAD answer has no body, hence no code: a missing container shows as a
            # missing blob here; check() lists first and tells them apart.
            return None
        except AzureError as exc:
            raise self._error(exc, f"reading {key}", READ) from None

    def list_keys(self, prefix: str = "") -> list[str]:
        start = self._root + prefix
        try:
            names = [blob.name for blob in self._container.list_blobs(name_starts_with=start)]
        except AzureError as exc:
            raise self._error(exc, f"listing az://{self.container}/{start}", LIST) from None
        return sorted(name[len(self._root):] for name in names)

    def list_dirs(self, prefix: str = "") -> list[str]:
        start = self._root + dir_prefix(prefix)
        try:
            items = list(self._container.walk_blobs(name_starts_with=start, delimiter="/"))
        except AzureError as exc:
            raise self._error(exc, f"listing az://{self.container}/{start}", LIST) from None
        return sorted(item.name[len(start):].rstrip("/") for item in items
                      if isinstance(item, BlobPrefix))

    def check(self) -> None:
        # A listing first: its error tells a missing container, rejected credentials and a
        # server that refuses the API version apart, before the probe is written.
        try:
            next(iter(self._container.list_blobs(name_starts_with=self._root,
                                                 results_per_page=1).by_page()), None)
        except AzureError as exc:
            raise self._error(exc, f"listing az://{self.container}/{self._root}", LIST) from None
        super().check()
