"""Real Ray clusters on this machine for the Ray backend's tests (make ray-test, in the Ray
venv): nodes started as the ray_cluster role starts them (`ray start --block` with the argv
of ray_layout.start_argv), token authentication on, Ray's temp dir under /var/tmp (short:
its socket paths must fit in 107 bytes), ports moved off the defaults so that a test
cluster never meets another one, a short drain on stop. Every process a cluster started is
gone when its fixture ends, or the test fails."""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rlops_runtime import ray_layout as rl

# A real-Ray test run without Ray (the Ray venv's, never the main venv's) is a mistake, not
# a skip. (This folder on sys.path is a namespace package `ray`: no origin.)
_RAY = importlib.util.find_spec("ray")
if _RAY is None or _RAY.origin in (None, "namespace"):
    raise pytest.UsageError(
        "tests/ray needs the Ray venv: run `make ray-test` (it builds .venv/ray-venv from "
        "runtime/locks/ray/)")

RAY = str(Path(sys.executable).with_name("ray"))
MIB = 1024 * 1024


def _ports(slot: int, index: int) -> dict[str, int]:
    """Ports of node `index` of test cluster `slot`: apart from every other node here."""
    base = 30000 + 1000 * slot
    node = base + 20 * (index + 1)
    names = ("node_manager", "object_manager", "runtime_env_agent", "dashboard_agent_grpc",
             "dashboard_agent_listen", "metrics_export")
    ports = {name: node + i for i, name in enumerate(names)}
    workers = 40000 + 1000 * slot + 100 * index
    return dict(ports, gcs=base, dashboard=base + 1, min_worker=workers,
                max_worker=workers + 99)


class LocalCluster:
    """Nodes of one layout started here, all on this machine's address."""

    def __init__(self, hosts: list[str], cpus: dict[str, int], rollout_cpus: Any = None,
                 slot: int = 0):
        self.root = Path(tempfile.mkdtemp(prefix="rlops-rt-", dir="/var/tmp"))
        self.token = self.root / "auth_token"
        self.token.write_text(secrets.token_hex(32))
        self.token.chmod(0o600)
        self.layout = rl.cluster_layout(hosts, cpus=cpus, rollout_cpus=rollout_cpus)
        self.expected = self.layout["expected"]
        self.slot = slot
        self.address = f"127.0.0.1:{_ports(slot, 0)['gcs']}"
        self.env = {**os.environ, "RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN_PATH": str(self.token),
                    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "1",
                    "RAY_USAGE_STATS_ENABLED": "0"}
        self.procs: dict[str, subprocess.Popen] = {}

    def temp_dir(self, host: str) -> str:
        return str(self.root / host)

    def argv(self, host: str) -> list[str]:
        index = [n["host"] for n in self.layout["nodes"]].index(host)
        node = dict(self.layout["nodes"][index], ip="127.0.0.1")
        # One machine plays every node: each node's own ports apart from the others'.
        ports = _ports(self.slot, index)
        assert set(ports) == set(rl.PORTS)
        return rl.start_argv(node, self.address, self.temp_dir(host), 80 * MIB, ports=ports,
                             ray=RAY)

    def start(self, host: str) -> None:
        log = open(self.root / f"{host}.log", "ab")  # noqa: SIM115 (kept by the child)
        self.procs[host] = subprocess.Popen(self.argv(host), env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def start_all(self) -> LocalCluster:
        for node in self.layout["nodes"]:
            self.start(node["host"])
            if node["role"] == "head":
                time.sleep(3)  # the GCS first: workers retry, but quietly is quicker
        return self

    def stop(self, host: str, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        proc = self.procs.pop(host)
        try:
            os.kill(proc.pid, sig)
            proc.wait(timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # what `ray start` left of its session
        except ProcessLookupError:
            pass

    def leftovers(self) -> list[str]:
        """Processes of this cluster still running (their command line names its root)."""
        out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True,
                             check=True).stdout
        return [line for line in out.splitlines() if str(self.root) in line
                and "ps -eo" not in line]

    def wait_ready(self, timeout: float = 90) -> None:
        import json

        proc = subprocess.run(
            [str(Path(sys.executable).with_name("rlops-run")), "ray", "wait", "--address",
             self.address, "--expected", json.dumps(self.expected), "--timeout", str(timeout)],
            env=self.env, capture_output=True, text=True, timeout=timeout + 60, check=False)
        assert proc.returncode == 0, (proc.stdout, proc.stderr[-2000:], self.logs())

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}"
                         for p in sorted(self.root.glob("*.log")))

    def close(self) -> None:
        for host in list(self.procs):
            self.stop(host)
        deadline = time.monotonic() + 30
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.5)
        left = self.leftovers()
        for line in left:
            try:
                os.kill(int(line.split()[0]), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        shutil.rmtree(self.root, ignore_errors=True)
        assert not left, f"Ray processes left after the cluster stopped: {left}"


@pytest.fixture(scope="module")
def one_node() -> Iterator[LocalCluster]:
    """A head that runs single-host on Ray (learner and rollouts on one node)."""
    cluster = LocalCluster(["head"], cpus={"head": 2}, slot=0).start_all()
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture()
def two_nodes() -> Iterator[LocalCluster]:
    """A learner head and one rollout node with one env runner, on loopback."""
    cluster = LocalCluster(["head", "rollout"], cpus={"head": 1, "rollout": 1},
                           slot=1).start_all()
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.close()
