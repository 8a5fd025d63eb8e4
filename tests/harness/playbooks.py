"""Run the collection's playbooks as a user does, against one target, and read a session's
status.json there. The suites' conftests configure one `Playbooks` each (this machine, the
lab's inventory, the AWS path against moto); the tests call the same methods on all."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path, PurePath, PurePosixPath
from typing import Any, Callable, Mapping

from harness.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
# The playbooks' default rlops_data_root on a remote host.
DATA_ROOT = PurePosixPath("/var/lib/rlops")


class PlaybookFailed(AssertionError):
    """A run that did not end as the test expected (failed, or did not fail)."""


def ansible_env(base: Mapping[str, str] | None = None, **overrides: str) -> dict[str, str]:
    """`base` (the controller's environment) with the settings every run of the tests uses:
    this checkout's ansible.cfg, no colours, one line per result (so that tests can search
    the output; debug messages stay JSON, see status_table.debug_lines)."""
    return {**(os.environ if base is None else base),
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json", **overrides}


class Playbooks:
    """playbooks/<name>.yml with the target's inventory and extra vars.

    - `results`: the controller's results folder (rlops_results_dir of every run);
    - `data_root`: the hosts' rlops_data_root (a Path here, a PurePosixPath on remote hosts);
    - `extra`: extra vars of every run (a test may update them), a run's own come last;
    - `inventory`: `-i` (none: the playbooks' localhost);
    - `env`: the environment of ansible-playbook (default: this process's, ansible_env's
      settings on top);
    - `logs`: a folder where each run's output is kept as NN-<playbook>[-check].log;
    - `read_json(host, path)`: how a host's JSON file is read ({} when absent or partial);
      default: this machine's file;
    - `poll_interval`: seconds between two reads of a status `wait` waits on.
    """

    def __init__(self, *, results: Path, data_root: PurePath = DATA_ROOT,
                 extra: dict[str, Any] | None = None, inventory: str | Path | None = None,
                 env: Mapping[str, str] | None = None, logs: Path | None = None,
                 timeout: float = 1800,
                 read_json: Callable[[str, PurePath], dict[str, Any]] | None = None,
                 echo: Callable[[str], None] | None = None, poll_interval: float = 0.5) -> None:
        self.results = results
        self.data_root = data_root
        self.extra = dict(extra or {})
        self.inventory = inventory
        self.env = ansible_env(env)
        self.logs = logs
        self.timeout = timeout
        self._read_json = read_json or _read_local_json
        self.echo = echo
        self.poll_interval = poll_interval
        self.runs = 0

    # ------------------------------------------------------------------ running
    def variables(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        return {"rlops_results_dir": str(self.results), **self.extra, **extra}

    def check_variables(self, variables: dict[str, Any]) -> None:
        """Refuse what this target must never run with (a hook; nothing by default)."""

    def command(self, name: str, variables: Mapping[str, Any], args: tuple[str, ...] = ()
                ) -> list[str]:
        inventory = ["-i", str(self.inventory)] if self.inventory else []
        return [str(PLAYBOOK), *inventory, f"playbooks/{name}.yml",
                "-e", json.dumps(variables), *args]

    def run(self, name: str, *args: str, ok: bool = True, check: bool = False,
            env: Mapping[str, str] | None = None, timeout: float | None = None,
            **extra: Any) -> subprocess.CompletedProcess:
        """Run playbooks/<name>.yml (`check`: with --check; `args`: more ansible-playbook
        arguments). `ok`: it must succeed (else it must fail): PlaybookFailed otherwise,
        with the tail of its output. The result has `.seconds`, its wall time."""
        args = (*args, "--check") if check and "--check" not in args else args
        shown = name + (" --check" if "--check" in args else "")
        variables = self.variables(extra)
        self.check_variables(variables)
        started = time.monotonic()
        proc = subprocess.run(self.command(name, variables, args), cwd=REPO,
                              env={**self.env, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout or self.timeout, check=False)
        proc.seconds = time.monotonic() - started  # type: ignore[attr-defined]
        self.runs += 1
        saved = ""
        if self.logs is not None:
            self.logs.mkdir(parents=True, exist_ok=True)
            path = self.logs / f"{self.runs:02d}-{shown.replace(' --', '-')}.log"
            path.write_text(proc.stdout + proc.stderr)
            saved = f" ({path})"
        if self.echo:
            self.echo(f"{shown}: rc {proc.returncode} in {time.monotonic() - started:.0f} s"
                      f"{saved}")
        if ok and proc.returncode != 0:
            raise PlaybookFailed(f"{shown} failed ({proc.returncode}) after "
                                 f"{proc.seconds:.0f} s{saved}:\n"  # type: ignore[attr-defined]
                                 f"{proc.stdout[-8000:]}\n{proc.stderr[-2000:]}")
        if not ok and proc.returncode == 0:
            raise PlaybookFailed(f"{shown} should have failed{saved}:\n{proc.stdout[-4000:]}")
        return proc

    def run_json(self, name: str, env: Mapping[str, str] | None = None,
                 **extra: Any) -> tuple[float, dict[str, Any]]:
        """Wall time and the ansible.posix.json record (plays, tasks, per-host stats)."""
        env = {"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", **(env or {})}
        proc = self.run(name, env=env, **extra)
        return proc.seconds, json.loads(proc.stdout)  # type: ignore[attr-defined]

    @staticmethod
    def session_from(output: str) -> str:
        """The session a train_new run started ("session <id> on <host>")."""
        match = re.search(r"session ([a-z0-9][a-z0-9-]*) on ", output)
        if not match:
            raise AssertionError(f"no session started in:\n{output[-3000:]}")
        return match.group(1)

    # ------------------------------------------------------------------ a session's state
    def session_dir(self, session: str) -> PurePath:
        return self.data_root / "sessions" / session

    def read_json(self, host: str, path: PurePath | str) -> dict[str, Any]:
        return self._read_json(host, PurePath(path))

    def status(self, session: str, host: str = "localhost") -> dict[str, Any]:
        """The session's status.json on `host` ({} while there is none)."""
        return self.read_json(host, self.session_dir(session) / "status.json")

    def wait(self, session: str, predicate: Callable[[dict[str, Any]], bool], timeout: float,
             what: str, host: str = "localhost") -> dict[str, Any]:
        """The session's status once `predicate(status)` holds; NotInTime after `timeout`
        seconds, with the last status and the job log's tail."""
        last: dict[str, Any] = {}

        def reached():
            last.clear()
            last.update(self.status(session, host))
            return dict(last) if predicate(last) else None

        def detail() -> str:
            return f"status {last}\n{self.job_log_tail(session, host)}"

        return wait_until(reached, timeout, f"{what} (session {session} on {host})",
                          self.poll_interval, detail)

    def job_log_tail(self, session: str, host: str = "localhost") -> str:
        """The end of the session's job log on `host` (a hook: this machine's file)."""
        log = Path(self.session_dir(session) / "logs" / "job.log")
        return log.read_text(errors="replace")[-3000:] if log.exists() else "(no job log)"


def _read_local_json(host: str, path: PurePath) -> dict[str, Any]:
    del host  # this machine
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, ValueError):
        return {}
