"""The status playbook's table (plugins/filter/session_table.py) and the debug messages it and
the AWS path print, read back from an ansible-playbook output in the JSON result format."""

from __future__ import annotations

import json

HEADER = "CHECKPOINT AGE"  # the session table's last column
COLUMNS = ("session", "host", "state", "step", "return", "checkpoint_age")


def debug_lines(output: str, marker: str) -> list[str]:
    """The lines of the first debug message that holds `marker` (a list of lines, or one)."""
    at = output.find(marker)
    start = output.rfind("=> {", 0, at)
    if at < 0 or start < 0:
        raise AssertionError(f"no {marker!r} in:\n{output[-3000:]}")
    result, _end = json.JSONDecoder().raw_decode(output, start + 3)
    msg = result["msg"]
    return msg if isinstance(msg, list) else str(msg).splitlines()


def status_table(output: str) -> dict[tuple[str, str], dict[str, str]]:
    """{(session, host): {"session", "host", "state", "step", "return", "checkpoint_age"}}
    from the session table in a status run's output."""
    rows = {}
    for line in debug_lines(output, HEADER)[1:]:
        cells = line.split(None, len(COLUMNS) - 1)
        if len(cells) == len(COLUMNS):
            row = dict(zip(COLUMNS, cells))
            rows[row["session"], row["host"]] = row
    return rows
