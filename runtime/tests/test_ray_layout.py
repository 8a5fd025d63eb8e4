"""The Ray backend's pure decisions (rlops_runtime.ray_layout): layout, problems, `ray start`
argv, object store size, readiness, RLlib placement."""

from __future__ import annotations

import json

import pytest
from rlops_runtime import ray_layout as rl
from rlops_runtime.ray_layout import LEARNER_RESOURCE as LEARNER
from rlops_runtime.ray_layout import ROLLOUT_RESOURCE as ROLLOUT
from rlops_runtime.ray_layout import LayoutError

MIB = 1024 * 1024
GIB = 1024 * MIB


# --- cluster_layout ------------------------------------------------------------------------
def test_three_hosts_the_first_is_the_head_and_the_others_roll_out():
    layout = rl.cluster_layout(["a", "b", "c"], cpus={"a": 2, "b": 2, "c": 4})
    assert layout["head"] == "a" and layout["workers"] == ["b", "c"]
    assert not layout["single_host"]
    assert layout["nodes"] == [
        {"host": "a", "role": "head", "num_cpus": 2, "num_gpus": 0,
         "resources": {LEARNER: 1}},
        {"host": "b", "role": "worker", "num_cpus": 2, "num_gpus": 0,
         "resources": {ROLLOUT: 2}},
        {"host": "c", "role": "worker", "num_cpus": 4, "num_gpus": 0,
         "resources": {ROLLOUT: 4}},
    ]
    assert layout["expected"] == {"nodes": 3,
                                  "resources": {"CPU": 8, LEARNER: 1, ROLLOUT: 6}}


def test_a_given_head_comes_first_and_the_others_keep_their_order():
    layout = rl.cluster_layout(["a", "b", "c"], head="b", cpus=2, gpus={"b": 1})
    assert layout["head"] == "b" and layout["workers"] == ["a", "c"]
    assert [n["role"] for n in layout["nodes"]] == ["head", "worker", "worker"]
    assert layout["nodes"][0]["num_gpus"] == 1
    assert layout["expected"]["resources"] == {"CPU": 6, "GPU": 1, LEARNER: 1, ROLLOUT: 4}


def test_rollout_cpus_caps_a_nodes_env_runners_but_never_above_its_cpus():
    layout = rl.cluster_layout(["a", "b", "c"], cpus=4, rollout_cpus={"b": 1, "c": 9})
    assert [n["resources"] for n in layout["nodes"]] == [
        {LEARNER: 1}, {ROLLOUT: 1}, {ROLLOUT: 4}]
    assert rl.cluster_layout(["a", "b"], cpus=4, rollout_cpus=2)["expected"]["resources"][
        ROLLOUT] == 2


def test_one_host_runs_single_host_on_ray_learner_and_runners_on_the_head():
    layout = rl.cluster_layout(["solo"], cpus=4)
    assert layout["single_host"] and layout["workers"] == []
    assert layout["nodes"] == [{"host": "solo", "role": "head", "num_cpus": 4, "num_gpus": 0,
                                "resources": {LEARNER: 1, ROLLOUT: 3}}]
    # One CPU: Ray's CPUs are logical, the learner and one runner still fit.
    one = rl.cluster_layout(["solo"], cpus=1)["nodes"][0]
    assert one["resources"] == {LEARNER: 1, ROLLOUT: 1} and one["num_cpus"] == 2
    assert rl.layout_problems(["solo"], cpus=1) == []
    placement = rl.rllib_placement(rl.cluster_layout(["solo"], cpus=2)["expected"])
    assert placement["env_runners"]["num_env_runners"] == 1


