"""plugins/module_utils/cuda_compat.py: which CUDA a torch build needs, whether a driver runs
it, and what gpu_host does with the driver it finds. No GPU, no mocks: values in, values out.

The driver versions and CUDA versions are those of the recorded nvidia-smi logs in
tests/unit/plugins/modules/fixtures/nvidia_smi/.
"""

from __future__ import annotations

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils import cuda_compat as cc

INDEX = "https://download.pytorch.org/whl/"


def running(version: str, cuda: str = "") -> cc.Driver:
    return cc.Driver(version, cuda, f"the running driver {version}", False)


def branch(number: str) -> cc.Driver:
    return cc.Driver(number, "", f"driver branch {number} (gpu_host installs it)", True)


# --------------------------------------------------------------------------- versions


@pytest.mark.parametrize("version,key", [
    ("570.133.20", (570, 133, 20)), ("580", (580,)), ("12.8", (12, 8)), ("", ()),
    ("2.13.*", (2, 13)), ("2.14.0.dev20260101", (2, 14, 0)), ("N/A", ()),
])
def test_version_key(version, key):
    assert cc.version_key(version) == key


@pytest.mark.parametrize("label,cuda", [
    ("cu118", "11.8"), ("cu128", "12.8"), ("cu130", "13.0"), ("cu92", "9.2"), ("cu102", "10.2"),
    ("cpu", ""), ("rocm6.2", ""), ("xpu", ""), ("", ""),
])
def test_cuda_of_label(label, cuda):
    assert cc.cuda_of_label(label) == cuda


def test_local_versions_order_as_pep_440_says():
    ordered = ["", "cpu", "cu118", "cu128", "cu130"]
    assert sorted(reversed(ordered), key=cc.local_key) == ordered
    assert cc.local_key("1") > cc.local_key("abc")  # numbers above words
    assert cc.local_key("cu128.1") > cc.local_key("cu128")  # longer above its prefix


def test_every_toolkit_minimum_is_above_its_family_minimum():
    for cuda, minimum in cc.CUDA_MIN_DRIVER.items():
        family = cc.MINOR_COMPAT_MIN_DRIVER.get(cc.version_key(cuda)[0])
        if family:
            assert cc.version_key(minimum)[:1] >= cc.version_key(family)[:1], cuda


# --------------------------------------------------------------------------- torch build


@pytest.mark.parametrize("requirement,version,label,cuda", [
    # PyPI's default Linux builds, as each release's wheel metadata pins its CUDA runtime
    ("torch==2.13.0", "2.13.0", "", "13.0"),
    ("torch==2.11.0", "2.11.0", "", "13.0"),
    ("torch==2.10.0", "2.10.0", "", "12.8"),
    ("torch==2.8.0", "2.8.0", "", "12.8"),
    ("torch==2.7.1", "2.7.1", "", "12.6"),
    ("torch==2.4.1", "2.4.1", "", "12.1"),
    ("torch == 2.13.*", "2.13.*", "", "13.0"),
    ("torch~=2.13.0", "2.13.*", "", "13.0"),
    ("torch[opt-einsum]==2.13.0 ; platform_system == 'Linux'", "2.13.0", "", "13.0"),
    # local versions name their build
    ("torch==2.13.0+cu128", "2.13.0", "cu128", "12.8"),
    ("torch==2.5.1+cu118", "2.5.1", "cu118", "11.8"),
    ("torch==2.13.0+cpu", "2.13.0", "cpu", ""),
    ("torch==2.5.1+rocm6.2", "2.5.1", "rocm6.2", ""),
    # a wheel, by URL or path
    ("torch @ https://download.pytorch.org/whl/cu121/torch-2.5.1%2Bcu121-cp311-cp311-"
     "linux_x86_64.whl#sha256=abc", "2.5.1", "cu121", "12.1"),
    ("/srv/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl", "2.13.0", "cpu", ""),
    ("torch @ file:///srv/torch-2.9.0-cp311-cp311-manylinux_2_28_x86_64.whl", "2.9.0", "", "12.8"),
])
def test_torch_build(requirement, version, label, cuda):
    build = cc.torch_build(requirement)
    assert (build.version, build.label, build.cuda) == (version, label, cuda)


@pytest.mark.parametrize("requirement", ["torch", "torch>=2.5", "torch~=2.13", "torch!=2.5.0"])
def test_unpinned_torch_is_no_one_build(requirement):
    build = cc.torch_build(requirement)
    assert (build.version, build.cuda) == ("", "")
    assert "not pinned to one release" in build.origin


def test_a_release_newer_than_the_table_is_unknown_not_guessed():
    build = cc.torch_build("torch==2.14.0")
    assert build.cuda == ""
    assert "does not know" in build.origin


