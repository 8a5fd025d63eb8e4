"""rlops.fleet.gpu_host's preflight decision (plugins/filter/gpu_host_problems.py): what is
wrong with the inputs and with what gpu_host_detect found against them, with the role's
defaults on a host whose driver works as the good case."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.rlops.fleet.plugins.filter.gpu_host_problems import gpu_host_problems

ROLE = Path(__file__).resolve().parents[4] / "roles" / "gpu_host"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
CHECKED = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__gpu_host_checked"]
GPU = {"address": "0000:53:00.0"}
KEEP = {"action": "keep", "branch": "570", "reason": "driver 570.133.20 works", "error": ""}
INSTALL = {"action": "install", "branch": "535", "reason": "no NVIDIA driver (no nvidia-smi)",
           "error": ""}


def found(gpus=(GPU,), plan=None, torch="ok", debian=None):
    return {"gpus": list(gpus), "scanned": 41, "driver_plan": plan or KEEP,
            "torch_check": {"status": torch, "message": "torch 2.13.0 needs CUDA 13.0"},
            "debian_sources": debian or {}}


def problems(detected=None, recipe="debian", **changes):
    settings = {name: DEFAULTS[name] for name in CHECKED}
    settings.update({"gpu_host_" + name: value for name, value in changes.items()})
    return gpu_host_problems(found() if detected is None else detected, settings, "gpu-1",
                             "Debian 12", recipe, "bookworm")


def test_the_defaults_have_no_problem():
    assert problems() == []
    assert problems(found(gpus=())) == []
    assert problems(driver_branch="580", debian_mirror="http://m/debian") == []
    # Debian's driver path with every component there, or a mirror to take them from
    assert problems(found(plan=INSTALL, debian={"missing": [], "mirror": ""})) == []
    mirror = {"missing": ["contrib"], "mirror": "http://m"}
    assert problems(found(plan=INSTALL, debian=mirror)) == []


@pytest.mark.parametrize(("changes", "message"), [
    ({"driver_branch": "latest"}, "gpu_host_driver_branch 'latest' must be a driver branch such"
     " as '580' (pinned; no 'latest'), or empty to keep a working driver"),
    ({"driver_branch": "57"}, "gpu_host_driver_branch '57' must be"),
    ({"driver_branch": None}, "gpu_host_driver_branch 'None' must be"),
    ({"debian_mirror": "ftp://m/debian"},
     "gpu_host_debian_mirror (ftp://m/debian) must be an http(s) URL"),
])
def test_each_input_problem_says_which_setting_and_why(changes, message):
    assert len(problems(**changes)) == 1
    assert problems(**changes)[0].startswith(message)


def test_a_required_gpu_that_is_not_there():
    assert problems(found(gpus=()), required=True) == [
        "gpu_host_required is true but gpu-1 has no NVIDIA GPU: none of its 41 PCI devices is a"
        " display controller of vendor 0x10de (/sys/bus/pci/devices/*/vendor, class). Run it on"
        " a GPU instance, or set gpu_host_required false to use the host in CPU mode."]
    assert problems(found(gpus=()), required="no") == []


def test_a_driver_to_install_where_there_is_no_recipe():
    message = ("gpu_host has no driver recipe for Debian 12 (Debian 12, Ubuntu 22.04/24.04,"
               " RHEL/Rocky/Alma 8 and 9 are supported), and gpu-1 has no working driver (no"
               " NVIDIA driver (no nvidia-smi)): install one (gpu_host keeps a working driver),"
               " or set gpu_host_install_driver false to detect only")
    assert problems(found(plan=INSTALL), recipe="unsupported") == [message]
    assert problems(found(plan=INSTALL), recipe="unsupported", install_driver=False) == []
    assert problems(found(), recipe="unsupported") == []  # a working driver is kept


def test_debian_components_without_a_mirror_to_take_them_from():
    lacking = found(plan=INSTALL, debian={"missing": ["contrib", "non-free"], "mirror": ""})
    assert problems(lacking) == ["no apt source for bookworm main on gpu-1: set"
                                 " gpu_host_debian_mirror"]
    assert problems(lacking, recipe="none") == []  # Ubuntu: restricted has the driver


def test_a_plan_that_cannot_be_carried_out_unless_nothing_is_installed():
    plan = dict(INSTALL, error="gpu_host_driver_branch is 580 but packages have only branch 535")
    detected = found(plan=plan, debian={"missing": [], "mirror": ""})
    assert problems(detected) == [
        "gpu-1: gpu_host_driver_branch is 580 but packages have only branch 535"]
    assert problems(detected, install_driver="false") == []


def test_a_torch_build_the_driver_cannot_run_and_every_problem_at_once():
    assert problems(found(torch="incompatible")) == [
        "gpu-1: torch 2.13.0 needs CUDA 13.0 (gpu_host_check_torch false skips this check)"]
    assert problems(found(torch="minor")) == []
    assert len(problems(found(gpus=(), torch="incompatible"), required=True,
                        driver_branch="x", debian_mirror="m")) == 4
