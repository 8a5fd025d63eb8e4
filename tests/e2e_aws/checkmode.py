"""What `--check` may not change on the AWS path, read before and after the runs: every EC2
instance, volume, snapshot, security group (and rule), key pair, spot request and tag in
moto, every object of every S3 bucket the test has (moto's and the lab's storage), the
lab hosts that play instances (files, mounts, units, processes), and the controller's
results folder. The comparison is the harness's (tests/harness/snapshot.py)."""

from __future__ import annotations

from pathlib import Path

from awslab import IN_HOST_DISKS, MOUNT, Lab
from harness import Unchanged, tree_state

# Paths whose changes are not the playbooks' doing: the kernel's and systemd's runtime
# trees, temporary folders, logs (sshd records each login), Ansible's own remote temp
# folders, Python's bytecode caches, and the lab's loop-device backing files (the volume's
# content is read through its mount instead).
_PRUNED = ["/proc", "/sys", "/dev", "/run", "/tmp", "/var/tmp", "/var/log", "/var/cache",
           "/root/.ansible", "/home/*/.ansible", IN_HOST_DISKS]
_HOST_STATE = f"""
find / {MOUNT} -xdev \\( {' -o '.join(f"-path '{p}'" for p in _PRUNED)} -o -name __pycache__ \\) \\
    -prune -o -printf '%p %y %s %T@ %m %u:%g %l\\n' 2>/dev/null | sort -u
echo '--- mounts'
findmnt -rn -o TARGET,SOURCE,FSTYPE,OPTIONS | sort
echo '--- units'
systemctl list-units --all --plain --no-legend --no-pager 'rlops*' | sort
echo '--- processes'
ps -eo user,args --no-headers | grep -E '[r]lops|[s]upervisor' \\
    | grep -vF "echo '--- processes'" | sort
true
"""


def _all(client, operation: str, key: str, **kwargs) -> list:
    return [item for page in client.get_paginator(operation).paginate(**kwargs)
            for item in page.get(key, [])]


def cloud_state(ec2, s3_clients: dict) -> dict:
    """Everything the AWS path could create or change, as EC2 and S3 report it."""
    state = {
        "instances": [i for r in _all(ec2, "describe_instances", "Reservations")
                      for i in r["Instances"]],
        "volumes": _all(ec2, "describe_volumes", "Volumes"),
        "snapshots": _all(ec2, "describe_snapshots", "Snapshots", OwnerIds=["self"]),
        "security_groups": _all(ec2, "describe_security_groups", "SecurityGroups"),
        "security_group_rules": _all(ec2, "describe_security_group_rules",
                                     "SecurityGroupRules"),
        "key_pairs": ec2.describe_key_pairs()["KeyPairs"],
        "spot_requests": _all(ec2, "describe_spot_instance_requests",
                              "SpotInstanceRequests"),
        "tags": _all(ec2, "describe_tags", "Tags"),
    }
    for name, s3 in s3_clients.items():
        for bucket in s3.list_buckets()["Buckets"]:
            state[f"s3 {name} {bucket['Name']}"] = [
                (o["Key"], o["ETag"], o["Size"], str(o["LastModified"]))
                for o in _all(s3, "list_objects_v2", "Contents", Bucket=bucket["Name"])]
    return state


def host_state(lab: Lab, name: str) -> str:
    """Files (path, type, size, mtime, mode, owner, link), mounts, the rlops units and
    processes of the lab host that plays an instance."""
    return lab.exec(name, _HOST_STATE, timeout=300).stdout


def unchanged_on_aws(ec2, s3_clients: dict, lab: Lab, hosts: list[str],
                     results: Path) -> Unchanged:
    """The harness's Unchanged over the state of the cloud, the given lab hosts and the
    results folder: `.check(runs)` fails on any difference, naming what changed."""
    return Unchanged(lambda: {
        "the cloud": cloud_state(ec2, s3_clients),
        **{f"lab host {host}": host_state(lab, host).splitlines() for host in hosts},
        f"the results folder {results}": tree_state(results)})