@pytest.mark.parametrize("hosts, kwargs, words", [
    ([], {"cpus": 2}, ["at least one host"]),
    (["a", "b", "a"], {"cpus": 2}, ["more than once: a"]),
    (["a", "b"], {"head": "z", "cpus": 2}, ["head z is not one of", "a, b"]),
    (["a", "b"], {"cpus": {"a": 2}}, ["host b: its CPU count is None"]),
    (["a", "b"], {"cpus": 0}, ["host a: its CPU count is 0", "host b"]),
    (["a", "b"], {"cpus": 2, "gpus": {"b": -1}}, ["host b: its GPU count is -1"]),
    (["a", "b"], {"cpus": 2, "rollout_cpus": {"b": 0}}, ["host b: 0 env runners"]),
])
def test_bad_hosts_are_refused_naming_the_host(hosts, kwargs, words):
    problems = rl.layout_problems(hosts, **kwargs)
    assert problems and all(any(w in p for p in problems) for w in words), problems
    with pytest.raises(LayoutError) as err:
        rl.cluster_layout(hosts, **kwargs)
    assert all(w in str(err.value) for w in words)


def test_a_good_layout_has_no_problems():
    assert rl.layout_problems(["a", "b"], cpus=2) == []
    assert rl.layout_problems(["a", "b"], cpus=2, gpus={"a": 1}, gpu=True) == []


def test_a_gpu_learner_where_the_head_has_none_names_the_host_that_has_one():
    [problem] = rl.layout_problems(["a", "b"], cpus=2, gpus={"b": 1}, gpu=True)
    assert "head a has no GPU" in problem and "make b the head" in problem
    [problem] = rl.layout_problems(["a", "b"], cpus=2, gpu=True)
    assert "head a has no GPU" in problem and "no host of the cluster has one" in problem


def test_requested_resources_unknown_or_short_are_refused():
    layout_args = (["a", "b"],)
    kwargs = {"cpus": 2}
    assert rl.layout_problems(*layout_args, **kwargs,
                              requested={ROLLOUT: 2, LEARNER: 1, "CPU": 3,
                                         "memory": 10 ** 9}) == []
    [unknown] = rl.layout_problems(*layout_args, **kwargs, requested={"rlops_gpu": 1})
    assert "unknown resource rlops_gpu" in unknown and ROLLOUT in unknown
    [short] = rl.layout_problems(*layout_args, **kwargs, requested={ROLLOUT: 3})
    assert short == "resource rlops_rollout: 3 asked for, the cluster offers 2"
    [gpu] = rl.layout_problems(*layout_args, **kwargs, requested={"GPU": 1})
    assert gpu == "resource GPU: 1 asked for, the cluster offers 0"
    [bad] = rl.layout_problems(*layout_args, **kwargs, requested={"a-b": 1})
    assert "not a Ray resource name" in bad


# --- start_argv ----------------------------------------------------------------------------
def _nodes():
    layout = rl.cluster_layout(["h", "w"], cpus={"h": 2, "w": 3}, gpus={"h": 1})
    head, worker = layout["nodes"]
    return dict(head, ip="10.0.0.1"), dict(worker, ip="10.0.0.2")


def _flags(argv):
    return dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)


def test_the_head_starts_blocking_on_its_ip_with_every_port_pinned():
    head = _nodes()[0]
    argv = rl.start_argv(head, "10.0.0.1:6379", "/var/lib/rlops/ray", 100 * MIB,
                         ray="/opt/venv/bin/ray")
    assert argv[:3] == ["/opt/venv/bin/ray", "start", "--block"]
    assert "--head" in argv and "--disable-usage-stats" in argv
    flags = _flags(argv)
    assert "address" not in flags
    assert flags["node-ip-address"] == "10.0.0.1"
    assert flags["dashboard-host"] == "127.0.0.1"
    assert flags["num-cpus"] == "2" and flags["num-gpus"] == "1"
    assert json.loads(flags["resources"]) == {LEARNER: 1}
    assert flags["temp-dir"] == "/var/lib/rlops/ray"
    assert flags["object-store-memory"] == str(100 * MIB)
    pinned = {"port": "gcs", "dashboard-port": "dashboard", "node-manager-port": "node_manager",
              "object-manager-port": "object_manager",
              "runtime-env-agent-port": "runtime_env_agent",
              "dashboard-agent-grpc-port": "dashboard_agent_grpc",
              "dashboard-agent-listen-port": "dashboard_agent_listen",
              "metrics-export-port": "metrics_export", "min-worker-port": "min_worker",
              "max-worker-port": "max_worker"}
    assert {flag: int(flags[flag]) for flag in pinned} == {
        flag: rl.PORTS[name] for flag, name in pinned.items()}
    assert set(pinned.values()) == set(rl.PORTS)


