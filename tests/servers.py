"""Servers the controller-side tests and the benchmarks start on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


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
