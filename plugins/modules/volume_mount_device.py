#!/usr/bin/python
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Internal module of the volume_mount role: find the data volume, give it a file system only
when blank."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: volume_mount_device
short_description: Find the data volume's block device; make its file system only when it is blank
version_added: 0.1.0
description:
  - Internal module of the rlops.fleet.volume_mount role.
  - Finds the device named by a path, an EBS volume id (Nitro NVMe by-id link or NVMe
    serial, then the Xen C(/dev/sdX) name and its C(/dev/xvdX) rename), an Azure data-disk
    LUN, or the first unused local NVMe instance-store disk, waiting up to O(timeout)
    seconds for it to appear.
  - Probes it (C(blkid -p), partitions, holders, mounts, the first and last MiB) and returns
    C(action) C(mount) (it holds a file system of O(fstype)) or C(format) (it is blank).
    A device that holds anything else fails with the reason; a device that holds data is
    never formatted.
  - A blank device is probed once more, then given the file system (C(mkfs.<fstype>) with
    the label O(label) and O(mkfs_options)); a signature that appeared in between still
    stops it.
author:
  - rlops.fleet developers (!UNKNOWN)
attributes:
  check_mode:
    description: Finds and probes the device (reads only) and reports the format it would do.
    support: full
  diff_mode:
    description: Nothing to show a difference of; RV(formatted) says what changed.
    support: none
  idempotent:
    description: A device formatted by a first run holds its file system; a second run mounts it.
    support: full
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
      - Label given to a new file system; empty for none. With O(source=instance_store) a
        disk carrying this label and O(fstype) is chosen before any blank disk, so that a
        second run finds the same disk.
    type: str
    default: ""
  mkfs_options:
    description: More options for C(mkfs.<fstype>), split as a shell would.
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
  description: C(mount) or C(format).
  type: str
  returned: always
formatted:
  description: Whether the file system was made (or would be, in check mode).
  type: bool
  returned: always
reason:
  description: Why, in one sentence.
  type: str
  returned: always
fstype:
  description: File system type on the device, empty when none (a blank one in check mode).
  type: str
  returned: always
uuid:
  description: File system UUID (the new one after a format), empty when none.
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
volume:
  description: What the role reports as C(volume_mount_result).
  type: dict
  returned: always
  sample:
    device: /dev/nvme1n1
    link: /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0
    uuid: 0b6c5f0e-3c1a-4d2e-9f4b-2a7d8c1e5b60
    fstype: ext4
    path: /mnt/rlops
    formatted: false
"""

import glob
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rlops.fleet.plugins.module_utils.block_device import (
    Disk,
    Plan,
    candidate_links,
    choose_instance_store,
    disk_from_blkid,
    mkfs_argv,
    mountinfo_by_device,
    plan,
)
from ansible_collections.rlops.fleet.plugins.module_utils.sysfs import read_text
from ansible_collections.rlops.fleet.plugins.module_utils.waiting import WaitTimeout, wait_for

# The decisions are module_utils/block_device.py; this file only reads the host.


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
    """Reads devices for block_device's decisions: the module's only contact with the host."""

    def __init__(self, module: AnsibleModule, probe_bytes: int):
        self.module = module
        self.probe_bytes = probe_bytes
        self.blkid = module.get_bin_path("blkid", required=True)

    def mounts(self) -> dict[str, list[str]]:
        return mountinfo_by_device(read_text("/proc/self/mountinfo"))

    def nvme_disks(self) -> dict[str, tuple[str, str]]:
        """/dev/nvmeXnY -> (model, serial), from sysfs (/sys/block lists whole disks only)."""
        return {
            "/dev/" + os.path.basename(sys_dir): (
                read_text(sys_dir + "/device/model"),
                read_text(sys_dir + "/device/serial"),
            )
            for sys_dir in glob.glob("/sys/block/nvme*n*")
        }

    def disk(self, path: str, link: str = "") -> Disk:
        real = os.path.realpath(path)
        sys_dir = "/sys/class/block/" + os.path.basename(real)
        rc, out, err = self.module.run_command([self.blkid, "-p", "-o", "export", real])
        if rc not in (0, 2):  # 2: no signature found
            self.module.fail_json(msg=f"blkid -p {real} failed (rc {rc}): {err.strip()}")
        disk = disk_from_blkid(real, link or path, out)
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
            return choose_instance_store(probed, params["instance_store_models"], params["fstype"],
                                         params["label"], params["mount_point"])
        serials = {}
        if source == "ebs":
            serials = {dev: serial for dev, (_model, serial) in self.nvme_disks().items()}
        links = candidate_links(source, params, serials)
        for link in links:
            if os.path.exists(link):
                return self.disk(link, link), "found as " + link
        return None, f"none of {', '.join(links)} exists"

    def decide(self, disk: Disk, params: dict, prefix: str = "") -> Plan:
        """The plan for the disk; a refusal fails the module with its reason."""
        mount_point = params["mount_point"]
        decision = plan(disk, params["fstype"], mount_point, self.mount_point_device(mount_point))
        if decision.action == "refuse":
            self.module.fail_json(msg="volume_mount: " + prefix + decision.reason, device=disk.path)
        return decision

    def make_file_system(self, disk: Disk, params: dict) -> Disk:
        """mkfs on a disk planned for format, probed once more first (a signature that
        appeared since stops it), then read again for the new file system's UUID."""
        self.decide(self.disk(disk.path, disk.link), params)
        fstype = params["fstype"]
        mkfs = self.module.get_bin_path("mkfs." + fstype, required=True)
        self.module.run_command(
            mkfs_argv(mkfs, fstype, params["label"], params["mkfs_options"], disk.path),
            check_rc=True)
        return self.disk(disk.path, disk.link)


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
            mkfs_options=dict(type="str", default=""),
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
    try:
        (disk, why), waited = wait_for(
            lambda: reader.find(params), lambda found: found[0] is not None,
            params["timeout"], params["delay"])
    except WaitTimeout as exc:
        module.fail_json(
            msg=f"volume_mount: no device for source {params['source']} after "
            f"{round(exc.elapsed)} s: {exc.last[1]}",
            waited=exc.elapsed,
        )
    # instance_store says which disk it chose, and why, before what it decided.
    prefix = f"{why}; " if params["source"] == "instance_store" else ""
    decision = reader.decide(disk, params, prefix)
    formatted = decision.action == "format"
    if formatted and not module.check_mode:
        disk = reader.make_file_system(disk, params)
    module.exit_json(
        changed=formatted,
        device=disk.path,
        link=disk.link,
        action=decision.action,
        formatted=formatted,
        reason=prefix + decision.reason,
        fstype=disk.fstype,
        uuid=disk.uuid,
        label=disk.label,
        mounted_at=disk.mounted_at,
        waited=waited,
        volume=dict(device=disk.path, link=disk.link, uuid=disk.uuid, fstype=params["fstype"],
                    path=params["mount_point"], formatted=formatted),
    )


if __name__ == "__main__":
    main()
