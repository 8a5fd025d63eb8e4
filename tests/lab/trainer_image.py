"""The lab's trainer image: the lab image with the trainer's runtime and venv (torch CPU,
SB3, the runtime's dependencies) already in it, made by the trainer role itself.

    tests/lab/trainer_image.py [--force]     (or: tests/lab/lab.sh trainer-image [--force])
    tests/lab/trainer_image.py --kind ray    (or: tests/lab/lab.sh ray-image [--force])

Every suite that boots lab hosts for sessions (lab-e2e, the trainer's Molecule scenario,
aws-e2e, runme.sh systemd) would otherwise install the same venv on each host: minutes of
pip and torch's unpacking per host on two cores. Here it is installed once:

It is made of two layers on the lab image (tests/lab/lab.sh image):

1. the venv layer (localhost/rlops-lab-trainer-venv:bookworm): a container of the lab image
   runs tests/lab/trainer_image.yml, the trainer role's install phase (--tags
   trainer_install) with the lab's settings (lab_hosts.LAB_VARS: the CPU torch from the
   controller's wheel), and is committed without what is its own (SSH host keys, machine id,
   logs, pip's cache, the wheels). The heavy part (torch, SB3, the locked set: ~1.4 GB,
   ~40 s of pip and ~30 s of commit). Its label is a hash of what the venv follows from:
   the locks, the runtime's pyproject.toml, the runtime role, the trainer role's install
   tasks and defaults, this script and its play, the settings and the wheels;
2. the image: a container of the venv layer runs the same play, which replaces only the
   runtime (the venv is complete but for this runtime's wheel: the role's own path for a
   changed runtime, pip with --no-index), and is committed as a candidate (a thin layer:
   seconds). A host booted from the candidate runs the play again: it must change nothing.
   Only then is the candidate tagged as the image. Its label is a hash of the venv layer's
   and everything else that went in (the trainer and session roles, the modules the role
   calls, the runtime's source).

So a change of the runtime or of the roles (nearly every change) rebuilds the thin layer
only (~30 s instead of ~2 min); a change of a lock or of the install tasks rebuilds both.
Should the venv layer miss an input (the play on it makes a venv of another set, or cannot
install without an index), the venv layer is rebuilt and the thin layer made again on it.
A second call with the same inputs does nothing. The image is a cache, never a source of
truth: the role checks the venv on every run and reinstalls what is stale. The suites then
pass the settings of LAB_VARS (the venv's path is a hash of its requirement set) and keep
the playbooks' data root, where the venv lies.

`--kind ray` bakes the Ray image (localhost/rlops-lab-ray:bookworm, on its venv layer
localhost/rlops-lab-ray-venv:bookworm) the same way: the trainer's install phase with
`trainer_backend: ray` (lab_hosts.LAB_RAY_VARS: the Ray set's lock and extras), every wheel
from the controller's Ray wheelhouse (lab_hosts.build_ray_wheelhouse) with pip's --no-index:
nothing is downloaded in the host.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests"))

from harness.recap import play_recap  # noqa: E402
from lab_hosts import (  # noqa: E402
    LAB_RAY_VARS,
    LAB_VARS,
    build_ray_wheelhouse,
    build_wheelhouse,
)

BASE_IMAGE = os.environ.get("RLOPS_LAB_IMAGE", "localhost/rlops-lab:bookworm")
LABEL = "rlops.lab.trainer"
# The venv layer's recipe (the image carries it too, inherited from its parent).
VENV_LABEL = "rlops.lab.trainer.venv"
# The image name it was built as: a build prunes only earlier images of its own name.
NAME_LABEL = "rlops.lab.trainer.name"
PLAY = HERE / "trainer_image.yml"
LAB_SH = HERE / "lab.sh"
LOCK = Path("/run/lock/rlops-lab-trainer-image.lock")
# Where the wheels wait inside the build container (on its disk, not the /tmp tmpfs).
WHEELS_IN = "/var/tmp/rlops-image-wheels"
# The venvs of the play (trainer_venv_root under the playbooks' data root).
VENV_ROOT = "/var/lib/rlops/venvs"
# Files of runtime/ the role leaves on the controller (its own filter, tasks/install.yml).
_SKIP = re.compile(r"(^|/)(tests|build|dist|__pycache__|[^/]*\.egg-info|\.[^/]+)/|\.py[co]$")


@dataclass(frozen=True)
class Kind:
    """An image this script bakes: its name, the play's settings (the venv's set follows
    from them), the controller's wheels the host installs from and pip's extra arguments."""

    image: str
    settings: dict
    wheelhouse: Callable[[], Path]
    pip_args: str = ""

    @property
    def venv_image(self) -> str:
        """The venv layer the image is made on: localhost/rlops-lab-trainer-venv:bookworm."""
        name, tag = self.image.rsplit(":", 1)
        return f"{name}-venv:{tag}"


KINDS = {
    "trainer": Kind(
        os.environ.get("RLOPS_LAB_TRAINER_IMAGE", "localhost/rlops-lab-trainer:bookworm"),
        LAB_VARS, build_wheelhouse),
    # Every wheel from the wheelhouse: an index is never asked.
    "ray": Kind(os.environ.get("RLOPS_LAB_RAY_IMAGE", "localhost/rlops-lab-ray:bookworm"),
                LAB_RAY_VARS, build_ray_wheelhouse, "--no-index"),
}


def log(message: str) -> None:
    print(f"trainer-image: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the key

def _files(root: Path, skip: re.Pattern[str] = _SKIP) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()
                  and not skip.search(p.relative_to(root).as_posix()))


def role_modules(repo: Path = REPO) -> list[Path]:
    """The collection's modules the trainer and runtime roles call, and the module_utils they
    import."""
    names = set()
    for task_file in [*(repo / "roles" / "trainer" / "tasks").glob("*.yml"),
                      *(repo / "roles" / "runtime" / "tasks").glob("*.yml")]:
        names |= set(re.findall(r"rlops\.fleet\.([a-z0-9_]+)", task_file.read_text()))
    modules = [repo / "plugins" / "modules" / f"{name}.py" for name in sorted(names)]
    modules = [m for m in modules if m.is_file()]
    utils = set()
    for module in modules:
        utils |= set(re.findall(r"rlops\.fleet\.plugins\.module_utils\.([a-z0-9_]+)",
                                module.read_text()))
    return modules + [repo / "plugins" / "module_utils" / f"{name}.py" for name in sorted(utils)]


def _scripts(repo: Path) -> list[Path]:
    """This script and its play."""
    return [repo / PLAY.relative_to(REPO), repo / Path(__file__).resolve().relative_to(REPO)]


def inputs(repo: Path = REPO) -> list[Path]:
    """Every file whose content can change what the image holds."""
    docs = re.compile(r"(^|/)(molecule|__pycache__)/|\.md$|\.py[co]$")
    return (_files(repo / "roles" / "trainer", docs) + _files(repo / "roles" / "runtime", docs)
            + _files(repo / "roles" / "session", docs)
            + role_modules(repo) + _files(repo / "runtime") + _scripts(repo))


def venv_inputs(repo: Path = REPO) -> list[Path]:
    """The files the venv layer follows from: the set (the locks, the runtime's dependencies
    and extras, the trainer's defaults such as its torch), the tasks that install it (the
    runtime role, the trainer's install phase), this script and its play. Not the runtime's
    source, nor the rest of the roles: the thin layer replaces the runtime, and should another
    input change the set, the thin layer's play says so (`thin_layer_problem`)."""
    docs = re.compile(r"(^|/)(molecule|__pycache__)/|\.md$|\.py[co]$")
    trainer = repo / "roles" / "trainer"
    return ([repo / "runtime" / "pyproject.toml"] + _files(repo / "runtime" / "locks")
            + _files(repo / "roles" / "runtime", docs)
            + [trainer / "tasks" / "install.yml", trainer / "defaults" / "main.yml",
               *_scripts(repo)])


def recipe_key(base_id: str, settings: dict, wheels: list[str], repo: Path = REPO,
               paths: list[Path] | None = None) -> str:
    """A hash of the base image's id (or the venv layer's key), the settings, the wheels'
    names and the content of `paths` (default: every input of the image)."""
    digest = hashlib.sha256()
    digest.update(f"{base_id}\n{json.dumps(settings, sort_keys=True)}\n{sorted(wheels)}\n".encode())
    for path in inputs(repo) if paths is None else paths:
        digest.update(f"{path.relative_to(repo)}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------- podman

def podman(*args: str, check: bool = True, timeout: float = 600, **kwargs) -> str:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                          check=False, **kwargs)
    if check and proc.returncode != 0:
        raise RuntimeError(f"podman {shlex.join(args)} exited {proc.returncode}: "
                           f"{proc.stderr.strip()[-2000:]}")
    return proc.stdout.strip()


def podman_ok(*args: str, timeout: float = 300) -> bool:
    return subprocess.run(["podman", *args], capture_output=True, timeout=timeout,
                          check=False).returncode == 0


def image_label(image: str, label: str = LABEL) -> str:
    return podman("image", "inspect", "--format", f'{{{{ index .Labels "{label}" }}}}',
                  image, check=False)


def image_id(image: str) -> str:
    return podman("image", "inspect", "--format", "{{.Id}}", image, check=False)


def prune(keep: str, image: str) -> None:
    """Remove the images named `image` other than `keep` (image id) that no container uses:
    a rebuild while a lab ran on the previous image left it behind (1.5 GB each)."""
    for old in podman("images", "-q", "--no-trunc", "--filter", f"label={NAME_LABEL}={image}",
                      check=False).split():
        if old.removeprefix("sha256:") != keep.removeprefix("sha256:") and podman_ok("rmi", old):
            log(f"removed the unused trainer image {old.removeprefix('sha256:')[:12]}")


class Host:
    """A container of an image, booted with systemd, reached by Ansible over SSH through
    `podman exec -i <name> sshd -i` (no network port, pipelining works); always removed."""

    def __init__(self, image: str, scratch: Path, name: str) -> None:
        self.image, self.scratch, self.name = image, scratch, name
        self.inventory = scratch / f"{name}.yml"

    def __enter__(self) -> Host:
        key = self.scratch / "id_ed25519"
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "trainer-image",
                            "-f", str(key)], check=True)
        podman("run", "-d", "--name", self.name, "--hostname", self.name, "--systemd=always",
               self.image)
        try:
            deadline = time.monotonic() + 120
            # sshd -i needs the host keys the image's first-boot unit makes.
            while not self._keys_ready():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name}: no SSH host keys after 120 s")
                time.sleep(0.5)
            podman("exec", "-i", self.name, "sh", "-c",
                   "install -d -m 0700 /root/.ssh && cat > /root/.ssh/authorized_keys",
                   input=(key.with_suffix(".pub")).read_text())
        except BaseException:
            self.remove()
            raise
        self.inventory.write_text(json.dumps({"all": {"hosts": {self.name: {
            "ansible_connection": "ssh", "ansible_user": "root",
            "ansible_ssh_private_key_file": str(key),
            "ansible_ssh_common_args": '-o ProxyCommand="podman exec -i %h /usr/sbin/sshd -i"'
                                       " -o StrictHostKeyChecking=no"
                                       " -o UserKnownHostsFile=/dev/null",
            "ansible_python_interpreter": "/usr/bin/python3"}}}}))
        return self

    def _keys_ready(self) -> bool:
        return podman_ok("exec", self.name, "test", "-s", "/etc/ssh/ssh_host_ed25519_key",
                         timeout=30)

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        podman("rm", "-f", "-t", "3", self.name, check=False, timeout=120)


