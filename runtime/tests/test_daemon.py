"""pidfiles and liveness (detach itself is exercised by `rlops-run start` in test_cli)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from rlops_runtime.daemon import pid_alive, read_pid


def test_read_pid(tmp_path: Path) -> None:
    path = tmp_path / "supervisor.pid"
    assert read_pid(path) is None
    path.write_text("1234\n")
    assert read_pid(path) == 1234
    path.write_text("garbage")
    assert read_pid(path) is None


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(None) and not pid_alive(0)
    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert pid_alive(proc.pid)
        proc.kill()  # not reaped yet: a zombie, which counts as gone
        deadline = time.monotonic() + 5
        while pid_alive(proc.pid):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        proc.wait()
    assert not pid_alive(proc.pid)
