"""Run the real playbooks, as a user does, against this machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lab_hosts import copy_runtime
from servers import moto_server

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
# Trainer venvs are keyed by their requirements, so every e2e run shares one.
VENV_CACHE = REPO / ".venv" / "trainer-venvs"


class Playbooks:
    def __init__(self, data_root: Path, results: Path, extra: dict):
        self.data_root = data_root
        self.results = results
        self.extra = extra

    def run(self, name: str, *args: str, ok: bool = True, **extra) -> subprocess.CompletedProcess:
        variables = {
            "rlops_data_root": str(self.data_root),
            "rlops_results_dir": str(self.results),
            "trainer_venv_root": str(VENV_CACHE),
            **self.extra,
            **extra,
        }
        cmd = [str(PLAYBOOK), f"playbooks/{name}.yml", "-e", json.dumps(variables), *args]
        env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
               "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
               # One line per message, so that tests can search the output.
               "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=900, check=False)
        if ok and proc.returncode != 0:
            pytest.fail(f"{name} failed ({proc.returncode}):\n"
                        f"{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}")
        if not ok and proc.returncode == 0:
            pytest.fail(f"{name} should have failed:\n{proc.stdout[-4000:]}")
        return proc

    def session_dir(self, session: str) -> Path:
        return self.data_root / "sessions" / session

    def status(self, session: str) -> dict:
        try:
            return json.loads((self.session_dir(session) / "status.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def wait(self, session: str, predicate, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status(session)
            if predicate(status):
                return status
            time.sleep(0.5)
        log = self.session_dir(session) / "logs" / "job.log"
        tail = log.read_text()[-3000:] if log.exists() else "(no job log)"
        pytest.fail(f"session {session}: not {what} within {timeout}s; status {status}\n{tail}")

    @staticmethod
    def session_from(output: str) -> str:
        match = re.search(r"session ([a-z0-9][a-z0-9-]*) on ", output)
        assert match, output[-3000:]
        return match.group(1)


@pytest.fixture(scope="session")
def runtime_source(tmp_path_factory) -> Path:
    """The runtime as it was when the tests started: several people edit one tree, and the
    trainer role reinstalls a runtime that changed (a re-run would not be idempotent)."""
    return copy_runtime(tmp_path_factory.mktemp("runtime") / "runtime")


@pytest.fixture
def playbooks(tmp_path, runtime_source) -> Playbooks:
    return Playbooks(tmp_path / "data", tmp_path / "results",
                     {"trainer_runtime_source_path": str(runtime_source)})


@pytest.fixture(scope="session")
def moto_endpoint():
    with moto_server() as url:
        yield url