def install(host: Host, settings: dict) -> tuple[float, str]:
    """The play on the host; (seconds, output). Fails with the output's tail."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0"}
    playbook = Path(sys.executable).with_name("ansible-playbook")
    started = time.monotonic()
    proc = subprocess.run([str(playbook), "-i", str(host.inventory), str(PLAY),
                           "--tags", "trainer_install", "-e", json.dumps(settings)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1800,
                          check=False)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{PLAY.name} failed on {host.name} after {seconds:.0f} s:\n"
                           f"{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout


# What the build container leaves that is its own, removed from its stopped file system:
# host keys (each host makes its own at boot), the machine id, logs, pip's and Ansible's
# files, the build's SSH key, the wheels.
_OWN = ["etc/ssh/ssh_host_*", "var/log/journal/*", "root/.cache", "root/.ansible", "root/.ssh",
        "var/tmp/*", "var/cache/apt/archives/*.deb"]


def play_settings(kind: Kind, thin: bool = False) -> dict:
    """The play's settings: the kind's, pip pointed at the wheels copied into the host. On the
    venv layer (`thin`) no wheel is copied and pip never asks an index: the venv is there, only
    the runtime's wheel (which the role copies) is installed."""
    pip_args = "--no-index" if thin else kind.pip_args
    return {**kind.settings, "trainer_pip_find_links": [WHEELS_IN],
            **({"trainer_pip_extra_args": pip_args} if pip_args else {})}


