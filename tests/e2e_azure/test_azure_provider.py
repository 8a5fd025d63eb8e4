"""The Azure provider against the fake Resource Manager through the real azure.azcollection
modules (provider_calls.yml runs the entry points as the playbooks do, without the host
plays), for what the lab session (test_azure_spot_session.py: stop, resume of the same VM, a
new VM on the same disk) does not cover: train_new's provision (check mode: reads only; then
the resources and a Spot VM with a max price and the data disk at its LUN, the host added at
the VM's public address, found by LUN; its system-assigned identity given Storage Blob Data
Contributor on a storage account), a second new refused, status with the cost capped by the
max price, stop deleting the VM (never the data disk; the identity's role removed), stop
deleting the disk too, and stop of a session Azure no longer holds. No lab host: ~2.5 min."""

from __future__ import annotations

import json
from pathlib import Path

from azlab import GROUP, LUN, AzurePlaybooks, seed_storage_account

SESSION = "az-life"
VM, DISK = f"rlops-{SESSION}", f"rlops-{SESSION}-data"
VMS, DISKS = "Microsoft.Compute/virtualMachines", "Microsoft.Compute/disks"
ADDRESS = "127.0.0.42"
ASSIGNMENTS = "Microsoft.Authorization/roleAssignments"
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"


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


def assignments(arm, scope):
    """The role assignments at `scope`: {principal id: role definition id}."""
    listed = arm.request("GET", scope + "/providers/" + ASSIGNMENTS) or {"value": []}
    return {a["properties"]["principalId"]: a["properties"]["roleDefinitionId"]
            for a in listed["value"]}


def principal(vm):
    identity = vm.get("identity") or {}
    assert identity.get("type") == "SystemAssigned", vm.get("identity")
    return identity["principalId"]


def test_provider_life_cycle(arm, tmp_path):
    key = tmp_path / "id.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2e2e2e2e2e2e2e2e2e2e e2e\n")
    arm.set_addresses([ADDRESS])
    # The storage account the VM's identity writes checkpoints to (az://), in a group of its own.
    scope = seed_storage_account(arm)
    seeded = len(arm.calls())
    playbooks = ProviderCalls(arm, tmp_path, {
        "rlops_session": SESSION, "out": str(tmp_path),
        "rlops_azure_public_key_file": str(key), "rlops_azure_vm_size": "Standard_D2s_v5",
        "rlops_azure_max_price": 0.05, "rlops_azure_tags": {"team": "rl"},
        "rlops_azure_identity": True, "rlops_azure_identity_scope": scope})

    def run(step, mode="", **extra):
        return playbooks.run("provider", step=step, mode=mode, **extra).stdout

    def report():
        return json.loads((tmp_path / "report.json").read_text())

    # --- provision --check: reads only, the VM named to create -------------------------------
    out = playbooks.run("provider", "--check", step="provision",
                        mode="new").stdout
    assert f"Azure VM {VM} (Standard_D2s_v5, spot, session {SESSION}) would be created" in out
    assert changes(arm.calls()[seeded:]) == []
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
    # Its identity may read and write the storage account's blobs, and nothing else was granted.
    first_principal = principal(made)
    (role,) = assignments(arm, scope).values()
    assert assignments(arm, scope) == {first_principal: role}
    assert role.endswith("/providers/Microsoft.Authorization/roleDefinitions/"
                         + BLOB_DATA_CONTRIBUTOR) and role.startswith(scope.split("/resourceG")[0])

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

    # --- stop deleting the VM: the data disk stays, unattached --------------------------------
    out = run("stop", rlops_azure_delete_vm=True)
    assert f"Azure: VM {VM} deleted" in out and f"Azure: data disk {DISK} kept" in out
    assert arm.get(VMS, VM) is None and arm.get(DISKS, f"{VM}-os") is None
    assert arm.get("Microsoft.Network/networkInterfaces", f"rlops-{SESSION}-nic") is None
    kept = arm.get(DISKS, DISK)
    assert kept is not None and kept["managedBy"] is None
    assert assignments(arm, scope) == {}  # the identity's role went with it

    # --- stop deleting both, as asked: the VM is gone, its disk goes --------------------------
    out = run("stop", rlops_azure_delete_vm=True, rlops_azure_delete_disk=True)
    assert f"Azure: data disk {DISK} deleted" in out
    assert report() == [f"Azure data disk {DISK} (64 GiB, session {SESSION}): not attached;"
                        " billed while it exists"]  # what locate found before
    assert arm.get(DISKS, DISK) is None and arm.get(VMS, VM) is None
    assert arm.get("resourceGroups", GROUP) is not None  # shared: never deleted
    out = playbooks.run("provider", ok=False, step="stop").stdout
    assert f"Azure holds no VM or data disk of session {SESSION}" in out
