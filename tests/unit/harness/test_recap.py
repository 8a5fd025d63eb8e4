"""tests/harness/recap.py reads the PLAY RECAP the idempotence checks assert on."""

from __future__ import annotations

import pytest
from harness.recap import changed_hosts, changed_total, host_recap, play_recap


def line(host: str, ok: int, changed: int, skipped: int) -> str:
    """A recap line as ansible-playbook prints it."""
    return (f"{host:<27}: ok={ok:<4} changed={changed:<4} unreachable=0    failed=0    "
            f"skipped={skipped:<4} rescued=0    ignored=0")


OUTPUT = f"""\
TASK [Show the resumed session] ************************************************
ok: [lab-1] => {{"msg": "session x on lab-1: running; ok=3 changed=1"}}

PLAY RECAP *********************************************************************
{line("lab-1", 31, 0, 51)}
{line("lab-2", 5, 2, 3)}
{line("localhost", 4, 0, 1)}

"""


def test_counts_per_host():
    recap = play_recap(OUTPUT)
    assert sorted(recap) == ["lab-1", "lab-2", "localhost"]
    assert recap["lab-1"] == {"ok": 31, "changed": 0, "unreachable": 0, "failed": 0,
                              "skipped": 51, "rescued": 0, "ignored": 0}
    assert changed_hosts(OUTPUT) == {"lab-2": 2}


def test_the_last_recap_counts_and_later_lines_are_not_hosts():
    first = OUTPUT.replace("changed=2", "changed=0")
    assert changed_hosts(first + "\nPLAY [again]\n" + OUTPUT + "warning: x : y=1\n") == {"lab-2": 2}
    assert changed_hosts(OUTPUT + "\n" + first) == {}


@pytest.mark.parametrize("output", ["no recap here", "PLAY RECAP ****\n\nsomething else\n"])
def test_no_recap_is_an_error(output):
    with pytest.raises(ValueError):
        play_recap(output)


def test_one_host_and_the_total():
    assert host_recap(OUTPUT, "lab-2")["skipped"] == 3
    assert host_recap(OUTPUT)["ok"] == 4  # localhost
    assert changed_total(OUTPUT) == 2  # the debug message's "changed=1" is no host's count
    with pytest.raises(ValueError, match="no lab-9 in the PLAY RECAP"):
        host_recap(OUTPUT, "lab-9")
