"""Shared fixtures: S3 stand-ins on loopback (moto, localbucket), buckets, checkpoints.

Servers are started once per test session and only listen on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from fake_imds import FakeImds
from rlops_runtime.contract import save_checkpoint
from rlops_runtime.jsonio import write_json_atomic
from rlops_runtime.notices import on_azure_vm
from rlops_runtime.session import SessionLayout
from rlops_runtime.storage import Storage

FAKE_JOB = Path(__file__).with_name("fake_job.py")
# tests/ray runs a real Ray cluster: in the Ray venv only, by `make ray-test`, which sets
# RLOPS_RAY_TESTS=1; the main venv (make runtime-test) has no Ray and never collects it.
collect_ignore = [] if os.environ.get("RLOPS_RAY_TESTS") == "1" else ["ray"]


def fake_job_session(data_root: Path, session: str, **run: object) -> SessionLayout:
    """A session under `data_root` whose job is fake_job.py, with a short sync and stop, for
    the tests of `rlops-run session` (control and the session layer); `run` overrides run.json."""
    layout = SessionLayout.for_session(data_root, session).create()
    write_json_atomic(layout.run_json, {
        "session_id": session, "storage_uri": f"file://{data_root / 'storage'}",
        "command": [sys.executable, str(FAKE_JOB)], "total_timesteps": 10**9,
        "sync_interval": 0.5, "stop_grace": 10, "final_sync_timeout": 5, **run})
    return layout


AWS_ENV_CLEARED = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(args: list[str], port: int) -> subprocess.Popen:
    """Start `python ARGS` (a server on `port`) and wait until it accepts connections."""
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop_server(proc)
                raise RuntimeError(f"server {args} did not start on port {port}") from None
            time.sleep(0.1)


def _stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def _serve(args: list[str], port: int) -> Iterator[str]:
    """Run `python ARGS` (a server on `port`) for the duration of the block; yields its URL."""
    proc = _start_server(args, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop_server(proc)


@pytest.fixture(scope="session")
def closed_endpoint() -> Iterator[str]:
    """A loopback URL that refuses connections: a bound socket that never listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(autouse=True)
