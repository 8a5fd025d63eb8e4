"""Three lab hosts of the Ray image for the Ray backend's end-to-end test: a lab of its own,
always taken down."""

from __future__ import annotations

import os
import shutil

import pytest
from lab_hosts import LAB_VARS, Lab, LabPlaybooks, copy_runtime

HOSTS = 3


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
