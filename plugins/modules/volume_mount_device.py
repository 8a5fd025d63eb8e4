#!/usr/bin/python
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Internal module of the volume_mount role: find the data volume, decide what may be done."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: volume_mount_device
short_description: Find the data volume's block device and decide whether it may be formatted
version_added: 0.1.0
description:
  - Internal module of the rlops.fleet.volume_mount role. Reads only; changes nothing.
  - Finds the device named by a path, an EBS volume id (Nitro NVMe by-id link or NVMe
    serial, then the Xen C(/dev/sdX) name and its C(/dev/xvdX) rename), an Azure data-disk
    LUN, or the first unused local NVMe instance-store disk, waiting up to O(timeout)
    seconds for it to appear.
  - Probes it (C(blkid -p), partitions, holders, mounts, the first and last MiB) and returns
    C(action) C(mount) (it holds a file system of O(fstype)), C(format) (it is blank) or
    C(refuse) with the reason (it holds anything else). A device that holds data is never
    reported as C(format).
author:
  - rlops.fleet developers (!UNKNOWN)
extends_documentation_fragment:
  - rlops.fleet.attributes.info_module
options:
  source:
    description: How the device is named.
    type: str
    choices: [path, ebs, azure_lun, instance_store]
    default: path
  device:
    description: Device path (or a link to it) for O(source=path).
    type: str
    default: ""
  ebs_volume_id:
    description: EBS volume id C(vol-...) for O(source=ebs).
    type: str
    default: ""
  ebs_device_name:
    description:
      - Device name the EBS volume was attached as (C(/dev/sdf)), tried after the NVMe
        names, with its Xen C(/dev/xvdf) rename. Optional.
    type: str
    default: ""
  azure_lun:
    description: LUN of the Azure data disk for O(source=azure_lun).
    type: int
    default: 0
  instance_store_models:
    description: NVMe model strings of local instance-store disks for O(source=instance_store).
    type: list
    elements: str
    default: []
  fstype:
    description: File system the volume must carry (or is given when blank).
    type: str
    required: true
  label:
    description:
      - File system label. With O(source=instance_store) a disk carrying this label and
        O(fstype) is chosen before any blank disk, so that a second run finds the same disk.
    type: str
    default: ""
  mount_point:
    description: Where the volume is to be mounted; another device mounted there is refused.
    type: path
    required: true
  timeout:
    description: Seconds to wait for the device to appear.
    type: int
    default: 300
  delay:
    description: Seconds between looks.
    type: float
    default: 2
  probe_bytes:
    description: Bytes read at the start and at the end of a device without a signature.
    type: int
    default: 1048576
"""

EXAMPLES = r"""
- name: Find the data volume
  rlops.fleet.volume_mount_device:
    source: ebs
    ebs_volume_id: vol-0123456789abcdef0
    fstype: ext4
    mount_point: /mnt/rlops
  register: found
"""

RETURN = r"""
device:
  description: The device node (links resolved).
  type: str
  returned: always
  sample: /dev/nvme1n1
link:
  description: The name it was found by.
  type: str
  returned: always
  sample: /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0
action:
  description: C(mount), C(format) or C(refuse).
  type: str
  returned: always
reason:
  description: Why, in one sentence.
  type: str
  returned: always
fstype:
  description: File system type found on the device, empty when none.
  type: str
  returned: always
uuid:
  description: File system UUID, empty when none.
  type: str
  returned: always
label:
  description: File system label, empty when none.
  type: str
  returned: always
mounted_at:
  description: Where the device is mounted now.
  type: list
  elements: str
  returned: always
waited:
  description: Seconds spent waiting for the device.
  type: float
  returned: always
