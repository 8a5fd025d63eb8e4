# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""What rlops.fleet.session_call decides about one call of the session layer
(`rlops-run session <verb>` on a training host): the argv, whether the call failed and with
which one message, and whether it changed anything; and for its action plugin on the
controller, the facts and the report it gives back, which files of a pack it may unpack and
how `rlops-run fetch` (from storage, on the controller) is called. Pure functions; the action
plugin runs them (the module file is its documentation).
tests/unit/plugins/module_utils/test_session_call.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

# The verbs of the session layer and whether each takes --check (locate only reads); prepare
# and start name their session by its folder (--session-dir): the trainer role's calls.
VERBS = {"locate": False, "status": True, "stop": True, "pack": True, "evaluate": True,
         "prepare": True, "start": True}
SESSION_DIR_VERBS = ("prepare", "start")
# Verbs that answer in JSON only when asked (--json), with ok and msg (and log_tail).
JSON_VERBS = ("stop", "prepare", "start")
# The verbs' options that are the module's own (prepare: mode; start: the others): the flag of
# each, in argv order. restart and enable are switches (--restart, --no-enable).
OPTIONS = ("mode", "manager", "timeout", "user", "group")
# Verbs whose host may have no runtime at all: such a host has no sessions (nothing to do).
NO_RUNTIME_OK = ("locate", "status")
# The verb the action plugin runs on the controller, with the collection's runtime.
CONTROLLER_VERBS = ("fetch",)
ERROR_PREFIX = "rlops-run: error: "
# What the host's shell says for locate and status when the CLI is not there.
NO_RUNTIME_MARK = "rlops.fleet: no runtime at this path"

# The task's arguments (plugins/modules/session_call.py documents them). Paths on the host
# are strings: the controller does not expand them. The verbs' required arguments.
ARGUMENT_SPEC = dict(
    cli=dict(type="str"),
    verb=dict(type="str", required=True, choices=list(VERBS) + list(CONTROLLER_VERBS)),
    data_root=dict(type="str"),
    session=dict(type="str"),
    args=dict(type="list", elements="str", default=[]),
    stdin=dict(type="raw", no_log=True),
    host=dict(type="str", default=""),
    dest=dict(type="path"),
    storage_uri=dict(type="str"),
    region=dict(type="str"),
    session_dir=dict(type="str"),
    mode=dict(type="str", choices=["new", "resume"]),
    manager=dict(type="str"),
    timeout=dict(type="int"),
    restart=dict(type="bool", default=False),
    enable=dict(type="bool", default=True),
    user=dict(type="str"),
    group=dict(type="str"),
)
REQUIRED_IF = [("verb", verb, ("cli", "session_dir") if verb in SESSION_DIR_VERBS
                else ("cli", "data_root")) for verb in VERBS]


def build_argv(cli, verb, data_root, session=None, args=(), check=False, session_dir=None,
               options=None):
    """`<cli> session <verb> --data-root R [--session S] <options> <args> [--check]`, or with
    session_dir `--session-dir D` instead of root and session; stop, prepare and start answer
    in JSON (--json)."""
    argv = [cli, "session", verb]
    if session_dir:
        argv += ["--session-dir", session_dir]
    else:
        argv += ["--data-root", data_root] + (["--session", session] if session else [])
    argv += option_args(options) + list(args)
    argv += ["--json"] if verb in JSON_VERBS and "--json" not in args else []
    return argv + (["--check"] if check and VERBS.get(verb) else [])


def host_argv(params, check=False):
    """build_argv of the task's (validated) arguments."""
    options = dict((name, params.get(name)) for name in OPTIONS + ("restart", "enable"))
    return build_argv(params["cli"], params["verb"], params.get("data_root"),
                      params.get("session"), params.get("args") or [], check,
                      params.get("session_dir"), options)


def shell_command(argv, verb, quote, env_prefix=""):
    """The call as one command for the host's shell: the CLI exec'd, so its exit code, stdout
    and stderr are the call's, with the task's environment (env_prefix: `NAME=value ...`, the
    shell plugin's). For locate and status only when the CLI is there; else the shell says
    NO_RUNTIME_MARK. quote: the shell's quoting (shlex.quote)."""
    command = (env_prefix + " " if env_prefix else "") + "exec " + " ".join(
        quote(part) for part in argv)
    if verb not in NO_RUNTIME_OK:
        return command
    return "if [ -e %s ]; then %s; fi; echo %s" % (quote(argv[0]), command,
                                                   quote(NO_RUNTIME_MARK))


