"""A stand-in of `docker` and `docker-compose` (v1's words) for the DeepRacer backend's tests:
compose files are read as compose reads them and each service runs as a local process of the
stand-in simapp (tests/deepracer/simapp), so that the runtime's compose calls, labels and the
trainer rl_coach starts outside the project (its own compose file under the sagemaker dir,
written by the stand-in's rl_coach/start.py as SageMaker local mode writes it) behave as on a
Docker host, without Docker.

    FAKE_DOCKER_STATE=DIR fake_docker.py docker ps [--all] --quiet --filter label=K[=V]
    FAKE_DOCKER_STATE=DIR fake_docker.py docker inspect|stop|rm [--force] ID...
    FAKE_DOCKER_STATE=DIR fake_docker.py docker-compose [-p P] -f FILE up|down|rm|stop|ps|logs

A container is a record (DIR/containers/<id>.json: pid, labels) and a process in a session of
its own. `stop`, `rm --stop` and `down` send SIGTERM to its process group and SIGKILL after
10 s, as `docker stop` does. The services it knows: rl_coach (start.py), robomaker
(run.sh ... <launch file>), the SDK's trainer (`train`), anything else (a no-op that exits).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

CODE = Path(__file__).resolve().parents[2] / "tests" / "deepracer" / "simapp" / "files" / "opt" \
    / "ml" / "code"
PROJECT, SERVICE, FILES = ("com.docker.compose.project", "com.docker.compose.service",
                           "com.docker.compose.project.config_files")
STOP_TIMEOUT = 10.0


def state_dir() -> Path:
    folder = Path(os.environ["FAKE_DOCKER_STATE"]) / "containers"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] not in "ZX"
    except (OSError, IndexError):
        return False


def records() -> list[dict]:
    found = []
    for path in sorted(state_dir().glob("*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return found


def environment(service: dict) -> dict:
    given = service.get("environment") or {}
    if isinstance(given, dict):
        return {str(k): "" if v is None else str(v) for k, v in given.items()}
    return dict(str(item).split("=", 1) if "=" in str(item) else (str(item), "")
                for item in given)


def local_command(service: dict) -> list[str]:
    command = service.get("command") or ""
    text = " ".join(command) if isinstance(command, list) else str(command)
    if "rl_coach/start.py" in text:
        return [sys.executable, str(CODE / "rl_coach" / "start.py")]
    if "run.sh" in text:
        launch = [word for word in text.split() if word.endswith(".launch.py")]
        return [sys.executable, "-m", "standin.robomaker", *launch[-1:]]
    if text.strip() == "train":
        sys.path.insert(0, str(CODE))
        from standin.entry import arguments  # the image's `train`: hyperparameters -> argv

        inputs = [v.split(":")[0] for v in service.get("volumes", [])
                  if v.split(":")[1] == "/opt/ml/input"]
        raw = json.loads((Path(inputs[0]) / "config" / "hyperparameters.json").read_text())
        return [sys.executable, "-m", "standin.trainer", *arguments(raw)[1]]
    return ["/bin/sh", "-c", "exit 0"]


def start(project: str, files: list[str], name: str, service: dict) -> subprocess.Popen:
    ident = secrets.token_hex(6)
    logs = Path(os.environ["FAKE_DOCKER_STATE"]) / "logs"
    logs.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(CODE), "PYTHONUNBUFFERED": "1",
           **environment(service)}
    if os.environ.get("FAKE_DOCKER_HOME"):
        env["HOME"] = os.environ["FAKE_DOCKER_HOME"]  # ~/.sagemaker/config.yaml of the image
    with open(logs / f"{project}_{name}_{ident}.log", "ab") as out:
        proc = subprocess.Popen(local_command(service), cwd=CODE, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    record = {"id": ident, "pid": proc.pid, "name": f"{project}_{name}_1",
              "env": [f"{k}={v}" for k, v in environment(service).items()],
              "labels": {PROJECT: project, SERVICE: name, FILES: ",".join(files)}}
    (state_dir() / f"{ident}.json").write_text(json.dumps(record))
    return proc


def halt(record: dict) -> None:
    pid = record["pid"]
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def of_project(project: str) -> list[dict]:
    return [r for r in records() if r["labels"][PROJECT] == project]


def matches(labels: dict, wanted: list[str]) -> bool:
    """`--filter label=K=V` (that value) or `label=K` (the key present)."""
    return all(labels.get(w.split("=", 1)[0]) == w.split("=", 1)[1] if "=" in w
               else w in labels for w in wanted)


def docker(args: list[str]) -> int:
    if args[:2] == ["compose", "version"]:
        print("docker: 'compose' is not a docker command.", file=sys.stderr)
        return 1
    ids = [a for a in args[1:] if not a.startswith("-")]
    if args[:1] == ["ps"]:
        wanted = [a.split("=", 1)[1] for a in args if a.startswith("label=")]
        for record in records():
            if ("--all" in args or alive(record["pid"])) and matches(record["labels"], wanted):
                print(record["id"])
        return 0
    chosen = [r for r in records() if r["id"] in ids]
    if args[:1] == ["inspect"]:
        if len(chosen) != len(ids):
            print("Error: No such object", file=sys.stderr)
            return 1
        print(json.dumps([{"Id": r["id"], "Name": "/" + r["name"],
                           "Config": {"Labels": r["labels"], "Env": r["env"]},
                           "State": {"Running": alive(r["pid"])}} for r in chosen]))
        return 0
    if args[:1] in (["stop"], ["rm"]):
        for record in chosen:
            if args[0] == "stop" or "--force" in args:
                halt(record)
            if args[0] == "rm":
                (state_dir() / f"{record['id']}.json").unlink(missing_ok=True)
            print(record["id"])
        return 0
    print(f"fake docker: {' '.join(args)} is not modelled", file=sys.stderr)
    return 1


def compose(args: list[str]) -> int:
    project, files = None, []
    while args and args[0].startswith("-"):
        option, value = args[0], args[1]
        if option in ("-p", "--project-name"):
            project = value
        elif option in ("-f", "--file"):
            files.append(os.path.abspath(value))
        args = args[2:]
    command, rest = args[0], args[1:]
    project = project or Path(files[0]).parent.name
    doc = yaml.safe_load(Path(files[0]).read_text())
    services = doc.get("services") or {}
    if command == "up":
        procs = []
        for name, service in services.items():
            for _replica in range(int(service.get("scale", 1))):
                procs.append(start(project, files, name, service))
        if "--detach" in rest or "-d" in rest:
            return 0
        while all(p.poll() is None for p in procs):  # --abort-on-container-exit
            time.sleep(0.2)
        code = next(p.returncode for p in procs if p.poll() is not None)
        for record in of_project(project):
            halt(record)
        return code
    if command in ("down", "rm", "stop"):
        if command == "rm" and not ({"--stop", "-s"} & set(rest)):
            return 0
        for record in of_project(project):
            halt(record)
            if command != "stop":
                (state_dir() / f"{record['id']}.json").unlink(missing_ok=True)
        return 0
    if command == "ps":
        for record in of_project(project):
            print(record["id"])
        return 0
    if command in ("logs", "config", "version"):
        return 0
    print(f"fake docker-compose: {command} is not modelled", file=sys.stderr)
    return 1


if __name__ == "__main__":
    tool = sys.argv[1]
    sys.exit(docker(sys.argv[2:]) if tool == "docker" else compose(sys.argv[2:]))