def test_a_worker_joins_the_head_without_head_flags_and_ports_can_move():
    worker = _nodes()[1]
    argv = rl.start_argv(worker, "10.0.0.1:6379", "/d/ray", 80 * MIB,
                         ports={"node_manager": 7000}, plasma_directory="/d/ray")
    flags = _flags(argv)
    assert "--head" not in argv and "port" not in flags and "dashboard-host" not in flags
    assert flags["address"] == "10.0.0.1:6379" and flags["node-ip-address"] == "10.0.0.2"
    assert json.loads(flags["resources"]) == {ROLLOUT: 3}
    assert flags["node-manager-port"] == "7000" and flags["object-manager-port"] == "6381"
    assert flags["plasma-directory"] == "/d/ray"


def test_a_node_without_an_ip_is_refused():
    head = _nodes()[0]
    del head["ip"]
    with pytest.raises(LayoutError, match="node h: no IP address"):
        rl.start_argv(head, "x:6379", "/d/ray", 80 * MIB)


@pytest.mark.parametrize("path, words", [
    ("/var/lib/rlops/ray", None),
    ("ray", "not an absolute path"),
    ("/tmp/ray", "PrivateTmp"),
    ("/var/lib/" + "x" * 60, "107 bytes"),
])
def test_temp_dir_problem(path, words):
    problem = rl.temp_dir_problem(path)
    assert (problem is None) if words is None else (words in problem)


# --- object store --------------------------------------------------------------------------
@pytest.mark.parametrize("mem, shm, size, in_shm", [
    (4 * GIB, 4 * GIB, int(4 * GIB * 0.3), True),       # Ray's default: 30% of memory
    (64 * GIB, 32 * GIB, 2 * GIB, True),                 # bounded
    (8 * GIB, 1 * GIB, int(1 * GIB * 0.8), True),        # at most 80% of /dev/shm
    (8 * GIB, 100 * MIB, 80 * MIB, True),                # small /dev/shm, still >= 75 MiB
    (8 * GIB, 64 * MIB, 512 * MIB, False),               # podman's 64 MiB: in the temp dir
    (1 * GIB, 64 * MIB, int(1 * GIB * 0.3), False),
    (100 * MIB, 64 * MIB, 75 * MIB, False),              # never under Ray's minimum
])
def test_object_store_bytes(mem, shm, size, in_shm):
    assert rl.object_store_bytes(mem, shm) == size
    assert size >= rl.MIN_OBJECT_STORE_BYTES
    assert rl.object_store_in_shm(size, shm) is in_shm


# --- readiness -----------------------------------------------------------------------------
EXPECTED = {"nodes": 3, "resources": {LEARNER: 1, ROLLOUT: 4}}


def _alive(n, dead=0):
    return [{"NodeManagerAddress": f"10.0.0.{i}", "Alive": True} for i in range(n)] + [
        {"NodeManagerAddress": "10.0.0.99", "Alive": False}] * dead


def test_ready_when_every_node_and_resource_is_there():
    ready, msg = rl.readiness(EXPECTED, _alive(3, dead=1), {LEARNER: 1.0, ROLLOUT: 4.0,
                                                            "CPU": 6.0})
    assert ready and msg == "ready: 3 of 3 nodes alive; rlops_learner 1, rlops_rollout 4"
    assert rl.missing(EXPECTED, _alive(3), {LEARNER: 1, ROLLOUT: 4}) == {}


