"""The Ray backend on three lab hosts: RLlib PPO under rlops ÷ the same config by hand,
rollouts on 2 hosts ÷ 1 host, and the cluster's ready time, warm.

Three hosts of the lab's Ray image (tests/lab/README.md, "The Ray image"): a head (group
ray_head: GCS, learner, driver) and two rollout hosts, one CPU each for Ray (one env runner
per rollout host), PPO on CartPole with a 500-step train batch and a checkpoint every
20000 steps (one every ~15 s here). Each repeat:

1. train_new.yml with rlops_backend ray (the first repeat: cold, the units are new; later
   ones: warm, the cluster was stopped by stop.yml and comes up again): the cluster's ready
   time is the playbook's start to the end of the ray_cluster task that waits for every node
   and resource (from the ansible.posix.json record);
2. under rlops: the session's env steps/s, from the agent's progress.json as the head sees
   it change (a poller on the head), over --seconds after the first --skip iterations;
3. the session's unit is stopped (the cluster stays up) and bench/_ray_bare.py runs the same
   PPOConfig by hand as the nodes' user on the head: env steps/s over the same window;
4. stop.yml: the driver, the workers, the head.

Then, on the cluster of the last repeat (started again), rollouts only (each env runner
samples at once, nothing learns): 2 rollout hosts, 1 (host 3's worker unit stopped), 2
again; the ratio is 2 hosts ÷ 1 (the two 2-host runs averaged). All three hosts share this
machine's two cores: two env runners sampling at once may each get a core only while the
head (GCS, raylet, the driver) and the other containers stay quiet; the script prints the
machine's load so the ratio can be read against it.

    .venv/bin/python bench/ray_cluster.py [--seconds 60] [--repeats 2] [--skip 3]

Not part of make test; never fails on a goal. The lab is taken down at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from datetime import datetime
from pathlib import Path

from _common import Goal, table  # _common also puts tests/ on sys.path (lab_hosts)
from _lab import loadavg
from harness import wait_until
from lab_hosts import LAB_VARS, Lab, LabPlaybooks, copy_runtime

GOAL_RATIO = 0.95
HERE = Path(__file__).resolve().parent
BARE_ON_HEAD = "/var/lib/rlops/rlops-bench-ray-bare.py"
HP_ON_HEAD = "/var/lib/rlops/rlops-bench-ray-hp.json"
HYPERPARAMETERS = {"n_steps": 500, "n_envs": 1, "batch_size": 125, "n_epochs": 2}
SETTINGS = {
    "ray_cluster_num_cpus": 1,
    "trainer_total_timesteps": 100_000_000,
    "trainer_checkpoint_interval": 20_000,
    "trainer_hyperparameters": HYPERPARAMETERS,
}
WAIT_TASK = "Wait until every node and resource is registered"
# Prints (monotonic seconds, step) on the head each time progress.json changes.
POLLER = """import json, os, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
end, seen = time.monotonic() + seconds, None
while time.monotonic() < end:
    try:
        mtime = os.stat(path).st_mtime_ns
        if mtime != seen:
            seen = mtime
            print(json.dumps({"t": time.monotonic(), "steps": json.load(open(path))["step"]}),
                  flush=True)
    except (OSError, ValueError, KeyError):
        pass
    time.sleep(0.05)
