"""What the PLAY RECAP of an ansible-playbook run says, per host: the idempotence checks of
the end-to-end tests and of the lab's trainer image read it."""

from __future__ import annotations

import re

_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:[a-z]+=\d+\s*)+)$")


def play_recap(output: str) -> dict[str, dict[str, int]]:
    """{host: {"ok": n, "changed": n, ...}} from the last PLAY RECAP in `output`."""
    _before, found, tail = output.rpartition("PLAY RECAP")
    if not found:
        raise ValueError("no PLAY RECAP in the output")
    recap: dict[str, dict[str, int]] = {}
    for line in tail.splitlines()[1:]:
        match = _LINE.match(line.strip())
        if not match:
            if recap:
                break  # the recap ends at the first other line
            continue
        recap[match["host"]] = {key: int(value) for key, value
                                in re.findall(r"([a-z]+)=(\d+)", match["counts"])}
    if not recap:
        raise ValueError("the PLAY RECAP lists no host")
    return recap


def changed_hosts(output: str) -> dict[str, int]:
    """Hosts whose recap says changed > 0, with their count: {} for an idempotent run."""
    return {host: counts["changed"] for host, counts in play_recap(output).items()
            if counts.get("changed", 0) > 0}
