"""rlops.fleet.volume_mount's checks (plugins/filter/volume_mount_problems.py): every problem,
each message naming the setting, with the role's own defaults as the good case."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.rlops.fleet.plugins.filter.volume_mount_problems import (
    volume_mount_problems,
)

ROLE = Path(__file__).resolve().parents[4] / "roles" / "volume_mount"
ROLE_VARS = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
# The defaults, with the device a path source needs and the data dir templated as Ansible would.
GOOD = {name: DEFAULTS[name] for name in ROLE_VARS["__volume_mount_checked"]}
GOOD.update(volume_mount_device="/dev/xvdf", volume_mount_container_data_dir="/mnt/rlops/docker")


def problems(**changes):
    return volume_mount_problems(
        {**GOOD, **{"volume_mount_" + name: value for name, value in changes.items()}})


def test_every_checked_setting_is_an_input_and_the_defaults_have_no_problem():
    assert set(ROLE_VARS["__volume_mount_checked"]) <= set(DEFAULTS)
    assert problems() == []
    assert problems(source="ebs", ebs_volume_id="vol-0123456789abcdef0",
                    ebs_device_name="/dev/sdf") == []
    assert problems(fstype="xfs", fs_label="rlops-data12", mode="750") == []
    assert problems(container_data_root=True) == []


@pytest.mark.parametrize("changes, message", [
    ({"path": "mnt/rlops"}, "volume_mount_path (mnt/rlops) must be an absolute path other than /,"
     " without a trailing /"),
    ({"path": "/"}, "volume_mount_path (/) must be an absolute path other than /, without a"
     " trailing /"),
    ({"path": "/mnt/rlops/"}, "volume_mount_path (/mnt/rlops/) must be an absolute path other"
     " than /, without a trailing /"),
    ({"device": "xvdf"}, "volume_mount_device (xvdf) must be an absolute device path with"
     " volume_mount_source=path"),
    ({"source": "ebs", "ebs_volume_id": "vol-12"}, "volume_mount_ebs_volume_id 'vol-12' is not an"
     " EBS volume id (vol-0123456789abcdef0) and volume_mount_source=ebs needs one"),
    ({"ebs_device_name": "/dev/nvme1n1"}, "volume_mount_ebs_device_name (/dev/nvme1n1) must look"
     " like /dev/sdf or /dev/xvdf"),
    ({"azure_lun": "-1"}, "volume_mount_azure_lun must not be negative"),
    ({"source": "instance_store", "instance_store_models": []}, "volume_mount_instance_store_models"
     " must name at least one model with volume_mount_source=instance_store"),
    ({"wait_timeout": -5}, "volume_mount_wait_timeout must not be negative"),
    ({"fstype": "xfs"}, "volume_mount_fs_label 'rlops-data' is longer than xfs allows"
     " (12 characters)") if len(DEFAULTS["volume_mount_fs_label"]) > 12 else
    ({"fs_label": "a-much-too-long-label"}, "volume_mount_fs_label 'a-much-too-long-label' is"
     " longer than ext4 allows (16 characters)"),
    ({"mode": "rwxr-x---"}, "volume_mount_mode (rwxr-x---) must be an octal mode such as '0755'"),
    ({"options": ["defaults,noatime"]}, "volume_mount_options must list one option per item"
     " (no commas or spaces)"),
    ({"container_data_root": "yes", "container_data_dir": "/var/lib/docker"},
     "volume_mount_container_data_dir (/var/lib/docker) must be under volume_mount_path"
     " (/mnt/rlops)"),
])
def test_each_problem_is_told_with_the_setting_and_why(changes, message):
    assert problems(**changes) == [message]


def test_every_problem_is_told_at_once_and_the_path_is_not_a_pattern():
    assert len(problems(path="relative", mode="x", wait_timeout=-1)) == 3
    assert problems(path="/mnt/a.b", container_data_root=True,
                    container_data_dir="/mnt/aXb/docker") == [
        "volume_mount_container_data_dir (/mnt/aXb/docker) must be under volume_mount_path"
        " (/mnt/a.b)"]
