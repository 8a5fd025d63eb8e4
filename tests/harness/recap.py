"""What the PLAY RECAP of an ansible-playbook run says, per host: the idempotence and
check-mode assertions of the end-to-end suites and the lab's trainer image read it."""

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


def host_recap(output: str, host: str = "localhost") -> dict[str, int]:
    """One host's counts: {"ok": n, "changed": n, "failed": n, ...}."""
    recap = play_recap(output)
    if host not in recap:
        raise ValueError(f"no {host} in the PLAY RECAP (hosts: {', '.join(recap)})")
    return recap[host]


def changed_total(output: str) -> int:
    """The changed count of every host of the last PLAY RECAP, added up."""
    return sum(counts.get("changed", 0) for counts in play_recap(output).values())
