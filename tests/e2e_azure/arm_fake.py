"""A local HTTPS stand-in of the Azure Resource Manager calls the Azure provider makes, for the
real azure.azcollection modules (tests only; loopback only).

What the modules reach, and how they are pointed here (no module is patched):
- cloud_environment = this server's URL: azure-cli-core reads /metadata/endpoints (the
  Azure Stack form) and takes resource manager, login endpoint and audience from it;
- the login endpoint is this server too: msal asks /<tenant>/v2.0/.well-known/
  openid-configuration, then POSTs a client-credentials grant to /<tenant>/oauth2/v2.0/token
  (instance discovery is switched off: AZURE_DISABLE_INSTANCE_DISCOVERY);
- TLS: a self-signed certificate for 127.0.0.1 that the SDKs trust through
  REQUESTS_CA_BUNDLE (requests, under azure-core and msal).

The resource store answers PUT/GET/DELETE on resource ids (case-insensitive, as ARM) and
POST start/deallocate/powerOff/restart on VMs, role assignments (at once, for an existing
principal and scope), with provisioning states and long-running
operations as ARM gives them: PUT answers 201 with an Azure-AsyncOperation URL (polled:
InProgress, then Succeeded), DELETE and POST 202 with a Location URL (202, then 200). Lists
answer {"value": [...]}. Side effects ARM has and the play relies on: a public IP gets an
address (the next one of `--address`, or set through the control API: the lab host that
plays the VM), a NIC a private address, a VM an OS disk resource, attached data disks
`managedBy` and diskState Attached, a power state in its instance view, and a principal id
for a system-assigned identity.

Control API (never called by the modules), under /_fake/: GET calls (every request made,
method and path), POST addresses (a JSON list of addresses for the next public IPs), POST
evict?vm=<id> (the VM deallocated by Azure, as a spot eviction with policy Deallocate does).

Run: python arm_fake.py --port N --cert C --key K [--address 10.88.0.5 ...]
"""

from __future__ import annotations

import argparse
import copy
import http.server
import itertools
import json
import re
import socketserver
import ssl
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

SUBSCRIPTION_RE = re.compile(r"^/subscriptions/([^/]+)")
# The Azure hosts a client reaches through this server as its HTTPS proxy (CONNECT): the
# public cloud's Resource Manager and login endpoint. Nothing else is answered.
PROXIED_HOSTS = ("management.azure.com", "login.microsoftonline.com")
TOKEN_LIFETIME = 3600
TENANT = "00000000-0000-4000-8000-000000000001"
ROLE_ASSIGNMENTS = "Microsoft.Authorization/roleAssignments"
# The sizes a region offers (GET .../locations/<region>/vmSizes): the CPU sizes the tests use
# and an N-series one.
VM_SIZES = (("Standard_B2s", 2), ("Standard_D2s_v5", 2), ("Standard_D4s_v5", 4),
            ("Standard_NC4as_T4_v3", 4))
# Polls an operation answers InProgress before it is done (the modules' pollers must wait).
POLLS_IN_PROGRESS = 1


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.0000000+00:00", time.gmtime())


def resource_type(path: str) -> str:
    """ARM type of a resource id: Microsoft.Network/virtualNetworks/subnets ..."""
    parts = path.strip("/").split("/")
    if "providers" not in parts:
        return "Microsoft.Resources/resourceGroups" if len(parts) == 4 else ""
    i = len(parts) - 1 - parts[::-1].index("providers")
    rest = parts[i + 1:]
    return "/".join([rest[0]] + rest[1::2])


