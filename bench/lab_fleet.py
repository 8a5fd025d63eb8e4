"""Prepare + start on 8 lab hosts ÷ on 1 host, in the same run.

Nine fresh lab hosts (podman + systemd, tests/lab) and a service container with a wheel
mirror: every wheel of the trainer venv (the CPU torch among them) downloaded once on the
controller and served on the lab network, so that no host downloads from PyPI and all
share one wheelhouse (trainer_pip_find_links). train_new.yml prepares and starts a tiny
job (stopped right after start) on one host, then on the other eight at once: the cold
ratio (fresh hosts: venv install included). Then again on the now prepared hosts, new
sessions each time, alternating one and eight: the warm ratio (Ansible's fan-out over
SSH: forks, connections, the controller's CPU). `--settings` adds warm fleet runs with
forks 5 (Ansible's default; ansible.cfg has 10) and without SSH ControlPersist.
The lab is taken down at the end, whatever happens.

Every lab host shares this machine's cores, where real hosts each have their own: each
run also prints the CPU seconds of the controller (ansible-playbook and its ssh
children; per host, it is issue 11's controller-CPU measure over SSH) and of the hosts
(the rest of the machine's busy time). When the hosts' CPU
exceeds what the machine's cores give in the one-host wall time, the fleet run waits for
cores, not for Ansible: the script prints that floor of the ratio (the fleet run's CPU
seconds ÷ cores ÷ the one-host wall time) next to the goal line.

    .venv/bin/python bench/lab_fleet.py [--fleet 8] [--repeats 2] [--settings]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

from _common import Goal, median, table  # _common also puts tests/ on sys.path (lab_hosts)
from _lab import CpuMeter, loadavg, preparing_play
from lab_hosts import LAB_VARS, Lab, LabPlaybooks, build_full_wheelhouse

GOAL_RATIO = 2.0
GOAL_CPU_PER_HOST = 3.0  # controller CPU seconds per host per train_new (issue 11)
# A job that is done seconds after it starts (one PPO rollout of 8 envs x 32 steps is 256).
TINY = {"trainer_total_timesteps": 512, "trainer_checkpoint_interval": 512}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fleet", type=int, default=8, help="hosts of the fleet run")
    parser.add_argument("--repeats", type=int, default=2, help="warm pairs (one + fleet)")
    parser.add_argument("--settings", action="store_true",
                        help="also warm fleet runs with forks 5 and without ControlPersist")
    args = parser.parse_args()
    wheels = build_full_wheelhouse()

    with tempfile.TemporaryDirectory(prefix="rlops-bench-fleet.") as tmp, \
            Lab(args.fleet + 1, services=True) as lab:
        one, fleet = lab.hosts[0], lab.hosts[1:]
        print(f"lab of {len(lab.hosts)} hosts + services up in {lab.timings['up']:.0f} s; "
              f"load average {loadavg()}", flush=True)
        pb = LabPlaybooks(lab, Path(tmp) / "results", {
            **LAB_VARS, **TINY, **lab.serve_wheels(wheels)})
        targets = {"one": one, "fleet": f"trainers:!{one}"}
        rows, results, cpu_of, controller_per_host = [], {}, {}, {}

        def measure(kind: str, who: str, env: dict[str, str] | None = None) -> float:
            name = re.sub(r"[^a-z0-9]+", "-", f"{kind}-{who}".lower())
            with CpuMeter() as cpu:
                seconds, record = pb.run_json("train_new", env=env, rlops_hosts=targets[who],
                                              rlops_name=name)
            hosts = [one] if who == "one" else fleet
            stopped = _stop_jobs(lab, hosts)
            play = preparing_play(record)
            results.setdefault((kind, who), []).append(seconds)
            cpu_of.setdefault((kind, who), []).append(cpu.machine)
            rows.append([kind, who, len(hosts), seconds, play.seconds, cpu.controller,
                         cpu.hosts, stopped, loadavg()])
            controller_per_host.setdefault((kind, who), []).append(cpu.controller / len(hosts))
            print(f"  {kind} {who} ({len(hosts)} hosts): train_new {seconds:.1f} s, "
                  f"preparing play {play.seconds:.1f} s, CPU s controller {cpu.controller:.0f} "
                  f"hosts {cpu.hosts:.0f}, load average {loadavg()}", flush=True)
            return seconds

        measure("cold", "one")
        measure("cold", "fleet")
        for _repeat in range(args.repeats):
            measure("warm", "one")
            measure("warm", "fleet")
        if args.settings:
            measure("warm forks=5", "fleet", {"ANSIBLE_FORKS": "5"})
            measure("warm no ControlPersist", "fleet", {"ANSIBLE_SSH_ARGS": "-o ControlMaster=no"})

        print()
        print(table(["run", "hosts", "n", "train_new s", "preparing play s",
                     "controller CPU s", "hosts CPU s", "jobs stopped", "load avg"], rows))
        print()
        print(f"load average at the end: {loadavg()}")
        cores = os.cpu_count() or 1
        for kind in ("cold", "warm"):
            one_s = median(results[(kind, "one")])
            ratio = median(results[(kind, "fleet")]) / one_s
            # No orchestrator can finish before this machine's cores have done the fleet
            # run's CPU work (hosts + controller): the ratio that sharing cores imposes.
            floor = max(1.0, median(cpu_of[(kind, "fleet")]) / cores / one_s)
            print(f"{kind}: CPU-bound floor of the ratio on {cores} cores: {floor:.2f}; "
                  f"measured / floor: {ratio / floor:.2f}")
            print(Goal(f"{kind}: {args.fleet} hosts / 1 host (train_new)", ratio, GOAL_RATIO,
                       higher_is_better=False).line())
        for who in ("one", "fleet"):  # issue 11's measure, over SSH (ssh children included)
            hosts = 1 if who == "one" else args.fleet
            print(Goal(f"controller CPU per host per train_new (warm, {hosts} lab hosts)",
                       median(controller_per_host[("warm", who)]), GOAL_CPU_PER_HOST,
                       higher_is_better=False, unit="s").line())
    if lab.left:
        print(f"left behind by the lab: {lab.left}", file=sys.stderr)
        return 1
    return 0


def _stop_jobs(lab: Lab, hosts: list[str]) -> int:
    """Stop every session unit still active (not part of the measurement)."""
    stopped = 0
    for host in hosts:
        units = lab.sh(host, "systemctl list-units --state=active --plain --no-legend "
                             "'rlops-trainer@*' | cut -d' ' -f1").split()
        if units:
            lab.exec(host, "systemctl", "stop", *units)
            stopped += len(units)
    return stopped


if __name__ == "__main__":
    sys.exit(main())
