"""rlops.fleet.ray_cluster's vars (vars/main.yml) rendered by Ansible's templating: the
cluster's hosts and head from the play and the group ray_head, each host's record from its
facts and the preflight's probe (files/ray_probe.py, run here for real), the layout over
every host's record, the tunnel from the head's connection settings; and the tasks that
see the token keep it out of the logs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import role_templar
import yaml
from ansible.template import trust_as_template
from ansible_collections.rlops.fleet.plugins.filter.ray_cluster import FilterModule

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "roles" / "ray_cluster"
PLAY = ["lab-1", "lab-2", "lab-3"]
GIB = 1024 ** 3


def templar(variables: dict):
    """Ansible's templating with the role's files as Ansible reads them, and the collection's
    filters of the role (plugins/filter/ray_cluster.py) by their FQCN, as in a play."""
    return role_templar.templar(variables, FilterModule().filters())


def probe(user: str = "", group: str = "") -> dict:
    """files/ray_probe.py run as the role runs it (python -c, argv user and group)."""
    run = subprocess.run([sys.executable, "-c", (ROLE / "files" / "ray_probe.py").read_text(),
                          user, group], capture_output=True, text=True, check=True)
    return {"rc": 0, "stdout": run.stdout, "stderr": run.stderr}


def role(host="lab-1", groups=None, hostvars=None, facts=None, **inputs):
    facts = {"default_ipv4": {"address": "10.89.0.11"}, "processor_vcpus": 2, **(facts or {})}
    variables = {**yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()),
                 **yaml.safe_load((ROLE / "vars" / "main.yml").read_text()),
                 "inventory_hostname": host, "ansible_play_hosts_all": PLAY,
                 "groups": groups or {}, "hostvars": hostvars or {}, "ansible_facts": facts,
                 "ray_cluster_venv": "/v", "__ray_cluster_probe_run": probe(), **inputs}
    engine = templar(variables)
    return lambda expression: engine.template(trust_as_template("{{ " + expression + " }}"))


def test_probe_reads_versions_user_memory_and_shm():
    answer = json.loads(probe()["stdout"])
    assert answer["python"] == ".".join(map(str, sys.version_info[:3]))
    assert answer["user_exists"] and answer["group_exists"] and answer["memory"] > 0
    assert set(answer) == {"ray", "runtime", "python", "memory", "shm", "gpu_devices", "user",
                           "user_exists", "group", "group_exists"}
    missing = json.loads(probe("nobody-here-at-all")["stdout"])
    assert missing["user"] == "nobody-here-at-all" and missing["user_exists"] is False


def test_hosts_default_to_the_play_and_the_head_to_the_first():
    render = role()
    assert render("__ray_cluster_hosts") == PLAY
    assert render("__ray_cluster_head") == "lab-1"
    assert render("__ray_cluster_workers") == ["lab-2", "lab-3"]
    assert render("__ray_cluster_role") == "head"
    assert role(host="lab-3")("__ray_cluster_unit") == "rlops-ray-worker.service"


def test_the_head_is_the_first_of_the_group_ray_head_among_the_hosts():
    render = role(groups={"ray_head": ["elsewhere", "lab-3", "lab-2"]})
    assert render("__ray_cluster_head") == "lab-2"
    assert role(groups={"ray_head": ["lab-3"]}, ray_cluster_head="lab-2")("__ray_cluster_head") \
        == "lab-2"
    assert role(ray_cluster_hosts=["lab-3", "lab-2"])("__ray_cluster_head") == "lab-3"


def test_this_hosts_record_from_facts_and_probe():
    record = role(facts={"gpu_host_gpu_count": 1})("__ray_cluster_this_node")
    assert record["host"] == "lab-1" and record["ip"] == "10.89.0.11"
    assert record["cpus"] == 2 and record["gpus"] == 1 and record["gpus_found"] == 1
    assert record["memory"] > 0 and record["probe_error"] == ""
    given = role(ray_cluster_num_cpus=1, ray_cluster_num_gpus=0)("__ray_cluster_this_node")
    assert given["cpus"] == 1 and given["gpus"] == 0 and given["gpus_found"] == 0


def test_a_failed_probe_is_a_record_with_its_error():
    failed = {"rc": 2, "stdout": "", "stderr": "", "msg": "[Errno 2] No such file or directory"}
    record = role(__ray_cluster_probe_run=failed)("__ray_cluster_this_node")
    assert record["probe_error"] == "[Errno 2] No such file or directory"
    assert record["ray"] is None


def test_a_venv_without_python_is_said_so_and_not_run():
    skipped = {"skipped": True, "changed": False, "false_condition": "..."}
    record = role(__ray_cluster_python_stat={"stat": {"exists": False}},
                  __ray_cluster_probe_run=skipped)("__ray_cluster_this_node")
    assert record["python_missing"] is True and record["ray"] is None
    assert role(__ray_cluster_python_stat={"stat": {"exists": True}})(
        "__ray_cluster_this_node")["python_missing"] is False


def _hostvars():
    def record(host, ip):
        return {"host": host, "ip": ip, "cpus": 2, "gpus": 0, "memory": 8 * GIB,
                "shm": 64 * 1024 ** 2, "object_store_memory": None}
    return {"lab-1": {"__ray_cluster_node": record("lab-1", "10.89.0.11"),
                      "ansible_host": "127.0.0.1", "ansible_user": "lab", "ansible_port": 40123},
            "lab-2": {"__ray_cluster_node": record("lab-2", "10.89.0.12")},
            "lab-3": {"__ray_cluster_node": record("lab-3", "10.89.0.13")}}


def test_layout_over_every_hosts_record_and_the_tunnel():
    render = role(hostvars=_hostvars())
    assert render("__ray_cluster_address") == "10.89.0.11:6379"
    assert render("__ray_cluster_head_ip") == "10.89.0.11"
    assert render("__ray_cluster_layout")["expected"]["nodes"] == 3
    assert render("__ray_cluster_tunnel") == "ssh -N -L 8265:127.0.0.1:8265 -p 40123 lab@127.0.0.1"
    argv = role(host="lab-2", hostvars=_hostvars())("__ray_cluster_start_argv")
    assert argv[:3] == ["/v/bin/ray", "start", "--block"]
    assert "--address=10.89.0.11:6379" in argv


def test_the_drivers_environment():
    env = role(hostvars=_hostvars(), ray_cluster_start_timeout=90)("__ray_cluster_driver_env")
    assert env == {"RLOPS_RAY_ADDRESS": "10.89.0.11:6379",
                   "RLOPS_RAY_TEMP_DIR": "/var/lib/rlops/ray",
                   "RLOPS_RAY_EXPECTED": json.dumps({"nodes": 3, "resources": {
                       "CPU": 6, "rlops_learner": 1, "rlops_rollout": 4}}),
                   "RLOPS_RAY_GPU": "0", "RLOPS_RAY_READY_TIMEOUT": "90",
                   "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": "/etc/rlops/ray/auth_token"}
    assert all(isinstance(value, str) for value in env.values())


def test_changed_hosts_and_the_heads_change():
    hostvars = _hostvars()
    for host, values in hostvars.items():
        values["inventory_hostname"] = host
    hostvars["lab-1"]["__ray_cluster_node_changed"] = True
    hostvars["lab-2"]["__ray_cluster_node_changed"] = False
    render = role(host="lab-2", hostvars=hostvars)
    assert render("__ray_cluster_changed_hosts") == ["lab-1"]
    assert render("__ray_cluster_head_changed") is True


def test_the_process_pattern_finds_the_clusters_processes_only():
    pattern = re.compile(role()("__ray_cluster_process_pattern"))
    ours = ["/v/bin/python /v/lib/python3.11/site-packages/ray/core/src/ray/raylet/raylet "
            "--raylet_socket_name=/var/lib/rlops/ray/session_2026/sockets/raylet",
            "/v/bin/ray start --block --head --temp-dir=/var/lib/rlops/ray",
            "ray::IDLE", "/bin/sh /usr/local/libexec/rlops-ray-worker"]
    others = ["/usr/bin/python3 /var/lib/rlops/ray2/x", "sshd: lab", "grep ray",
              "/usr/bin/python3 -m rlops_runtime.supervisor --data-root /var/lib/rlops"]
    assert [bool(pattern.search(line)) for line in ours] == [True] * len(ours)
    assert [bool(pattern.search(line)) for line in others] == [False] * len(others)


def test_tasks_that_see_the_token_have_no_log():
    """The token's bytes pass through three tasks (read, kept or made, written): each has
    no_log, and no other task sees them (the token file's path is no secret)."""
    tasks = yaml.safe_load((ROLE / "tasks" / "start.yml").read_text())
    seeing = [task["name"] for task in tasks
              if re.search(r"__ray_cluster_token_read|__ray_cluster_token\b(?!_)|password",
                           json.dumps(task))]
    assert seeing == ["Read the cluster's token on the head", "Keep the head's token, or make one",
                      "Write the token on every node"]
    assert all(task.get("no_log") is True for task in tasks if task["name"] in seeing)
