"""The spine over SSH on three lab hosts, through the real playbooks and a lab inventory:
train_new on every host (one session each, the trainer as a systemd unit, become through
sudo, the job as the SSH user) -> status -> stop one session -> its host loses it, resume
it on another host from S3 storage -> retrieve every session -> evaluate -> resume of a
running and of a completed session change nothing.

Storage is S3 on a server inside one more lab container (only the hosts reach it), so a
session can move between hosts as it would between real machines. The hosts boot from the
lab's trainer image, which has the venv in it (tests/lab/trainer_image.py); should it not
match, torch comes from the controller's CPU wheel through trainer_wheelhouse.
"""

from __future__ import annotations

import json
import os
import re

from harness import Unchanged, changed_hosts, has_checkpoint, in_state, status_table
from lab_hosts import LabPlaybooks

# Hosts 1 and 3 finish in seconds; host 2 is still training when stop.yml arrives.
HYPERPARAMETERS = {"n_steps": 256, "batch_size": 256}
SHORT = 8192
LONG = 2_000_000
INTERVAL = 4096


def unit(lab, host, session, *props):
    out = lab.exec(host, "systemctl", "show", f"rlops-trainer@{session}.service",
                   *[f"--property={p}" for p in props]).stdout.decode()
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_spine_over_ssh_on_three_hosts(lab, lab_playbooks: LabPlaybooks):
    pb, timings = lab_playbooks, {}
    h1, h2, h3 = lab.hosts
    # Inventory settings per host, as a team would keep them next to its inventory.
    lab.write_vars("group_vars", "trainers",
                   {"trainer_total_timesteps": SHORT, "trainer_checkpoint_interval": INTERVAL,
                    "trainer_hyperparameters": HYPERPARAMETERS})
    lab.write_vars("host_vars", h2, {"trainer_total_timesteps": LONG})

    def run(name, **extra):
        proc = pb.run(name, **extra)
        timings.setdefault(name, []).append(round(proc.seconds))
        return proc.stdout

    # --- train_new: one session per host, each under its own systemd unit -----------------
    out = run("train_new", rlops_name="lab")
    sessions = {host: s for s, host in re.findall(r"session ([a-z0-9-]+) on ([a-z0-9-]+)", out)}
    assert sorted(sessions) == sorted(lab.hosts), out[-3000:]
    for host, session in sessions.items():
        assert session.startswith("lab-") and session.endswith(host), session
    s1, s2, s3 = (sessions[h] for h in lab.hosts)
    # Each job got its inventory's settings: the group's, and host 2's own budget.
    for host, session in sessions.items():
        config_dir = f"{pb.session_dir(session)}/config"
        config = lab.read_json(host, f"{config_dir}/run.json")
        assert config["total_timesteps"] == (LONG if host == h2 else SHORT), (host, config)
        assert config["checkpoint_interval"] == INTERVAL
        assert lab.read_json(host, f"{config_dir}/hyperparameters.json") == HYPERPARAMETERS

    running = pb.wait(s2, has_checkpoint, 240, "checkpointed while running", host=h2)
    show = unit(lab, h2, s2, "ActiveState", "MainPID", "User")
    assert show["ActiveState"] == "active" and int(show["MainPID"]) == running["supervisor_pid"]
    # The unit is root's, the job runs as the user Ansible logs in as (through sudo).
    assert show["User"] == "lab"
    job_user = lab.exec(h2, "ps", "-o", "user=", "-p", str(running["pid"])).stdout.decode()
    assert job_user.strip() == "lab"
    for host, session in ((h1, s1), (h3, s3)):
        done = pb.wait(session, in_state("completed"), 300, "completed", host=host)
        assert done["step"] >= SHORT and done["host"] == host
        show = unit(lab, host, session, "ActiveState", "Result", "ExecMainStatus")
        assert (show["Result"], show["ExecMainStatus"]) == ("success", "0"), show

    # --- status: every host's sessions in one table ------------------------------------------
    table = status_table(run("status"))
    for host, session in sessions.items():
        assert table[session, host]["state"] in ("running", "completed"), table

    # --- stop one session: it checkpoints and publishes to S3; the others are untouched -----
    run("stop", rlops_session=s2)
    stopped = pb.status(s2, host=h2)
    assert stopped["state"] == "stopped", stopped
    stopped_at = stopped["last_checkpoint_step"]
    assert running["last_checkpoint_step"] <= stopped_at < LONG
    latest = lab.s3_object(pb.bucket, f"runs/{s2}/checkpoints/LATEST")
    assert latest is not None and int(latest) == stopped_at
    assert unit(lab, h2, s2, "ActiveState")["ActiveState"] == "inactive"
    assert pb.status(s1, host=h1)["state"] == "completed"

    # --- host 2 loses the session: resume it on host 3 from storage --------------------------
    lab.exec(h2, "rm", "-rf", pb.session_dir(s2))
    # Host 3's inventory budget is SHORT, and resume applies what it is given: the session
    # keeps its own budget by saying so, as a user would (-e).
    out = run("resume", rlops_session=s2, rlops_resume_host=h3, trainer_total_timesteps=LONG)
    assert f"session {s2} on {h3}" in out, out[-3000:]
    resumed = pb.wait(s2, lambda s: has_checkpoint(s) and s["last_checkpoint_step"] > stopped_at,
                      240, "checkpointed after resume", host=h3)
    assert resumed["resumed_from_step"] == stopped_at
    assert unit(lab, h3, s2, "ActiveState")["ActiveState"] == "active"

    # --- retrieve: every session, from the host that holds it, into results/ ----------------
    for session in (s1, s2, s3):
        out = run("retrieve", rlops_session=session)
        home = pb.results / session
        assert (home / "report" / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        summary = json.loads((home / "report" / "summary.json").read_text())
        assert summary["session"] == session and summary["steps"] > 0, summary
        assert any((home / "tensorboard").rglob("events.out.tfevents.*"))
        assert (home / "logs" / "job.log").stat().st_size > 0
        # The S3 credentials stay on the host.
        assert not (home / "config" / "storage.env").exists()
    assert json.loads((pb.results / s1 / "status.json").read_text())["host"] == h1
    assert json.loads((pb.results / s2 / "status.json").read_text())["host"] == h3

    # --- evaluate the resumed session on the host that now holds it --------------------------
    out = run("evaluate", rlops_session=s2, rlops_eval_episodes=3)
    evaluation = json.loads((pb.results / s2 / "eval" / "eval.json").read_text())
    assert len(evaluation["returns"]) == 3 and evaluation["step"] > stopped_at
    assert any(p.suffix in (".mp4", ".gif") and p.stat().st_size > 0
               for p in (pb.results / s2 / "eval").iterdir())
    assert "mean return" in out

    # --- re-runs on prepared hosts change nothing (PLAY RECAP: changed=0 on every host) ----
    # The preparing play (gpu_host, then the trainer role) on a running session's host.
    out = run("resume", rlops_session=s2, trainer_total_timesteps=LONG)
    assert changed_hosts(out) == {}, out[-4000:]
    # A completed session: its first resume takes the unit out of the boot list, and then
    # resume leaves it alone.
    run("resume", rlops_session=s1)
    assert unit(lab, h1, s1, "UnitFileState")["UnitFileState"] == "disabled"
    out = run("resume", rlops_session=s1)
    assert changed_hosts(out) == {}, out[-4000:]
    assert pb.status(s1, host=h1)["state"] == "completed"

    # --- --check on all six playbooks changes nothing on any host ----------------------------
    run("stop", rlops_session=s2)  # every session settled: no job writes while we compare
    # Nothing the playbooks ran through sudo left root's files in a session: the job's
    # supervisor, running as the SSH user, must be able to sync all of them. (Checked once
    # no job writes: a running job's temporary files vanish under find.)
    for host in (h1, h3):
        owned_by_root = lab.exec(host, "find", f"{pb.data_root}/sessions", "-mindepth", "1",
                                 "-user", "root").stdout.decode().split()
        assert not owned_by_root, f"{host}: {owned_by_root}"
    roots = (str(pb.data_root), "/etc/systemd/system")
    unchanged = Unchanged(lambda: {
        **{f"lab host {host}": lab.state(host, *roots) for host in lab.hosts},
        "the results folder": sorted(str(p) for p in pb.results.rglob("*"))})
    checked = {}
    for name, extra in (("status", {}), ("stop", {"rlops_session": s1}),
                        ("resume", {"rlops_session": s2, "trainer_total_timesteps": LONG}),
                        ("retrieve", {"rlops_session": s1}),
                        ("evaluate", {"rlops_session": s2}), ("train_new", {"rlops_name": "chk"})):
        proc = pb.run(name, check=True, **extra)
        timings.setdefault(f"{name} --check", []).append(round(proc.seconds))
        checked[name] = proc.stdout
    unchanged.check("--check of all six playbooks")
    # The unit of the stopped session would start (systemd_service says so itself).
    assert h3 in changed_hosts(checked["resume"]), checked["resume"][-3000:]
    assert "would run" in checked["evaluate"]

    print(f"\nlab spine timings (s): {timings}; lab up {lab.timings['up']:.0f} s; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