def call_result(params, argv, rc, stdout, stderr):
    """The task's result of one call on the host (rc, stdout, stderr of shell_command): the
    runtime's answer and whether it changed anything, no answer where the host has no runtime,
    or one message to fail with; never the call's stdin. With no CLI for prepare or start
    (not installed yet), call it with rc None: nothing was asked."""
    verb, cli = params["verb"], params["cli"]
    if rc is None or no_runtime(verb, rc, stdout, stderr):
        return dict(changed=False, answer={}, runtime=False, cmd=argv)
    answer = parse_answer(stdout)
    msg = failure(verb, cli, rc, stdout, stderr, answer, params.get("host") or "",
                  params.get("session_dir"))
    answer = kept_answer(verb, answer)
    if msg is not None:
        return dict(failed=True, msg=msg, answer=answer or {}, cmd=argv, rc=rc, stderr=stderr)
    return dict(changed=changed(verb, answer), answer=answer, runtime=True, cmd=argv)


def option_args(options):
    """The flags of the options given (None or "" is not given): --mode, --manager, --timeout,
    --user, --group with their value, --restart when true, --no-enable when enable is false."""
    options = options or {}
    argv = []
    for name in OPTIONS:
        if options.get(name) not in (None, ""):
            argv += ["--" + name, str(options[name])]
    argv += ["--restart"] if options.get("restart") else []
    return argv + (["--no-enable"] if options.get("enable") is False else [])


def stdin_text(data):
    """The call's stdin: a mapping or list as JSON, text as it is, nothing (or an empty
    mapping, which the runtime reads as {} from nothing) as None. The action plugin gives the
    module this text: its no_log then masks the whole text in the output, not each value of
    the mapping on its own (a credential that equals a user name would mask the owner)."""
    if data is None or data == "" or data == {}:
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


def failure(verb, cli, rc, stdout, stderr, answer, host="", session_dir=None):
    """None when the call answered, else the one message to fail with: the runtime's last
    error line; that the runtime predates the session layer when it does not know the verb;
    prepare's own message; for stop and start, the runtime's own message and the end of the
    job's log (a list)."""
    where = host + ": " if host else ""
    if verb in JSON_VERBS and answer is not None and "ok" in answer:
        if answer["ok"]:
            return None
        said = "%s (%s)" % (answer.get("msg") or "rlops-run session %s failed" % verb, host)
        if verb == "prepare":
            return said
        log = session_dir.rstrip("/") + "/logs/job.log" if session_dir else "the job log"
        return [said, "last lines of %s:" % log] + list(answer.get("log_tail") or [])
    if rc == 0 and answer is not None and verb not in JSON_VERBS:
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


def kept_answer(verb, answer):
    """The answer the task returns: prepare's without its config (the session's settings, the
    job's environment among them; the role reads changes, summary and msg)."""
    if verb == "prepare" and answer:
        return dict((key, value) for key, value in answer.items() if key != "config")
    return answer


def no_runtime(verb, rc, stdout="", stderr=""):
    """Whether the host has no runtime to ask, which is nothing to do for locate and status:
    the shell said the CLI is not there (NO_RUNTIME_MARK), or it ran and said nothing at all."""
    if verb not in NO_RUNTIME_OK:
        return False
    if rc == 0 and (stdout or "").strip() == NO_RUNTIME_MARK:
        return True
    return rc not in (None, 0) and not (stdout or "") + (stderr or "")


def not_installed(verb, cli):
    """Whether prepare or start is given no CLI: the trainer role passes none while the
    session's venv is not there (in check mode before its install; a run without the install
    phase), so nothing is asked; in check mode the report says what would be done."""
    return verb in SESSION_DIR_VERBS and not cli


def changed(verb, answer):
    """What the answer says it changed (stop: True unless it says); locate only reads; an
    evaluation always writes eval/ (in check mode: would)."""
    if verb == "locate" or answer is None:
        return False
    if verb == "evaluate":
        return True
    return bool(answer.get("changed", True))


