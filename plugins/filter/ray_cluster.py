# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Filters of the rlops.fleet.ray_cluster role: the runtime's Ray layout
(module_utils/ray_layout.py, the runtime's own file) within reach of the role, with the
role's reads of each host (the preflight's node records), and the checks of those reads."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: ray_cluster_layout
short_description: The Ray cluster of the role's hosts, as the runtime's layout decides it
version_added: 0.1.0
description:
  - Internal filter of the rlops.fleet.ray_cluster role.
  - Takes the node records the role's preflight made on every host (C(host), C(ip), C(cpus),
    C(gpus), C(memory), C(shm), C(object_store_memory)) and answers with the layout of the
    runtime's C(ray_layout.cluster_layout) - C(head), C(workers), C(nodes) (each with its
    C(ip), C(object_store_memory) and whether the store fits in C(/dev/shm)), C(expected) -
    plus C(ports) (the pinned ports with the overrides) and C(address), the head's GCS.
  - The same file has C(rlops.fleet.ray_cluster_start_argv) (one node's C(ray start --block)
    command), C(rlops.fleet.ray_cluster_problems) (what is wrong with the hosts, their versions
    and the layout, one message each), C(rlops.fleet.ray_cluster_tunnel) (the SSH command to
    the dashboard) and C(rlops.fleet.ray_cluster_wait_result) (the answer of
    C(rlops-run ray wait)).
positional: _input
options:
  _input:
    description: The node records, one per host.
    type: list
    elements: dict
    required: true
  head:
    description: The head's inventory name.
    type: str
    required: true
  ports:
    description: Overrides of the pinned ports, by name.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Write the node's start script
  ansible.builtin.template:
    src: ray-node.sh.j2
    dest: /usr/local/libexec/rlops-ray-node
    mode: "0755"
  vars:
    __layout: "{{ __nodes | rlops.fleet.ray_cluster_layout(__head, ray_cluster_ports) }}"
    __argv: "{{ __layout | rlops.fleet.ray_cluster_start_argv(inventory_hostname, __temp_dir) }}"
"""

RETURN = r"""
_value:
  description: The layout.
  type: dict
  contains:
    head:
      description: The head's inventory name.
      type: str
    workers:
      description: The other hosts, in order.
      type: list
      elements: str
    nodes:
      description: Each node - C(host), C(role), C(num_cpus), C(num_gpus), C(resources), C(ip),
        C(object_store_memory), C(object_store_in_shm).
      type: list
      elements: dict
    expected:
      description: What a ready cluster shows - C(nodes), C(resources).
      type: dict
    ports:
      description: The ports, pinned and overridden.
      type: dict
    address:
      description: The head's GCS, C(<head ip>:<gcs port>).
      type: str
"""

import json  # noqa: E402
import shlex  # noqa: E402

from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible_collections.rlops.fleet.plugins.module_utils import ray_layout  # noqa: E402


def _count(value):
    """A count as the layout takes it: an int; a string of digits (an inventory value) read."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _ports(overrides):
    if overrides is not None and not isinstance(overrides, dict):
        raise AnsibleFilterError("ray_cluster: the ports are %r, not a mapping" % (overrides,))
    overrides = {name: _count(port) for name, port in (overrides or {}).items()}
    return dict(ray_layout.PORTS, **overrides)


def _by_host(nodes):
    return {node["host"]: node for node in nodes}


def ray_cluster_layout(nodes, head, ports=None):
    records = _by_host(nodes)
    hosts = list(records)
    try:
        layout = ray_layout.cluster_layout(
            hosts, head, cpus={host: _count(records[host]["cpus"]) for host in hosts},
            gpus={host: _count(records[host].get("gpus") or 0) for host in hosts})
    except ray_layout.LayoutError as exc:
        raise AnsibleFilterError("ray_cluster_layout: %s" % exc) from None
    for node in layout["nodes"]:
        record = records[node["host"]]
        store = _count(record.get("object_store_memory"))
        if store in (None, "", 0):
            store = ray_layout.object_store_bytes(_count(record.get("memory") or 0),
                                                  _count(record.get("shm") or 0))
        node.update(ip=record.get("ip") or "", object_store_memory=store,
                    object_store_in_shm=ray_layout.object_store_in_shm(
                        store, _count(record.get("shm") or 0)))
    layout["ports"] = _ports(ports)
    layout["address"] = "%s:%s" % (layout["nodes"][0]["ip"], layout["ports"]["gcs"])
    return layout


def ray_cluster_start_argv(layout, host, temp_dir, ray="ray"):
    nodes = [node for node in layout["nodes"] if node["host"] == host]
    if not nodes:
        raise AnsibleFilterError("ray_cluster_start_argv: %s is not a node of the cluster" % host)
    node = nodes[0]
    try:
        return ray_layout.start_argv(
            node, layout["address"], temp_dir, node["object_store_memory"], layout["ports"],
            ray=ray, plasma_directory=None if node["object_store_in_shm"] else temp_dir)
    except ray_layout.LayoutError as exc:
        raise AnsibleFilterError("ray_cluster_start_argv: %s" % exc) from None


def _versions(node):
    return "Ray %s, Python %s" % (node.get("ray"), node.get("python"))


