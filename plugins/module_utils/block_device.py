# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Which block device is the data volume, and what may be done with it.

Pure functions, no I/O: the volume_mount_device module reads the host (blkid, sysfs,
mountinfo) and calls them; tests/unit/plugins/module_utils/test_block_device.py tests them
without a device. Anything that may hold data is refused, never formatted.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field

EBS_NVME_LINK = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{serial}"
AZURE_LUN_LINKS = ("/dev/disk/azure/scsi1/lun{lun}", "/dev/disk/azure/data/by-lun/{lun}")
FS_USAGES = ("", "filesystem")
# mkfs asks before writing on a whole disk: the flag that says yes (the device was just
# probed blank; community.general.filesystem passes the same ones).
MKFS_FORCE_FLAGS = {"ext4": ["-F"], "xfs": ["-f"]}


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


def mkfs_argv(mkfs: str, fstype: str, label: str, options: str, device: str) -> list[str]:
    """The command that makes the file system on a device planned for `format`: the force
    flag, the label (one argument, whatever it holds), then the user's options."""
    labelled = ["-L", label] if label else []
    return [mkfs, *MKFS_FORCE_FLAGS.get(fstype, []), *labelled, *shlex.split(options), device]


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
    """`blkid -p -o export` output -> {TYPE: ext4, UUID: ..., ...}. blkid escapes what a shell
    would read otherwise (`LABEL=rlops\\ data`): the values come back as they are."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = re.sub(r"\\(.)", r"\1", value.strip())
    return values


def disk_from_blkid(path: str, link: str, export: str) -> Disk:
    """A Disk with what `blkid -p -o export` printed about it."""
    tags = parse_blkid_export(export)
    return Disk(path=path, link=link, fstype=tags.get("TYPE", ""), usage=tags.get("USAGE", ""),
                uuid=tags.get("UUID", ""), label=tags.get("LABEL", ""),
                pttype=tags.get("PTTYPE", ""))


def mountinfo_by_device(text: str) -> dict[str, list[str]]:
    """/proc/self/mountinfo -> {"maj:min": [mount points]}."""
    mounts: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 4:
            point = fields[4].encode().decode("unicode_escape")  # \040 for spaces
            mounts.setdefault(fields[2], []).append(point)
    return mounts
