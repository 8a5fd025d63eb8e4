"""Lab hosts for the end-to-end tests over SSH: a lab of their own, always taken down."""

from __future__ import annotations

import os
import shutil

import pytest
from lab_hosts import LAB_VARS, Lab, LabPlaybooks, build_wheelhouse, copy_runtime

HOSTS = 3
BUCKET = "rl-lab"


@pytest.fixture(scope="module")
def lab():
    """Three trainers and an S3 server, in containers; down even when the test fails."""
    missing = [tool for tool in ("podman", "debootstrap") if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:  # `make lab-e2e` runs `tests/lab/lab.sh setup` first
        pytest.skip("lab hosts need root, podman and debootstrap: tests/lab/lab.sh setup")
    # The trainers boot from the trainer image: the venv of LAB_VARS is in it.
    lab = Lab(HOSTS, services=True, trainer=True)
    with lab:
        yield lab
    assert not lab.left, f"left behind by the lab: {lab.left}"


@pytest.fixture
def lab_playbooks(lab, tmp_path) -> LabPlaybooks:
    credentials = lab.s3_bucket(BUCKET)
    return LabPlaybooks(lab, tmp_path / "results", {
        **LAB_VARS,
        "trainer_wheelhouse": str(build_wheelhouse()),
        "trainer_runtime_source_path": str(copy_runtime(tmp_path / "runtime")),
        "rlops_storage_uri": f"s3://{BUCKET}/runs",
        "rlops_storage_credentials": credentials,
    }, bucket=BUCKET)
