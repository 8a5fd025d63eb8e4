"""Docker inside a lab host, for the DeepRacer stand-in simapp (tests/deepracer/README.md).

The host is a lab host like any other, made by `tests/lab/lab.sh up 1 --docker`, which owns
the image (`localhost/rlops-lab-docker:bookworm`: the lab image plus Debian's docker.io and
docker-compose 1.29.2, v1) and the run flags Docker's engine needs (privileged, the host's
cgroup namespace, /sys/fs/cgroup writable, /var/lib/docker on this machine's disk so that
dockerd uses overlay2): see tests/lab/README.md. It answers SSH (`inventory`, `ssh_config`);
the tests here run their commands with `podman exec`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAB_SH = REPO / "tests" / "lab" / "lab.sh"
DOCKER_IMAGE = os.environ.get("RLOPS_LAB_DOCKER_IMAGE", "localhost/rlops-lab-docker:bookworm")
SIMAPP_IMAGE = "awsdeepracercommunity/deepracer-simapp:6.0.4-cpu"


def run(cmd: list[str], timeout: float = 600, check: bool = True,
        stdin: str | None = None, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                          input=stdin, env=env)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed ({proc.returncode}):\n"
                           f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def build_docker_image() -> str:
    """The lab image with docker.io and docker-compose (lab.sh docker-image: cached by a label)."""
    run([str(LAB_SH), "docker-image"], timeout=900)
    return DOCKER_IMAGE


class DockerLab:
    """One lab host with a Docker engine, `lab.sh up 1 --name <prefix> --docker` in a lab of
    its own (state dir); `with DockerLab(...) as lab:`. `name` is the host's, `<prefix>-1`."""

    def __init__(self, name: str = "rlops-drsim-1", state_dir: Path | None = None):
        prefix, _sep, index = name.rpartition("-")
        if index != "1" or not prefix:
            raise ValueError(f"DockerLab {name!r}: the host of `lab.sh up 1 --name <prefix>`"
                             " is named <prefix>-1")
        self.name = name
        self.prefix = prefix
        self.state_dir = state_dir or Path("/var/tmp") / f"{name}-state"
        self.inventory = self.state_dir / "inventory.yml"
        self.ssh_config = self.state_dir / "ssh_config"
        self.storage_driver = ""

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> DockerLab:
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    def lab(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        """lab.sh in this lab's state dir."""
        env = {**os.environ, "RLOPS_LAB_STATE_DIR": str(self.state_dir)}
        return run([str(LAB_SH), *args], timeout=timeout, env=env)

    def up(self, timeout: float = 120) -> None:
        """A fresh host (anything of an earlier one removed) whose dockerd answers."""
        self.down()
        self.lab("up", "1", "--name", self.prefix, "--docker", "--timeout", str(int(timeout)))
        self.storage_driver = self.sh("docker info --format '{{.Driver}}'").stdout.strip()

    def down(self) -> None:
        if self.state_dir.exists():
            self.lab("down", timeout=300)
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