def test_no_requirement_is_no_torch():
    assert cc.torch_build("") is None
    assert cc.torch_build("  ") is None


def test_a_wheelhouse_wheel_of_the_pinned_version_wins_over_pypi():
    # the lab hosts: torch==2.13.0 and the CPU wheel in trainer_wheelhouse
    wheel = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    build = cc.torch_build("torch==2.13.0", wheels=[wheel])
    assert (build.label, build.cuda) == ("cpu", "")
    assert build.origin == f"wheel {wheel}"


def test_a_wheel_of_another_version_does_not_count():
    build = cc.torch_build("torch==2.13.0", wheels=["torch-2.12.0+cpu-cp311-cp311-linux.whl"])
    assert (build.label, build.cuda) == ("", "13.0")


def test_among_wheels_pip_takes_the_highest_local_version():
    wheels = ["torch-2.13.0+cpu-cp311-cp311-linux_x86_64.whl",
              "torch-2.13.0+cu128-cp311-cp311-linux_x86_64.whl",
              "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl"]
    assert cc.torch_build("torch==2.13.0", wheels=wheels).label == "cu128"


def test_a_pytorch_index_names_the_build():
    build = cc.torch_build("torch==2.13.0", indexes=["https://pypi.org/simple", INDEX + "cu126"])
    assert (build.label, build.cuda, build.origin) == ("cu126", "12.6", f"index {INDEX}cu126")
    assert cc.torch_build("torch==2.13.0", indexes=["https://pypi.org/simple"]).cuda == "13.0"


def test_the_requirements_own_local_version_wins_over_the_wheelhouse():
    build = cc.torch_build("torch==2.13.0+cu126", wheels=["torch-2.13.0+cu128-cp311-x.whl"])
    assert build.label == "cu126"


# --------------------------------------------------------------------------- driver


@pytest.mark.parametrize("driver,newest", [
    (running("580.65.06", "13.0"), "13.0"),
    (running("570.133.20"), "12.8"),  # from the table when nvidia-smi did not say
    (running("535.183.01"), "12.2"),
    (running("470.256.02"), "11.4"),
    (running("418.39"), "10.1"),
    (running("390.157"), ""),
    (branch("580"), "13.0"),
    (branch("535"), "12.2"),
])
def test_max_cuda(driver, newest):
    assert cc.max_cuda(driver) == newest


@pytest.mark.parametrize("cuda,driver,fit", [
    ("13.0", running("580.65.06", "13.0"), "full"),
    ("13.0", running("570.133.20", "12.8"), "no"),  # another CUDA major: no compatibility
    ("12.8", running("570.133.20", "12.8"), "full"),
    ("12.8", running("570.26"), "full"),  # exactly CUDA 12.8's minimum
    ("12.8", running("535.183.01", "12.2"), "minor"),
    ("12.8", running("525.60.13"), "minor"),  # exactly the 12.x family minimum
    ("12.8", running("520.61.05", "11.8"), "no"),
    ("11.8", running("470.256.02", "11.4"), "minor"),
    ("11.8", running("450.80.02"), "minor"),
    ("11.8", running("450.51.06"), "no"),  # below the 11.x family minimum
    ("10.2", running("418.39", "10.1"), "no"),  # no minor-version compatibility before 11
    ("10.2", running("440.33"), "full"),
    ("12.9", running("575.51.03"), "full"),
    ("13.0", branch("580"), "full"),
    ("13.0", branch("570"), "no"),
])
def test_runs_on(cuda, driver, fit):
    assert cc.runs_on(cuda, driver) == fit


# --------------------------------------------------------------------------- check


def test_default_torch_runs_on_the_580_driver():
    check = cc.check_torch(cc.torch_build("torch==2.13.0"), running("580.65.06", "13.0"))
    assert check.status == "ok"
    assert check.message == ("torch 2.13.0 (PyPI's default Linux build), built for CUDA 13.0, "
                             "runs on the running driver 580.65.06 (CUDA 13.0)")


def test_default_torch_on_a_570_driver_says_both_ways_out():
    """A Deep Learning AMI with driver 570 and the trainer's default torch==2.13.0."""
    check = cc.check_torch(cc.torch_build("torch==2.13.0"), running("570.133.20", "12.8"))
    assert check.status == "incompatible"
    assert (check.cuda, check.driver_cuda) == ("13.0", "12.8")
    assert check.message.startswith(
        "torch 2.13.0 (PyPI's default Linux build) is built for CUDA 13.0, which needs driver "
        ">= 580.65.06 (any CUDA 13.x build runs on >= 580); the running driver 570.133.20 "
        "supports CUDA 12.8. Change one: ")
    assert 'gpu_host_driver_branch "580"' in check.message
    assert (f'trainer_torch_requirement "torch==2.13.0+cu128" with trainer_pip_extra_index_urls '
            f'["{INDEX}cu128"], or that wheel in trainer_wheelhouse') in check.message
    # 2.13's CUDA builds are not in the table: the message says to check they exist
    assert f"check that PyTorch publishes it for torch 2.13: {INDEX}cu128/torch/" in check.message


