"""plugins/module_utils/nvidia_gpus.py, the gpu_host role's side: the gpu_host_* facts, the
local facts file, and what the role says at the end (why a reboot is needed, why nvidia-smi
does not list every GPU) from one look. The PCI and nvidia-smi side is tested with the
module (tests/unit/plugins/modules/test_gpu_host_detect.py)."""

from __future__ import annotations

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils import nvidia_gpus as ng

H100 = {"address": "0000:53:00.0", "device": "0x2330", "name": "NVIDIA H100 80GB HBM3",
        "memory_mib": 81559, "index": 0}


def seen(gpus=(), **extra) -> dict:
    """One look as gpu_host_detect answers it: a working 570 driver unless `extra` says."""
    return {"gpus": list(gpus), "driver_version": "570.133.20", "cuda_version": "12.8",
            "nvidia_loaded": True, "nouveau_loaded": False, "driver_mismatch": False,
            "kernel_module_version": "570.133.20", "library_version": "",
            "nvidia_smi": "ok", "nvidia_smi_error": "", **extra}


def unseen(**extra) -> dict:
    """A GPU whose driver is not loaded (nvidia-smi failed, no module)."""
    gpu = dict(H100, name="NVIDIA device 0x2330", memory_mib=0, index=-1)
    return seen([gpu], **{"driver_version": "", "cuda_version": "", "nvidia_loaded": False,
                          "kernel_module_version": "", "nvidia_smi": "failed",
                          "nvidia_smi_error": "NVIDIA-SMI has failed", **extra})


@pytest.mark.parametrize("look,steps,required", [
    (seen([H100]), True, False),  # installed and loaded
    (unseen(), True, True),  # installed, not loaded
    (unseen(), False, False),  # the role installed nothing: not its reboot
    (seen([H100], driver_mismatch=True), False, True),  # upgraded without a reboot
    (seen(nvidia_loaded=False), True, False),  # no GPU: no reboot for it
])
def test_reboot_required(look, steps, required):
    assert ng.reboot_required(look, steps) is required
    assert bool(ng.reboot_reason(look, steps)) is required


@pytest.mark.parametrize("look,why", [
    (unseen(nouveau_loaded=True), "nouveau holds the GPU"),
    (unseen(), "modprobe nvidia failed"),
    (unseen(driver_mismatch=True, kernel_module_version="550.127.05", library_version="570.133"),
     "the loaded kernel module is 550.127.05, the library 570.133"),
    (unseen(driver_mismatch=True), "the loaded kernel module is older, the library newer"),
])
def test_reboot_reason_says_why(look, why):
    assert ng.reboot_reason(look, True) == (
        f"the NVIDIA driver is installed but not loaded ({why}): reboot it, or run again with"
        " nvidia_driver_reboot_allowed true")


def test_smi_problem_names_the_state_the_error_and_the_gpus():
    assert ng.smi_problem(seen([H100])) == ""
    assert ng.smi_problem(seen()) == ""  # no GPU: nothing to list
    second = dict(H100, address="0000:64:00.0", index=-1)
    assert ng.smi_problem(seen([H100, second])) == (
        "ok ; GPUs on the PCI bus: 0000:53:00.0, 0000:64:00.0")  # one GPU not listed
    assert ng.smi_problem(unseen()) == (
        "failed NVIDIA-SMI has failed; GPUs on the PCI bus: 0000:53:00.0")


def test_host_facts_of_a_working_driver():
    check = {"status": "ok", "message": "m", "cuda": "12.8", "driver_cuda": "12.8"}
    facts = ng.host_facts(seen([H100, H100]), "keep", False, check)
    assert facts == {
        "gpu_host_mode": "gpu", "gpu_host_gpu_count": 2,
        "gpu_host_gpu_names": ["NVIDIA H100 80GB HBM3"] * 2,
        "gpu_host_gpu_memory_mib": [81559, 81559], "gpu_host_driver_version": "570.133.20",
        "gpu_host_cuda_version": "12.8", "gpu_host_gpus": [H100, H100],
        "gpu_host_driver_action": "keep", "gpu_host_reboot_required": False,
        "gpu_host_torch_check": check}
    assert ng.local_facts(facts) == {
        "mode": "gpu", "gpu_count": 2, "gpu_names": ["NVIDIA H100 80GB HBM3"] * 2,
        "gpu_memory_mib": [81559, 81559], "driver_version": "570.133.20",
        "driver_branch": "570", "cuda_version": "12.8", "driver_action": "keep"}


def test_host_facts_of_a_second_look_keep_the_torch_check_out():
    facts = ng.host_facts(unseen(), "install", True, None)
    assert "gpu_host_torch_check" not in facts
    assert (facts["gpu_host_driver_action"], facts["gpu_host_reboot_required"]) == ("install", True)


def test_local_facts_of_a_cpu_host():
    facts = ng.host_facts(seen(driver_version="", cuda_version=""), "none", False, {})
    assert ng.local_facts(facts) == {
        "mode": "cpu", "gpu_count": 0, "gpu_names": [], "gpu_memory_mib": [],
        "driver_version": "", "driver_branch": "", "cuda_version": "", "driver_action": "none"}
