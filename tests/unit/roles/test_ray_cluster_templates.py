"""rlops.fleet.ray_cluster's templates (units, start script, environment file) rendered as
Ansible renders them, with the role's defaults and vars: the traps of `ray start --block`
handled in the units, and the start script run for real with a stand-in `ray` that behaves
like it on a stop (drains, exits 1, leaves a process behind)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
import role_templar
import yaml
from ansible.template import trust_as_template
from ansible_collections.rlops.fleet.plugins.filter.ray_cluster import FilterModule

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "roles" / "ray_cluster"
GIB = 1024 ** 3


def templar(variables: dict):
    """Ansible's templating with the role's files as Ansible reads them, and the collection's
    filters of the role (plugins/filter/ray_cluster.py) by their FQCN, as in a play."""
    return role_templar.templar(variables, FilterModule().filters())


def record(host: str, ip: str, cpus: int = 2) -> dict:
    """A host as the preflight publishes it (__ray_cluster_node): a container's 64 MiB /dev/shm."""
    return {"host": host, "ip": ip, "cpus": cpus, "gpus": 0, "gpus_found": 0, "memory": 8 * GIB,
            "shm": 64 * 1024 * 1024, "object_store_memory": None, "ray": "2.60.0",
            "python": "3.11.2", "probe_error": "", "user": "lab", "user_exists": True,
            "group": "lab", "group_exists": True}


HOSTVARS = {"node-1": {"__ray_cluster_node": record("node-1", "10.89.0.11")},
            "node-2": {"__ray_cluster_node": record("node-2", "10.89.0.12")}}


def render(name: str, **inputs) -> str:
    """templates/<name> with the role's defaults and vars, the facts the tasks read, and
    `inputs` (role variables the tasks set, given here)."""
    variables = {**yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()),
                 **yaml.safe_load((ROLE / "vars" / "main.yml").read_text()),
                 "ansible_managed": "Ansible managed", "inventory_hostname": "node-1",
                 "ray_cluster_venv": "/opt/venv", "hostvars": HOSTVARS,
                 "ansible_play_hosts_all": ["node-1", "node-2"], "groups": {},
                 "__ray_cluster_probe_run": {"rc": 0, "stdout": '{"user": "lab", "group": "lab"}'},
                 **inputs}
    return templar(variables).template(trust_as_template((ROLE / "templates" / name).read_text()))


def start_line(script: str) -> list[str]:
    line = next(line for line in script.splitlines() if " start --block " in line)
    return shlex.split(line.rstrip("&"))


def settings(unit: str) -> dict:
    """The unit's Key=value lines (the last value of a key)."""
    pairs = [line.split("=", 1) for line in unit.splitlines()
             if "=" in line and not line.startswith("#")]
    return dict(pairs)


@pytest.mark.parametrize("host", ["node-1", "node-2"])
def test_units_handle_ray_start_block(host):
    unit = render("ray-node.service.j2", inventory_hostname=host)
    role = "head" if host == "node-1" else "worker"
    values = settings(unit)
    assert values["ExecStart"] == f"/usr/local/libexec/rlops-ray-{role}"
    assert values["User"] == "lab" and values["Group"] == "lab"
    assert values["EnvironmentFile"] == "/etc/rlops/ray/node.env"
    # Exit 1 on a normal stop; crashes and stops look alike, so restart always.
    assert values["SuccessExitStatus"] == "1"
    assert values["Restart"] == "always"
    assert values["KillMode"] in ("process", "mixed")
    # The stop outlasts the drain.
    assert int(values["TimeoutStopSec"]) > 5
    assert values["WorkingDirectory"] == "/var/lib/rlops/ray"
    for forbidden in ("ExecStop", "LimitNOFILE", "PrivateTmp"):
        assert forbidden not in values, forbidden
    assert "ray stop" not in unit
    assert ("StartLimitIntervalSec" in values) == (role == "worker")


def test_stop_timeout_follows_the_drain():
    values = settings(render("ray-node.service.j2", ray_cluster_drain_timeout=40))
    assert int(values["TimeoutStopSec"]) >= 40 + 20


def test_environment_sets_token_auth_and_a_short_drain():
    env = settings(render("node.env.j2", ray_cluster_drain_timeout=7))
    assert env == {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": "/etc/rlops/ray/auth_token",
                   "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "7",
                   "RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL": "patch"}


