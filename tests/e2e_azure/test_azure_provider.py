"""The Azure provider's whole life cycle against the fake Resource Manager, through the real
azure.azcollection modules (provider_calls.yml runs the entry points as the playbooks do,
without the host plays): train_new's provision (check mode: reads only; then the resources
and a Spot VM with the data disk at its LUN, the host added at the VM's public address, found
by LUN), status with power state and cost so far, stop (deallocate: both disks kept), resume
(the same VM started), stop; then stop deleting the VM (never the data disk), resume making a
new VM that attaches the same disk, and stop deleting both when asked. No lab host: seconds."""

from __future__ import annotations

import json
from pathlib import Path

from azlab import GROUP, LUN, AzurePlaybooks

SESSION = "az-life"
VM, DISK = f"rlops-{SESSION}", f"rlops-{SESSION}-data"
VMS, DISKS = "Microsoft.Compute/virtualMachines", "Microsoft.Compute/disks"
ADDRESS = "127.0.0.42"


class ProviderCalls(AzurePlaybooks):
    """provider_calls.yml (run as `provider`) with the Azure path's inventory and settings."""

    def command(self, name, variables, args=()):
        command = super().command(name, variables, args)
        return [part if part != "playbooks/provider.yml"
                else str(Path(__file__).with_name("provider_calls.yml")) for part in command]


def changes(calls):
    return [(c["method"], c["path"].rsplit("/", 1)[1]) for c in calls
            if c["path"].startswith("/subscriptions/")
            and c["method"] in ("PUT", "PATCH", "DELETE", "POST")]


