# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""rlops.fleet.session_call: one `rlops-run session <verb>` on the host, run through the
connection as a command (become as the task says; stdin the request), whose JSON answer is the
module's result - no module process around it: the runtime is the host's side. Then what the
controller does with the answer - the session layer's facts, the report shown, a pack fetched,
unpacked and removed, the evaluation's files fetched - and `rlops-run fetch` from storage with
the collection's runtime. The decisions are the pure functions of module_utils/session_call.py;
this is the I/O around them. The module file is the documentation."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import shlex
import subprocess
import sys
import tarfile

from ansible.plugins.action import ActionBase
from ansible_collections.rlops.fleet.plugins.module_utils.session_call import (
    ARGUMENT_SPEC,
    REQUIRED_IF,
    call_result,
    facts,
    fetch_argv,
    fetch_env,
    fetch_failure,
    host_argv,
    not_installed,
    parse_answer,
    report,
    shell_command,
    stdin_text,
    unsafe_members,
)

# The collection's runtime (runtime/ beside plugins/), run by `fetch` with the controller's
# Python: standard library but for boto3, which the controller has for amazon.aws.
RUNTIME = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "runtime")


def local_checksums(root):
    """{path relative to root: sha1} of the files under root (hidden ones too; no links):
    what the controller has, as ansible.builtin.find would checksum it."""
    sums = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            digest = hashlib.sha1()  # nosec - a content checksum, the runtime's (host_sessions.py)
            with open(path, "rb") as handle:
                for block in iter(lambda handle=handle: handle.read(1 << 20), b""):
                    digest.update(block)
            sums[os.path.relpath(path, root)] = digest.hexdigest()
    return sums


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(ARGUMENT_SPEC, required_if=REQUIRED_IF)
        args["host"] = args["host"] or task_vars.get("inventory_hostname", "")
        verb, dest, check = args.get("verb"), args.pop("dest", None), bool(self._task.check_mode)
        try:
            if verb == "fetch":
                result.update(self._fetch(args, dest, check))
            else:
                result.update(self._call(args, dest, check, task_vars))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        if not result.get("failed"):
            found = facts(verb, result.get("answer"), args["host"], check)
            result.update({"ansible_facts": found} if found else {})
            session = args.get("session") or os.path.basename(
                (args.get("session_dir") or "").rstrip("/"))
            said = report(verb, result.get("answer"), session, args["host"], dest, check,
                          args.get("storage_uri", ""))
            if said:  # shown as debug shows a message: the report and the answer, not the call
                result.update(msg=said, _ansible_verbose_always=True)
                result.pop("cmd", None)
                result.pop("runtime", None)
        return result

    def _module(self, name, module_args, task_vars):
        return self._execute_module(module_name=name, module_args=module_args,
                                    task_vars=task_vars)

    def _call(self, args, dest, check, task_vars):
        """The host's answer; with dest, what pack and evaluate bring home."""
        if args["verb"] == "pack" and dest:
            args["stdin"] = {"have": local_checksums(dest) if os.path.isdir(dest) else {}}
        result = self._run_cli(args, check)
        answer = result.get("answer") or {}
        if result.get("failed") or not dest or check:
            return result
        if args["verb"] == "pack":
            os.makedirs(dest, mode=0o755, exist_ok=True)
            if answer.get("pack"):
                result.update(self._bring_pack(answer["pack"], dest, task_vars))
        evaluated = answer.get("files") or [] if args["verb"] == "evaluate" else []
        for path in evaluated:
            fetched = self._fetch_file(path, os.path.join(dest, "eval", os.path.basename(path)),
                                       task_vars)
            if fetched.get("failed"):
                return fetched
        return result

    def _run_cli(self, args, check):
        """The call on the host: the CLI through the host's shell, with the task's environment
        and become, the request on stdin (never in argv or the environment)."""
        argv = host_argv(args, check)
        if not_installed(args["verb"], args["cli"]):
            return call_result(args, argv, None, "", "")
        # Always something on stdin: ssh gives a command without stdin a terminal (-tt), where
        # a read (--storage-env-stdin with no credentials) would wait forever; {} is the
        # empty request, as nothing is to the runtime.
        data = stdin_text(args.get("stdin"))
        command = shell_command(argv, args["verb"], shlex.quote,
                                self._compute_environment_string())
        ran = self._low_level_execute_command(command, sudoable=True, chdir="/",
                                              in_data=(("{}" if data is None else data)
                                                       + "\n").encode("utf-8"))
        return call_result(args, argv, ran["rc"], ran["stdout"], ran["stderr"])

    def _fetch_file(self, src, dest, task_vars):
        """ansible.builtin.fetch's own action: it reads through become where the task becomes."""
        task = self._task.copy()
        task.args.clear()
        task.args.update(src=src, dest=dest, flat=True)
        fetch = self._shared_loader_obj.action_loader.get(
            "ansible.legacy.fetch", task=task, connection=self._connection,
            play_context=self._play_context, loader=self._loader, templar=self._templar,
            shared_loader_obj=self._shared_loader_obj)
        return fetch.run(task_vars=task_vars)

    def _bring_pack(self, pack, dest, task_vars):
        """Fetch the host's pack, unpack it into dest, remove it on both sides."""
        local = dest.rstrip("/") + ".pack.tar.gz"
        try:
            fetched = self._fetch_file(pack, local, task_vars)
            if fetched.get("failed"):
                return dict(fetched, msg="%s: fetch the pack %s: %s"
                            % (self._task.args.get("session"), pack, fetched.get("msg")))
            with tarfile.open(local) as archive:
                bad = unsafe_members(archive.getnames())
                if bad:
                    return dict(failed=True, msg="the pack %s of session %s names paths outside"
                                " %s: %s" % (pack, self._task.args.get("session"), dest,
                                             ", ".join(bad)))
                archive.extractall(dest, **({"filter": "data"} if hasattr(tarfile, "data_filter")
                                            else {}))
        finally:
            removed = self._module("ansible.legacy.file", {"path": pack, "state": "absent"},
                                   task_vars)
            if os.path.exists(local):
                os.remove(local)
        if removed.get("failed"):
            return dict(failed=True, msg="remove the pack %s on the host: %s"
                        % (pack, removed.get("msg")))
        return {}

    def _fetch(self, args, dest, check):
        """`rlops-run fetch` on the controller: the session from storage into dest."""
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [RUNTIME] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        proc = subprocess.run(  # nosec - an argv list, no shell
            fetch_argv(sys.executable, args["storage_uri"], args["session"], dest, check),
            input=json.dumps(fetch_env(args.get("stdin"), args.get("region"))),
            capture_output=True, text=True, env=env, check=False)
        answer = parse_answer(proc.stdout) if proc.returncode == 0 else None
        if answer is None:
            return dict(failed=True, rc=proc.returncode, msg=fetch_failure(
                args["session"], args["storage_uri"], proc.returncode, proc.stderr))
        return dict(changed=bool(answer.get("changed")), answer=answer)
