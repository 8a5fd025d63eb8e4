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
extends_documentation_fragment:
  - rlops.fleet.attributes.info_module
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
  - With O(apt_sources), where the plan installs a driver, reads the host's apt sources
    (C(apt-get indextargets), also before the first C(apt-get update)) and says what a source
    of the driver's components must add for O(release)
    (C(plugins/module_utils/apt_sources.py)).
  - With O(publish_facts), returns the rlops.fleet.gpu_host role's facts as C(ansible_facts)
    (C(plugins/module_utils/nvidia_gpus.py)); its second look through the driver sets
    O(driver_action).
author:
  - rlops.fleet developers (!UNKNOWN)
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
  apt_sources:
    description:
      - Read the host's apt sources (Debian) where the plan installs a driver, for
        RV(debian_sources).
    type: bool
    default: false
  release:
    description: The Debian release whose sources are read (C(bookworm)), with O(apt_sources).
    type: str
    default: ""
  debian_mirror:
    description: The mirror to take the missing components from; empty takes the one the host
      has for O(release).
    type: str
    default: ""
  torch_unchecked:
    description: Why the torch build is not checked (said in RV(summary)); empty when it is.
    type: str
    default: ""
  publish_facts:
    description: Return the C(gpu_host_*) facts of the role's README as RV(ansible_facts).
    type: bool
    default: false
  install_driver:
    description: The role installs the driver where the plan says C(install); a GPU whose
      driver is then not loaded needs a reboot (RV(reboot_reason)).
    type: bool
    default: false
  driver_action:
    description: On the role's second look, the action of the first look's plan, which the
      facts and RV(reboot_reason) then follow; C(gpu_host_torch_check) is left as the first
      look published it. Empty - this look's own plan.
    type: str
    default: ""
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
debian_sources:
  description:
    - With O(apt_sources), for O(release) - the driver's components (C(contrib), C(non-free),
      C(non-free-firmware)) that no source of the release has (C(missing)), the mirror to take
      them from (C(mirror), empty when the host has no source of the release's C(main) and no
      O(debian_mirror) is given), the suites (C(suites)) and the host's security mirror
      (C(security), empty when it has none). Empty when they were not read.
  type: dict
  returned: always
  sample: {missing: [contrib, non-free, non-free-firmware], mirror: "http://deb.debian.org/debian",
           suites: [bookworm, bookworm-updates], security: "http://deb.debian.org/debian-security"}
summary:
  description: The driver plan, and whether the torch build runs on it (O(torch_unchecked)).
  type: list
  elements: str
  returned: always
  sample: ["driver: keep 570: driver 570.133.20 works: nothing to install", "torch: ..."]
reboot_reason:
  description: Why a reboot is needed to load the installed driver; empty when none is.
  type: str
  returned: always
smi_problem:
  description: Why nvidia-smi does not list every GPU; empty when it does, or there is none.
  type: str
  returned: always
local_facts:
  description: The content of the role's C(/etc/ansible/facts.d/gpu_host.fact).
  type: dict
  returned: always
  sample: {mode: gpu, gpu_count: 2, driver_version: "570.133.20", driver_branch: "570"}
ansible_facts:
  description: With O(publish_facts), the role's C(gpu_host_*) facts.
  type: dict
  returned: when O(publish_facts) is true
  sample: {gpu_host_mode: gpu, gpu_host_gpu_count: 2, gpu_host_reboot_required: false}
"""

import os
from dataclasses import asdict

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rlops.fleet.plugins.module_utils import cuda_compat
from ansible_collections.rlops.fleet.plugins.module_utils.apt_sources import (
    INDEX_TARGETS_ARGV,
    debian_sources,
)
from ansible_collections.rlops.fleet.plugins.module_utils.nvidia_gpus import (
    Gpu,
    host_facts,
    is_gpu,
    local_facts,
    merge,
    parse_proc_version,
    pci_names,
    reboot_reason,
    smi_absent,
    smi_answer,
    smi_problem,
)
from ansible_collections.rlops.fleet.plugins.module_utils.sysfs import read_first, read_text

# The decisions are module_utils/nvidia_gpus.py, cuda_compat.py and apt_sources.py; this file
# reads the host.


def scan_pci(root: str, vendor: str) -> tuple[list[Gpu], int]:
    """GPUs under a sysfs PCI folder, and how many devices were read."""
    try:
        addresses = sorted(os.listdir(root))
    except OSError:
        return [], 0
    gpus = []
    for address in addresses:
        base = os.path.join(root, address)
        if is_gpu(read_text(base + "/vendor"), read_text(base + "/class"), vendor):
            gpus.append(Gpu(address=address, device=read_text(base + "/device").lower()))
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


def run_smi(module: AnsibleModule, program: str) -> dict:
    """nvidia-smi -q -x, read: state, error, rows, driver, cuda, mismatch, library."""
    smi = program if "/" in program else module.get_bin_path(program)
    if not smi or not os.access(smi, os.X_OK):
        return smi_absent()
    return smi_answer(*module.run_command([smi, "-q", "-x"]))


def read_apt_sources(module: AnsibleModule) -> dict:
    """What the driver's source file must add, from apt's own reading of the sources."""
    params = module.params
    rc, out, err = module.run_command(INDEX_TARGETS_ARGV)
    if rc != 0:
        command = " ".join(INDEX_TARGETS_ARGV)
        module.fail_json(msg="%s exited %s: %s" % (command, rc, (err or out).strip()[-500:]))
    return debian_sources(out, params["release"], params["debian_mirror"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            pci_root=dict(type="path", default="/sys/bus/pci/devices"),
            vendor=dict(type="str", default="0x10de"),
            pci_ids=dict(type="list", elements="path",
                         default=["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"]),
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
            apt_sources=dict(type="bool", default=False),
            release=dict(type="str", default=""),
            debian_mirror=dict(type="str", default=""),
            torch_unchecked=dict(type="str", default=""),
            publish_facts=dict(type="bool", default=False),
            install_driver=dict(type="bool", default=False),
            driver_action=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    params = module.params
    gpus, scanned = scan_pci(params["pci_root"], params["vendor"])
    smi = run_smi(module, params["nvidia_smi"]) if gpus else smi_absent()
    # Names from the PCI id database only where nvidia-smi gave none.
    pci_ids = read_first(params["pci_ids"]) if gpus and not smi["rows"] else ""
    gpus = merge(gpus, smi["rows"], pci_names(pci_ids, params["vendor"]))
    kernel_module = parse_proc_version(read_text(params["proc_version"]))
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
    seen = dict(
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
    )
    # The role's plan: this look's, or on its second look the first one's.
    action = params["driver_action"] or plan.action
    steps = action == "install" and params["install_driver"]
    facts = host_facts(seen, action, steps, None if params["driver_action"] else check._asdict())
    module.exit_json(
        changed=False,
        driver_plan=plan._asdict(),
        torch=build._asdict() if build else {},
        torch_check=check._asdict(),
        debian_sources=(read_apt_sources(module)
                        if params["apt_sources"] and plan.action == "install" else {}),
        summary=cuda_compat.plan_summary(plan, check.message, params["torch_unchecked"]),
        reboot_reason=reboot_reason(seen, steps),
        smi_problem=smi_problem(seen),
        local_facts=local_facts(facts),
        **({"ansible_facts": facts} if params["publish_facts"] else {}),
        **seen,
    )


if __name__ == "__main__":
    main()
