"""The session layer on a host: `rlops-run session locate|status|stop|evaluate|pack`.

The one way the playbooks reach a host's sessions (roles/session, tasks/locate.yml and the
others): they name a data root and a session id, never a path under it, and read one JSON
answer. The layout is the session contract's (`SessionLayout`); what runs a session is its
backend, picked from the session's run.json (`backend`, default the single-host supervisor:
the session contract's key, default and names) in one registry, `BACKENDS`: a Ray or
DeepRacer backend adds its name to the contract's BACKEND_NAMES and an entry here.

Decisions are pure functions (`backend_for`, `pick_manager`, `publish_targets`,
`wanted_files`); the shell around them reuses the runtime's own commands: status entries
as `rlops-run status` gives them, `rlops-run publish` for sessions whose supervisor is gone,
`build_report`, `evaluate_session`, and control.py's start/stop.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pwd
import re
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .jsonio import parse_json_object, read_json
from .session import SessionLayout, validate_session_id

# run.json's key that names what runs the session, its default and its valid names are the
# session contract's (backend_name: the supervisor for sessions an older runtime started).
from .session_contract import DEEPRACER_BACKEND, DEFAULT_BACKEND, RAY_BACKEND, backend_name

# The verbs of this module; `stop` is control.py's, reached here by data root and session.
LAYER_ACTIONS = ("locate", "status", "evaluate", "pack")
SYSTEMD_BOOTED = Path("/run/systemd/system")
# What retrieve leaves on the host: credentials, the job's source tree, pid files and
# unfinished or damaged checkpoints.
RETRIEVE_SKIP = re.compile(r"(^config/storage\.env$|^source/|\.pid$|(^|/)\.tmp-|(^|/)\.damaged-)")


class LayerError(Exception):
    """The request cannot be answered; the message says what and why."""


# --------------------------------------------------------------------------- backends


def _generic_evaluate(layout: SessionLayout, args: argparse.Namespace) -> dict[str, Any]:
    """The reference agents' evaluation: the newest complete checkpoint's policy run for
    --episodes episodes into eval/ (evaluate.evaluate_session)."""
    from .evaluate import NoCheckpointError, evaluate_session

    try:
        return evaluate_session(layout, args.episodes, args.video)
    except NoCheckpointError as exc:
        raise LayerError(str(exc)) from None


@dataclass(frozen=True)
class Backend:
    """What runs a session: start, stop (each `(session, **options) -> answer`, the answer of
    `rlops-run session start|stop`) and status (`session -> status entry | None`). `session`
    is control.Session: the session's layout, the service manager and the runtime's CLI.
    evaluate `(layout, args) -> result` answers `session evaluate` (args: episodes, video)."""

    name: str
    start: Callable[..., dict[str, Any]]
    stop: Callable[..., dict[str, Any]]
    status: Callable[[Any], dict[str, Any] | None]
    evaluate: Callable[[SessionLayout, argparse.Namespace], dict[str, Any]] = _generic_evaluate


def _supervisor_start(session: Any, **options: Any) -> dict[str, Any]:
    from .control import control

    return control(session, "started", **options)


def _supervisor_stop(session: Any, **options: Any) -> dict[str, Any]:
    from .control import control

    return control(session, "stopped", **options)


def _supervisor_status(session: Any) -> dict[str, Any] | None:
    return session.status()


def deepracer_entry(entry: dict[str, Any] | None, run_json: Any) -> dict[str, Any] | None:
    """A DeepRacer session's status entry: its `deepracer` extras (what the driver last
    reported) over run.json's model and pretrained prefixes, so that the model is named
    before the driver's first report (the controller's increment reads it)."""
    if entry is None:
        return None
    stack = run_json.get("deepracer") if isinstance(run_json, dict) else None
    known = {key: stack.get(key) for key in ("model_prefix", "pretrained_prefix")} \
        if isinstance(stack, dict) else {}
    return {**entry, "deepracer": {**known, **(entry.get("deepracer") or {})}}


def _deepracer_status(session: Any) -> dict[str, Any] | None:
    return deepracer_entry(session.status(), read_json(session.layout.run_json))


def _deepracer_evaluate(layout: SessionLayout, args: argparse.Namespace) -> dict[str, Any]:
    from .deepracer import DeepRacerError, evaluate_session

    try:
        return evaluate_session(layout, args.episodes, args.video)
    except DeepRacerError as exc:
        raise LayerError(str(exc)) from None


# One entry per name of the contract's BACKEND_NAMES (a test holds them equal).
# Ray: the cluster's units on every host are the rlops.fleet.ray_cluster role's (set up and
# stopped from the controller, since no host calls another); on the head the session is a Ray
# driver (rlops_runtime.agents.rllib) under the same supervisor, whose status.json adds the
# cluster's nodes and healthy env runners from the driver's progress.
BACKENDS: dict[str, Backend] = {
    DEFAULT_BACKEND: Backend(DEFAULT_BACKEND, _supervisor_start, _supervisor_stop,
                             _supervisor_status),
    RAY_BACKEND: Backend(RAY_BACKEND, _supervisor_start, _supervisor_stop, _supervisor_status),
    # DeepRacer: the session's job is agents/deepracer.py, a driver of the deepracer_stack
    # role's compose project (up, the checkpoints, stop including the trainer rl_coach starts
    # outside it) under the same supervisor; its status names the model (run.json's before the
    # driver's first report); its evaluation is the stack's (deepracer.py).
    DEEPRACER_BACKEND: Backend(DEEPRACER_BACKEND, _supervisor_start, _supervisor_stop,
                               _deepracer_status, _deepracer_evaluate),
}


def backend_for(run_json: Any, backends: dict[str, Backend] | None = None) -> Backend:
    """The registered backend of a session; LayerError naming the known ones otherwise."""
    known = BACKENDS if backends is None else backends
    name = backend_name(run_json)
    if name not in known:
        session = run_json.get("session_id", "?") if isinstance(run_json, dict) else "?"
        raise LayerError(f"session {session} runs on backend {name!r}, which this runtime does "
                         f"not have (it has {', '.join(sorted(known))})")
    return known[name]


# --------------------------------------------------------------------------- decisions


def pick_manager(asked: str, detached_alive: bool, unit_configured: bool,
                 systemd_booted: bool) -> str:
    """The service manager that runs a session now: the one asked for, else `process` while
    a detached supervisor (`rlops-run start`) lives, `systemd` where the session has its unit
    and systemd runs the host, `process` otherwise."""
    if asked != "auto":
        return asked
    if detached_alive:
        return "process"
    return "systemd" if unit_configured and systemd_booted else "process"


def publish_targets(records: list[dict[str, Any]]) -> list[str]:
    """Sessions whose supervisor is gone with checkpoints storage lacks: `rlops-run publish`
    sends them (a live supervisor does it itself)."""
    return [r["session_id"] for r in records
            if r.get("unsynced_steps") and r.get("supervisor_alive") is False]


def wanted_files(here: dict[str, str], have: dict[str, str]) -> list[str]:
    """The session's files (relative path -> checksum) that the controller lacks or has with
    other content, without what retrieve leaves on the host; sorted."""
    return sorted(path for path, digest in here.items()
                  if not RETRIEVE_SKIP.search(path) and have.get(path) != digest)


# --------------------------------------------------------------------------- the shell


def this_cli() -> str:
    """The runtime's CLI that runs now (for `rlops-run publish` as the session's owner)."""
    if Path(sys.argv[0]).name == "rlops-run":
        return str(Path(sys.argv[0]).absolute())
    return str(Path(sys.executable).parent / "rlops-run")


def _layout(args: argparse.Namespace) -> SessionLayout:
    if not args.data_root or not args.session:
        raise LayerError(f"session {args.action} needs --data-root and --session "
                         "(or --session-dir)")
    return SessionLayout.for_session(args.data_root, validate_session_id(args.session))


def _owner(path: Path) -> str:
    try:
        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (OSError, KeyError):
        return ""


def _session(layout: SessionLayout, manager: str) -> Any:
    from .control import Session

    return Session(layout, manager, this_cli())


def host_manager(layout: SessionLayout, asked: str = "auto") -> str:
    """pick_manager with what this host says about the session."""
    from .control import UNIT_DIR, unit_name
    from .daemon import pid_alive, read_pid

    dropin = UNIT_DIR / f"{unit_name(layout.session_id)}.d" / "session.conf"
    return pick_manager(asked, pid_alive(read_pid(layout.pidfile)), dropin.is_file(),
                        SYSTEMD_BOOTED.is_dir())


def locate(args: argparse.Namespace) -> dict[str, Any]:
    """Is the session here, whose is it, what runs it; the sessions known here and in storage."""
    from .cli import _local_sessions

    layout = _layout(args)
    here = layout.run_json.is_file()
    run_json = read_json(layout.run_json) if here else None
    local = set(_local_sessions(Path(args.data_root)))
    stored: set[str] = set()
    storage_error = None
    if args.storage_uri:
        from .publish import list_sessions
        from .storage import StorageError, open_storage

        try:
            stored = set(list_sessions(open_storage(args.storage_uri)))
        except (StorageError, OSError, ValueError) as exc:
            storage_error = str(exc)
    return {"session_id": layout.session_id, "here": here,
            "owner": _owner(layout.run_json) if here else "",
            "backend": backend_name(run_json) if here else "",
            "manager": host_manager(layout) if here else "",
            "known": sorted(local | stored), "in_storage": layout.session_id in stored,
            "storage_error": storage_error, "changed": False}


def status_records(data_root: str, session: str | None) -> list[dict[str, Any]]:
    """The status entries of this host's sessions (or of one), each from its backend (the
    supervisor's: as `rlops-run status` prints them); none for a session without status."""
    from .cli import _local_sessions

    ids = [validate_session_id(session)] if session else _local_sessions(Path(data_root))
    entries = []
    for session_id in ids:
        layout = SessionLayout.for_session(data_root, session_id)
        try:
            entry = backend_for(read_json(layout.run_json)).status(_session(layout, "process"))
        except LayerError as exc:  # said in the table, the other sessions still shown
            entry = {"session_id": session_id, "state": "unknown", "exit_reason": str(exc)}
        if entry is not None:
            entries.append(entry)
    return entries


