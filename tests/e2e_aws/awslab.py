"""Stand-ins for the AWS path end to end: the real playbooks with rlops_provider aws against
a moto server, with each instance moto launches played by a podman lab host.

How the stand-ins fit together (traffic goes to 127.0.0.1 and the lab's containers only):

  controller (this process)        moto server on 127.0.0.1 (EC2, EBS)
    ansible-playbook ---------->   AWS_URL=<moto>; every AWS call of the playbooks
      rlops_aws_connect ------->   SSH to the lab host that plays the instance (127.0.0.1:port)
  EbsBridge (a thread)             watches moto: when the session's volume is attached to an
                                   instance, it plugs a loop device (file-backed, one file per
                                   volume) into that instance's lab host under the Nitro
                                   by-id name /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol...
  lab host per instance            privileged (loop devices), systemd, fake IMDSv2 on
                                   127.0.0.1:8169 inside (runtime/tests/fake_imds.py)
  storage lab host                 localbucket (S3, stdlib only) on its lab-network address
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path, PurePath, PurePosixPath
from urllib.parse import urlsplit

from harness import Playbooks, podman_exec, read_host_json
from harness.bridge import Bridge
from lab_hosts import LAB_VARS

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "tests" / "lab" / "lab.sh"
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
IMDS_PORT = 8169
S3_PORT = 9000
BUCKET = "rlops-e2e"
# USD/h of every spot type and zone in the tests' moto (priced_moto.py): a g4dn.xlarge's
# typical spot price, so that minutes of running cost a sum status shows to the millionth.
SPOT_PRICE = "0.2133"
MOUNT = "/mnt/rlops"
DATA_ROOT = f"{MOUNT}/rlops"
DISK_SIZE = "4G"  # sparse: a venv and wheels on it would take ~1.7 GB
# The venv in the lab's trainer image (its requirements and the folder it lies in), so
# that instances do not install torch: the image is a team's own AMI with the venv baked in.
# (The image's venvs lie under the playbooks' default data root.)
TRAINER_VENV = {"trainer_torch_requirement": LAB_VARS["trainer_torch_requirement"],
                "trainer_venv_root": "/var/lib/rlops/venvs"}
IN_HOST_DISKS = "/var/lib/rlops-lab/disks"
NVME_PREFIX = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_"


def log(message: str) -> None:
    print(f"[aws-e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(cmd: list[str], check: bool = True, timeout: float = 600, **kwargs
        ) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                          **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{shlex.join(cmd)} exited {proc.returncode}:\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


class Lab:
    """Lab hosts of this test in a state dir of their own, always taken down."""

    def __init__(self, state_dir: Path, prefix: str):
        self.state_dir = state_dir
        self.prefix = prefix
        self.env = {**os.environ, "RLOPS_LAB_STATE_DIR": str(state_dir)}
        self.key = state_dir / "id_ed25519"

    def lab(self, *args: str, timeout: float = 600) -> None:
        run([str(LAB), *args], env=self.env, timeout=timeout)

    def up(self) -> None:
        self.lab("up", "1", "--name", f"{self.prefix}-s3", "--timeout", "300")
        # From the lab's trainer image: the trainer's venv is in it (tests/lab/README.md),
        # as a team's own AMI would carry it; the test asks for that venv (TRAINER_VENV).
        self.lab("up", "2", "--name", self.prefix, "--privileged", "--trainer",
                 "--timeout", "300", timeout=1200)
        # An instance's /tmp is on its root volume; a lab host's is a tmpfs, i.e. the
        # machine's memory, where pip would unpack torch and the job's packages (GBs).
        for n in (1, 2):
            self.exec(self.host(n), "mkdir -p -m 1777 /var/tmp/disk-tmp && "
                                    "mount --bind /var/tmp/disk-tmp /tmp")

    def down(self) -> None:
        self.lab("down", timeout=300)

    def host(self, n: int) -> str:
        return f"{self.prefix}-{n}"

    @property
    def storage_host(self) -> str:
        return f"{self.prefix}-s3-1"

    def ssh_port(self, name: str) -> int:
        out = run(["podman", "port", name, "22/tcp"]).stdout.split()[0]
        return int(out.rsplit(":", 1)[1])

    def address(self, name: str) -> str:
        fmt = '{{ (index .NetworkSettings.Networks "rlops-lab").IPAddress }}'
        return run(["podman", "inspect", "--format", fmt, name]).stdout.strip()

    def exec(self, name: str, script: str, check: bool = True, timeout: float = 120
             ) -> subprocess.CompletedProcess:
        """A bash script inside lab host `name`; its output as text."""
        return podman_exec(name, "bash", "-c", script, check=check, timeout=timeout, text=True)

    def exec_detached(self, name: str, *argv: str) -> None:
        run(["podman", "exec", "-d", name, *argv])

    def copy_in(self, name: str, source: Path, dest: str) -> None:
        run(["podman", "cp", str(source), f"{name}:{dest}"])

    def connect(self, name: str) -> dict:
        """rlops_aws_connect for an instance played by lab host `name`."""
        return {"ansible_host": "127.0.0.1", "ansible_port": self.ssh_port(name),
                "ansible_user": "lab", "ansible_ssh_private_key_file": str(self.key),
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no "
                                           "-o UserKnownHostsFile=/dev/null"}

    # ---- the instance's metadata service ----------------------------------------------

    def start_imds(self, name: str) -> str:
        self.copy_in(name, REPO / "runtime" / "tests" / "fake_imds.py",
                     "/usr/local/lib/fake_imds.py")
        self.exec_detached(name, "python3", "/usr/local/lib/fake_imds.py", "--host",
                           "127.0.0.1", "--port", str(IMDS_PORT))
        self.imds(name, "GET", "/_control/requests")  # answers: it is up
        return f"http://127.0.0.1:{IMDS_PORT}"

    def imds(self, name: str, method: str, path: str, body: dict | None = None) -> str:
        script = (
            "import json, sys, time, urllib.request\n"
            "for attempt in range(50):\n"
            "    try:\n"
            f"        req = urllib.request.Request('http://127.0.0.1:{IMDS_PORT}' + sys.argv[2],"
            " method=sys.argv[1], data=sys.argv[3].encode() or None)\n"
            "        print(urllib.request.urlopen(req, timeout=2).read().decode()); break\n"
            "    except OSError:\n"
            "        time.sleep(0.2)\n"
            "else:\n"
            "    sys.exit('fake IMDS does not answer')\n")
        return run(["podman", "exec", name, "python3", "-c", script, method, path,
                    json.dumps(body) if body else ""]).stdout

    # ---- EBS volumes as loop devices -------------------------------------------------

    def disk_file(self, name: str, volume_id: str) -> Path:
        return self.state_dir / "disks" / name / f"{volume_id}.img"

    def plug(self, name: str, volume_id: str) -> str:
        """Attach the volume's backing file to a loop device on lab host `name`, under the
        by-id name a Nitro instance gives an EBS volume. The file moves with the volume:
        from the lab host that had it last (which must have let go of it)."""
        target = self.disk_file(name, volume_id)
        for other in (self.state_dir / "disks").glob(f"*/{volume_id}.img"):
            if other != target:
                other.rename(target)
        link = NVME_PREFIX + volume_id.replace("-", "")
        script = f"""
            set -euo pipefail
            file={IN_HOST_DISKS}/{volume_id}.img
            [ -f "$file" ] || truncate -s {DISK_SIZE} "$file"
            dev=$(losetup -j "$file" -n -O NAME | head -n 1)
            [ -n "$dev" ] || dev=$(losetup -f --show "$file")
            mkdir -p /dev/disk/by-id
            ln -sfn "$dev" {link}
            echo "$dev"
        """
        return self.exec(name, script).stdout.strip()

    def unplug(self, name: str, volume_id: str) -> None:
        """What the instance's end does to the volume: unmounted, loop device detached."""
        link = NVME_PREFIX + volume_id.replace("-", "")
        script = f"""
            set -euo pipefail
            if mountpoint -q {MOUNT}; then umount {MOUNT}; fi
            file={IN_HOST_DISKS}/{volume_id}.img
            for dev in $(losetup -j "$file" -n -O NAME); do losetup -d "$dev"; done
            rm -f {link}
        """
        self.exec(name, script)

    # A JSON file on a lab host ({} when absent or partial): the harness's.
    read_json = staticmethod(read_host_json)


