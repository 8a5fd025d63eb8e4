"""One Ray session over three lab hosts through the real playbooks (rlops_backend ray): the
head (group ray_head: GCS, learner, the driver under the session's supervisor) and two
rollout hosts.

train_new -> three nodes, env runners on the rollout hosts only -> a rollout host is killed
(podman kill): training goes on with fewer healthy env runners -> the host comes back (it
reboots with its disk, its worker unit rejoins; its address changes) -> all env runners
healthy again -> the supervisor on the head is killed -> systemd restarts it, it resumes
from LATEST and the step goes on from the checkpoint's step -> stop: no Ray process on any
host -> retrieve and evaluate.

The hosts boot from the lab's Ray image (tests/lab/README.md, "The Ray image"): the venv of
the Ray set is in it, and pip is given --no-index, so nothing is downloaded on a host.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

from harness import has_checkpoint, in_state, status_table, wait_until

# What status.json says of the cluster (the reference agent's progress): alive nodes.
NODES = "nodes"
# Small and quick on two shared cores: one CPU per node (one env runner per rollout host),
# a checkpoint every 2000 steps, a budget that outlasts the test (stop ends it).
INTERVAL = 2000
BATCH = 500
SETTINGS = {
    "ray_cluster_num_cpus": 1,
    "trainer_total_timesteps": 10_000_000,
    "trainer_checkpoint_interval": INTERVAL,
    # A stop's time budget, the unit's TimeoutStopSec (60 s): a killed supervisor leaves its
    # job running until then (KillMode=mixed), and systemd restarts the unit after it.
    "trainer_stop_grace": 15,
    "trainer_final_sync_timeout": 15,
    # The single-host agent's names: n_steps * n_envs is RLlib's train batch.
    "trainer_hyperparameters": {"n_steps": BATCH, "n_envs": 1, "batch_size": 125,
                                "n_epochs": 2},
}


def healthy(status: dict) -> int | None:
    """Healthy env runners, as status.json says ({"healthy", "total", "restarts"})."""
    return (status.get("env_runners") or {}).get("healthy")


def processes(lab, host: str) -> list[str]:
    """Every process's command line on a host."""
    out = lab.exec(host, "ps", "-eo", "args=", check=False).stdout.decode(errors="replace")
    return [line.strip() for line in out.splitlines() if line.strip()]


def ray_processes(lab, host: str) -> list[str]:
    """Ray's processes on a host: raylet, GCS, agents, workers (ray::...), `ray start`."""
    marks = ("raylet", "gcs_server", "ray::", "/site-packages/ray/", "ray start")
    return [line for line in processes(lab, host) if any(m in line for m in marks)]


def env_runners(lab, host: str) -> int:
    """RLlib env runner actors on a host (a Ray worker's title is ray::<actor class>...)."""
    return sum(1 for line in processes(lab, host)
               if line.startswith("ray::") and "EnvRunner" in line)