def _node_problems(node, venv):
    """What is wrong with one host's reading, without its name: [text]."""
    if node.get("python_missing"):
        return ["no %s/bin/python (ray_cluster_venv: the venv holding Ray, the same path on "
                "every host)" % venv]
    if node.get("probe_error"):
        return ["cannot run %s/bin/python (ray_cluster_venv): %s" % (venv, node["probe_error"])]
    problems = []
    if not node.get("ray"):
        problems.append("no Ray in the venv %s (install the Ray set there)" % venv)
    if not node.get("ip"):
        problems.append("no IPv4 address of its own (no default route): the other nodes could "
                        "not reach it")
    if node.get("user_exists") is False:
        problems.append("the user %s does not exist (ray_cluster_user)" % node.get("user"))
    elif node.get("group_exists") is False:
        problems.append("the group %s does not exist (ray_cluster_group)" % node.get("group"))
    gpus, found = _count(node.get("gpus") or 0), _count(node.get("gpus_found") or 0)
    if isinstance(gpus, int) and isinstance(found, int) and gpus > found:
        problems.append("%d GPU(s) asked for Ray (ray_cluster_num_gpus), %s found"
                        % (gpus, found or "none"))
    return problems


def _by_problem(pairs):
    """(host, text) pairs as one message per text, naming its hosts in order:
    "lab-1, lab-2: text"."""
    hosts_of = {}
    for host, text in pairs:
        hosts_of.setdefault(text, []).append(host)
    return ["%s: %s" % (", ".join(hosts), text) for text, hosts in hosts_of.items()]


def _version_problems(records, head):
    """The hosts whose Ray or Python differs from the head's: Ray refuses a node of another
    Ray or Python (patch) version than the head's."""
    lead = records.get(head)
    if not lead or not lead.get("ray"):
        return []
    odd = [node for host, node in records.items()
           if host != head and node.get("ray") and _versions(node) != _versions(lead)]
    if not odd:
        return []
    return ["every node needs the head's Ray and Python (%s: %s); %s" % (
        head, _versions(lead), ", ".join("%s has %s" % (node["host"], _versions(node))
                                         for node in odd))]


def ray_cluster_problems(nodes, head, hosts, play_hosts, ports=None, temp_dir="",
                         venv="", learner_gpu=False, requested=None):
    """Every problem of the cluster's hosts, their reads and the layout, or []."""
    records = _by_host(nodes)
    problems = []
    outside = [host for host in hosts if host not in play_hosts]
    if outside:
        problems.append("ray_cluster_hosts: %s not in this play" % ", ".join(outside))
    unread = [host for host in hosts if host in play_hosts and host not in records]
    if unread:
        problems.append("no reading of %s (unreachable, or failed before the check)"
                        % ", ".join(unread))
    problems.extend(_by_problem((host, text) for host in hosts if host in records
                                for text in _node_problems(records[host], venv)))
    if head not in hosts:
        problems.append("ray_cluster_head %s is not one of the cluster's hosts (%s)"
                        % (head, ", ".join(hosts)))
    else:
        problems.extend(_version_problems(records, head))
    unknown = sorted(set(ports or {}) - set(ray_layout.PORTS))
    if unknown:
        problems.append("ray_cluster_ports: unknown ports %s (known: %s)"
                        % (", ".join(unknown), ", ".join(ray_layout.PORTS)))
    bad = sorted(name for name, port in _ports(ports).items()
                 if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536)
    if bad:
        problems.append("ray_cluster_ports: %s must be ports (1-65535)" % ", ".join(bad))
    temp_problem = ray_layout.temp_dir_problem(temp_dir)
    if temp_problem:
        problems.append(temp_problem + " (ray_cluster_data_root)")
    read = [host for host in hosts if host in records]
    if read and head in read:
        problems.extend(ray_layout.layout_problems(
            read, head, cpus={host: _count(records[host]["cpus"]) for host in read},
            gpus={host: _count(records[host].get("gpus") or 0) for host in read},
            gpu=bool(learner_gpu), requested=requested or {}))
    return problems


def ray_cluster_tunnel(head, port, address="", user="", ssh_port=None, key="", common_args=""):
    """The SSH command that brings the head's dashboard (on its 127.0.0.1) to the controller,
    with the inventory's connection settings of the head."""
    argv = ["ssh", "-N", "-L", "%s:127.0.0.1:%s" % (port, port)]
    if ssh_port not in (None, "") and str(ssh_port) != "22":
        argv += ["-p", str(ssh_port)]
    if key:
        argv += ["-i", str(key)]
    argv += shlex.split(common_args or "")
    target = address or head
    argv.append("%s@%s" % (user, target) if user else target)
    return " ".join(shlex.quote(arg) for arg in argv)


def _json_answer(stdout):
    """The last JSON object of `stdout` that starts a line and runs to the end (the CLI's
    answer, indented or not, after whatever Ray printed before it)."""
    lines = str(stdout or "").splitlines()
    for start in reversed(range(len(lines))):
        if lines[start].startswith("{"):
            try:
                return json.loads("\n".join(lines[start:]))
            except ValueError:
                continue
    return None


def ray_cluster_wait_result(result):
    """{ready, message, ...} from the registered run of `rlops-run ray wait` (its one JSON
    answer on stdout, message from its msg); not ready with the command's error when there
    is no answer."""
    answer = _json_answer(result.get("stdout"))
    if not isinstance(answer, dict) or "ready" not in answer:
        error = (str(result.get("stderr") or "").strip() or str(result.get("msg") or "").strip()
                 or "no answer")
        return {"ready": False, "message": "rlops-run ray wait failed (exit %s): %s"
                % (result.get("rc"), error.splitlines()[-1])}
    return dict(answer, ready=answer["ready"] is True,
                message=str(answer.get("msg") or answer.get("message") or ""))


class FilterModule(object):
    def filters(self):
        return {
            "ray_cluster_layout": ray_cluster_layout,
            "ray_cluster_start_argv": ray_cluster_start_argv,
            "ray_cluster_problems": ray_cluster_problems,
            "ray_cluster_tunnel": ray_cluster_tunnel,
            "ray_cluster_wait_result": ray_cluster_wait_result,
        }
