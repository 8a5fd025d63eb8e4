"""tests/harness/status_table.py reads the status playbook's table back from its output."""

from __future__ import annotations

import json

import pytest
from ansible_collections.rlops.fleet.plugins.filter.session_table import session_table
from harness.status_table import debug_lines, status_table

RECORDS = [
    {"session_id": "a-20261206t120000z", "host": "lab-1", "state": "running", "step": 4096,
     "total_timesteps": 8192, "mean_return": 21.5, "last_checkpoint_time": "2026-12-06T12:00:00Z"},
    {"session_id": "b-20261206t120000z", "host": "i-0abc", "state": "completed"},
]


def output_of(msg) -> str:
    """A debug task's result as ansible-playbook prints it (the JSON result format)."""
    return (f"TASK [Show the sessions] ***\nok: [localhost] => {json.dumps({'msg': msg}, indent=4)}"
            "\n\nPLAY RECAP ***\nlocalhost : ok=1 changed=0\n")


def test_rows_of_the_table_the_filter_prints():
    rows = status_table(output_of(session_table(RECORDS)))
    assert sorted(rows) == [("a-20261206t120000z", "lab-1"), ("b-20261206t120000z", "i-0abc")]
    assert rows["a-20261206t120000z", "lab-1"]["state"] == "running"
    assert rows["a-20261206t120000z", "lab-1"]["step"] == "4096/8192"
    assert rows["b-20261206t120000z", "i-0abc"]["checkpoint_age"] == "-"


def test_debug_lines_of_the_first_message_with_the_marker():
    out = output_of("other") + output_of("line one\nMARK 1") + output_of(["MARK 2"])
    assert debug_lines(out, "MARK") == ["line one", "MARK 1"]
    with pytest.raises(AssertionError, match="no 'nothing' in"):
        debug_lines(out, "nothing")
