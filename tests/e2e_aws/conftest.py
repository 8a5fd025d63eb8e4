"""Fixtures of the AWS path end to end (awslab.py explains the stand-ins)."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import boto3
import pytest
from awslab import BUCKET, CREDENTIALS, REGION, S3_PORT, SPOT_PRICE, Lab, log, run
from botocore.config import Config
from harness import wait_until
from servers import moto_server


@pytest.fixture(scope="session")
def moto_url():
    """moto, answering spot price queries with SPOT_PRICE (priced_moto.py says why)."""
    with moto_server(server=[str(Path(__file__).with_name("priced_moto.py")), SPOT_PRICE]) as url:
        yield url


@pytest.fixture(scope="session")
def ec2(moto_url):
    return boto3.client("ec2", endpoint_url=moto_url, region_name=REGION, **{
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"]})


@pytest.fixture(scope="session")
def ami(ec2):
    return ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]


@pytest.fixture
def lab():
    if os.geteuid() != 0 or shutil.which("podman") is None:
        pytest.skip("lab hosts need root and podman (tests/lab/lab.sh setup)")
    state_dir = Path(tempfile.mkdtemp(prefix="rlops-aws-e2e."))
    lab = Lab(state_dir, f"rlops-aws-{os.getpid()}")
    try:
        start = time.monotonic()
        lab.up()
        log(f"lab: 2 instance hosts + 1 storage host up in {time.monotonic() - start:.0f} s")
        yield lab
    finally:
        lab.down()
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def plain_lab():
    """3 lab hosts of the plain image (no trainer venv, not privileged): instances that
    are only reached, never trained on (test_aws_rollout_workers.py)."""
    if os.geteuid() != 0 or shutil.which("podman") is None:
        pytest.skip("lab hosts need root and podman (tests/lab/lab.sh setup)")
    state_dir = Path(tempfile.mkdtemp(prefix="rlops-aws-rollout."))
    lab = Lab(state_dir, f"rlops-aws-rollout-{os.getpid()}")
    try:
        start = time.monotonic()
        lab.lab("up", "3", "--name", lab.prefix, "--timeout", "300")
        log(f"lab: 3 plain instance hosts up in {time.monotonic() - start:.0f} s")
        yield lab
    finally:
        lab.down()
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def storage(lab):
    """S3 on the storage lab host: (endpoint URL, boto3 client)."""
    import localbucket  # noqa: F401 - stdlib only: its one file is all the host needs

    host = lab.storage_host
    lab.copy_in(host, Path(sys.modules["localbucket"].__file__), "/usr/local/lib/localbucket.py")
    lab.exec(host, "mkdir -p /srv/s3")
    lab.exec_detached(host, "python3", "/usr/local/lib/localbucket.py", "--host", "0.0.0.0",
                      "--port", str(S3_PORT), "/srv/s3")
    url = f"http://{lab.address(host)}:{S3_PORT}"
    wait_until(lambda: _answers(lab.address(host), S3_PORT), 30, "serving S3", 0.3)
    s3 = boto3.client("s3", endpoint_url=url, region_name=REGION,
                      config=Config(s3={"addressing_style": "path"}),
                      **{"aws_access_key_id": "lab", "aws_secret_access_key": "lab"})
    s3.create_bucket(Bucket=BUCKET)
    return url, s3


def _answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture
def wheelhouse(tmp_path):
    """The controller's CPU torch wheel (never an index: no CUDA build is downloaded)."""
    dest = tmp_path / "wheelhouse"
    run([sys.executable, "-m", "pip", "download", "--no-index", "--no-deps",
         "--only-binary=:all:", "--dest", str(dest), "torch==2.13.0"])
    assert any(dest.glob("torch-2.13.0+cpu-*.whl")), list(dest.iterdir())
    return dest
