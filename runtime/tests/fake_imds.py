"""A stand-in for the EC2 instance metadata service, IMDSv2 only (tests and lab hosts).

Metadata, as EC2 serves it:
  PUT  /latest/api/token          header X-aws-ec2-metadata-token-ttl-seconds: 1..21600
                                  -> 200 token; 400 without a valid TTL
  GET  /latest/meta-data/<path>   header X-aws-ec2-metadata-token: a live token
                                  -> 200 body, 404 when unset; 401 without a live token
Control, no token (this server only):
  PUT    /_control/<path>         the body becomes /latest/meta-data/<path>, e.g.
                                  PUT /_control/spot/instance-action
                                      {"action": "stop", "time": "2026-11-22T08:00:00Z"}
  DELETE /_control/<path>         /latest/meta-data/<path> answers 404 again
  POST   /_control/expire-tokens  every token issued so far gets 401 from now on
  POST   /_control/delay          body: seconds every metadata answer waits from now on
                                  (a slow IMDS; 0 answers at once again)
  POST   /_control/drop           body: 1 closes every metadata request unanswered from
                                  now on (an IMDS that is not there yet), 0 answers again
  GET    /_control/requests       JSON list of [method, path, status] served so far
                                  (status 0: dropped)

In-process: `with FakeImds() as imds: imds.url ...`. As a script (a lab container can
reach it): `python fake_imds.py --host 127.0.0.1 --port 0` prints the URL on stdout and
serves until killed. It binds where it is told, loopback by default.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN_PATH = "/latest/api/token"
META_PREFIX = "/latest/meta-data/"
CONTROL_PREFIX = "/_control/"
INSTANCE_ACTION = "spot/instance-action"
REBALANCE = "events/recommendations/rebalance"
MAX_TTL = 21600


class FakeImds:
    """The server and its state; thread-safe, usable as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._meta: dict[str, bytes] = {"instance-id": b"i-0fa4e00000000000f"}
        self.requests: list[tuple[str, str, int]] = []
        # Seconds each metadata answer waits; whether metadata requests are dropped.
        self.delay = 0.0
        self.drop = False
        self._server = ThreadingHTTPServer((host, port), _handler_for(self, verbose))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # state ----------------------------------------------------------------------------

    def set(self, path: str, body: bytes | str | dict[str, Any]) -> None:
        if isinstance(body, dict):
            body = json.dumps(body)
        with self._lock:
            self._meta[path.strip("/")] = body.encode() if isinstance(body, str) else body

    def clear(self, path: str) -> None:
        with self._lock:
            self._meta.pop(path.strip("/"), None)

    def set_instance_action(self, action: str = "terminate",
                            time: str = "2026-11-22T08:00:00Z") -> None:
        self.set(INSTANCE_ACTION, {"action": action, "time": time})

    def set_rebalance(self, notice_time: str = "2026-11-22T07:50:00Z") -> None:
        self.set(REBALANCE, {"noticeTime": notice_time})

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def count(self, method: str, path: str) -> int:
        with self._lock:
            return sum(1 for m, p, _status in self.requests if (m, p) == (method, path))

    def _issue_token(self, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.monotonic() + ttl
        return token

    def _token_ok(self, token: str | None) -> bool:
        with self._lock:
            return token is not None and self._tokens.get(token, 0.0) > time.monotonic()

    def _lookup(self, path: str) -> bytes | None:
        with self._lock:
            return self._meta.get(path.strip("/"))

    # serving --------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (the script)."""
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def start(self) -> FakeImds:
        # A short poll interval: shutdown() waits up to one interval.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="fake-imds", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeImds:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler_for(imds: FakeImds, verbose: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "EC2ws"

        def log_message(self, format: str, *args: Any) -> None:
            if verbose:
                super().log_message(format, *args)

        def _send(self, status: int, body: bytes = b"", content_type: str = "text/plain") -> None:
            with imds._lock:
                imds.requests.append((self.command, self.path, status))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _unavailable(self) -> bool:
            """A slow or absent IMDS: wait `delay`; True when the request is dropped."""
            if imds.delay:
                time.sleep(imds.delay)
            if imds.drop:
                with imds._lock:
                    imds.requests.append((self.command, self.path, 0))
                self.close_connection = True
                return True
            return False

        def do_PUT(self) -> None:
            if self.path.startswith(CONTROL_PREFIX):
                imds.set(self.path[len(CONTROL_PREFIX):], self._body())
                return self._send(200)
            if self._unavailable():
                return None
            if self.path != TOKEN_PATH:
                return self._send(405)
            if self.headers.get("X-Forwarded-For"):  # as EC2 does: no tokens via proxies
                return self._send(403)
            try:
                ttl = int(self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", ""))
            except ValueError:
                ttl = 0
            if not 1 <= ttl <= MAX_TTL:
                return self._send(400)
            self._send(200, imds._issue_token(ttl).encode())

        def do_GET(self) -> None:
            if self.path == CONTROL_PREFIX + "requests":
                with imds._lock:
                    listing = json.dumps(imds.requests).encode()
                return self._send(200, listing, "application/json")
            if not self.path.startswith(META_PREFIX):
                return self._send(404)
            if self._unavailable():
                return None
            if not imds._token_ok(self.headers.get("X-aws-ec2-metadata-token")):
                return self._send(401)
            body = imds._lookup(self.path[len(META_PREFIX):])
            self._send(404) if body is None else self._send(200, body)

        def do_DELETE(self) -> None:
            if not self.path.startswith(CONTROL_PREFIX):
                return self._send(405)
            imds.clear(self.path[len(CONTROL_PREFIX):])
            self._send(200)

        def do_POST(self) -> None:
            body = self._body().decode("utf-8", "replace").strip()
            if self.path == CONTROL_PREFIX + "expire-tokens":
                imds.expire_tokens()
            elif self.path == CONTROL_PREFIX + "delay":
                imds.delay = float(body or 0)
            elif self.path == CONTROL_PREFIX + "drop":
                imds.drop = body not in ("", "0")
            else:
                return self._send(405)
            self._send(200)

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--verbose", action="store_true", help="log requests on stderr")
    args = parser.parse_args(argv)
    imds = FakeImds(args.host, args.port, verbose=args.verbose)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    print(imds.url, flush=True)
    try:
        imds.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
