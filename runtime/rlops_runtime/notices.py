"""Spot interruption and rebalance notices from the EC2 instance metadata service (IMDSv2).

A `NoticeMonitor` thread polls the watchers every few seconds (docs/contract.md,
"Notices"), so that a metadata service that is slow or away never holds up the
supervisor's loop. What a metadata response means and what the supervisor does about it
are pure functions here; `ImdsWatcher` is the thin HTTP shell around them. Stdlib only:
it runs on every host.
"""

from __future__ import annotations

import functools
import http.client
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from .backoff import Backoff
from .jsonio import utc_iso

# run.json's default endpoint is the session contract's (its choices too).
from .session_contract import DEFAULT_IMDS_ENDPOINT

log = logging.getLogger(__name__)

# What the supervisor does about a notice.
STOP = "stop"              # checkpoint, publish, stop the job: state `interrupted`
CHECKPOINT = "checkpoint"  # checkpoint and publish, training goes on
RECORD = "record"          # log it and keep it in status.json only
ENDPOINT_ENV = "RLOPS_IMDS_ENDPOINT"
TOKEN_PATH = "/latest/api/token"
INSTANCE_ACTION_PATH = "/latest/meta-data/spot/instance-action"
REBALANCE_PATH = "/latest/meta-data/events/recommendations/rebalance"
TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
TOKEN_TTL = 21600           # seconds, the most IMDSv2 grants
TOKEN_REFRESH_MARGIN = 60   # renew this long before the token expires
TIMEOUT = 1.0               # per request: every attempt is bounded
MAX_BODY = 65536
# Until IMDS has answered once, attempts back off from RETRY_BASE to RETRY_CAP seconds: a
# metadata service that is still starting is found soon, one that is disabled is not
# hammered, and a notice (two minutes ahead of the stop) is seen within RETRY_CAP.
RETRY_BASE = 5.0
RETRY_CAP = 30.0
SOURCE = "ec2-imds"
# How an instance knows it runs on EC2 without asking the network: Nitro instances name
# "Amazon EC2" in DMI, Xen ones have a hypervisor uuid starting with "ec2".
DMI_VENDOR_FILES = ("class/dmi/id/sys_vendor", "class/dmi/id/board_vendor")
HYPERVISOR_UUID_FILE = "hypervisor/uuid"


@dataclass(frozen=True)
class Notice:
    """A notice and what the supervisor should do about it. `acknowledge`, when set, tells
    the notice's source that the session is saved (Azure: the event may start now); the
    supervisor calls it through `acknowledge()` once it has published after a stop."""

    reason: str
    action: str = STOP
    acknowledge: Callable[[], None] | None = field(default=None, compare=False, repr=False)


def acknowledge(notice: Notice) -> None:
    """Tell the notice's source the session is saved; trouble is logged, never raised."""
    if notice.acknowledge is None:
        return
    try:
        notice.acknowledge()
    except Exception as exc:  # the session is saved either way; the event starts on time
        log.warning("could not acknowledge the notice (%s): %s", notice.reason, exc)


# decisions ------------------------------------------------------------------------------


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def instance_action_notice(body: bytes) -> Notice:
    """The notice of a 200 answer from spot/instance-action.

    `stop` and `terminate` end the session (`interrupted`). `hibernate` only asks for a
    checkpoint: hibernation keeps the processes, which carry on when EC2 resumes the
    instance, and no boot would start a supervisor that had exited. A body we cannot read
    still means EC2 is taking the instance away: stop, to be safe.
    """
    data = _json_object(body)
    action = data.get("action")
    if not isinstance(action, str) or not action:
        snippet = body[:80].decode("utf-8", "replace")
        return Notice(f"spot instance-action: unreadable notice {snippet!r}", STOP)
    when = data.get("time")
    reason = f"spot instance-action: {action}" + (f" at {when}" if when else "")
    return Notice(reason, CHECKPOINT if action == "hibernate" else STOP)


def rebalance_notice(body: bytes, on_rebalance: str) -> Notice:
    """The notice of a 200 answer from events/recommendations/rebalance."""
    when = _json_object(body).get("noticeTime")
    reason = "rebalance recommendation" + (f" at {when}" if when else "")
    return Notice(reason, on_rebalance)