class Store:
    def __init__(self, addresses: list[str]):
        self.lock = threading.Lock()
        self.items: dict[str, dict] = {}  # lower-case id -> resource
        self.operations: dict[str, dict] = {}
        self.calls: list[dict] = []
        self.addresses = list(addresses)
        self.private = itertools.count(4)

    # ---- long-running operations ----------------------------------------------------------
    def operation(self, result: str = "Succeeded", then=None) -> str:
        op_id = uuid.uuid4().hex
        self.operations[op_id] = {"polls": 0, "result": result, "then": then}
        return op_id

    def poll(self, op_id: str) -> tuple[int, dict]:
        op = self.operations.get(op_id)
        if op is None:
            return 404, {"error": {"code": "NotFound", "message": "no operation " + op_id}}
        op["polls"] += 1
        if op["polls"] <= POLLS_IN_PROGRESS:
            return 200, {"status": "InProgress", "name": op_id}
        if op["then"] is not None:
            op["then"]()
            op["then"] = None
        return 200, {"status": op["result"], "name": op_id, "endTime": now_iso()}

    # ---- resources --------------------------------------------------------------------------
    def get(self, path: str) -> dict | None:
        return self.items.get(path.lower())

    def children(self, path: str) -> list[dict]:
        """The resources of a collection path: direct children (subnets of a vnet, groups of a
        subscription), or every resource of a provider type in the subscription or group."""
        low = path.lower().rstrip("/")
        found = [r for key, r in self.items.items()
                 if key.rsplit("/", 1)[0] == low]
        if found or "/providers/" not in low:
            return found
        scope, _sep, kind = low.partition("/providers/")
        return [r for key, r in self.items.items()
                if key.startswith(scope + "/") and resource_type(key).lower() == kind]

    def put(self, path: str, body: dict, base: str) -> dict:
        low = path.lower()
        old = self.items.get(low)
        kind = resource_type(path)
        name = path.rstrip("/").rsplit("/", 1)[1]
        res = copy.deepcopy(old) if old else {}
        props = dict(res.get("properties") or {})
        props.update(body.get("properties") or {})
        res.update({k: v for k, v in body.items() if k != "properties"})
        res.update(id=path, name=(old or {}).get("name", name), type=kind, properties=props)
        if "location" in body:
            res["location"] = body["location"].replace(" ", "").lower()
        res.setdefault("tags", {})
        props["provisioningState"] = "Succeeded"
        getattr(self, "_on_" + kind.rsplit("/", 1)[-1], lambda *a: None)(res, old, base)
        self.items[low] = res
        return res

    def delete(self, path: str) -> bool:
        low = path.lower()
        if low not in self.items:
            return False
        res = self.items.pop(low)
        for key in [k for k in self.items if k.startswith(low + "/")]:
            del self.items[key]
        if res["type"] == "Microsoft.Compute/virtualMachines":
            for disk in self._vm_disks(res):
                disk["managedBy"] = None
                disk["properties"]["diskState"] = "Unattached"
        return True

    # ---- side effects ARM has -------------------------------------------------------------
    def _on_publicIPAddresses(self, res: dict, old, base) -> None:  # noqa: N802 - ARM's name
        props = res["properties"]
        if not props.get("ipAddress"):
            props["ipAddress"] = self.addresses.pop(0) if self.addresses else "127.0.0.1"
        props.setdefault("publicIPAllocationMethod", "Static")
        res.setdefault("sku", {"name": "Standard", "tier": "Regional"})

    def _on_networkInterfaces(self, res: dict, old, base) -> None:  # noqa: N802
        for conf in res["properties"].get("ipConfigurations") or []:
            conf.setdefault("id", res["id"] + "/ipConfigurations/" + conf.get("name", "ipconfig1"))
            conf.setdefault("properties", {})
            conf["properties"].setdefault("privateIPAddress", f"10.42.0.{next(self.private)}")
            conf["properties"]["provisioningState"] = "Succeeded"
            conf["properties"].setdefault("privateIPAllocationMethod", "Dynamic")
            # The public IP now belongs to this configuration (ARM links both ways).
            pip = self.get((conf["properties"].get("publicIPAddress") or {}).get("id", ""))
            if pip is not None:
                pip["properties"]["ipConfiguration"] = {"id": conf["id"]}
        props = res["properties"]
        props.setdefault("macAddress", "00-0D-3A-00-00-01")
        props.setdefault("dnsSettings", {})
        props["dnsSettings"].setdefault("dnsServers", [])
        props["dnsSettings"].setdefault("appliedDnsServers", [])
        props.setdefault("enableAcceleratedNetworking", False)
        props.setdefault("enableIPForwarding", False)
        props.setdefault("primary", True)

    def _on_virtualNetworks(self, res: dict, old, base) -> None:  # noqa: N802
        subnets = res["properties"].get("subnets")
        for subnet in subnets or []:
            sid = res["id"] + "/subnets/" + subnet["name"]
            subnet["id"] = sid
            subnet.setdefault("properties", {})["provisioningState"] = "Succeeded"
            kind = "Microsoft.Network/virtualNetworks/subnets"
            self.items[sid.lower()] = {**subnet, "type": kind}
        if subnets is None:
            res["properties"]["subnets"] = []

    def _on_subnets(self, res: dict, old, base) -> None:
        vnet = self.get(res["id"].rsplit("/subnets/", 1)[0])
        if vnet is not None:
            subnets = [s for s in vnet["properties"].get("subnets", []) if s["name"] != res["name"]]
            vnet["properties"]["subnets"] = subnets + [
                {k: v for k, v in res.items() if k != "type"}]

    def _on_disks(self, res: dict, old, base) -> None:
        props = res["properties"]
        props.setdefault("diskState", "Unattached")
        props.setdefault("timeCreated", now_iso())
        props.setdefault("uniqueId", str(uuid.uuid4()))
        props.setdefault("creationData", {"createOption": "Empty"})
        res.setdefault("managedBy", None)
        res.setdefault("sku", {"name": "Standard_LRS"})

    def _on_virtualMachines(self, res: dict, old, base) -> None:  # noqa: N802
        props = res["properties"]
        props.setdefault("vmId", str(uuid.uuid4()))
        props.setdefault("timeCreated", now_iso())
        storage = props.setdefault("storageProfile", {})
        os_disk = storage.setdefault("osDisk", {})
        group = res["id"].split("/providers/")[0]
        # An update names its disks (by name, without ids), as ARM's own GET shows them: the
        # disks stay the ones the VM has.
        old_storage = ((old or {}).get("properties") or {}).get("storageProfile") or {}
        old_os = old_storage.get("osDisk") or {}
        if old_os.get("managedDisk", {}).get("id") and not os_disk.get("managedDisk", {}).get("id"):
            os_disk.setdefault("managedDisk", {})["id"] = old_os["managedDisk"]["id"]
            os_disk.setdefault("name", old_os.get("name"))
        for data in storage.get("dataDisks") or []:
            if not (data.get("managedDisk") or {}).get("id") and data.get("name") and \
                    data.get("createOption", "").lower() != "empty":
                data.setdefault("managedDisk", {})["id"] = (
                    f"{group}/providers/Microsoft.Compute/disks/{data['name']}")
            if (data.get("managedDisk") or {}).get("id"):
                data.setdefault("name", data["managedDisk"]["id"].rsplit("/", 1)[1])
        if not os_disk.get("managedDisk", {}).get("id"):
            name = os_disk.get("name") or "{}_OsDisk_1_{}".format(res["name"], uuid.uuid4().hex)
            disk_id = f"{group}/providers/Microsoft.Compute/disks/{name}"
            os_disk.update(name=name, createOption="FromImage")
            os_disk.setdefault("caching", "ReadWrite")
            os_disk.setdefault("osType", "Linux")
            os_disk.setdefault("diskSizeGB", 30)
            os_disk.setdefault("managedDisk", {})["id"] = disk_id
            self.put(disk_id, {"location": res["location"], "properties": {
                "diskSizeGB": os_disk.get("diskSizeGB") or 30, "osType": "Linux",
                "creationData": {"createOption": "FromImage"}},
                "sku": {"name": (os_disk["managedDisk"].get("storageAccountType")
                                 or "Standard_LRS")}}, base)
        for data in storage.get("dataDisks") or []:
            disk_id = (data.get("managedDisk") or {}).get("id")
            if data.get("createOption", "").lower() == "empty" and not disk_id:
                disk_id = "{}/providers/Microsoft.Compute/disks/{}".format(group, data["name"])
                self.put(disk_id, {"location": res["location"], "properties": {
                    "diskSizeGB": data.get("diskSizeGB")}}, base)
                data.setdefault("managedDisk", {})["id"] = disk_id
        for disk in self._vm_disks(res):
            disk["managedBy"] = res["id"]
            disk["properties"]["diskState"] = "Attached"
        if old is not None:
            # A data disk no longer listed is detached.
            listed = {d["id"].lower() for d in self._vm_disks(res)}
            for disk in self._vm_disks(old):
                if disk["id"].lower() not in listed:
                    disk["managedBy"] = None
                    disk["properties"]["diskState"] = "Unattached"
        # A system-assigned identity gets its service principal (ARM makes it with the VM and
        # keeps it while the type still holds SystemAssigned).
        identity = res.get("identity") or {}
        if "SystemAssigned" in str(identity.get("type", "")):
            kept = (old or {}).get("identity") or {}
            identity.setdefault("principalId", kept.get("principalId") or str(uuid.uuid4()))
            identity.setdefault("tenantId", kept.get("tenantId") or TENANT)
        power = (old or {}).get("_power", "running")
        res["_power"] = power
        for conf in props.get("networkProfile", {}).get("networkInterfaces") or []:
            nic = self.get(conf["id"])
            if nic is not None:
                nic["properties"]["virtualMachine"] = {"id": res["id"]}

    def principals(self) -> set[str]:
        """The object ids of the VMs' system-assigned identities."""
        return {str((r.get("identity") or {}).get("principalId", "")).lower()
                for r in self.items.values()
                if r.get("type") == "Microsoft.Compute/virtualMachines"} - {""}

    def _vm_disks(self, vm: dict) -> list[dict]:
        storage = vm["properties"].get("storageProfile") or {}
        ids = [(storage.get("osDisk") or {}).get("managedDisk", {}).get("id")]
        ids += [(d.get("managedDisk") or {}).get("id") for d in storage.get("dataDisks") or []]
        return [d for d in (self.get(i) for i in ids if i) if d is not None]

    def power(self, vm: dict, state: str) -> None:
        vm["_power"] = state

    def instance_view(self, vm: dict) -> dict:
        power = vm.get("_power", "running")
        return {"computerName": vm["name"], "osName": "ubuntu", "statuses": [
            {"code": "ProvisioningState/succeeded", "level": "Info",
             "displayStatus": "Provisioning succeeded", "time": now_iso()},
            {"code": "PowerState/" + power, "level": "Info",
             "displayStatus": "VM " + power}]}

    def public(self, res: dict, expand: str) -> dict:
        out = {k: v for k, v in res.items() if not k.startswith("_")}
        if res.get("type") == "Microsoft.Compute/virtualMachines" and "instanceview" in expand:
            out = copy.deepcopy(out)
            out["properties"]["instanceView"] = self.instance_view(res)
        return out


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "arm-fake/1"
    protocol_version = "HTTP/1.1"
    store: Store
    tls: ssl.SSLContext

    @property
    def base(self) -> str:
        """This server as the client named it: https://127.0.0.1:<port>, or the Azure host
        it reached through the proxy (https://management.azure.com)."""
        return "https://" + (self.headers.get("Host") or "127.0.0.1")

    def do_CONNECT(self):  # noqa: N802 - http.server's names
        """The proxy: answer a CONNECT to an Azure host ourselves, under TLS with this
        server's certificate (which names those hosts); never connect anywhere."""
        host, _sep, port = self.path.partition(":")
        if host not in PROXIED_HOSTS or port != "443":
            self.store.calls.append({"method": "CONNECT", "path": self.path, "query": ""})
            self.send_error(403, "the fake answers only for " + ", ".join(PROXIED_HOSTS))
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        conn = self.tls.wrap_socket(self.connection, server_side=True)
        self.connection = conn
        self.rfile = conn.makefile("rb")
        self.wfile = socketserver._SocketWriter(conn)  # noqa: SLF001 - what wbufsize=0 gives
        self.close_connection = False
        while not self.close_connection:
            self.handle_one_request()

    def log_message(self, fmt, *args):  # quiet; calls are in /_fake/calls
        pass

    def _send(self, status: int, body: dict | list | None = None, headers: dict | None = None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        if "json" in (self.headers.get("Content-Type") or ""):
            return json.loads(raw)
        return {k: v[0] for k, v in parse_qs(raw.decode()).items()}

    def _error(self, status: int, code: str, message: str):
        self._send(status, {"error": {"code": code, "message": message}})

    def _dispatch(self, method: str):
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        body = self._body() if method in ("PUT", "POST", "PATCH") else {}
        store = self.store
        with store.lock:
            if not path.startswith("/_fake/"):
                store.calls.append({"method": method, "path": path, "query": url.query})
            try:
                self._route(method, path, query, body)
            except Exception as exc:  # noqa: BLE001 - a fake's bug shows as a 500 naming it
                self._error(500, "FakeError", f"{type(exc).__name__}: {exc}")

    def _route(self, method, path, query, body):
        store, base = self.store, self.base
        low = path.lower().rstrip("/")
        # --- control API
        if path == "/_fake/calls":
            return self._send(200, store.calls)
        if path == "/_fake/addresses" and method == "POST":
            store.addresses = list(body) if isinstance(body, list) else body.get("addresses", [])
            return self._send(200, {"addresses": store.addresses})
        if path == "/_fake/evict" and method == "POST":
            vm = store.get(query["vm"][0])
            if vm is None:
                return self._error(404, "ResourceNotFound", query["vm"][0])
            store.power(vm, "deallocated")
            return self._send(200, {"power": "deallocated"})
        # --- cloud metadata (Azure Stack's form, as azure-cli-core reads it)
        if low == "/metadata/endpoints":
            return self._send(200, {
                "galleryEndpoint": base + "/gallery/", "graphEndpoint": base + "/graph/",
                "portalEndpoint": base + "/portal/",
                "authentication": {"loginEndpoint": base + "/", "audiences": [base + "/"]}})
        # --- identity (msal)
        m = re.match(r"^/([^/]+)(/v2\.0)?/\.well-known/openid-configuration$", path)
        if m:
            tenant = m.group(1)
            return self._send(200, {
                "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
                "issuer": f"{base}/{tenant}/v2.0",
                "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "token"],
                "tenant_region_scope": "WW"})
        if path == "/common/discovery/instance":
            authority = query.get("authorization_endpoint", [base + "/common/oauth2/authorize"])[0]
            return self._send(200, {"tenant_discovery_endpoint": authority.replace(
                "/oauth2/v2.0/authorize", "/v2.0/.well-known/openid-configuration").replace(
                "/oauth2/authorize", "/.well-known/openid-configuration"),
                "api-version": "1.1", "metadata": []})
        if re.match(r"^/[^/]+/oauth2(/v2\.0)?/token$", path) and method == "POST":
            if not body.get("client_id") or not body.get("client_secret"):
                return self._send(400, {"error": "invalid_client",
                                        "error_description": "client_id and client_secret"})
            return self._send(200, {"token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
                                    "ext_expires_in": TOKEN_LIFETIME,
                                    "access_token": "fake-" + uuid.uuid4().hex})
        # --- ARM: every call needs a bearer token
        if not (self.headers.get("Authorization") or "").startswith("Bearer fake-"):
            return self._error(401, "AuthenticationFailed", "no bearer token from the fake")
        m = re.match(r"^/operations/([0-9a-f]+)$", path)
        if m:
            status, answer = store.poll(m.group(1))
            if "location" in query and answer["status"] == "InProgress":
                # Retry-After 1, not 0: azure-core reads 0 as "no delay given" and waits its
                # polling interval (30 s) instead.
                return self._send(202, None, {"Location": base + path + "?location=1",
                                              "Retry-After": "1"})
            return self._send(200, answer, {"Retry-After": "1"})
        if "/vmimage/" in low:
            return self._images(low, path)
        if low.endswith("/vmsizes") and "/providers/microsoft.compute/locations/" in low:
            return self._send(200, {"value": [
                {"name": name, "numberOfCores": cores, "memoryInMB": cores * 4096,
                 "maxDataDiskCount": 8, "osDiskSizeInMB": 1047552,
                 "resourceDiskSizeInMB": 16384} for name, cores in VM_SIZES]})
        if not SUBSCRIPTION_RE.match(path):
            return self._error(404, "NotFound", "no such path in the fake: " + path)
        expand = ",".join(query.get("$expand", [])).lower()
        if method == "GET" and low.endswith("/instanceview"):
            vm = store.get(path.rsplit("/", 1)[0])
            if vm is None:
                return self._not_found(path)
            return self._send(200, store.instance_view(vm))
        if method == "POST":
            return self._action(path)
        if method == "GET" and re.match(r"^/subscriptions/[^/]+/resourcegroups/[^/]+/resources$",
                                        low):
            group = low.rsplit("/", 1)[0]
            return self._send(200, {"value": [
                {k: v for k, v in store.public(r, "").items() if k != "properties"}
                for key, r in store.items.items()
                if key.startswith(group + "/providers/") and "location" in r]})
        if method in ("GET", "HEAD"):
            res = store.get(path)
            if res is not None:
                return self._send(200 if method == "GET" else 204,
                                  store.public(res, expand) if method == "GET" else None)
            if len(low.split("/")) % 2 == 0 and low.count("/") > 2 and (
                    "/providers/" in low or low.endswith("/resourcegroups")):
                items = [store.public(r, expand) for r in store.children(path)]
                return self._send(200, {"value": items})
            return self._not_found(path)
        if method in ("PUT", "DELETE") and resource_type(path) == ROLE_ASSIGNMENTS:
            return self._role_assignment(method, path, body)
        if method == "PUT":
            group = re.match(r"^(/subscriptions/[^/]+/resourcegroups/[^/]+)", low)
            if group and "/providers/" in low and store.get(group.group(1)) is None:
                return self._error(404, "ResourceGroupNotFound",
                                   f"Resource group '{path.split('/')[4]}' could not be found.")
            created = store.get(path) is None
            res = store.put(path, body, base)
            if resource_type(path) == "Microsoft.Resources/resourceGroups":
                return self._send(201 if created else 200, store.public(res, ""))
            op = store.operation()
            shown = copy.deepcopy(store.public(res, ""))
            shown["properties"]["provisioningState"] = "Creating" if created else "Updating"
            # Compute's disks answer 202 (Accepted) to a PUT, as ARM's API for them says.
            status = 202 if resource_type(path) == "Microsoft.Compute/disks" else (
                201 if created else 200)
            return self._send(status, shown, {
                "Azure-AsyncOperation": f"{base}/operations/{op}",
                "Location": f"{base}/operations/{op}?location=1", "Retry-After": "1"})
        if method == "PATCH":
            res = store.get(path)
            if res is None:
                return self._not_found(path)
            if "tags" in body:
                res["tags"] = dict(body["tags"])
            return self._send(200, store.public(res, ""))
        if method == "DELETE":
            if store.get(path) is None:
                return self._send(204)
            if resource_type(path) == "Microsoft.Compute/disks":
                disk = store.get(path)
                if disk.get("managedBy"):
                    return self._error(409, "OperationNotAllowed",
                                       f"Disk {disk['name']} is attached to {disk['managedBy']}.")
            op = store.operation(then=lambda: store.delete(path))
            return self._send(202, None, {"Location": f"{base}/operations/{op}?location=1",
                                          "Retry-After": "1"})
        return self._error(405, "MethodNotAllowed", method)

    def _role_assignment(self, method, path, body):
        """A role assignment at a scope (a resource, group or subscription): PUT answers 201 at
        once (no long-running operation), DELETE 200 with what was removed; the principal must
        exist (a VM's identity here) and the scope too, as ARM checks."""
        store = self.store
        scope = path[:path.lower().index("/providers/microsoft.authorization/")]
        if method == "DELETE":
            res = store.get(path)
            if res is None:
                return self._send(204)
            store.delete(path)
            return self._send(200, store.public(res, ""))
        props = body.get("properties") or {}
        if str(props.get("principalId", "")).lower() not in store.principals():
            return self._error(400, "PrincipalNotFound",
                               f"Principal {props.get('principalId')} does not exist in the"
                               f" directory {TENANT}.")
        if store.get(scope) is None:
            return self._not_found(scope)
        old = store.get(path)
        if old is not None and old["properties"]["principalId"] != props["principalId"]:
            return self._error(409, "RoleAssignmentExists",
                               "The role assignment already exists.")
        res = {"id": path, "name": path.rsplit("/", 1)[1], "type": ROLE_ASSIGNMENTS,
               "properties": {"roleDefinitionId": props.get("roleDefinitionId"),
                              "principalId": props["principalId"],
                              "principalType": "ServicePrincipal", "scope": scope,
                              "createdOn": now_iso()}}
        store.items[path.lower()] = res
        return self._send(201 if old is None else 200, res)

    def _not_found(self, path):
        kind = resource_type(path) or "resource"
        return self._error(404, "ResourceNotFound" if "/providers/" in path.lower()
                           else "ResourceGroupNotFound",
                           f"The Resource '{path.rsplit('/', 1)[-1]}' under resource group"
                           f" was not found ({kind}).")

    def _action(self, path):
        store, base = self.store, self.base
        target, _sep, action = path.rpartition("/")
        vm = store.get(target)
        if vm is None or vm["type"] != "Microsoft.Compute/virtualMachines":
            return self._not_found(target)
        states = {"start": "running", "deallocate": "deallocated", "poweroff": "stopped",
                  "restart": "running"}
        if action.lower() not in states:
            return self._error(400, "InvalidAction", action)
        store.power(vm, "starting" if action.lower() in ("start", "restart") else
                    "deallocating" if action.lower() == "deallocate" else "stopping")
        state = states[action.lower()]
        op = store.operation(then=lambda: store.power(vm, state))
        return self._send(202, None, {
            "Azure-AsyncOperation": f"{base}/operations/{op}",
            "Location": f"{base}/operations/{op}?location=1", "Retry-After": "1"})

    def _images(self, low, path):
        # .../publishers/P/artifacttypes/vmimage/offers/O/skus/S/versions[/V]
        location = re.search(r"/locations/([^/]+)/", low).group(1)
        version = "24.04.202511010"
        if low.endswith("/versions"):
            return self._send(200, [{"name": version, "location": location,
                                     "id": path + "/" + version}])
        return self._send(200, {"name": path.rsplit("/", 1)[-1], "location": location,
                                "id": path, "properties": {"osImage": {"operatingSystem": "Linux"},
                                                           "hyperVGeneration": "V2"}})

    def do_GET(self):  # noqa: N802 - http.server's names
        self._dispatch("GET")

    def do_HEAD(self):  # noqa: N802
        self._dispatch("HEAD")

    def do_PUT(self):  # noqa: N802
        self._dispatch("PUT")

    def do_PATCH(self):  # noqa: N802
        self._dispatch("PATCH")

    def do_POST(self):  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self):  # noqa: N802
        self._dispatch("DELETE")


def serve(port: int, cert: str, key: str, addresses: list[str]) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    handler = type("BoundHandler", (Handler,), {"store": Store(addresses), "tls": context})
    # HTTPS on `port`; plain HTTP (the proxy's CONNECT) on port + 1.
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", port + 1), handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--address", action="append", default=[])
    args = parser.parse_args()
    serve(args.port, args.cert, args.key, args.address)


if __name__ == "__main__":
    main()
