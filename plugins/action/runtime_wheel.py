# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Action plugin of rlops.fleet.runtime_wheel: the wheel is the controller's, so it is built
(or found in the cache) in the worker itself - no module run, no delegation needed."""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase
from ansible_collections.rlops.fleet.plugins.modules.runtime_wheel import WheelError, build

DEFAULT_DEST = "~/.cache/rlops.fleet/wheels"


def controller_path(path: str) -> str:
    return os.path.expanduser(os.path.expandvars(path))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("src", "dest"))
    _supports_check_mode = False  # as the module: a task that needs the name says check_mode: false

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        src = self._task.args.get("src")
        if not src:
            return dict(result, failed=True, msg="missing required arguments: src")
        dest = controller_path(self._task.args.get("dest") or DEFAULT_DEST)
        try:
            result.update(build(os.path.realpath(controller_path(src)), dest))
        except (WheelError, OSError) as exc:
            return dict(result, failed=True, msg="runtime wheel from %s: %s" % (src, exc))
        return result
