"""rlops-run: the training host's command line (docs/contract.md, "rlops-run commands").

Bad input ends with one line on stderr, `rlops-run: error: ...`, and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

from . import session_contract as contract
from .checkpoints import local_steps
from .daemon import detach, pid_alive, read_pid
from .jsonio import utc_iso
from .session import SESSION_ID_RE, SessionLayout, validate_session_id
from .status import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    Status,
    checkpoint_age,
    observed_state,
    read_status,
    write_status,
)
from .storage import Storage, StorageError, open_storage
from .supervisor import RunConfig, SessionBusy, Supervisor, last_line
from .waiting import wait_for

PROG = "rlops-run"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class CliError(Exception):
    """Bad input or an impossible request: reported as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message}\n")


def _session_layout(session_dir: str) -> SessionLayout:
    layout = SessionLayout(Path(session_dir).resolve())
    if not layout.root.is_dir():
        raise CliError(f"session dir {session_dir} does not exist")
    return layout


def _load_config(layout: SessionLayout) -> RunConfig:
    config = RunConfig.load(layout.run_json)
    if config.session_id != layout.session_id:
        raise CliError(
            f"{layout.run_json}: session_id {config.session_id!r} does not match the "
            f"session dir {layout.root.name!r}"
        )
    return config


def _refuse_if_running(layout: SessionLayout) -> None:
    pid = read_pid(layout.pidfile)
    if pid_alive(pid):
        raise CliError(f"session {layout.session_id} is already supervised by pid {pid}")


def _supervise(layout: SessionLayout, config: RunConfig) -> int:
    supervisor = Supervisor(layout, config)
    supervisor.install_signal_handlers()
    try:
        return supervisor.run()
    except SessionBusy as exc:
        raise CliError(str(exc)) from None


def cmd_run(args: argparse.Namespace) -> int:
    layout = _session_layout(args.session_dir)
    config = _load_config(layout)
    _refuse_if_running(layout)
    layout.logs.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(layout.supervisor_log)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().addHandler(handler)
    return _supervise(layout, config)


def cmd_start(args: argparse.Namespace) -> int:
    layout = _session_layout(args.session_dir)
    config = _load_config(layout)
    _refuse_if_running(layout)
    layout.pidfile.unlink(missing_ok=True)
    pid = detach(layout.supervisor_log, layout.pidfile)
    if pid is None:  # the detached supervisor
        try:
            return _supervise(layout, config)
        finally:
            layout.pidfile.unlink(missing_ok=True)

    def started() -> Status | bool | None:
        if not pid_alive(pid):
            return False
        status = read_status(layout.status)
        return status if status and status.supervisor_pid == pid else None

    status = wait_for(started, args.timeout, 0.1)
    if status:
        print(json.dumps(status.to_dict()))
        return 0
    reason = last_line(layout.supervisor_log) or "no log"
    print(f"{PROG}: error: supervisor of {layout.session_id} did not start: {reason}",
          file=sys.stderr)
    return 1


def cmd_stop(args: argparse.Namespace) -> int:
    layout = _session_layout(args.session_dir)
    pid = read_pid(layout.pidfile)
    if not pid_alive(pid):
        status = read_status(layout.status)
        if status and status.state in ACTIVE_STATES and pid_alive(status.supervisor_pid):
            raise CliError(
                f"session {layout.session_id} is supervised by pid {status.supervisor_pid} "
                "without a pidfile (a systemd unit?): stop that instead"
            )
        print(observed_state(status, supervisor_alive=False) if status else "unknown")
        return 0
    os.kill(pid, signal.SIGTERM)

    def stopped() -> Status | None:
        status = read_status(layout.status)
        return status if status and status.state in TERMINAL_STATES and not pid_alive(pid) else None

    status = wait_for(stopped, args.timeout, 0.2)
    if status:
        print(status.state)
        return 0
    print(f"{PROG}: error: supervisor {pid} of {layout.session_id} did not stop within "
          f"{args.timeout} s", file=sys.stderr)
    return 1


def status_entry(status: Status, this_host: str, now: datetime) -> dict[str, Any]:
    """A status as reported: `lost` detection (on this host only), checkpoint age, and
    whether the supervisor still runs (None when the status comes from another host)."""
    here = status.host == this_host
    alive = pid_alive(status.supervisor_pid) if here else True
    entry = status.to_dict()
    entry["state"] = observed_state(status, alive)
    entry["checkpoint_age_s"] = checkpoint_age(status, now)
    entry["supervisor_alive"] = alive if here else None
    return entry


