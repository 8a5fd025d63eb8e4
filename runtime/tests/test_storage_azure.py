"""az:// storage: the decisions (credentials, redaction, tokens) here; the backend against
Azurite on loopback (`make azure-test`; skipped without RLOPS_AZURITE). The storage contract
tests (tests/storage, test_publish, test_fetch) run against Azurite too, through the
`storage_uri` fixture's az-azurite case."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("azure.storage.blob")

from conftest import (  # noqa: E402
    AZURITE_API_VERSION,
    Azurite,
    free_port,
    new_container,
    set_azure_env,
)
from rlops_runtime.publish import fetch_newest_complete, publish_checkpoint  # noqa: E402
from rlops_runtime.storage import StorageError, open_storage  # noqa: E402
from rlops_runtime.storage.azure import (  # noqa: E402
    STORAGE_RESOURCE,
    AzureBlobStorage,
    ConnectionSettings,
    ManagedIdentityCredential,
    connection_settings,
    parse_token,
    redact,
    token_request_url,
)

KEY = "c2VjcmV0LWtleS1ieXRlcw=="
SAS = "sv=2025-11-05&ss=b&srt=sco&sp=rl&se=2030-01-01T00%3A00%3A00Z&sig=c2lnbmF0dXJl%2Fabc%3D"


# decisions ------------------------------------------------------------------------------


def test_connection_string_wins_and_its_secrets_are_known():
    conn = (f"DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey={KEY};"
            "EndpointSuffix=core.windows.net")
    settings = connection_settings({"AZURE_STORAGE_CONNECTION_STRING": conn,
                                    "AZURE_STORAGE_ACCOUNT": "other", "AZURE_STORAGE_KEY": "x"})
    assert (settings.kind, settings.account, settings.account_url) == (
        "connection-string", "acct1", "https://acct1.blob.core.windows.net")
    assert KEY in settings.secrets and conn in settings.secrets
    assert KEY not in repr(settings) and KEY not in str(settings)


@pytest.mark.parametrize("env, kind, url", [
    ({"AZURE_STORAGE_ACCOUNT": "acct1", "AZURE_STORAGE_KEY": KEY}, "account-key",
     "https://acct1.blob.core.windows.net"),
    ({"AZURE_STORAGE_ACCOUNT": "acct1", "AZURE_STORAGE_SAS_TOKEN": "?" + SAS}, "sas",
     "https://acct1.blob.core.windows.net"),
    ({"AZURE_STORAGE_ACCOUNT": "acct1"}, "managed-identity",
     "https://acct1.blob.core.windows.net"),
    ({"AZURE_STORAGE_ACCOUNT": "acct1", "RLOPS_AZURE_BLOB_ENDPOINT": "http://127.0.0.1:1/a/"},
     "managed-identity", "http://127.0.0.1:1/a"),
])
def test_the_way_to_the_account(env, kind, url):
    settings = connection_settings(env)
    assert (settings.kind, settings.account_url) == (kind, url)
    if kind == "sas":
        assert settings.sas == SAS  # without its '?'


def test_api_version_and_client_id_are_taken():
    settings = connection_settings({"AZURE_STORAGE_ACCOUNT": "acct1", "AZURE_CLIENT_ID": "cid",
                                    "RLOPS_AZURE_API_VERSION": "2025-11-05"})
    assert (settings.client_id, settings.api_version) == ("cid", "2025-11-05")


@pytest.mark.parametrize("env, message", [
    ({}, "no Azure Storage credentials: set AZURE_STORAGE_CONNECTION_STRING, or "
         "AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, or "
         "AZURE_STORAGE_ACCOUNT alone on a VM whose managed identity has the role Storage Blob "
         "Data Contributor"),
    ({"AZURE_STORAGE_CONNECTION_STRING": "hello"},
     "AZURE_STORAGE_CONNECTION_STRING is not an Azure Storage connection string"),
    ({"AZURE_STORAGE_ACCOUNT": "Bad_Name"}, "AZURE_STORAGE_ACCOUNT 'Bad_Name' is not a storage "
                                            "account name"),
    ({"AZURE_STORAGE_ACCOUNT": "acct1", "AZURE_STORAGE_KEY": KEY,
      "AZURE_STORAGE_SAS_TOKEN": SAS}, "both AZURE_STORAGE_KEY and AZURE_STORAGE_SAS_TOKEN"),
])
def test_bad_settings_are_refused_in_one_message(env, message):
    with pytest.raises(StorageError) as err:
        connection_settings(env)
    assert str(err.value).startswith(message)
    assert KEY not in str(err.value) and "sig=" not in str(err.value)


def test_refused_by_open_storage_before_any_request(monkeypatch):
    set_azure_env(monkeypatch)
    with pytest.raises(StorageError, match="no Azure Storage credentials"):
        open_storage("az://models/rl")


def test_redact():
    text = (f"GET https://a.blob.core.windows.net/c?restype=container&{SAS} failed; "
            f"AccountKey={KEY};EndpointSuffix=x and {KEY[:10]}")
    cleaned = redact(text, (KEY[:10],))
    assert "c2lnbmF0dXJl" not in cleaned and KEY not in cleaned and KEY[:10] not in cleaned
    assert "sig=***" in cleaned and "AccountKey=***" in cleaned and "sp=rl" in cleaned


def test_token_request_and_answer():
    url = urllib.parse.urlsplit(token_request_url("http://169.254.169.254/", "cid"))
    assert url.path == "/metadata/identity/oauth2/token"
    assert urllib.parse.parse_qs(url.query) == {
        "api-version": ["2018-02-01"], "resource": [STORAGE_RESOURCE], "client_id": ["cid"]}
    token = parse_token(b'{"access_token": "tok", "expires_on": "1900000000"}')
    assert (token.token, token.expires_on) == ("tok", 1900000000)
    for junk in (b"{}", b'{"access_token": "t"}', b"[]", b"x"):
        with pytest.raises(ValueError):
            parse_token(junk)


class FakeIdentity:
    """The VM's managed identity endpoint: GET /metadata/identity/oauth2/token."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[tuple[dict, str | None]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                fake.requests.append((urllib.parse.parse_qs(url.query),
                                      self.headers.get("Metadata")))
                ok = (url.path == "/metadata/identity/oauth2/token"
                      and self.headers.get("Metadata") == "true" and fake.status == 200)
                body = json.dumps({"access_token": "tok-1", "expires_on": str(
                    int(time.time()) + 3600)} if ok else {"error": "invalid_request"}).encode()
                self.send_response(200 if ok else fake.status if fake.status != 200 else 400)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_managed_identity_token_is_fetched_once_and_cached():
    fake = FakeIdentity()
    try:
        credential = ManagedIdentityCredential(fake.url, client_id="cid")
        assert credential.get_token(STORAGE_RESOURCE + ".default").token == "tok-1"
        assert credential.get_token(STORAGE_RESOURCE + ".default").token == "tok-1"
        [(query, header)] = fake.requests
        assert header == "true" and query["client_id"] == ["cid"]
    finally:
        fake.close()


