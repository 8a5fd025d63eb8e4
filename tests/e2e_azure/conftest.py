"""Fixtures of the Azure path end to end (azlab.py explains the stand-ins)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from azlab import ArmFake, AzureLab, azure_venv_missing, lab_missing, log


@pytest.fixture
def arm(tmp_path):
    """A fresh fake Resource Manager for each test (its store and its record of calls)."""
    if azure_venv_missing():
        pytest.skip(azure_venv_missing())
    fake = ArmFake(tmp_path)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def lab():
    if lab_missing():
        pytest.skip(lab_missing())
    state_dir = Path(tempfile.mkdtemp(prefix="rlops-azure-e2e."))
    lab = AzureLab(state_dir, f"rlops-az-{os.getpid()}")
    try:
        start = time.monotonic()
        lab.up()
        log(f"lab: 1 VM host up in {time.monotonic() - start:.0f} s")
        yield lab
    finally:
        lab.down()
        shutil.rmtree(state_dir, ignore_errors=True)
