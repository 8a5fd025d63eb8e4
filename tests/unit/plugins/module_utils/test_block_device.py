"""plugins/module_utils/block_device.py, the decisions of volume_mount_device: which device,
format or not."""

from __future__ import annotations

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils import block_device as vmd

Disk = vmd.Disk
MNT = "/mnt/rlops"
STORE = "Amazon EC2 NVMe Instance Storage"


def blank(path="/dev/nvme1n1", **kw):
    return Disk(path=path, blank=True, **kw)


# --- names ---------------------------------------------------------------------------


def test_ebs_names_nitro_link_then_serial_then_xen_names():
    params = {"ebs_volume_id": "vol-0abc123def4567890", "ebs_device_name": "sdf"}
    serials = {"/dev/nvme2n1": "vol0abc123def4567890", "/dev/nvme0n1": "vol0other"}
    assert vmd.candidate_links("ebs", params, serials) == [
        "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc123def4567890",
        "/dev/nvme2n1",
        "/dev/sdf",
        "/dev/xvdf",
    ]


def test_ebs_without_device_name_looks_only_for_nvme_names():
    params = {"ebs_volume_id": "vol-0123", "ebs_device_name": ""}
    assert vmd.candidate_links("ebs", params, {}) == [
        "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123"
    ]


@pytest.mark.parametrize(
    "name,renamed", [("/dev/sdf", "/dev/xvdf"), ("sdg", "/dev/xvdg"), ("/dev/xvdh", "")]
)
def test_xen_rename(name, renamed):
    assert vmd.xen_rename(name) == renamed


def test_azure_lun_names():
    assert vmd.candidate_links("azure_lun", {"azure_lun": 3}, {}) == [
        "/dev/disk/azure/scsi1/lun3",
        "/dev/disk/azure/data/by-lun/3",
    ]


def test_path_is_taken_as_given():
    assert vmd.candidate_links("path", {"device": "/dev/vdb"}, {}) == ["/dev/vdb"]


# --- format or not -------------------------------------------------------------------


def test_blank_device_is_formatted():
    assert vmd.plan(blank(), "ext4", MNT).action == "format"


def test_same_file_system_is_mounted_not_formatted():
    disk = Disk(path="/dev/nvme1n1", fstype="ext4", usage="filesystem", uuid="u-1")
    decision = vmd.plan(disk, "ext4", MNT)
    assert decision.action == "mount"
    assert "u-1" in decision.reason


def test_other_file_system_is_refused_naming_both():
    disk = Disk(path="/dev/nvme1n1", fstype="xfs", usage="filesystem")
    decision = vmd.plan(disk, "ext4", MNT)
    assert decision.action == "refuse"
    assert "xfs file system, not ext4" in decision.reason
    assert "never reformatted" in decision.reason


@pytest.mark.parametrize(
    "fstype,usage", [("swap", "other"), ("LVM2_member", "raid"), ("crypto_LUKS", "crypto")]
)
def test_non_file_system_signatures_are_refused(fstype, usage):
    decision = vmd.plan(Disk(path="/dev/sdb", fstype=fstype, usage=usage), "ext4", MNT)
    assert decision.action == "refuse"
    assert fstype in decision.reason


def test_signature_free_device_with_data_is_refused():
    decision = vmd.plan(Disk(path="/dev/sdb", blank=False), "ext4", MNT)
    assert decision.action == "refuse"
    assert "not blank" in decision.reason


def test_unread_device_is_not_taken_for_blank():
    assert vmd.plan(Disk(path="/dev/sdb", blank=None), "ext4", MNT).action == "refuse"


def test_partition_table_is_refused():
    decision = vmd.plan(Disk(path="/dev/sdb", pttype="gpt", partitions=["sdb1"]), "ext4", MNT)
    assert decision.action == "refuse"
    assert "gpt" in decision.reason and "sdb1" in decision.reason


def test_device_in_use_by_device_mapper_is_refused():
    assert vmd.plan(blank(holders=["dm-0"]), "ext4", MNT).action == "refuse"


def test_device_mounted_elsewhere_is_refused():
    disk = Disk(path="/dev/sdb", fstype="ext4", usage="filesystem", mounted_at=["/srv"])
    decision = vmd.plan(disk, "ext4", MNT)
    assert decision.action == "refuse"
    assert "/srv" in decision.reason


def test_device_already_at_the_mount_point_is_mounted():
    disk = Disk(path="/dev/sdb", fstype="ext4", usage="filesystem", mounted_at=[MNT])
    assert vmd.plan(disk, "ext4", MNT, mount_point_device="/dev/sdb").action == "mount"


def test_mount_point_taken_by_another_device_is_refused():
    disk = Disk(path="/dev/sdb", fstype="ext4", usage="filesystem")
    decision = vmd.plan(disk, "ext4", MNT, mount_point_device="/dev/sdc")
    assert decision.action == "refuse"
    assert "/dev/sdc" in decision.reason