def unit_state(lab, host: str, unit: str) -> dict[str, str]:
    out = lab.exec(host, "systemctl", "show", unit, "--property=ActiveState",
                   "--property=SubState", "--property=MainPID").stdout.decode()
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_ray_session_on_three_hosts(lab, ray_playbooks):
    pb, timings = ray_playbooks, {}
    head, *rollout = lab.hosts
    lost = rollout[-1]
    lab.write_vars("group_vars", "trainers", SETTINGS)

    def run(name, **extra):
        proc = pb.run(name, **extra)
        timings.setdefault(name, []).append(round(proc.seconds))
        return proc.stdout

    def wait(predicate, timeout, what):
        started = time.monotonic()
        status = pb.wait(session, predicate, timeout, what, host=head)
        timings.setdefault(f"wait: {what}", []).append(round(time.monotonic() - started))
        return status

    # --- train_new: the cluster on three hosts, the session on the head --------------------
    out = run("train_new", rlops_name="ray")
    session = pb.session_from(out)
    assert f"session {session} on {head}" in out, out[-3000:]
    run_json = lab.read_json(head, f"{pb.session_dir(session)}/config/run.json")
    assert run_json["backend"] == "ray", run_json
    assert unit_state(lab, head, "rlops-ray-head.service")["ActiveState"] == "active"
    for host in rollout:
        assert unit_state(lab, host, "rlops-ray-worker.service")["ActiveState"] == "active"
    full = wait(lambda s: has_checkpoint(s) and s.get(NODES) == 3 and healthy(s), 300,
                "checkpointed, three nodes")
    runners = healthy(full)
    # One CPU per rollout host: one env runner each.
    assert runners == full["env_runners"]["total"] == len(rollout), full
    # Env runners sit on the rollout hosts only; the learner and driver on the head.
    assert env_runners(lab, head) == 0, processes(lab, head)
    for host in rollout:
        assert env_runners(lab, host) >= 1, (host, processes(lab, host))

    table = status_table(run("status"))
    assert table[session, head]["state"] == "running", table

    # --- a rollout host is lost: training goes on with fewer healthy env runners ------------
    subprocess.run(["podman", "kill", lost], check=True, capture_output=True, timeout=60)
    killed_at = pb.status(session, host=head)["step"]
    # The env runner fails at once; Ray marks the node dead after its health checks.
    degraded = wait(lambda s: (healthy(s) or 0) < runners and s.get(NODES) == 2
                    and s["step"] > killed_at, 240, "fewer healthy env runners, 2 nodes")
    assert degraded["state"] == "running", degraded
    wait(lambda s: s["step"] > degraded["step"] + BATCH, 240, "training on without the host")

    # --- the host comes back (a reboot: disk kept, new address): its worker rejoins ---------
    lab.up_again()
    pb.hosts_moved()  # its SSH port changed
    recovered = wait(lambda s: s.get(NODES) == 3 and healthy(s) == runners, 300,
                     "all env runners healthy again")
    assert recovered["state"] == "running", recovered
    wait_until(lambda: env_runners(lab, lost) >= 1, 60, f"an env runner on {lost} again")

    # --- the supervisor is killed: systemd restarts it, it resumes from LATEST --------------
    before = pb.status(session, host=head)
    unit = f"rlops-trainer@{session}.service"
    lab.exec(head, "kill", "-KILL", str(before["supervisor_pid"]))
    # The job it leaves goes on until the unit's stop timeout kills it; once systemd waits to
    # restart the unit, nothing of the session runs: LATEST is final.
    wait_until(lambda: unit_state(lab, head, unit)["SubState"] == "auto-restart", 180,
               "the session's unit waiting to restart")
    latest = int(lab.exec(head, "cat", f"{pb.session_dir(session)}/checkpoints/LATEST")
                 .stdout.decode())
    assert latest >= before["last_checkpoint_step"], (latest, before)
    resumed = wait(lambda s: s.get("supervisor_pid") not in (None, before["supervisor_pid"])
                   and s.get("resumed_from_step") == latest and has_checkpoint(s)
                   and s["last_checkpoint_step"] > latest, 300,
                   "resumed from LATEST and checkpointed again")
    # The step goes on from the checkpoint's: the next checkpoint is within one interval (and
    # an iteration's sampling) of it (RLlib's own lifetime counter is wrong after a restore).
    assert latest < resumed["last_checkpoint_step"] <= latest + INTERVAL + 2 * BATCH, resumed
    assert resumed.get(NODES) == 3, resumed

    # --- stop: checkpoint, the driver, the workers, the head; no Ray process anywhere -------
    run("stop", rlops_session=session)
    stopped = pb.status(session, host=head)
    assert stopped["state"] == "stopped", stopped
    assert stopped["last_checkpoint_step"] >= resumed["last_checkpoint_step"]
    for host in lab.hosts:
        assert ray_processes(lab, host) == [], (host, ray_processes(lab, host))
    assert unit_state(lab, head, unit)["ActiveState"] == "inactive"

    # --- retrieve and evaluate (the policy without a cluster) -------------------------------
    run("retrieve", rlops_session=session)
    home = pb.results / session
    summary = json.loads((home / "report" / "summary.json").read_text())
    assert summary["session"] == session and summary["steps"] >= stopped["step"] > 0, summary
    assert (home / "logs" / "job.log").stat().st_size > 0
    out = run("evaluate", rlops_session=session, rlops_eval_episodes=3)
    evaluation = json.loads((home / "eval" / "eval.json").read_text())
    assert len(evaluation["returns"]) == 3, evaluation
    assert evaluation["step"] == stopped["last_checkpoint_step"], evaluation
    assert "mean return" in out
    for host in lab.hosts:  # evaluate started no cluster
        assert ray_processes(lab, host) == [], (host, ray_processes(lab, host))
    assert in_state("stopped")(pb.status(session, host=head))

    print(f"\nlab ray timings (s): {timings}; lab up {lab.timings['up']:.0f} s; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