"""

import glob
import os
import time
from dataclasses import dataclass, field
from typing import Callable

from ansible.module_utils.basic import AnsibleModule

EBS_NVME_LINK = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{serial}"
AZURE_LUN_LINKS = ("/dev/disk/azure/scsi1/lun{lun}", "/dev/disk/azure/data/by-lun/{lun}")
FS_USAGES = ("", "filesystem")


# --------------------------------------------------------------------------- decisions
# Pure functions, unit-tested without a device: tests/unit/roles/test_volume_mount_device.py.


@dataclass
class Disk:
    """What was read about one block device."""

    path: str  # the device node, links resolved
    link: str = ""  # the name it was found by
    model: str = ""
    serial: str = ""
    fstype: str = ""  # blkid TYPE
    usage: str = ""  # blkid USAGE: filesystem, other (swap), raid, crypto
    uuid: str = ""
    label: str = ""
    pttype: str = ""  # partition table type
    partitions: list[str] = field(default_factory=list)
    holders: list[str] = field(default_factory=list)  # device-mapper, md, ...
    mounted_at: list[str] = field(default_factory=list)
    blank: bool | None = None  # first and last bytes all zero; None when not read


@dataclass
class Plan:
    action: str  # mount | format | refuse
    reason: str


def ebs_serial(volume_id: str) -> str:
    """vol-0123abc -> vol0123abc: the NVMe serial (and by-id name) of an EBS volume."""
    return volume_id.strip().lower().replace("-", "", 1)


def xen_rename(name: str) -> str:
    """/dev/sdf -> /dev/xvdf: how Xen guests name a volume attached as sdX."""
    base = os.path.basename(name)
    return "/dev/xvd" + base[2:] if base.startswith("sd") else ""


def device_name(name: str) -> str:
    """sdf, /dev/sdf -> /dev/sdf."""
    return name if name.startswith("/") else "/dev/" + name


def candidate_links(source: str, params: dict, nvme_serials: dict[str, str]) -> list[str]:
    """Paths that name the wanted device, best first (path, ebs and azure_lun sources).

    nvme_serials maps /dev/<nvme disk> to its serial: EBS volumes on Nitro instances carry
    the volume id as serial, which finds them even without udev's by-id links.
    """
    if source == "path":
        return [params["device"]]
    if source == "ebs":
        serial = ebs_serial(params["ebs_volume_id"])
        links = [EBS_NVME_LINK.format(serial=serial)]
        links += sorted(dev for dev, found in nvme_serials.items() if found.strip() == serial)
        if params.get("ebs_device_name"):
            name = device_name(params["ebs_device_name"])
            links += [name] + ([xen_rename(name)] if xen_rename(name) else [])
        return links
    if source == "azure_lun":
        return [link.format(lun=params["azure_lun"]) for link in AZURE_LUN_LINKS]
    raise ValueError(f"no fixed names for source {source}")


def plan(disk: Disk, fstype: str, mount_point: str, mount_point_device: str = "") -> Plan:
    """Decide what may be done with the device. Anything that may hold data is refused."""
    where = disk.path + (f" ({disk.link})" if disk.link and disk.link != disk.path else "")
    if mount_point_device and mount_point_device != disk.path:
        return Plan(
            "refuse",
            f"{mount_point} is already the mount point of {mount_point_device}, not of {where}",
        )
    others = [m for m in disk.mounted_at if m != mount_point]
    if others:
        return Plan("refuse", f"{where} is mounted at {', '.join(others)}")
    if disk.holders:
        return Plan(
            "refuse", f"{where} is in use by {', '.join(disk.holders)} (LVM, RAID or encryption)"
        )
    if disk.partitions or disk.pttype:
        table = f" ({disk.pttype})" if disk.pttype else ""
        parts = f" with {', '.join(disk.partitions)}" if disk.partitions else ""
        return Plan(
            "refuse",
            f"{where} holds a partition table{table}{parts}: give a partition or an empty disk",
        )
    if disk.fstype:
        if disk.fstype == fstype and disk.usage in FS_USAGES:
            return Plan("mount", f"{where} holds a {fstype} file system (UUID {disk.uuid})")
        what = (
            f"a {disk.fstype} file system"
            if disk.usage in FS_USAGES
            else f"a {disk.fstype} signature ({disk.usage})"
        )
        return Plan(
            "refuse",
            f"{where} holds {what}, not {fstype}: a device with data is "
            "never reformatted; wipe it yourself if its data is not needed",
        )
    if disk.blank is not True:
        return Plan(
            "refuse",
            f"{where} has no file system signature but is not blank "
            "(non-zero bytes at its start or end): it may hold data; wipe it "
            "yourself if not",
        )
    return Plan("format", f"{where} is blank")


def choose_instance_store(
    disks: list[Disk], models: list[str], fstype: str, label: str, mount_point: str
) -> tuple[Disk | None, str]:
    """The instance-store disk to use, and why; (None, reason) when there is none.

    A disk already mounted at mount_point wins, then one carrying our label and fstype
    (a second run, or a reboot that kept the disk), then the first blank unused one.
    """
    local = sorted((d for d in disks if d.model.strip() in models), key=lambda d: _natural(d.path))
    if not local:
        seen = ", ".join(f"{d.path} ({d.model.strip() or 'no model'})" for d in disks)
        return None, (
            f"no NVMe instance-store disk (models: {', '.join(models)}); "
            f"NVMe disks seen: {seen or 'none'}"
        )
    for disk in local:
        if mount_point in disk.mounted_at:
            return disk, f"{disk.path} is mounted at {mount_point}"
    if label:
        for disk in local:
            if disk.label == label and disk.fstype == fstype:
                return disk, f"{disk.path} carries the label {label}"
    for disk in local:
        if plan(disk, fstype, mount_point).action == "format":
            return disk, f"{disk.path} is the first unused instance-store disk"
    reasons = "; ".join(plan(d, fstype, mount_point).reason for d in local)
    return None, f"every instance-store disk is in use: {reasons}"


def _natural(path: str) -> tuple:
    """nvme2n1 before nvme10n1."""
    digits, parts = "", []
    for char in path + "/":
        if char.isdigit():
            digits += char
            continue
        if digits:
            parts.append((0, int(digits), ""))
            digits = ""
        parts.append((1, 0, char))
    return tuple(parts)


def parse_blkid_export(text: str) -> dict[str, str]:
    """`blkid -p -o export` output -> {TYPE: ext4, UUID: ..., ...}."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def mountinfo_by_device(text: str) -> dict[str, list[str]]:
    """/proc/self/mountinfo -> {"maj:min": [mount points]}."""
    mounts: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 4:
            point = fields[4].encode().decode("unicode_escape")  # \040 for spaces
            mounts.setdefault(fields[2], []).append(point)
    return mounts