def is_new(notice: Notice, reported: set[str]) -> bool:
    """Whether to report `notice`: IMDS keeps answering with the same one for minutes.

    A stop is reported every time (the supervisor acts on the first); anything else once.
    """
    return notice.action == STOP or notice.reason not in reported


def response_to(notice: Notice, job_has_progress: bool) -> str:
    """What the supervisor does about `notice`.

    A checkpoint request before the job has made any progress in this run would save
    nothing new (it just resumed from the newest checkpoint) and could reach it before it
    handles SIGUSR1, which kills it: then the notice is only recorded. This is what a
    rebalance recommendation looks like to a supervisor restarted after it was issued.
    """
    if notice.action == CHECKPOINT and not job_has_progress:
        return RECORD
    return notice.action


def token_is_fresh(now: float, expires_at: float, margin: float = TOKEN_REFRESH_MARGIN) -> bool:
    return now < expires_at - margin


def resolve_endpoint(configured: str, environ: Mapping[str, str]) -> str:
    """RLOPS_IMDS_ENDPOINT wins over run.json's imds_endpoint (tests, lab hosts)."""
    return (environ.get(ENDPOINT_ENV) or configured or DEFAULT_IMDS_ENDPOINT).rstrip("/")


def looks_like_ec2(dmi_vendors: list[str], hypervisor_uuid: str) -> bool:
    return (any(vendor.strip() == "Amazon EC2" for vendor in dmi_vendors)
            or hypervisor_uuid.strip().lower().startswith("ec2"))


def should_watch(mode: str, on_ec2: bool, endpoint_given: bool) -> bool:
    """Whether to ask IMDS at all. `auto` asks only an EC2 instance, or the endpoint that
    RLOPS_IMDS_ENDPOINT names: elsewhere 169.254.169.254 may route off the host. Whether
    it answers at start decides nothing: a slow one is retried until it does."""
    return mode == "imds" or (mode == "auto" and (on_ec2 or endpoint_given))


# the HTTP shell -------------------------------------------------------------------------


class ImdsError(Exception):
    """IMDS did not answer, or not as documented."""


class MetadataWatcher:
    """What both metadata watchers share: the endpoint, a proxy-free opener (an http_proxy
    meant for the internet must not see metadata requests), the notices already reported,
    the backoff until the service first answers, and the watching state for status.json."""

    source = ""

    def __init__(self, endpoint: str, clock: Callable[[], float], retry_base: float,
                 retry_cap: float) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._clock = clock
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._reported: set[str] = set()
        self._trouble: str | None = None
        self._answered = False
        self._backoff = Backoff(retry_base, retry_cap)
        self._state_lock = threading.Lock()
        self._watching = False
        self._since = utc_iso()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint})"

    def watch_state(self) -> dict[str, Any]:
        """For status.json: whether the last attempt reached the service, since when, and why
        not. `last_error` is what went wrong while not watching (None while watching)."""
        with self._state_lock:
            return {"source": self.source, "watching": self._watching, "since": self._since,
                    "last_error": None if self._watching else self._trouble}

    def _set_watching(self, watching: bool) -> None:
        with self._state_lock:
            if watching != self._watching:
                self._watching, self._since = watching, utc_iso()

    def _set_trouble(self, trouble: str | None) -> None:
        with self._state_lock:
            self._trouble = trouble
        self._set_watching(trouble is None)