def test_a_cuda_12_build_runs_on_535_through_minor_version_compatibility():
    check = cc.check_torch(cc.torch_build("torch==2.13.0+cu128"), running("535.183.01", "12.2"))
    assert check.status == "minor"
    assert "minor-version compatibility" in check.message
    assert "driver 570.26 or newer (branch 570) runs it fully" in check.message


def test_a_cuda_12_build_on_a_470_driver_suggests_cuda_11():
    check = cc.check_torch(cc.torch_build("torch==2.13.0+cu128"), running("470.256.02", "11.4"))
    assert check.status == "incompatible"
    assert 'gpu_host_driver_branch "570"' in check.message
    assert '"torch==2.13.0+cu118"' in check.message
    assert "any CUDA 11.x build runs on this driver" in check.message


def test_a_known_release_suggests_only_builds_pytorch_published():
    # torch 2.9 has cu126, cu128 and cu130 builds; none runs on 470: an older release does
    check = cc.check_torch(cc.torch_build("torch==2.9.0"), running("470.256.02", "11.4"))
    assert check.status == "incompatible"
    assert ("an older torch: 2.7 is the newest release with a build this driver runs "
            f"(+cu118, from {INDEX}cu118)") in check.message
    check = cc.check_torch(cc.torch_build("torch==2.9.0+cu130"), running("570.133.20", "12.8"))
    assert '"torch==2.9.0+cu128"' in check.message
    assert "check that PyTorch publishes" not in check.message


def test_a_driver_older_than_any_torch_build_gets_the_driver_fix_only():
    check = cc.check_torch(cc.torch_build("torch==2.13.0"), running("410.48", "10.0"))
    assert check.status == "incompatible"
    assert check.message.endswith('Change one: gpu_host_driver_branch "580" (gpu_host installs '
                                  "that branch; a reboot loads it)")


def test_the_branch_to_install_is_checked_before_it_is_installed():
    build = cc.torch_build("torch==2.13.0")
    assert cc.check_torch(build, branch("580")).status == "ok"
    check = cc.check_torch(build, branch("570"))
    assert check.status == "incompatible"
    assert "driver branch 570 (gpu_host installs it) supports CUDA 12.8" in check.message


def test_a_system_with_one_branch_says_the_driver_comes_another_way():
    # Debian 12: nvidia-driver is branch 535, the only one gpu_host can install there
    check = cc.check_torch(cc.torch_build("torch==2.13.0"), branch("535"), fixed_branch="535")
    assert check.status == "incompatible"
    assert "gpu_host_driver_branch" not in check.message.split("Change one:")[1].split(";")[0]
    assert ("a newer driver, branch 580 or later, installed another way: gpu_host installs "
            "only this system's branch 535") in check.message
    # 2.13's builds are not in the table: the newest known release's (2.9: cu126, cu128,
    # cu130) are likelier to exist than cu121; 535 runs CUDA 12.x builds (minor compatibility)
    assert '"torch==2.13.0+cu128"' in check.message


@pytest.mark.parametrize("requirement,status", [
    ("torch==2.13.0+cpu", "not-cuda"),
    ("torch==2.5.1+rocm6.2", "not-cuda"),
    ("torch>=2.5", "unknown"),
    ("torch==2.14.0", "unknown"),
])
def test_builds_that_cannot_be_checked_say_so(requirement, status):
    check = cc.check_torch(cc.torch_build(requirement), running("570.133.20", "12.8"))
    assert check.status == status
    assert check.message


def test_nothing_to_check():
    assert cc.check_torch(None, running("570.133.20")).status == "none"
    assert cc.check_torch(cc.torch_build("torch==2.13.0"), None).status == "none"


def test_an_unknown_driver_version_is_not_a_verdict():
    check = cc.check_torch(cc.torch_build("torch==2.13.0"), running(""))
    assert check.status == "unknown"


def test_old_cuda_without_family_compatibility():
    check = cc.check_torch(cc.torch_build("torch==1.12.1+cu102"), running("418.39", "10.1"))
    assert check.status == "incompatible"
    assert "needs driver >= 440.33;" in check.message  # no minor-version compatibility before 11


# --------------------------------------------------------------------------- plan


