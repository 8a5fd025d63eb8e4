"""The AWS provider's settings check (plugins/filter/aws_settings_problem.py): the first
problem, in the order the provider asks, with the message that names the setting."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.rlops.fleet.plugins.filter.aws_settings_problem import (
    CONNECT_KEYS,
    aws_settings_problem,
)

REPO = Path(__file__).resolve().parents[4]
# The session role's defaults of every rlops_aws_* setting, with an AMI (the default is '').
with (REPO / "roles" / "session" / "defaults" / "main.yml").open() as _handle:
    DEFAULTS = {k: v for k, v in yaml.safe_load(_handle).items() if k.startswith("rlops_aws_")}
GOOD = {**DEFAULTS, "rlops_aws_region": "us-east-1", "rlops_aws_image_id": "ami-0123abcd",
        "rlops_aws_public_key_file": "/home/me/.ssh/id_ed25519.pub"}


def problem(hosts_listed=(), key_file_exists=True, **changes):
    return aws_settings_problem({**GOOD, **changes}, "trainers", hosts_listed, key_file_exists)


def test_good_settings_have_no_problem() -> None:
    assert problem() == ""
    assert problem(rlops_aws_public_key_file="", key_file_exists=False) == ""
    assert problem(rlops_aws_vpc_id="vpc-1", rlops_aws_subnet_ids={"us-east-1a": "subnet-1"}) == ""
    assert problem(rlops_aws_ssh_cidr="203.0.113.7/32", rlops_aws_volume_id="vol-0abc") == ""
    assert problem(rlops_aws_volume_size="20", rlops_aws_connect={"ansible_port": 2222}) == ""


@pytest.mark.parametrize(("changes", "message"), [
    ({"hosts_listed": ["lab-1", "lab-2"]},
     "rlops_provider aws adds the session's instance to the group trainers, but the inventory "
     "already lists hosts there (lab-1, lab-2): use an inventory whose trainers group is empty "
     "(inventories/aws)"),
    ({"rlops_aws_region": "  "}, "rlops_aws_region is empty (set it, or AWS_REGION)"),
    ({"rlops_aws_instance_types": []}, "rlops_aws_instance_types must list at least one"),
    ({"rlops_aws_instance_types": "g4dn.xlarge"}, "rlops_aws_instance_types must list"),
    ({"rlops_aws_image_id": "ubuntu-22.04"},
     "rlops_aws_image_id 'ubuntu-22.04' is not an AMI id (ami-0123...): name the image to boot"),
    ({"rlops_aws_availability_zones": "us-east-1a"}, "rlops_aws_availability_zones must be a list"),
    ({"rlops_aws_tags": ["a"]}, "rlops_aws_tags, rlops_aws_connect and rlops_aws_subnet_ids"),
    ({"rlops_aws_connect": {"ansible_become_user": "x"}},
     "rlops_aws_connect knows only " + ", ".join(CONNECT_KEYS) + "; got ansible_become_user"),
    ({"rlops_aws_vpc_id": "vpc-0123"}, "rlops_aws_vpc_id vpc-0123 needs rlops_aws_subnet_ids"),
    ({"rlops_aws_address": "elastic"}, "rlops_aws_address must be public or private, got elastic"),
    ({"rlops_aws_ssh_cidr": "203.0.113.7"}, "rlops_aws_ssh_cidr '203.0.113.7' is not an IPv4 CIDR"),
    ({"rlops_aws_volume_id": "vol-XYZ"}, "rlops_aws_volume_id 'vol-XYZ' is not a volume id"),
    ({"rlops_aws_volume_size": "big"}, "rlops_aws_volume_size and rlops_aws_wait_timeout must be"),
    ({"rlops_aws_wait_timeout": 0}, "rlops_aws_volume_size and rlops_aws_wait_timeout must be"),
    ({"key_file_exists": False},
     "rlops_aws_public_key_file /home/me/.ssh/id_ed25519.pub is not a file on the controller "
     "(set it to your SSH public key, or to '' to use the existing key pair rlops)"),
])
def test_each_problem_is_named(changes, message) -> None:
    assert problem(**changes).startswith(message)


def test_the_first_problem_is_said() -> None:
    assert problem(rlops_aws_region="", rlops_aws_image_id="x").startswith("rlops_aws_region")
    assert problem(["h"], rlops_aws_region="").startswith("rlops_provider aws adds")
