#!/usr/bin/python
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Internal module of the trainer role: what a host has for a session, read in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: trainer_host_info
short_description: Read in one call what a host has for a trainer session
version_added: 0.1.0
description:
  - Internal module of the rlops.fleet.trainer role. Reads only; changes nothing.
  - One call instead of a getent, stat, slurp or probe task each. On a prepared host, where
    every one of those finds what it expects, their round trips were most of the role's time.
  - Every part is optional; a part that is not asked for is returned empty.
author:
  - rlops.fleet developers (!UNKNOWN)
extends_documentation_fragment:
  - rlops.fleet.attributes.info_module
options:
  user:
    description: A user to look up in the passwd database.
    type: str
    default: ""
  default_user:
    description:
      - With an empty O(user), look up the user who runs the module instead - the one who ran
        sudo (C(SUDO_USER)) when it runs through sudo, else the running user.
    type: bool
    default: false
  group:
    description:
      - A group to look up in the group database. Empty with O(user) set means the user's
        primary group.
    type: str
    default: ""
  python:
    description:
      - An interpreter to probe (command name or path) for its version, its real path and
        whether it can create venvs (C(ensurepip) and C(venv) import).
    type: str
    default: ""
  read:
    description:
      - Small text files to read; a path may hold glob patterns (C(*), C(?), C([...])).
      - A file larger than O(max_bytes) is an error.
    type: list
    elements: path
    default: []
  stat:
    description: Paths to look at (globs as in O(read)); links are not followed.
    type: list
    elements: path
    default: []
  checkpoints:
    description: A folder whose complete checkpoints (subfolders named by 12 digits) are counted.
    type: path
  commands:
    description: Command names to find on PATH.
    type: list
    elements: str
    default: []
  python_modules:
    description: Modules that the Python running this module must be able to import.
    type: list
    elements: str
    default: []
  max_bytes:
    description: The largest file O(read) returns.
    type: int
    default: 1048576
"""

EXAMPLES = r"""
- name: Read what the host has for the session
  rlops.fleet.trainer_host_info:
    user: trainer
    python: python3
    read: [/var/lib/rlops/sessions/cartpole-20260101t000000z/config/run.json]
    stat:
      - /var/lib/rlops/bin/rlops-run
      - /var/lib/rlops/venvs/*/lib/python*/site-packages/rlops_runtime-*.dist-info
    checkpoints: /var/lib/rlops/sessions/cartpole-20260101t000000z/checkpoints
    commands: [git]
    python_modules: [packaging]
  register: host
"""

RETURN = r"""
user:
  description: The passwd entry of O(user); null when there is none or none was asked for.
  type: dict
  returned: always
  sample: {name: trainer, uid: 1000, gid: 1000, home: /home/trainer}