def _local_sessions(data_root: Path) -> list[str]:
    sessions = data_root / "sessions"
    if not sessions.is_dir():
        return []
    return sorted(
        path.name for path in sessions.iterdir()
        if path.is_dir() and SESSION_ID_RE.fullmatch(path.name)
    )


def cmd_status(args: argparse.Namespace) -> int:
    data_root = Path(args.data_root)
    ids = [args.session] if args.session else _local_sessions(data_root)
    now, host, entries = datetime.now(timezone.utc), socket.gethostname(), []
    for session_id in ids:
        status = read_status(SessionLayout.for_session(data_root, session_id).status)
        if status is None:
            if args.session:
                raise CliError(f"session {session_id} has no status.json under {data_root}")
            continue
        entries.append(status_entry(status, host, now))
    print(json.dumps(entries, indent=2))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .agents.hyperparams import read_hyperparameters
    from .prepare import job_problems

    hp = {}
    if args.hyperparameters:
        try:
            hp = read_hyperparameters(Path(args.hyperparameters))
        except FileNotFoundError:
            raise CliError(f"hyperparameters file {args.hyperparameters} does not exist") from None
    problems = job_problems(args.env_id, args.algo, hp, args.backend)
    if problems:
        raise CliError("; ".join(problems))
    print("ok")
    return 0


def cmd_check_storage(args: argparse.Namespace) -> int:
    open_storage(args.uri).check()
    print(f"ok: {args.uri}")
    return 0


def cmd_sessions(args: argparse.Namespace) -> int:
    local = set(_local_sessions(Path(args.data_root)))
    remote: set[str] = set()
    if args.check and not args.storage_uri:
        raise CliError("--check needs --storage-uri")
    if args.storage_uri:
        from .publish import list_sessions

        storage = open_storage(args.storage_uri)
        if args.check:
            storage.check()  # what check-storage does, in the same process
        remote = set(list_sessions(storage))
    listing = [
        {"session_id": sid, "local": sid in local, "storage": sid in remote}
        for sid in sorted(local | remote)
    ]
    print(json.dumps(listing, indent=2))
    return 0


def restore_config(storage: Storage, layout: SessionLayout) -> list[str]:
    """Download the session's config files that are missing here; never overwrite one."""
    restored = []
    for local in (layout.run_json, layout.hyperparameters, layout.requirements_lock):
        key = contract.config_key(layout.session_id, local.name)
        if not local.exists() and storage.exists(key):
            storage.get_file(key, local)
            restored.append(local.name)
    if not layout.run_json.exists():
        raise CliError(
            f"session {layout.session_id} is unknown to storage {storage.uri}: "
            "it has no config/run.json"
        )
    return restored


def cmd_restore(args: argparse.Namespace) -> int:
    layout = SessionLayout(Path(args.session_dir).resolve())
    validate_session_id(layout.session_id)
    print(json.dumps(restore_config(open_storage(args.storage_uri), layout)))
    return 0


# config/ files a session has in storage (never storage.env): the session contract's.
CONFIG_FILES = contract.CONFIG_FILES


def cmd_show_config(args: argparse.Namespace) -> int:
    """Print a config file of a session from storage; nothing when storage lacks it. The
    trainer role reads requirements.lock with it on a host that has only storage, before
    it installs the venv the session recorded (no session folder exists yet)."""
    validate_session_id(args.session)
    data = open_storage(args.storage_uri).get_bytes(contract.config_key(args.session, args.name))
    sys.stdout.write(data.decode() if data is not None else "")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """Bring a session home from storage: its newest complete checkpoint (verified, with the
    resume's fallback) and its other files; `--check` only reads storage."""
    from .fetch import FetchError, fetch_session

    try:
        result = fetch_session(open_storage(args.storage_uri), args.session, Path(args.dest),
                               check=args.check)
    except FetchError as exc:
        raise CliError(str(exc)) from None
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def _as_session_owner(layout: SessionLayout, path: Path) -> None:
    """Run as root (a playbook's become), give what we wrote to the session's owner: the
    supervisor, as that user, replaces status.json and opens the lock file later."""
    if os.geteuid() == 0:
        owner = layout.root.stat()
        os.chown(path, owner.st_uid, owner.st_gid)


def _record_sync(layout: SessionLayout, syncer: Any) -> list[int]:
    """status.json says what storage lacks now, and is sent there when it is reachable.
    Returns the checkpoints storage lacks: what status.json knew when storage could not
    be asked."""
    status = read_status(layout.status)
    if not syncer.storage_checked and status is not None:
        unsynced = status.unsynced_steps
    else:
        unsynced = syncer.unsynced()
    if status is None:
        return unsynced
    status.unsynced_steps = unsynced
    status.sync_error = syncer.last_error
    if syncer.last_published is not None:
        status.last_synced_step = syncer.last_published
    status.updated = utc_iso()
    write_status(layout.status, status)
    _as_session_owner(layout, layout.status)
    if syncer.last_error is None:
        syncer.sync_once()
    return unsynced


