"""The Azure provider's checks before anything is created (plugins/module_utils/azure_settings.py
through plugins/filter/azure_settings_problem.py): the first problem, with the message that
names the setting and says why."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from ansible_collections.rlops.fleet.plugins.filter.azure_settings_problem import (
    azure_cost,
    azure_credentials_problem,
    azure_disk_problem,
    azure_identity_problem,
    azure_locate,
    azure_names,
    azure_principal_id,
    azure_request_problem,
    azure_role_assignment,
    azure_settings_problem,
    azure_stopped_tags,
)
from ansible_collections.rlops.fleet.plugins.module_utils import azure_settings as az

REPO = Path(__file__).resolve().parents[4]
with (REPO / "roles" / "session" / "defaults" / "main.yml").open() as _handle:
    DEFAULTS = {k: v for k, v in yaml.safe_load(_handle).items() if k.startswith("rlops_azure_")}
GOOD = {**DEFAULTS, "rlops_azure_ssh_cidr": "203.0.113.7/32"}
SESSION = "cartpole-20261207"


def problem(hosts_listed=(), key_file_exists=True, session=SESSION, **changes):
    return azure_settings_problem({**GOOD, **changes}, session, "trainers", hosts_listed,
                                  key_file_exists)


def test_the_defaults_with_a_cidr_have_no_problem() -> None:
    assert problem() == ""
    assert problem(rlops_azure_vm_size="Standard_D2s_v5", rlops_azure_spot=False) == ""
    assert problem(rlops_azure_max_price=0.35) == ""
    assert problem(rlops_azure_tags={"team": "rl", "cost-centre": "42"}) == ""


@pytest.mark.parametrize(("changes", "expected"), [
    ({"rlops_azure_vm_size": "Standard_NC4as_T4"}, "rlops_azure_vm_size Standard_NC4as_T4 is not"),
    ({"rlops_azure_vm_size": ""}, "rlops_azure_vm_size  is not a VM size"),
    ({"rlops_azure_location": "mars-east"}, "rlops_azure_location mars-east is not an Azure"),
    ({"rlops_azure_location": "East US"}, "rlops_azure_location East US is not an Azure region"),
    ({"rlops_azure_location": ""}, "rlops_azure_location is empty"),
    ({"rlops_azure_max_price": 0}, "rlops_azure_max_price 0 must be -1"),
    ({"rlops_azure_max_price": -2}, "rlops_azure_max_price -2 must be -1"),
    ({"rlops_azure_max_price": "cheap"}, "rlops_azure_max_price cheap must be -1"),
    ({"rlops_azure_max_price": 0.5, "rlops_azure_spot": False}, "is for spot VMs only"),
    ({"rlops_azure_spot": "yes"}, "rlops_azure_spot must be true or false"),
    ({"rlops_azure_disk_type": "gp3"}, "must be managed disk types"),
    ({"rlops_azure_disk_size_gb": 0}, "rlops_azure_disk_size_gb 0 must be between"),
    ({"rlops_azure_disk_lun": 64}, "rlops_azure_disk_lun 64 must be a LUN"),
    ({"rlops_azure_image": {"publisher": "Canonical"}}, "rlops_azure_image must be a mapping"),
    ({"rlops_azure_admin_username": "root"}, "rlops_azure_admin_username root"),
    ({"rlops_azure_ssh_cidr": ""}, "rlops_azure_ssh_cidr '' is not an IPv4 CIDR"),
    ({"rlops_azure_ssh_cidr": "0.0.0.0"}, "rlops_azure_ssh_cidr '0.0.0.0' is not"),
    ({"rlops_azure_connect": {"host": "x"}}, "rlops_azure_connect knows only"),
    ({"rlops_azure_auth_source": "token"}, "rlops_azure_auth_source must be one of"),
    ({"rlops_azure_cloud_environment": "https://127.0.0.1:8443"},
     "cannot use a metadata endpoint URL"),
    ({"rlops_azure_environment": {"HTTPS_PROXY": 1}}, "rlops_azure_environment must be"),
    ({"rlops_azure_price_per_hour": "-3"}, "rlops_azure_price_per_hour -3 must be"),
    ({"rlops_azure_delete_disk": "no"}, "rlops_azure_delete_vm and rlops_azure_delete_disk"),
    ({"rlops_azure_tags": ["a"]}, "rlops_azure_tags must be a mapping"),
    ({"rlops_azure_tags": {"a/b": "x"}}, "rlops_azure_tags name 'a/b' is not an Azure tag name"),
    ({"rlops_azure_tags": {"microsoft.x": "x"}}, "uses a prefix Azure reserves"),
    ({"rlops_azure_tags": {"owner": "x" * 257}}, "longer than Azure's 256 characters"),
    ({"rlops_azure_tags": {"rlops-session": "other"}}, "may not set rlops-session"),
    ({"rlops_azure_tags": {f"t{i}": "v" for i in range(49)}}, "Azure allows 50 per resource"),
    ({"rlops_azure_resource_group": "rg."}, "the resource group name rg. breaks"),
    ({"rlops_azure_resource_group": "r" * 91}, "is 91 characters long (Azure allows 90)"),
    ({"rlops_azure_disk_name": "-data"}, "the managed disk name -data breaks"),
    ({"rlops_azure_virtual_network": "v"}, ""),
])
def test_each_problem_names_the_setting(changes, expected) -> None:
    if expected:
        assert expected in problem(**changes)
    else:
        assert problem(**changes) == ""


def test_a_listed_host_and_a_missing_key_file_are_refused() -> None:
    assert "already lists hosts there (gpu1)" in problem(hosts_listed=["gpu1"])
    assert "rlops_azure_public_key_file" in problem(key_file_exists=False)


def test_a_session_id_that_makes_a_bad_vm_name_is_refused() -> None:
    assert "session a_b: the virtual machine name rlops-a_b breaks" in problem(session="a_b")
    assert "is 70 characters long (Azure allows 64)" in problem(session="s" * 64)


def test_names_are_the_same_for_every_entry_point() -> None:
    names = azure_names(SESSION, GOOD)
    assert names == {
        "resource_group": "rlops", "virtual_network": "rlops-vnet", "subnet": "rlops-sessions",
        "network_security_group": f"rlops-{SESSION}-nsg",
        "network_interface": f"rlops-{SESSION}-nic", "public_ip_address": f"rlops-{SESSION}-ip",
        "managed_disk": f"rlops-{SESSION}-data", "virtual_machine": f"rlops-{SESSION}"}
    assert azure_names(SESSION, {"rlops_azure_disk_name": "mine"})["managed_disk"] == "mine"


SP = {"AZURE_SUBSCRIPTION_ID": "s", "AZURE_CLIENT_ID": "c", "AZURE_SECRET": "x",
      "AZURE_TENANT": "t"}


def test_credentials_of_a_service_principal_a_profile_or_the_cli_are_enough() -> None:
    assert azure_credentials_problem(SP) == ""
    assert azure_credentials_problem({}, profile_has_subscription=True) == ""
    assert azure_credentials_problem({}, auth_source="cli") == ""
    assert azure_credentials_problem({}, auth_source="msi") == ""
    assert azure_credentials_problem({"AZURE_SUBSCRIPTION_ID": "s", "AZURE_AD_USER": "u",
                                      "AZURE_PASSWORD": "p"}) == ""


def test_missing_credentials_are_one_message_naming_what_is_missing() -> None:
    message = azure_credentials_problem({"AZURE_CLIENT_ID": "c", "AZURE_SECRET": ""})
    assert message.startswith("no Azure credentials: the environment lacks AZURE_SUBSCRIPTION_ID,"
                              " AZURE_SECRET, AZURE_TENANT")
    assert "~/.azure/credentials has no profile" in message
    assert "only the environment is asked" in azure_credentials_problem(
        {}, profile_has_subscription=True, auth_source="env")
    assert "credential_file" in azure_credentials_problem(SP, auth_source="credential_file")


DISK = {"name": "rlops-s-data", "location": "eastus", "managed_by": "", "tags": {
    "rlops-session": "s"}}


def test_a_disk_of_the_session_in_its_region_and_free_or_its_own_is_taken() -> None:
    assert azure_disk_problem([], "eastus", "rlops-s", "s") == ""
    assert azure_disk_problem([DISK], "eastus", "rlops-s", "s") == ""
    own = {**DISK, "managed_by": "/subscriptions/x/resourceGroups/rlops/providers/"
                                 "Microsoft.Compute/virtualMachines/rlops-s"}
    assert azure_disk_problem([own], "eastus", "rlops-s", "s") == ""


def test_a_disk_elsewhere_on_another_vm_or_of_another_session_is_refused() -> None:
    assert "is in westeurope, the VM would be in eastus" in azure_disk_problem(
        [{**DISK, "location": "westeurope"}], "eastus", "rlops-s", "s")
    other = {**DISK, "managed_by": "/subscriptions/x/resourceGroups/rlops/providers/"
                                   "Microsoft.Compute/virtualMachines/build-box"}
    assert "is attached to the VM build-box, not to this session's rlops-s" in azure_disk_problem(
        [other], "eastus", "rlops-s", "s")
    assert "belongs to session t" in azure_disk_problem(
        [{**DISK, "tags": {"rlops-session": "t"}}], "eastus", "rlops-s", "s")


def test_cost_is_the_table_price_capped_by_max_price_or_the_given_price() -> None:
    assert azure_cost(GOOD, 3600) == {"usd": 0.526, "usd_per_hour": 0.526,
                                      "source": az.PRICE_SOURCE}
    assert azure_cost({**GOOD, "rlops_azure_max_price": 0.2}, 1800)["usd"] == 0.1
    assert azure_cost({**GOOD, "rlops_azure_price_per_hour": "1.5"}, 60)["usd"] == 0.025
    assert azure_cost(GOOD, -5)["usd"] == 0.0


def test_every_size_in_the_table_has_a_price_and_the_regions_are_lower_case() -> None:
    assert all(price > 0 and cpus > 0 for cpus, _gpus, price in az.VM_SIZES.values())
    assert all(region == region.lower() and " " not in region for region in az.AZURE_REGIONS)


VM = {"name": "rlops-s", "power_state": "running", "vm_size": "Standard_NC4as_T4_v3",
      "location": "eastus", "tags": {"rlops-session": "s", "rlops-started": "1000",
                                     "rlops-run-seconds": "3600"}}
DATA = {"name": "rlops-s-data", "disk_size_gb": 64, "managed_by": "/x/virtualMachines/rlops-s",
        "tags": {"rlops-session": "s", "rlops-role": "data"}}


def found(vms=(VM,), disks=(DATA,)):
    return {"vms": list(vms), "disks": list(disks), "addresses": {"rlops-s-ip": "10.88.0.5"}}


def locate(purpose="status", session="s", now=1000 + 1800, **kw):
    return azure_locate(found(**kw), session, purpose, GOOD, now, "trainers", [])


def test_locate_adds_the_running_vm_at_its_address_and_reports_its_cost() -> None:
    decided = locate()
    assert [(h["name"], h["address"]) for h in decided["hosts"]] == [("rlops-s", "10.88.0.5")]
    assert decided["session_provided"] and not decided["problem"]
    # 1 h from earlier runs + 0.5 h of this one at 0.526 USD/h
    assert decided["report"][0].startswith(
        "Azure VM rlops-s (Standard_NC4as_T4_v3, session s, eastus): running, ran 1.50 h, about"
        " USD 0.7890 so far at USD 0.526/h")
    assert decided["report"][1] == ("Azure data disk rlops-s-data (64 GiB, session s): attached"
                                    " to rlops-s; billed while it exists")


def test_locate_a_deallocated_vm_counts_only_its_past_runs_and_is_not_added() -> None:
    vm = {**VM, "power_state": "deallocated"}
    decided = locate(vms=[vm])
    assert decided["hosts"] == [] and decided["session_provided"]
    assert "deallocated, ran 1.00 h, about USD 0.5260" in decided["report"][0]
    assert "no running VM to evaluate on" in locate("evaluate", vms=[vm])["problem"]
    assert locate("retrieve", vms=[vm])["retrieve_from_storage"] is True


def test_locate_an_unknown_session_names_the_sessions_azure_holds() -> None:
    assert locate(session="t")["problem"] == (
        "Azure holds no VM or data disk of session t in resource group rlops (sessions there: s)")
    assert locate(session="")["problem"] == ""


def test_a_deallocated_vm_keeps_its_run_in_its_tags() -> None:
    tags = azure_stopped_tags(VM["tags"], 1000 + 600)
    assert tags == {"rlops-session": "s", "rlops-started": "", "rlops-run-seconds": "4200"}
    assert az.run_seconds(tags, False, 99999) == 4200


def test_new_refuses_a_session_with_a_vm_or_its_own_disk_resume_one_without_a_disk() -> None:
    own = {**DATA, "location": "eastus", "managed_by": ""}
    assert "session s already has Azure resources (VM rlops-s, data disk none" in \
        azure_request_problem("new", "s", {"name": "rlops-s"}, {}, GOOD, "eastus")
    assert "data disk rlops-s-data in resource group rlops" in azure_request_problem(
        "new", "s", {}, own, GOOD, "eastus")
    team = {"name": "team", "location": "eastus", "managed_by": "", "tags": {}}
    assert azure_request_problem("new", "s", {}, team, GOOD, "eastus") == ""
    assert azure_request_problem("new", "s", {}, {}, GOOD, "eastus") == ""
    assert "session s has no data disk rlops-s-data in resource group rlops" in \
        azure_request_problem("resume", "s", {"name": "rlops-s"}, {}, GOOD, "eastus")
    assert azure_request_problem("resume", "s", {}, own, GOOD, "eastus") == ""
    assert "is in westeurope" in azure_request_problem(
        "resume", "s", {}, {**own, "location": "westeurope"}, GOOD, "eastus")


SUB = "00000000-0000-4000-8000-00000000a2e1"
ACCOUNT_ID = (f"/subscriptions/{SUB}/resourceGroups/rlops-data/providers/Microsoft.Storage/"
              "storageAccounts/rlopsckpt")


@pytest.mark.parametrize("scope", [
    "", ACCOUNT_ID, ACCOUNT_ID + "/blobServices/default/containers/sessions",
    ACCOUNT_ID.lower(),  # ARM ids are compared without case
])
def test_an_identity_with_a_storage_scope_or_none_is_taken(scope) -> None:
    assert problem(rlops_azure_identity=True, rlops_azure_identity_scope=scope) == ""


@pytest.mark.parametrize(("changes", "expected"), [
    ({"rlops_azure_identity": "yes"}, "rlops_azure_identity must be true or false"),
    ({"rlops_azure_identity_scope": ACCOUNT_ID},
     "rlops_azure_identity_scope gives the VM's managed identity a role, but the VM gets none"),
    ({"rlops_azure_identity": True, "rlops_azure_identity_scope": "rlopsckpt"},
     "rlops_azure_identity_scope rlopsckpt is not a storage account's resource id"),
    ({"rlops_azure_identity": True,
      "rlops_azure_identity_scope": f"/subscriptions/{SUB}/resourceGroups/rlops-data"},
     "is not a storage account's resource id"),
    ({"rlops_azure_identity": True, "rlops_azure_identity_scope": ACCOUNT_ID.replace(
        "rlopsckpt", "Bad_Account")}, "is not a storage account's resource id"),
    ({"rlops_azure_identity": True, "rlops_azure_identity_scope":
        ACCOUNT_ID + "/blobServices/default/containers/a"}, "is not a storage account's"),
    ({"rlops_azure_identity": True, "rlops_azure_identity_scope": ACCOUNT_ID.replace(
        SUB, "my-subscription")}, "is not a storage account's resource id"),
])
def test_identity_settings_that_cannot_work_are_refused(changes, expected) -> None:
    assert expected in problem(**changes)


def test_the_role_assignment_is_blob_data_contributor_named_by_what_it_grants() -> None:
    vm = {"name": "rlops-s", "identity": {"type": "SystemAssigned", "principal_id": "p-1",
                                          "tenant_id": "t"}}
    made = azure_role_assignment(ACCOUNT_ID, vm)
    assert made["scope"] == ACCOUNT_ID and made["assignee_object_id"] == "p-1"
    assert made["role_definition_id"] == (
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe")
    # The same grant has the same name (a second provision finds it); another identity or
    # scope, another name. ARM wants a GUID.
    assert made["name"] == azure_role_assignment(ACCOUNT_ID + "/", vm)["name"]
    other = {"identity": {"type": "SystemAssigned", "principal_id": "p-2"}}
    assert azure_role_assignment(ACCOUNT_ID, other)["name"] != made["name"]
    assert azure_role_assignment(ACCOUNT_ID + "/blobServices/default/containers/sessions",
                                 vm)["name"] != made["name"]
    assert str(uuid.UUID(made["name"])) == made["name"]
    with pytest.raises(ValueError, match="a storage scope and a principal id are needed"):
        azure_role_assignment(ACCOUNT_ID, {"name": "rlops-s"})


def test_a_vm_identity_is_read_from_either_spelling_and_only_when_system_assigned() -> None:
    assert azure_principal_id({"identity": {"type": "SystemAssigned", "principal_id": "a"}}) == "a"
    assert azure_principal_id({"identity": {"type": "SystemAssigned, UserAssigned",
                                            "principalId": "b"}}) == "b"
    assert azure_principal_id({"identity": {"type": "UserAssigned"}}) == ""
    assert azure_principal_id({"identity": None}) == azure_principal_id({}) == ""


def test_an_existing_vm_without_the_identity_asked_for_is_refused_before_it_starts() -> None:
    bare = {"name": "rlops-s", "identity": None}
    assert "the session's VM rlops-s was made without a managed identity" in \
        azure_identity_problem(bare, True)
    assert azure_identity_problem(bare, False) == ""
    assert azure_identity_problem({}, True) == ""  # no VM yet: it is made with one
    assert azure_identity_problem(
        {"name": "rlops-s", "identity": {"type": "SystemAssigned", "principal_id": "p"}},
        True) == ""
