"""Counts the task results of every play per host and writes them to a JSON file.

A notification callback for the benchmarks (bench/time_to_first_checkpoint.py), enabled
only by them: ANSIBLE_CALLBACK_PLUGINS=<bench>/callback_plugins,
ANSIBLE_CALLBACKS_ENABLED=rlops_bench_tasks, RLOPS_BENCH_TASKS_FILE=<where to write>.
For each play (its name and host pattern, in order) and host: results ok, changed,
skipped, failed, unreachable, and included (an include_tasks / include_role, counted
apart from ok: it shows as "included:" in the output). The file is written when
the playbook ends (v2_playbook_on_stats), so a run that crashes leaves none.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: rlops_bench_tasks
    type: aggregate
    short_description: counts task results per play and host (rlops.fleet benchmarks)
    description: Writes the counts to the file named by RLOPS_BENCH_TASKS_FILE.
    requirements: [enable it in callbacks_enabled]
"""

KINDS = ("ok", "changed", "skipped", "failed", "unreachable", "included")
INCLUDES = {prefix + name for prefix in ("", "ansible.builtin.", "ansible.legacy.")
            for name in ("include_tasks", "include_role")}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "rlops_bench_tasks"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.plays: list[dict] = []

    def _count(self, host: str, kind: str) -> None:
        if not self.plays:  # a result outside any play: not expected, kept visible
            self.plays.append({"name": "", "hosts": [], "counts": {}})
        counts = self.plays[-1]["counts"].setdefault(host, dict.fromkeys(KINDS, 0))
        counts[kind] += 1

    def v2_playbook_on_play_start(self, play) -> None:
        hosts = play.hosts if isinstance(play.hosts, list) else [play.hosts]
        self.plays.append({"name": play.get_name().strip(), "hosts": [str(h) for h in hosts],
                           "counts": {}})

    def v2_runner_on_ok(self, result) -> None:
        if result._task.action in INCLUDES:
            kind = "included"
        else:
            kind = "changed" if result._result.get("changed") else "ok"
        self._count(result._host.get_name(), kind)

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:
        self._count(result._host.get_name(), "failed")

    def v2_runner_on_skipped(self, result) -> None:
        self._count(result._host.get_name(), "skipped")

    def v2_runner_on_unreachable(self, result) -> None:
        self._count(result._host.get_name(), "unreachable")

    def v2_playbook_on_stats(self, stats) -> None:
        path = os.environ.get("RLOPS_BENCH_TASKS_FILE")
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump({"plays": self.plays}, handle, indent=2)
