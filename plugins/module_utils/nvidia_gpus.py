# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Which PCI devices are NVIDIA GPUs, and what nvidia-smi and the kernel module say of them.

Pure functions, no I/O: the gpu_host_detect module reads sysfs, runs nvidia-smi and calls
them; tests/unit/plugins/modules/test_gpu_host_detect.py tests them with recorded nvidia-smi
outputs (fixtures/nvidia_smi/). What the role does with the driver is cuda_compat's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.etree import ElementTree

DISPLAY_CLASS_PREFIX = "0x03"  # 0x0300 VGA, 0x0302 3D controller (datacenter GPUs)
# "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 ..." and
# "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.133.20  Release Build ..."
PROC_VERSION_RE = re.compile(r"Kernel Module(?: for \S+)?\s+([0-9]+\.[0-9]+(?:\.[0-9]+)?)")
NVML_VERSION_RE = re.compile(r"NVML library version:\s*([0-9]+\.[0-9]+(?:\.[0-9]+)?)")


@dataclass
class Gpu:
    address: str  # 0000:01:00.0
    device: str  # 0x2330
    name: str = ""
    memory_mib: int = 0
    index: int = -1  # nvidia-smi's index, -1 when it does not run


def is_gpu(vendor: str, pci_class: str, wanted_vendor: str) -> bool:
    display = pci_class.strip().lower().startswith(DISPLAY_CLASS_PREFIX)
    return display and hex_id(vendor) == hex_id(wanted_vendor)


def short_bus_id(bus_id: str) -> str:
    """00000000:01:00.0 (nvidia-smi) and 0000:01:00.0 (sysfs) -> 0000:01:00.0."""
    parts = bus_id.strip().lower().split(":")
    if len(parts) != 3:
        return bus_id.strip().lower()
    return f"{parts[0][-4:].rjust(4, '0')}:{parts[1]}:{parts[2]}"


def hex_id(value: str) -> str:
    """0x10DE -> 10de."""
    value = value.strip().lower()
    return value[2:] if value.startswith("0x") else value


def pci_names(text: str, vendor: str) -> dict[str, str]:
    """Device names of one vendor from pci.ids: {'2330': 'GH100 [H100 SXM5 80GB]'}."""
    names: dict[str, str] = {}
    vendor_id = hex_id(vendor)
    inside = False
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if not line.startswith("\t"):
            inside = line[:4].lower() == vendor_id
            continue
        if inside and not line.startswith("\t\t"):
            device, _sep, name = line.strip().partition(" ")
            names[device.lower()] = name.strip()
    return names


def parse_smi_xml(text: str) -> tuple[dict[str, dict], str, str]:
    """`nvidia-smi -q -x` -> ({bus id: {index, name, memory_mib}}, driver version, CUDA version).

    The index is the GPU's position in the log (nvidia-smi's order, by PCI bus id). Raises
    ValueError when the text is not an nvidia_smi_log document.
    """
    try:
        root = ElementTree.fromstring(text.strip())
    except ElementTree.ParseError as exc:
        raise ValueError(f"nvidia-smi -q -x printed no XML log ({exc})") from exc
    if root.tag != "nvidia_smi_log":
        raise ValueError(f"nvidia-smi -q -x printed <{root.tag}>, not <nvidia_smi_log>")
    rows = {}
    for index, gpu in enumerate(root.findall("gpu")):
        bus_id = gpu.get("id") or gpu.findtext("pci/pci_bus_id") or ""
        memory = (gpu.findtext("fb_memory_usage/total") or "").split()
        rows[short_bus_id(bus_id)] = {
            "index": index,
            "name": (gpu.findtext("product_name") or "").strip(),
            "memory_mib": int(memory[0]) if memory and memory[0].isdigit() else 0,
        }
    return rows, _version(root.findtext("driver_version")), _version(root.findtext("cuda_version"))


def _version(text) -> str:
    """'570.133.20' stays; 'N/A', '' and None become ''."""
    text = (text or "").strip()
    return text if re.match(r"^[0-9]+(\.[0-9]+)*$", text) else ""


