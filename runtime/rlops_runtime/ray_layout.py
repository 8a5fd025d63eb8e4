"""The Ray backend's decisions, in one place: which host is the head, what each node offers
Ray (CPUs, GPUs, the custom resources that pin RLlib's actors), the `ray start` command of
each node, the object store's size for a small /dev/shm, when a cluster is ready, and the
RLlib placement that matches the layout.

The runtime and the controller run this same file (plugins/module_utils/ray_layout.py is a
link to it, as session_contract.py is): it imports only the Python standard library (3.8 and
newer) and nothing of its package. Everything here is a pure function or a constant; a bad
input raises LayoutError (a ValueError) whose message names the host or resource at fault.

The layout (docs/architecture.md, "Scaling out"):
- the head runs the GCS, the driver and the learner: it offers `rlops_learner: 1`;
- every other host is a rollout host: it offers `rlops_rollout: <its CPUs>`, one env runner
  per CPU, and RLlib pins its env runners there by asking for `rlops_rollout: 1` each;
- a group of one host runs single-host on Ray: the head offers both resources, the learner
  and the env runners share it (one CPU is left to the learner). It is not refused: a
  session on one machine keeps the same agent and the same cluster services.
"""

from __future__ import annotations

import json
import re
from typing import Any

LEARNER_RESOURCE = "rlops_learner"
ROLLOUT_RESOURCE = "rlops_rollout"
# Every port a node listens on, pinned (firewalls and security groups between hosts); the
# dashboard on the loopback only (the playbook prints the SSH tunnel to it).
PORTS = {
    "gcs": 6379,
    "dashboard": 8265,
    "node_manager": 6380,
    "object_manager": 6381,
    "runtime_env_agent": 6382,
    "dashboard_agent_grpc": 6383,
    "dashboard_agent_listen": 52365,
    "metrics_export": 6384,
    "min_worker": 10002,
    "max_worker": 10099,
}
DASHBOARD_HOST = "127.0.0.1"
# Ray's temp dir on every node is <data_root>/<TEMP_DIR_NAME>: outside /tmp (the trainer's
# unit has PrivateTmp, and the driver must reach the raylet's sockets) and short (AF_UNIX
# paths end at 107 bytes, Ray adds session_<date>_<pid>/sockets/plasma_store).
TEMP_DIR_NAME = "ray"
DEFAULT_TEMP_DIR = "/var/lib/rlops/ray"
MAX_TEMP_DIR_LEN = 48
DEFAULT_READY_TIMEOUT = 120
# Ray refuses an object store under 75 MiB; it defaults to 30% of memory.
MIN_OBJECT_STORE_BYTES = 75 * 1024 * 1024
OBJECT_STORE_MEMORY_SHARE = 0.3
OBJECT_STORE_SHM_SHARE = 0.8
# Off /dev/shm the store is a file in the temp dir: slower, so kept small.
MAX_OBJECT_STORE_ON_DISK = 512 * 1024 * 1024
MAX_OBJECT_STORE_BYTES = 2 * 1024 * 1024 * 1024
# Resources a layout knows; any other name asked for is a typo or a node nobody started.
BUILTIN_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")
KNOWN_RESOURCES = BUILTIN_RESOURCES + (LEARNER_RESOURCE, ROLLOUT_RESOURCE)
_RESOURCE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class LayoutError(ValueError):
    """A layout Ray cannot run; the message names the host or resource and why."""


# --- The layout ----------------------------------------------------------------------------
def _per_host(value: Any, host: str) -> Any:
    if isinstance(value, dict):
        return value.get(host)
    return value


def _host_problems(hosts: list[str], head: str | None, cpus: Any, gpus: Any,
                   rollout_cpus: Any) -> list[str]:
    problems = []
    if not hosts:
        return ["a Ray cluster needs at least one host: the group is empty"]
    seen: set[str] = set()
    duplicates = [host for host in hosts if host in seen or seen.add(host)]
    if duplicates:
        listed = ", ".join(sorted(set(duplicates)))
        problems.append(f"hosts listed more than once: {listed} (each host is one Ray node)")
    if head is not None and head not in hosts:
        problems.append(f"the head {head} is not one of the cluster's hosts "
                        f"({', '.join(hosts)})")
    for host in hosts:
        count = _per_host(cpus, host)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            problems.append(f"host {host}: its CPU count is {count!r}, a Ray node needs 1 or more")
        gpu_count = _per_host(gpus, host) or 0
        if not isinstance(gpu_count, int) or isinstance(gpu_count, bool) or gpu_count < 0:
            problems.append(f"host {host}: its GPU count is {gpu_count!r}, not a count")
        if rollout_cpus is not None:
            wanted = _per_host(rollout_cpus, host)
            if wanted is not None and (not isinstance(wanted, int) or isinstance(wanted, bool)
                                       or wanted < 1):
                problems.append(f"host {host}: {wanted!r} env runners, not a count of 1 or more")
    return problems