def status(args: argparse.Namespace) -> dict[str, Any]:
    """The status records, after publishing what storage lacks of sessions whose supervisor
    is gone (with --check, what publish would send). Storage still away is said in the
    publish result, not a failure."""
    records = status_records(args.data_root, args.session)
    publishes = []
    for session_id in publish_targets(records):
        layout = SessionLayout.for_session(args.data_root, session_id)
        proc = _session(layout, "process").runtime("publish",
                                                   *(["--dry-run"] if args.check else []))
        outcome = {}
        if proc.returncode == 0:
            outcome = json.loads(proc.stdout)
        publishes.append({"session_id": session_id, "rc": proc.returncode,
                          "stdout": proc.stdout, "stderr": proc.stderr,
                          "sent": outcome.get("would_publish" if args.check else "published",
                                              [])})
    changed = any(p["sent"] for p in publishes)
    if changed and not args.check:
        records = status_records(args.data_root, args.session)  # they say what was sent
    return {"records": records, "publishes": publishes, "changed": changed}


def _checksums(root: Path) -> dict[str, str]:
    sums = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            digest = hashlib.sha1()  # noqa: S324 - ansible.builtin.find's checksum on the controller
            try:
                with path.open("rb") as handle:
                    for block in iter(lambda handle=handle: handle.read(1 << 20), b""):
                        digest.update(block)
            except OSError:
                continue  # removed since listing (a rotated checkpoint)
            sums[path.relative_to(root).as_posix()] = digest.hexdigest()
    return sums


