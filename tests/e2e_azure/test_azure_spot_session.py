"""A spot training session on the Azure path, its whole life, end to end (arm_fake.py + a lab
host, see azlab.py): train_new --check changes nothing in Azure; train_new makes the resource
group, network, NSG (SSH from the controller only), public IP, NIC, the data disk and a Spot VM
(eviction policy Deallocate, max price -1, a managed OS disk, the data disk at LUN 0), mounts
the disk found by its LUN and trains; status shows the VM running and its cost so far; stop
deallocates the VM and keeps both disks; resume starts the same VM, mounts the disk again and
training continues from its checkpoint (the VM's managed identity keeps its role on a storage
account, made with the VM); retrieve and evaluate reach the running VM; Azure's
Scheduled Events announce a Preempt: the supervisor checkpoints, publishes, records the
interruption and acknowledges the event, then Azure deallocates the VM, and resume continues
from that checkpoint on the same VM; stop deleting the VM keeps the data disk (and removes the
identity's role), and resume makes a new VM on it, whose new identity gets the role; stop
deallocates it."""

from __future__ import annotations

import json
import re
import time

from azlab import LUN, MOUNT, TRAINER_VENV, AzurePlaybooks, DiskBridge, log, seed_storage_account
from harness import in_state, status_table, wait_until

BUDGET = {"trainer_total_timesteps": 3_000_000, "trainer_checkpoint_interval": 20480,
          "trainer_sync_interval": 5, "trainer_env_id": "CartPole-v1", "trainer_algo": "ppo"}
VMS = "Microsoft.Compute/virtualMachines"
DISKS = "Microsoft.Compute/disks"
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"


def changes(calls):
    """The calls that would change something in Azure."""
    return [c for c in calls if c["path"].startswith("/subscriptions/")
            and c["method"] in ("PUT", "PATCH", "DELETE", "POST")]


def report_line(out: str, vm: str) -> str:
    lines = [m for m in re.findall(r'"(Azure VM [^"]+)"', out) if m.startswith(f"Azure VM {vm} ")]
    assert lines, out[-3000:]
    return lines[-1]


def power_actions(calls):
    return [c["path"].rsplit("/", 1)[1] for c in changes(calls) if c["method"] == "POST"]


def assignments(arm, scope):
    """The role assignments at `scope`: {principal id: role definition id}."""
    listed = arm.request("GET", scope + "/providers/Microsoft.Authorization/roleAssignments")
    return {a["properties"]["principalId"]: a["properties"]["roleDefinitionId"]
            for a in (listed or {"value": []})["value"]}


def principal(vm):
    identity = vm.get("identity") or {}
    assert identity.get("type") == "SystemAssigned", vm.get("identity")
    return identity["principalId"]