def plan(**overrides):
    args = dict(gpu_count=1, smi_state="ok", smi_error="", driver_version="570.133.20",
                library_version="", mismatch=False, pinned="", default_branch="580",
                fixed_branch="", without_gpu=False)
    args.update(overrides)
    return cc.plan_driver(**args)


def test_no_gpu_is_cpu_mode():
    assert plan(gpu_count=0, smi_state="absent", driver_version="") == cc.DriverPlan(
        "none", "", "no NVIDIA GPU: the host runs jobs on the CPU", "")


def test_image_baking_installs_the_default_branch():
    result = plan(gpu_count=0, smi_state="absent", driver_version="", without_gpu=True)
    assert (result.action, result.branch, result.error) == ("install", "580", "")


def test_a_working_driver_stays_whatever_its_branch():
    assert plan() == cc.DriverPlan("keep", "570", "driver 570.133.20 works: nothing to install", "")
    assert plan(pinned="570").action == "keep"
    assert plan(pinned="570").reason.endswith("(the pinned branch): nothing to install")


def test_a_working_driver_of_another_branch_than_the_pinned_one_is_replaced():
    result = plan(pinned="580")
    assert (result.action, result.branch) == ("install", "580")
    assert result.reason == "driver 570.133.20 works, but gpu_host_driver_branch is 580"


@pytest.mark.parametrize("state,error,reason", [
    ("absent", "", "no NVIDIA driver (no nvidia-smi)"),
    ("failed", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
     "the NVIDIA driver does not work (nvidia-smi: NVIDIA-SMI has failed because it couldn't "
     "communicate with the NVIDIA driver.)"),
])
def test_no_working_driver_installs_the_pinned_or_default_branch(state, error, reason):
    result = plan(smi_state=state, smi_error=error, driver_version="")
    assert (result.action, result.branch, result.reason) == ("install", "580", reason)
    assert plan(smi_state=state, driver_version="", pinned="550").branch == "550"


def test_a_driver_upgraded_without_a_reboot_needs_the_reboot_not_packages():
    result = plan(smi_state="failed", driver_version="550.127.05", library_version="570.133",
                  mismatch=True)
    assert (result.action, result.branch) == ("reboot", "570")
    assert result.reason == ("the installed driver 570.133 is not the loaded one 550.127.05: "
                             "a reboot loads it")
    assert plan(smi_state="failed", driver_version="550.127.05", library_version="570.133",
                mismatch=True, pinned="580").action == "install"


def test_a_system_with_one_branch_refuses_another_pin_only_when_it_would_install():
    debian = dict(default_branch="535", fixed_branch="535")
    assert plan(smi_state="absent", driver_version="", **debian) == cc.DriverPlan(
        "install", "535", "no NVIDIA driver (no nvidia-smi)", "")
    refused = plan(smi_state="absent", driver_version="", pinned="570", **debian)
    assert refused.error == (
        'gpu_host_driver_branch is 570, but this system\'s packages have only branch 535: set it '
        'to "" or "535", or install driver 570 another way (gpu_host keeps a working driver)')
    # a working 570 installed another way, pinned: kept, nothing to refuse
    assert plan(pinned="570", **debian) == cc.DriverPlan(
        "keep", "570", "driver 570.133.20 works (the pinned branch): nothing to install", "")


def test_the_driver_to_check_follows_the_plan():
    keep = plan()
    assert cc.check_driver(keep, 1, "570.133.20", "12.8", "") == cc.Driver(
        "570.133.20", "12.8", "the running driver 570.133.20", False)
    install = plan(smi_state="absent", driver_version="")
    assert cc.check_driver(install, 1, "", "", "") == branch("580")
    reboot = plan(smi_state="failed", driver_version="550.127.05", library_version="570.133",
                  mismatch=True)
    assert cc.check_driver(reboot, 1, "", "", "570.133").version == "570.133"
    baking = plan(gpu_count=0, smi_state="absent", driver_version="", without_gpu=True)
    assert cc.check_driver(baking, 0, "", "", "") is None


def test_plan_summary_says_the_plan_and_the_torch_check():
    plan = cc.DriverPlan("install", "580", "no NVIDIA driver (no nvidia-smi)", "")
    assert cc.plan_summary(plan, "torch 2.13.0 runs") == [
        "driver: install 580: no NVIDIA driver (no nvidia-smi)", "torch: torch 2.13.0 runs"]
    none = cc.DriverPlan("none", "", "no NVIDIA GPU: the host runs jobs on the CPU", "")
    assert cc.plan_summary(none, "ignored", "gpu_host_check_torch is false") == [
        "driver: none: no NVIDIA GPU: the host runs jobs on the CPU",
        "torch: not checked: gpu_host_check_torch is false"]