def test_reason_names_the_link_it_was_found_by():
    disk = Disk(path="/dev/loop3", link="/dev/disk/by-id/x", fstype="xfs", usage="filesystem")
    assert "/dev/loop3 (/dev/disk/by-id/x)" in vmd.plan(disk, "ext4", MNT).reason


# --- instance store ------------------------------------------------------------------


def test_instance_store_takes_the_first_blank_local_disk_in_natural_order():
    disks = [
        blank("/dev/nvme10n1", model=STORE),
        blank("/dev/nvme0n1", model="Amazon Elastic Block Store"),
        Disk(path="/dev/nvme1n1", model=STORE, fstype="ext4", usage="filesystem", label="other"),
        blank("/dev/nvme2n1", model=STORE),
    ]
    disk, why = vmd.choose_instance_store(disks, [STORE], "ext4", "rlops-data", MNT)
    assert disk.path == "/dev/nvme2n1"
    assert "first unused" in why


def test_instance_store_prefers_its_own_label_on_a_second_run():
    disks = [
        blank("/dev/nvme1n1", model=STORE),
        Disk(
            path="/dev/nvme2n1", model=STORE, fstype="ext4", usage="filesystem", label="rlops-data"
        ),
    ]
    disk, _why = vmd.choose_instance_store(disks, [STORE], "ext4", "rlops-data", MNT)
    assert disk.path == "/dev/nvme2n1"


def test_instance_store_prefers_the_disk_at_the_mount_point():
    disks = [
        Disk(
            path="/dev/nvme1n1", model=STORE, fstype="ext4", usage="filesystem", label="rlops-data"
        ),
        Disk(path="/dev/nvme2n1", model=STORE, fstype="ext4", usage="filesystem", mounted_at=[MNT]),
    ]
    disk, _why = vmd.choose_instance_store(disks, [STORE], "ext4", "rlops-data", MNT)
    assert disk.path == "/dev/nvme2n1"


def test_no_instance_store_names_what_was_seen():
    disks = [blank("/dev/nvme0n1", model="Amazon Elastic Block Store")]
    disk, why = vmd.choose_instance_store(disks, [STORE], "ext4", "", MNT)
    assert disk is None
    assert "nvme0n1 (Amazon Elastic Block Store)" in why


def test_every_instance_store_disk_used_is_reported():
    disks = [Disk(path="/dev/nvme1n1", model=STORE, fstype="xfs", usage="filesystem")]
    disk, why = vmd.choose_instance_store(disks, [STORE], "ext4", "rlops-data", MNT)
    assert disk is None
    assert "in use" in why and "xfs" in why


# --- parsing and waiting -------------------------------------------------------------


def test_parse_blkid_export():
    out = "DEVNAME=/dev/loop0\nLABEL=rlops-data\nUUID=ded0\nTYPE=ext4\nUSAGE=filesystem\n"
    assert vmd.parse_blkid_export(out) == {
        "DEVNAME": "/dev/loop0",
        "LABEL": "rlops-data",
        "UUID": "ded0",
        "TYPE": "ext4",
        "USAGE": "filesystem",
    }
    assert vmd.parse_blkid_export("LABEL=rlops\\ data\\\\x\n") == {"LABEL": "rlops data\\x"}


def test_disk_from_blkid_takes_the_signature_and_a_partition_table():
    disk = vmd.disk_from_blkid("/dev/loop0", "/dev/disk/x", "TYPE=xfs\nUSAGE=filesystem\nUUID=u1\n")
    assert (disk.path, disk.link, disk.fstype, disk.usage, disk.uuid) == (
        "/dev/loop0", "/dev/disk/x", "xfs", "filesystem", "u1")
    assert vmd.disk_from_blkid("/dev/sdb", "/dev/sdb", "PTTYPE=gpt\n").pttype == "gpt"


def test_mountinfo_by_device_unescapes_spaces():
    text = (
        "36 25 7:3 / /mnt/rlops rw,relatime shared:1 - ext4 /dev/loop3 rw\n"
        "37 25 7:3 / /mnt/with\\040space rw - ext4 /dev/loop3 rw\n"
        "38 25 0:31 / / rw - overlay overlay rw\n"
    )
    assert vmd.mountinfo_by_device(text) == {
        "7:3": ["/mnt/rlops", "/mnt/with space"],
        "0:31": ["/"],
    }


def test_mkfs_argv_forces_on_the_blank_disk_keeps_the_label_whole_and_splits_the_options():
    assert vmd.mkfs_argv("/sbin/mkfs.ext4", "ext4", "rlops data", "-m 0 -E 'a=b c'", "/dev/x") == [
        "/sbin/mkfs.ext4", "-F", "-L", "rlops data", "-m", "0", "-E", "a=b c", "/dev/x"]
    assert vmd.mkfs_argv("mkfs.xfs", "xfs", "", "", "/dev/y") == ["mkfs.xfs", "-f", "/dev/y"]