@pytest.mark.parametrize("host", ["node-1", "node-2"])
def test_start_script_runs_the_layouts_ray_start(host, tmp_path):
    script = render("ray-node.sh.j2", inventory_hostname=host)
    argv = start_line(script)
    assert argv[:3] == ["/opt/venv/bin/ray", "start", "--block"]
    # The address is looked up when the node starts (route towards the head), the role's
    # as the fallback.
    ip = HOSTVARS[host]["__ray_cluster_node"]["ip"]
    assert argv[3] == "--node-ip-address=$node_ip"
    assert [a for a in argv if a.startswith("--node-ip-address=")] == [argv[3]]
    assert "ip -4 -o route get 10.89.0.11 " in script
    assert f"node_ip=${{node_ip:-{ip}}}" in script
    assert "--temp-dir=/var/lib/rlops/ray" in argv
    if host == "node-1":
        assert "--head" in argv and "--port=6379" in argv
        assert "--dashboard-host=127.0.0.1" in argv
        assert '--resources={"rlops_learner":1}' in argv
    else:
        assert "--address=10.89.0.11:6379" in argv and "--head" not in argv
        assert '--resources={"rlops_rollout":2}' in argv
    # 64 MiB of /dev/shm hold no store of Ray's minimum: a file in the temp dir.
    assert "--plasma-directory=/var/lib/rlops/ray" in argv
    path = tmp_path / "node.sh"
    path.write_text(script)
    assert subprocess.run(["sh", "-n", str(path)], check=False).returncode == 0


def test_ports_overridden_reach_the_command():
    argv = start_line(render("ray-node.sh.j2", inventory_hostname="node-2",
                             ray_cluster_ports={"gcs": 7000}))
    assert "--address=10.89.0.11:7000" in argv


# A stand-in for `ray start --block`: starts a process that ignores SIGTERM in its process
# group (as a Ray process that outlives its parent does), and on SIGTERM "drains" and exits 1.
STAND_IN = """#!/bin/sh
sh -c 'trap "" TERM; while :; do sleep 1; done' &
echo $! > {left}
echo "$@" > {args}
trap 'sleep 1; exit 1' TERM
while :; do sleep 1; done
"""


def _start_script(tmp_path):
    ray = tmp_path / "venv" / "bin" / "ray"
    ray.parent.mkdir(parents=True)
    ray.write_text(STAND_IN.format(left=tmp_path / "left.pid", args=tmp_path / "args"))
    ray.chmod(0o755)
    script = tmp_path / "node.sh"
    script.write_text(render("ray-node.sh.j2", ray_cluster_venv=str(tmp_path / "venv")))
    script.chmod(0o755)
    # systemd starts a service in a session of its own: the script leads its process group.
    process = subprocess.Popen([str(script)], start_new_session=True)
    for _attempt in range(100):
        if (tmp_path / "left.pid").exists() and (tmp_path / "args").exists():
            break
        time.sleep(0.05)
    return process, int((tmp_path / "left.pid").read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of an exited child is not alive.
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def test_start_script_forwards_a_stop_and_reaps_its_group(tmp_path):
    process, left = _start_script(tmp_path)
    try:
        args = (tmp_path / "args").read_text().split()
        assert args[:2] == ["start", "--block"]
        # This machine's own address towards the "head" (10.89.0.11 is not here), else the
        # role's: never empty.
        found = subprocess.run(["ip", "-4", "-o", "route", "get", "10.89.0.11"],
                               capture_output=True, text=True, check=False).stdout.split()
        here = found[found.index("src") + 1] if "src" in found else "10.89.0.11"
        assert args[2] == f"--node-ip-address={here}"
        assert _alive(left)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 1  # ray start's own status: SuccessExitStatus=1
        for _attempt in range(50):
            if not _alive(left):
                break
            time.sleep(0.1)
        assert not _alive(left), "a process of the node's group outlived the stop"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def test_start_script_passes_on_a_crash_of_ray_start(tmp_path):
    process, left = _start_script(tmp_path)
    try:
        children = subprocess.run(["pgrep", "-P", str(process.pid), "-f", "ray start"],
                                  capture_output=True, text=True, check=False).stdout
        ray_start = int(children.split()[0])
        os.kill(ray_start, signal.SIGKILL)
        assert process.wait(timeout=15) == 128 + signal.SIGKILL
        for _attempt in range(50):
            if not _alive(left):
                break
            time.sleep(0.1)
        assert not _alive(left)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
