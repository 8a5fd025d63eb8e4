"""What `--check` may not change on the AWS path, read before and after the runs: every EC2
instance, volume, snapshot, security group (and rule), key pair, spot request and tag in
moto, every object of every S3 bucket the test has (moto's and the lab's storage), the
lab hosts that play instances (files, mounts, units, processes), and the controller's
results folder."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from awslab import IN_HOST_DISKS, MOUNT, Lab

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


def results_state(results: Path) -> list[str]:
    """The controller's results folder: every path with its size and mtime."""
    if not results.exists():
        return []
    return sorted(f"{p.relative_to(results)} {p.stat().st_size} {p.stat().st_mtime_ns}"
                  for p in results.rglob("*"))


def assert_unchanged(before, after, what: str) -> None:
    if before == after:
        return
    lines = difflib.unified_diff(
        json.dumps(before, indent=1, sort_keys=True, default=str).splitlines(),
        json.dumps(after, indent=1, sort_keys=True, default=str).splitlines(),
        "before", "after", lineterm="", n=2)
    raise AssertionError(f"--check changed {what}:\n" + "\n".join(list(lines)[:200]))


class Unchanged:
    """Take the state of the cloud, the given lab hosts and the results folder now; `check()`
    takes it again and fails on any difference, naming what changed."""

    def __init__(self, ec2, s3_clients: dict, lab: Lab, hosts: list[str], results: Path):
        self.ec2, self.s3_clients, self.lab = ec2, s3_clients, lab
        self.hosts, self.results = hosts, results
        self.before = self.read()

    def read(self) -> dict:
        return {"cloud": cloud_state(self.ec2, self.s3_clients),
                "hosts": {h: host_state(self.lab, h) for h in self.hosts},
                "results": results_state(self.results)}

    def check(self, runs: str) -> None:
        after = self.read()
        assert_unchanged(self.before["cloud"], after["cloud"], f"the cloud ({runs})")
        for host in self.hosts:
            assert_unchanged(self.before["hosts"][host].splitlines(),
                             after["hosts"][host].splitlines(), f"lab host {host} ({runs})")
        assert_unchanged(self.before["results"], after["results"],
                         f"the results folder {self.results} ({runs})")
