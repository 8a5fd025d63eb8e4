"""Three lab hosts of the Ray image for the Ray backend's end-to-end test: a lab of its own,
always taken down; the role rlops.fleet.ray_cluster's own checks run on the same hosts."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from lab_hosts import LAB_VARS, REPO, Lab, LabPlaybooks, copy_runtime

HOSTS = 3
# The role's own test, in phases (bad_input start restarts idempotent check_mode stop stopped
# restart one_host); RAY_IT_LAB runs them on the hosts of a lab already up.
ROLE_CHECKS = REPO / "tests" / "integration" / "targets" / "ray_cluster" / "runme.sh"


@pytest.fixture(scope="module")
def lab():
    """A head and two rollout hosts, booted from the lab's Ray image (the Ray set's venv in
    it); down even when the test fails."""
    missing = [tool for tool in ("podman", "debootstrap") if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:  # `make lab-ray` runs `tests/lab/lab.sh setup` first
        pytest.skip("lab hosts need root, podman and debootstrap: tests/lab/lab.sh setup")
    lab = Lab(HOSTS, prefix=f"rlops-ray-{os.getpid()}", ray=True)
    with lab:
        yield lab
    assert not lab.left, f"left behind by the lab: {lab.left}"


class RayPlaybooks(LabPlaybooks):
    """The lab's playbooks with the lab's Ray inventory (its group `ray_head`)."""

    def __init__(self, lab: Lab, *args, **kwargs) -> None:
        super().__init__(lab, *args, **kwargs)
        self.logs = self.results.parent / "logs"
        self.hosts_moved()

    def hosts_moved(self) -> None:
        """Write the inventory again after `lab.sh up`: a restarted host's SSH port changed."""
        self.inventory = self.lab.ray_inventory()


@pytest.fixture
def ray_playbooks(lab, tmp_path) -> RayPlaybooks:
    """The playbooks with the Ray backend on the lab: the settings of the image's venv
    (LAB_VARS and rlops_backend ray), a copy of the runtime, and pip never asking an index
    (a venv that does not match the image fails at once instead of downloading on a host).
    Each run's output is kept in the test's logs/ folder."""
    return RayPlaybooks(lab, tmp_path / "results", {
        **LAB_VARS,
        "rlops_backend": "ray",
        "trainer_pip_extra_args": "--no-index",
        "trainer_runtime_source_path": str(copy_runtime(tmp_path / "runtime")),
    })


class RoleChecks:
    """Phases of the role's own test (runme.sh) on the lab's hosts, each run's output kept in
    the test's logs/ folder. `start` runs them in the background while the test waits on the
    session; `wait` fails the test when a check failed; `run` is both."""

    def __init__(self, lab: Lab, logs: Path) -> None:
        self.lab, self.logs = lab, logs
        self.timings: dict[str, int] = {}
        self.running: list[tuple[tuple[str, ...], subprocess.Popen, Path, float]] = []

    def start(self, *phases: str) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"role-{'-'.join(phases)}.log"
        with log.open("w") as out:
            # Its own process group, so that a failed test stops it with its plays.
            proc = subprocess.Popen(  # pylint: disable=consider-using-with  # wait() or stop()
                [str(ROLE_CHECKS), *phases], stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "RAY_IT_LAB": str(self.lab.state_dir)},
                start_new_session=True)
        self.running.append((phases, proc, log, time.monotonic()))

    def wait(self) -> None:
        while self.running:
            phases, proc, log, started = self.running[0]
            code = proc.wait(timeout=900)
            self.running.pop(0)
            self.timings[" ".join(phases)] = round(time.monotonic() - started)
            out = log.read_text(errors="replace")
            print(out)
            assert code == 0, f"the role's checks {phases} failed ({log}):\n{out[-6000:]}"

    def run(self, *phases: str) -> None:
        self.start(*phases)
        self.wait()

    def stop(self) -> None:
        """Stop what still runs (the test failed meanwhile), before the lab goes down."""
        for _phases, proc, _log, _started in self.running:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=30)
        self.running.clear()


@pytest.fixture
def role(lab, ray_playbooks):
    """The role's own checks on the lab's hosts; stopped when the test ends before them."""
    checks = RoleChecks(lab, ray_playbooks.logs)
    try:
        yield checks
    finally:
        checks.stop()
