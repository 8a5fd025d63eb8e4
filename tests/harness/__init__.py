"""One harness for the end-to-end suites (tests/e2e, tests/lab_e2e, tests/e2e_aws) and the
lab benchmarks: run a playbook as a user does, read its PLAY RECAP and the status table,
wait for a session's state, snapshot what a --check run must not change, and look inside a
lab host (podman_exec, read_host_json).

Each suite's conftest gives a target (this machine, lab hosts over SSH, moto + lab hosts)
as a `Playbooks` configured for it; the test bodies speak only this interface. tests/ is on
sys.path (tests/conftest.py is the rootdir conftest; bench/_common.py adds it), so
`import harness` works from every suite.
"""

from harness.playbooks import PlaybookFailed, Playbooks, ansible_env
from harness.podman import podman_exec, read_host_json
from harness.recap import changed_hosts, changed_total, host_recap, play_recap
from harness.snapshot import Unchanged, assert_unchanged, tree_state
from harness.status_table import debug_lines, status_table
from harness.waiting import NotInTime, has_checkpoint, in_state, wait_until

__all__ = [
    "NotInTime", "PlaybookFailed", "Playbooks", "Unchanged", "ansible_env", "assert_unchanged",
    "changed_hosts", "changed_total", "debug_lines", "has_checkpoint", "host_recap", "in_state",
    "play_recap", "podman_exec", "read_host_json", "status_table", "tree_state", "wait_until",
]
