"""`rlops-run ray wait|status`: the Ray cluster of a session, asked from one of its nodes.

- wait: until every expected node is alive and every expected resource is there (the
  verdict of ray_layout.readiness), or the deadline; exit 0 when ready, 1 otherwise.
- status: the nodes and resources now (with --expected, whether it is ready); exit 0 when
  the cluster answered, 1 otherwise.

Both answer one JSON object on stdout: {ok, ready, nodes: [{host, ip, alive, resources}],
resources, missing, msg}. Ray is imported here only (the venv of the Ray backend has it);
the client connects as a driver with the token settings of its environment
(RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH), so it runs on a node of the cluster, as the nodes'
user. Bad input (an --expected that is not a cluster) is exit 2, as everywhere in rlops-run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import time
from typing import Any, Callable

from .ray_layout import DEFAULT_READY_TIMEOUT, missing, parse_expected, readiness
from .waiting import wait_for

log = logging.getLogger(__name__)


class RayUnavailable(ValueError):
    """This venv has no Ray: the runtime's `ray` extra is not installed."""


def add_parser(sub: Any) -> None:
    cmd = sub.add_parser("ray", help="wait for or show the session's Ray cluster; answers in "
                                     "JSON")
    cmd.add_argument("action", choices=["wait", "status"])
    cmd.add_argument("--address", default=os.environ.get("RLOPS_RAY_ADDRESS", ""),
                     help="the head's GCS, host:port (default: $RLOPS_RAY_ADDRESS)")
    cmd.add_argument("--expected", default=os.environ.get("RLOPS_RAY_EXPECTED", ""),
                     help='the cluster when ready, JSON {"nodes": N, "resources": {...}} '
                          "(default: $RLOPS_RAY_EXPECTED)")
    cmd.add_argument("--timeout", type=float,
                     default=float(os.environ.get("RLOPS_RAY_READY_TIMEOUT",
                                                  DEFAULT_READY_TIMEOUT)),
                     help="wait: seconds until the cluster must be ready")
    cmd.add_argument("--interval", type=float, default=1.0, help="wait: seconds between asks")
    cmd.set_defaults(func=cmd_ray)


def node_entry(node: dict[str, Any]) -> dict[str, Any]:
    """One node of ray.nodes() as the answer shows it."""
    return {"host": node.get("NodeManagerHostname", ""),
            "ip": node.get("NodeManagerAddress", ""),
            "alive": bool(node.get("Alive")),
            "resources": dict(sorted((node.get("Resources") or {}).items()))}


def answer(expected: dict[str, Any] | None, nodes: list[dict[str, Any]],
           resources: dict[str, Any]) -> dict[str, Any]:
    """The JSON answer for a cluster of `nodes` (ray.nodes()) and `resources`
    (ray.cluster_resources()); ready is None without an expectation."""
    entries = [node_entry(node) for node in nodes]
    alive = sum(1 for entry in entries if entry["alive"])
    result = {"ok": True, "ready": None, "nodes": entries,
              "resources": dict(sorted(resources.items())), "missing": {},
              "msg": f"{alive} nodes alive"}
    if expected is not None:
        ready, msg = readiness(expected, nodes, resources)
        result.update(ready=ready, ok=ready, missing=missing(expected, nodes, resources),
                      msg=msg)
    return result


def gcs_unreachable(address: str, timeout: float = 5.0) -> str | None:
    """Why nothing answers at the GCS `address` (host:port), None when its port takes a
    connection. Asked before ray.init, which retries an address that never answers
    forever, whatever the deadline."""
    host, _sep, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except ValueError:
        return f"{address!r} is not host:port"
    except OSError as exc:
        return f"nothing answers at {address}: {exc.strerror or exc}"


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable(
            f"rlops-run ray needs Ray in this venv (the runtime's ray extra): {exc}") from None
    return ray


class Cluster:
    """A driver's connection to the cluster at `address`: nodes and resources, asked again
    and again; connect() may fail while the head comes up."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.ray = _import_ray()
        self.error = ""

    def connect(self) -> bool:
        if self.ray.is_initialized():
            return True
        unreachable = gcs_unreachable(self.address)
        if unreachable:
            self.error = f"cannot connect to the Ray cluster at {self.address}: {unreachable}"
            return False
        try:
            self.ray.init(address=self.address, logging_level=logging.WARNING,
                          log_to_driver=False, configure_logging=False)
        except Exception as exc:  # any failure to connect is an answer, not a crash
            auth = (f"RAY_AUTH_MODE={os.environ.get('RAY_AUTH_MODE', '')}, RAY_AUTH_TOKEN_PATH="
                    f"{os.environ.get('RAY_AUTH_TOKEN_PATH', '')}")
            self.error = (f"cannot connect to the Ray cluster at {self.address} ({auth}): "
                          f"{type(exc).__name__}: {str(exc).strip()[:300]}")
            self.ray.shutdown()
            return False
        return True

    def read(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return self.ray.nodes(), self.ray.cluster_resources()

    def close(self) -> None:
        if self.ray.is_initialized():
            self.ray.shutdown()


def wait_ready(cluster: Any, expected: dict[str, Any], timeout: float, interval: float,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Ask `cluster` until it is ready as `expected` says or `timeout` has passed: the last
    answer (ok and ready only when ready)."""
    last: dict[str, Any] = {}

    def check() -> dict[str, Any] | None:
        nonlocal last
        if not cluster.connect():
            last = {"ok": False, "ready": False, "nodes": [], "resources": {},
                    "missing": missing(expected, [], {}), "msg": cluster.error}
            return None
        last = answer(expected, *cluster.read())
        return last if last["ready"] else None

    if wait_for(check, timeout, interval, clock=clock, sleep=sleep) is None:
        last = dict(last, ok=False, ready=False,
                    msg=f"the Ray cluster at {cluster.address} was not ready within "
                        f"{timeout:g} s: {last.get('msg', '')}")
    return last


def cmd_ray(args: argparse.Namespace) -> int:
    if not args.address:
        raise ValueError("no Ray address: give --address host:port or set RLOPS_RAY_ADDRESS")
    expected = parse_expected(args.expected) if args.expected else None
    if args.action == "wait" and expected is None:
        raise ValueError("rlops-run ray wait needs --expected (or RLOPS_RAY_EXPECTED)")
    cluster = Cluster(args.address)
    try:
        if args.action == "wait":
            result = wait_ready(cluster, expected, args.timeout, args.interval)
        elif cluster.connect():
            result = answer(expected, *cluster.read())
            result["ok"] = True  # status: the cluster answered, ready or not
        else:
            result = {"ok": False, "ready": False if expected else None, "nodes": [],
                      "resources": {}, "missing": {}, "msg": cluster.error}
    finally:
        cluster.close()
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0 if result["ok"] else 1