class EbsBridge(Bridge):
    """Plays EBS for the lab: each new attachment of the session's data volume that moto
    reports shows up as a block device on the lab host playing that instance."""

    def __init__(self, ec2, lab: Lab, session: str):
        super().__init__("ebs-bridge")
        self.ec2, self.lab, self.session = ec2, lab, session
        self.plays: dict[str, str] = {}  # instance id -> lab host; the next one: `target`
        self.target: str | None = None
        self.plugged: list[tuple[str, str, str]] = []  # (instance, volume, host)

    def step(self) -> None:
        volumes = self.ec2.describe_volumes(Filters=[
            {"Name": "tag:rlops:session", "Values": [self.session]},
            {"Name": "tag:rlops:role", "Values": ["data"]}])["Volumes"]
        for volume in volumes:
            for attachment in volume.get("Attachments", []):
                instance = attachment["InstanceId"]
                if attachment.get("State") != "attached" or instance in self.plays:
                    continue
                if self.target is None:
                    raise AssertionError(f"{volume['VolumeId']} attached to {instance}, "
                                         "but no lab host is to play a new instance")
                host, self.target = self.target, None
                self.plays[instance] = host
                device = self.lab.plug(host, volume["VolumeId"])
                self.plugged.append((instance, volume["VolumeId"], host))
                log(f"EBS: {volume['VolumeId']} attached to {instance} -> {device} on {host}")