def test_not_ready_names_the_missing_nodes_and_resources():
    ready, msg = rl.readiness(EXPECTED, _alive(2, dead=1), {LEARNER: 1.0, ROLLOUT: 2.0})
    assert not ready
    assert msg == "missing: 2 of 3 nodes alive; rlops_rollout 2 of 4"
    assert rl.missing(EXPECTED, _alive(2, dead=1), {LEARNER: 1.0, ROLLOUT: 2.0}) == {
        "nodes": 1, "resources": {ROLLOUT: 2}}
    # Dead nodes do not count; a resource nobody offers is missing whole.
    assert rl.missing(EXPECTED, _alive(0, dead=3), {}) == {
        "nodes": 3, "resources": {LEARNER: 1, ROLLOUT: 4}}
    # The lower-case form (rlops-run ray status's own nodes) counts too.
    assert rl.missing({"nodes": 1, "resources": {}}, [{"alive": True}], {}) == {}


@pytest.mark.parametrize("text, words", [
    ("{", "not JSON"),
    ("[1]", "not a JSON object"),
    ('{"nodes": 0}', "not a count"),
    ('{"nodes": 2, "extra": 1}', "unknown keys: extra"),
    ('{"nodes": 2, "resources": [1]}', "not an object"),
    ('{"resources": {"a b": 1}}', "not a resource name"),
    ('{"resources": {"x": -1}}', "not an amount"),
    ('{"resources": {"x": true}}', "not an amount"),
])
def test_parse_expected_refuses_bad_input(text, words):
    with pytest.raises(LayoutError, match=words):
        rl.parse_expected(text)


def test_parse_expected_takes_what_cluster_layout_gives():
    expected = rl.cluster_layout(["a", "b"], cpus=2)["expected"]
    assert rl.parse_expected(json.dumps(expected)) == expected
    assert rl.parse_expected("{}") == {"nodes": 1, "resources": {}}


# --- rllib_placement -----------------------------------------------------------------------
def test_env_runners_one_per_rollout_cpu_pinned_and_the_learner_on_the_head():
    expected = rl.cluster_layout(["a", "b", "c"], cpus=2)["expected"]
    assert rl.rllib_placement(expected) == {
        "env_runners": {"num_env_runners": 4, "num_cpus_per_env_runner": 1,
                        "custom_resources_per_env_runner": {ROLLOUT: 1}},
        "learners": {"num_learners": 1, "num_gpus_per_learner": 0, "num_cpus_per_learner": 1,
                     "custom_resources_per_learner": {LEARNER: 1}},
    }


def test_a_gpu_learner_only_with_a_gpu():
    expected = rl.cluster_layout(["a", "b"], cpus=2, gpus={"a": 1})["expected"]
    learners = rl.rllib_placement(expected, gpu=True)["learners"]
    assert learners["num_gpus_per_learner"] == 1 and learners["num_cpus_per_learner"] == 0
    assert learners["custom_resources_per_learner"] == {LEARNER: 1}
    with pytest.raises(LayoutError, match="offers no GPU"):
        rl.rllib_placement(rl.cluster_layout(["a", "b"], cpus=2)["expected"], gpu=True)


def test_the_gpu_layout_on_cpu_a_custom_resource_stands_in_for_the_gpu():
    # What the tests on CPU-only machines run: the learner pinned by rlops_learner alone.
    expected = rl.cluster_layout(["a", "b"], cpus=2)["expected"]
    learners = rl.rllib_placement(expected, gpu=False)["learners"]
    assert learners["num_gpus_per_learner"] == 0
    assert learners["custom_resources_per_learner"] == {LEARNER: 1}


@pytest.mark.parametrize("resources, words", [
    ({LEARNER: 1}, "no rlops_rollout"),
    ({ROLLOUT: 2}, "no rlops_learner"),
])
def test_placement_refuses_a_cluster_without_its_resources(resources, words):
    with pytest.raises(LayoutError, match=words):
        rl.rllib_placement({"nodes": 2, "resources": resources})
