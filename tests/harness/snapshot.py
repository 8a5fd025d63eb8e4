"""What a --check run must not change: take the state before, again after, and fail naming
every difference. The target says what its state is (the local data root, a lab host's
files and units, moto's EC2 and S3); the comparison is this one."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Callable


def tree_state(*roots: Path) -> dict[str, list]:
    """Every file and folder under the roots of this machine: type, size, mode, mtime."""
    state = {}
    for root in roots:
        if not root.exists():
            continue
        for path in sorted(root.rglob("*")):
            info = path.lstat()
            state[str(path)] = [path.is_dir(), info.st_size, info.st_mode, info.st_mtime_ns]
    return state


def assert_unchanged(before: Any, after: Any, what: str) -> None:
    """Fail with a unified diff (the first 200 lines) when `after` is not `before`."""
    if before == after:
        return
    lines = difflib.unified_diff(
        json.dumps(before, indent=1, sort_keys=True, default=str).splitlines(),
        json.dumps(after, indent=1, sort_keys=True, default=str).splitlines(),
        "before", "after", lineterm="", n=2)
    raise AssertionError(f"--check changed {what}:\n" + "\n".join(list(lines)[:200]))


class Unchanged:
    """`Unchanged(read)` takes `read()` now ({part: state}); `check(runs)` takes it again and
    fails on any difference, part by part, naming the part and the runs."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.read = read
        self.before = read()

    def check(self, runs: str) -> None:
        after = self.read()
        for part in sorted(self.before.keys() | after.keys()):
            assert_unchanged(self.before.get(part), after.get(part), f"{part} ({runs})")
