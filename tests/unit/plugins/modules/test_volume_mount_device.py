"""plugins/modules/volume_mount_device.py run in-process against image files (blkid reads
them as it reads a device, mkfs writes them as it writes one): its reading, its refusals, the
file system it makes on a blank image only, and its one answer. The decisions are tested in
tests/unit/plugins/module_utils/test_block_device.py, the wait in test_waiting.py."""

import shutil
import subprocess

import pytest
from ansible_collections.rlops.fleet.plugins.modules import volume_mount_device as vmd

pytestmark = pytest.mark.skipif(not shutil.which("blkid"), reason="needs blkid")


def find(run_module, device, **extra):
    args = {"source": "path", "device": str(device), "fstype": "ext4",
            "mount_point": "/mnt/rlops-unit-test", "timeout": 0, "delay": 0, **extra}
    return run_module(vmd.main, args, common={})


def test_check_mode_on_a_blank_image_says_it_would_format_and_writes_nothing(
        run_module, tmp_path):
    image = tmp_path / "blank.img"
    image.write_bytes(bytes(4 << 20))
    result, failed = find(run_module, image, probe_bytes=65536, _ansible_check_mode=True)
    assert not failed and result["action"] == "format" and result["device"] == str(image)
    assert result["reason"].endswith("is blank") and result["changed"] is True
    assert result["uuid"] == "" and result["volume"]["formatted"] is True
    assert image.read_bytes() == bytes(4 << 20)


@pytest.mark.skipif(not shutil.which("mkfs.ext4"), reason="needs mkfs.ext4")
def test_a_blank_image_is_formatted_once_with_the_label(run_module, tmp_path):
    image = tmp_path / "blank.img"
    image.write_bytes(bytes(8 << 20))
    result, failed = find(run_module, image, label="rlops data", mkfs_options="-m 0")
    assert not failed and result["changed"] is True and result["formatted"] is True
    assert result["fstype"] == "ext4" and result["label"] == "rlops data" and result["uuid"]
    assert result["volume"] == {"device": str(image), "link": str(image), "uuid": result["uuid"],
                                "fstype": "ext4", "path": "/mnt/rlops-unit-test",
                                "formatted": True}
    again, failed = find(run_module, image, label="rlops data")
    assert not failed and again["changed"] is False and again["action"] == "mount"
    assert again["uuid"] == result["uuid"] and again["volume"]["formatted"] is False


def test_an_image_with_bytes_at_its_end_is_refused(run_module, tmp_path):
    image = tmp_path / "data.img"
    image.write_bytes(bytes(4 << 20) + b"data")
    result, failed = find(run_module, image, probe_bytes=65536)
    assert failed and "not blank" in result["msg"] and result["msg"].startswith("volume_mount: ")
    assert image.read_bytes() == bytes(4 << 20) + b"data"


@pytest.mark.skipif(not shutil.which("mkfs.ext4"), reason="needs mkfs.ext4")
def test_an_ext4_image_is_mounted_by_its_uuid(run_module, tmp_path):
    image = tmp_path / "ext4.img"
    image.write_bytes(bytes(8 << 20))
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "rlops-data", str(image)], check=True)
    result, failed = find(run_module, image)
    assert not failed and result["action"] == "mount" and result["label"] == "rlops-data"
    assert result["changed"] is False
    assert result["fstype"] == "ext4" and result["uuid"] and result["uuid"] in result["reason"]
    result, failed = find(run_module, image, fstype="xfs")
    assert failed and "never reformatted" in result["msg"] and "changed" not in result


def test_a_missing_device_fails_after_the_wait_with_what_was_looked_for(run_module, tmp_path):
    result, failed = find(run_module, tmp_path / "absent", timeout=0)
    assert failed and result["msg"] == (
        f"volume_mount: no device for source path after 0 s: none of {tmp_path / 'absent'} exists")
    assert result["waited"] >= 0
