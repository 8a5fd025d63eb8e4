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
  - Runs C(nvidia-smi) when it is on PATH for the names, memory and driver version; a
    failing nvidia-smi (driver not loaded) is reported, not fatal.
author:
  - rlops.fleet developers (!UNKNOWN)
attributes:
  check_mode:
    description: Reads only; runs the same in check mode.
    support: full
  diff_mode:
    description: Reads only; nothing to show a difference of.
    support: none
  idempotent:
    description: Reads only.
    support: full
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
"""

EXAMPLES = r"""
- name: Find the GPUs
  rlops.fleet.gpu_host_detect:
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
nvidia_smi:
  description: C(absent), C(ok) or C(failed).
  type: str
  returned: always
nvidia_smi_error:
  description: The end of nvidia-smi's error output when it failed.
  type: str
  returned: always
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
from dataclasses import asdict, dataclass

from ansible.module_utils.basic import AnsibleModule

DISPLAY_CLASS_PREFIX = "0x03"  # 0x0300 VGA, 0x0302 3D controller (datacenter GPUs)
SMI_FIELDS = "index,pci.bus_id,name,memory.total,driver_version"


# --------------------------------------------------------------------------- decisions
# Pure functions: tests/unit/roles/test_gpu_host_detect.py.


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


def parse_smi(text: str) -> tuple[dict[str, dict], str]:
    """nvidia-smi CSV (noheader, nounits) -> ({bus id: {index, name, memory_mib}}, driver)."""
    rows, driver = {}, ""
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 5:
            continue
        index, bus_id, name, memory, driver = fields
        rows[short_bus_id(bus_id)] = {
            "index": int(index) if index.isdigit() else -1,
            "name": name,
            "memory_mib": int(memory) if memory.isdigit() else 0,
        }
    return rows, driver


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
        ),
        supports_check_mode=True,
    )
    params = module.params
    gpus, scanned = scan_pci(params["pci_root"], params["vendor"])
    smi_state, smi_error, smi_rows, driver = "absent", "", {}, ""
    smi = module.get_bin_path("nvidia-smi")
    if smi and gpus:
        rc, out, err = module.run_command(
            [smi, f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits"]
        )
        if rc == 0:
            smi_state = "ok"
            smi_rows, driver = parse_smi(out)
        else:
            smi_state = "failed"
            smi_error = ((err or out).strip().splitlines() or [f"exit code {rc}"])[-1]
    names = {}
    if gpus and not smi_rows:
        for path in params["pci_ids"]:
            if os.path.isfile(path):
                with open(path, encoding="utf-8", errors="replace") as handle:
                    names = pci_names(handle.read(), params["vendor"])
                break
    gpus = merge(gpus, smi_rows, names)
    module.exit_json(
        changed=False,
        gpus=[asdict(gpu) for gpu in gpus],
        scanned=scanned,
        driver_version=driver,
        nvidia_smi=smi_state,
        nvidia_smi_error=smi_error,
        nouveau_loaded=os.path.isdir(os.path.join(params["module_root"], "nouveau")),
        nvidia_loaded=os.path.isdir(os.path.join(params["module_root"], "nvidia")),
    )


if __name__ == "__main__":
    main()