def facts(verb, answer, host, check=False):
    """The session layer's facts from an answer: where the session is (locate), this host's
    records and publishes, each with its host (status), the evaluation's result (evaluate)."""
    answer = answer or {}
    if verb == "locate":
        return {"rlops_session_here": bool(answer.get("here", False)),
                # The user the session's job runs as: the runtime writes into it as that user.
                "rlops_session_owner": answer.get("owner") or "",
                "rlops_session_manager": answer.get("manager") or "",
                # What runs it (run.json's backend): evaluate's DeepRacer step is the session's.
                "rlops_session_backend": answer.get("backend") or "",
                "rlops_known_sessions": list(answer.get("known") or []),
                "rlops_session_in_storage": bool(answer.get("in_storage", False))}
    if verb == "status":
        return {name: [dict(item, host=host) for item in answer.get(key) or []]
                for name, key in (("rlops_status", "records"), ("rlops_publish", "publishes"))}
    if verb == "evaluate" and not check:
        return {"rlops_eval": answer.get("result")}
    return {}


def report(verb, answer, session, host, dest="", check=False, storage_uri=""):
    """What the user is told once the call answered (a list of lines), or None."""
    answer = answer or {}
    evaluate_next = "next: ansible-playbook playbooks/evaluate.yml -e rlops_session=%s" % session
    if verb == "start" and check and not answer:  # no runtime to ask yet (not_installed)
        return ["would start session %s on %s (now never started)" % (session, host)]
    if verb in ("start", "stop") and check:
        said = ("publish", "restart", "start") if verb == "start" else ("publish", "stop")
        would = [a for a in answer.get("actions") or [] if a in said]
        return ["would %s session %s on %s (now %s)" % (
            " and ".join(would), session, host,
            (answer.get("before") or {}).get("state", "never started"))] if would else None
    if verb == "stop":
        return ["session %s on %s: %s; resume with: ansible-playbook playbooks/resume.yml"
                " -e rlops_session=%s" % (session, host,
                                          (answer.get("status") or {}).get("state", "stopped"),
                                          session)]
    if verb == "pack":
        return ["session %s from %s -> %s (%d new or changed files%s)" % (
            session, host, dest, len(answer.get("files") or []),
            " would be copied" if check else ""),
            "learning curve: %s/report/learning_curve.png" % dest, evaluate_next]
    if verb == "evaluate":
        step = answer.get("checkpoint")
        if check:
            return ["would run %s episodes of session %s's newest complete checkpoint (%s) on %s%s,"
                    " into %s/eval" % (answer.get("episodes"), session,
                                       "none yet" if step is None else "step %s" % step, host,
                                       ", recording one" if answer.get("video") else "", dest)]
        result = answer.get("result") or {}
        return ["session %s: mean return %.1f \u00b1 %.1f over %s episodes (checkpoint step %s)"
                % (session, result.get("mean_return", 0.0), result.get("std_return", 0.0),
                   result.get("episodes"), result.get("step", step)),
                "results: %s/eval" % dest]
    if verb == "fetch":
        skipped = answer.get("skipped_checkpoints") or []
        step = answer.get("checkpoint")
        return ["session %s from storage %s -> %s (%d new or changed files%s; newest complete"
                " checkpoint %s%s)" % (
                    session, storage_uri, answer.get("dest", dest),
                    len(answer.get("fetched") or []),
                    ", not copied in check mode" if check else "",
                    "none" if step is None else step,
                    " (skipped, incomplete in storage: %s)" % ", ".join(str(s) for s in skipped)
                    if skipped else ""),
                evaluate_next + " (needs a running instance)"]
    return None


def fetch_argv(python, storage_uri, session, dest, check=False):
    """`rlops-run fetch` with the collection's runtime on the controller: the storage client's
    environment, credentials included, goes on stdin."""
    return [python, "-m", "rlops_runtime.cli", "fetch", "--storage-uri", storage_uri,
            "--session", session, "--dest", dest, "--storage-env-stdin"] + (
        ["--check"] if check else [])


def fetch_env(credentials, region):
    """The storage client's environment: the credentials, with the AWS settings' region
    unless they name one."""
    env = dict(credentials or {})
    if region and not {"AWS_DEFAULT_REGION", "AWS_REGION"} & set(env):
        env["AWS_DEFAULT_REGION"] = region
    return env


def fetch_failure(session, storage_uri, rc, stderr):
    """The one message of a fetch from storage that failed."""
    lines = [line for line in (stderr or "").splitlines() if line.strip()]
    said = lines[-1] if lines else "rlops-run fetch failed (rc %s)" % rc
    said = said[len(ERROR_PREFIX):] if said.startswith(ERROR_PREFIX) else said
    return "session %s from storage %s: %s" % (session, storage_uri, said)


def unsafe_members(names):
    """The names in a pack that would land outside the results folder (absolute, or with
    `..`): a pack that has any is refused whole."""
    return [name for name in names
            if name.startswith("/") or ".." in name.replace("\\", "/").split("/")]