# ----------------------------------------------------------------------------- decisions

def layers_to_build(force: bool, venv_label: str, venv_key: str, image_label: str,
                    key: str) -> tuple[bool, bool]:
    """(build the venv layer, build the image on it). An image whose label is its key is
    current whatever became of its venv layer; a current venv layer is reused."""
    if force:
        return True, True
    if image_label == key:
        return False, False
    return venv_label != venv_key, True


def thin_layer_problem(venvs_before: list[str], venvs_after: list[str]) -> str:
    """Why the play on the venv layer did more than replace the runtime ('' when it did not):
    it made a venv the layer lacks, i.e. the set changed with an input the venv layer's key
    does not hold (the thin layer would carry a second venv of ~1.4 GB)."""
    new = sorted(set(venvs_after) - set(venvs_before))
    if new:
        return f"the play made the venv {', '.join(new)}, which the venv layer lacks"
    return ""


# ----------------------------------------------------------------------------- build

class StaleVenvLayer(RuntimeError):
    """The venv layer does not hold the venv the play wants now."""


def commit(host: Host, image: str, labels: dict[str, str]) -> None:
    """The host stopped and committed as `image`, without what is its own (_OWN)."""
    podman("stop", "-t", "30", host.name, timeout=120)
    root = Path(podman("mount", host.name))
    try:
        for pattern in _OWN:
            for path in root.glob(pattern):
                subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)
        (root / "etc" / "machine-id").write_text("")
    finally:
        podman("unmount", host.name, check=False)
    started = time.monotonic()
    changes = [arg for name, value in labels.items()
               for arg in ("--change", f"LABEL {name}={value}")]
    podman("commit", "-q", "--change", 'CMD ["/sbin/init"]', *changes, host.name, image,
           timeout=1800)
    log(f"committed {image} in {time.monotonic() - started:.0f} s")


