"""Lab hosts seen from the controller, for tests/lab_e2e and bench/lab_*.py.

A lab of its own (tests/lab/lab.sh in a private state dir, always taken down), the
wheelhouse the hosts take torch from, an S3 server inside a lab container, and the
playbooks run against the lab's inventory as a user runs them. Traffic goes to 127.0.0.1
(SSH) and to the lab's containers only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

from harness import Playbooks, podman_exec, read_host_json

REPO = Path(__file__).resolve().parents[1]
LAB_SH = REPO / "tests" / "lab" / "lab.sh"
# Shared by every lab run of this checkout: a copy of the controller's CPU torch wheel.
WHEELHOUSE = REPO / ".venv" / "lab-wheelhouse"
FULL_WHEELHOUSE = REPO / ".venv" / "lab-wheelhouse-full"
# Every wheel of the Ray set's venv (runtime extras ray and s3 under the Ray lock, the CPU
# torch): hosts and the lab's Ray image install from it, never from an index.
RAY_WHEELHOUSE = REPO / ".venv" / "lab-wheelhouse-ray"
RAY_LOCK = REPO / "runtime" / "locks" / "ray" / "python3.11.txt"
TORCH = "torch==2.13.0"
# Where the lab's S3 server keeps its buckets, inside its container.
S3_ROOT = "/srv/s3"
S3_PORT = 9000
# The wheel mirror in the same container: a folder listing pip reads as find-links.
WHEELS_ROOT = "/srv/wheels"
WHEELS_PORT = 8000
# For every playbook run against the lab: no instance metadata service is ever asked
# (trainer_notices), and torch can only be the CPU build: PyPI has no 2.13.0+cpu, so if
# the wheelhouse or mirror is not used, pip fails at once instead of fetching CUDA. The
# lab's trainer image holds the venv of these settings (its path is a hash of the
# requirements): suites that boot from it pass them, or they install a venv of their own.
LAB_VARS = {"trainer_notices": "none", "trainer_torch_requirement": f"{TORCH}+cpu"}
# The same for the Ray backend: the lab's Ray image holds the venv of these settings.
LAB_RAY_VARS = {**LAB_VARS, "trainer_backend": "ray"}


def copy_runtime(dest: Path) -> Path:
    """A copy of runtime/ with what the trainer role copies to hosts (its source digest is
    the same): the playbooks install it instead of the checkout, where several people edit
    at once, and an edit during a test would be a change to its re-runs."""
    def ignored(folder: str, names: list[str]) -> list[str]:
        return [name for name in names if name.endswith((".pyc", ".pyo")) or (
            os.path.isdir(os.path.join(folder, name))
            and (name in ("tests", "build", "dist", "__pycache__")
                 or name.endswith(".egg-info") or name.startswith(".")))]

    shutil.copytree(REPO / "runtime", dest, ignore=ignored)
    return dest


def build_full_wheelhouse(folder: Path = FULL_WHEELHOUSE) -> Path:
    """Every wheel a trainer venv needs (the runtime's sb3 and s3 extras, the CPU torch),
    downloaded once on the controller with its pip: for many hosts, served by a mirror."""
    if not (folder / ".complete").exists():
        build_wheelhouse(folder)  # the CPU torch first: pip then never looks for another
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
             "--find-links", str(folder), "-d", str(folder),
             f"{REPO / 'runtime'}[sb3,s3]", TORCH],
            capture_output=True, text=True, check=False)
        if proc.returncode != 0 or any(folder.glob("nvidia_*")):
            raise RuntimeError(f"pip download into {folder} failed: {proc.stderr[-1000:]}")
        (folder / ".complete").write_text("")
    return folder


def build_ray_wheelhouse(folder: Path = RAY_WHEELHOUSE, lock: Path = RAY_LOCK) -> Path:
    """Every wheel of the Ray set's venv: the runtime's ray and s3 extras at the versions of
    the Ray lock, and the CPU torch (first, so that pip never looks for another); downloaded
    once on the controller with its pip. The lock lists CUDA torch's nvidia-* dependencies
    too: as constraints, not requirements, they are never fetched (checked)."""
    marker = folder / ".complete"
    stamp = _digest(lock)
    if not marker.exists() or marker.read_text() != stamp:
        build_wheelhouse(folder)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
             "--find-links", str(folder), "-d", str(folder), "-c", str(lock),
             f"{REPO / 'runtime'}[ray,s3]", TORCH],
            capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"pip download into {folder} failed: {proc.stderr[-1000:]}")
        cuda = sorted(p.name for p in folder.glob("*.whl")
                      if p.name.startswith(("nvidia_", "cuda_", "triton-")))
        if cuda or not any(folder.glob("ray-*.whl")):
            raise RuntimeError(f"{folder}: CUDA wheels {cuda} or no ray wheel: remove it and "
                               "check the controller's find-links (pip config list)")
        # The runtime itself is the role's wheel (named by its content), not this one.
        for wheel in folder.glob("rlops_runtime-*.whl"):
            wheel.unlink()
        marker.write_text(stamp)
    return folder


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_wheelhouse(folder: Path = WHEELHOUSE) -> Path:
    """A folder holding the CPU torch wheel, copied by `pip download` from the controller's
    own find-links (`pip config list`); --no-index: never the multi-GB CUDA build."""
    if not any(folder.glob("torch-2.13.0+cpu-*.whl")):
        folder.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-index", "--no-deps",
             "--disable-pip-version-check", "-q", "-d", str(folder), TORCH],
            capture_output=True, text=True, check=False)
        wheels = list(folder.glob("torch-2.13.0+cpu-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise RuntimeError(
                f"no CPU wheel of {TORCH} among the controller's pip find-links "
                f"(pip config list): {proc.stderr.strip()[-500:]}")
    return folder


class Lab:
    """Lab hosts in a state dir of their own: `with Lab(3) as lab:` ... always down.

    `lab.hosts` are the trainers (in `lab.inventory`, group `trainers`); with
    `services=True`, `lab.service_host` is one more container that serves S3 (and, when
    asked, a wheel mirror) on the lab network only: nothing of it is published on the host.
    With `trainer=True` the trainers boot from the lab's trainer image (the trainer's venv
    for LAB_VARS already in it: tests/lab/trainer_image.py), built first when stale; with
    `ray=True` from the lab's Ray image (the venv of LAB_RAY_VARS).
    """

    def __init__(self, hosts: int, prefix: str = "", services: bool = False,
                 trainer: bool = False, ray: bool = False) -> None:
        self.count = hosts
        self.prefix = prefix or f"rlops-e2e-{os.getpid()}"
        self.with_services = services
        self.trainer_image = trainer
        self.ray_image = ray
        self.state_dir = Path(tempfile.mkdtemp(prefix="rlops-lab-e2e."))
        self.inventory = self.state_dir / "inventory.yml"
        self.hosts = [f"{self.prefix}-{i}" for i in range(1, hosts + 1)]
        self.service_host = f"{self.prefix}-svc-1" if services else ""
        self.timings: dict[str, float] = {}
        self.left: list[str] = []  # what `down` left behind

    # --------------------------------------------------------------- up and down
    def __enter__(self) -> Lab:
        # SIGTERM (a CI timeout, a `kill`) unwinds like Ctrl-C, so that `down` still runs.
        self._old_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.down()
        finally:
            signal.signal(signal.SIGTERM, self._old_sigterm)

    def up(self) -> None:
        started = time.monotonic()
        if self.with_services:
            # Its own prefix, up first: each `up` rewrites the inventory with its hosts.
            self._lab("up", "1", "--name", f"{self.prefix}-svc")
            self._start_s3()
        self._lab("up", str(self.count), "--name", self.prefix,
                  *(["--trainer"] if self.trainer_image else []),
                  *(["--ray"] if self.ray_image else []))
        self.timings["up"] = time.monotonic() - started

    def up_again(self) -> None:
        """`lab.sh up` again with the image the hosts run (even if its name has moved on to a
        newer build): a host that was killed starts again with its disk, as a machine
        reboots (its address on the lab network may change); the inventory is rewritten
        (SSH ports change too)."""
        image = _podman("inspect", "--format", "{{.Image}}", self.hosts[0]).strip()
        self._lab("up", str(self.count), "--name", self.prefix, "--image", image)

    def ray_inventory(self) -> Path:
        """The lab's inventory (group `trainers`, written by lab.sh up) with a group
        `ray_head` of its first host, in one file next to it (its group_vars/ and host_vars/
        apply). Write it again after `up_again`: a restarted host's SSH port changed."""
        import yaml

        inventory = yaml.safe_load(self.inventory.read_text())
        inventory["ray_head"] = {"hosts": {self.hosts[0]: {}}}
        path = self.state_dir / "inventory-ray.yml"
        path.write_text(json.dumps(inventory, indent=2) + "\n")
        return path

    def down(self) -> list[str]:
        """Take the lab down; returns what it left behind (nothing, normally)."""
        started = time.monotonic()
        try:
            own_loops = self._own_loop_devices()
        except (OSError, subprocess.SubprocessError):
            own_loops = set()  # whatever happens, `down` runs
        proc = self._lab("down", check=False)
        left = self.leftovers()
        still = sorted(own_loops & _loop_devices())
        left += [f"loop device {dev} (backing inode {ino})" for dev, ino in still]
        if proc.returncode != 0:
            left.append(f"lab.sh down exited {proc.returncode}: {proc.stderr[-500:]}")
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.timings["down"] = time.monotonic() - started
        self.left = left
        return left

    def leftovers(self) -> list[str]:
        """Containers of this lab and a lab network nobody uses (other labs may run)."""
        left = []
        names = _podman("ps", "-a", "--filter", f"label=rlops.lab.state={self.state_dir}",
                        "--format", "{{.Names}}").split()
        left += [f"container {name}" for name in names]
        networks = _podman("network", "ls", "--format", "{{.Name}}").split()
        if "rlops-lab" in networks and not _podman(
                "ps", "-a", "-q", "--filter", "network=rlops-lab").strip():
            left.append("network rlops-lab without containers")
        return left

    def _own_loop_devices(self) -> set[tuple[str, str]]:
        """(device, backing inode) of each loop device of this lab's hosts or state dir, as
        `lab.sh status` finds them; the pair, because a freed number is soon reused."""
        proc = self._lab("status", check=False)
        names = set()
        for line in proc.stdout.splitlines():
            if line.startswith("loop devices:"):
                names = set(line.split(":", 1)[1].split())
        return {pair for pair in _loop_devices() if pair[0] in names}

    def _lab(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "RLOPS_LAB_STATE_DIR": str(self.state_dir)}
        # `status` only reads: when the machine is too slow for it, `down` still runs. `up`
        # may build the lab image and the trainer image first.
        timeout = 120 if args[0] == "status" else 1800 if args[0] == "up" else 900
        proc = subprocess.run([str(LAB_SH), *args], env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"lab.sh {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
        return proc

    # --------------------------------------------------------------- S3 in the lab
    def _start_s3(self) -> None:
        """localbucket (the controller's copy, stdlib only) as a systemd unit of the S3
        container, on port 9000 of the lab network; nothing is published on the host."""
        import localbucket

        host = self.service_host
        self.podman_cp(Path(localbucket.__file__), host, "/opt/localbucket/localbucket.py")
        unit = (
            "[Unit]\nDescription=S3 for the rlops lab\n\n[Service]\n"
            f"ExecStart=/usr/bin/python3 /opt/localbucket/localbucket.py {S3_ROOT}"
            f" --host 0.0.0.0 --port {S3_PORT}\nRestart=on-failure\n\n"
            "[Install]\nWantedBy=multi-user.target\n")
        self.sh(host, f"mkdir -p {S3_ROOT} && cat > /etc/systemd/system/localbucket.service"
                " && systemctl daemon-reload && systemctl enable --now localbucket.service",
                stdin=unit)
        self.sh(host, "python3 -", stdin=_PORT_PROBE.format(port=S3_PORT))

    def serve_wheels(self, folder: Path) -> dict[str, Any]:
        """Serve a wheelhouse from the service container; returns the trainer role's pip
        settings that use it: find-links (pip reads the folder listing of Python's
        http.server) and --trusted-host (pip ignores a plain-http host otherwise)."""
        host = self.service_host
        self.sh(host, f"mkdir -p {WHEELS_ROOT}")
        for wheel in sorted(folder.glob("*.whl")):
            self.podman_cp(wheel, host, f"{WHEELS_ROOT}/{wheel.name}")
        unit = (
            "[Unit]\nDescription=Wheel mirror for the rlops lab\n\n[Service]\n"
            f"ExecStart=/usr/bin/python3 -m http.server {WHEELS_PORT} --directory {WHEELS_ROOT}"
            "\nRestart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n")
        self.sh(host, "cat > /etc/systemd/system/rlops-wheels.service && systemctl daemon-reload"
                " && systemctl enable --now rlops-wheels.service", stdin=unit)
        self.sh(host, "python3 -", stdin=_PORT_PROBE.format(port=WHEELS_PORT))
        return {"trainer_pip_find_links": [f"http://{host}:{WHEELS_PORT}/"],
                "trainer_pip_extra_args": f"--trusted-host {host}"}

    def s3_bucket(self, bucket: str) -> dict[str, str]:
        """Create a bucket; returns the storage credentials that reach it from the hosts
        (localbucket checks none). Values that occur in no other output: Ansible masks every
        occurrence of a no_log value in a result, and "lab" is the job's user on lab hosts."""
        self.sh(self.service_host, f"mkdir -p {S3_ROOT}/{bucket}")
        return {
            "RLOPS_S3_ENDPOINT_URL": f"http://{self.service_host}:{S3_PORT}",
            "AWS_ACCESS_KEY_ID": "LABKEYEXAMPLE0000000",
            "AWS_SECRET_ACCESS_KEY": "lab-secret-Zq81-known",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
        }

    def s3_object(self, bucket: str, key: str) -> bytes | None:
        proc = self.exec(self.service_host, "cat", f"{S3_ROOT}/{bucket}/{key}", check=False)
        return proc.stdout if proc.returncode == 0 else None

    # --------------------------------------------------------------- looking inside
    # A command inside a lab host, its output as bytes; a JSON file on it ({} when absent or
    # partial): the harness's, shared with the AWS suite's instances.
    exec = staticmethod(podman_exec)
    read_json = staticmethod(read_host_json)

    def sh(self, host: str, script: str, stdin: str | None = None) -> str:
        return self.exec(host, "sh", "-c", script, stdin=stdin).stdout.decode()

    def podman_cp(self, src: Path, host: str, dest: str) -> None:
        self.sh(host, f"mkdir -p {Path(dest).parent}")
        subprocess.run(["podman", "cp", str(src), f"{host}:{dest}"], check=True,
                       capture_output=True, timeout=120)

    def state(self, host: str, *roots: str) -> list[str]:
        """What a --check run must not change on a host: every file and folder under the
        roots (type, size, mode, mtime) and the state of the sessions' systemd units."""
        files = self.exec(host, "find", *roots, "-xdev", "-printf", "%p %y %s %m %T@\\n",
                          check=False).stdout.decode().splitlines()
        units = self.exec(host, "systemctl", "list-units", "--all", "--no-legend", "--plain",
                          "rlops-trainer@*", check=False).stdout.decode().splitlines()
        enabled = self.exec(host, "systemctl", "list-unit-files", "--no-legend",
                            "rlops-trainer@*", check=False).stdout.decode().splitlines()
        return sorted(files) + ["unit " + line for line in units + enabled]

    def write_vars(self, kind: str, name: str, variables: dict[str, Any]) -> None:
        """group_vars/<name>.yml or host_vars/<name>.yml next to the lab's inventory."""
        folder = self.state_dir / kind
        folder.mkdir(exist_ok=True)
        (folder / f"{name}.yml").write_text(json.dumps(variables, indent=2) + "\n")


class LabPlaybooks(Playbooks):
    """The collection's playbooks against the lab inventory, as a user runs them: the
    harness's Playbooks (tests/harness), with the hosts' files read through podman exec."""

    def __init__(self, lab: Lab, results: Path, extra: dict[str, Any] | None = None,
                 data_root: str = "/var/lib/rlops", bucket: str = "") -> None:
        super().__init__(results=results, data_root=PurePosixPath(data_root), extra=extra,
                         inventory=lab.inventory, read_json=lab.read_json, poll_interval=1)
        self.lab = lab
        self.bucket = bucket  # of the lab's S3 server, when storage is there

    def job_log_tail(self, session: str, host: str = "localhost") -> str:
        log = self.session_dir(session) / "logs" / "job.log"
        return self.lab.exec(host, "tail", "-n", "40", str(log),
                             check=False).stdout.decode(errors="replace")


# Waits up to 10 s until a server answers on a port of the container it runs in.
_PORT_PROBE = """import socket, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", {port}), 1).close()
        break
    except OSError:
        time.sleep(0.1)
else:
    raise SystemExit("nothing answers on port {port}")
"""


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _podman(*args: str) -> str:
    if shutil.which("podman") is None:
        return ""
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=60,
                          check=False).stdout


def _loop_devices() -> set[tuple[str, str]]:
    """(device, backing inode) of every attached loop device of the machine."""
    if shutil.which("losetup") is None:
        return set()
    out = subprocess.run(["losetup", "-l", "-n", "-O", "NAME,BACK-INO"], capture_output=True,
                         text=True, check=False).stdout
    return {tuple(line.split()[:2]) for line in out.splitlines() if len(line.split()) >= 2}
