"""rlops.fleet.nvidia_docker's decisions (plugins/filter/nvidia_docker.py): the preflight's
problems of the inputs, with the role's defaults as the good case, and what the verification
found wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.rlops.fleet.plugins.filter.nvidia_docker import (
    nvidia_docker_problems,
    nvidia_docker_verify_problems,
)

REPO = Path(__file__).resolve().parents[4]
ROLE = REPO / "roles" / "nvidia_docker"
ROLE_VARS = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
GOOD = {name: DEFAULTS[name] for name in ROLE_VARS["__nvidia_docker_checked"]}


def problems(distribution="Debian", packages=("docker.io",), **changes):
    settings = {**GOOD, **{"nvidia_docker_" + name: value for name, value in changes.items()}}
    return nvidia_docker_problems(settings, distribution, list(packages))


def test_the_defaults_have_no_problem():
    assert problems() == []
    assert problems("Rocky", (), docker_source="docker") == []
    assert problems("Rocky", (), engine="podman") == []
    assert problems(toolkit_version="", toolkit_repo_url="") == []
    assert problems(toolkit_version="1.17.8-1ubuntu0~22.04",
                    toolkit_repo_url="http://mirror/x") == []


@pytest.mark.parametrize(("distribution", "packages", "changes", "message"), [
    ("RedHat", (), {}, "RedHat has no Docker package of its own: set nvidia_docker_docker_source"
     " docker (Docker's repository) or nvidia_docker_engine podman"),
    ("Debian", ("docker.io",), {"toolkit_version": "latest"},
     "nvidia_docker_toolkit_version 'latest' is not a package version (1.17.8-1)"),
    ("Debian", ("docker.io",), {"toolkit_repo_url": "nvidia.github.io/libnvidia-container"},
     "nvidia_docker_toolkit_repo_url (nvidia.github.io/libnvidia-container) must be an http(s)"
     " URL or empty"),
    ("Debian", ("docker.io",), {"cdi_spec": "cdi/nvidia.yaml"},
     "nvidia_docker_cdi_spec (cdi/nvidia.yaml) must be an absolute path"),
])
def test_each_problem_is_named(distribution, packages, changes, message):
    assert problems(distribution, packages, **changes) == [message]


def test_every_problem_is_said():
    found = problems("RedHat", (), toolkit_version="x", cdi_spec="")
    assert [m.split(" ")[0] for m in found] == [
        "RedHat", "nvidia_docker_toolkit_version", "nvidia_docker_cdi_spec"]


SMI_TWO = {"rc": 0, "stdout": "GPU 0: Tesla T4 (UUID: GPU-1)\nGPU 1: Tesla T4 (UUID: GPU-2)",
           "stderr": ""}


def verify(runtimes=None, smi=None, gpus=2):
    return nvidia_docker_verify_problems(runtimes, smi, gpus, "lab-1", "/etc/docker/daemon.json")


def test_verify_passes_on_what_a_good_host_answers():
    assert verify() == []
    assert verify('{"nvidia":{"path":"nvidia-container-runtime"},"runc":{"path":"runc"}}') == []
    assert verify(smi=SMI_TWO) == []
    assert verify(smi=SMI_TWO, gpus="2") == []


def test_verify_says_what_is_wrong():
    assert verify('{"runc":{"path":"runc"}}') == [
        'Docker on lab-1 does not list the nvidia runtime ({"runc":{"path":"runc"}}): see'
        " /etc/docker/daemon.json"]
    assert verify("not json") == [
        "Docker on lab-1 does not list the nvidia runtime (not json): see /etc/docker/daemon.json"]
    assert verify(smi=SMI_TWO, gpus=4) == [
        "a container on lab-1 sees 2 of 4 GPUs: " + SMI_TWO["stdout"]]
    failed = {"rc": 125, "stdout": "", "stderr": "could not select device driver"}
    assert verify(smi=failed) == [
        "a container on lab-1 sees 0 of 2 GPUs: could not select device driver"]
    assert len(verify("{}", failed)) == 2
