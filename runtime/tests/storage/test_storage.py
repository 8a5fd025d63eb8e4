from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import pytest
from botocore.stub import Stubber
from conftest import free_port, set_aws_env
from rlops_runtime.storage import StorageError, open_storage, parse_uri
from rlops_runtime.storage.base import probe_key
from rlops_runtime.storage.s3 import S3Storage


def test_bytes_round_trip_and_missing_keys(storage_uri: str):
    storage = open_storage(storage_uri)
    assert storage.uri == storage_uri
    assert storage.get_bytes("s/a.txt") is None
    assert storage.size("s/a.txt") is None and not storage.exists("s/a.txt")
    storage.put_bytes("s/a.txt", b"one")
    storage.put_bytes("s/a.txt", b"three")  # overwrite
    assert storage.get_bytes("s/a.txt") == b"three"
    assert storage.size("s/a.txt") == 5 and storage.exists("s/a.txt")


def test_file_round_trip_and_atomic_download(storage_uri: str, tmp_path: Path):
    storage = open_storage(storage_uri)
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(100_000))
    storage.put_file(source, "s/deep/er/in.bin")
    target = tmp_path / "out" / "copy.bin"
    storage.get_file("s/deep/er/in.bin", target)
    assert target.read_bytes() == source.read_bytes()
    target.write_bytes(b"keep me")
    with pytest.raises(StorageError, match=r"missing\.bin not found"):
        storage.get_file("s/missing.bin", target)
    assert target.read_bytes() == b"keep me"  # a failed download leaves the old file
    assert sorted(p.name for p in target.parent.iterdir()) == ["copy.bin"]


def test_listings(storage_uri: str):
    storage = open_storage(storage_uri)
    for key in ("s1/checkpoints/000000000002/m", "s1/checkpoints/000000000001/m",
                "s1/checkpoints/LATEST", "s1/logs/job.log", "s2/status.json", "top.txt"):
        storage.put_bytes(key, b"x")
    assert storage.list_keys() == [
        "s1/checkpoints/000000000001/m", "s1/checkpoints/000000000002/m",
        "s1/checkpoints/LATEST", "s1/logs/job.log", "s2/status.json", "top.txt",
    ]
    assert storage.list_keys("s1/checkpoints/") == [
        "s1/checkpoints/000000000001/m", "s1/checkpoints/000000000002/m", "s1/checkpoints/LATEST",
    ]
    assert storage.list_keys("s1/l") == ["s1/logs/job.log"]
    assert storage.list_keys("nothing/") == []
    assert storage.list_dirs() == ["s1", "s2"]
    assert storage.list_dirs("s1/checkpoints") == ["000000000001", "000000000002"]
    assert storage.list_dirs("s1/checkpoints/") == ["000000000001", "000000000002"]
    assert storage.list_dirs("nothing") == []


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "a/", "./a"])
def test_invalid_keys_are_refused(tmp_path: Path, key: str):
    storage = open_storage(f"file://{tmp_path}")
    with pytest.raises(ValueError, match="storage key"):
        storage.put_bytes(key, b"x")


def test_check_writes_a_probe_and_deletes_nothing(storage_uri: str):
    storage = open_storage(storage_uri)
    storage.put_bytes("s/keep", b"x")
    storage.check()
    storage.check()
    probe = probe_key(socket.gethostname())
    assert storage.list_keys() == [probe, "s/keep"]
    assert b"rlops check" in storage.get_bytes(probe)


def test_hosts_checking_at_once_use_their_own_probe(storage_uri: str, monkeypatch):
    """A fleet starting together checks one storage at once: each host reads back its own
    probe, never another host's (one shared key failed one host of three in the lab)."""
    storage = open_storage(storage_uri)
    written = []
    real_put = type(storage).put_bytes

    def put_then_other_host(self, key, data):
        real_put(self, key, data)
        written.append(key)
        if len(written) == 1:  # another host's check lands between this write and read
            monkeypatch.setattr(socket, "gethostname", lambda: "gpu-lab-02")
            self.check()
            monkeypatch.setattr(socket, "gethostname", lambda: "gpu-lab-01")

    monkeypatch.setattr(socket, "gethostname", lambda: "gpu-lab-01")
    monkeypatch.setattr(type(storage), "put_bytes", put_then_other_host)
    storage.check()
    assert written == [".rlops-check/gpu-lab-01", ".rlops-check/gpu-lab-02"]


