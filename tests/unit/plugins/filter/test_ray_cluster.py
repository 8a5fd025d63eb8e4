"""rlops.fleet.ray_cluster's filters (plugins/filter/ray_cluster.py): the runtime's layout
with the role's reads of each host, the start command of each node, every problem the
preflight refuses (each message naming the host), the dashboard's tunnel and the answer of
`rlops-run ray wait`."""

from __future__ import annotations

import json
import shlex

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.rlops.fleet.plugins.filter.ray_cluster import (
    ray_cluster_layout,
    ray_cluster_problems,
    ray_cluster_start_argv,
    ray_cluster_tunnel,
    ray_cluster_wait_result,
)
from ansible_collections.rlops.fleet.plugins.module_utils import ray_layout

MIB, GIB = 1024 ** 2, 1024 ** 3
HOSTS = ["lab-1", "lab-2", "lab-3"]
PLAY = HOSTS
TEMP = "/var/lib/rlops/ray"


def node(host, **changes):
    """A host as the role's preflight publishes it: 2 CPUs, 8 GiB, a container's /dev/shm."""
    record = {"host": host, "ip": f"10.89.0.{HOSTS.index(host) + 11}", "cpus": 2, "gpus": 0,
              "gpus_found": 0, "memory": 8 * GIB, "shm": 64 * MIB, "object_store_memory": None,
              "ray": "2.60.0", "python": "3.11.2", "probe_error": "", "user": "lab",
              "user_exists": True, "group": "lab", "group_exists": True}
    record.update(changes)
    return record


def nodes(**per_host):
    return [node(host, **per_host.get(host.replace("-", "_"), {})) for host in HOSTS]


def problems(records=None, head="lab-1", hosts=None, **options):
    hosts = HOSTS if hosts is None else hosts
    options.setdefault("temp_dir", TEMP)
    options.setdefault("venv", "/v")
    return ray_cluster_problems(records if records is not None else nodes(), head, hosts, PLAY,
                                **options)


# --- Layout ---------------------------------------------------------------------------------

def test_layout_of_three_hosts_is_the_runtimes_with_addresses_and_object_stores():
    layout = ray_cluster_layout(nodes(), "lab-1")
    assert layout["head"] == "lab-1" and layout["workers"] == ["lab-2", "lab-3"]
    assert layout["address"] == "10.89.0.11:6379"
    assert layout["expected"] == {"nodes": 3, "resources": {
        "CPU": 6, ray_layout.LEARNER_RESOURCE: 1, ray_layout.ROLLOUT_RESOURCE: 4}}
    assert layout["ports"] == ray_layout.PORTS
    first = layout["nodes"][0]
    assert first["ip"] == "10.89.0.11" and first["role"] == "head"
    # 64 MiB of /dev/shm: the store is a file of the temp dir, sized by the runtime.
    assert first["object_store_memory"] == ray_layout.object_store_bytes(8 * GIB, 64 * MIB)
    assert first["object_store_in_shm"] is False


def test_the_head_may_be_any_host_and_comes_first():
    layout = ray_cluster_layout(nodes(), "lab-2")
    assert [n["host"] for n in layout["nodes"]] == ["lab-2", "lab-1", "lab-3"]
    assert layout["address"] == "10.89.0.12:6379"


def test_a_large_shm_holds_the_store_and_a_given_size_wins():
    big = ray_cluster_layout(nodes(lab_1={"shm": 4 * GIB}), "lab-1")["nodes"][0]
    assert big["object_store_in_shm"] is True
    given = ray_cluster_layout(nodes(lab_2={"object_store_memory": 300 * MIB}), "lab-1")
    assert given["nodes"][1]["object_store_memory"] == 300 * MIB


def test_inventory_strings_are_counts_and_ports_overridden():
    layout = ray_cluster_layout(nodes(lab_2={"cpus": "4"}), "lab-1", {"gcs": "7000"})
    assert layout["nodes"][1]["num_cpus"] == 4
    assert layout["address"] == "10.89.0.11:7000"
    assert layout["ports"]["dashboard"] == 8265


