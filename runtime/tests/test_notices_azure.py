"""Azure Scheduled Events: the decisions, the watcher and the supervisor, against a fake
instance metadata service on loopback (FakeAzureImds below, the documented paths only)."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import pytest
from rlops_runtime import notices
from rlops_runtime.notices import (
    AZURE_ASSET_TAG,
    AZURE_SOURCE,
    CHECKPOINT,
    RECORD,
    STOP,
    AzureEvent,
    AzureEventsWatcher,
    NoticeMonitor,
    azure_events_for,
    azure_notice,
    build_watchers,
    looks_like_azure,
    should_watch_azure,
    start_request_body,
)
from rlops_runtime.publish import read_latest
from rlops_runtime.status import read_status
from test_supervisor import (
    SESSION,
    SupervisorThread,
    make_session,
    newest,
    requested_steps,
    storage_of,
    stored_status,
    wait_for,
)

VM = "rlops-trainer-0"
EVENTS = "/metadata/scheduledevents"
NAME = "/metadata/instance/compute/name"


def event(event_type="Preempt", resources=(VM,), event_id="e1", status="Scheduled",
          not_before="Mon, 07 Dec 2026 06:00:30 GMT") -> dict:
    return {"EventId": event_id, "EventType": event_type, "ResourceType": "VirtualMachine",
            "Resources": list(resources), "EventStatus": status, "NotBefore": not_before,
            "Description": "", "EventSource": "Platform", "DurationInSeconds": -1}


class FakeAzureImds:
    """Azure's instance metadata, as much as the watcher uses: GET scheduledevents (the
    events set by the test), POST scheduledevents (StartRequests, recorded), GET the compute
    name. Without `Metadata: true`, 400 as Azure answers. `first_delay`: seconds the first
    scheduledevents answer waits (the service being enabled)."""

    def __init__(self, vm_name: str = VM) -> None:
        self.vm_name = vm_name
        self.events: list[dict] = []
        self.incarnation = 1
        self.first_delay = 0.0
        self.acks: list[dict] = []
        self.requests: list[tuple[str, str, int]] = []
        self._answered_events = False
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _reply(self, code: int, body: bytes = b"", kind="application/json"):
                path = urllib.parse.urlsplit(self.path).path
                with fake._lock:
                    fake.requests.append((self.command, path, code))
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _checked(self) -> str | None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                if self.headers.get("Metadata") != "true" or "api-version" not in query:
                    self._reply(400, b'{"error": "Bad request"}')
                    return None
                return url.path

            def do_GET(self):
                path = self._checked()
                if path == NAME:
                    return self._reply(200, fake.vm_name.encode(), "text/plain")
                if path == EVENTS:
                    with fake._lock:
                        delay = 0.0 if fake._answered_events else fake.first_delay
                    time.sleep(delay)
                    with fake._lock:
                        fake._answered_events = True
                        body = json.dumps({"DocumentIncarnation": fake.incarnation,
                                           "Events": fake.events}).encode()
                    return self._reply(200, body)
                if path is not None:
                    self._reply(404)

            def do_POST(self):
                path = self._checked()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if path != EVENTS:
                    return path and self._reply(404)
                try:
                    request = json.loads(body)
                    assert isinstance(request["StartRequests"][0]["EventId"], str)
                except (ValueError, KeyError, IndexError, TypeError, AssertionError):
                    return self._reply(400)
                with fake._lock:
                    fake.acks.append(request)
                self._reply(200)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def preempt(self, resources=(VM,), event_id="e-preempt") -> None:
        with self._lock:
            self.events = [event("Preempt", resources, event_id)]
            self.incarnation += 1


@pytest.fixture
def azure_imds():
    fake = FakeAzureImds()
    try:
        yield fake
    finally:
        fake.close()


def azure_firmware(tmp_path: Path) -> str:
    sys_root = tmp_path / "sys"
    (sys_root / "class/dmi/id").mkdir(parents=True)
    (sys_root / "class/dmi/id/sys_vendor").write_text("Microsoft Corporation\n")
    (sys_root / "class/dmi/id/chassis_asset_tag").write_text(AZURE_ASSET_TAG + "\n")
    return str(sys_root)


# decisions ------------------------------------------------------------------------------


def test_only_this_vms_events_are_taken():
    body = json.dumps({"DocumentIncarnation": 3, "Events": [
        event("Preempt", ["other-vm"], "a"),
        event("Reboot", ["other-vm", VM.upper()], "b"),
        event("Freeze", [], "c"),
        "junk",
        event("Preempt", [VM], "d", status="Started", not_before=""),
    ]}).encode()
    assert [e.event_id for e in azure_events_for(body, VM)] == ["b", "d"]
    assert azure_events_for(body, "") == []
    for junk in (b"", b"not json", b"[]", b'{"Events": {}}', b'{"Events": [{"Resources": 1}]}'):
        assert azure_events_for(junk, VM) == []


@pytest.mark.parametrize("event_type, action", [
    ("Preempt", STOP), ("Terminate", STOP), ("Reboot", CHECKPOINT), ("Redeploy", CHECKPOINT),
    ("Freeze", RECORD), ("Something", RECORD)])
def test_what_each_event_asks(event_type: str, action: str):
    notice = azure_notice(AzureEvent("id-1", event_type, "Scheduled", "Mon, 07 Dec 2026 GMT"))
    assert notice.action == action
    assert notice.reason == (f"azure scheduled event: {event_type} not before "
                             "Mon, 07 Dec 2026 GMT (event id-1, scheduled)")


def test_azure_vm_by_firmware_and_when_to_watch():
    assert looks_like_azure("Microsoft Corporation\n", AZURE_ASSET_TAG + "\n")
    assert not looks_like_azure("Microsoft Corporation", "")  # Hyper-V elsewhere
    assert not looks_like_azure("Amazon EC2", AZURE_ASSET_TAG)
    assert should_watch_azure("auto", True, False) and should_watch_azure("auto", False, True)
    assert not should_watch_azure("auto", False, False)
    assert not should_watch_azure("none", True, True)
    assert not should_watch_azure("imds", True, True)  # imds is EC2's


def test_start_request_body():
    assert json.loads(start_request_body("f020ba2e")) == {
        "StartRequests": [{"EventId": "f020ba2e"}]}


@pytest.mark.parametrize("firmware, env, expected", [
    (True, {}, [AZURE_SOURCE]),
    (False, {"RLOPS_AZURE_IMDS_ENDPOINT": "http://127.0.0.1:9"}, [AZURE_SOURCE]),
    (False, {}, []),
])
def test_build_watchers_picks_azure(tmp_path, monkeypatch, firmware, env, expected):
    sys_root = azure_firmware(tmp_path) if firmware else str(tmp_path / "nothing")
    assert [w.source for w in build_watchers("auto", "", "checkpoint", env,
                                             sys_root=sys_root)] == expected
    assert build_watchers("none", "", "checkpoint", env, sys_root=sys_root) == []


def test_build_watchers_on_azure_never_asks_169_254(tmp_path):
    [watcher] = build_watchers("auto", "", "checkpoint", {}, sys_root=azure_firmware(tmp_path))
    assert watcher.endpoint == "http://169.254.169.254"
    assert isinstance(watcher, AzureEventsWatcher)  # built only, nothing asked


# the watcher against the fake -----------------------------------------------------------


def test_preempt_for_this_vm_is_a_stop_and_is_acknowledged(azure_imds: FakeAzureImds):
    watcher = AzureEventsWatcher(azure_imds.url)
    assert watcher.poll() is None and watcher.watch_state()["watching"]
    assert watcher.vm_name == VM  # from the compute name
    azure_imds.preempt()
    notice = watcher.poll()
    assert notice.action == STOP and "Preempt" in notice.reason and "e-preempt" in notice.reason
    assert azure_imds.acks == []  # nothing acknowledged before the session is saved
    notices.acknowledge(notice)
    notices.acknowledge(notice)  # once is enough
    assert azure_imds.acks == [{"StartRequests": [{"EventId": "e-preempt"}]}]
    # Every request carried Metadata: true (the fake answers 400 otherwise).
    assert {code for _m, _p, code in azure_imds.requests} == {200}


def test_events_for_other_vms_are_ignored(azure_imds: FakeAzureImds):
    watcher = AzureEventsWatcher(azure_imds.url)
    azure_imds.preempt(resources=("rlops-trainer-1", "someone-else"))
    for _attempt in range(3):
        assert watcher.poll() is None
    assert watcher.watch_state()["watching"] and azure_imds.acks == []
    azure_imds.preempt(resources=("rlops-trainer-1", VM))
    assert watcher.poll().action == STOP


def test_a_checkpoint_event_is_reported_once(azure_imds: FakeAzureImds):
    watcher = AzureEventsWatcher(azure_imds.url)
    azure_imds.events = [event("Redeploy", [VM], "r1")]
    assert watcher.poll().action == CHECKPOINT
    assert watcher.poll() is None
    assert watcher.poll() is None


def test_a_slow_first_answer_does_not_disable_watching(azure_imds: FakeAzureImds):
    """The first answer (the service being enabled) takes longer than the watcher waits:
    not watching yet, the reason shown, asked again; then the Preempt is seen."""
    azure_imds.first_delay = 1.5
    azure_imds.preempt()
    watcher = AzureEventsWatcher(azure_imds.url, first_timeout=0.3, retry_base=0.1,
                                 retry_cap=0.2)
    assert watcher.poll() is None
    state = watcher.watch_state()
    assert not state["watching"] and "timed out" in state["last_error"]
    deadline = time.monotonic() + 10
    notice = None
    while notice is None:
        assert time.monotonic() < deadline, "the watcher stopped asking"
        time.sleep(0.1)
        notice = watcher.poll()
    assert notice.action == STOP and watcher.watch_state()["watching"]
    gets = [r for r in azure_imds.requests if r[:2] == ("GET", EVENTS)]
    assert len(gets) >= 2


def test_a_first_answer_within_the_long_timeout_is_waited_for(azure_imds: FakeAzureImds):
    azure_imds.first_delay = 1.0
    watcher = AzureEventsWatcher(azure_imds.url, first_timeout=5)
    assert watcher.poll() is None and watcher.watch_state()["watching"]


def test_unreachable_metadata_is_retried_not_given_up(closed_endpoint: str):
    watcher = AzureEventsWatcher(closed_endpoint, retry_base=0.05, retry_cap=0.05)
    for _attempt in range(3):
        assert watcher.poll() is None
        time.sleep(0.06)
    state = watcher.watch_state()
    assert state["source"] == AZURE_SOURCE and not state["watching"]
    assert state["last_error"].startswith(f"Azure metadata at {closed_endpoint}: GET")


def test_the_monitor_shows_azures_state(azure_imds: FakeAzureImds):
    monitor = NoticeMonitor([AzureEventsWatcher(azure_imds.url)], 0.05)
    monitor.poll_once()
    assert monitor.state()["source"] == AZURE_SOURCE and monitor.state()["watching"]


# the supervisor -------------------------------------------------------------------------


def watching(layout) -> bool:
    status = read_status(layout.status)
    return bool(status and (status.notices or {}).get("watching"))


def preempted_run(layout, fake: FakeAzureImds, tmp_path: Path,
                  before: Callable[[SupervisorThread], None] | None = None) -> float:
    """Run the session's supervisor on an Azure VM (DMI) until it watches and the job has
    made progress, call `before`, send a Preempt for this VM, and wait for the supervisor to
    exit: it must, with code 0, within 30 s. The seconds it took."""
    run = SupervisorThread(layout, notice_interval=0.2, status_interval=0.2,
                           sys_root=azure_firmware(tmp_path))
    run.start()
    try:
        wait_for(lambda: watching(layout))
        wait_for(lambda: (read_status(layout.status).step or 0) > 0)
        if before is not None:
            before(run)
        started = time.monotonic()
        fake.preempt()
        run.join(30)
        took = time.monotonic() - started
    finally:
        if run.is_alive():
            run.stop()
    assert not run.is_alive() and run.code == 0 and took < 30
    return took


def test_preempt_checkpoints_publishes_records_and_acknowledges(
        tmp_path: Path, azure_imds: FakeAzureImds, monkeypatch: pytest.MonkeyPatch) -> None:
    """On an Azure VM (DMI), notices auto: a Preempt for this VM → the job checkpoints, the
    checkpoint is synced, status.json says interrupted with the event as its reason (as a
    spot notice does), and then the event is acknowledged; all within 30 s."""
    monkeypatch.delenv("RLOPS_IMDS_ENDPOINT")
    monkeypatch.setenv("RLOPS_AZURE_IMDS_ENDPOINT", azure_imds.url)
    layout = make_session(tmp_path, env={
        "FAKE_CHECKPOINT_SECONDS": "3600", "FAKE_PROGRESS_SECONDS": "0.1"})

    def others_first(run: SupervisorThread) -> None:
        assert read_status(layout.status).notices["source"] == AZURE_SOURCE
        azure_imds.preempt(resources=("someone-else",), event_id="not-ours")
        time.sleep(1)
        assert run.is_alive() and azure_imds.acks == []

    preempted_run(layout, azure_imds, tmp_path, before=others_first)
    status = read_status(layout.status)
    assert status.state == "interrupted"
    assert "azure scheduled event: Preempt" in status.notice and "e-preempt" in status.notice
    assert status.exit_reason == status.notice
    [requested] = requested_steps(layout)
    assert read_latest(storage_of(tmp_path), SESSION) == newest(layout) >= requested > 0
    assert status.last_synced_step == newest(layout) and status.unsynced_steps == []
    assert stored_status(tmp_path)["state"] == "interrupted"
    assert azure_imds.acks == [{"StartRequests": [{"EventId": "e-preempt"}]}]
    # Acknowledged after the publish: the last request is the POST.
    assert azure_imds.requests[-1][:2] == ("POST", EVENTS)