def cmd_publish(args: argparse.Namespace) -> int:
    from .supervisor import load_storage_env

    layout = _session_layout(args.session_dir)
    config = _load_config(layout)
    try:
        # Credentials from the session's own file, as its supervisor takes them.
        os.environ.update(load_storage_env(layout))
        return _publish(args, layout, open_storage(config.storage_uri))
    except OSError as exc:  # the session's files, e.g. not readable by this user
        raise CliError(f"cannot publish session {layout.session_id}: {exc}") from None


def _publish(args: argparse.Namespace, layout: SessionLayout, storage: Storage) -> int:
    from .manifest import check_folder, step_dirname
    from .publish import read_latest, stored_steps
    from .supervisor import lock_session
    from .sync import Syncer, unsynced_steps

    if args.dry_run:
        missing = unsynced_steps(local_steps(layout.checkpoints),
                                 stored_steps(storage, layout.session_id, layout.checkpoints))
        damaged = [step for step in missing
                   if check_folder(layout.checkpoints / step_dirname(step))]
        print(json.dumps({"session_id": layout.session_id,
                          "would_publish": [step for step in missing if step not in damaged],
                          "damaged": damaged}, indent=2))
        return 0
    created = not layout.lockfile.exists()
    try:
        lock_fd = lock_session(layout)
    except SessionBusy:
        raise CliError(f"session {layout.session_id} has a running supervisor: it publishes "
                       "its checkpoints itself") from None
    try:
        if created:
            _as_session_owner(layout, layout.lockfile)
        syncer = Syncer(storage, layout)  # keep_local 0: nothing is ever deleted
        published = syncer.sync_once()
        unsynced = _record_sync(layout, syncer)
    finally:
        os.close(lock_fd)
    if syncer.last_error is not None:
        left = (f"{len(unsynced)} checkpoints not in storage yet (newest {unsynced[-1]})"
                if unsynced else "every checkpoint is in storage")
        raise CliError(f"{syncer.last_error}; {left}")
    print(json.dumps({"session_id": layout.session_id, "published": published,
                      "unsynced_steps": unsynced, "damaged": sorted(syncer.damaged_steps),
                      "latest": read_latest(storage, layout.session_id)}, indent=2))
    return 0


