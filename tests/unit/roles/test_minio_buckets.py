"""roles/minio_proxy/files/rlops-minio-buckets: SigV4 signing, and buckets against a moto server."""

from __future__ import annotations

import datetime
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles/minio_proxy/files/rlops-minio-buckets"
_LOADER = importlib.machinery.SourceFileLoader("rlops_minio_buckets", str(SCRIPT))
_SPEC = importlib.util.spec_from_loader(_LOADER.name, _LOADER)
buckets = importlib.util.module_from_spec(_SPEC)
_LOADER.exec_module(buckets)


def test_signature_matches_the_aws_documented_example():
    # "GET Object" example of the S3 SigV4 documentation (header-based authentication).
    now = datetime.datetime(2013, 5, 24, tzinfo=datetime.timezone.utc)
    headers = buckets.signed_headers(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        "us-east-1",
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        now,
        headers={"Range": "bytes=0-9"},
    )
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
    assert headers["x-amz-date"] == "20130524T000000Z"
    assert "host" not in headers  # urllib sets Host itself


def run(endpoint: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {"PATH": os.environ["PATH"], **(env or {})}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--endpoint", endpoint, *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )


CREDS = {"AWS_ACCESS_KEY_ID": "rlops-lab", "AWS_SECRET_ACCESS_KEY": "lab-only-not-a-secret"}


@pytest.fixture(scope="module")
def s3_endpoint():
    server_module = pytest.importorskip("moto.server")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_creates_missing_buckets_then_finds_them(s3_endpoint):
    first = run(s3_endpoint, "ckpt-a", "ckpt-b", env=CREDS)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"created": ["ckpt-a", "ckpt-b"], "existing": []}
    second = run(s3_endpoint, "ckpt-a", "ckpt-b", env=CREDS)
    assert json.loads(second.stdout) == {"created": [], "existing": ["ckpt-a", "ckpt-b"]}


def test_check_reports_without_creating(s3_endpoint):
    checked = run(s3_endpoint, "--check", "ckpt-check", env=CREDS)
    assert json.loads(checked.stdout) == {"created": ["ckpt-check"], "existing": []}
    again = run(s3_endpoint, "--check", "ckpt-check", env=CREDS)
    assert json.loads(again.stdout)["created"] == ["ckpt-check"]


def test_refuses_to_run_without_credentials(s3_endpoint):
    result = run(s3_endpoint, "ckpt-a")
    assert result.returncode == 1
    assert "AWS_ACCESS_KEY_ID is not set" in result.stderr