def cluster_layout(hosts: list[str], head: str | None = None, cpus: Any = None,
                   gpus: Any = None, rollout_cpus: Any = None) -> dict[str, Any]:
    """The cluster of `hosts`: the head (`head`, else the first host), the workers in order,
    each node's role, CPUs, GPUs and custom resources, and the totals a ready cluster shows.

    cpus, gpus, rollout_cpus: a count for every host, or {host: count}. rollout_cpus caps a
    rollout node's env runners (default: its CPUs; on a single host, its CPUs less one).
    """
    hosts = list(hosts)
    problems = _host_problems(hosts, head, cpus, gpus, rollout_cpus)
    if problems:
        raise LayoutError("; ".join(problems))
    head = head if head is not None else hosts[0]
    single = len(hosts) == 1
    nodes = []
    for host in [head] + [h for h in hosts if h != head]:
        num_cpus = _per_host(cpus, host)
        num_gpus = _per_host(gpus, host) or 0
        rollout = _per_host(rollout_cpus, host) if rollout_cpus is not None else None
        resources: dict[str, int] = {}
        if host == head:
            resources[LEARNER_RESOURCE] = 1
        if host != head or single:
            default = max(1, num_cpus - 1) if single else num_cpus
            resources[ROLLOUT_RESOURCE] = min(rollout or default, default)
        if single:
            # Ray's CPUs are logical: a one-CPU host still fits the learner and one runner.
            num_cpus = max(num_cpus, resources[ROLLOUT_RESOURCE] + 1)
        nodes.append({"host": host, "role": "head" if host == head else "worker",
                      "num_cpus": num_cpus, "num_gpus": num_gpus, "resources": resources})
    return {
        "head": head,
        "workers": [node["host"] for node in nodes[1:]],
        "single_host": single,
        "nodes": nodes,
        "expected": expected_totals(nodes),
    }


