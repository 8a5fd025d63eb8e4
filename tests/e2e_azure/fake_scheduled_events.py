"""Azure's instance metadata service as a spot VM's supervisor asks it: Scheduled Events and
the VM's name (tests only; stdlib only, so that it runs in a lab host that plays the VM).

Metadata, as Azure documents it ("Azure Metadata Service: Scheduled Events"):
  GET  /metadata/instance/compute/name?...&format=text  the VM's name (--vm)
  GET  /metadata/scheduledevents?api-version=...        {"DocumentIncarnation": n, "Events": [...]}
  POST /metadata/scheduledevents?api-version=...        {"StartRequests": [{"EventId": id}]}:
                                                        each event named starts (EventStatus
                                                        Started, NotBefore blank)
  Without the header `Metadata: true`: 400, as Azure answers.
Control (this server only):
  POST /_control/preempt   a Preempt event for this VM (spot eviction, 30 s of notice),
                           Scheduled; answers {"EventId": ...}
  POST /_control/clear     no events (the VM was deallocated and starts again: its events are
                           gone)
  GET  /_control/state     {"events": [...], "start_requests": [...], "requests": [...]}

Run: python3 fake_scheduled_events.py --port 8170 --vm rlops-<session> (binds 127.0.0.1).
"""

from __future__ import annotations

import argparse
import email.utils
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

EVENTS = "/metadata/scheduledevents"
NAME = "/metadata/instance/compute/name"
PREEMPT_NOTICE = 30  # seconds


class State:
    def __init__(self, vm: str) -> None:
        self.vm = vm
        self.lock = threading.RLock()  # _send records under it, also inside a locked answer
        self.incarnation = 1
        self.events: list[dict] = []
        self.start_requests: list[dict] = []
        self.requests: list[list] = []

    def preempt(self) -> str:
        event_id = str(uuid.uuid4()).upper()
        with self.lock:
            self.incarnation += 1
            self.events.append({
                "EventId": event_id, "EventType": "Preempt", "ResourceType": "VirtualMachine",
                "Resources": [self.vm], "EventStatus": "Scheduled",
                "NotBefore": email.utils.formatdate(time.time() + PREEMPT_NOTICE, usegmt=True),
                "Description": "Virtual machine is being preempted.", "EventSource": "Platform",
                "DurationInSeconds": -1})
        return event_id

    def start(self, body: dict) -> bool:
        wanted = [r.get("EventId") for r in body.get("StartRequests") or []
                  if isinstance(r, dict)]
        if not wanted:
            return False
        with self.lock:
            self.start_requests.append(body)
            for event in self.events:
                if event["EventId"] in wanted and event["EventStatus"] != "Started":
                    event.update(EventStatus="Started", NotBefore="")
                    self.incarnation += 1
        return True


def handler_for(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, code: int, body, kind: str = "application/json") -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            with state.lock:
                state.requests.append([self.command, urlsplit(self.path).path, code])
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return {}
            return body if isinstance(body, dict) else {}

        def _metadata_ok(self) -> bool:
            if self.headers.get("Metadata") != "true":
                self._send(400, {"error": "Bad request. Required metadata header not specified"})
                return False
            return True

        def do_GET(self) -> None:  # noqa: N802 - http.server's names
            path = urlsplit(self.path).path
            if path == "/_control/state":
                with state.lock:
                    return self._send(200, {"events": state.events,
                                            "start_requests": state.start_requests,
                                            "requests": state.requests})
            if path not in (EVENTS, NAME):
                return self._send(404, {"error": "Not found"})
            if not self._metadata_ok():
                return None
            if path == NAME:
                return self._send(200, state.vm, "text/plain")
            with state.lock:
                return self._send(200, {"DocumentIncarnation": state.incarnation,
                                        "Events": list(state.events)})

        def do_POST(self) -> None:  # noqa: N802
            path = urlsplit(self.path).path
            if path == "/_control/preempt":
                return self._send(200, {"EventId": state.preempt()})
            if path == "/_control/clear":
                with state.lock:
                    state.events = []
                    state.incarnation += 1
                return self._send(200, {"events": []})
            if path != EVENTS:
                return self._send(404, {"error": "Not found"})
            if not self._metadata_ok():
                return None
            if not state.start(self._body()):
                return self._send(400, {"error": "Bad request: StartRequests"})
            return self._send(200, "", "text/plain")

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--vm", required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(State(args.vm)))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