class AwsPlaybooks(Playbooks):
    """The playbooks as a user of the AWS path runs them: -i inventories/aws, AWS settings in
    extra vars, the AWS SDK pointed at moto (the harness's Playbooks). Each run's output is
    kept under `workdir`. With `lab`, a session's status.json is read on the lab host that
    plays its instance (`status(session, host=...)`, `wait(..., host=...)`)."""

    def __init__(self, moto_url: str, workdir: Path, extra: dict, lab: Lab | None = None):
        env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        env.update(CREDENTIALS, AWS_URL=moto_url, AWS_REGION=REGION,
                   # Never the real metadata service or a real profile.
                   AWS_EC2_METADATA_DISABLED="true",
                   AWS_CONFIG_FILE=str(workdir / "no-aws-config"),
                   AWS_SHARED_CREDENTIALS_FILE=str(workdir / "no-aws-credentials"),
                   # Each task's time, in the run logs kept under workdir.
                   ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks")
        super().__init__(results=workdir / "results", data_root=PurePosixPath(DATA_ROOT),
                         extra=extra, inventory="inventories/aws", env=env, logs=workdir,
                         timeout=1200, echo=log, read_json=self._read_on_lab, poll_interval=1)
        self.workdir = workdir
        self.lab = lab

    def check_variables(self, variables: dict) -> None:
        check_network_rule(variables)

    def _read_on_lab(self, host: str, path: PurePath) -> dict:
        assert self.lab is not None, "no lab hosts play this test's instances"
        return self.lab.read_json(host, str(path))

    def job_log_tail(self, session: str, host: str = "localhost") -> str:
        if self.lab is None:
            return ""
        log_file = shlex.quote(str(self.session_dir(session) / "logs" / "job.log"))
        return self.lab.exec(host, f"tail -n 40 {log_file}", check=False).stdout


def check_network_rule(variables: dict) -> None:
    """The playbooks may only reach 127.0.0.0/8 (and the lab's containers through it): an
    instance's moto address or checkip.amazonaws.com must never be contacted."""
    cidr = variables.get("rlops_aws_ssh_cidr", "")
    asked = urlsplit(variables.get("rlops_aws_address_url", "")).hostname or ""
    assert cidr or asked.startswith("127."), (
        "tests must set rlops_aws_ssh_cidr, or a loopback rlops_aws_address_url (else the "
        "controller's address is asked from checkip.amazonaws.com)")
    host = (variables.get("rlops_aws_connect") or {}).get("ansible_host", "")
    assert host.startswith("127."), "tests must map instances onto 127.0.0.1 (rlops_aws_connect)"
