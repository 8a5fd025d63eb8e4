"""The supervisor: runs one session's job, keeps status.json, syncs, stops it cleanly.

Behaviour is specified in docs/contract.md (section Supervisor). One Supervisor object
supervises one run of the job: resume choice, spawn, a polling loop, one way out.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from .backoff import Backoff
from .checkpoints import choose_resume, local_steps, newest_complete_local, remove_partial
from .jsonio import read_json, utc_iso
from .manifest import load_manifest, step_dirname
from .notices import (
    CHECKPOINT,
    RETRY_BASE,
    RETRY_CAP,
    STOP,
    Notice,
    NoticeMonitor,
    acknowledge,
    build_watchers,
    response_to,
)
from .publish import fetch_newest_complete, read_latest
from .session import SessionLayout
from .session_contract import AGENT_ARGS, DEEPRACER_BACKEND, RUN_DEFAULTS, check_run_json
from .status import Status, write_status
from .storage import Storage, StorageError, open_storage
from .sync import Syncer, unsynced_steps

log = logging.getLogger(__name__)

KILL_TIMEOUT = 10.0
# The final publish, while storage is away when the job has ended: retried after 2, 4, 8
# ... up to 30 s, for run.json's final_sync_timeout seconds in all.
FINAL_SYNC_RETRY_BASE = 2.0
FINAL_SYNC_RETRY_CAP = 30.0
# Between two polls the loop looks this often at the checkpoint folder's mtime (one stat): a
# checkpoint renamed into place is in status.json within this, not a whole poll interval.
WATCH_INTERVAL = 0.1


class NoticeWatcher(Protocol):
    """Something that learns the host is about to go away (spot, eviction)."""

    def poll(self) -> Notice | str | None:
        """A new notice, or None while there is none; a plain reason string means stop."""


@dataclass
class RunConfig:
    """config/run.json, as written by `rlops-run configure`: its keys, defaults and checks are
    the session contract's (session_contract.RUN_DEFAULTS, check_run_json)."""

    session_id: str
    storage_uri: str
    command: list[str] = field(default_factory=lambda: [sys.executable, *AGENT_ARGS])
    workdir: str = RUN_DEFAULTS["workdir"]
    env_id: str = RUN_DEFAULTS["env_id"]
    algo: str = RUN_DEFAULTS["algo"]
    total_timesteps: int = RUN_DEFAULTS["total_timesteps"]
    checkpoint_interval: int = RUN_DEFAULTS["checkpoint_interval"]
    device: str = RUN_DEFAULTS["device"]
    seed: int | None = RUN_DEFAULTS["seed"]
    sync_interval: float = RUN_DEFAULTS["sync_interval"]
    max_duration: float = RUN_DEFAULTS["max_duration"]
    stop_grace: float = RUN_DEFAULTS["stop_grace"]
    checkpoint_keep_local: int = RUN_DEFAULTS["checkpoint_keep_local"]
    final_sync_timeout: float = RUN_DEFAULTS["final_sync_timeout"]
    env: dict[str, str] = field(default_factory=lambda: dict(RUN_DEFAULTS["env"]))
    notices: str = RUN_DEFAULTS["notices"]
    imds_endpoint: str = RUN_DEFAULTS["imds_endpoint"]
    on_rebalance: str = RUN_DEFAULTS["on_rebalance"]
    backend: str = RUN_DEFAULTS["backend"]  # what runs the session (host_sessions.BACKENDS)
    # The DeepRacer backend's stack (session_contract.deepracer_problems); None otherwise.
    deepracer: dict[str, Any] | None = RUN_DEFAULTS["deepracer"]

    @classmethod
    def from_dict(cls, data: Any) -> RunConfig:
        return cls(**check_run_json(data))

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        data = read_json(path)
        if data is None:
            raise ValueError(f"{path}: missing or not valid JSON")
        return cls.from_dict(data)


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments skipped, surrounding quotes removed."""
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def load_storage_env(layout: SessionLayout) -> dict[str, str]:
    path = layout.storage_env
    return parse_env_file(path.read_text()) if path.is_file() else {}


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def term_when_parent_dies() -> Any:
    """A preexec_fn that has the kernel send the child SIGTERM when this process dies
    (Linux's parent-death signal), or None where there is no prctl. Everything it needs is
    looked up here, before the fork: the child only calls into libc and compares pids."""
    try:  # the process's own symbols: libc's prctl on Linux
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    term = int(signal.SIGTERM)

    def set_parent_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, term, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: act on it now
            os.kill(os.getpid(), term)

    return set_parent_death_signal


def job_environment(
    base: Mapping[str, str], layout: SessionLayout, config: RunConfig, resume_from: Path | None
) -> dict[str, str]:
    """The job's environment: ours, then run.json's extras, then the contract's RLOPS_*."""
    env = {**base, **{key: str(value) for key, value in config.env.items()}}
    env.update({
        "RLOPS_SESSION_ID": config.session_id,
        "RLOPS_SESSION_DIR": str(layout.root),
        "RLOPS_CHECKPOINT_DIR": str(layout.checkpoints),
        "RLOPS_RESUME_FROM": str(resume_from) if resume_from else "",
        "RLOPS_TENSORBOARD_DIR": str(layout.tensorboard),
        "RLOPS_LOG_DIR": str(layout.logs),
        "RLOPS_PROGRESS_FILE": str(layout.progress),
        "RLOPS_HYPERPARAMETERS": str(layout.hyperparameters),
        "RLOPS_ENV_ID": config.env_id,
        "RLOPS_ALGO": config.algo,
        "RLOPS_TOTAL_TIMESTEPS": str(config.total_timesteps),
        "RLOPS_CHECKPOINT_INTERVAL": str(config.checkpoint_interval),
        "RLOPS_DEVICE": config.device,
        "RLOPS_SEED": "" if config.seed is None else str(config.seed),
    })
    return env


def last_line(path: Path, tail_bytes: int = 4096) -> str | None:
    """The last non-blank line of a log file, None if there is none."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - tail_bytes))
            tail = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return None
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1] if lines else None


def folder_stamp(folder: Path | str) -> int | None:
    """The folder's mtime in ns (changed by an entry created, renamed or removed), None if
    it is missing."""
    try:
        return os.stat(folder).st_mtime_ns
    except OSError:
        return None


def newest_local_step(checkpoint_dir: Path) -> int | None:
    steps = local_steps(checkpoint_dir)
    return steps[-1] if steps else None


def choose_start(
    storage: Storage, layout: SessionLayout
) -> tuple[int, Path] | None:
    """The checkpoint to resume from: the newer of the local and the published one.

    The published one is downloaded when it is newer or the local copy is missing or
    damaged; storage trouble leaves the local choice.
    """
    local = newest_complete_local(layout.checkpoints)
    try:
        remote_step = read_latest(storage, layout.session_id)
    except StorageError as exc:
        log.warning("cannot read storage, resuming from local checkpoints only: %s", exc)
        return local
    choice = choose_resume(local[0] if local else None, remote_step)
    if choice is None or choice[0] == "local":
        return local
    try:
        fetched = fetch_newest_complete(storage, layout.session_id, layout.checkpoints)
    except StorageError as exc:
        log.warning("cannot download checkpoint %d, resuming locally: %s", choice[1], exc)
        return local
    if fetched is None or (local and local[0] >= fetched[0]):
        return local
    return fetched


class SessionBusy(RuntimeError):
    """Another supervisor runs this session."""


def lock_session(layout: SessionLayout) -> int:
    """Take the session's supervisor lock (held until the process exits); returns its fd.

    An flock dies with its holder, so a killed supervisor never leaves a stale lock.
    """
    fd = os.open(layout.lockfile, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
            raise SessionBusy(
                f"session {layout.session_id} already has a running supervisor "
                f"(lock {layout.lockfile} is held)") from None
        raise
    return fd


class Supervisor:
    """Supervise one run of a session's job (see docs/contract.md)."""

    def __init__(
        self,
        layout: SessionLayout,
        run_config: RunConfig,
        watchers: Sequence[NoticeWatcher] | None = None,
        poll_interval: float = 1.0,
        watch_interval: float = WATCH_INTERVAL,
        status_interval: float = 5.0,
        notice_interval: float = 5.0,
        sys_root: str = "/sys",
        notice_retry: tuple[float, float] = (RETRY_BASE, RETRY_CAP),
    ) -> None:
        self.layout = layout
        self.config = run_config
        # None: the watchers run.json asks for (notices, imds_endpoint), built in run().
        self.watchers = None if watchers is None else list(watchers)
        self._monitor: NoticeMonitor | None = None
        self.poll_interval = poll_interval
        self.watch_interval = min(watch_interval, poll_interval)
        self.status_interval = status_interval
        self.notice_interval = notice_interval
        # Where the firmware tells an EC2 instance (tests point it elsewhere), and the
        # backoff (base, cap) of the metadata service until it first answers.
        self.sys_root = sys_root
        self.notice_retry = notice_retry
        self.status = Status(
            session_id=run_config.session_id, supervisor_pid=os.getpid(),
            host=socket.gethostname(), total_timesteps=run_config.total_timesteps,
        )
        self._stop_signal: int | None = None
        self._signals = 0  # how many have arrived: a new one cuts the final publish short
        self._proc: subprocess.Popen[bytes] | None = None
        self._syncer: Syncer | None = None
        self._last_write = 0.0
        self._run_started = time.time()
        # A checkpoint asked for by a notice: (newest step before the request, deadline).
        self._notice_checkpoint: tuple[int | None, float] | None = None

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        # Only a flag: the loop does the stopping, never the handler.
        self._stop_signal = signum
        self._signals += 1

    # status -----------------------------------------------------------------------------

    def _write_status(self) -> None:
        self.status.updated = utc_iso()
        write_status(self.layout.status, self.status)
        self._last_write = time.monotonic()

    def _set_state(self, state: str) -> None:
        self.status.transition(state)
        log.info("session %s: %s", self.config.session_id, state)
        self._write_status()

    def _on_published(self, step: int) -> None:
        self.status.last_synced_step = step

    def _fold_sync_state(self) -> bool:
        """Unsynced checkpoints and the last sync error into the status; True if changed."""
        if self._syncer is None:
            return False
        before = (self.status.unsynced_steps, self.status.sync_error)
        self.status.unsynced_steps = unsynced_steps(
            local_steps(self.layout.checkpoints), self._syncer.published_steps,
            self._syncer.damaged_steps)
        self.status.sync_error = self._syncer.last_error
        return (self.status.unsynced_steps, self.status.sync_error) != before

    def _progress_is_current(self) -> bool:
        """progress.json from this run: an earlier run's may be ahead of the resume point."""
        try:
            return self.layout.progress.stat().st_mtime >= self._run_started
        except FileNotFoundError:
            return False

    def _refresh(self) -> None:
        """Fold progress.json and new local checkpoints into the status; write it when due."""
        progress = read_json(self.layout.progress) if self._progress_is_current() else None
        if isinstance(progress, dict):
            for key in ("step", "episodes", "mean_return", "nodes", "env_runners", "deepracer"):
                if key in progress:
                    setattr(self.status, key, progress[key])
        changed = self._fold_sync_state()
        if self._monitor is not None:
            notices = self._monitor.state()
            changed = changed or notices != self.status.notices
            self.status.notices = notices
        step = newest_local_step(self.layout.checkpoints)
        if step is not None and step != self.status.last_checkpoint_step:
            manifest = load_manifest(self.layout.checkpoints / step_dirname(step)) or {}
            self.status.last_checkpoint_step = step
            self.status.last_checkpoint_time = manifest.get("created", utc_iso())
            changed = True
        if changed or time.monotonic() - self._last_write >= self.status_interval:
            self._write_status()

    # the run ----------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until the job ends or is stopped; 0 unless the job failed.

        Raises SessionBusy, before anything is written, while another supervisor runs the
        session: that one owns status.json and the checkpoint folder.
        """
        self.layout.create()
        lock_fd = lock_session(self.layout)
        try:
            return self._run()
        finally:
            if self._monitor is not None:
                self._monitor.stop()
            os.close(lock_fd)

    def _run(self) -> int:
        layout, config = self.layout, self.config
        # Credentials reach storage (and the job) through our own environment.
        os.environ.update(load_storage_env(layout))
        storage = open_storage(config.storage_uri)
        self.status.started = utc_iso()
        self._write_status()
        # No job of this session runs: we hold its lock and have not started ours.
        remove_partial(layout.checkpoints)
        resume = choose_start(storage, layout)
        if resume:
            step, folder = resume
            self.status.resumed_from_step = self.status.step = step
            self.status.last_checkpoint_step = step
            log.info("resuming from checkpoint %s", folder)
        if self.watchers is None:
            self.watchers = build_watchers(
                config.notices, config.imds_endpoint, config.on_rebalance, os.environ,
                sys_root=self.sys_root, retry_base=self.notice_retry[0],
                retry_cap=self.notice_retry[1])
        self._monitor = NoticeMonitor(self.watchers, self.notice_interval, config.notices)
        self.status.notices = self._monitor.state()
        self._monitor.start()
        self._syncer = Syncer(
            storage, layout, interval=config.sync_interval,
            keep_local=config.checkpoint_keep_local, on_published=self._on_published,
        )
        self._syncer.start()
        if self._stop_signal is not None:
            return self._shutdown("stopped")
        try:
            self._proc = self._spawn(resume[1] if resume else None)
        except OSError as exc:
            return self._finish("failed", exit_reason=f"cannot start {config.command[0]}: {exc}")
        self.status.pid = self._proc.pid
        self._set_state("running")
        try:
            return self._loop()
        except BaseException:
            if self._proc.poll() is None:  # never leave the job running unsupervised
                self._terminate_job()
            raise

    def _spawn(self, resume_from: Path | None) -> subprocess.Popen[bytes]:
        env = job_environment(os.environ, self.layout, self.config, resume_from)
        with open(self.layout.job_log, "ab") as job_log:
            # Own session and process group: a Ctrl-C or SIGTERM meant for us does not
            # reach the job, which hears about stopping from us, in order. If we die without
            # stopping it (SIGKILL, OOM), the kernel sends it SIGTERM (a checkpoint, then
            # exit): it never trains on unsupervised until the unit's stop timeout.
            return subprocess.Popen(
                self.config.command, cwd=self.config.workdir or self.layout.root, env=env,
                stdin=subprocess.DEVNULL, stdout=job_log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=term_when_parent_dies(),
            )

    def _loop(self) -> int:
        assert self._proc is not None and self._monitor is not None
        started = time.monotonic()
        while True:
            code = self._proc.poll()
            if code is not None:
                self._refresh()
                if code == 0:
                    return self._finish("completed", exit_code=0)
                reason = last_line(self.layout.job_log) or f"exit code {code}"
                return self._finish("failed", exit_code=code, exit_reason=reason)
            if self._stop_signal is not None:
                log.info("received %s", signal.Signals(self._stop_signal).name)
                return self._shutdown("stopped")
            now = time.monotonic()
            if self.config.max_duration and now - started >= self.config.max_duration:
                log.info("max_duration of %s s reached", self.config.max_duration)
                return self._shutdown("timeout")
            notice = self._monitor.take()  # never waits: the monitor's thread polls
            if notice and self._on_notice(notice) == STOP:
                self._monitor.stop()
                code = self._shutdown("interrupted", exit_reason=notice.reason)
                acknowledge(notice)  # saved and published: the eviction may start (Azure)
                return code
            self._follow_notice_checkpoint()
            stamp = folder_stamp(self.layout.checkpoints)
            self._refresh()
            self._nap(stamp)

    def _nap(self, stamp: int | None) -> None:
        """Sleep one poll interval; wake early when the checkpoint folder changes after
        `stamp` (taken before the last look at it) or a stop signal arrives. A change within
        the clock's granularity is missed here and seen at the next poll."""
        deadline = time.monotonic() + self.poll_interval
        folder = str(self.layout.checkpoints)  # one stat a look, nothing more
        while self._stop_signal is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(self.watch_interval, left))
            if folder_stamp(folder) != stamp:
                return

    def _job_has_progress(self) -> bool:
        """The job has done something in this run: a progress report or a new checkpoint."""
        step = self.status.last_checkpoint_step
        return self._progress_is_current() or (
            step is not None and step != self.status.resumed_from_step)

    def _on_notice(self, notice: Notice) -> str:
        """Record `notice`, ask for a checkpoint if that is the answer; returns the answer."""
        response = response_to(notice, self._job_has_progress())
        log.warning("notice: %s (%s)", notice.reason, {
            STOP: "checkpoint, publish and stop",
            CHECKPOINT: "checkpoint and publish, training goes on",
        }.get(response, "recorded only"))
        self.status.notice = notice.reason
        if response == CHECKPOINT:
            before = newest_local_step(self.layout.checkpoints)
            self._notice_checkpoint = (before, time.monotonic() + self.config.stop_grace)
            self._signal_job(signal.SIGUSR1)
        if response != STOP:
            self._write_status()
        return response

    def _follow_notice_checkpoint(self) -> None:
        """Publish the checkpoint a notice asked for as soon as it is there."""
        if self._notice_checkpoint is None:
            return
        before, deadline = self._notice_checkpoint
        step = newest_local_step(self.layout.checkpoints)
        if step is not None and (before is None or step > before):
            log.info("checkpoint %d written after the notice: publishing it now", step)
            self._notice_checkpoint = None
            self._syncer.sync_soon()
        elif time.monotonic() >= deadline:
            log.warning("no new checkpoint within %s s of the notice", self.config.stop_grace)
            self._notice_checkpoint = None

    def _signal_job(self, signum: int) -> None:
        assert self._proc is not None
        if self._proc.poll() is None:
            os.kill(self._proc.pid, signum)

    def _shutdown(self, final_state: str, exit_reason: str | None = None) -> int:
        """Checkpoint request, wait, publish, stop the job, sync; then `final_state`."""
        self._set_state("stopping")
        exit_code = None
        if self._proc is not None:
            self._await_checkpoint()
            # Publish before stopping the job: after a notice the host may vanish any time.
            self._syncer.sync_once()
            exit_code = self._terminate_job()
        return self._finish(final_state, exit_code=exit_code, exit_reason=exit_reason)

    def _await_checkpoint(self) -> None:
        before = newest_local_step(self.layout.checkpoints)
        self._signal_job(signal.SIGUSR1)
        deadline = time.monotonic() + self.config.stop_grace
        while time.monotonic() < deadline and self._proc.poll() is None:
            step = newest_local_step(self.layout.checkpoints)
            if step is not None and (before is None or step > before):
                log.info("checkpoint %d written after the request", step)
                return
            time.sleep(0.1)
        log.warning("no new checkpoint after the request (job %s)",
                    "exited" if self._proc.poll() is not None else "did not answer in time")

    def _terminate_job(self) -> int:
        """SIGTERM, then SIGKILL to the job's whole process group; returns its exit code."""
        self._signal_job(signal.SIGTERM)
        # DeepRacer's driver stops a container stack on SIGTERM (the trainer's own 10 s
        # docker stop, the project down, upload-model): it gets the stop grace for that.
        timeout = (max(KILL_TIMEOUT, self.config.stop_grace)
                   if self.config.backend == DEEPRACER_BACKEND else KILL_TIMEOUT)
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("job %d ignored SIGTERM for %s s: killing it", self._proc.pid,
                        timeout)
            os.killpg(self._proc.pid, signal.SIGKILL)
            return self._proc.wait()

    def _finish(self, state: str, exit_code: int | None = None,
                exit_reason: str | None = None) -> int:
        assert self._syncer is not None
        self._syncer.stop(final_sync=True)
        self._refresh()
        self.status.exit_code = exit_code
        self.status.exit_reason = exit_reason
        self._set_state(state)
        self._publish_final()
        return 1 if state == "failed" else 0

    def _publish_final(self) -> None:
        """Sync status.json with the final state and whatever is still missing; while
        storage is away, retry with backoff for up to final_sync_timeout seconds (a new
        signal cuts it short). What is left shows in status.json's unsynced_steps, for
        `rlops-run publish` to send later."""
        syncer, timeout = self._syncer, self.config.final_sync_timeout
        deadline = time.monotonic() + timeout
        backoff = Backoff(FINAL_SYNC_RETRY_BASE, FINAL_SYNC_RETRY_CAP)
        signals = self._signals
        while True:
            syncer.sync_once()
            changed = self._fold_sync_state()
            if changed:
                self._write_status()
            if syncer.last_error is None:
                if changed:
                    syncer.sync_once()  # the status.json that says so
                if backoff.failures:
                    log.info("storage is back: the final sync went through")
                return
            now = time.monotonic()
            if now >= deadline or self._signals != signals:
                break
            delay = min(backoff.failed(now), deadline - now)
            if backoff.failures == 1:
                log.warning("final sync failed (%s); retrying for up to %s s", syncer.last_error,
                            timeout)
            while time.monotonic() < now + delay and self._signals == signals:
                time.sleep(min(0.2, delay))
        pending = self.status.unsynced_steps
        log.warning(
            "storage still unreachable after %s s: %s; `rlops-run publish --session-dir %s` "
            "sends them when it is back (status.yml, retrieve.yml and resume.yml run it)",
            timeout, f"{len(pending)} checkpoints not in storage (newest {pending[-1]})"
            if pending else "status and logs not in storage", self.layout.root)