group:
  description: The group entry of O(group) (or the user's primary group); null when there is none.
  type: dict
  returned: always
  sample: {name: trainer, gid: 1000}
python:
  description:
    - The probe of O(python) - C(version) (major.minor), C(executable) (real path), C(venv)
      (bool) - or C(error) when it did not run; empty when no interpreter was asked for.
  type: dict
  returned: always
  sample: {version: "3.11", executable: /usr/bin/python3.11, venv: true}
systemd_booted:
  description: Whether systemd runs the host (C(/run/systemd/system) is a folder).
  type: bool
  returned: always
service_mgr:
  description: C(systemd) when systemd runs the host, else the name of process 1 (C(/proc/1/comm)).
  type: str
  returned: always
  sample: systemd
runner:
  description:
    - Who runs the module - C(name), C(uid) - and C(sudo_user), who ran sudo (empty without
      sudo). These are the facts C(user_id), C(user_uid) and C(env.SUDO_USER) of
      M(ansible.builtin.setup), without a fact gathering.
  type: dict
  returned: always
  sample: {name: root, uid: 0, sudo_user: trainer}
files:
  description: Content of every file of O(read) by path; null for a plain path that is not a file.
  type: dict
  returned: always
  sample: {/var/lib/rlops/sessions/cartpole-20260101t000000z/config/run.json: "{...}\n"}
paths:
  description:
    - Every path of O(stat) that exists (or a plain path that does not) - C(exists),
      C(isdir), C(islink), C(link) (the link's target, empty when it is no link).
  type: dict
  returned: always
  sample: {/var/lib/rlops/bin/rlops-run: {exists: true, isdir: false, islink: true,
           link: /var/lib/rlops/venvs/0123456789ab/bin/rlops-run}}
checkpoints:
  description: How many complete checkpoints O(checkpoints) holds; 0 when it does not exist.
  type: int
  returned: always
commands:
  description: The path of every command of O(commands) on PATH, null when it is not there.
  type: dict
  returned: always
  sample: {git: /usr/bin/git}
python_modules:
  description: Whether each module of O(python_modules) can be imported.
  type: dict
  returned: always
  sample: {packaging: true}
"""

import glob
import grp
import importlib.util
import json
import os
import pwd
import re
import shutil
import subprocess

from ansible.module_utils.basic import AnsibleModule

CHECKPOINT_NAME = re.compile(r"[0-9]{12}")
PYTHON_PROBE = """import json, os, sys
try:
    import ensurepip, venv
    has_venv = True
except ImportError:
    has_venv = False
print(json.dumps({"version": "%d.%d" % sys.version_info[:2],
                  "executable": os.path.realpath(sys.executable), "venv": has_venv}))
"""


# --------------------------------------------------------------------------- decisions
# Pure functions: tests/unit/plugins/modules/test_trainer_host_info.py.


def has_glob(path: str) -> bool:
    return any(char in path for char in "*?[")


def parse_probe(rc: int, stdout: str, stderr: str, python: str) -> dict:
    """The interpreter probe's output -> {version, executable, venv} or {error}."""
    if rc == 0:
        try:
            found = json.loads(stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            found = None
        if isinstance(found, dict) and {"version", "executable", "venv"} <= found.keys():
            return found
    said = (stderr.strip().splitlines() or stdout.strip().splitlines() or [f"exit {rc}"])[-1]
    return {"error": f"{python} did not run the probe: {said}"}


def pick_user(user: str, default_user: bool, runner: dict) -> str:
    """The user to look up: the one asked for, else (default_user) who ran sudo or runs us."""
    if user or not default_user:
        return user
    return runner["sudo_user"] or runner["name"]


def count_checkpoints(names: list[str], is_dir) -> int:
    """Complete checkpoints are folders named by 12 digits (`.tmp-*` ones are partial)."""
    return sum(1 for name in names if CHECKPOINT_NAME.fullmatch(name) and is_dir(name))


# --------------------------------------------------------------------------- reading


def expand(paths: list[str]) -> list[tuple[str, bool]]:
    """(path, asked by name) for every plain path and every match of a glob."""
    out = []
    for path in paths:
        if has_glob(path):
            out += [(match, False) for match in sorted(glob.glob(path))]
        else:
            out.append((path, True))
    return out


def read_files(paths: list[str], max_bytes: int) -> dict[str, str | None]:
    files: dict[str, str | None] = {}
    for path, named in expand(paths):
        if not os.path.isfile(path):
            if named:
                files[path] = None
            continue
        if os.path.getsize(path) > max_bytes:
            raise ValueError(f"{path} is larger than max_bytes ({max_bytes})")
        with open(path, encoding="utf-8", errors="replace") as handle:
            files[path] = handle.read()
    return files


def stat_paths(paths: list[str]) -> dict[str, dict]:
    out = {}
    for path, named in expand(paths):
        exists = os.path.lexists(path)
        if not exists and not named:
            continue
        islink = os.path.islink(path)
        out[path] = {"exists": exists, "isdir": os.path.isdir(path) and not islink,
                     "islink": islink, "link": os.readlink(path) if islink else ""}
    return out


def lookup_user(name: str) -> dict | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return {"name": entry.pw_name, "uid": entry.pw_uid, "gid": entry.pw_gid, "home": entry.pw_dir}


def lookup_group(name: str, gid: int | None) -> dict | None:
    try:
        entry = grp.getgrnam(name) if name else grp.getgrgid(gid) if gid is not None else None
    except KeyError:
        return None
    return {"name": entry.gr_name, "gid": entry.gr_gid} if entry else None


def read_runner() -> dict:
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return {"name": name, "uid": uid, "sudo_user": os.environ.get("SUDO_USER", "")}


def service_manager(systemd_booted: bool) -> str:
    if systemd_booted:
        return "systemd"
    try:
        with open("/proc/1/comm", encoding="utf-8") as handle:
            return handle.read().strip() or "unknown"
    except OSError:
        return "unknown"


def probe_python(python: str) -> dict:
    executable = python if "/" in python else shutil.which(python)
    if not executable:
        return {"error": f"{python} is not on PATH"}
    try:
        proc = subprocess.run([executable, "-c", PYTHON_PROBE], capture_output=True, text=True,
                              timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"{python} did not run the probe: {exc}"}
    return parse_probe(proc.returncode, proc.stdout, proc.stderr, python)


def checkpoint_count(folder: str | None) -> int:
    if not folder or not os.path.isdir(folder):
        return 0
    return count_checkpoints(os.listdir(folder), lambda n: os.path.isdir(os.path.join(folder, n)))


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            user=dict(type="str", default=""),
            default_user=dict(type="bool", default=False),
            group=dict(type="str", default=""),
            python=dict(type="str", default=""),
            read=dict(type="list", elements="path", default=[]),
            stat=dict(type="list", elements="path", default=[]),
            checkpoints=dict(type="path"),
            commands=dict(type="list", elements="str", default=[]),
            python_modules=dict(type="list", elements="str", default=[]),
            max_bytes=dict(type="int", default=1048576),
        ),
        supports_check_mode=True,
    )
    p = module.params
    runner = read_runner()
    user_name = pick_user(p["user"], p["default_user"], runner)
    user = lookup_user(user_name) if user_name else None
    group = None
    if p["group"] or user:
        group = lookup_group(p["group"], user["gid"] if user else None)
    try:
        files = read_files(p["read"], p["max_bytes"])
    except (OSError, ValueError) as exc:
        module.fail_json(msg=f"reading {', '.join(p['read'])}: {exc}")
    booted = os.path.isdir("/run/systemd/system")
    module.exit_json(
        changed=False,
        user=user,
        group=group,
        python=probe_python(p["python"]) if p["python"] else {},
        systemd_booted=booted,
        service_mgr=service_manager(booted),
        runner=runner,
        files=files,
        paths=stat_paths(p["stat"]),
        checkpoints=checkpoint_count(p["checkpoints"]),
        commands={name: shutil.which(name) for name in p["commands"]},
        python_modules={name: importlib.util.find_spec(name) is not None
                        for name in p["python_modules"]},
    )


if __name__ == "__main__":
    main()