def smi_failure(text: str) -> tuple[str, bool, str]:
    """A failed nvidia-smi's output -> (first line, library and kernel module differ, NVML's
    version)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    mismatch = "version mismatch" in text.lower()
    library = NVML_VERSION_RE.search(text)
    return (lines[0] if lines else "", mismatch, library.group(1) if library else "")


def smi_absent() -> dict:
    """What is known when nvidia-smi is not there (or not run: no GPU)."""
    return {"state": "absent", "error": "", "rows": {}, "driver": "", "cuda": "",
            "mismatch": False, "library": ""}


def smi_answer(rc: int, out: str, err: str) -> dict:
    """What `nvidia-smi -q -x` answered: state (ok, failed), error, rows, driver, cuda,
    mismatch (library and kernel module differ), library (NVML's version)."""
    found = smi_absent()
    if rc == 0:
        try:
            found["rows"], found["driver"], found["cuda"] = parse_smi_xml(out)
            found["state"] = "ok"
        except ValueError as exc:
            found["state"], found["error"] = "failed", str(exc)
        return found
    first, found["mismatch"], found["library"] = smi_failure(f"{out}\n{err}")
    found["state"], found["error"] = "failed", first or f"exit code {rc}"
    return found


def parse_proc_version(text: str) -> str:
    """The loaded kernel module's version from /proc/driver/nvidia/version, '' if none."""
    found = PROC_VERSION_RE.search(text)
    return found.group(1) if found else ""


def merge(found: list[Gpu], smi_rows: dict[str, dict], names: dict[str, str]) -> list[Gpu]:
    """PCI is the truth for which GPUs exist; nvidia-smi and pci.ids only add details."""
    for gpu in found:
        row = smi_rows.get(gpu.address)
        if row:
            gpu.name, gpu.memory_mib, gpu.index = row["name"], row["memory_mib"], row["index"]
        else:
            pci_name = names.get(hex_id(gpu.device))
            gpu.name = f"NVIDIA {pci_name}" if pci_name else f"NVIDIA device {gpu.device}"
    return sorted(found, key=lambda g: g.address)


# --------------------------------------------------------------------------- the role's facts
# What the gpu_host role publishes and says from one look (the first, or the second through
# the driver after its driver steps): `seen` is gpu_host_detect's answer (gpus as dicts,
# driver_version, cuda_version, nvidia_loaded, nouveau_loaded, driver_mismatch,
# kernel_module_version, library_version, nvidia_smi, nvidia_smi_error).


def reboot_required(seen: dict, driver_steps: bool) -> bool:
    """A GPU whose driver the role installed is not loaded, or the installed driver is not
    the loaded one (upgraded without a reboot)."""
    return bool(seen["gpus"]) and (
        (driver_steps and not seen["nvidia_loaded"]) or seen["driver_mismatch"])


def reboot_reason(seen: dict, driver_steps: bool) -> str:
    """Why a reboot is needed (said, not done, without nvidia_driver_reboot_allowed); '' when none
    is. The role puts the host's name in front."""
    if not reboot_required(seen, driver_steps):
        return ""
    if seen["driver_mismatch"]:
        why = "the loaded kernel module is %s, the library %s" % (
            seen["kernel_module_version"] or "older", seen["library_version"] or "newer")
    elif seen["nouveau_loaded"]:
        why = "nouveau holds the GPU"
    else:
        why = "modprobe nvidia failed"
    return ("the NVIDIA driver is installed but not loaded (%s): reboot it, or run again with"
            " nvidia_driver_reboot_allowed true" % why)


def smi_problem(seen: dict) -> str:
    """Why nvidia-smi does not list every GPU ('' when it does, or there is none): its state
    and error, and the GPUs on the PCI bus. The role says on which host."""
    gpus = seen["gpus"]
    if not gpus or (seen["nvidia_smi"] == "ok" and all(gpu["index"] >= 0 for gpu in gpus)):
        return ""
    return "%s %s; GPUs on the PCI bus: %s" % (
        seen["nvidia_smi"], seen["nvidia_smi_error"], ", ".join(gpu["address"] for gpu in gpus))


def host_facts(seen: dict, action: str, driver_steps: bool, torch_check: dict | None) -> dict:
    """The gpu_host_* facts (roles/gpu_host/README.md) of one look. `action`: the driver
    action of the role's plan; torch_check None leaves gpu_host_torch_check out (a second
    look keeps the first one's)."""
    gpus = seen["gpus"]
    facts = {
        "gpu_host_mode": "gpu" if gpus else "cpu",
        "gpu_host_gpu_count": len(gpus),
        "gpu_host_gpu_names": [gpu["name"] for gpu in gpus],
        "gpu_host_gpu_memory_mib": [gpu["memory_mib"] for gpu in gpus],
        "gpu_host_driver_version": seen["driver_version"],
        "gpu_host_cuda_version": seen["cuda_version"],
        "gpu_host_gpus": gpus,
        "gpu_host_driver_action": action,
        "gpu_host_reboot_required": reboot_required(seen, driver_steps),
    }
    if torch_check is not None:
        facts["gpu_host_torch_check"] = torch_check
    return facts


def local_facts(facts: dict) -> dict:
    """/etc/ansible/facts.d/gpu_host.fact (ansible_local.gpu_host in later plays) from the
    gpu_host_* facts."""
    version = facts["gpu_host_driver_version"]
    return {
        "mode": facts["gpu_host_mode"],
        "gpu_count": facts["gpu_host_gpu_count"],
        "gpu_names": facts["gpu_host_gpu_names"],
        "gpu_memory_mib": facts["gpu_host_gpu_memory_mib"],
        "driver_version": version,
        "driver_branch": version.split(".")[0] if version else "",
        "cuda_version": facts["gpu_host_cuda_version"],
        "driver_action": facts["gpu_host_driver_action"],
    }
