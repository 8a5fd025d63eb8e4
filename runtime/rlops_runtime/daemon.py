"""Detach the supervisor from the terminal (used when systemd is not there to do it)."""

from __future__ import annotations

import os
from pathlib import Path


def detach(log_path: Path, pid_path: Path) -> int | None:
    """Double fork into a new session: None in the detached process, its pid in the caller.

    The detached process has stdin on /dev/null, stdout and stderr appended to `log_path`
    and its pid in `pid_path`. The caller learns the pid through a pipe (the pidfile may
    already be gone again when the detached process fails early) and has reaped the
    intermediate child when this returns.
    """
    read_end, write_end = os.pipe()
    child = os.fork()
    if child:
        os.close(write_end)
        os.waitpid(child, 0)
        with os.fdopen(read_end) as pipe:
            return int(pipe.read())
    os.close(read_end)
    os.setsid()
    grandchild = os.fork()
    if grandchild:
        os.write(write_end, str(grandchild).encode())
        os._exit(0)  # the session leader goes: the daemon can never regain a terminal
    os.close(write_end)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    devnull = os.open(os.devnull, os.O_RDONLY)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(devnull, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(devnull)
    os.close(log_fd)
    os.chdir("/")
    pid_path.write_text(f"{os.getpid()}\n")
    return None


def read_pid(pid_path: Path) -> int | None:
    try:
        return int(pid_path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def pid_alive(pid: int | None) -> bool:
    """True while process `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    try:
        # /proc/<pid>/stat: "pid (comm) state ..."; comm may contain spaces or ")".
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
