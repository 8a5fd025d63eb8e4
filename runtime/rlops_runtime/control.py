"""`rlops-run session start|stop|wait`: bring a session to the wanted state in one call.

The trainer role calls it once per host and reads one JSON answer. It publishes what storage
lacks before a start, runs the supervisor under systemd (writing the session's unit files)
or detached (`rlops-run start`), and waits for the state with a deadline. Decisions are pure
functions (`plan`, `unit_files`, `settled`); the shell around them runs systemctl and the
runtime's own commands.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from .host_sessions import (
    LAYER_ACTIONS,
    LayerError,
    add_layer_arguments,
    backend_for,
    layer_command,
)
from .jsonio import read_json
from .session import SessionLayout, validate_session_id
from .session_contract import NEW
from .status import ACTIVE_STATES, read_status
from .waiting import wait_for

# The states a started session may end a call in; anything else is a failure.
STARTED_STATES = frozenset({"running", "completed"})
UNIT_DIR = Path("/etc/systemd/system")
UNIT_TEMPLATE = "rlops-trainer@.service"
# How often a wait reads status.json (a file read and a pid check): a start or stop is
# answered within this of the state, as `rlops-run start` notices its supervisor.
POLL_SECONDS = 0.1
LOG_TAIL_LINES = 30
# The unit's restart policy: a job that keeps failing is restarted a few times (each
# restart resumes from the newest checkpoint), then left failed for someone to look at.
START_LIMIT_INTERVAL, START_LIMIT_BURST, RESTART_SEC = 900, 5, 15
HEADER = "# Written by rlops-run session start (rlops.fleet): a start writes it again.\n"


class ControlError(Exception):
    """The request cannot be carried out; the message says what and why."""


def unit_name(session_id: str) -> str:
    return f"rlops-trainer@{session_id}.service"


# --------------------------------------------------------------------------- decisions


@dataclass
class Plan:
    """What a call does, in order: publish, unit files, reset-failed, stop, start, enable."""

    actions: list[str] = field(default_factory=list)
    enable: bool | None = None  # systemd: the unit's wanted enabled state (None: leave it)

    @property
    def starts(self) -> bool:
        return bool({"start", "restart"} & set(self.actions))


def plan(want: str, manager: str, before: dict[str, Any] | None, *, restart: bool = False,
         enable: bool = True, unit_active: bool = False) -> Plan:
    """The actions that bring a session from `before` (its status entry, None when it never
    ran) to `want` (started|stopped). A completed session is left alone unless `restart` (a
    resume changed its settings); a running one restarts only for `restart`."""
    state = (before or {}).get("state", "")
    alive = bool((before or {}).get("supervisor_alive")) or unit_active
    active = state in ACTIVE_STATES and alive
    out = Plan()
    if want == "stopped":
        if manager == "systemd":
            out.actions += ["stop"] if unit_active else []
            out.enable = False
        elif active:
            out.actions.append("stop")
        return out
    if (before or {}).get("unsynced_steps") and not alive:
        out.actions.append("publish")
    if manager == "systemd":
        out.actions.append("unit_files")
        if state in ("failed", "lost"):
            out.actions.append("reset_failed")
    completed = state == "completed" and not restart
    if restart and active:
        out.actions.append("restart")
    elif not active and not completed:
        out.actions.append("start")
    if manager == "systemd":
        out.enable = enable and not completed
    return out


def settled(want: str, status: dict[str, Any] | None, before_pid: int | None,
            started: bool, until: frozenset[str] = STARTED_STATES) -> bool | None:
    """True when `status` is the wanted state (`until`, for started), False when it can no
    longer become it, None to keep waiting. After a start, a status of the earlier
    supervisor does not count."""
    if status is None:
        return None
    state = status.get("state")
    if want == "stopped":
        return True if state not in ACTIVE_STATES else None
    if started and status.get("supervisor_pid") == before_pid:
        return None
    if state in until:
        return True
    return False if state not in ACTIVE_STATES else None


def stop_status(session_id: str, status: dict[str, Any] | None) -> dict[str, Any]:
    """Where a stop leaves the session: its status entry, or for a session that has never
    run on this host (no status.json) one with the contract's state `new`."""
    if status is not None:
        return status
    return {"session_id": session_id, "state": NEW, "supervisor_alive": False}


