# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Reading the kernel's small text files (sysfs, procfs) for the host modules."""


from typing import Iterable


def read_text(path: str) -> str:
    """The file's text without surrounding white space; '' when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def read_first(paths: Iterable[str]) -> str:
    """The text of the first of `paths` that can be read (a database's copies); '' if none."""
    for path in paths:
        text = read_text(path)
        if text:
            return text
    return ""