def venvs(host: Host) -> list[str]:
    return podman("exec", host.name, "sh", "-c", f"ls -1 {VENV_ROOT} 2>/dev/null || true").split()


def build_venv_layer(venv_key: str, kind: Kind, scratch: Path) -> None:
    """The lab image with the kind's venv, installed by the role from the controller's
    wheels, committed as the kind's venv layer (no check here: the image's check covers it)."""
    started = time.monotonic()
    wheelhouse = kind.wheelhouse()
    with Host(BASE_IMAGE, scratch, f"rlops-trainer-image-venv-{os.getpid()}") as host:
        podman("exec", host.name, "mkdir", "-p", WHEELS_IN)
        podman("cp", f"{wheelhouse}/.", f"{host.name}:{WHEELS_IN}", timeout=1800)
        seconds, _output = install(host, play_settings(kind))
        log(f"installed the venv on {host.name} in {seconds:.0f} s")
        commit(host, kind.venv_image, {VENV_LABEL: venv_key, NAME_LABEL: kind.venv_image})
    prune(image_id(kind.venv_image), kind.venv_image)
    log(f"built {kind.venv_image} (recipe {venv_key}) in {time.monotonic() - started:.0f} s")


def build_image(key: str, kind: Kind, scratch: Path) -> None:
    """The runtime and the rest of the install phase on the venv layer as a thin layer,
    checked on a host of its own, then tagged. StaleVenvLayer when the play did more."""
    image = kind.image
    candidate = f"{image.rsplit(':', 1)[0]}:candidate-{os.getpid()}"
    settings = play_settings(kind, thin=True)
    try:
        with Host(kind.venv_image, scratch, f"rlops-trainer-image-{os.getpid()}") as host:
            podman("exec", host.name, "mkdir", "-p", WHEELS_IN)
            before = venvs(host)
            try:
                seconds, _output = install(host, settings)
            except RuntimeError as error:
                raise StaleVenvLayer(f"the play failed on the venv layer: {error}") from error
            problem = thin_layer_problem(before, venvs(host))
            if problem:
                raise StaleVenvLayer(problem)
            log(f"installed the runtime on {host.name} in {seconds:.0f} s")
            commit(host, candidate, {LABEL: key, NAME_LABEL: image})
        # The check: a host of the candidate has the venv complete.
        with Host(candidate, scratch, f"rlops-trainer-image-check-{os.getpid()}") as host:
            seconds, output = install(host, settings)
            changed = {h: c["changed"] for h, c in play_recap(output).items() if c["changed"]}
            if changed:
                tasks = re.findall(r"^TASK \[(.*)\].*\n(?:.*\n)*?changed:", output, re.M)
                raise RuntimeError(f"a host of the new image still changed {changed} "
                                   f"(tasks: {tasks}): the image would not save the install")
            log(f"checked: a host of the image changes nothing ({seconds:.0f} s)")
        podman("tag", candidate, image)
    finally:
        # Tagged: only the candidate's name goes; not (a failure): the candidate goes.
        if image_id(candidate) and image_id(candidate) == image_id(image):
            podman("untag", candidate, candidate, check=False)
        elif image_id(candidate):
            podman("rmi", candidate, check=False)
    prune(image_id(image), image)


