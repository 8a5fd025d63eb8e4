"""One Ray session over three lab hosts through the real playbooks (rlops_backend ray): the
head (group ray_head: GCS, learner, the driver under the session's supervisor) and two
rollout hosts; and, on the same hosts, the checks of the role rlops.fleet.ray_cluster on its
own (tests/integration/targets/ray_cluster/runme.sh, its phases run around the session).

role: bad input, start, restarts -> train_new -> three nodes, env runners on the rollout
hosts only (meanwhile the role: a re-run and check mode change nothing) -> the supervisor on
the head is killed -> systemd restarts it, it resumes from LATEST and the step goes on from
the checkpoint's step -> a rollout host is killed (podman kill): training goes on with fewer
healthy env runners -> the host comes back (it reboots with its disk, its worker unit
rejoins; its address changes) -> all env runners healthy again -> stop: no Ray process on any
host (the role: a second stop changes nothing) -> resume.yml of the stopped session: the
cluster is back, the job goes on from LATEST (meanwhile the role's check mode of a change
and of a stop) -> stop again: no Ray process -> retrieve and evaluate -> the role: one host.

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
    # A stop's time budget (the unit's TimeoutStopSec: 60 s).
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


def ray_cluster_changes(output: str) -> list[str]:
    """The tasks of the role rlops.fleet.ray_cluster that reported a change in a playbook's
    output."""
    changed, task = [], ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line[len("TASK ["):].split("]", 1)[0]
        elif line.startswith("changed: [") and task.startswith("rlops.fleet.ray_cluster :"):
            changed.append(task)
    return changed


def test_ray_session_on_three_hosts(lab, ray_playbooks, role):
    pb, timings = ray_playbooks, {}
    head, *rollout = lab.hosts
    lost = rollout[-1]
    # Before the role's checks too: the cluster they leave is the one the session wants.
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

    def no_ray_left():
        for host in lab.hosts:
            assert ray_processes(lab, host) == [], (host, ray_processes(lab, host))

    def env_runners_on_rollout_hosts():
        # Env runners sit on the rollout hosts only; the learner and driver on the head.
        assert env_runners(lab, head) == 0, processes(lab, head)
        for host in rollout:
            assert env_runners(lab, host) >= 1, (host, processes(lab, host))

    # --- the role on its own: bad input, a start, restarts (the cluster left up) ------------
    role.run("bad_input", "start", "restarts")

    # --- train_new: the cluster on three hosts, the session on the head --------------------
    out = run("train_new", rlops_name="ray")
    session = pb.session_from(out)
    assert f"session {session} on {head}" in out, out[-3000:]
    # The cluster the role left is the one train_new asks for: it restarts no node.
    assert ray_cluster_changes(out) == [], ray_cluster_changes(out)
    # Meanwhile (until the supervisor's restart is checked), the role on the running
    # cluster: a re-run and check mode change nothing.
    role.start("idempotent")
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
    env_runners_on_rollout_hosts()

    out = run("status")
    table = status_table(out)
    assert table[session, head]["state"] == "running", table
    assert "Ray cluster: 3 nodes" in out, out[-3000:]

    # --- the supervisor is killed: systemd restarts it, it resumes from LATEST --------------
    before = pb.status(session, host=head)
    unit = f"rlops-trainer@{session}.service"
    lab.exec(head, "kill", "-KILL", str(before["supervisor_pid"]))
    # Its job gets SIGTERM from the kernel (checkpoint, exit); once systemd waits to restart
    # the unit (RestartSec), nothing of the session runs: LATEST is final.
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
    role.wait()

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

    # --- stop: checkpoint, the driver, the workers, the head; no Ray process anywhere -------
    run("stop", rlops_session=session)
    stopped = pb.status(session, host=head)
    assert stopped["state"] == "stopped", stopped
    assert stopped["last_checkpoint_step"] >= recovered["step"] > resumed["last_checkpoint_step"]
    no_ray_left()
    assert unit_state(lab, head, unit)["ActiveState"] == "inactive"
    # The role on the stopped cluster: its token and units kept, a second stop changes nothing.
    role.run("stopped")

    # --- resume.yml of the stopped session: the cluster back, the job from LATEST -----------
    latest = int(lab.exec(head, "cat", f"{pb.session_dir(session)}/checkpoints/LATEST")
                 .stdout.decode())
    assert latest == stopped["last_checkpoint_step"], (latest, stopped)
    out = run("resume", rlops_session=session)
    assert f"session {session} on {head}" in out, out[-3000:]
    # Meanwhile (until the second stop), the role's check mode on the cluster up again: a
    # change is said, not made; a stop's check mode leaves Ray running.
    role.start("check_mode")
    assert unit_state(lab, head, "rlops-ray-head.service")["ActiveState"] == "active"
    for host in rollout:
        assert unit_state(lab, host, "rlops-ray-worker.service")["ActiveState"] == "active"
    # The first step it reports is past the checkpoint's, by what an iteration samples (not
    # RLlib's own lifetime counter).
    back = wait(lambda s: s.get("state") == "running" and s.get("resumed_from_step") == latest
                and s["step"] > latest, 300, "resumed from LATEST, stepping on")
    assert back["step"] <= latest + INTERVAL, back
    back = wait(lambda s: s.get(NODES) == 3 and healthy(s) == runners
                and s["step"] > back["step"], 300, "three nodes, every env runner, stepping on")
    env_runners_on_rollout_hosts()
    out = run("status")
    assert status_table(out)[session, head]["state"] == "running", out[-3000:]
    assert "Ray cluster: 3 nodes" in out, out[-3000:]
    role.wait()
    run("stop", rlops_session=session)
    stopped = pb.status(session, host=head)
    assert stopped["state"] == "stopped", stopped
    assert stopped["last_checkpoint_step"] >= back["step"] > latest, (stopped, back)
    no_ray_left()
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
    no_ray_left()  # evaluate started no cluster
    assert in_state("stopped")(pb.status(session, host=head))

    # --- the role on one host of the lab (single-host on Ray), stopped ----------------------
    role.run("one_host")

    print(f"\nlab ray timings (s): {timings}; the role's checks (s): {role.timings}; "
          f"lab up {lab.timings['up']:.0f} s; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