def test_managed_identity_refusal_is_one_clear_message():
    from azure.core.exceptions import ClientAuthenticationError

    fake = FakeIdentity(status=400)
    try:
        with pytest.raises(ClientAuthenticationError) as err:
            ManagedIdentityCredential(fake.url).get_token(STORAGE_RESOURCE)
        assert str(err.value).startswith(
            f"the managed identity endpoint {fake.url} answered 400")
        assert "does the VM have a managed identity?" in str(err.value)
    finally:
        fake.close()


def test_managed_identity_unreachable(closed_endpoint: str):
    from azure.core.exceptions import ClientAuthenticationError

    with pytest.raises(ClientAuthenticationError, match="gave no token"):
        ManagedIdentityCredential(closed_endpoint, timeout=2).get_token(STORAGE_RESOURCE)


def test_unreachable_endpoint_is_refused_fast(monkeypatch):
    endpoint = f"http://127.0.0.1:{free_port()}/devstoreaccount1"
    set_azure_env(monkeypatch, AZURE_STORAGE_ACCOUNT="devstoreaccount1", AZURE_STORAGE_KEY=KEY,
                  RLOPS_AZURE_BLOB_ENDPOINT=endpoint)
    started = time.monotonic()
    with pytest.raises(StorageError) as err:
        open_storage("az://models/rl").check()
    assert time.monotonic() - started < 12
    assert str(err.value).startswith(
        f"storage az://models/rl: listing az://models/rl/ failed: cannot reach the Blob "
        f"endpoint {endpoint}")
    assert KEY not in str(err.value)


def test_endpoint_that_never_answers_times_out_clearly(monkeypatch):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}/devstoreaccount1"
        set_azure_env(monkeypatch, AZURE_STORAGE_ACCOUNT="devstoreaccount1",
                      AZURE_STORAGE_KEY=KEY, RLOPS_AZURE_BLOB_ENDPOINT=endpoint,
                      RLOPS_AZURE_READ_TIMEOUT="1")
        started = time.monotonic()
        with pytest.raises(StorageError) as err:
            open_storage("az://models/rl").check()
        took = time.monotonic() - started
    assert took < 2 * 1 + 4, took
    assert str(err.value) == (
        f"storage az://models/rl: listing az://models/rl/ failed: the Blob endpoint {endpoint} "
        "accepted the connection but sent no answer within 1 s (2 attempts)")


