"""The RLlib agent as a session's job under the supervisor, on a 2-node cluster on this
machine (conftest.two_nodes: a learner head, a rollout node with one env runner): it trains
with env runners on the rollout node only, publishes complete checkpoints with LATEST,
reports nodes and env runners into status.json; killed with its supervisor, it resumes
from the newest checkpoint's step; a stop checkpoints where it is; evaluate reads the
policy back with no cluster left. A tiny batch keeps it under ~2 min on 2 cores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rlops_runtime.checkpoints import newest_complete_local
from rlops_runtime.jsonio import read_json, write_json_atomic
from rlops_runtime.report import read_scalars
from rlops_runtime.session import SessionLayout

RLOPS_RUN = str(Path(sys.executable).with_name("rlops-run"))
INTERVAL = 200


def _session(tmp_path: Path, cluster) -> SessionLayout:
    layout = SessionLayout.for_session(tmp_path / "data", "ray-agent").create()
    write_json_atomic(layout.run_json, {
        "session_id": "ray-agent", "backend": "ray",
        "storage_uri": f"file://{tmp_path / 'storage'}",
        "command": [sys.executable, "-m", "rlops_runtime.agents.rllib", "train"],
        "env_id": "CartPole-v1", "algo": "ppo", "total_timesteps": 100_000,
        "checkpoint_interval": INTERVAL, "seed": 0, "sync_interval": 1, "stop_grace": 90,
        "final_sync_timeout": 10,
        "env": {"RLOPS_RAY_ADDRESS": cluster.address,
                "RLOPS_RAY_EXPECTED": json.dumps(cluster.expected),
                "RLOPS_RAY_READY_TIMEOUT": "60", "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN_PATH": str(cluster.token)}})
    # A tiny batch: an iteration samples 100 env steps.
    write_json_atomic(layout.hyperparameters, {"n_steps": 100, "n_envs": 1, "batch_size": 50,
                                               "n_epochs": 1})
    return layout


def _supervise(layout: SessionLayout, cluster) -> subprocess.Popen:
    log = open(layout.root / "supervisor.out", "ab")  # noqa: SIM115 (kept by the child)
    return subprocess.Popen([RLOPS_RUN, "run", "--session-dir", str(layout.root)],
                            env=cluster.env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _wait(what, check, timeout, layout, cluster):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = check()
        if answer:
            return answer
        time.sleep(1)
    job_log = next(iter(layout.logs.glob("job*.log")), None)
    raise AssertionError(
        f"{what} within {timeout} s: status {read_json(layout.status)}\n"
        f"job log: {job_log.read_text()[-3000:] if job_log else None}\n{cluster.logs()}")


def _status(layout):
    return read_json(layout.status) or {}


def test_train_checkpoint_kill_resume_stop_evaluate(two_nodes, tmp_path):
    layout = _session(tmp_path, two_nodes)
    supervisor = _supervise(layout, two_nodes)

    # 1. A first complete checkpoint with LATEST; status.json shows the cluster.
    _wait("a checkpoint", lambda: newest_complete_local(layout.checkpoints), 150, layout,
          two_nodes)
    first_step, first = newest_complete_local(layout.checkpoints)
    assert first_step >= INTERVAL
    assert (layout.checkpoints / "LATEST").read_text() == str(first_step)
    assert json.loads((first / "rlops_state.json").read_text())["step"] == first_step
    assert (first / "learner_group" / "learner" / "rl_module" / "default_policy").is_dir()
    # status.json is the supervisor's, written every few seconds: it may lag a checkpoint.
    status = _wait("nodes and env runners in status.json",
                   lambda: (s := _status(layout)).get("env_runners")
                   and s["step"] >= first_step and s, 30, layout, two_nodes)
    assert status["nodes"] == 2
    assert status["env_runners"]["total"] == 1 and status["env_runners"]["healthy"] == 1

    # 2. Killed with its supervisor (no checkpoint on the way out)...
    job_pid = status["pid"]
    os.killpg(supervisor.pid, signal.SIGKILL)
    os.killpg(job_pid, signal.SIGKILL)
    supervisor.wait(30)
    killed_at, _folder = newest_complete_local(layout.checkpoints)

    # ...it resumes from the newest complete checkpoint, its step going on from there.
    supervisor = _supervise(layout, two_nodes)
    status = _wait("the resumed run's progress",
                   lambda: (s := _status(layout)).get("state") == "running"
                   and s.get("resumed_from_step") == killed_at and s["step"] > killed_at
                   and s, 150, layout, two_nodes)
    job_log = "\n".join(p.read_text() for p in layout.logs.glob("job*.log"))
    assert f"at step {killed_at}" in job_log  # "resumed from ... at step N"

    # 3. A stop: the agent checkpoints where it is, then ends (the cluster carries on).
    time.sleep(3)
    os.kill(supervisor.pid, signal.SIGTERM)
    assert supervisor.wait(150) == 0
    status = _status(layout)
    last_step, last = newest_complete_local(layout.checkpoints)
    assert status["state"] == "stopped", status
    assert last_step == status["step"] > killed_at
    assert json.loads((last / "rlops_state.json").read_text())["step"] == last_step

    # The learning curve is where report.py reads it.
    curve = read_scalars(layout.tensorboard)
    assert curve and curve[-1][0] <= last_step

    # 4. Evaluate with no cluster left: the policy from the checkpoint alone.
    two_nodes.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "RLOPS_RAY"))}
    proc = subprocess.run([RLOPS_RUN, "evaluate", "--session-dir", str(layout.root),
                           "--episodes", "2", "--video"],
                          env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = read_json(layout.eval_dir / "eval.json")
    assert result["step"] == last_step and result["env_id"] == "CartPole-v1"
    assert len(result["returns"]) == 2 and all(r >= 1 for r in result["returns"])
    assert (layout.eval_dir / result["video"]).stat().st_size > 0


def test_a_lost_rollout_node_does_not_end_training_and_its_runner_comes_back(two_nodes,
                                                                             tmp_path):
    layout = _session(tmp_path, two_nodes)
    supervisor = _supervise(layout, two_nodes)
    try:
        def runners(healthy, nodes):
            status = _status(layout)
            found = status.get("env_runners") or {}
            return (found.get("healthy") == healthy and status.get("nodes") == nodes
                    and status.get("state") == "running" and status)

        _wait("a healthy env runner", lambda: runners(1, 2), 150, layout, two_nodes)
        # The rollout node is gone (killed: a spot host's end) ...
        two_nodes.stop("rollout", signal.SIGKILL)
        lost = _wait("the env runner lost, training on", lambda: runners(0, 1), 120, layout,
                     two_nodes)
        # ... the driver is still there; the node comes back and its env runner with it.
        assert supervisor.poll() is None
        two_nodes.start("rollout")
        back = _wait("the env runner back",
                     lambda: (s := runners(1, 2)) and s["step"] > lost["step"] and s,
                     180, layout, two_nodes)
        assert back["env_runners"]["restarts"] >= 1
    finally:
        os.kill(supervisor.pid, signal.SIGTERM)
        supervisor.wait(150)
    assert _status(layout)["state"] == "stopped"
