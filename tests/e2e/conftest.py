"""The local target: the real playbooks, as a user runs them, against this machine
(the playbooks' localhost), through the one harness (tests/harness)."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import Playbooks
from lab_hosts import copy_runtime
from servers import moto_server

REPO = Path(__file__).resolve().parents[2]
# Trainer venvs are keyed by their requirements, so every e2e run shares one.
VENV_CACHE = REPO / ".venv" / "trainer-venvs"


@pytest.fixture(scope="session")
def runtime_source(tmp_path_factory) -> Path:
    """The runtime as it was when the tests started: several people edit one tree, and the
    trainer role reinstalls a runtime that changed (a re-run would not be idempotent)."""
    return copy_runtime(tmp_path_factory.mktemp("runtime") / "runtime")


@pytest.fixture
def playbooks(tmp_path, runtime_source) -> Playbooks:
    data_root = tmp_path / "data"
    return Playbooks(results=tmp_path / "results", data_root=data_root, timeout=900, extra={
        "rlops_data_root": str(data_root),
        "trainer_venv_root": str(VENV_CACHE),
        "trainer_runtime_source_path": str(runtime_source)})


@pytest.fixture(scope="session")
def moto_endpoint():
    with moto_server() as url:
        yield url