def unit_files(data_root: str, session_id: str, user: str, group: str, cli: str,
               stop_timeout: int) -> dict[str, str]:
    """The unit template of every session and this session's drop-in, by file name."""
    template = f"""{HEADER}# One rlops.fleet training session per instance:
# rlops-trainer@<session id>.service runs the rlops-run supervisor of
# <data root>/sessions/<session id> (docs/contract.md).
# What differs between sessions (user, venv, stop timeout) is in each instance's drop-in.

[Unit]
Description=rlops training session %i
Wants=network-online.target
After=network-online.target
# The data disk (an EBS volume, a lab disk) must be mounted before the session starts.
RequiresMountsFor={data_root}
StartLimitIntervalSec={START_LIMIT_INTERVAL}
StartLimitBurst={START_LIMIT_BURST}

[Service]
Type=simple
WorkingDirectory={data_root}/sessions/%i
EnvironmentFile=-{data_root}/sessions/%i/config/storage.env
# SIGTERM to the supervisor only: it asks the job for a checkpoint, stops it and syncs;
# whatever is left when TimeoutStopSec runs out is killed. A supervisor that dies (SIGKILL)
# takes its job down at once: the job gets SIGTERM from the kernel (parent-death signal).
KillMode=mixed
Restart=on-failure
RestartSec={RESTART_SEC}
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=full
ReadWritePaths={data_root}

[Install]
WantedBy=multi-user.target
"""
    dropin = f"""{HEADER}# Session {session_id}: who runs it, from which venv, and how long a
# stop may take (the supervisor's stop grace, time to kill the job and sync, its retries of the
# final publish).
[Service]
User={user}
Group={group}
ExecStart=
ExecStart={cli} run --session-dir {data_root}/sessions/{session_id}
TimeoutStopSec={stop_timeout}
"""
    return {UNIT_TEMPLATE: template, f"{unit_name(session_id)}.d/session.conf": dropin}


def stop_timeout(run_json: dict[str, Any] | None, margin: int) -> int:
    """Seconds a stop may take: the job's stop grace, `margin`, and the final publish's
    retries (the runtime's defaults before a session has run.json)."""
    config = run_json or {}
    return int(config.get("stop_grace", 60)) + margin + int(config.get("final_sync_timeout", 180))


def failure_message(session_id: str, want: str, manager: str, waited: float,
                    status: dict[str, Any] | None, reason: str = "") -> str:
    last = status or {}
    text = (f"session {session_id} is not {want} ({manager}, waited up to {waited:.0f} s): "
            f"state {last.get('state', 'unknown')}")
    if last.get("exit_reason"):
        text += f", {last['exit_reason']}"
    return text + (f"; {reason}" if reason else "")


# --------------------------------------------------------------------------- the shell


Runner = Callable[..., subprocess.CompletedProcess]