def test_spot_session_lives_through_stop_eviction_and_a_new_vm(arm, lab, tmp_path):
    started = time.monotonic()
    host = lab.host(1)
    session = "az-e2e-" + time.strftime("%Y%m%dt%H%M%Sz", time.gmtime())
    vm, disk = f"rlops-{session}", f"rlops-{session}-data"
    storage = f"{MOUNT}/rlops/storage/{session}/checkpoints"
    # The fake gives the VM's public IP the lab host's address: the play reaches the VM where
    # Azure says it is. The lab host answers as the VM's instance metadata too.
    arm.set_addresses([lab.address(host)])
    metadata = lab.start_metadata(host, vm)
    # The storage account the VM's identity is given Storage Blob Data Contributor on.
    scope = seed_storage_account(arm)
    seeded = len(arm.calls())
    playbooks = AzurePlaybooks(arm, tmp_path, lab=lab, extra={
        **BUDGET, **TRAINER_VENV,
        "rlops_azure_vm_size": "Standard_D2s_v5",
        "rlops_azure_public_key_file": str(lab.key) + ".pub",
        "rlops_azure_connect": lab.connect(host),
        "rlops_azure_disk_size_gb": 4,
        "rlops_azure_tags": {"project": "azure-e2e"},
        "rlops_data_root": f"{MOUNT}/rlops",
        "rlops_prepare_gpu": False,
        # The supervisor watches this VM's Scheduled Events there (docs/contract.md, Notices).
        "rlops_storage_credentials": {"RLOPS_AZURE_IMDS_ENDPOINT": metadata},
        "rlops_azure_identity": True, "rlops_azure_identity_scope": scope,
    })
    bridge = DiskBridge(arm, lab, host, vm, disk)
    bridge.start()
    try:
        # --- check mode: reads only ---------------------------------------------------------
        out = playbooks.run("train_new", check=True, rlops_session=session).stdout
        assert f"Azure VM {vm} (Standard_D2s_v5, spot, session {session}) would be created" in out
        assert changes(arm.calls()[seeded:]) == [], changes(arm.calls()[seeded:])

        # --- train_new: resources, VM, disk mounted by LUN, training ------------------------
        out = playbooks.run("train_new", rlops_session=session).stdout
        bridge.check()
        made = arm.get(VMS, vm)["properties"]
        assert (made["priority"], made["evictionPolicy"]) == ("Spot", "Deallocate")
        assert made["billingProfile"]["maxPrice"] == -1
        assert made["hardwareProfile"]["vmSize"] == "Standard_D2s_v5"
        os_disk = made["storageProfile"]["osDisk"]
        assert os_disk["managedDisk"]["storageAccountType"] == "StandardSSD_LRS"
        assert "vhd" not in os_disk  # a managed OS disk, not a VHD in a storage account
        (data,) = made["storageProfile"]["dataDisks"]
        assert data["lun"] == LUN and data["managedDisk"]["id"].endswith(f"/disks/{disk}")
        assert made["osProfile"]["linuxConfiguration"]["disablePasswordAuthentication"] is True
        nsg = arm.get("Microsoft.Network/networkSecurityGroups", f"rlops-{session}-nsg")
        rules = [(r["properties"]["destinationPortRange"], r["properties"]["sourceAddressPrefix"],
                  r["properties"]["access"]) for r in nsg["properties"]["securityRules"]]
        assert rules == [("22", "127.0.0.1/32", "Allow")], rules
        data_disk = arm.get(DISKS, disk)
        assert data_disk["tags"] == {"project": "azure-e2e", "rlops-session": session,
                                     "rlops-role": "data"}
        assert data_disk["managedBy"].endswith(f"/virtualMachines/{vm}")
        # Its identity may read and write the storage account's blobs, nothing else granted.
        first_principal = principal(arm.get(VMS, vm))
        (role,) = assignments(arm, scope).values()
        assert assignments(arm, scope) == {first_principal: role}
        assert role.endswith("/roleDefinitions/" + BLOB_DATA_CONTRIBUTOR), role
        mount = lab.exec(host, f"findmnt -n -o SOURCE,FSTYPE {MOUNT}").stdout
        assert "ext4" in mount, mount
        # Training, and its supervisor watching this VM's Scheduled Events (the stand-in).
        first = playbooks.wait(
            session, lambda s: s.get("state") == "running"
            and (s.get("last_checkpoint_step") or 0) > 0
            and (s.get("notices") or {}).get("watching") is True, 300,
            "training with a checkpoint, watching Scheduled Events", host=host)
        assert first["notices"]["source"] == "azure-scheduled-events", first["notices"]
        log(f"training on {vm}: step {first['step']}")

        # --- status: the VM running, its cost so far ----------------------------------------
        out = playbooks.run("status").stdout
        assert status_table(out).get((session, vm), {}).get("state") == "running", out[-3000:]
        line = report_line(out, vm)
        assert f"session {session}, eastus): running, ran " in line, line
        assert "at USD 0.096/h" in line, line

        # --- stop: the job stops, the VM is deallocated, both disks stay ---------------------
        out = playbooks.run("stop", rlops_session=session).stdout
        assert f"Azure: VM {vm} deallocated" in out, out[-3000:]
        assert f"Azure: data disk {disk} kept" in out
        assert arm.power_state(vm) == "deallocated"
        assert arm.get(DISKS, disk) is not None and arm.get(DISKS, f"{vm}-os") is not None
        wait_until(lambda: not bridge.plugged, 30, "the disk unplugged from the deallocated VM")
        # The disk left with the VM.
        assert lab.exec(host, f"mountpoint -q {MOUNT}", check=False).returncode != 0
        ran = arm.get(VMS, vm)["tags"]
        assert ran["rlops-started"] == "" and int(ran["rlops-run-seconds"]) > 0, ran
        out = playbooks.run("status").stdout
        assert f"Azure VM {vm} (Standard_D2s_v5, session {session}, eastus): deallocated" in out

        # --- resume: the same VM started, the disk mounted again, training goes on ----------
        before = len(arm.calls())
        out = playbooks.run("resume", rlops_session=session).stdout
        assert arm.power_state(vm) == "running"
        # Started, its tags noted; its NSG set again; the role assignment found, not made again.
        assert [(c["method"], c["path"].rsplit("/", 1)[1]) for c in changes(arm.calls()[before:])
                if c["method"] != "PUT" or "networkSecurityGroups" not in c["path"]] == [
            ("POST", "start"), ("PATCH", vm)], changes(arm.calls()[before:])
        assert assignments(arm, scope) == {first_principal: role}
        resumed = playbooks.wait(session, lambda s: s.get("state") == "running"
                                 and s.get("resumed_from_step") is not None, 240,
                                 "training again after resume", host=host)
        log(f"resumed on {vm} from step {resumed['resumed_from_step']}")
        assert resumed["resumed_from_step"] >= first["last_checkpoint_step"]

        # --- retrieve and evaluate reach the running VM -------------------------------------
        playbooks.run("retrieve", rlops_session=session)
        home = playbooks.results / session
        assert (home / "report" / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        steps = sorted(int(d.name) for d in (home / "checkpoints").iterdir()
                       if (d / "manifest.json").is_file())
        assert steps and steps[-1] >= resumed["resumed_from_step"], steps
        latest = steps[-1]
        assert not (home / "config" / "storage.env").exists()
        out = playbooks.run("evaluate", rlops_session=session, rlops_eval_episodes=2,
                            rlops_eval_video=False).stdout
        evaluation = json.loads((home / "eval" / "eval.json").read_text())
        assert len(evaluation["returns"]) == 2 and evaluation["step"] >= latest, evaluation
        assert "mean return" in out

        # --- eviction: Preempt -> checkpoint published, interrupted, acknowledged -----------
        event = lab.metadata(host, "POST", "/_control/preempt")["EventId"]
        interrupted = playbooks.wait(session, in_state("interrupted"), 120,
                                     "interrupted by the Preempt event", host=host)
        assert "azure scheduled event: Preempt not before " in interrupted["exit_reason"]
        assert event in interrupted["exit_reason"], interrupted["exit_reason"]
        step = interrupted["last_checkpoint_step"]
        assert step > resumed["resumed_from_step"]  # a checkpoint made for the notice
        assert interrupted["last_synced_step"] == step
        assert int(lab.exec(host, f"cat {storage}/LATEST").stdout) == step
        wait_until(lambda: lab.metadata(host, "GET", "/_control/state")["start_requests"], 30,
                   "the Preempt event acknowledged")
        assert lab.metadata(host, "GET", "/_control/state")["start_requests"] == [
            {"StartRequests": [{"EventId": event}]}]
        log(f"Preempt {event}: published step {step}, acknowledged")
        # (The metadata stand-in's own command line names the VM, rlops-<session>.)
        wait_until(lambda: not lab.exec(host, "pgrep -af '[r]lops_runtime|[r]lops-run' || true"
                                        ).stdout.strip(), 60, "the supervisor gone",
                   detail=lambda: lab.exec(host, "pgrep -af '[r]lops'", check=False).stdout)
        # Azure deallocates the VM (eviction policy Deallocate): its disks stay; when it starts
        # again, its metadata holds no event.
        arm.request("POST", "/_fake/evict?vm=" + arm.resource_id(VMS, vm))
        wait_until(lambda: not bridge.plugged, 30, "the disk unplugged from the evicted VM")
        lab.metadata(host, "POST", "/_control/clear")
        assert arm.power_state(vm) == "deallocated"

        # --- resume after the eviction: the same VM, from the published checkpoint ----------
        before = len(arm.calls())
        playbooks.run("resume", rlops_session=session)
        assert power_actions(arm.calls()[before:]) == ["start"]
        again = playbooks.wait(session, lambda s: s.get("state") == "running"
                               and s.get("resumed_from_step") == step, 240,
                               "training again after the eviction", host=host)
        log(f"resumed after the eviction from step {again['resumed_from_step']}")

        # --- stop deleting the VM: the data disk stays; resume makes a new VM on it ----------
        vm_id = arm.get(VMS, vm)["properties"]["vmId"]
        out = playbooks.run("stop", rlops_session=session, rlops_azure_delete_vm=True).stdout
        assert f"Azure: VM {vm} deleted" in out and f"Azure: data disk {disk} kept" in out
        assert arm.get(VMS, vm) is None and arm.get(DISKS, disk)["managedBy"] is None
        wait_until(lambda: not bridge.plugged, 30, "the disk unplugged from the deleted VM")
        assert assignments(arm, scope) == {}  # the identity's role went with it
        arm.set_addresses([lab.address(host)])  # the new VM's public IP: the same lab host
        playbooks.run("resume", rlops_session=session)
        bridge.check()
        new = arm.get(VMS, vm)
        assert new["properties"]["vmId"] != vm_id
        assert principal(new) != first_principal
        assert assignments(arm, scope) == {principal(new): role}
        assert new["properties"]["storageProfile"]["dataDisks"][0]["managedDisk"]["id"] \
            .lower().endswith(f"/disks/{disk}".lower())
        on_new = playbooks.wait(session, lambda s: s.get("state") == "running"
                                and (s.get("resumed_from_step") or 0) > step, 240,
                                "training on the new VM", host=host)
        log(f"new VM {vm}: resumed from step {on_new['resumed_from_step']}")

        # --- stop: deallocated; status counts the runs; nothing of the session deleted -------
        out = playbooks.run("stop", rlops_session=session).stdout
        assert f"Azure: VM {vm} deallocated" in out
        tags = arm.get(VMS, vm)["tags"]
        assert int(tags["rlops-run-seconds"]) > 0 and tags["rlops-started"] == "", tags
        assert arm.get(DISKS, disk)["tags"]["rlops-session"] == session
        deleted = {c["path"].rsplit("/", 1)[1] for c in arm.calls() if c["method"] == "DELETE"}
        assert disk not in deleted and vm in deleted, deleted
    finally:
        bridge.stop()
        log(f"whole flow: {time.monotonic() - started:.0f} s")
    bridge.check()
