"""Idempotent re-run of the host-preparing plays on a prepared lab host, over SSH.

A lab host (podman + systemd, tests/lab) is prepared by train_new.yml with a tiny job that
completes; then resume.yml on that completed session is run again and again. resume.yml
runs what train_new runs to prepare a host: the host roles its inventory switches on
(playbooks/tasks/prepare_host.yml: volume_mount, gpu_host, nvidia_docker, minio_proxy),
then the trainer role's preflight, install, configure and service, which leaves a
completed session alone. On a prepared host nothing may change, and it should be quick.

Prints per run the wall time of resume.yml, of its preparing play (the play that runs
the trainer role) and what that play spent per role and task file; the goal lines are
the median preparing play and the changes. `--settings` repeats the runs with
SSH ControlPersist and pipelining switched off (ansible.cfg keeps both) and times fact
gathering subsets. The lab is taken down at the end, whatever happens.

    .venv/bin/python bench/lab_idempotence.py [--repeats 3] [--settings] [-e KEY=JSON ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, Goal, median, table  # _common also puts tests/ on sys.path
from _lab import SETTINGS, changed_on, loadavg, median_rows, preparing_play, task_seconds
from lab_hosts import LAB_VARS, Lab, LabPlaybooks, build_wheelhouse

GOAL_SECONDS = 15.0
# Fact subsets timed by --settings: what the playbooks gather (min), only what the roles
# read (os_family, service_mgr, user ids, env, python; local facts of gpu_host), everything.
FACT_SUBSETS = {
    "min (playbooks)": "min",
    "only what is read": "!all,!min,distribution,service_mgr,user,env,python,local",
    "all": "all",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="idempotent re-runs per setting")
    parser.add_argument("--settings", action="store_true",
                        help="also without ControlPersist / pipelining, and fact subsets")
    parser.add_argument("-e", "--extra", action="append", default=[], metavar="KEY=JSON",
                        help="extra variable for every playbook, e.g. rlops_prepare_gpu=false")
    args = parser.parse_args()
    extra = {**LAB_VARS, "trainer_wheelhouse": str(build_wheelhouse()),
             "trainer_total_timesteps": 2048, "trainer_checkpoint_interval": 2048}
    for item in args.extra:
        key, _sep, value = item.partition("=")
        try:
            extra[key] = json.loads(value)
        except ValueError:
            extra[key] = value

    with tempfile.TemporaryDirectory(prefix="rlops-bench-idem.") as tmp, Lab(1) as lab:
        host = lab.hosts[0]
        pb = LabPlaybooks(lab, Path(tmp) / "results", extra)
        print(f"lab up in {lab.timings['up']:.0f} s; load average {loadavg()}", flush=True)
        seconds, record = pb.run_json("train_new", rlops_name="idem")
        session = _session_of(pb, host)
        print(f"train_new on a fresh host: {seconds:.0f} s "
              f"(preparing play {preparing_play(record).seconds:.0f} s), session {session}",
              flush=True)
        pb.wait(session, lambda s: s.get("state") == "completed", 300, "completed", host=host)
        # The first resume of a completed session takes its unit out of the boot list.
        seconds, record = pb.run_json("resume", rlops_session=session)
        print(f"first resume after completion: {seconds:.1f} s, "
              f"changed {changed_on(record, [host])} (unit disabled)", flush=True)

        settings = SETTINGS if args.settings else dict(list(SETTINGS.items())[:1])
        rows, per_setting = [], {}
        for label, env in settings.items():
            for _repeat in range(args.repeats):
                seconds, record = pb.run_json("resume", env=env, rlops_session=session)
                play = preparing_play(record)
                changed = changed_on(record, [host])
                per_setting.setdefault(label, []).append((seconds, play, changed))
                rows.append([label, seconds, play.seconds, play.tasks, changed,
                             ", ".join(play.changed) or "-", loadavg()])
                print(f"  {label}: resume.yml {seconds:.1f} s, preparing play "
                      f"{play.seconds:.1f} s, changed {changed}", flush=True)
        print()
        print(table(["setting", "resume.yml s", "preparing play s", "tasks", "changed",
                     "changed tasks", "load avg"], rows))

        base = per_setting[next(iter(settings))]
        print()
        print("preparing play, median per part (role/task file):")
        print(table(["part", "s"], median_rows([play.parts for _seconds, play, _changed in base])))
        print()
        print("preparing play, the slowest tasks (median):")
        print(table(["task", "s"],
                    median_rows([play.task_seconds for _seconds, play, _changed in base], 12)))
        if args.settings:
            print()
            print(table(["setting", "median resume.yml s", "median preparing play s"],
                        [[label, median([r[0] for r in runs]),
                          median([r[1].seconds for r in runs])]
                         for label, runs in per_setting.items()]))
            print()
            print(table(["facts", "setup s (median of 5)"],
                        [[label, _time_setup(lab, subset)] for label, subset
                         in FACT_SUBSETS.items()]))

        print()
        print(f"load average at the end: {loadavg()}")
        print(f"resume.yml median: {median([r[0] for r in base]):.1f} s")
        print(Goal("idempotent preparing play", median([r[1].seconds for r in base]),
                   GOAL_SECONDS, higher_is_better=False, unit="s").line())
        print(Goal("idempotent re-run changes", max(r[2] for r in base), 0,
                   higher_is_better=False).line())
    if lab.left:
        print(f"left behind by the lab: {lab.left}", file=sys.stderr)
        return 1
    return 0


def _session_of(pb: LabPlaybooks, host: str) -> str:
    out = pb.lab.exec(host, "ls", f"{pb.data_root}/sessions").stdout.decode().split()
    [session] = [name for name in out if not name.startswith(".")]
    return session


def _time_setup(lab: Lab, subset: str, repeats: int = 5) -> float:
    """The setup task alone over SSH (connection warm), as the playbooks run it."""
    ansible = Path(sys.executable).with_name("ansible")
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    times = []
    for _repeat in range(repeats):
        proc = subprocess.run([str(ansible), "-i", str(lab.inventory), "trainers", "-m",
                               "ansible.builtin.setup", "-a", f"gather_subset={subset}"],
                              capture_output=True, text=True, check=True, timeout=120, env=env)
        [task] = json.loads(proc.stdout)["plays"][0]["tasks"]
        times.append(task_seconds(task))
    return median(times)


if __name__ == "__main__":
    sys.exit(main())