def _no_real_imds(closed_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Supervisors in tests (notices "auto" by default) never reach 169.254.169.254."""
    monkeypatch.setenv("RLOPS_IMDS_ENDPOINT", closed_endpoint)
    if on_azure_vm():  # a CI runner may be an Azure VM: its Scheduled Events stay unasked
        monkeypatch.setenv("RLOPS_AZURE_IMDS_ENDPOINT", closed_endpoint)


@pytest.fixture
def fake_imds() -> Iterator[FakeImds]:
    """A fake IMDSv2 server on loopback (tests/fake_imds.py); `.url` is its endpoint."""
    with FakeImds() as imds:
        yield imds


def _boto_client(service: str, endpoint: str):
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def set_aws_env(monkeypatch: pytest.MonkeyPatch, endpoint: str, key="testing", secret="testing"):
    for name in AWS_ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # No ~/.aws files and no instance metadata lookups (which would leave loopback).
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("RLOPS_S3_ENDPOINT_URL", endpoint)


def _new_bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    bucket = f"b{uuid.uuid4().hex[:16]}"
    _boto_client("s3", endpoint).create_bucket(Bucket=bucket)
    set_aws_env(monkeypatch, endpoint)
    return f"s3://{bucket}/prefix"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto server (accepts any credentials)."""
    port = free_port()
    with _serve(["-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], port) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def localbucket_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """localbucket: an S3 server that keeps buckets as folders on disk."""
    port = free_port()
    data = tmp_path_factory.mktemp("localbucket")
    args = ["-m", "localbucket", str(data), "--host", "127.0.0.1", "--port", str(port)]
    with _serve(args, port) as endpoint:
        yield endpoint


class RestartableS3:
    """An S3 server that a test stops and starts again: localbucket on a fixed loopback
    port, its buckets on disk. Stopped, the endpoint refuses connections; started again,
    it has everything it had (moto keeps its buckets in memory and would come back empty).
    """

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.uri = ""
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        assert self._proc is None, "already running"
        self._proc = _start_server(
            ["-m", "localbucket", str(self.data), "--host", "127.0.0.1",
             "--port", str(self.port)], self.port)

    def stop(self) -> None:
        if self._proc is not None:
            _stop_server(self._proc)
            self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None

    def env(self) -> dict[str, str]:
        """What a session's config/storage.env holds to reach it."""
        return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "RLOPS_S3_ENDPOINT_URL": self.url,
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": "/nonexistent/aws-config",
                "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials"}


@pytest.fixture
def restartable_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RestartableS3]:
    """A running RestartableS3 with a fresh bucket; `.uri` is `s3://<bucket>/prefix` and
    this process's environment reaches it."""
    server = RestartableS3(tmp_path / "s3-data")
    server.data.mkdir()
    server.start()
    try:
        server.uri = _new_bucket(server.url, monkeypatch)
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server; yields `s3://<bucket>/prefix` with the env set."""
    return _new_bucket(s3_endpoint, monkeypatch)


@pytest.fixture
def localbucket_bucket(localbucket_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    return _new_bucket(localbucket_endpoint, monkeypatch)


@dataclass
class AuthS3:
    endpoint: str
    bucket: str
    writer: tuple[str, str]
    reader: tuple[str, str]


@pytest.fixture(scope="session")
def s3_auth() -> Iterator[AuthS3]:
    """A moto server that checks credentials and IAM policies.

    Users are created while moto still accepts anything, then authentication is switched
    on through moto's /moto-api/reset-auth.
    """
    port = free_port()
    with _serve(["-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], port) as endpoint:
        iam, s3 = _boto_client("iam", endpoint), _boto_client("s3", endpoint)
        s3.create_bucket(Bucket="auth-bucket")
        keys = {}
        for user, actions in (("writer", ["s3:*"]), ("reader", ["s3:GetObject", "s3:ListBucket"])):
            iam.create_user(UserName=user)
            policy = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
            }
            iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(policy))
            key = iam.create_access_key(UserName=user)["AccessKey"]
            keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        request = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        urllib.request.urlopen(request, timeout=10).close()
        yield AuthS3(endpoint, "auth-bucket", keys["writer"], keys["reader"])


# Azure Blob storage: Azurite, installed from tests/azurite's lock by `make azure-test`, which
# names its azurite-blob in RLOPS_AZURITE; without it the az:// tests are skipped (they run
# in that target, not in runtime-test). Azurite 3.35 (the last on Node 20) serves API
# 2025-11-05 and refuses newer ones: the client is pinned to it by RLOPS_AZURE_API_VERSION.
AZURITE_ENV = "RLOPS_AZURITE"
AZURITE_API_VERSION = "2025-11-05"
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")
AZURE_ENV_CLEARED = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT",
                     "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_CLIENT_ID",
                     "RLOPS_AZURE_BLOB_ENDPOINT", "RLOPS_AZURE_API_VERSION")


@dataclass
class Azurite:
    url: str  # the account's URL: http://127.0.0.1:<port>/devstoreaccount1
    account: str = AZURITE_ACCOUNT
    key: str = AZURITE_KEY

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={self.account};"
                f"AccountKey={self.key};BlobEndpoint={self.url};")

    def service(self):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(
            self.connection_string, api_version=AZURITE_API_VERSION)


def set_azure_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """Only `env` of the Azure settings, and the API version Azurite serves."""
    for name in AZURE_ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RLOPS_AZURE_API_VERSION", AZURITE_API_VERSION)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite's Blob service on loopback, its data in a temporary folder; stopped after."""
    binary = os.environ.get(AZURITE_ENV)
    if not binary:
        pytest.skip(f"az:// tests run in `make azure-test` ({AZURITE_ENV} names azurite-blob)")
    port = free_port()
    data = tmp_path_factory.mktemp("azurite")
    proc = subprocess.Popen(
        [binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(data),
         "--disableTelemetry", "--silent"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop_server(proc)
                raise RuntimeError(f"Azurite ({binary}) did not start on port {port}") from None
            time.sleep(0.1)
    try:
        yield Azurite(f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}")
    finally:
        _stop_server(proc)


def new_container(azurite: Azurite) -> str:
    name = f"c{uuid.uuid4().hex[:16]}"
    azurite.service().create_container(name)
    return name


@pytest.fixture
def az_container(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh container in Azurite; `az://<container>/prefix`, reached through the
    connection string in this process's environment."""
    set_azure_env(monkeypatch, AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    return f"az://{new_container(azurite)}/prefix"


@pytest.fixture(params=["file", "s3-moto", "s3-localbucket", "az-azurite"])
def storage_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage backend in turn; servers start only when a test needs them."""
    if request.param == "file":
        return f"file://{tmp_path / 'storage'}"
    if request.param == "s3-moto":
        return request.getfixturevalue("s3_bucket")
    if request.param == "az-azurite":
        return request.getfixturevalue("az_container")
    return request.getfixturevalue("localbucket_bucket")


class FaultyStorage(Storage):
    """Delegates to a real storage, counts writes, and fails on demand (fault injection)."""

    def __init__(self, inner: Storage, fail_after_puts: int | None = None) -> None:
        self.inner = inner
        self.uri = inner.uri
        self.puts: list[str] = []
        self.fail_after_puts = fail_after_puts
        self.down = False

    def _write(self, key: str) -> None:
        from rlops_runtime.storage import StorageError

        if self.down or (
            self.fail_after_puts is not None and len(self.puts) >= self.fail_after_puts
        ):
            raise StorageError(f"storage {self.uri}: injected failure writing {key}")
        self.puts.append(key)

    def put_file(self, local, key):
        self._write(key)
        self.inner.put_file(local, key)

    def put_bytes(self, key, data):
        self._write(key)
        self.inner.put_bytes(key, data)

    def get_file(self, key, local):
        self.inner.get_file(key, local)

    def get_bytes(self, key):
        return self.inner.get_bytes(key)

    def size(self, key):
        return self.inner.size(key)

    def list_keys(self, prefix=""):
        return self.inner.list_keys(prefix)

    def list_dirs(self, prefix=""):
        return self.inner.list_dirs(prefix)


@pytest.fixture
def faulty_storage() -> type[FaultyStorage]:
    return FaultyStorage


def _write_files(files: dict[str, bytes]) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        for rel, data in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)

    return write


@pytest.fixture
def make_checkpoint() -> Callable[..., Path]:
    """make_checkpoint(checkpoint_dir, step, files=None, session='s') -> complete folder."""

    def make(checkpoint_dir: Path, step: int, files: dict[str, bytes] | None = None,
             session: str = "sess-1") -> Path:
        files = files or {"model.zip": f"model {step}".encode(), "sub/extra.bin": b"x" * step}
        return save_checkpoint(checkpoint_dir, step, _write_files(files), session=session)

    return make
