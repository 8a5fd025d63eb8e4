"""Stand-ins for the Azure path end to end: the real playbooks with rlops_provider azure, whose
azure.azcollection modules (in the Azure venv) talk to arm_fake.py, with the session's VM
played by a podman lab host and its managed data disk by a loop device.

How the stand-ins fit together (traffic goes to 127.0.0.1 and the lab's containers only):

  controller (this process)        arm_fake.py, the Azure modules' HTTPS proxy on
    ansible-playbook ---------->   127.0.0.1:<port+1> (rlops_azure_environment: HTTPS_PROXY):
      azure_rm_* modules           it answers CONNECT management.azure.com and
                                   login.microsoftonline.com itself, with a self-signed
                                   certificate naming them (REQUESTS_CA_BUNDLE), and never
                                   connects anywhere: tokens, the resource store; its public
                                   IPs get the lab host's address, so the VM is reached where
                                   Azure says it is. (A metadata endpoint URL as
                                   cloud_environment fails in azure.azcollection 3.12.0.)
  DiskBridge (a thread)            watches the fake: while the session's VM runs with the data
                                   disk attached, a loop device (one file per disk) is plugged
                                   into the lab host under the LUN's name
                                   /dev/disk/azure/scsi1/lun<N>; when the VM is deallocated or
                                   deleted, it is unmounted and unplugged
  lab host                         privileged (loop devices), systemd, the trainer's venv baked
                                   in (the team's own image); Azure's instance metadata
                                   (Scheduled Events, the VM's name) on 127.0.0.1:8170 inside
                                   (fake_scheduled_events.py), given to the supervisor as
                                   RLOPS_AZURE_IMDS_ENDPOINT
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path, PurePath, PurePosixPath

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e_aws"))

from awslab import DATA_ROOT, IN_HOST_DISKS, MOUNT, TRAINER_VENV, Lab, run  # noqa: E402
from harness import Playbooks  # noqa: E402
from harness.bridge import Bridge  # noqa: E402
from servers import free_port, stop_process  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
AZURE_PYTHON = REPO / ".venv" / "azure-venv" / "bin" / "python"
SUBSCRIPTION = "00000000-0000-4000-8000-00000000a2e1"
TENANT = "00000000-0000-4000-8000-000000000001"
CREDENTIALS = {"AZURE_SUBSCRIPTION_ID": SUBSCRIPTION, "AZURE_CLIENT_ID": "rlops-e2e",
               "AZURE_SECRET": "e2e-secret-not-real", "AZURE_TENANT": TENANT}
GROUP = "rlops-e2e"
LOCATION = "eastus"
DISK_SIZE = "4G"  # sparse
LUN = 0
# Where the lab host's stand-in of Azure's instance metadata answers (inside the host).
METADATA_PORT = 8170
__all__ = ["DATA_ROOT", "MOUNT", "TRAINER_VENV", "run"]


def log(message: str) -> None:
    print(f"[azure-e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


class ArmFake:
    """arm_fake.py in a process of its own, with a certificate made for this run."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.cert, self.key = workdir / "arm.crt", workdir / "arm.key"
        self.port = free_pair()
        self.url = f"https://127.0.0.1:{self.port}"
        self.proxy = f"http://127.0.0.1:{self.port + 1}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=arm-fake", "-addext", "subjectAltName=DNS:management.azure.com,"
             "DNS:login.microsoftonline.com,IP:127.0.0.1",
             "-keyout", str(self.key), "-out", str(self.cert)])
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("arm_fake.py")), "--port",
             str(self.port), "--cert", str(self.cert), "--key", str(self.key)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "arm_fake.log").open("w"))
        deadline = time.monotonic() + 30
        while True:
            try:
                self.request("GET", "/_fake/calls")
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("arm_fake.py did not start") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def request(self, method: str, path: str, body=None):
        context = ssl.create_default_context(cafile=str(self.cert))
        request = urllib.request.Request(
            self.url + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": "Bearer fake-test", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise
        return json.loads(raw) if raw else {}

    # ---- what a test reads and arranges ---------------------------------------------------
    def calls(self) -> list[dict]:
        return self.request("GET", "/_fake/calls")

    def set_addresses(self, addresses: list[str]) -> None:
        self.request("POST", "/_fake/addresses", addresses)

    def resource_id(self, kind: str, name: str, group: str = GROUP) -> str:
        if kind == "resourceGroups":
            return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{name}"
        return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/{kind}/{name}")

    def get(self, kind: str, name: str, group: str = GROUP, expand: str = ""):
        query = f"?$expand={expand}" if expand else ""
        return self.request("GET", self.resource_id(kind, name, group) + query)

    def put(self, kind: str, name: str, body: dict, group: str = GROUP):
        return self.request("PUT", self.resource_id(kind, name, group), body)

    def power_state(self, vm_name: str) -> str:
        vm = self.get("Microsoft.Compute/virtualMachines", vm_name, expand="instanceView")
        if vm is None:
            return "gone"
        codes = [s["code"] for s in vm["properties"]["instanceView"]["statuses"]]
        return next(c.split("/", 1)[1] for c in codes if c.startswith("PowerState/"))


class AzureLab(Lab):
    """One privileged lab host of the trainer image that plays the session's VM."""

    def up(self) -> None:
        self.lab("up", "1", "--name", self.prefix, "--privileged", "--trainer",
                 "--timeout", "300", timeout=1200)
        # A VM's /tmp is on its disk; a lab host's is a tmpfs (the machine's memory).
        self.exec(self.host(1), "mkdir -p -m 1777 /var/tmp/disk-tmp && "
                                "mount --bind /var/tmp/disk-tmp /tmp")

    def connect(self, name: str) -> dict:
        """rlops_azure_connect: the lab's user and key; the address is the VM's own (its
        public IP in the fake is the lab host's address)."""
        return {"ansible_user": "lab", "ansible_ssh_private_key_file": str(self.key),
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no "
                                           "-o UserKnownHostsFile=/dev/null"}

    def plug_lun(self, name: str, disk: str, lun: int) -> str:
        link = f"/dev/disk/azure/scsi1/lun{lun}"
        script = f"""
            set -euo pipefail
            file={IN_HOST_DISKS}/{disk}.img
            [ -f "$file" ] || truncate -s {DISK_SIZE} "$file"
            dev=$(losetup -j "$file" -n -O NAME | head -n 1)
            [ -n "$dev" ] || dev=$(losetup -f --show "$file")
            mkdir -p /dev/disk/azure/scsi1
            ln -sfn "$dev" {link}
            echo "$dev"
        """
        return self.exec(name, script).stdout.strip()

    def start_metadata(self, name: str, vm: str) -> str:
        """Azure's instance metadata for VM `vm`, served inside lab host `name`: its URL there
        (the supervisor's RLOPS_AZURE_IMDS_ENDPOINT)."""
        self.copy_in(name, Path(__file__).with_name("fake_scheduled_events.py"),
                     "/usr/local/lib/fake_scheduled_events.py")
        self.exec_detached(name, "python3", "/usr/local/lib/fake_scheduled_events.py",
                           "--port", str(METADATA_PORT), "--vm", vm)
        self.metadata(name, "GET", "/_control/state")  # answers: it is up
        return f"http://127.0.0.1:{METADATA_PORT}"

    def metadata(self, name: str, method: str, path: str) -> dict:
        """A control request to lab host `name`'s metadata stand-in; its JSON answer."""
        script = (
            "import sys, time, urllib.request\n"
            "for attempt in range(50):\n"
            "    try:\n"
            f"        url = 'http://127.0.0.1:{METADATA_PORT}' + sys.argv[2]\n"
            "        req = urllib.request.Request(url, method=sys.argv[1],"
            " data=b'' if sys.argv[1] == 'POST' else None)\n"
            "        print(urllib.request.urlopen(req, timeout=2).read().decode()); break\n"
            "    except OSError:\n"
            "        time.sleep(0.2)\n"
            "else:\n"
            "    sys.exit('the metadata stand-in does not answer')\n")
        return json.loads(run(["podman", "exec", name, "python3", "-c", script, method,
                               path]).stdout)

    def unplug_lun(self, name: str, disk: str, lun: int) -> None:
        script = f"""
            set -euo pipefail
            if mountpoint -q {MOUNT}; then umount {MOUNT}; fi
            file={IN_HOST_DISKS}/{disk}.img
            for dev in $(losetup -j "$file" -n -O NAME); do losetup -d "$dev"; done
            rm -f /dev/disk/azure/scsi1/lun{lun}
        """
        self.exec(name, script)


class DiskBridge(Bridge):
    """Plays the managed data disk: attached to the running VM -> a block device at its LUN on
    the lab host; the VM deallocated or gone -> unmounted and unplugged, as a VM that is not
    running has no disks. A new VM of the same name (resume after the VM was deleted) is
    played by the same lab host."""

    def __init__(self, arm: ArmFake, lab: AzureLab, host: str, vm: str, disk: str):
        super().__init__("disk-bridge")
        self.arm, self.lab, self.host, self.vm, self.disk = arm, lab, host, vm, disk
        self.plugged = False
        self.events: list[str] = []

    def step(self) -> None:
        vm = self.arm.get("Microsoft.Compute/virtualMachines", self.vm)
        power = self.arm.power_state(self.vm) if vm is not None else "gone"
        disks = [] if vm is None else vm["properties"]["storageProfile"].get("dataDisks", [])
        lun = next((d["lun"] for d in disks
                    if d.get("managedDisk", {}).get("id", "").lower().endswith(
                        "/disks/" + self.disk.lower())), None)
        wanted = power in ("running", "starting") and lun is not None
        if wanted and not self.plugged:
            device = self.lab.plug_lun(self.host, self.disk, lun)
            self.plugged = True
            self.events.append(f"plugged at lun {lun}")
            log(f"disk {self.disk} attached to running {self.vm} -> {device} at LUN {lun}")
        elif not wanted and self.plugged:
            self.lab.unplug_lun(self.host, self.disk, LUN)
            self.plugged = False
            self.events.append(f"unplugged ({power})")
            log(f"VM {self.vm} {power}: disk {self.disk} unplugged")


class AzurePlaybooks(Playbooks):
    """The playbooks as a user of the Azure path runs them: -i inventories/azure, settings in
    extra vars, the Azure modules pointed at the fake through their own settings."""

    def __init__(self, arm: ArmFake, workdir: Path, extra: dict, lab: Lab | None = None,
                 credentials: dict | None = None):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "REQUESTS_"))}
        env.update(credentials if credentials is not None else CREDENTIALS,
                   ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks")
        extra = {"rlops_azure_environment": {"HTTPS_PROXY": arm.proxy, "NO_PROXY": "",
                                             "REQUESTS_CA_BUNDLE": str(arm.cert)},
                 "rlops_azure_python": str(AZURE_PYTHON),
                 "rlops_azure_resource_group": GROUP, "rlops_azure_location": LOCATION,
                 "rlops_azure_ssh_cidr": "127.0.0.1/32", **extra}
        super().__init__(results=workdir / "results", data_root=PurePosixPath(DATA_ROOT),
                         extra=extra, inventory="inventories/azure", env=env, logs=workdir,
                         timeout=1200, echo=log, read_json=self._read_on_lab, poll_interval=1)
        self.lab = lab

    def _read_on_lab(self, host: str, path: PurePath) -> dict:
        assert self.lab is not None, "no lab host plays this test's VM"
        return self.lab.read_json(host, str(path))


def seed_storage_account(arm: ArmFake, group: str = "rlops-e2e-storage",
                         account: str = "rlopsckpt") -> str:
    """A storage account in a group of its own in the fake (what the VM's identity is given
    a role on); its resource id."""
    arm.request("PUT", arm.resource_id("resourceGroups", group), {"location": LOCATION})
    arm.put("Microsoft.Storage/storageAccounts", account,
            {"location": LOCATION, "kind": "StorageV2"}, group)
    return arm.resource_id("Microsoft.Storage/storageAccounts", account, group)


def free_pair() -> int:
    """A loopback port whose next one is free too (the fake's HTTPS and its proxy)."""
    for _attempt in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two free loopback ports in a row")


def azure_venv_missing() -> str:
    if not AZURE_PYTHON.exists():
        return f"no {AZURE_PYTHON}: make azure-venv"
    return ""


def lab_missing() -> str:
    if os.geteuid() != 0 or shutil.which("podman") is None:
        return "lab hosts need root and podman (tests/lab/lab.sh setup)"
    return ""


def answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False