def wait_for(
    look: Callable[[], tuple[Disk | None, str]],
    timeout: float,
    delay: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Disk | None, str, float]:
    """Look until the device is there or the deadline passes; looks at least once."""
    start = clock()
    while True:
        disk, why = look()
        elapsed = clock() - start
        if disk is not None or elapsed >= timeout:
            return disk, why, elapsed
        sleep(max(0.0, min(delay, timeout - elapsed)))


# --------------------------------------------------------------------------- reading


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _majmin(path: str) -> str:
    rdev = os.stat(path).st_rdev
    return f"{os.major(rdev)}:{os.minor(rdev)}"


def _is_blank(path: str, size: int) -> bool | None:
    """True when the first and the last `size` bytes are zero; None when unreadable."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(size)
            end = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, end - size))
            tail = handle.read(size)
    except OSError:
        return None
    return not head.strip(b"\0") and not tail.strip(b"\0")


class Reader:
    """Reads devices for the decisions above: the module's only contact with the host."""

    def __init__(self, module: AnsibleModule, probe_bytes: int):
        self.module = module
        self.probe_bytes = probe_bytes
        self.blkid = module.get_bin_path("blkid", required=True)

    def mounts(self) -> dict[str, list[str]]:
        return mountinfo_by_device(_read("/proc/self/mountinfo"))

    def nvme_disks(self) -> dict[str, tuple[str, str]]:
        """/dev/nvmeXnY -> (model, serial), from sysfs (/sys/block lists whole disks only)."""
        return {
            "/dev/" + os.path.basename(sys_dir): (
                _read(sys_dir + "/device/model"),
                _read(sys_dir + "/device/serial"),
            )
            for sys_dir in glob.glob("/sys/block/nvme*n*")
        }

    def disk(self, path: str, link: str = "") -> Disk:
        real = os.path.realpath(path)
        sys_dir = "/sys/class/block/" + os.path.basename(real)
        disk = Disk(path=real, link=link or path)
        rc, out, err = self.module.run_command([self.blkid, "-p", "-o", "export", real])
        if rc not in (0, 2):  # 2: no signature found
            self.module.fail_json(msg=f"blkid -p {real} failed (rc {rc}): {err.strip()}")
        tags = parse_blkid_export(out)
        disk.fstype, disk.usage = tags.get("TYPE", ""), tags.get("USAGE", "")
        disk.uuid, disk.label = tags.get("UUID", ""), tags.get("LABEL", "")
        disk.pttype = tags.get("PTTYPE", "")
        if os.path.isdir(sys_dir):
            disk.partitions = sorted(
                entry
                for entry in os.listdir(sys_dir)
                if os.path.isfile(os.path.join(sys_dir, entry, "partition"))
            )
            disk.holders = sorted(os.listdir(os.path.join(sys_dir, "holders")))
        disk.mounted_at = self.mounts().get(_majmin(real), [])
        if not disk.fstype and not disk.pttype:
            disk.blank = _is_blank(real, self.probe_bytes)
        return disk

    def mount_point_device(self, mount_point: str) -> str:
        """The device node mounted at mount_point; '' when nothing is, maj:min when no disk."""
        for majmin, points in self.mounts().items():
            if mount_point in points:
                sys_path = "/sys/dev/block/" + majmin
                if os.path.exists(sys_path):
                    return "/dev/" + os.path.basename(os.path.realpath(sys_path))
                return majmin
        return ""

    def find(self, params: dict) -> tuple[Disk | None, str]:
        """One look for the device: (disk, why) or (None, what is missing)."""
        source = params["source"]
        if source == "instance_store":
            probed = []
            for dev, (model, serial) in self.nvme_disks().items():
                disk = self.disk(dev)
                disk.model, disk.serial = model, serial
                probed.append(disk)
            return choose_instance_store(
                probed,
                params["instance_store_models"],
                params["fstype"],
                params["label"],
                params["mount_point"],
            )
        serials = {}
        if source == "ebs":
            serials = {dev: serial for dev, (_model, serial) in self.nvme_disks().items()}
        links = candidate_links(source, params, serials)
        for link in links:
            if os.path.exists(link):
                return self.disk(link, link), "found as " + link
        return None, f"none of {', '.join(links)} exists"