class ImdsWatcher(MetadataWatcher):
    """Polls IMDSv2 for a spot instance-action and a rebalance recommendation.

    Until IMDS has answered once, a poll makes an attempt only when the backoff says one
    is due; afterwards every poll asks. `watch_state()` says whether notices are seen.
    """

    source = SOURCE

    def __init__(
        self,
        endpoint: str = DEFAULT_IMDS_ENDPOINT,
        on_rebalance: str = CHECKPOINT,
        timeout: float = TIMEOUT,
        token_ttl: int = TOKEN_TTL,
        clock: Callable[[], float] = time.monotonic,
        retry_base: float = RETRY_BASE,
        retry_cap: float = RETRY_CAP,
    ) -> None:
        super().__init__(endpoint, clock, retry_base, retry_cap)
        self.on_rebalance = on_rebalance
        self.timeout = timeout
        self.token_ttl = token_ttl
        self._token: str | None = None
        self._token_expires = 0.0

    def _request(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        try:
            request = urllib.request.Request(self.endpoint + path, method=method,
                                             headers=headers)
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status, response.read(MAX_BODY)
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code, b""
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # URLError, refused, timeouts, a connection cut mid-answer, a URL that is none.
            raise ImdsError(f"IMDS at {self.endpoint}: {method} {path}: {exc}") from None

    def fetch_token(self) -> str:
        """A new session token (IMDSv2); raises ImdsError."""
        status, body = self._request("PUT", TOKEN_PATH, {TOKEN_TTL_HEADER: str(self.token_ttl)})
        token = body.decode("ascii", "replace").strip()
        if status != 200 or not token:
            raise ImdsError(f"IMDS at {self.endpoint}: PUT {TOKEN_PATH} answered {status}")
        self._token = token
        self._token_expires = self._clock() + self.token_ttl
        return token

    def _get_once(self, path: str) -> tuple[int, bytes]:
        if self._token is None or not token_is_fresh(self._clock(), self._token_expires):
            self.fetch_token()
        return self._request("GET", path, {TOKEN_HEADER: self._token or ""})

    def _get(self, path: str) -> bytes | None:
        """The body of `path`, None for 404."""
        status, body = self._get_once(path)
        if status == 401:  # the token expired early or IMDS restarted: renew, retry once
            self._token = None
            status, body = self._get_once(path)
        if status == 200:
            return body
        if status == 404:
            return None
        raise ImdsError(f"IMDS at {self.endpoint}: GET {path} answered {status}")

    def check(self) -> Notice | None:
        """The current notice, deduplicated or not; raises ImdsError."""
        body = self._get(INSTANCE_ACTION_PATH)
        if body is not None:
            return instance_action_notice(body)
        body = self._get(REBALANCE_PATH)
        if body is not None:
            return rebalance_notice(body, self.on_rebalance)
        return None

    def poll(self) -> Notice | None:
        """A new notice, or None; trouble reaching IMDS is logged once and means none.

        Before IMDS has answered for the first time, attempts back off (nothing is sent
        when none is due)."""
        if not self._answered and not self._backoff.due(self._clock()):
            return None
        try:
            notice = self.check()
        except ImdsError as exc:
            if not self._answered:
                delay = self._backoff.failed(self._clock())
                if self._trouble is None:
                    log.warning("%s; not watching for spot notices until it answers "
                                "(retrying in %.0f s, then backing off to every %.0f s)",
                                exc, delay, self._backoff.cap)
            elif self._trouble is None:
                log.warning("%s; no notices until it answers (logged once)", exc)
            self._set_trouble(str(exc))
            return None
        if not self._answered:
            log.info("IMDS at %s answers: watching for spot notices", self.endpoint)
            self._answered = True
            self._backoff.succeeded()
        elif self._trouble is not None:
            log.info("IMDS at %s answers again", self.endpoint)
        self._set_trouble(None)
        if notice is None or not is_new(notice, self._reported):
            return None
        self._reported.add(notice.reason)
        return notice


def _read_sys(sys_root: str, relative: str) -> str:
    try:
        with open(f"{sys_root}/{relative}", encoding="utf-8", errors="replace") as handle:
            return handle.read(256)
    except OSError:
        return ""


def on_ec2(sys_root: str = "/sys") -> bool:
    """What this host's firmware says (no network)."""
    def read(relative: str) -> str:
        return _read_sys(sys_root, relative)

    return looks_like_ec2([read(name) for name in DMI_VENDOR_FILES], read(HYPERVISOR_UUID_FILE))


def build_watchers(
    mode: str, endpoint: str, on_rebalance: str, environ: Mapping[str, str],
    timeout: float = TIMEOUT, sys_root: str = "/sys",
    retry_base: float = RETRY_BASE, retry_cap: float = RETRY_CAP,
) -> list[Any]:
    """The watchers run.json asks for, without a request: `auto` watches IMDS on an EC2
    instance or at RLOPS_IMDS_ENDPOINT, Azure's Scheduled Events on an Azure VM or at
    RLOPS_AZURE_IMDS_ENDPOINT, and nothing elsewhere; `imds` watches EC2's everywhere."""
    if mode == "none":
        log.info("not watching for spot notices (notices: none)")
        return []
    azure = build_azure_watchers(mode, environ, sys_root)
    endpoint_given = bool(environ.get(ENDPOINT_ENV))
    ec2 = on_ec2(sys_root)
    if not should_watch(mode, ec2, endpoint_given):
        if not azure:
            log.info("not an EC2 instance (DMI, hypervisor uuid) nor an Azure VM (DMI): "
                     "not watching for spot notices (notices: auto)")
        return azure
    watcher = ImdsWatcher(resolve_endpoint(endpoint, environ), on_rebalance, timeout=timeout,
                          retry_base=retry_base, retry_cap=retry_cap)
    why = ("notices: imds" if mode == "imds" else
           "an EC2 instance by its firmware" if ec2 else f"{ENDPOINT_ENV} is set")
    log.info("watching EC2 instance metadata (IMDSv2) at %s for spot notices (%s; "
             "on_rebalance: %s)", watcher.endpoint, why, on_rebalance)
    return [watcher, *azure]


# Azure Scheduled Events ------------------------------------------------------------------
# The instance metadata service of an Azure VM (docs: "Azure Metadata Service: Scheduled
# Events"). Every request carries `Metadata: true` (without it: 400). The first request
# enables the service and may take up to two minutes to answer: the watcher waits for it
# with a long timeout and keeps asking after a timeout; it never gives up watching.
AZURE_ENDPOINT_ENV = "RLOPS_AZURE_IMDS_ENDPOINT"
AZURE_SOURCE = "azure-scheduled-events"
EVENTS_PATH = "/metadata/scheduledevents?api-version=2020-07-01"
VM_NAME_PATH = "/metadata/instance/compute/name?api-version=2021-02-01&format=text"
AZURE_HEADERS = {"Metadata": "true"}
AZURE_FIRST_TIMEOUT = 130.0  # the first answer may take up to 2 min
AZURE_TIMEOUT = 5.0
AZURE_RETRY_BASE, AZURE_RETRY_CAP = 1.0, 10.0
# How an Azure VM knows it is one without asking the network: Hyper-V's vendor, and the
# chassis asset tag that only Azure sets (Hyper-V elsewhere has the vendor, not the tag).
AZURE_VENDOR = "Microsoft Corporation"
AZURE_ASSET_TAG = "7783-7084-3265-9085-8269-3286-77"
AZURE_DMI_FILES = ("class/dmi/id/sys_vendor", "class/dmi/id/chassis_asset_tag")
# What an event for this VM asks of the session. Preempt (spot eviction, >= 30 s notice) and
# Terminate (the VM is deleted): checkpoint, publish, stop, then acknowledge. Reboot and
# Redeploy (10-15 min notice, the VM restarts): a checkpoint published, training goes on.
# Freeze (a pause of seconds): recorded only.
AZURE_EVENT_ACTIONS = {"Preempt": STOP, "Terminate": STOP, "Reboot": CHECKPOINT,
                       "Redeploy": CHECKPOINT, "Freeze": RECORD}


def looks_like_azure(sys_vendor: str, chassis_asset_tag: str) -> bool:
    return (sys_vendor.strip() == AZURE_VENDOR
            and chassis_asset_tag.strip() == AZURE_ASSET_TAG)


def should_watch_azure(mode: str, on_azure_vm: bool, endpoint_given: bool) -> bool:
    """Whether to ask Azure's Scheduled Events: `auto` on an Azure VM (DMI) or where
    RLOPS_AZURE_IMDS_ENDPOINT names an endpoint; never with `none`; `imds` is EC2's."""
    return mode == "auto" and (on_azure_vm or endpoint_given)


@dataclass(frozen=True)
class AzureEvent:
    event_id: str
    event_type: str
    status: str
    not_before: str


def azure_events_for(body: bytes, vm_name: str) -> list[AzureEvent]:
    """The events of a Scheduled Events answer whose Resources name `vm_name` (compared
    without case, as Azure names are): events for the rest of an availability set or
    scale set reach every member and are not ours. An answer we cannot read holds none."""
    events = _json_object(body).get("Events")
    if not isinstance(events, list):
        return []
    name = vm_name.strip().casefold()
    mine = []
    for event in events:
        if not isinstance(event, dict):
            continue
        resources = event.get("Resources")
        if not isinstance(resources, list) or not name or name not in {
                str(r).strip().casefold() for r in resources}:
            continue
        mine.append(AzureEvent(str(event.get("EventId") or ""), str(event.get("EventType") or ""),
                               str(event.get("EventStatus") or ""),
                               str(event.get("NotBefore") or "")))
    return mine


def azure_notice(event: AzureEvent) -> Notice:
    """The notice of one of this VM's events (no acknowledgement attached)."""
    action = AZURE_EVENT_ACTIONS.get(event.event_type, RECORD)
    when = f" not before {event.not_before}" if event.not_before else ""
    status = f", {event.status.lower()}" if event.status else ""
    return Notice(f"azure scheduled event: {event.event_type or 'unknown'}{when} "
                  f"(event {event.event_id}{status})", action)


def start_request_body(event_id: str) -> bytes:
    return json.dumps({"StartRequests": [{"EventId": event_id}]}).encode()


def resolve_azure_endpoint(environ: Mapping[str, str]) -> str:
    return (environ.get(AZURE_ENDPOINT_ENV) or DEFAULT_IMDS_ENDPOINT).rstrip("/")


class AzureEventsWatcher(MetadataWatcher):
    """Polls Azure Scheduled Events for this VM's events; acknowledges one on request.

    The VM's name comes from the instance metadata (compute name) at the first poll. Until
    the service has answered once, a request may wait AZURE_FIRST_TIMEOUT seconds; a
    timeout or refusal is logged once, shown in watch_state(), and asked again (backing
    off from 1 to 10 s): watching is never given up.
    """

    source = AZURE_SOURCE

    def __init__(
        self,
        endpoint: str = DEFAULT_IMDS_ENDPOINT,
        vm_name: str | None = None,
        first_timeout: float = AZURE_FIRST_TIMEOUT,
        timeout: float = AZURE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        retry_base: float = AZURE_RETRY_BASE,
        retry_cap: float = AZURE_RETRY_CAP,
    ) -> None:
        super().__init__(endpoint, clock, retry_base, retry_cap)
        self.vm_name = vm_name
        self.first_timeout = first_timeout
        self.timeout = timeout
        self._acknowledged: set[str] = set()

    def _request(self, method: str, path: str, data: bytes | None = None) -> bytes:
        headers = dict(AZURE_HEADERS)
        if data is not None:
            headers["Content-Type"] = "application/json"
        timeout = self.timeout if self._answered else self.first_timeout
        where = f"Azure metadata at {self.endpoint}: {method} {path.split('?')[0]}"
        try:
            request = urllib.request.Request(self.endpoint + path, data=data, method=method,
                                             headers=headers)
            with self._opener.open(request, timeout=timeout) as response:
                return response.read(MAX_BODY)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise ImdsError(f"{where} answered {exc.code}") from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise ImdsError(f"{where}: {exc}") from None

    def check(self) -> list[AzureEvent]:
        """This VM's current events; raises ImdsError."""
        if not self.vm_name:
            name = self._request("GET", VM_NAME_PATH).decode("utf-8", "replace").strip()
            if not name:
                raise ImdsError(f"Azure metadata at {self.endpoint}: the VM's name is empty")
            self.vm_name = name
        return azure_events_for(self._request("GET", EVENTS_PATH), self.vm_name)

    def acknowledge(self, event_id: str) -> None:
        """POST StartRequests for `event_id`: the event may start now. Raises ImdsError."""
        if event_id in self._acknowledged:
            return
        self._request("POST", EVENTS_PATH, start_request_body(event_id))
        self._acknowledged.add(event_id)
        log.info("acknowledged Azure scheduled event %s", event_id)

    def poll(self) -> Notice | None:
        """A new notice for this VM, or None; trouble is logged once and means none."""
        if not self._answered and not self._backoff.due(self._clock()):
            return None
        try:
            events = self.check()
        except ImdsError as exc:
            if self._trouble is None:
                log.warning("%s; %s (logged once; asking again)", exc,
                            "no answer yet: the first one may take up to 2 minutes"
                            if not self._answered else "no scheduled events until it answers")
            if not self._answered:
                self._backoff.failed(self._clock())
            self._set_trouble(str(exc))
            return None
        if not self._answered:
            log.info("Azure metadata at %s answers: watching scheduled events of VM %s",
                     self.endpoint, self.vm_name)
            self._answered = True
            self._backoff.succeeded()
        self._set_trouble(None)
        for event in events:
            notice = azure_notice(event)
            if notice.action != STOP and event.event_id in self._reported:
                continue
            self._reported.add(event.event_id)
            if notice.action == STOP and event.event_id:
                notice = Notice(notice.reason, notice.action,
                                acknowledge=functools.partial(self.acknowledge, event.event_id))
            return notice
        return None


def on_azure_vm(sys_root: str = "/sys") -> bool:
    """What this host's firmware says (no network)."""
    vendor, tag = (_read_sys(sys_root, name) for name in AZURE_DMI_FILES)
    return looks_like_azure(vendor, tag)


def build_azure_watchers(mode: str, environ: Mapping[str, str], sys_root: str = "/sys",
                         first_timeout: float = AZURE_FIRST_TIMEOUT,
                         timeout: float = AZURE_TIMEOUT) -> list[AzureEventsWatcher]:
    """Azure's watcher when `auto` finds an Azure VM or RLOPS_AZURE_IMDS_ENDPOINT is set."""
    endpoint_given = bool(environ.get(AZURE_ENDPOINT_ENV))
    azure = on_azure_vm(sys_root)
    if not should_watch_azure(mode, azure, endpoint_given):
        return []
    watcher = AzureEventsWatcher(resolve_azure_endpoint(environ), first_timeout=first_timeout,
                                 timeout=timeout)
    log.info("watching Azure Scheduled Events at %s (%s)", watcher.endpoint,
             "an Azure VM by its firmware" if azure else f"{AZURE_ENDPOINT_ENV} is set")
    return [watcher]


class NoticeMonitor:
    """Polls the watchers every `interval` seconds in a thread of its own.

    The supervisor's loop takes the notices from a queue and never waits on the network:
    a metadata service that answers slowly or not at all costs this thread, bounded by
    each request's timeout, and nothing else. After a stop notice it polls no more.
    """

    def __init__(self, watchers: Sequence[Any], interval: float, mode: str = "auto") -> None:
        self.watchers = list(watchers)
        self.interval = interval
        self.mode = mode
        self._notices: queue.Queue[Notice] = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.watchers:
            self._thread = threading.Thread(target=self._run, name="rlops-notices",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            notice = self.poll_once()
            if notice is not None:
                self._notices.put(notice)
                if notice.action == STOP:
                    return  # the supervisor acts on the first; the rest would change nothing
            self._stopping.wait(self.interval)

    def poll_once(self) -> Notice | None:
        """Poll every watcher; the first new notice, or None."""
        for watcher in self.watchers:
            try:
                notice = watcher.poll()
            except Exception:  # a flaky metadata endpoint must not end the session
                log.exception("notice watcher %r failed", watcher)
                continue
            if notice:
                return Notice(notice) if isinstance(notice, str) else notice
        return None

    def take(self) -> Notice | None:
        """The next notice not yet taken, at once; None when there is none."""
        try:
            return self._notices.get_nowait()
        except queue.Empty:
            return None

    def stop(self, timeout: float = 4 * TIMEOUT) -> None:
        """Stop polling; waits for a poll in progress (each request is bounded)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def state(self) -> dict[str, Any]:
        """status.json's `notices`: the mode and whether a watcher sees notices."""
        state: dict[str, Any] = {"mode": self.mode, "source": None, "watching": False,
                                 "since": None, "last_error": None}
        for watcher in self.watchers:
            watch_state = getattr(watcher, "watch_state", None)
            if callable(watch_state):
                return {**state, **watch_state()}
        if self.watchers:  # watchers without a state of their own (tests): taken as watching
            state.update(source=type(self.watchers[0]).__name__, watching=True)
        return state