def cmd_configure(args: argparse.Namespace) -> int:
    """Write config/run.json (and hyperparameters.json) of a new session, or apply what a
    resume may change; print what changed. Reads {"settings": {...}, "hyperparameters":
    {...} | null} from stdin. The rules are `session prepare`'s (rlops_runtime/prepare.py)."""
    from .jsonio import parse_json_object, read_json, write_json_atomic
    from .prepare import PrepareError, plan_config
    from .settings import SettingsError, describe_changes

    layout = SessionLayout(Path(args.session_dir).resolve())
    validate_session_id(layout.session_id)
    request = parse_json_object(sys.stdin.read(), "configure")
    current = read_json(layout.run_json)
    try:
        config, changes, hp = plan_config(layout, args.mode, dict(request.get("settings") or {}),
                                          request.get("hyperparameters"), current)
    except PrepareError as exc:
        raise CliError(str(exc)) from None
    except SettingsError as exc:
        raise CliError(f"session {layout.session_id}: {exc}") from None
    if changes and not args.check:
        layout.config_dir.mkdir(parents=True, exist_ok=True)
        if config != current:
            write_json_atomic(layout.run_json, config)
        if hp is not None:
            write_json_atomic(layout.hyperparameters, hp)
    print(json.dumps({"changed": bool(changes), "changes": changes,
                      "summary": describe_changes(changes), "config": config}, indent=2))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import NoCheckpointError, evaluate_session

    layout = _session_layout(args.session_dir)
    try:
        result = evaluate_session(layout, args.episodes, args.video, args.from_storage)
    except NoCheckpointError as exc:
        raise CliError(str(exc)) from None
    print(json.dumps(result, indent=2))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import build_report

    print(json.dumps(build_report(_session_layout(args.session_dir)), indent=2))
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Run and inspect rlops training sessions.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def session_command(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--session-dir", required=True, help="<data_root>/sessions/<session>")
        cmd.set_defaults(func=func)
        return cmd

    session_command("run", cmd_run, "supervise the session in the foreground")
    start = session_command("start", cmd_start, "supervise the session detached")
    start.add_argument("--timeout", type=float, default=60, help="seconds to wait for status")
    stop = session_command("stop", cmd_stop, "stop a detached supervisor")
    stop.add_argument("--timeout", type=float, default=300, help="seconds to wait for it")
    evaluate = session_command("evaluate", cmd_evaluate, "evaluate the newest checkpoint")
    evaluate.add_argument("--episodes", type=_positive_int, default=10)
    evaluate.add_argument("--video", action="store_true", help="record one episode")
    evaluate.add_argument("--from-storage", action="store_true",
                          help="download the newest complete checkpoint from storage")
    session_command("report", cmd_report, "summary.json and learning_curve.png")
    restore = session_command("restore", cmd_restore,
                              "download config/ of the session from storage if missing")
    restore.add_argument("--storage-uri", required=True)
    _storage_env_option(restore)
    show_config = sub.add_parser("show-config",
                                 help="print a config file of a session from storage")
    show_config.add_argument("--storage-uri", required=True)
    show_config.add_argument("--session", required=True)
    _storage_env_option(show_config)
    show_config.add_argument("name", choices=CONFIG_FILES)
    show_config.set_defaults(func=cmd_show_config)
    fetch = sub.add_parser(
        "fetch", help="bring a session home from storage: newest complete checkpoint, the rest")
    fetch.add_argument("--storage-uri", required=True)
    fetch.add_argument("--session", required=True)
    fetch.add_argument("--dest", required=True, help="the folder to bring it into")
    fetch.add_argument("--check", action="store_true", help="only read storage: what would change")
    _storage_env_option(fetch)
    fetch.set_defaults(func=cmd_fetch)
    publish = session_command(
        "publish", cmd_publish,
        "publish the complete local checkpoints that storage lacks (no supervisor running)")
    publish.add_argument("--dry-run", action="store_true",
                         help="only list what would be published")

    configure = session_command(
        "configure", cmd_configure,
        "write a new session's run.json, or apply what a resume may change (JSON on stdin)")
    configure.add_argument("--mode", choices=["new", "resume"], required=True)
    configure.add_argument("--check", action="store_true", help="say what would change")

    status = sub.add_parser("status", help="JSON list of sessions' status")
    status.add_argument("--data-root", required=True)
    status.add_argument("--session")
    status.set_defaults(func=cmd_status)

    validate = sub.add_parser("validate", help="check env id and hyperparameters")
    # Unset: the defaults of a new session's run.json.
    validate.add_argument("--env-id", default=RunConfig.env_id)
    validate.add_argument("--algo", default=RunConfig.algo)
    validate.add_argument("--hyperparameters", help="JSON file of hyperparameters")
    validate.add_argument("--backend", default=contract.DEFAULT_BACKEND,
                          choices=contract.BACKEND_NAMES, help="whose agent takes them")
    validate.set_defaults(func=cmd_validate)

    check = sub.add_parser("check-storage", help="check storage access and write permission")
    check.add_argument("uri")
    _storage_env_option(check)
    check.set_defaults(func=cmd_check_storage)

    sessions = sub.add_parser("sessions", help="session ids known locally and in storage")
    sessions.add_argument("--data-root", required=True)
    sessions.add_argument("--storage-uri")
    _storage_env_option(sessions)
    sessions.add_argument("--check", action="store_true",
                          help="first check storage access and write permission (check-storage)")
    sessions.set_defaults(func=cmd_sessions)

    from .control import add_parser as add_session_parser  # start|stop|wait in one call

    add_session_parser(sub)
    from .ray_cli import add_parser as add_ray_parser  # wait|status of a Ray cluster

    add_ray_parser(sub)
    from .deepracer import add_parser as add_deepracer_parser  # a DeepRacer stack's rules

    add_deepracer_parser(sub)
    return parser


def _storage_env_option(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--storage-env-stdin", action="store_true",
        help="read the storage client's environment (credentials) from stdin as a JSON "
             "object: never on a command line, where process lists and logs show it")


def read_storage_env(text: str) -> dict[str, str]:
    """The storage client's environment from stdin: a JSON object of names to values."""
    from .jsonio import parse_json_object

    env = parse_json_object(text, "--storage-env-stdin")
    return {str(key): str(value) for key, value in env.items()}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    logging.getLogger("rlops_runtime").setLevel(logging.INFO)  # not every library's chatter
    try:
        if getattr(args, "storage_env_stdin", False):
            os.environ.update(read_storage_env(sys.stdin.read()))
        return args.func(args)
    except (CliError, StorageError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
