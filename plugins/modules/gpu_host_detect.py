#!/usr/bin/python
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Internal module of the gpu_host role: NVIDIA GPUs from PCI, details from nvidia-smi."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_host_detect
short_description: Find NVIDIA GPUs on the PCI bus, with details from nvidia-smi when it runs
version_added: 0.1.0
description:
  - Internal module of the rlops.fleet.gpu_host role. Reads only; changes nothing.
  - Reads C(vendor) and C(class) of every device under O(pci_root) (sysfs, no C(lspci));
    a GPU is a device of vendor O(vendor) whose class is a display controller (C(0x03xxxx));
    the GPUs' audio and USB functions and NVSwitches are not GPUs.
  - Names come from nvidia-smi when the driver runs, else from C(pci.ids) when a copy is
    installed, else C(NVIDIA device 0x<id>).
  - Runs C(nvidia-smi -q -x) when there is a GPU and O(nvidia_smi) is found, for the names,
    memory, driver version and the newest CUDA the driver supports; a failing nvidia-smi
    (driver not loaded, library newer than the loaded kernel module) is reported, not fatal.
    Reads the loaded kernel module's version from O(proc_version).
  - Plans what the role does with the driver (O(driver_branch), O(default_branch)). A
    driver that works stays unless another branch is pinned.
  - Checks that the torch build pip installs for O(torch_requirement) runs on that driver
    (NVIDIA's minimum driver per CUDA release, and minor-version compatibility within a
    CUDA major from 11 on), and says what to change when it does not. Pure functions in
    C(plugins/module_utils/cuda_compat.py).
author:
  - rlops.fleet developers (!UNKNOWN)
extends_documentation_fragment:
  - rlops.fleet.attributes.info_module
