"""Docker inside a lab host, for the DeepRacer stand-in simapp (tests/deepracer/README.md).

tests/lab/lab.sh makes SSH hosts; Docker's engine needs more than they get: the host runs
privileged with the host's cgroup namespace and /sys/fs/cgroup writable (without them
nested containers fail on the cgroup mount), and /var/lib/docker is a directory of this
machine's disk, so that dockerd inside uses overlay2 instead of vfs (a full copy of the
image per container). The image is the lab image plus Debian's docker.io and
docker-compose (1.29.2, v1: bookworm has no compose v2), built once and cached by a label.
Commands run with `podman exec`; nothing is published on the host.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAB_SH = REPO / "tests" / "lab" / "lab.sh"
LAB_IMAGE = "localhost/rlops-lab:bookworm"
DOCKER_IMAGE = "localhost/rlops-lab-docker:bookworm"
PACKAGES = "docker.io docker-compose"
LABEL = "rlops.deepracer.lab"
RECIPE_LABEL = "rlops.lab.docker"
SIMAPP_IMAGE = "awsdeepracercommunity/deepracer-simapp:6.0.4-cpu"


def run(cmd: list[str], timeout: float = 600, check: bool = True,
        stdin: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                          input=stdin)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed ({proc.returncode}):\n"
                           f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def build_docker_image() -> str:
    """The lab image with docker.io and docker-compose: cached by a hash of its inputs."""
    if not run(["podman", "image", "exists", LAB_IMAGE], check=False).returncode == 0:
        run([str(LAB_SH), "image"], timeout=900)
    lab_id = run(["podman", "image", "inspect", "--format", "{{.Id}}", LAB_IMAGE]).stdout.strip()
    recipe = hashlib.sha256(f"{lab_id}\n{PACKAGES}\n".encode()).hexdigest()[:16]
    have = run(["podman", "image", "inspect", "--format",
                f'{{{{ index .Labels "{RECIPE_LABEL}" }}}}', DOCKER_IMAGE], check=False)
    if have.returncode == 0 and have.stdout.strip() == recipe:
        return DOCKER_IMAGE
    name = f"rlops-docker-build-{recipe}"
    run(["podman", "rm", "-f", name], check=False)
    try:
        run(["podman", "run", "--name", name, LAB_IMAGE, "/bin/bash", "-c",
             "set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -qq;"
             f" apt-get install -y -qq --no-install-recommends {PACKAGES} >/dev/null;"
             " systemctl enable docker.service >/dev/null 2>&1 || true;"
             " rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb"], timeout=900)
        run(["podman", "commit", "-q", "--change", 'CMD ["/sbin/init"]',
             "--change", f"LABEL {RECIPE_LABEL}={recipe}", name, DOCKER_IMAGE], timeout=600)
    finally:
        run(["podman", "rm", "-f", name], check=False)
    return DOCKER_IMAGE


class DockerLab:
    """One privileged lab host with a Docker engine; `with DockerLab(...) as lab:`."""

    def __init__(self, name: str = "rlops-drsim-1", state_dir: Path | None = None):
        self.name = name
        self.state_dir = state_dir or Path("/var/tmp") / f"{name}-state"

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> DockerLab:
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    def up(self, timeout: float = 120) -> None:
        image = build_docker_image()
        self.down()
        (self.state_dir / "docker").mkdir(parents=True, exist_ok=True)
        run(["podman", "run", "-d", "--name", self.name, "--hostname", self.name,
             "--privileged", "--cgroupns=host", "--systemd=always",
             "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
             "--volume", f"{self.state_dir / 'docker'}:/var/lib/docker",
             "--label", f"{LABEL}={self.state_dir}", image])
        deadline = time.monotonic() + timeout
        while True:
            proc = self.sh("systemctl start docker.service && docker info --format "
                           "'{{.Driver}}'", check=False, timeout=60)
            if proc.returncode == 0:
                self.storage_driver = proc.stdout.strip()
                return
            if time.monotonic() > deadline:
                journal = self.sh("journalctl -u docker --no-pager | tail -30", check=False)
                raise RuntimeError(f"{self.name}: dockerd did not start:\n"
                                   f"{proc.stderr[-2000:]}\n{journal.stdout}")
            time.sleep(1)

    def down(self) -> None:
        run(["podman", "rm", "-f", "-t", "3", self.name], check=False, timeout=120)
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir, ignore_errors=True)

    # ------------------------------------------------------------------ commands
    def sh(self, script: str, check: bool = True, timeout: float = 600,
           stdin: str | None = None) -> subprocess.CompletedProcess:
        return run(["podman", "exec", "-i", self.name, "/bin/bash", "-c", script],
                   timeout=timeout, check=check, stdin=stdin)

    def copy_in(self, src: Path, dest: str) -> None:
        self.sh(f"mkdir -p {Path(dest).parent}")
        run(["podman", "cp", str(src), f"{self.name}:{dest}"], timeout=600)

    def load_simapp(self, tar: Path, tag: str = SIMAPP_IMAGE) -> str:
        """docker import of the stand-in's root file system with the real image's entry
        point (/bin/bash -c), command and working directory."""
        self.copy_in(tar, "/var/tmp/simapp-standin.tar")
        self.sh("docker import --change 'ENTRYPOINT [\"/bin/bash\", \"-c\"]'"
                " --change 'CMD [\"bash\"]' --change 'WORKDIR /opt/ml/code'"
                f" /var/tmp/simapp-standin.tar {tag} >/dev/null && rm /var/tmp/simapp-standin.tar")
        return tag