"""


def rate(points: list[dict], skip: int) -> tuple[float, int]:
    """Env steps/s between the `skip`-th point and the last one; (rate, iterations)."""
    points = points[skip:]
    if len(points) < 2:
        return 0.0, 0
    first, last = points[0], points[-1]
    return (last["steps"] - first["steps"]) / (last["t"] - first["t"]), len(points) - 1


def json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def ready_seconds(record: dict) -> float:
    """Playbook start -> the end of ray_cluster's wait for every node and resource."""
    def stamp(text: str) -> float:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    start = stamp(record["plays"][0]["play"]["duration"]["start"])
    for play in record["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].endswith(WAIT_TASK) and task["hosts"]:
                return stamp(task["task"]["duration"]["end"]) - start
    raise RuntimeError(f"no task {WAIT_TASK!r} ran")


class Bench:
    def __init__(self, lab: Lab, pb: LabPlaybooks, seconds: float, skip: int) -> None:
        self.lab, self.pb, self.seconds, self.skip = lab, pb, seconds, skip
        self.head = lab.hosts[0]

    def driver_env(self, session: str) -> dict[str, str]:
        run = self.lab.read_json(self.head, f"{self.pb.session_dir(session)}/config/run.json")
        env = run.get("env") or {}
        return {k: v for k, v in env.items() if k.startswith(("RLOPS_RAY_", "RAY_"))}

    def on_head(self, argv: list[str], env: dict[str, str], timeout: float) -> str:
        pairs = [f"{k}={v}" for k, v in env.items()]
        proc = self.lab.exec(self.head, "env", *pairs, *argv, user="lab", timeout=timeout,
                             text=True)
        return proc.stdout

    def venv_python(self, session: str) -> str:
        run = self.lab.read_json(self.head, f"{self.pb.session_dir(session)}/config/run.json")
        return run["command"][0]

    def train_new(self, name: str) -> tuple[str, float, float]:
        seconds, record = self.pb.run_json("train_new", rlops_name=name)
        out = "\n".join(json.dumps(p) for p in record["plays"])
        session = self.pb.session_from(out)
        return session, ready_seconds(record), seconds

    def under_rlops(self, session: str) -> tuple[float, int]:
        progress = f"{self.pb.session_dir(session)}/progress.json"
        # From the first checkpoint on: the algorithm is built and training.
        self.pb.wait(session, lambda s: (s.get("step") or 0) > 0, 300, "training",
                     host=self.head)
        out = self.lab.exec(self.head, "python3", "-c", POLLER, progress, str(self.seconds),
                            timeout=self.seconds + 60, text=True).stdout
        return rate(json_lines(out), self.skip)

    def by_hand(self, session: str, mode: str, env: dict[str, str]) -> tuple[float, int]:
        out = self.on_head([self.venv_python(session), BARE_ON_HEAD, mode, "--seconds",
                            str(self.seconds), "--hyperparameters", HP_ON_HEAD],
                           {**env, "HOME": "/home/lab"}, timeout=self.seconds + 300)
        points = [p for p in json_lines(out) if "t" in p]
        return rate(points, self.skip)

    def cluster_is(self, session: str, env: dict[str, str], expected: dict) -> None:
        """Wait until the cluster has exactly the expected nodes and rollout resource (a
        stopped worker has left, a started one joined)."""
        cli = str(Path(self.venv_python(session)).with_name("rlops-run"))
        want = (expected["nodes"], expected["resources"]["rlops_rollout"])

        def now() -> bool:
            answer = json.loads(self.on_head([cli, "ray", "status"], env, timeout=120))
            alive = sum(1 for node in answer["nodes"] if node["alive"])
            have = (alive, answer["resources"].get("rlops_rollout", 0))
            return have == want

        wait_until(now, 180, f"the cluster at {want} (nodes, rlops_rollout)", interval=2)

    def stop_unit(self, session: str) -> None:
        self.lab.exec(self.head, "systemctl", "stop", f"rlops-trainer@{session}.service",
                      timeout=180)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="each measured window")
    parser.add_argument("--repeats", type=int, default=2, help="rlops + by-hand pairs")
    parser.add_argument("--skip", type=int, default=3, help="iterations before the window")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rlops-bench-ray.") as tmp, \
            Lab(3, prefix="rlops-bench-ray", ray=True) as lab:
        head, _second, third = lab.hosts
        print(f"lab of 3 Ray hosts up in {lab.timings['up']:.0f} s; load average {loadavg()}",
              flush=True)
        lab.write_vars("group_vars", "trainers", SETTINGS)
        pb = LabPlaybooks(lab, Path(tmp) / "results", {
            **LAB_VARS, "rlops_backend": "ray", "trainer_pip_extra_args": "--no-index",
            "trainer_runtime_source_path": str(copy_runtime(Path(tmp) / "runtime"))})
        pb.inventory = lab.ray_inventory()
        lab.podman_cp(HERE / "_ray_bare.py", head, BARE_ON_HEAD)
        lab.sh(head, f"cat > {HP_ON_HEAD}", stdin=json.dumps(HYPERPARAMETERS))
        bench = Bench(lab, pb, args.seconds, args.skip)

        rows, ratios, ready = [], [], []
        session = ""
        for repeat in range(args.repeats):
            if session:
                pb.run("stop", rlops_session=session)  # the cluster goes down with it
            session, ready_s, train_new_s = bench.train_new(f"bench{repeat}")
            kind = "cold" if repeat == 0 else "warm"
            if repeat:
                ready.append(ready_s)
            print(f"  train_new ({kind}): {train_new_s:.0f} s, cluster ready after "
                  f"{ready_s:.1f} s; load average {loadavg()}", flush=True)
            env = bench.driver_env(session)
            ours, n_ours = bench.under_rlops(session)
            bench.stop_unit(session)
            bare, n_bare = bench.by_hand(session, "train", env)
            ratios.append(ours / bare if bare else 0.0)
            rows.append([repeat + 1, kind, ready_s, ours, n_ours, bare, n_bare, ratios[-1],
                         loadavg()])
            print(f"  repeat {repeat + 1}: under rlops {ours:.0f} env steps/s ({n_ours} "
                  f"iterations), by hand {bare:.0f} ({n_bare}); load average {loadavg()}",
                  flush=True)
        print(table(["repeat", "train_new", "ready s", "rlops steps/s", "iters",
                     "by hand steps/s", "iters", "ratio", "load"], rows))

        # --- rollouts: 2 hosts, 1 host, 2 hosts, on the cluster of the last session ------
        env = bench.driver_env(session)
        two = json.loads(env["RLOPS_RAY_EXPECTED"])
        one = {"nodes": two["nodes"] - 1,
               "resources": {**two["resources"],
                             "rlops_rollout": two["resources"]["rlops_rollout"] - 1}}
        rollouts = []
        for expected, stop_third in ((two, False), (one, True), (two, False)):
            action = "stop" if stop_third else "start"
            lab.exec(third, "systemctl", action, "rlops-ray-worker.service", timeout=120)
            hosts = 1 if stop_third else 2
            wait_env = {**env, "RLOPS_RAY_EXPECTED": json.dumps(expected)}
            bench.cluster_is(session, wait_env, expected)
            steps_s, n = bench.by_hand(session, "rollouts", wait_env)
            rollouts.append((hosts, steps_s))
            print(f"  rollouts on {hosts} host(s): {steps_s:.0f} env steps/s ({n} rounds); "
                  f"load average {loadavg()}", flush=True)
        pb.run("stop", rlops_session=session)

    ratio = statistics.median(ratios)
    two_hosts = statistics.mean(s for h, s in rollouts if h == 2)
    one_host = statistics.mean(s for h, s in rollouts if h == 1)
    print(Goal("RLlib PPO under rlops ÷ by hand on the same cluster (env steps/s, median)",
               ratio, GOAL_RATIO, higher_is_better=True).line())
    print(f"rollouts on 2 hosts ÷ 1 host: {two_hosts / one_host:.2f} "
          f"({two_hosts:.0f} / {one_host:.0f} env steps/s; 3 containers on "
          f"{os.cpu_count()} cores)")
    if ready:
        print(f"cluster ready time, warm (train_new start -> every node and resource "
              f"registered): median {statistics.median(ready):.1f} s over {len(ready)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
