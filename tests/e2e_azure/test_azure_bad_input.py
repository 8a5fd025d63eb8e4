"""Bad input on the Azure path is refused with one message, before any call reaches Azure
(the fake records every call: none, or only reads when the refusal needs what Azure holds)."""

from __future__ import annotations

import pytest
from azlab import CREDENTIALS, GROUP, LOCATION, AzurePlaybooks

SESSION = "az-bad-input"


def playbooks(arm, tmp_path, credentials=None):
    key = tmp_path / "id.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e"
                   "2e2e2e2e2e e2e\n")
    return AzurePlaybooks(arm, tmp_path, {"rlops_azure_public_key_file": str(key),
                                          "trainer_env_id": "CartPole-v1"},
                          credentials=credentials)


@pytest.mark.parametrize(("setting", "message"), [
    ({"rlops_azure_vm_size": "Standard_NC4as_T4"},
     "rlops_azure_vm_size Standard_NC4as_T4 is not a VM size the provider knows"),
    ({"rlops_azure_location": "mars-east"}, "rlops_azure_location mars-east is not an Azure"),
    ({"rlops_azure_max_price": 0}, "rlops_azure_max_price 0 must be -1"),
    ({"rlops_azure_tags": {"a/b": "x"}}, "rlops_azure_tags name 'a/b' is not an Azure tag name"),
    ({"rlops_azure_resource_group": "bad."}, "the resource group name bad. breaks Azure's naming"),
    ({"rlops_azure_ssh_cidr": ""}, "rlops_azure_ssh_cidr '' is not an IPv4 CIDR"),
])
def test_bad_settings_reach_no_azure_call(arm, tmp_path, setting, message):
    out = playbooks(arm, tmp_path).run("train_new", ok=False, rlops_session=SESSION, **setting)
    assert message in out.stdout, out.stdout[-3000:]
    assert arm.calls() == []


def test_missing_credentials_are_one_message_before_any_call(arm, tmp_path):
    partial = {k: v for k, v in CREDENTIALS.items() if k != "AZURE_SECRET"}
    out = playbooks(arm, tmp_path, credentials=partial).run(
        "train_new", ok=False, rlops_session=SESSION)
    assert "no Azure credentials: the environment lacks AZURE_SECRET" in out.stdout, \
        out.stdout[-3000:]
    assert arm.calls() == []


def _seed_disk(arm, name, location, managed_by=None):
    arm.request("PUT", arm.resource_id("resourceGroups", GROUP), {"location": LOCATION})
    body = {"location": location, "properties": {"diskSizeGB": 4}}
    if managed_by:
        body["managedBy"] = arm.resource_id("Microsoft.Compute/virtualMachines", managed_by)
    arm.put("Microsoft.Compute/disks", name, body)
    return len(arm.calls())


def _changes(calls):
    return [c for c in calls if c["method"] in ("PUT", "DELETE", "PATCH")
            or (c["method"] == "POST" and c["path"].startswith("/subscriptions/"))]


@pytest.mark.parametrize(("location", "managed_by", "message"), [
    ("westeurope", None, "the data disk team-disk is in westeurope, the VM would be in eastus"),
    (LOCATION, "build-box", "the data disk team-disk is attached to the VM build-box, not to"
                            f" this session's rlops-{SESSION}"),
])
def test_a_disk_elsewhere_or_on_another_vm_is_refused_after_reads_only(
        arm, tmp_path, location, managed_by, message):
    seeded = _seed_disk(arm, "team-disk", location, managed_by)
    out = playbooks(arm, tmp_path).run("train_new", ok=False, rlops_session=SESSION,
                                       rlops_azure_disk_name="team-disk")
    assert message in out.stdout, out.stdout[-3000:]
    after = arm.calls()[seeded:]
    assert after and _changes(after) == [], after
