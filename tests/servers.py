"""Servers the controller-side tests and the benchmarks start on loopback."""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after `timeout`; only this process (we started it)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def serve_moto(new_session: bool = False, server: Sequence[str] = ("-m", "moto.server")
               ) -> Iterator[tuple[str, subprocess.Popen]]:
    """A moto server on a free loopback port for the block; yields (URL, process).

    `new_session` puts it in its own session (benchmarks measure their own process group);
    `server` is what Python runs, given moto.server's host and port options.
    """
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, *server, "-H", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=new_session)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"moto server did not start on port {port}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        stop_process(proc)


def moto_users(iam: Any, users: dict[str, list[str]]) -> dict[str, tuple[str, str]]:
    """IAM users of a moto server (`iam`, its client), each allowed its actions on every
    resource, made while moto still accepts anything: {user: (access key, secret)}."""
    keys = {}
    for user, actions in users.items():
        iam.create_user(UserName=user)
        policy = {"Version": "2012-10-17",
                  "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
        iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
    return keys


def moto_require_auth(endpoint: str) -> None:
    """Switch a moto server's authentication on (/moto-api/reset-auth): from now on each
    request needs the keys of a user and that user's permission."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0",
                                     method="POST", headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(request, timeout=10).close()


@contextmanager
def http_server(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` (quiet: no request log) on a free loopback port for the block, in a thread;
    yields its URL, http://127.0.0.1:<port>."""

    class Quiet(handler):  # type: ignore[valid-type,misc]
        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def moto_server(server: Sequence[str] = ("-m", "moto.server")) -> Iterator[str]:
    """A moto server on a free loopback port for the block; yields its URL."""
    with serve_moto(server=server) as (url, _proc):
        yield url


class Localbucket:
    """localbucket (an S3 server that keeps its buckets as folders) on a fixed loopback
    port: stop() takes the endpoint away (connections refused), start() brings it back
    with every bucket it had. moto keeps its buckets in memory and would come back empty.
    """

    def __init__(self, data: str) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "localbucket", self.data, "--host", "127.0.0.1",
             "--port", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"localbucket did not start on {self.url}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None