def expected_totals(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """What `ray.cluster_resources()` shows once every node of the layout has joined."""
    totals: dict[str, int] = {}
    for node in nodes:
        parts = dict(node["resources"], CPU=node["num_cpus"], GPU=node["num_gpus"])
        for name, amount in parts.items():
            if amount:
                totals[name] = totals.get(name, 0) + amount
    return {"nodes": len(nodes), "resources": dict(sorted(totals.items()))}


def layout_problems(hosts: list[str], head: str | None = None, cpus: Any = None,
                    gpus: Any = None, rollout_cpus: Any = None, gpu: bool = False,
                    requested: dict[str, Any] | None = None) -> list[str]:
    """Why the layout cannot run, one message each (empty: it can).

    gpu: the learner asks for a GPU (it runs on the head). requested: resources the job asks
    of the cluster ({name: amount}); a name no node offers is refused, not waited for.
    """
    problems = _host_problems(list(hosts), head, cpus, gpus, rollout_cpus)
    if problems:
        return problems
    layout = cluster_layout(hosts, head, cpus, gpus, rollout_cpus)
    head_node = layout["nodes"][0]
    if gpu and not head_node["num_gpus"]:
        with_gpu = [n["host"] for n in layout["nodes"] if n["num_gpus"]]
        hint = (f": make {' or '.join(with_gpu)} the head" if with_gpu
                else "; no host of the cluster has one")
        problems.append(f"a GPU learner was asked for, but the head {head_node['host']} has no "
                        f"GPU (the learner runs on the head){hint}")
    offered = layout["expected"]["resources"]
    for name, amount in sorted((requested or {}).items()):
        if not isinstance(name, str) or not _RESOURCE_NAME_RE.match(name):
            problems.append(f"resource {name!r}: not a Ray resource name")
        elif name not in offered and name not in ("CPU", "GPU"):
            if name in BUILTIN_RESOURCES:
                continue  # memory and object store: Ray sizes them, a layout does not
            problems.append(f"unknown resource {name}: no node of the cluster offers it "
                            f"(they offer {', '.join(sorted(offered))})")
        elif _number(amount) > offered.get(name, 0):
            problems.append(f"resource {name}: {amount} asked for, "
                            f"the cluster offers {offered.get(name, 0)}")
    return problems


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("inf")


# --- Starting a node -----------------------------------------------------------------------
def object_store_bytes(mem_bytes: int, shm_bytes: int) -> int:
    """The object store of a node with `mem_bytes` of memory and a /dev/shm of `shm_bytes`.

    Ray's default (30% of memory) is kept when /dev/shm holds it; on a small /dev/shm (a
    container's 64 MiB) it is at most 80% of /dev/shm, and at least Ray's minimum, 75 MiB;
    when even that does not fit, Ray keeps the store in a file of the temp dir
    (object_store_in_shm says so, start_argv passes --plasma-directory), bounded there.
    """
    wanted = min(int(mem_bytes * OBJECT_STORE_MEMORY_SHARE), MAX_OBJECT_STORE_BYTES)
    wanted = max(wanted, MIN_OBJECT_STORE_BYTES)
    in_shm = int(shm_bytes * OBJECT_STORE_SHM_SHARE)
    if in_shm >= MIN_OBJECT_STORE_BYTES:
        return min(wanted, in_shm)
    return min(wanted, MAX_OBJECT_STORE_ON_DISK)


def object_store_in_shm(object_store: int, shm_bytes: int) -> bool:
    """Whether a store of `object_store` bytes fits in /dev/shm as object_store_bytes sizes it."""
    return object_store <= int(shm_bytes * OBJECT_STORE_SHM_SHARE)


def temp_dir_problem(temp_dir: str) -> str | None:
    """Why Ray cannot use `temp_dir` (None: it can)."""
    if not temp_dir.startswith("/"):
        return f"Ray's temp dir {temp_dir!r} is not an absolute path"
    if temp_dir == "/tmp" or temp_dir.startswith("/tmp/"):
        return (f"Ray's temp dir {temp_dir} is under /tmp, which the trainer's unit does not "
                "share (PrivateTmp): the driver would not reach the node's sockets")
    if len(temp_dir) > MAX_TEMP_DIR_LEN:
        return (f"Ray's temp dir {temp_dir} is {len(temp_dir)} characters long, over "
                f"{MAX_TEMP_DIR_LEN}: its socket paths would pass the 107 bytes of a Unix socket")
    return None


def start_argv(node: dict[str, Any], head_address: str, temp_dir: str,
               object_store_memory: int, ports: dict[str, int] | None = None,
               ray: str = "ray", plasma_directory: str | None = None) -> list[str]:
    """`ray start --block ...` for a node of cluster_layout with its own address node["ip"]
    (the host's interface, never the SSH address), joining the GCS at `head_address`
    (host:port; the head's own for the head)."""
    ports = dict(PORTS, **(ports or {}))
    ip = node.get("ip")
    if not ip:
        raise LayoutError(f"node {node.get('host')}: no IP address to start Ray on")
    resources = json.dumps(node["resources"], sort_keys=True, separators=(",", ":"))
    argv = [ray, "start", "--block", f"--node-ip-address={ip}"]
    if node["role"] == "head":
        argv += ["--head", f"--port={ports['gcs']}", "--include-dashboard=true",
                 f"--dashboard-host={DASHBOARD_HOST}", f"--dashboard-port={ports['dashboard']}"]
    else:
        argv += [f"--address={head_address}"]
    argv += [
        f"--num-cpus={int(node['num_cpus'])}",
        f"--num-gpus={int(node.get('num_gpus', 0))}",
        f"--resources={resources}",
        f"--node-manager-port={ports['node_manager']}",
        f"--object-manager-port={ports['object_manager']}",
        f"--runtime-env-agent-port={ports['runtime_env_agent']}",
        f"--dashboard-agent-grpc-port={ports['dashboard_agent_grpc']}",
        f"--dashboard-agent-listen-port={ports['dashboard_agent_listen']}",
        f"--metrics-export-port={ports['metrics_export']}",
        f"--min-worker-port={ports['min_worker']}",
        f"--max-worker-port={ports['max_worker']}",
        f"--temp-dir={temp_dir}",
        f"--object-store-memory={int(object_store_memory)}",
        "--disable-usage-stats",
    ]
    if plasma_directory:
        argv.append(f"--plasma-directory={plasma_directory}")
    return argv


# --- Readiness -----------------------------------------------------------------------------
def parse_expected(text: str | dict[str, Any]) -> dict[str, Any]:
    """RLOPS_RAY_EXPECTED ({"nodes": N, "resources": {name: amount}}) checked."""
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError as exc:
        raise LayoutError(f"the expected cluster is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise LayoutError(f"the expected cluster is not a JSON object: {value!r}")
    unknown = sorted(set(value) - {"nodes", "resources"})
    if unknown:
        raise LayoutError(f"the expected cluster has unknown keys: {', '.join(unknown)}")
    nodes = value.get("nodes", 1)
    if not isinstance(nodes, int) or isinstance(nodes, bool) or nodes < 1:
        raise LayoutError(f"the expected cluster's nodes is {nodes!r}, not a count of 1 or more")
    resources = value.get("resources", {})
    if not isinstance(resources, dict):
        raise LayoutError(f"the expected cluster's resources is {resources!r}, not an object")
    for name, amount in resources.items():
        if not _RESOURCE_NAME_RE.match(str(name)):
            raise LayoutError(f"the expected cluster asks for {name!r}, not a resource name")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise LayoutError(f"the expected cluster asks for {amount!r} of {name}, not an amount")
    return {"nodes": nodes, "resources": dict(resources)}


def missing(expected: dict[str, Any], nodes: list[dict[str, Any]],
            resources: dict[str, Any]) -> dict[str, Any]:
    """What the cluster lacks: {"nodes": how many more alive nodes, "resources": {name:
    how much more}}, only the parts that lack something (empty: nothing is missing).

    nodes: as ray.nodes() gives them (a node counts when its "Alive" or "alive" is true);
    resources: the totals of ray.cluster_resources().
    """
    alive = sum(1 for node in nodes if node.get("Alive", node.get("alive")))
    lacking: dict[str, Any] = {}
    if alive < expected["nodes"]:
        lacking["nodes"] = expected["nodes"] - alive
    short = {}
    for name, amount in sorted(expected.get("resources", {}).items()):
        have = resources.get(name, 0) or 0
        if have + 1e-9 < amount:
            short[name] = _tidy(amount - have)
    if short:
        lacking["resources"] = short
    return lacking


def _tidy(value: float) -> Any:
    return int(value) if float(value).is_integer() else round(value, 4)


def readiness(expected: dict[str, Any], nodes: list[dict[str, Any]],
              resources: dict[str, Any]) -> tuple[bool, str]:
    """(ready, message): ready when every expected node is alive and every expected
    resource is there; the message says what is there, or names what is missing."""
    alive = sum(1 for node in nodes if node.get("Alive", node.get("alive")))
    lacking = missing(expected, nodes, resources)
    if not lacking:
        have = ", ".join(f"{name} {_tidy(resources.get(name, 0))}"
                         for name in sorted(expected.get("resources", {})))
        return True, f"ready: {alive} of {expected['nodes']} nodes alive" + (
            f"; {have}" if have else "")
    parts = []
    if "nodes" in lacking:
        parts.append(f"{alive} of {expected['nodes']} nodes alive")
    for name in lacking.get("resources", {}):
        parts.append(f"{name} {_tidy(resources.get(name, 0) or 0)} of "
                     f"{_tidy(expected['resources'][name])}")
    return False, "missing: " + "; ".join(parts)


# --- RLlib ---------------------------------------------------------------------------------
def rllib_placement(expected: dict[str, Any], gpu: bool = False) -> dict[str, dict[str, Any]]:
    """Keyword arguments of config.env_runners(...) and config.learners(...) for a cluster
    of `expected`: one env runner per rollout CPU, each pinned to a rollout node by
    rlops_rollout, and one remote learner pinned to the head by rlops_learner, on a GPU only
    when `gpu` (without one it takes a CPU of the head)."""
    rollout = expected.get("resources", {}).get(ROLLOUT_RESOURCE, 0)
    runners = int(rollout)
    if runners < 1:
        raise LayoutError(f"the cluster offers no {ROLLOUT_RESOURCE}: no node runs env runners "
                          f"(expected {json.dumps(expected, sort_keys=True)})")
    if expected.get("resources", {}).get(LEARNER_RESOURCE, 0) < 1:
        raise LayoutError(f"the cluster offers no {LEARNER_RESOURCE}: no node runs the learner "
                          f"(expected {json.dumps(expected, sort_keys=True)})")
    if gpu and expected.get("resources", {}).get("GPU", 0) < 1:
        raise LayoutError("a GPU learner was asked for, but the cluster offers no GPU")
    return {
        "env_runners": {
            "num_env_runners": runners,
            "num_cpus_per_env_runner": 1,
            "custom_resources_per_env_runner": {ROLLOUT_RESOURCE: 1},
        },
        "learners": {
            "num_learners": 1,
            "num_gpus_per_learner": 1 if gpu else 0,
            "num_cpus_per_learner": 0 if gpu else 1,
            "custom_resources_per_learner": {LEARNER_RESOURCE: 1},
        },
    }
