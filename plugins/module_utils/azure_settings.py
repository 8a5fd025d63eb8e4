# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""The Azure provider's decisions without I/O: the form of the rlops_azure_* settings, the
names and tags of a session's resources by Azure's rules, a data disk the session may use,
the credentials the modules would find, and the cost so far. The provider's tasks
(roles/provider_azure) ask these through the filters of plugins/filter/azure_provider.py
before any call reaches Azure."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import uuid

# Public regions' names as the Resource Manager spells them (location of a resource).
AZURE_REGIONS = (
    "australiacentral", "australiaeast", "australiasoutheast", "austriaeast", "belgiumcentral",
    "brazilsouth", "brazilsoutheast", "canadacentral", "canadaeast", "centralindia",
    "centralus", "chilecentral", "eastasia", "eastus", "eastus2", "francecentral",
    "francesouth", "germanynorth", "germanywestcentral", "indonesiacentral", "israelcentral",
    "italynorth", "japaneast", "japanwest", "koreacentral", "koreasouth", "malaysiawest",
    "mexicocentral", "newzealandnorth", "northcentralus", "northeurope", "norwayeast",
    "norwaywest", "polandcentral", "qatarcentral", "southafricanorth", "southafricawest",
    "southcentralus", "southindia", "southeastasia", "spaincentral", "swedencentral",
    "switzerlandnorth", "switzerlandwest", "uaecentral", "uaenorth", "uksouth", "ukwest",
    "westcentralus", "westeurope", "westindia", "westus", "westus2", "westus3",
)

# The VM sizes the provider knows: (vCPUs, GPUs, USD per hour). The price is the Linux
# pay-as-you-go list price in East US (PRICE_SOURCE); a spot VM costs at most this (max
# price -1 caps it at the pay-as-you-go price), and other regions differ: set
# rlops_azure_price_per_hour for the exact figure.
VM_SIZES = {
    # N-series: T4 (NCasT4_v3), V100 (NCv3), A100 (NC A100 v4), A10 (NVadsA10 v5)
    "Standard_NC4as_T4_v3": (4, 1, 0.526),
    "Standard_NC8as_T4_v3": (8, 1, 0.752),
    "Standard_NC16as_T4_v3": (16, 1, 1.204),
    "Standard_NC64as_T4_v3": (64, 4, 4.352),
    "Standard_NC6s_v3": (6, 1, 3.06),
    "Standard_NC12s_v3": (12, 2, 6.12),
    "Standard_NC24s_v3": (24, 4, 12.24),
    "Standard_NC24ads_A100_v4": (24, 1, 3.673),
    "Standard_NC48ads_A100_v4": (48, 2, 7.346),
    "Standard_NC96ads_A100_v4": (96, 4, 14.692),
    "Standard_NV6ads_A10_v5": (6, 0, 0.454),
    "Standard_NV12ads_A10_v5": (12, 0, 0.908),
    "Standard_NV36ads_A10_v5": (36, 1, 3.20),
    # CPU sizes (rollouts, tests)
    "Standard_B2s": (2, 0, 0.0416),
    "Standard_D2s_v5": (2, 0, 0.096),
    "Standard_D4s_v5": (4, 0, 0.192),
    "Standard_D2as_v5": (2, 0, 0.086),
    "Standard_F2s_v2": (2, 0, 0.0846),
}
PRICE_SOURCE = ("Azure pay-as-you-go Linux list prices, East US, USD/h, as published on "
                "azure.microsoft.com/pricing/details/virtual-machines/linux (table of 2025-11; "
                "not fetched at run time)")

DISK_TYPES = ("Standard_LRS", "StandardSSD_LRS", "StandardSSD_ZRS", "Premium_LRS", "Premium_ZRS")
AUTH_SOURCES = ("auto", "env", "credential_file", "cli", "msi")
# The clouds azure.azcollection 3.12.0 finds by name (azure-cli-core's hard-coded ones). A
# metadata endpoint URL fails there: azure_rm_common calls
# azure.cli.core.cloud.get_cloud_from_metadata_endpoint, which its pinned azure-cli-core 2.75.0
# no longer has.
CLOUDS = ("AzureCloud", "AzureChinaCloud", "AzureUSGovernment", "AzureGermanCloud")
CONNECT_KEYS = ("ansible_host", "ansible_port", "ansible_user", "ansible_ssh_private_key_file",
                "ansible_ssh_common_args", "ansible_connection")
