"""`rlops-run ray wait|status` without Ray: the answer, the wait's deadline, bad input.
The same commands against a real cluster: tests/ray/test_ray_cli_real.py (make ray-test)."""

from __future__ import annotations

import json
import sys

import pytest
from rlops_runtime import ray_cli
from rlops_runtime.cli import main

EXPECTED = {"nodes": 2, "resources": {"rlops_learner": 1, "rlops_rollout": 2}}
HEAD = {"NodeManagerHostname": "h", "NodeManagerAddress": "10.0.0.1", "Alive": True,
        "Resources": {"CPU": 2.0, "rlops_learner": 1.0}}
WORKER = {"NodeManagerHostname": "w", "NodeManagerAddress": "10.0.0.2", "Alive": True,
          "Resources": {"rlops_rollout": 2.0, "CPU": 2.0}}
DEAD = dict(WORKER, Alive=False)


def test_the_answer_lists_nodes_and_says_what_is_missing():
    result = ray_cli.answer(EXPECTED, [HEAD, DEAD], {"CPU": 2.0, "rlops_learner": 1.0})
    assert result["ok"] is False and result["ready"] is False
    assert result["nodes"] == [
        {"host": "h", "ip": "10.0.0.1", "alive": True,
         "resources": {"CPU": 2.0, "rlops_learner": 1.0}},
        {"host": "w", "ip": "10.0.0.2", "alive": False,
         "resources": {"CPU": 2.0, "rlops_rollout": 2.0}}]
    assert result["missing"] == {"nodes": 1, "resources": {"rlops_rollout": 2}}
    assert result["msg"] == "missing: 1 of 2 nodes alive; rlops_rollout 0 of 2"
    ready = ray_cli.answer(EXPECTED, [HEAD, WORKER], {"rlops_learner": 1, "rlops_rollout": 2})
    assert ready["ok"] and ready["ready"] and ready["missing"] == {}
    plain = ray_cli.answer(None, [HEAD, DEAD], {"CPU": 2.0})
    assert plain["ok"] and plain["ready"] is None and plain["msg"] == "1 nodes alive"


class FakeCluster:
    """Answers in turn: a failed connect, then each (nodes, resources) of `reads`."""

    address = "10.0.0.1:6379"

    def __init__(self, reads, connect_failures=1):
        self.reads = list(reads)
        self.failures = connect_failures
        self.error = ""

    def connect(self):
        if self.failures:
            self.failures -= 1
            self.error = "cannot connect to the Ray cluster at 10.0.0.1:6379: ConnectionError"
            return False
        return True

    def read(self):
        return self.reads.pop(0) if len(self.reads) > 1 else self.reads[0]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_wait_connects_again_and_returns_when_ready():
    clock = Clock()
    cluster = FakeCluster([([HEAD], {"rlops_learner": 1}),
                           ([HEAD, WORKER], {"rlops_learner": 1, "rlops_rollout": 2})])
    result = ray_cli.wait_ready(cluster, EXPECTED, 30, 1, clock=clock, sleep=clock.sleep)
    assert result["ok"] and result["ready"] and clock.now == 2


def test_wait_gives_up_at_the_deadline_naming_what_is_missing():
    clock = Clock()
    cluster = FakeCluster([([HEAD], {"rlops_learner": 1})])
    result = ray_cli.wait_ready(cluster, EXPECTED, 5, 1, clock=clock, sleep=clock.sleep)
    assert not result["ok"] and not result["ready"] and clock.now == 5
    assert result["msg"] == ("the Ray cluster at 10.0.0.1:6379 was not ready within 5 s: "
                             "missing: 1 of 2 nodes alive; rlops_rollout 0 of 2")
    never = FakeCluster([], connect_failures=100)
    result = ray_cli.wait_ready(never, EXPECTED, 3, 1, clock=clock, sleep=clock.sleep)
    assert not result["ok"] and "cannot connect" in result["msg"]
    assert result["missing"] == {
        "nodes": 2, "resources": {"rlops_learner": 1, "rlops_rollout": 2}}


@pytest.mark.parametrize("argv, words", [
    (["ray", "wait", "--address", "x:6379"], "needs --expected"),
    (["ray", "wait", "--address", "x:6379", "--expected", "{"], "not JSON"),
    (["ray", "status", "--address", ""], "no Ray address"),
])
def test_bad_input_is_exit_2_with_one_line(argv, words, capsys, monkeypatch):
    monkeypatch.delenv("RLOPS_RAY_EXPECTED", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlops-run: error: ") and words in err


def test_without_ray_in_the_venv_it_says_so(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what a venv without the extra gives
    assert main(["ray", "status", "--address", "127.0.0.1:6379"]) == 2
    assert "needs Ray in this venv (the runtime's ray extra)" in capsys.readouterr().err


def test_the_answer_is_json(capsys, monkeypatch):
    class Connected(FakeCluster):
        def __init__(self, address):
            super().__init__([([HEAD], {"rlops_learner": 1})], connect_failures=0)

        def close(self):
            pass

    monkeypatch.setattr(ray_cli, "Cluster", Connected)
    assert main(["ray", "status", "--address", "10.0.0.1:6379"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] and result["nodes"][0]["host"] == "h"
    assert main(["ray", "wait", "--address", "10.0.0.1:6379", "--timeout", "0",
                 "--expected", json.dumps(EXPECTED)]) == 1
    assert json.loads(capsys.readouterr().out)["missing"] == {
        "nodes": 1, "resources": {"rlops_rollout": 2}}


def test_gcs_unreachable_before_ray_init_which_would_retry_forever():
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert ray_cli.gcs_unreachable(f"127.0.0.1:{port}") is None
    # The same port closed: refused at once.
    assert ray_cli.gcs_unreachable(f"127.0.0.1:{port}").startswith(
        f"nothing answers at 127.0.0.1:{port}")
    assert ray_cli.gcs_unreachable("127.0.0.1") == "'127.0.0.1' is not host:port"