def pack(args: argparse.Namespace, stdin: str) -> dict[str, Any]:
    """Write the session's report, then pack its files that the controller lacks (stdin:
    {"have": {relative path: sha1}}) into one archive for the controller to fetch and remove.
    With --check: which files, nothing written."""
    layout = _layout(args)
    if not layout.run_json.is_file():
        raise LayerError(f"session {layout.session_id} is not on this host")
    try:
        have = parse_json_object(stdin, 'session pack ({"have": {path: sha1}})').get("have")
    except ValueError as exc:
        raise LayerError(str(exc)) from None
    if have is not None and not isinstance(have, dict):
        raise LayerError('session pack reads {"have": {path: sha1}} on stdin: "have" is not '
                         "an object")
    have = have or {}
    if not args.check:
        from .report import build_report

        build_report(layout)  # the learning curve and summary.json, rewritten every time
    files = wanted_files(_checksums(layout.root), have)
    answer: dict[str, Any] = {"session_id": layout.session_id, "files": files, "pack": None,
                              "skipped": [], "changed": bool(files)}
    if args.check or not files:
        return answer
    handle, name = tempfile.mkstemp(prefix=f"rlops-retrieve-{layout.session_id}-",
                                    suffix=".tar.gz")
    os.close(handle)
    os.chmod(name, 0o644)  # the controller's fetch may read it as another user
    with tarfile.open(name, "w:gz") as archive:
        for relative in files:
            try:  # a running job appends to its logs: what was there when read
                archive.add(layout.root / relative, arcname=relative, recursive=False)
            except OSError:
                answer["skipped"].append(relative)  # removed since listing
    answer["pack"] = name
    return answer


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the policy of the newest complete checkpoint for N episodes (eval/ of the session);
    with --check, which checkpoint would be evaluated."""
    from .checkpoints import newest_complete_local

    layout = _layout(args)
    if not layout.run_json.is_file():
        raise LayerError(f"session {layout.session_id} is not on this host")
    backend = backend_for(read_json(layout.run_json))
    found = newest_complete_local(layout.checkpoints)
    answer: dict[str, Any] = {"session_id": layout.session_id, "episodes": args.episodes,
                              "video": args.video, "checkpoint": found[0] if found else None,
                              "result": None, "files": [], "changed": not args.check}
    if args.check:
        return answer
    answer["result"] = backend.evaluate(layout, args)
    layout.eval_dir.mkdir(parents=True, exist_ok=True)
    answer["files"] = sorted(str(p) for p in layout.eval_dir.iterdir() if p.is_file())
    return answer


# --------------------------------------------------------------------------- the command


def add_layer_arguments(cmd: argparse.ArgumentParser) -> None:
    """The options of the layer's verbs on `rlops-run session`."""
    cmd.add_argument("--data-root", help="locate|status|stop|evaluate|pack: the host's data root")
    cmd.add_argument("--session", help="locate|stop|evaluate|pack (status: only this one)")
    cmd.add_argument("--storage-uri", help="locate: also list the sessions in this storage")
    cmd.add_argument(
        "--storage-env-stdin", action="store_true",
        help="locate: the storage client's environment (credentials) as JSON on stdin")
    cmd.add_argument("--episodes", type=int, default=10, help="evaluate: episodes to run")
    cmd.add_argument("--video", action="store_true", help="evaluate: record one episode")


def layer_command(args: argparse.Namespace) -> int:
    """`rlops-run session <verb>` for the layer's verbs, and start|stop|wait named by data
    root and session or with `--manager auto` (then control.py's own command)."""
    from .control import cmd_session

    try:
        if args.action not in LAYER_ACTIONS:
            if not args.session_dir:
                args.session_dir = str(_layout(args).root)
            if args.manager == "auto":
                args.manager = host_manager(SessionLayout(Path(os.path.abspath(args.session_dir))))
            return cmd_session(args)
        if args.action == "evaluate" and args.episodes < 1:
            raise LayerError(f"--episodes must be >= 1, got {args.episodes}")
        handlers: dict[str, Callable[[], dict[str, Any]]] = {
            "locate": lambda: locate(args), "status": lambda: status(args),
            "evaluate": lambda: evaluate(args),
            "pack": lambda: pack(args, "" if args.storage_env_stdin else sys.stdin.read())}
        answer = handlers[args.action]()
    except LayerError as exc:
        print(f"rlops-run: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(answer, indent=2))
    return 0


__all__ = ["BACKENDS", "Backend", "LAYER_ACTIONS", "LayerError",
           "backend_for", "backend_name", "layer_command", "pick_manager", "publish_targets",
           "wanted_files"]