def test_an_api_version_the_sdk_does_not_know_is_refused(monkeypatch):
    set_azure_env(monkeypatch, AZURE_STORAGE_ACCOUNT="acct1", AZURE_STORAGE_KEY=KEY,
                  RLOPS_AZURE_API_VERSION="1999-01-01")
    with pytest.raises(StorageError) as err:
        open_storage("az://models/rl")
    assert "RLOPS_AZURE_API_VERSION=1999-01-01 is not an API version this azure-storage-blob " \
           "takes" in str(err.value)


# against Azurite --------------------------------------------------------------------------


def test_large_files_go_up_as_blocks_and_come_back_whole(az_container: str, tmp_path: Path):
    container = urllib.parse.urlsplit(az_container).netloc
    storage = AzureBlobStorage(az_container, container, "prefix",
                               single_put_size=1024 * 1024, block_size=256 * 1024)
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(5 * 1024 * 1024 + 17))
    storage.put_file(source, "s/big.bin")
    assert storage.size("s/big.bin") == source.stat().st_size
    target = tmp_path / "back.bin"
    storage.get_file("s/big.bin", target)
    assert target.read_bytes() == source.read_bytes()
    blob = storage._container.get_blob_client("prefix/s/big.bin")
    blocks = blob.get_block_list("committed")[0]
    assert len(blocks) >= 20  # put as blocks, committed at once


def test_a_large_checkpoint_publishes_and_fetches(az_container: str, tmp_path: Path,
                                                  make_checkpoint):
    storage = open_storage(az_container)
    folder = make_checkpoint(tmp_path / "ckpt", 500,
                             files={"model.zip": os.urandom(3 * 1024 * 1024)})
    assert publish_checkpoint(storage, "sess-1", folder) == 500
    step, fetched = fetch_newest_complete(storage, "sess-1", tmp_path / "dest")
    assert step == 500 and (fetched / "model.zip").read_bytes() == (
        folder / "model.zip").read_bytes()


def test_account_key_and_sas_reach_azurite(azurite: Azurite, monkeypatch):
    container = new_container(azurite)
    set_azure_env(monkeypatch, AZURE_STORAGE_ACCOUNT=azurite.account,
                  AZURE_STORAGE_KEY=azurite.key, RLOPS_AZURE_BLOB_ENDPOINT=azurite.url)
    open_storage(f"az://{container}/k").check()
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    sas = generate_container_sas(
        azurite.account, container, account_key=azurite.key,
        permission=ContainerSasPermissions(read=True, write=True, list=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1))
    set_azure_env(monkeypatch, AZURE_STORAGE_ACCOUNT=azurite.account,
                  AZURE_STORAGE_SAS_TOKEN=sas, RLOPS_AZURE_BLOB_ENDPOINT=azurite.url)
    storage = open_storage(f"az://{container}/s")
    storage.check()
    storage.put_bytes("a/b", b"via sas")
    assert storage.get_bytes("a/b") == b"via sas" and storage.list_dirs() == [".rlops-check", "a"]


def test_a_read_only_sas_is_refused_with_the_permission_it_lacks(azurite: Azurite, monkeypatch):
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    container = new_container(azurite)
    sas = generate_container_sas(
        azurite.account, container, account_key=azurite.key,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1))
    set_azure_env(monkeypatch, AZURE_STORAGE_ACCOUNT=azurite.account,
                  AZURE_STORAGE_SAS_TOKEN=sas, RLOPS_AZURE_BLOB_ENDPOINT=azurite.url)
    storage = open_storage(f"az://{container}/p")
    with pytest.raises(StorageError) as err:
        storage.check()
    message = str(err.value)
    assert message.startswith(f"storage az://{container}/p: writing .rlops-check/")
    assert "no write permission" in message and "SAS permission 'w'" in message
    assert sas.split("sig=")[1].split("&")[0] not in message
    assert storage.list_keys() == []  # nothing written