SESSION_TAG = "rlops-session"
ROLE_TAG = "rlops-role"

_CIDR = re.compile(r"^([0-9]{1,3}[.]){3}[0-9]{1,3}/[0-9]{1,2}$")
# Azure's naming rules (learn.microsoft.com, "Naming rules and restrictions for Azure
# resources"), one pattern and length per kind of resource the provider makes.
NAME_RULES = {
    # 1-90: alphanumerics, underscores, hyphens, periods, parentheses; not ending in a period
    "resource group": (90, re.compile(r"^[-\w.()]*[-\w()]$")),
    # 2-64: alphanumerics, underscores, periods, hyphens; starts alnum, ends alnum or _
    "virtual network": (64, re.compile(r"^[A-Za-z0-9]([-\w.]*[\w])?$")),
    "subnet": (80, re.compile(r"^[A-Za-z0-9]([-\w.]*[\w])?$")),
    "network security group": (80, re.compile(r"^[A-Za-z0-9]([-\w.]*[\w])?$")),
    "network interface": (80, re.compile(r"^[A-Za-z0-9]([-\w.]*[\w])?$")),
    "public IP address": (80, re.compile(r"^[A-Za-z0-9]([-\w.]*[\w])?$")),
    "managed disk": (80, re.compile(r"^[A-Za-z0-9]([-\w.]*[\w])?$")),
    # Linux VM: 1-64, no underscore at the start, no period or hyphen at the end, none of
    # \/"'[]:|<>+=;,?*@&# and no whitespace (its computer name is the same, so ASCII letters,
    # digits and hyphens are the safe set that every image accepts as a host name)
    "virtual machine": (64, re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$")),
}
_TAG_NAME_FORBIDDEN = set('<>%&\\?/')

# The built-in role a VM's identity needs to read and write blobs (Azure's "Azure built-in
# roles": Storage Blob Data Contributor), and where it may be assigned: a storage account,
# or one of its containers.
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
_GUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_STORAGE_SCOPE = re.compile(
    r"^/subscriptions/(?P<subscription>%s)/resourceGroups/(?P<group>[-\w.()]{1,90})"
    r"/providers/Microsoft\.Storage/storageAccounts/(?P<account>[a-z0-9]{3,24})"
    r"(/blobServices/default/containers/(?P<container>[a-z0-9](-?[a-z0-9]){2,62}))?$"
    % _GUID, re.IGNORECASE)
# Role assignments of the provider are named by this namespace and what they grant, so that
# provision finds its own again (a name must be a GUID).
_ASSIGNMENT_NAMESPACE = uuid.UUID("5d0f6a52-6c1e-4b8e-9a51-726c6f707321")


def _text(value):
    return "" if value is None else str(value)


def name_problem(kind, name):
    """Why `name` cannot name a resource of `kind` (a NAME_RULES key), or ''."""
    limit, pattern = NAME_RULES[kind]
    if not name:
        return "the %s name is empty" % kind
    if len(name) > limit:
        return "the %s name %s is %d characters long (Azure allows %d)" % (
            kind, name, len(name), limit)
    if not pattern.match(name):
        return ("the %s name %s breaks Azure's naming rules (letters, digits, hyphens, periods"
                "%s; starting with a letter or digit, not ending in a period or hyphen)"
                % (kind, name, "" if kind == "virtual machine" else ", underscores"))
    return ""


def tags_problem(tags, reserved=(SESSION_TAG, ROLE_TAG)):
    """Why `tags` (rlops_azure_tags) cannot go on Azure resources, or ''."""
    if not isinstance(tags, dict):
        return "rlops_azure_tags must be a mapping of tag names to values"
    if len(tags) + len(reserved) > 50:
        return ("rlops_azure_tags has %d tags: Azure allows 50 per resource, and the provider "
                "adds %d (%s)" % (len(tags), len(reserved), ", ".join(reserved)))
    for key, value in tags.items():
        key = _text(key)
        if key in reserved:
            return "rlops_azure_tags may not set %s: the provider sets it" % key
        if not key or len(key) > 512 or _TAG_NAME_FORBIDDEN & set(key):
            return ("rlops_azure_tags name '%s' is not an Azure tag name (1-512 characters, "
                    "none of < > %% & \\ ? /)" % key)
        if key.lower().startswith(("azure", "microsoft", "windows")):
            return "rlops_azure_tags name '%s' uses a prefix Azure reserves" % key
        if len(_text(value)) > 256:
            return "rlops_azure_tags value of %s is longer than Azure's 256 characters" % key
    return ""


def resource_names(session, settings=None):
    """The names of a session's resources (the same for every entry point)."""
    settings = settings or {}
    disk = _text(settings.get("rlops_azure_disk_name")) or "rlops-%s-data" % session
    return {
        "resource group": _text(settings.get("rlops_azure_resource_group")) or "rlops",
        "virtual network": _text(settings.get("rlops_azure_virtual_network")) or "rlops-vnet",
        "subnet": "rlops-sessions",
        "network security group": "rlops-%s-nsg" % session,
        "network interface": "rlops-%s-nic" % session,
        "public IP address": "rlops-%s-ip" % session,
        "managed disk": disk,
        "virtual machine": "rlops-%s" % session,
    }


def as_number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def settings_problem(settings, session, hosts_group, hosts_listed=(), key_file_exists=False):
    """The first problem of `settings` (rlops_azure_* name -> value) for `session`, or ''."""
    def text(name):
        return _text(settings.get("rlops_azure_" + name)).strip()

    def value(name):
        return settings.get("rlops_azure_" + name)

    size = text("vm_size")
    location = text("location")
    max_price = as_number(value("max_price"))
    price = text("price_per_hour")
    # rlops_azure_connect may refer to the VM (not known yet): only its keys are read.
    connect = value("connect") if isinstance(value("connect"), dict) else {}
    unknown = sorted(key for key in connect if key not in CONNECT_KEYS)
    checks = [
        (not hosts_listed,
         "rlops_provider azure adds the session's VM to the group %s, but the inventory already"
         " lists hosts there (%s): use an inventory whose %s group is empty (inventories/azure)"
         % (hosts_group, ", ".join(hosts_listed), hosts_group)),
        (location, "rlops_azure_location is empty: name the region, e.g. eastus"),
        (location in AZURE_REGIONS,
         "rlops_azure_location %s is not an Azure region (e.g. eastus, westeurope, "
         "southcentralus; `az account list-locations -o table` lists them)" % location),
        (size in VM_SIZES,
         "rlops_azure_vm_size %s is not a VM size the provider knows (%s)"
         % (size, ", ".join(sorted(VM_SIZES)))),
        (value("spot") in (True, False), "rlops_azure_spot must be true or false"),
        (max_price is not None and (max_price == -1 or max_price > 0),
         "rlops_azure_max_price %s must be -1 (up to the pay-as-you-go price, never evicted for"
         " price) or a price above 0 in USD per hour" % text("max_price")),
        (max_price == -1 or value("spot") is True,
         "rlops_azure_max_price is for spot VMs only (rlops_azure_spot: true)"),
        (not price or (as_number(price) or 0) > 0,
         "rlops_azure_price_per_hour %s must be a price above 0 in USD per hour, or empty"
         % price),
        (text("os_disk_type") in DISK_TYPES and text("disk_type") in DISK_TYPES,
         "rlops_azure_os_disk_type and rlops_azure_disk_type must be managed disk types (%s);"
         " got %s and %s" % (", ".join(DISK_TYPES), text("os_disk_type"), text("disk_type"))),
        ((as_number(value("disk_size_gb")) or 0) >= 1
         and (as_number(value("disk_size_gb")) or 0) <= 32767,
         "rlops_azure_disk_size_gb %s must be between 1 and 32767" % text("disk_size_gb")),
        (_text(value("disk_lun")).isdigit() and 0 <= int(_text(value("disk_lun"))) <= 63,
         "rlops_azure_disk_lun %s must be a LUN from 0 to 63" % text("disk_lun")),
        (isinstance(value("image"), dict)
         and all(value("image").get(k) for k in ("publisher", "offer", "sku")),
         "rlops_azure_image must be a mapping with publisher, offer, sku (and version)"),
        (re.match(r"^[a-z_][a-z0-9_-]{0,31}$", text("admin_username"))
         and text("admin_username") not in ("root", "admin", "administrator", "adm", "guest"),
         "rlops_azure_admin_username %s is not a Linux user name Azure accepts (lower case,"
         " not root/admin)" % text("admin_username")),
        (key_file_exists, "rlops_azure_public_key_file %s is not a file on the controller (the"
         " VM accepts only this SSH key; password login stays off)" % text("public_key_file")),
        (_CIDR.match(text("ssh_cidr")),
         "rlops_azure_ssh_cidr '%s' is not an IPv4 CIDR: set it to the controller's address,"
         " e.g. 203.0.113.7/32 (the NSG lets SSH in from there only)" % text("ssh_cidr")),
        (isinstance(value("connect"), (dict, type(None))), "rlops_azure_connect must be a mapping"),
        (not unknown, "rlops_azure_connect knows only %s; got %s"
         % (", ".join(CONNECT_KEYS), ", ".join(unknown))),
        (text("cloud_environment") in CLOUDS,
         "rlops_azure_cloud_environment %s is not one of %s: azure.azcollection 3.12.0 cannot"
         " use a metadata endpoint URL (it calls get_cloud_from_metadata_endpoint, which its"
         " pinned azure-cli-core 2.75.0 no longer has)" % (text("cloud_environment"),
                                                           ", ".join(CLOUDS))),
        (isinstance(value("environment"), dict)
         and all(isinstance(v, str) for v in value("environment").values()),
         "rlops_azure_environment must be a mapping of variable names to strings"),
        (text("auth_source") in AUTH_SOURCES, "rlops_azure_auth_source must be one of %s"
         % ", ".join(AUTH_SOURCES)),
        ((as_number(value("ssh_timeout")) or 0) > 0, "rlops_azure_ssh_timeout must be positive"),
        (value("delete_vm") in (True, False) and value("delete_disk") in (True, False),
         "rlops_azure_delete_vm and rlops_azure_delete_disk must be true or false"),
        (value("identity") in (True, False, None), "rlops_azure_identity must be true or false"),
        (not text("identity_scope") or _STORAGE_SCOPE.match(text("identity_scope").rstrip("/")),
         "rlops_azure_identity_scope %s is not a storage account's resource id"
         " (/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Storage/storageAccounts"
         "/<account>, optionally /blobServices/default/containers/<container>): the role"
         " Storage Blob Data Contributor is assigned there" % text("identity_scope")),
        (not text("identity_scope") or value("identity") is True,
         "rlops_azure_identity_scope gives the VM's managed identity a role, but the VM gets none:"
         " set rlops_azure_identity: true"),
    ]
    problem = next((message for ok, message in checks if not ok), "")
    if problem:
        return problem
    problem = tags_problem(value("tags"))
    if problem:
        return problem
    for kind, name in resource_names(session, settings).items():
        problem = name_problem(kind, name)
        if problem:
            return "session %s: %s" % (session, problem)
    return ""


def credentials_problem(env, profile_has_subscription=False, auth_source="auto",
                        cloud_environment="AzureCloud"):
    """Why the azure.azcollection modules would find no credentials, or ''.

    `env` holds the controller's AZURE_* variables that are set (name -> value); a
    credentials file counts when its profile names a subscription. The modules try, in order,
    their own parameters (not used here), the environment, ~/.azure/credentials, then the
    Azure CLI; `cli` and `msi` are taken as given (their tokens come from elsewhere)."""
    if auth_source in ("cli", "msi"):
        return ""
    env = dict((k, v) for k, v in (env or {}).items() if v)
    service_principal = all(k in env for k in ("AZURE_CLIENT_ID", "AZURE_SECRET", "AZURE_TENANT"))
    user = all(k in env for k in ("AZURE_AD_USER", "AZURE_PASSWORD"))
    env_ok = "AZURE_SUBSCRIPTION_ID" in env and (service_principal or user)
    if auth_source == "env" or (auth_source == "auto" and not profile_has_subscription):
        if env_ok:
            return ""
        missing = [k for k in ("AZURE_SUBSCRIPTION_ID", "AZURE_CLIENT_ID", "AZURE_SECRET",
                               "AZURE_TENANT") if k not in env]
        return ("no Azure credentials: the environment lacks %s (a service principal), and %s"
                " (rlops_azure_auth_source %s; docs/azure.md, Credentials)"
                % (", ".join(missing),
                   "~/.azure/credentials has no profile with a subscription_id"
                   if auth_source == "auto" else "only the environment is asked",
                   auth_source))
    if auth_source == "credential_file" and not profile_has_subscription:
        return ("no Azure credentials: ~/.azure/credentials has no profile with a"
                " subscription_id (rlops_azure_auth_source credential_file)")
    if not _text(cloud_environment):
        return "rlops_azure_cloud_environment is empty (AzureCloud, or a metadata endpoint URL)"
    return ""


def disk_problem(disk, location, vm_name, session):
    """Why the managed disk record `disk` (azure_rm_manageddisk_info's) cannot be the
    session's data disk on VM `vm_name` in `location`, or ''. None: no such disk (made)."""
    if not disk:
        return ""
    name = disk.get("name", "?")
    where = _text(disk.get("location")).replace(" ", "").lower()
    if where and where != location:
        return ("the data disk %s is in %s, the VM would be in %s: a VM attaches only disks of"
                " its own region (set rlops_azure_location: %s, or copy the disk)"
                % (name, where, location, where))
    owner = _text(disk.get("managed_by")).rstrip("/").rsplit("/", 1)[-1]
    if owner and owner != vm_name:
        return ("the data disk %s is attached to the VM %s, not to this session's %s: detach it"
                " there first (a disk has one owner)" % (name, owner, vm_name))
    tagged = (disk.get("tags") or {}).get(SESSION_TAG)
    if tagged and tagged != session:
        return ("the data disk %s belongs to session %s (tag %s), not to %s"
                % (name, tagged, SESSION_TAG, session))
    return ""


def hourly_price(settings):
    """(USD per hour, where it comes from) for the session's VM: the setting, else the table
    (capped by a spot max price)."""
    given = as_number(settings.get("rlops_azure_price_per_hour"))
    if given:
        return given, "rlops_azure_price_per_hour"
    size = _text(settings.get("rlops_azure_vm_size"))
    price = VM_SIZES.get(size, (0, 0, 0.0))[2]
    max_price = as_number(settings.get("rlops_azure_max_price")) or -1
    if settings.get("rlops_azure_spot") and max_price > 0 and max_price < price:
        return max_price, "rlops_azure_max_price (at most)"
    return price, PRICE_SOURCE


def cost_so_far(price_per_hour, seconds):
    """USD for `seconds` of running at `price_per_hour` (Azure bills VMs by the second)."""
    return round(float(price_per_hour) * max(0.0, float(seconds)) / 3600.0, 6)


STARTED_TAG = "rlops-started"
RUN_SECONDS_TAG = "rlops-run-seconds"


def run_seconds(tags, running, now):
    """Seconds the VM has run: what its tags hold from earlier runs (teardown adds each run when
    it deallocates), plus the current run when it is running (from its start, tag rlops-started)."""
    tags = tags or {}
    done = as_number(tags.get(RUN_SECONDS_TAG)) or 0.0
    started = as_number(tags.get(STARTED_TAG))
    if running and started:
        done += max(0.0, float(now) - started)
    return done


def stopped_tags(tags, now):
    """The tags of a VM being deallocated: its run added to rlops-run-seconds, no start."""
    tags = dict(tags or {})
    total = run_seconds(tags, True, now)
    tags[RUN_SECONDS_TAG] = "%d" % round(total)
    tags[STARTED_TAG] = ""
    return tags


def locate(vms, disks, addresses, session, purpose, settings, now, hosts_group="trainers",
           hosts_listed=()):
    """The provider contract's facts from what Azure holds of `session` ('' = every session):
    `vms` and `disks` as the _info modules return them (tagged rlops-session), `addresses`
    {public IP resource name: address}. Answers running, hosts, session_provided,
    retrieve_from_storage, report (status's lines) and problem."""
    def tagged(record):
        return (record.get("tags") or {}).get(SESSION_TAG, "")

    mine_vms = [v for v in vms or [] if tagged(v) and (not session or tagged(v) == session)]
    mine_disks = [d for d in disks or [] if tagged(d) and (not session or tagged(d) == session)
                  and (d.get("tags") or {}).get(ROLE_TAG) == "data"]
    known = sorted(set(tagged(r) for r in list(vms or []) + list(disks or []) if tagged(r)))
    problem = ""
    if hosts_listed:
        problem = ("rlops_provider azure adds the session's VM to the group %s, but the inventory"
                   " already lists hosts there (%s)" % (hosts_group, ", ".join(hosts_listed)))
    elif session and not mine_vms and not mine_disks:
        problem = ("Azure holds no VM or data disk of session %s in resource group %s (sessions"
                   " there: %s)" % (session, settings.get("rlops_azure_resource_group"),
                                    ", ".join(known) or "none"))
    running = []
    for vm in mine_vms:
        if vm.get("power_state") != "running":
            continue
        ip_name = "rlops-%s-ip" % tagged(vm)
        running.append(dict(vm, session=tagged(vm), address=(addresses or {}).get(ip_name, "")))
    if not problem and purpose == "evaluate" and not running:
        problem = ("session %s has no running VM to evaluate on: resume it first (its VM is %s)"
                   % (session, ", ".join("%s %s" % (v["name"], v.get("power_state"))
                                         for v in mine_vms) or "gone"))
    from_storage = purpose == "retrieve" and not running
    price, source = hourly_price(settings)
    report = []
    for vm in mine_vms:
        seconds = run_seconds(vm.get("tags"), vm.get("power_state") == "running", now)
        report.append("Azure VM %s (%s, session %s, %s): %s, ran %.2f h, about USD %.4f so far"
                      " at USD %s/h (%s)" % (
                          vm["name"], vm.get("vm_size", "?"), tagged(vm), vm.get("location", "?"),
                          vm.get("power_state", "?"), seconds / 3600.0,
                          cost_so_far(price, seconds), price, source))
    for disk in mine_disks:
        owner = _text(disk.get("managed_by")).rstrip("/").rsplit("/", 1)[-1]
        report.append("Azure data disk %s (%s GiB, session %s): %s; billed while it exists"
                      % (disk["name"], disk.get("disk_size_gb", "?"), tagged(disk),
                         "attached to " + owner if owner else "not attached"))
    return {"running": running, "hosts": [] if from_storage else running,
            "session_provided": bool(mine_vms or mine_disks),
            "retrieve_from_storage": from_storage, "report": report, "problem": problem}


def request_problem(mode, session, vm, disk, names, location):
    """Why train_new (`mode` new) or resume cannot go on with what Azure holds of the session:
    `vm` and `disk` as the _info modules read them ({} when none), `names` resource_names'.
    New refuses a session that has a VM or its own data disk (a named disk of no session may
    be attached); resume one without a data disk; both, a disk that disk_problem refuses."""
    group = names["resource group"]
    own_disk = bool(disk) and (disk.get("tags") or {}).get(SESSION_TAG) == session
    if mode == "new" and (vm or own_disk):
        return ("session %s already has Azure resources (VM %s, data disk %s in resource group"
                " %s): resume it, or choose another session id"
                % (session, vm.get("name", "none") if vm else "none",
                   disk.get("name", "none") if own_disk else "none", group))
    if mode == "resume" and not disk:
        return ("session %s has no data disk %s in resource group %s: nothing to resume (status"
                " lists the sessions Azure holds)" % (session, names["managed disk"], group))
    return disk_problem(disk or None, location, names["virtual machine"], session)


def principal_id(vm):
    """The object id of a VM record's system-assigned identity (azure_rm_virtualmachine's or
    its _info module's, snake_case), or ''."""
    identity = (vm or {}).get("identity") or {}
    if "SystemAssigned" not in _text(identity.get("type")):
        return ""
    return _text(identity.get("principal_id") or identity.get("principalId"))


def role_assignment(scope, principal):
    """The role assignment that lets `principal` read and write the blobs of `scope` (a
    storage account's or container's id): azure_rm_roleassignment's name (a GUID derived from
    both, so that a second provision finds it), scope and role definition id."""
    scope = _text(scope).rstrip("/")
    match = _STORAGE_SCOPE.match(scope)
    if not match or not principal:
        raise ValueError("a storage scope and a principal id are needed, got %r and %r"
                         % (scope, principal))
    name = uuid.uuid5(_ASSIGNMENT_NAMESPACE, "%s|%s|%s" % (
        scope.lower(), _text(principal).lower(), BLOB_DATA_CONTRIBUTOR))
    return {"name": str(name), "scope": scope, "assignee_object_id": principal,
            "role_definition_id": "/subscriptions/%s/providers/Microsoft.Authorization/"
                                  "roleDefinitions/%s" % (match.group("subscription"),
                                                          BLOB_DATA_CONTRIBUTOR)}


def identity_problem(vm, wanted):
    """Why the session's existing VM `vm` cannot serve a session that asks for a managed
    identity (`wanted`), or '': identity is given when a VM is made; the provider never
    changes a VM's (azure_rm_virtualmachine's update path would re-send its disks)."""
    if not wanted or not vm or principal_id(vm):
        return ""
    return ("the session's VM %s was made without a managed identity (rlops_azure_identity:"
            " true asks for one): stop -e rlops_azure_delete_vm=true, then resume makes the VM"
            " again with one on the same data disk, or give it one yourself (az vm identity"
            " assign)" % vm.get("name", "?"))