def test_provider_life_cycle(arm, tmp_path):
    key = tmp_path / "id.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2e2e2e2e2e2e2e2e2e2e e2e\n")
    arm.set_addresses([ADDRESS])
    playbooks = ProviderCalls(arm, tmp_path, {
        "rlops_session": SESSION, "out": str(tmp_path),
        "rlops_azure_public_key_file": str(key), "rlops_azure_vm_size": "Standard_D2s_v5",
        "rlops_azure_max_price": 0.05, "rlops_azure_tags": {"team": "rl"}})

    def run(step, mode="", **extra):
        return playbooks.run("provider", step=step, mode=mode, **extra).stdout

    def report():
        return json.loads((tmp_path / "report.json").read_text())

    # --- provision --check: reads only, the VM named to create -------------------------------
    out = playbooks.run("provider", "--check", step="provision",
                        mode="new").stdout
    assert f"Azure VM {VM} (Standard_D2s_v5, spot, session {SESSION}) would be created" in out
    assert changes(arm.calls()) == []
    assert json.loads((tmp_path / "hosts.json").read_text()) == []

    # --- provision new: everything made, the VM added at its public address --------------------
    run("provision", "new")
    made = arm.get(VMS, VM)
    assert (made["properties"]["priority"], made["properties"]["evictionPolicy"],
            made["properties"]["billingProfile"]["maxPrice"]) == ("Spot", "Deallocate", 0.05)
    (data,) = made["properties"]["storageProfile"]["dataDisks"]
    assert data["lun"] == LUN and data["managedDisk"]["id"].endswith("/disks/" + DISK)
    assert made["properties"]["storageProfile"]["osDisk"]["managedDisk"]["storageAccountType"] \
        == "StandardSSD_LRS"
    assert made["tags"]["rlops-session"] == SESSION and made["tags"]["team"] == "rl"
    nsg = arm.get("Microsoft.Network/networkSecurityGroups", f"rlops-{SESSION}-nsg")
    assert [(r["properties"]["sourceAddressPrefix"], r["properties"]["destinationPortRange"])
            for r in nsg["properties"]["securityRules"]] == [("127.0.0.1/32", "22")]
    assert arm.get(DISKS, DISK)["tags"] == {"team": "rl", "rlops-session": SESSION,
                                            "rlops-role": "data"}
    assert json.loads((tmp_path / "hosts.json").read_text()) == [{
        "name": VM, "ansible_host": ADDRESS, "user": "rlops", "source": "azure_lun",
        "lun": LUN, "prepare": True}]
    assert arm.power_state(VM) == "running"

    # --- a second provision new is refused before any change ---------------------------------
    before = len(arm.calls())
    out = playbooks.run("provider", ok=False, step="provision",
                        mode="new").stdout
    assert f"session {SESSION} already has Azure resources (VM {VM}" in out
    assert changes(arm.calls()[before:]) == []

    # --- status: power state and cost so far (capped by the max price) -----------------------
    run("status")
    (vm_line, disk_line) = report()
    assert vm_line.startswith(f"Azure VM {VM} (Standard_D2s_v5, session {SESSION}, eastus):"
                              " running, ran 0.0"), vm_line
    assert "at USD 0.05/h (rlops_azure_max_price (at most))" in vm_line
    assert disk_line == (f"Azure data disk {DISK} (64 GiB, session {SESSION}): attached to {VM};"
                         " billed while it exists")

    # --- stop: deallocated, disks kept, the run kept in its tags ------------------------------
    before = len(arm.calls())
    out = run("stop")
    assert f"Azure: VM {VM} deallocated" in out and f"Azure: data disk {DISK} kept" in out
    assert [m for m, _p in changes(arm.calls()[before:])] == ["PATCH", "POST"]  # tags, deallocate
    assert arm.power_state(VM) == "deallocated"
    tags = arm.get(VMS, VM)["tags"]
    assert tags["rlops-started"] == "" and tags["rlops-run-seconds"].isdigit()
    assert arm.get(DISKS, DISK)["managedBy"].endswith("/" + VM)
    assert arm.get(DISKS, f"{VM}-os") is not None

    # --- resume: the same VM started -------------------------------------------------------
    before = len(arm.calls())
    run("provision", "resume")
    assert arm.power_state(VM) == "running"
    assert [p for m, p in changes(arm.calls()[before:]) if m == "POST"] == ["start"]
    assert arm.get(VMS, VM)["properties"]["vmId"] == made["properties"]["vmId"]
    run("status")
    assert f"Azure VM {VM} (Standard_D2s_v5, session {SESSION}, eastus): running" in report()[0]

    # --- stop deleting the VM: the data disk stays, unattached --------------------------------
    out = run("stop", rlops_azure_delete_vm=True)
    assert f"Azure: VM {VM} deleted" in out and f"Azure: data disk {DISK} kept" in out
    assert arm.get(VMS, VM) is None and arm.get(DISKS, f"{VM}-os") is None
    assert arm.get("Microsoft.Network/networkInterfaces", f"rlops-{SESSION}-nic") is None
    kept = arm.get(DISKS, DISK)
    assert kept is not None and kept["managedBy"] is None
    run("status")
    assert report() == [f"Azure data disk {DISK} (64 GiB, session {SESSION}): not attached;"
                        " billed while it exists"]

    # --- resume: a new VM attaching the same disk ------------------------------------------
    arm.set_addresses([ADDRESS])
    run("provision", "resume")
    again = arm.get(VMS, VM)
    assert again["properties"]["vmId"] != made["properties"]["vmId"]
    assert again["properties"]["storageProfile"]["dataDisks"][0]["managedDisk"]["id"] \
        .lower().endswith("/disks/" + DISK.lower())
    assert arm.get(DISKS, DISK)["properties"]["uniqueId"] == kept["properties"]["uniqueId"]

    # --- stop deleting both, as asked ----------------------------------------------------------
    out = run("stop", rlops_azure_delete_vm=True, rlops_azure_delete_disk=True)
    assert f"Azure: data disk {DISK} deleted" in out
    assert arm.get(DISKS, DISK) is None and arm.get(VMS, VM) is None
    assert arm.get("resourceGroups", GROUP) is not None  # shared: never deleted
    out = playbooks.run("provider", ok=False, step="stop").stdout
    assert f"Azure holds no VM or data disk of session {SESSION}" in out