def test_a_wrong_key_is_refused_as_rejected_credentials(azurite: Azurite, monkeypatch):
    container = new_container(azurite)
    set_azure_env(monkeypatch, AZURE_STORAGE_ACCOUNT=azurite.account, AZURE_STORAGE_KEY=KEY,
                  RLOPS_AZURE_BLOB_ENDPOINT=azurite.url)
    with pytest.raises(StorageError) as err:
        open_storage(f"az://{container}/p").check()
    assert str(err.value) == (
        f"storage az://{container}/p: listing az://{container}/p/ failed: credentials "
        f"rejected by {azurite.url} (AuthorizationFailure): check AZURE_STORAGE_ACCOUNT and "
        "AZURE_STORAGE_KEY")
    assert KEY not in str(err.value)


def test_a_missing_container_is_named(azurite: Azurite, monkeypatch):
    set_azure_env(monkeypatch, AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    with pytest.raises(StorageError) as err:
        open_storage("az://no-such-container/p").check()
    assert str(err.value) == (
        "storage az://no-such-container/p: listing az://no-such-container/p/ failed: "
        f"container 'no-such-container' does not exist at {azurite.url}")


def test_a_server_older_than_the_client_says_to_pin_the_api_version(azurite: Azurite,
                                                                    monkeypatch):
    """Azurite 3.35 refuses the SDK's newer default x-ms-version (it runs without
    --skipApiVersionCheck, so that the pin is tested): the message says what to set."""
    from azure.storage.blob._serialize import _SUPPORTED_API_VERSIONS

    if _SUPPORTED_API_VERSIONS[-1] <= AZURITE_API_VERSION:
        pytest.skip("this azure-storage-blob's newest API version is one Azurite serves")
    container = new_container(azurite)
    set_azure_env(monkeypatch, AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    monkeypatch.delenv("RLOPS_AZURE_API_VERSION")
    with pytest.raises(StorageError) as err:
        open_storage(f"az://{container}/p").check()
    assert str(err.value).startswith(
        f"storage az://{container}/p: listing az://{container}/p/ failed: the server at "
        f"{azurite.url} does not take API version {_SUPPORTED_API_VERSIONS[-1]} (")
    assert str(err.value).endswith(
        "set RLOPS_AZURE_API_VERSION to one it serves (Azurite 3.35: 2025-11-05)")


def test_no_credential_reaches_the_logs(azurite: Azurite, monkeypatch, caplog,
                                        tmp_path: Path):
    container = new_container(azurite)
    set_azure_env(monkeypatch, AZURE_STORAGE_ACCOUNT=azurite.account,
                  AZURE_STORAGE_KEY=azurite.key, RLOPS_AZURE_BLOB_ENDPOINT=azurite.url)
    caplog.set_level(logging.DEBUG)
    storage = open_storage(f"az://{container}/p")
    storage.check()
    storage.put_bytes("x", b"1")
    storage.get_bytes("x")
    storage.list_keys()
    with pytest.raises(StorageError):
        storage.get_file("missing", tmp_path / "m")
    assert caplog.records  # the SDK did log its requests
    assert azurite.key not in caplog.text and azurite.key[:20] not in caplog.text


def test_settings_repr_hides_the_key():
    settings = ConnectionSettings("account-key", "u", account="a", key=KEY, secrets=(KEY,))
    assert KEY not in repr(settings)


def test_a_preempted_session_is_saved_to_blob_storage_then_acknowledged(
        az_container: str, tmp_path: Path, monkeypatch):
    """The Azure path on a host: az:// storage and a Preempt from Scheduled Events. The
    job's checkpoint after the notice is in Blob storage (LATEST names it), status.json there
    says interrupted, and the event was acknowledged after."""
    from rlops_runtime.publish import read_latest
    from test_notices_azure import EVENTS, preempted_run
    from test_notices_azure import FakeAzureImds as FakeImds
    from test_supervisor import SESSION, make_session, newest

    fake = FakeImds()
    try:
        monkeypatch.delenv("RLOPS_IMDS_ENDPOINT")
        monkeypatch.setenv("RLOPS_AZURE_IMDS_ENDPOINT", fake.url)
        layout = make_session(tmp_path, storage_uri=az_container, env={
            "FAKE_CHECKPOINT_SECONDS": "3600", "FAKE_PROGRESS_SECONDS": "0.1"})
        preempted_run(layout, fake, tmp_path)
        storage = open_storage(az_container)
        assert newest(layout) is not None and read_latest(storage, SESSION) == newest(layout)
        stored = json.loads(storage.get_bytes(f"{SESSION}/status.json"))
        assert stored["state"] == "interrupted" and "Preempt" in stored["exit_reason"]
        assert fake.acks == [{"StartRequests": [{"EventId": "e-preempt"}]}]
        assert fake.requests[-1][:2] == ("POST", EVENTS)
    finally:
        fake.close()