options:
  pci_root:
    description: The sysfs folder of PCI devices.
    type: path
    default: /sys/bus/pci/devices
  vendor:
    description: PCI vendor id of the GPUs.
    type: str
    default: "0x10de"
  pci_ids:
    description: Copies of the PCI id database to take names from, first found wins.
    type: list
    elements: path
    default: [/usr/share/misc/pci.ids, /usr/share/hwdata/pci.ids]
  module_root:
    description: The sysfs folder of loaded kernel modules.
    type: path
    default: /sys/module
  nvidia_smi:
    description: The nvidia-smi program, a name looked up on PATH or a path.
    type: str
    default: nvidia-smi
  proc_version:
    description: The NVIDIA kernel module's version file.
    type: path
    default: /proc/driver/nvidia/version
  driver_branch:
    description:
      - The driver branch the user pinned (C(570)); empty keeps any working driver.
    type: str
    default: ""
  default_branch:
    description: The branch to install where no driver works and none is pinned.
    type: str
    default: ""
  fixed_branch:
    description:
      - The only branch the system's packages have (Debian), empty when any can be installed.
        Another pinned branch is an error in RV(driver_plan).
    type: str
    default: ""
  install_without_gpu:
    description: Plan an install on a host without a GPU (image baking).
    type: bool
    default: false
  torch_requirement:
    description:
      - The pip requirement of torch whose build is checked against the driver
        (C(torch==2.13.0), C(torch==2.13.0+cu128)). Empty checks nothing.
    type: str
    default: ""
  torch_wheels:
    description:
      - File names of torch wheels pip finds before any index (the trainer's wheelhouse).
    type: list
    elements: str
    default: []
  torch_sources:
    description:
      - pip index and find-links locations. A PyTorch index (C(https://download.pytorch.org/whl/cu128))
        names its build; the torch wheels in a find-links folder on the host count as
        O(torch_wheels).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Find the GPUs
  rlops.fleet.gpu_host_detect:
  register: detected

- name: Find the GPUs, plan the driver and check the trainer's torch build against it
  rlops.fleet.gpu_host_detect:
    driver_branch: ""
    default_branch: "580"
    torch_requirement: torch==2.13.0
  register: detected
"""

RETURN = r"""
gpus:
  description: One entry per GPU, ordered by PCI address.
  type: list
  elements: dict
  returned: always
  sample:
    - {address: "0000:01:00.0", device: "0x2330", name: "NVIDIA H100 80GB HBM3",
       memory_mib: 81559, index: 0}
scanned:
  description: PCI devices read.
  type: int
  returned: always
driver_version:
  description: Driver version from nvidia-smi, empty when it does not run.
  type: str
  returned: always
cuda_version:
  description: The newest CUDA the driver supports, from nvidia-smi; empty when it does not run.
  type: str
  returned: always
  sample: "12.8"
kernel_module_version:
  description: Version of the loaded NVIDIA kernel module (O(proc_version)), empty when none is.
  type: str
  returned: always
library_version:
  description: The NVML library's version when nvidia-smi reports a driver/library mismatch.
  type: str
  returned: always
driver_working:
  description: nvidia-smi answers and lists GPUs.
  type: bool
  returned: always
driver_mismatch:
  description: The installed driver is not the loaded one (upgraded without a reboot).
  type: bool
  returned: always
nvidia_smi:
  description: C(absent), C(ok) or C(failed).
  type: str
  returned: always
nvidia_smi_error:
  description: The first line of nvidia-smi's error output when it failed.
  type: str
  returned: always
driver_plan:
  description:
    - What the role does with the driver. C(action) is C(none) (no GPU), C(keep) (a working
      driver stays), C(install) (C(branch)) or C(reboot) (the installed driver is not the
      loaded one); C(error) says why the plan cannot be carried out, empty when it can.
  type: dict
  returned: always
  sample: {action: keep, branch: "570", reason: "driver 570.133.20 works: nothing to install",
           error: ""}
torch:
  description: The torch build pip installs for O(torch_requirement); empty without one.
  type: dict
  returned: always
  sample: {requirement: torch==2.13.0, version: 2.13.0, label: "", cuda: "13.0",
           origin: "PyPI's default Linux build"}
torch_check:
  description:
    - Whether the torch build runs on the driver of the plan. C(status) is C(none),
      C(not-cuda), C(unknown), C(ok), C(minor) (through minor-version compatibility) or
      C(incompatible), and C(message) says what to change when it is incompatible.
  type: dict
  returned: always
  sample: {status: ok,
           message: "torch 2.13.0+cu128 (CUDA 12.8) runs on the running driver 570.133.20
             (CUDA 12.8)",
           cuda: "12.8", driver_cuda: "12.8"}
nouveau_loaded:
  description: Whether the nouveau module is loaded (the NVIDIA driver cannot load beside it).
  type: bool
  returned: always
nvidia_loaded:
  description: Whether the nvidia kernel module is loaded.
  type: bool
  returned: always
"""

import os
import re
from dataclasses import asdict, dataclass
from xml.etree import ElementTree

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rlops.fleet.plugins.module_utils import cuda_compat

DISPLAY_CLASS_PREFIX = "0x03"  # 0x0300 VGA, 0x0302 3D controller (datacenter GPUs)
# "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 ..." and
# "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.133.20  Release Build ..."
PROC_VERSION_RE = re.compile(r"Kernel Module(?: for \S+)?\s+([0-9]+\.[0-9]+(?:\.[0-9]+)?)")
NVML_VERSION_RE = re.compile(r"NVML library version:\s*([0-9]+\.[0-9]+(?:\.[0-9]+)?)")


# --------------------------------------------------------------------------- decisions
# Pure functions: tests/unit/plugins/modules/test_gpu_host_detect.py, with recorded
# nvidia-smi outputs in tests/unit/plugins/modules/fixtures/nvidia_smi/.


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


# --------------------------------------------------------------------------- reading


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def scan_pci(root: str, vendor: str) -> tuple[list[Gpu], int]:
    """GPUs under a sysfs PCI folder, and how many devices were read."""
    try:
        addresses = sorted(os.listdir(root))
    except OSError:
        return [], 0
    gpus = []
    for address in addresses:
        base = os.path.join(root, address)
        if is_gpu(_read(base + "/vendor"), _read(base + "/class"), vendor):
            gpus.append(Gpu(address=address, device=_read(base + "/device").lower()))
    return gpus, len(addresses)


def torch_wheels_in(sources: list[str]) -> list[str]:
    """File names of the torch wheels in the find-links folders among `sources`."""
    names = []
    for source in sources:
        folder = source[len("file://"):] if source.startswith("file://") else source
        if "://" in folder or not os.path.isdir(folder):
            continue
        names.extend(sorted(
            name for name in os.listdir(folder)
            if name.startswith("torch-") and name.endswith(".whl")
        ))
    return names


def smi_absent() -> dict:
    return {"state": "absent", "error": "", "rows": {}, "driver": "", "cuda": "",
            "mismatch": False, "library": ""}


def run_smi(module: AnsibleModule, program: str) -> dict:
    """nvidia-smi -q -x, read: state, error, rows, driver, cuda, mismatch, library."""
    found = smi_absent()
    smi = program if "/" in program else module.get_bin_path(program)
    if not smi or not os.access(smi, os.X_OK):
        return found
    rc, out, err = module.run_command([smi, "-q", "-x"])
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


def main():
    module = AnsibleModule(
        argument_spec=dict(
            pci_root=dict(type="path", default="/sys/bus/pci/devices"),
            vendor=dict(type="str", default="0x10de"),
            pci_ids=dict(
                type="list",
                elements="path",
                default=["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"],
            ),
            module_root=dict(type="path", default="/sys/module"),
            nvidia_smi=dict(type="str", default="nvidia-smi"),
            proc_version=dict(type="path", default="/proc/driver/nvidia/version"),
            driver_branch=dict(type="str", default=""),
            default_branch=dict(type="str", default=""),
            fixed_branch=dict(type="str", default=""),
            install_without_gpu=dict(type="bool", default=False),
            torch_requirement=dict(type="str", default=""),
            torch_wheels=dict(type="list", elements="str", default=[]),
            torch_sources=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    gpus, scanned = scan_pci(params["pci_root"], params["vendor"])
    smi = run_smi(module, params["nvidia_smi"]) if gpus else smi_absent()
    names = {}
    if gpus and not smi["rows"]:
        for path in params["pci_ids"]:
            if os.path.isfile(path):
                with open(path, encoding="utf-8", errors="replace") as handle:
                    names = pci_names(handle.read(), params["vendor"])
                break
    gpus = merge(gpus, smi["rows"], names)
    kernel_module = parse_proc_version(_read(params["proc_version"]))
    working = smi["state"] == "ok" and bool(smi["driver"]) and bool(smi["rows"])
    plan = cuda_compat.plan_driver(
        len(gpus), smi["state"], smi["error"], smi["driver"] or kernel_module, smi["library"],
        smi["mismatch"], params["driver_branch"],
        params["default_branch"] or params["fixed_branch"], params["fixed_branch"],
        params["install_without_gpu"])
    wheels = params["torch_wheels"] + torch_wheels_in(params["torch_sources"])
    build = cuda_compat.torch_build(params["torch_requirement"], wheels, params["torch_sources"])
    driver = cuda_compat.check_driver(plan, len(gpus), smi["driver"], smi["cuda"], smi["library"])
    check = cuda_compat.check_torch(build, driver, params["fixed_branch"])
    module.exit_json(
        changed=False,
        gpus=[asdict(gpu) for gpu in gpus],
        scanned=scanned,
        driver_version=smi["driver"],
        cuda_version=smi["cuda"],
        kernel_module_version=kernel_module,
        library_version=smi["library"],
        driver_working=working,
        driver_mismatch=smi["mismatch"],
        nvidia_smi=smi["state"],
        nvidia_smi_error=smi["error"],
        nouveau_loaded=os.path.isdir(os.path.join(params["module_root"], "nouveau")),
        nvidia_loaded=os.path.isdir(os.path.join(params["module_root"], "nvidia")),
        driver_plan=plan._asdict(),
        torch=build._asdict() if build else {},
        torch_check=check._asdict(),
    )


if __name__ == "__main__":
    main()
