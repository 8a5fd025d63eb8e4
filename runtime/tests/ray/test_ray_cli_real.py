"""`rlops-run ray wait|status` against a real cluster (conftest.one_node: a head that runs
single-host on Ray, token authentication on)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from rlops_runtime.ray_layout import LEARNER_RESOURCE, ROLLOUT_RESOURCE

RLOPS_RUN = str(Path(sys.executable).with_name("rlops-run"))


def _run(cluster, *args, env=None, timeout=120):
    proc = subprocess.run([RLOPS_RUN, "ray", *args, "--address", cluster.address],
                          env=env or cluster.env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def test_status_lists_the_node_and_its_resources(one_node):
    code, answer, _err = _run(one_node, "status")
    assert code == 0 and answer["ok"] and answer["ready"] is None
    [node] = answer["nodes"]
    assert node["alive"] and node["ip"]
    assert node["resources"][LEARNER_RESOURCE] == 1
    assert node["resources"][ROLLOUT_RESOURCE] == 1  # 2 CPUs less the learner's
    assert answer["resources"]["CPU"] == 2


def test_wait_answers_ready_with_what_the_layout_expects(one_node):
    code, answer, _err = _run(one_node, "wait", "--expected",
                              json.dumps(one_node.expected), "--timeout", "30")
    assert code == 0 and answer["ok"] and answer["ready"] and answer["missing"] == {}
    assert answer["msg"].startswith("ready: 1 of 1 nodes alive")


def test_wait_for_what_never_comes_ends_at_the_deadline_naming_it(one_node):
    expected = {"nodes": 2, "resources": {ROLLOUT_RESOURCE: 3, LEARNER_RESOURCE: 1}}
    started = time.monotonic()
    code, answer, _err = _run(one_node, "wait", "--expected", json.dumps(expected),
                              "--timeout", "3")
    assert code == 1 and not answer["ok"] and not answer["ready"]
    assert time.monotonic() - started < 60
    assert answer["missing"] == {"nodes": 1, "resources": {ROLLOUT_RESOURCE: 2}}
    assert "not ready within 3 s" in answer["msg"]
    assert "1 of 2 nodes alive; rlops_rollout 1 of 3" in answer["msg"]


def test_without_the_token_the_cluster_does_not_answer(one_node, tmp_path):
    wrong = tmp_path / "token"
    wrong.write_text("0" * 64)
    env = dict(one_node.env, RAY_AUTH_TOKEN_PATH=str(wrong))
    code, answer, _err = _run(one_node, "status", env=env)
    assert code == 1 and not answer["ok"] and answer["nodes"] == []
    assert f"cannot connect to the Ray cluster at {one_node.address} (RAY_AUTH_MODE=token, " \
        f"RAY_AUTH_TOKEN_PATH={wrong})" in answer["msg"]


def test_an_address_where_nothing_answers_ends_at_the_deadline(one_node):
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    started = time.monotonic()
    proc = subprocess.run([RLOPS_RUN, "ray", "wait", "--address", f"127.0.0.1:{port}",
                           "--expected", json.dumps(one_node.expected), "--timeout", "3"],
                          env=one_node.env, capture_output=True, text=True, timeout=120,
                          check=False)
    answer = json.loads(proc.stdout)
    assert proc.returncode == 1 and not answer["ready"]
    assert time.monotonic() - started < 30  # ray.init alone would retry it forever
    assert f"nothing answers at 127.0.0.1:{port}" in answer["msg"]