@dataclass
class Session:
    """One session of this host and the commands that act on it."""

    layout: SessionLayout
    manager: str
    cli: str
    unit_dir: Path = UNIT_DIR
    run: Runner = subprocess.run

    @property
    def data_root(self) -> str:
        return str(self.layout.root.parent.parent)

    @property
    def unit(self) -> str:
        return unit_name(self.layout.session_id)

    def status(self) -> dict[str, Any] | None:
        from .cli import status_entry  # the same view as `rlops-run status`

        found = read_status(self.layout.status)
        if found is None:
            return None
        import socket

        return status_entry(found, socket.gethostname(), datetime.now(timezone.utc))

    def systemctl(self, *args: str) -> subprocess.CompletedProcess:
        return self.run(["systemctl", *args], capture_output=True, text=True, check=False)

    def as_owner(self) -> dict[str, Any]:
        """Run a runtime command as the session's owner (a call as root under systemd)."""
        if os.geteuid() != 0:
            return {}
        owner = self.layout.root.stat()
        return {"user": owner.st_uid, "group": owner.st_gid, "extra_groups": []}

    def runtime(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        return self.run([self.cli, *args, "--session-dir", str(self.layout.root)],
                        capture_output=True, text=True, check=False, timeout=timeout,
                        **self.as_owner())

    def write_unit_files(self, user: str, group: str, check: bool) -> bool:
        import grp
        import pwd

        if check and not self.layout.root.is_dir():
            return True  # a new session in check mode: its files would be written
        owner = self.layout.root.stat()
        user = user or pwd.getpwuid(owner.st_uid).pw_name
        group = group or grp.getgrgid(owner.st_gid).gr_name
        files = unit_files(self.data_root, self.layout.session_id, user, group, self.cli,
                           stop_timeout(read_json(self.layout.run_json), 30))
        changed = False
        for name, text in files.items():
            path = self.unit_dir / name
            if path.is_file() and path.read_text() == text:
                continue
            changed = True
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                path.chmod(0o644)
        if changed and not check:
            self.systemctl("daemon-reload")
        return changed


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def _wait(session: Session, want: str, before_pid: int | None, started: bool,
          timeout: float, until: frozenset[str] = STARTED_STATES,
          ) -> tuple[bool, dict[str, Any] | None]:
    seen: dict[str, Any] = {}

    def check() -> bool | None:
        seen["status"] = session.status()
        return settled(want, seen["status"], before_pid, started, until)

    return bool(wait_for(check, timeout, POLL_SECONDS)), seen.get("status")


def control(session: Session, want: str, *, restart: bool = False, enable: bool = True,
            user: str = "", group: str = "", timeout: float = 120,
            check: bool = False) -> dict[str, Any]:
    """Carry out the plan for `want` and answer with what was done and the final status."""
    before = session.status()
    unit_active = (session.manager == "systemd"
                   and session.systemctl("is-active", "--quiet", session.unit).returncode == 0)
    steps = plan(want, session.manager, before, restart=restart, enable=enable,
                 unit_active=unit_active)
    done: list[str] = []
    answer: dict[str, Any] = {"session_id": session.layout.session_id, "want": want,
                              "manager": session.manager, "before": before, "published": [],
                              "unit": session.unit if session.manager == "systemd" else ""}
    stop_wait = stop_timeout(read_json(session.layout.run_json), 60)
    for action in steps.actions:
        if action == "publish":
            proc = session.runtime("publish", *(["--dry-run"] if check else []))
            # Storage still away does not stop the start: the supervisor's syncs send them.
            if proc.returncode == 0:
                out = json.loads(proc.stdout)
                answer["published"] = out.get("would_publish" if check else "published", [])
                done += ["publish"] if answer["published"] else []
        elif action == "unit_files":
            done += ["unit_files"] if session.write_unit_files(user, group, check) else []
        elif check:
            done.append(action)
        elif action == "reset_failed":
            if session.systemctl("reset-failed", session.unit).returncode == 0:
                done.append(action)
        elif session.manager == "systemd":
            proc = session.systemctl(action, session.unit)
            if proc.returncode != 0:
                raise ControlError(f"systemctl {action} {session.unit}: "
                                   f"{(proc.stderr or proc.stdout).strip()}")
            done.append(action)
        else:
            if action in ("stop", "restart"):
                proc = session.runtime("stop", "--timeout", str(stop_wait), timeout=stop_wait + 30)
                if proc.returncode != 0:
                    raise ControlError((proc.stderr or proc.stdout).strip())
            if action in ("start", "restart"):
                proc = session.runtime("start", "--timeout", str(timeout), timeout=timeout + 30)
                if proc.returncode != 0:
                    said = (proc.stderr or proc.stdout).strip().splitlines() or [
                        f"rlops-run start exited {proc.returncode}"]
                    status = session.status()
                    reason = said[-1].removeprefix("rlops-run: error: ")
                    return {**answer, "ok": False, "changed": True, "actions": [*done, action],
                            "status": status, "log_tail": _tail(session.layout.job_log),
                            "msg": failure_message(session.layout.session_id, want,
                                                   session.manager, timeout, status, reason)}
            done.append(action)
    if steps.enable is not None:
        enabled = session.systemctl("is-enabled", "--quiet", session.unit).returncode == 0
        if enabled != steps.enable:
            if not check:
                session.systemctl("enable" if steps.enable else "disable", session.unit)
            done.append("enable" if steps.enable else "disable")
    answer.update(changed=bool(done), actions=done, ok=True, msg="")
    moved = bool({"start", "restart", "stop"} & set(done))
    if check or not moved:
        answer["status"] = stop_status(session.layout.session_id, before) \
            if want == "stopped" else before
        return answer
    ok, status = _wait(session, want, (before or {}).get("supervisor_pid"),
                       steps.starts, timeout if want == "started" else stop_wait)
    answer["status"] = status
    if not ok:
        answer.update(ok=False, log_tail=_tail(session.layout.job_log),
                      msg=failure_message(session.layout.session_id, want, session.manager,
                                          timeout, status))
    return answer


# --------------------------------------------------------------------------- the command


def add_parser(sub: Any) -> None:
    """`rlops-run session start|stop|wait|prepare` under the CLI's subcommands, and the
    session layer's locate|status|evaluate|pack (host_sessions.py)."""
    cmd = sub.add_parser("session", help="start, stop or wait for a session; answers in JSON")
    cmd.add_argument("action", choices=["start", "stop", "wait", "prepare", *LAYER_ACTIONS])
    cmd.add_argument("--session-dir", help="<data_root>/sessions/<session> (or --data-root "
                     "and --session)")
    cmd.add_argument("--manager", choices=["systemd", "process", "auto"], default="process",
                     help="auto: the one that runs the session now (host_sessions.pick_manager)")
    cmd.add_argument("--timeout", type=float, default=120,
                     help="seconds to wait for the job to run (start, wait)")
    cmd.add_argument("--until", default="running,completed",
                     help="wait: the states to wait for, comma-separated")
    cmd.add_argument("--restart", action="store_true",
                     help="restart a running or completed session (its settings changed)")
    cmd.add_argument("--no-enable", dest="enable", action="store_false",
                     help="systemd: do not start the session again at boot")
    cmd.add_argument("--user", default="", help="systemd: the job's user (default: the owner)")
    cmd.add_argument("--group", default="", help="systemd: the job's group")
    cmd.add_argument("--mode", choices=["new", "resume"],
                     help="prepare: a new session or a resumed one (JSON request on stdin)")
    cmd.add_argument("--check", action="store_true", help="say what would be done")
    cmd.add_argument("--json", action="store_true", help="answer in JSON (always)")
    add_layer_arguments(cmd)
    cmd.set_defaults(func=cmd_session)


def cmd_session(args: argparse.Namespace) -> int:
    if args.action in LAYER_ACTIONS or not args.session_dir or args.manager == "auto":
        return layer_command(args)  # the session layer; it comes back with both resolved
    root = Path(os.path.abspath(args.session_dir))
    validate_session_id(root.name)
    layout = SessionLayout(root)
    cli = str(Path(sys.argv[0]).absolute()) if Path(sys.argv[0]).name == "rlops-run" \
        else str(Path(sys.executable).parent / "rlops-run")
    session = Session(layout, args.manager, cli)
    if args.action == "prepare":  # rlops_runtime/prepare.py: config, storage, restore
        from .prepare import cmd_prepare

        answer = cmd_prepare(args, sys.stdin.read())
    elif args.action == "wait":
        until = frozenset(args.until.split(","))
        ok, status = _wait(session, "started", None, False, args.timeout, until)
        answer = {"session_id": layout.session_id, "ok": ok, "changed": False, "status": status,
                  "msg": "" if ok else failure_message(layout.session_id, args.until,
                                                       args.manager, args.timeout, status),
                  "log_tail": [] if ok else _tail(layout.job_log)}
    else:
        try:
            if args.action == "start" and not args.check and not layout.run_json.is_file():
                raise ControlError(f"session {layout.session_id} has no {layout.run_json}")
            # What runs the session: its run.json's backend (host_sessions.BACKENDS).
            backend = backend_for(read_json(layout.run_json))
            answer = (backend.start if args.action == "start" else backend.stop)(
                session, restart=args.restart, enable=args.enable, user=args.user,
                group=args.group, timeout=args.timeout, check=args.check)
        except (ControlError, LayerError, OSError, ValueError) as exc:
            answer = {"session_id": layout.session_id, "ok": False, "changed": True,
                      "status": session.status(), "msg": str(exc),
                      "log_tail": _tail(layout.job_log)}
    print(json.dumps(answer, indent=2))
    return 0 if answer["ok"] else 1