def main():
    module = AnsibleModule(
        argument_spec=dict(
            source=dict(
                type="str", default="path", choices=["path", "ebs", "azure_lun", "instance_store"]
            ),
            device=dict(type="str", default=""),
            ebs_volume_id=dict(type="str", default=""),
            ebs_device_name=dict(type="str", default=""),
            azure_lun=dict(type="int", default=0),
            instance_store_models=dict(type="list", elements="str", default=[]),
            fstype=dict(type="str", required=True),
            label=dict(type="str", default=""),
            mount_point=dict(type="path", required=True),
            timeout=dict(type="int", default=300),
            delay=dict(type="float", default=2),
            probe_bytes=dict(type="int", default=1048576),
        ),
        required_if=[("source", "path", ["device"]), ("source", "ebs", ["ebs_volume_id"])],
        supports_check_mode=True,
    )
    params = module.params
    reader = Reader(module, params["probe_bytes"])
    disk, why, waited = wait_for(lambda: reader.find(params), params["timeout"], params["delay"])
    if disk is None:
        module.fail_json(
            msg=f"volume_mount: no device for source {params['source']} after "
            f"{round(waited)} s: {why}",
            waited=waited,
        )
    decision = plan(
        disk,
        params["fstype"],
        params["mount_point"],
        reader.mount_point_device(params["mount_point"]),
    )
    reason = decision.reason
    if params["source"] == "instance_store":
        reason = f"{why}; {reason}"
    module.exit_json(
        changed=False,
        device=disk.path,
        link=disk.link,
        action=decision.action,
        reason=reason,
        fstype=disk.fstype,
        uuid=disk.uuid,
        label=disk.label,
        mounted_at=disk.mounted_at,
        waited=waited,
    )


if __name__ == "__main__":
    main()