@pytest.mark.parametrize("hostname,key", [
    ("gpu-lab-01", ".rlops-check/gpu-lab-01"),
    ("ip-10-0-0-5.ec2.internal", ".rlops-check/ip-10-0-0-5.ec2.internal"),
    ("weird host/name", ".rlops-check/weird-host-name"),
    ("..", ".rlops-check/host"),
])
def test_probe_key(hostname, key):
    assert probe_key(hostname) == key


@pytest.mark.parametrize("bucket_fixture", ["s3_bucket", "localbucket_bucket"])
def test_large_files_go_multipart(request, bucket_fixture: str, tmp_path: Path):
    uri = request.getfixturevalue(bucket_fixture)
    _scheme, bucket, prefix = parse_uri(uri)
    storage = S3Storage(uri, bucket, prefix, multipart_threshold=5 * 1024 * 1024)
    parts = []
    storage._client.meta.events.register(
        "before-call.s3.UploadPart", lambda **kwargs: parts.append(kwargs["params"]))
    small, big = tmp_path / "small.bin", tmp_path / "big.bin"
    small.write_bytes(os.urandom(1024 * 1024))
    storage.put_file(small, "s/small.bin")
    assert parts == []
    big.write_bytes(os.urandom(11 * 1024 * 1024))
    storage.put_file(big, "s/big.bin")
    assert len(parts) == 2  # 8 MiB parts (boto3's default chunk size)
    storage.get_file("s/big.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()


@pytest.mark.parametrize(
    "uri, message",
    [
        ("ftp://x", "unsupported storage URI 'ftp://x': use file:///path, s3://bucket/prefix "
                    "or az://container/prefix"),
        ("/plain/path", "storage URI '/plain/path' is not a URI"),
        ("file://relative/path", "a file:// path must be absolute (file:///abs/path)"),
        ("s3:///prefix", "has no bucket"),
        ("s3://Bad_Bucket/p", "'Bad_Bucket' is not a valid S3 bucket name"),
        ("az://Container/prefix", "storage URI 'az://Container/prefix': 'Container' is not a "
                                  "valid Azure Blob container name"),
    ],
)
def test_bad_uris(uri: str, message: str):
    with pytest.raises(StorageError) as err:
        open_storage(uri)
    assert message in str(err.value)


def test_parse_uri():
    assert parse_uri("file:///data/storage/") == ("file", "/data/storage", "")
    assert parse_uri("s3://bucket/a/b/") == ("s3", "bucket", "a/b")
    assert parse_uri("s3://bucket") == ("s3", "bucket", "")
    assert parse_uri("az://container/a/b/") == ("az", "container", "a/b")


def test_s3_without_prefix_uses_bucket_root(s3_bucket: str):
    bucket = parse_uri(s3_bucket)[1]
    storage = open_storage(f"s3://{bucket}")
    storage.put_bytes("s/a", b"x")
    assert storage.list_dirs() == ["s"]
    assert open_storage(s3_bucket).list_keys() == []


def test_file_check_reports_a_path_that_cannot_be_created(tmp_path: Path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StorageError, match="cannot create"):
        open_storage(f"file://{tmp_path}/afile/storage").check()


def test_check_unreachable_endpoint_names_url_and_fails_fast(monkeypatch):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    set_aws_env(monkeypatch, endpoint)
    started = time.monotonic()
    with pytest.raises(StorageError) as err:
        open_storage("s3://bucket/prefix").check()
    assert time.monotonic() - started < 12
    assert f"cannot reach the S3 endpoint {endpoint}" in str(err.value)


def test_check_endpoint_that_never_answers_times_out_clearly(monkeypatch):
    """An endpoint that accepts connections and never answers (a hung proxy, a stopped
    server's port forwarded): a timeout message within ATTEMPTS x RLOPS_S3_READ_TIMEOUT."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts; nobody ever reads or answers
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        set_aws_env(monkeypatch, endpoint)
        monkeypatch.setenv("RLOPS_S3_READ_TIMEOUT", "1")
        started = time.monotonic()
        with pytest.raises(StorageError) as err:
            open_storage("s3://bucket/prefix").check()
        took = time.monotonic() - started
    assert took < 2 * 1 + 3, took  # two attempts of 1 s, the backoff between them
    assert str(err.value) == (
        f"storage s3://bucket/prefix: listing s3://bucket/prefix/ failed: the S3 endpoint "
        f"{endpoint} accepted the connection but sent no answer within 1 s (2 attempts)")


def test_check_missing_bucket(s3_endpoint: str, monkeypatch):
    set_aws_env(monkeypatch, s3_endpoint)
    with pytest.raises(StorageError) as err:
        open_storage("s3://no-such-bucket/prefix").check()
    assert f"bucket 'no-such-bucket' does not exist at {s3_endpoint}" in str(err.value)


def test_check_without_credentials(s3_endpoint: str, monkeypatch):
    set_aws_env(monkeypatch, s3_endpoint)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageError, match="no usable AWS credentials"):
        open_storage("s3://bucket/prefix").check()


def test_check_accepts_valid_credentials(s3_auth, monkeypatch):
    set_aws_env(monkeypatch, s3_auth.endpoint, *s3_auth.writer)
    open_storage(f"s3://{s3_auth.bucket}/prefix").check()


@pytest.mark.parametrize("which", ["unknown key", "wrong secret"])
def test_check_rejected_credentials(s3_auth, monkeypatch, which: str):
    key, secret = ("AKIAUNKNOWN000000000", "x") if which == "unknown key" else (
        s3_auth.writer[0], "wrong-secret")
    set_aws_env(monkeypatch, s3_auth.endpoint, key, secret)
    with pytest.raises(StorageError) as err:
        open_storage(f"s3://{s3_auth.bucket}/prefix").check()
    assert f"credentials rejected by {s3_auth.endpoint}" in str(err.value)


# What each request of the check needs; the message names the one the server denied.
_PERMISSION_OF = {"listing": "s3:ListBucket", "writing": "s3:PutObject", "reading": "s3:GetObject"}
_DENIED = re.compile(
    r"^storage (?P<uri>\S+): (?P<doing>listing|writing|reading) (?P<what>\S+) failed: "
    r"(no write permission|access denied) \(AccessDenied\): "
    r"the credentials lack (?P<permission>s3:\w+) on bucket '(?P<bucket>[^']+)'$"
)


def test_check_without_write_permission(s3_auth, monkeypatch):
    """A read-only credential (s3:GetObject + s3:ListBucket) is refused by the check that
    runs before training, whichever request the server denies first: moto 5.2.5 let the
    listing through and denied the write probe, 5.2.6 denies the listing."""
    set_aws_env(monkeypatch, s3_auth.endpoint, *s3_auth.reader)
    uri = f"s3://{s3_auth.bucket}/prefix"
    with pytest.raises(StorageError) as err:
        open_storage(uri).check()
    found = _DENIED.match(str(err.value))
    assert found, str(err.value)
    assert found["uri"] == uri and found["bucket"] == s3_auth.bucket
    assert found["permission"] == _PERMISSION_OF[found["doing"]]
    if found["doing"] == "writing":
        assert found["what"] == probe_key(socket.gethostname())
    # The writer's credential passes the same check on the same server.
    set_aws_env(monkeypatch, s3_auth.endpoint, *s3_auth.writer)
    open_storage(uri).check()


@pytest.mark.parametrize("denied, doing, permission", [
    ("list_objects_v2", "listing s3://bucket/prefix/", "s3:ListBucket"),
    ("put_object", "writing .rlops-check/", "s3:PutObject"),
    ("get_object", "reading .rlops-check/", "s3:GetObject"),
])
def test_check_names_the_permission_of_the_denied_request(monkeypatch, denied, doing, permission):
    """Each request of the check, denied in turn (botocore's Stubber plays the server)."""
    monkeypatch.setattr(socket, "gethostname", lambda: "gpu-lab-01")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE000000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    storage = S3Storage("s3://bucket/prefix", "bucket", "prefix")
    calls = ["list_objects_v2", "put_object", "get_object"]
    with Stubber(storage._client) as stub:
        for call in calls[: calls.index(denied)]:
            stub.add_response(call, {})
        stub.add_client_error(denied, service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(StorageError) as err:
            storage.check()
    found = _DENIED.match(str(err.value))
    assert found, str(err.value)
    assert str(err.value).startswith(f"storage s3://bucket/prefix: {doing}")
    assert found["permission"] == permission and found["bucket"] == "bucket"