def test_a_bad_layout_is_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="lab-2"):
        ray_cluster_layout(nodes(lab_2={"cpus": 0}), "lab-1")


def test_start_argv_of_head_and_worker():
    layout = ray_cluster_layout(nodes(), "lab-1")
    head = ray_cluster_start_argv(layout, "lab-1", TEMP, ray="/v/bin/ray")
    worker = ray_cluster_start_argv(layout, "lab-3", TEMP, ray="/v/bin/ray")
    assert head[:3] == worker[:3] == ["/v/bin/ray", "start", "--block"]
    assert "--head" in head and "--node-ip-address=10.89.0.11" in head
    assert "--address=10.89.0.11:6379" in worker and "--node-ip-address=10.89.0.13" in worker
    assert f"--plasma-directory={TEMP}" in worker
    assert '--resources={"rlops_rollout":2}' in worker
    with pytest.raises(AnsibleFilterError, match="lab-9 is not a node"):
        ray_cluster_start_argv(layout, "lab-9", TEMP)


def test_start_argv_without_plasma_directory_when_shm_holds_the_store():
    layout = ray_cluster_layout(nodes(lab_1={"shm": 4 * GIB}), "lab-1")
    assert not any(a.startswith("--plasma-directory") for a in
                   ray_cluster_start_argv(layout, "lab-1", TEMP))


# --- Problems -------------------------------------------------------------------------------

def test_a_good_cluster_has_no_problem():
    assert problems() == []


def test_one_host_runs_single_host():
    assert problems([node("lab-1")], hosts=["lab-1"]) == []


def test_versions_that_differ_from_the_heads_name_the_hosts():
    found = problems(nodes(lab_2={"python": "3.11.4"}, lab_3={"ray": "2.59.0"}))
    assert found == ["every node needs the head's Ray and Python (lab-1: Ray 2.60.0, Python"
                     " 3.11.2); lab-2 has Ray 2.60.0, Python 3.11.4, lab-3 has Ray 2.59.0,"
                     " Python 3.11.2"]


def test_the_heads_versions_are_the_reference():
    found = problems(nodes(lab_1={"ray": "2.59.0"}))
    assert len(found) == 1 and "lab-1: Ray 2.59.0" in found[0]
    assert "lab-2 has Ray 2.60.0" in found[0] and "lab-3 has Ray 2.60.0" in found[0]


def test_a_host_without_the_venv_or_ray():
    found = problems(nodes(lab_2={"probe_error": "[Errno 2] No such file or directory",
                                  "ray": None, "python": None},
                           lab_3={"ray": None}))
    assert found == ["lab-2: cannot run /v/bin/python (ray_cluster_venv): [Errno 2] No such file or"
                     " directory",
                     "lab-3: no Ray in the venv /v (install the Ray set there)"]


def test_a_host_without_the_venvs_python():
    found = problems(nodes(lab_3={"python_missing": True, "probe_error": "Error executing command.",
                                  "ray": None, "python": None}))
    assert found == ["lab-3: no /v/bin/python (ray_cluster_venv: the venv holding Ray, the same"
                     " path on every host)"]


def test_the_same_problem_on_several_hosts_is_one_message_naming_them():
    found = problems(nodes(lab_1={"gpus": 1}, lab_3={"gpus": 1}))
    assert found == ["lab-1, lab-3: 1 GPU(s) asked for Ray (ray_cluster_num_gpus), none found"]


def test_gpu_asked_for_where_none_is_found():
    found = problems(nodes(lab_2={"gpus": 1}))
    assert found == ["lab-2: 1 GPU(s) asked for Ray (ray_cluster_num_gpus), none found"]
    assert problems(nodes(lab_2={"gpus": 1, "gpus_found": 1})) == []


def test_gpu_learner_needs_a_gpu_on_the_head():
    found = problems(nodes(lab_2={"gpus": 1, "gpus_found": 1}), learner_gpu=True)
    assert len(found) == 1 and "lab-1 has no GPU" in found[0] and "make lab-2 the head" in found[0]


def test_unknown_resources_refused():
    found = problems(requested={"rlops_rolout": 1})
    assert len(found) == 1 and "unknown resource rlops_rolout" in found[0]
    assert problems(requested={ray_layout.ROLLOUT_RESOURCE: 4}) == []