def build(key: str, venv_key: str, kind: Kind, venv_layer: bool) -> None:
    """The image, on its venv layer (built first when `venv_layer`, or when the play on the
    present one shows it stale)."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rlops-trainer-image.") as tmp:
        scratch = Path(tmp)
        if venv_layer or not image_id(kind.venv_image):
            build_venv_layer(venv_key, kind, scratch)
            venv_layer = True
        try:
            build_image(key, kind, scratch)
        except StaleVenvLayer as stale:
            if venv_layer:
                raise RuntimeError(f"{stale} (just built)") from stale
            log(f"{kind.venv_image} is stale: {str(stale)[:2000]}; building it again")
            build_venv_layer(venv_key, kind, scratch)
            build_image(key, kind, scratch)
    log(f"built {kind.image} (recipe {key}, on {kind.venv_image}) "
        f"in {time.monotonic() - started:.0f} s")


def keys(kind: Kind) -> tuple[str, str]:
    """(the image's key, its venv layer's key)."""
    settings = play_settings(kind)
    wheels = [w.name for w in kind.wheelhouse().glob("*.whl")]
    venv_key = recipe_key(image_id(BASE_IMAGE), settings, wheels, paths=venv_inputs())
    return recipe_key(venv_key, settings, wheels), venv_key


def ensure(force: bool = False, kind: Kind = KINDS["trainer"]) -> str:
    """The kind's image, built when missing or made from other inputs; returns its name."""
    subprocess.run([str(LAB_SH), "image"], check=True)
    image = kind.image
    key, venv_key = keys(kind)
    if not any(layers_to_build(force, image_label(kind.venv_image, VENV_LABEL), venv_key,
                               image_label(image), key)):
        log(f"{image} is up to date (recipe {key})")
        return image
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build per machine; others wait and reuse it
        venv_layer, again = layers_to_build(force, image_label(kind.venv_image, VENV_LABEL),
                                            venv_key, image_label(image), key)
        if not again:
            log(f"{image} is up to date (recipe {key}, built meanwhile)")
            return image
        prune(image_id(image), image)  # images whose labs have gone, candidates of failed builds
        log(f"building {image} (recipe {key}"
            f"{f'; its venv layer too, recipe {venv_key}' if venv_layer else ''})")
        build(key, venv_key, kind, venv_layer)
    return image


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    parser.add_argument("--kind", choices=sorted(KINDS), default="trainer",
                        help="trainer: the SB3 set (default); ray: the Ray set")
    args = parser.parse_args()
    if os.geteuid() != 0:
        log("needs root (rootful podman), like tests/lab/lab.sh")
        return 1
    signal.signal(signal.SIGTERM, _interrupt)  # a CI timeout unwinds: containers removed
    try:
        print(ensure(args.force, KINDS[args.kind]))
    except RuntimeError as error:
        log(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
