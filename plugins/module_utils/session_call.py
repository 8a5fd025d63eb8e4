# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""What rlops.fleet.session_call decides about one call of the session layer
(`rlops-run session <verb>` on a training host): the argv, whether the call failed and with
which one message, and whether it changed anything. Pure functions; the module runs them.
tests/unit/plugins/module_utils/test_session_call.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

# The verbs of the session layer and whether each takes --check (locate only reads).
VERBS = {"locate": False, "status": True, "stop": True, "pack": True, "evaluate": True}
# Verbs whose host may have no runtime at all: such a host has no sessions (nothing to do).
NO_RUNTIME_OK = ("locate", "status")
ERROR_PREFIX = "rlops-run: error: "


def build_argv(cli, verb, data_root, session=None, args=(), check=False):
    """`<cli> session <verb> --data-root R [--session S] <args> [--check]`; stop answers
    in JSON (--json)."""
    argv = [cli, "session", verb, "--data-root", data_root]
    argv += ["--session", session] if session else []
    argv += list(args) + (["--json"] if verb == "stop" and "--json" not in args else [])
    return argv + (["--check"] if check and VERBS.get(verb) else [])


def stdin_text(data):
    """The call's stdin: a mapping or list as JSON, text as it is, nothing as None."""
    if data is None or data == "":
        return None
    return data if isinstance(data, str) else json.dumps(data)


def parse_answer(stdout):
    """The runtime's JSON answer (its last line that is a JSON object), or None."""
    for line in reversed((stdout or "").strip().splitlines()):
        try:
            answer = json.loads(line)
        except ValueError:
            continue
        if isinstance(answer, dict):
            return answer
    try:
        answer = json.loads(stdout or "")
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def failure(verb, cli, rc, stdout, stderr, answer, host=""):
    """None when the call answered, else the one message to fail with: the runtime's last
    error line; that the runtime predates the session layer when it does not know the verb;
    for stop, the runtime's own message and the end of the job's log (a list)."""
    where = host + ": " if host else ""
    if verb == "stop" and answer is not None and "ok" in answer:
        if answer["ok"]:
            return None
        return ["%s (%s)" % (answer.get("msg", "the session did not stop"), host),
                "last lines of the job log:"] + list(answer.get("log_tail") or [])
    if rc == 0 and answer is not None and verb != "stop":
        return None
    if "invalid choice" in (stderr or ""):
        return ("%sthe runtime at %s predates the session layer (it has no `rlops-run session %s`):"
                " train_new or resume a session on this host to install the runtime of this"
                " collection, which reaches every session there, older ones included"
                % (where, cli, verb))
    lines = [line for line in (stderr or "").splitlines() if line.strip()]
    said = lines[-1] if lines else ("rlops-run exited %s" % rc if rc != 0
                                    else "rlops-run gave no JSON answer")
    return said[len(ERROR_PREFIX):] if said.startswith(ERROR_PREFIX) else said


def no_runtime(verb, exists, rc=None, stdout="", stderr=""):
    """Whether the host has no runtime to ask, which is nothing to do for locate and status:
    the CLI is not there, or it ran and said nothing at all."""
    if verb not in NO_RUNTIME_OK:
        return False
    return not exists or (rc not in (None, 0) and not (stdout or "") + (stderr or ""))


def changed(verb, answer):
    """What the answer says it changed (stop: True unless it says); locate only reads; an
    evaluation always writes eval/ (in check mode: would)."""
    if verb == "locate" or answer is None:
        return False
    if verb == "evaluate":
        return True
    return bool(answer.get("changed", True))
