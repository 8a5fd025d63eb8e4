"""Helpers of the lab benchmarks (lab_idempotence, lab_fleet): playbook records, per play,
per role, per setting. The lab itself (hosts, wheelhouse, playbook runner) is the tests'
(tests/lab_hosts.py). Nothing here asserts on timing.
"""

from __future__ import annotations

import os
import re
import resource
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from _common import median

# Ansible settings compared by `--settings`: environment overrides of ansible.cfg.
# ssh_args without ControlPersist: Ansible then adds no ControlPath, so every task opens
# a new SSH connection (key exchange, authentication) instead of reusing one per host.
SETTINGS: dict[str, dict[str, str]] = {
    "ansible.cfg (pipelining, ControlPersist 60s)": {},
    "no ControlPersist": {"ANSIBLE_SSH_ARGS": "-o ControlMaster=no"},
    "no pipelining": {"ANSIBLE_PIPELINING": "false"},
    "neither": {"ANSIBLE_SSH_ARGS": "-o ControlMaster=no", "ANSIBLE_PIPELINING": "false"},
}


def _time(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _seconds(duration: dict[str, str]) -> float:
    if "start" not in duration or "end" not in duration:
        return 0.0
    return _time(duration["end"]) - _time(duration["start"])


def task_seconds(task: dict[str, Any]) -> float:
    return _seconds(task["task"]["duration"])


@dataclass
class PlayRecord:
    name: str
    seconds: float
    # "role/file" (e.g. "trainer/install") or "playbook" -> seconds of its tasks
    parts: dict[str, float] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)  # "task (host)" of every change
    tasks: int = 0
    task_seconds: dict[str, float] = field(default_factory=dict)  # by task name


def plays(record: dict[str, Any]) -> list[PlayRecord]:
    """What each play of an ansible.posix.json record took and changed."""
    out = []
    for play in record["plays"]:
        rec = PlayRecord(play["play"]["name"], _seconds(play["play"]["duration"]))
        parts: dict[str, float] = defaultdict(float)
        for task in play["tasks"]:
            if not task["hosts"]:
                continue
            rec.tasks += 1
            match = re.search(r"/roles/([^/]+)/tasks/([^/]+)\.yml:", task["task"]["path"])
            seconds = _seconds(task["task"]["duration"])
            parts[f"{match.group(1)}/{match.group(2)}" if match else "playbook"] += seconds
            name = task["task"]["name"]
            rec.task_seconds[name] = rec.task_seconds.get(name, 0.0) + seconds
            rec.changed += [f"{task['task']['name']} ({host})" for host, result
                            in task["hosts"].items() if result.get("changed")]
        rec.parts = dict(parts)
        out.append(rec)
    return out


def preparing_play(record: dict[str, Any]) -> PlayRecord:
    """The play that runs the trainer role (with the host roles before it)."""
    for rec in plays(record):
        if any(part.startswith("trainer/") for part in rec.parts):
            return rec
    raise RuntimeError("no play ran the trainer role")


def changed_on(record: dict[str, Any], hosts: list[str]) -> int:
    return sum(record["stats"].get(host, {}).get("changed", 0) for host in hosts)


def loadavg() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def median_rows(samples: list[dict[str, float]], limit: int | None = None) -> list[list[Any]]:
    """[name, median seconds] over runs that each map a name to seconds, slowest first."""
    by_name: dict[str, list[float]] = defaultdict(list)
    for sample in samples:
        for name, seconds in sample.items():
            by_name[name].append(seconds)
    rows = sorted(([name, median(v)] for name, v in by_name.items()), key=lambda row: -row[1])
    return rows[:limit]


def _machine_busy_seconds() -> float:
    """CPU seconds every core of this machine spent not idle since boot (/proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuMeter:
    """CPU seconds of one measured run: the controller's (ansible-playbook and its ssh
    children) and the whole machine's, whose rest is the lab hosts' (every host shares
    this machine's cores; on real hosts each has its own)."""

    wall: float = 0.0
    controller: float = 0.0
    machine: float = 0.0

    def __enter__(self) -> CpuMeter:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._start = (time.monotonic(), usage.ru_utime + usage.ru_stime, _machine_busy_seconds())
        return self

    def __exit__(self, *exc: object) -> None:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall, controller, machine = self._start
        self.wall = time.monotonic() - wall
        self.controller = usage.ru_utime + usage.ru_stime - controller
        self.machine = _machine_busy_seconds() - machine

    @property
    def hosts(self) -> float:
        return max(0.0, self.machine - self.controller)
