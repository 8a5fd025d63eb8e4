"""harness.podman: a lab host's commands and JSON files, through a stand-in `podman` on PATH
that runs `podman exec [-i] [--user U] HOST ARGV...` as ARGV here."""

from __future__ import annotations

import json

import pytest
from harness import podman_exec, read_host_json

FAKE_PODMAN = """#!/bin/sh
[ "$1" = exec ] || exit 125
shift
while [ "$1" = -i ] || [ "$1" = --user ]; do
  if [ "$1" = --user ]; then shift; fi
  shift
done
shift  # the host
exec "$@"
"""


@pytest.fixture(autouse=True)
def fake_podman(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "podman").write_text(FAKE_PODMAN)
    (bin_dir / "podman").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


def test_read_host_json_is_empty_for_a_missing_or_partial_file(tmp_path):
    whole = tmp_path / "status.json"
    whole.write_text(json.dumps({"state": "running"}))
    partial = tmp_path / "partial.json"
    partial.write_text('{"state": "runn')
    assert read_host_json("host-1", str(whole)) == {"state": "running"}
    assert read_host_json("host-1", str(partial)) == {}
    assert read_host_json("host-1", str(tmp_path / "absent.json")) == {}


def test_podman_exec_bytes_text_stdin_and_failures():
    assert podman_exec("host-1", "echo", "hi").stdout == b"hi\n"
    assert podman_exec("host-1", "cat", stdin="in", user="lab", text=True).stdout == "in"
    assert podman_exec("host-1", "false", check=False).returncode == 1
    with pytest.raises(RuntimeError, match="host-1: sh -c echo oops >&2; exit 3 exited 3: oops"):
        podman_exec("host-1", "sh", "-c", "echo oops >&2; exit 3", text=True)