def test_user_group_address_and_hosts():
    found = problems(nodes(lab_2={"user": "nobody-here", "user_exists": False},
                           lab_3={"ip": "", "group": "nogroup2", "group_exists": False}))
    assert "lab-2: the user nobody-here does not exist (ray_cluster_user)" in found
    assert "lab-3: the group nogroup2 does not exist (ray_cluster_group)" in found
    assert any(p.startswith("lab-3: no IPv4 address of its own") for p in found)


def test_hosts_outside_the_play_unread_and_a_head_elsewhere():
    found = problems(nodes()[:2], hosts=HOSTS + ["lab-9"])
    assert "ray_cluster_hosts: lab-9 not in this play" in found
    assert "no reading of lab-3 (unreachable, or failed before the check)" in found
    assert problems(head="lab-7")[0].startswith("ray_cluster_head lab-7 is not one of")


def test_ports_and_temp_dir():
    found = problems(ports={"gcs": 70000, "gcz": 1})
    assert found[0].startswith("ray_cluster_ports: unknown ports gcz")
    assert "ray_cluster_ports: gcs must be ports (1-65535)" in found
    found = problems(temp_dir="/tmp/ray")
    assert len(found) == 1 and "under /tmp" in found[0] and "ray_cluster_data_root" in found[0]


# --- Tunnel and wait ------------------------------------------------------------------------

def test_tunnel_from_the_inventorys_connection_settings():
    assert ray_cluster_tunnel("lab-1", 8265) == "ssh -N -L 8265:127.0.0.1:8265 lab-1"
    lab = ray_cluster_tunnel("lab-1", 8265, address="127.0.0.1", user="lab", ssh_port=40123,
                             key="/k/id ed25519", common_args="-o StrictHostKeyChecking=no")
    assert shlex.split(lab) == ["ssh", "-N", "-L", "8265:127.0.0.1:8265", "-p", "40123",
                                "-i", "/k/id ed25519", "-o", "StrictHostKeyChecking=no",
                                "lab@127.0.0.1"]
    assert "-p" not in ray_cluster_tunnel("h", 9000, ssh_port=22)


def test_wait_result_reads_the_json_answer():
    answer = 'warning\n{"ready": true, "msg": "ok"}'
    ready = ray_cluster_wait_result({"rc": 0, "stdout": answer})
    assert ready["ready"] is True and ready["message"] == "ok"
    missing = ray_cluster_wait_result({"rc": 1, "stdout": '{"ready": false, "msg": '
                                                          '"missing: 2 of 3 nodes alive"}'})
    assert missing == {"ready": False, "msg": "missing: 2 of 3 nodes alive",
                       "message": "missing: 2 of 3 nodes alive"}


def test_wait_result_reads_the_clis_indented_answer_after_rays_lines():
    """rlops-run ray wait's own answer (runtime/rlops_runtime/ray_cli.py), as it prints it."""
    from rlops_runtime import ray_cli
    answer = ray_cli.answer({"nodes": 2, "resources": {"rlops_rollout": 2}},
                            [{"Alive": True, "NodeManagerAddress": "10.0.0.1"}],
                            {"rlops_rollout": 0})
    stdout = "2026-12-07 INFO worker.py: Connecting to existing Ray cluster\n" + json.dumps(
        answer, indent=2, sort_keys=True)
    result = ray_cluster_wait_result({"rc": 1, "stdout": stdout})
    assert result["ready"] is False
    assert result["message"] == "missing: 1 of 2 nodes alive; rlops_rollout 0 of 2"
    assert result["nodes"][0]["ip"] == "10.0.0.1"


def test_wait_result_without_an_answer_is_not_ready_with_the_error():
    result = ray_cluster_wait_result({"rc": 2, "stdout": "",
                                      "stderr": "Traceback\nImportError: ray"})
    assert result == {"ready": False,
                      "message": "rlops-run ray wait failed (exit 2): ImportError: ray"}
    assert ray_cluster_wait_result({"rc": 127, "msg": "[Errno 2] No such file"})["ready"] is False
