"""Looking inside a lab host (a podman container) from a test: the test's own eyes, not
Ansible. The lab suites (tests/lab_hosts.Lab) and the AWS suite's instances
(tests/e2e_aws/awslab.Lab) read hosts through these."""

from __future__ import annotations

import json
import subprocess
from typing import Any


def podman_exec(host: str, *argv: str, check: bool = True, stdin: str | None = None,
                user: str = "", timeout: float = 120, text: bool = False
                ) -> subprocess.CompletedProcess:
    """`argv` inside `host` (podman exec); its output as bytes, or str with `text`. With
    `check`, a command that fails raises RuntimeError with the end of its stderr."""
    cmd = ["podman", "exec", *(["-i"] if stdin is not None else []),
           *(["--user", user] if user else []), host, *argv]
    data = stdin if text or stdin is None else stdin.encode()
    proc = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout, text=text,
                          check=False)
    if check and proc.returncode != 0:
        stderr = proc.stderr if text else proc.stderr.decode(errors="replace")
        raise RuntimeError(f"{host}: {' '.join(argv)} exited {proc.returncode}: "
                           f"{stderr[-1000:]}")
    return proc


def read_host_json(host: str, path: str) -> dict[str, Any]:
    """A JSON file on `host`; {} when it is absent, or partial (a writer mid-way)."""
    proc = podman_exec(host, "cat", str(path), check=False)
    try:
        return json.loads(proc.stdout) if proc.returncode == 0 else {}
    except ValueError:
        return {}
