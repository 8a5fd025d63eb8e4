"""rlops.fleet.session_call's action plugin: the call on the host through the connection (argv,
stdin, environment, become's shell) and what it makes of the answer; what it tells the host the
controller has."""

import hashlib
import json
import sys
from types import SimpleNamespace

import pytest
from ansible.errors import AnsibleActionFail
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import connection_loader
from ansible.template import Templar
from ansible_collections.rlops.fleet.plugins.action.session_call import (
    ActionModule,
    local_checksums,
)


def test_local_checksums_are_sha1_by_relative_path_hidden_files_included_links_not(tmp_path):
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "summary.json").write_bytes(b"{}")
    (tmp_path / ".hidden").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / ".hidden")
    assert local_checksums(str(tmp_path)) == {
        "report/summary.json": hashlib.sha1(b"{}").hexdigest(),
        ".hidden": hashlib.sha1(b"x").hexdigest()}


# The call on the host: the action plugin through a real local connection, a real executable
# standing in for rlops-run. It records its argv, stdin and environment next to itself, then
# answers as told by its ANSWER/RC/ERR files.
FAKE_CLI = """#!{python}
import json, os, pathlib, sys
here = pathlib.Path(__file__).parent
(here / "called.json").write_text(json.dumps({{"argv": sys.argv[1:], "stdin": sys.stdin.read(),
                                              "env": os.environ.get("RLOPS_TEST_ENV")}}))
sys.stdout.write((here / "answer").read_text() if (here / "answer").exists() else "")
sys.stderr.write((here / "err").read_text() if (here / "err").exists() else "")
sys.exit(int((here / "rc").read_text()) if (here / "rc").exists() else 0)
"""


def fake_cli(tmp_path, answer=None, rc=0, err=""):
    cli = tmp_path / "rlops-run"
    cli.write_text(FAKE_CLI.format(python=sys.executable))
    cli.chmod(0o755)
    if answer is not None:
        (tmp_path / "answer").write_text(answer if isinstance(answer, str) else json.dumps(answer))
    (tmp_path / "rc").write_text(str(rc))
    (tmp_path / "err").write_text(err)
    return cli


def called(tmp_path):
    return json.loads((tmp_path / "called.json").read_text())


def run_action(args, check_mode=False, environment=None):
    """The plugin's run() as a task of a play on localhost would run it (connection local)."""
    context = PlayContext()
    connection = connection_loader.get("local", context, None)
    task = SimpleNamespace(args=dict(args), async_val=0, check_mode=check_mode, diff=False,
                           action="rlops.fleet.session_call", environment=environment,
                           delegate_to=None)
    loader = DataLoader()
    action = ActionModule(task, connection, context, loader, Templar(loader=loader), None)
    return action.run(task_vars={"inventory_hostname": "h1"})


def call(cli, verb, check_mode=False, **args):
    return run_action(dict(cli=str(cli), verb=verb, data_root="/d", **args), check_mode)


def test_locate_sends_the_credentials_on_stdin_and_returns_the_answer(tmp_path):
    cli = fake_cli(tmp_path, {"here": True, "owner": "rl", "changed": False})
    result = call(cli, "locate", session="s1", args=["--storage-env-stdin"],
                  stdin={"AWS_SECRET_ACCESS_KEY": "k3y"})
    assert not result.get("failed") and result["answer"]["owner"] == "rl"
    assert result["changed"] is False
    assert result["ansible_facts"]["rlops_session_owner"] == "rl"
    assert called(tmp_path) == {"argv": ["session", "locate", "--data-root", "/d", "--session",
                                         "s1", "--storage-env-stdin"],
                                "stdin": '{"AWS_SECRET_ACCESS_KEY": "k3y"}\n', "env": None}
    assert "k3y" not in json.dumps(result)


def test_the_tasks_environment_reaches_the_runtime(tmp_path):
    cli = fake_cli(tmp_path, {"records": [], "publishes": []})
    result = run_action(dict(cli=str(cli), verb="status", data_root="/d"),
                        environment=[{"RLOPS_TEST_ENV": "a b'c"}])
    assert not result.get("failed") and called(tmp_path)["env"] == "a b'c"


@pytest.mark.parametrize("verb", ["status", "locate"])
def test_no_runtime_is_nothing_to_do_for_status_and_locate(tmp_path, verb):
    result = call(tmp_path / "missing", verb, session="s1")
    assert not result.get("failed") and result["answer"] == {} and result["runtime"] is False


def test_no_runtime_for_stop_fails_with_the_shells_word(tmp_path):
    result = call(tmp_path / "missing", "stop", session="s1")
    assert result["failed"] and "not found" in result["msg"] and result["rc"] == 127


@pytest.mark.parametrize("check_mode", [True, False])
def test_start_without_a_cli_asks_nothing(tmp_path, check_mode):
    fake_cli(tmp_path, {"ok": True, "changed": True})
    result = run_action(dict(cli="", verb="start", session_dir=str(tmp_path / "s1"),
                             manager="process"), check_mode)
    assert not result.get("failed") and result["changed"] is False
    assert not (tmp_path / "called.json").exists()
    assert result["msg"] if check_mode else result["answer"] == {}


def test_check_mode_runs_with_check_and_changed_comes_from_the_answer(tmp_path):
    cli = fake_cli(tmp_path, {"records": [], "publishes": [], "changed": True})
    result = call(cli, "status", check_mode=True)
    assert not result.get("failed") and result["changed"] is True
    assert called(tmp_path)["argv"][-1] == "--check"


def test_bad_arguments_fail_before_the_host_is_asked(tmp_path):
    cli = fake_cli(tmp_path, {})
    with pytest.raises(AnsibleActionFail, match="session_dir"):
        run_action(dict(cli=str(cli), verb="start"))
    with pytest.raises(AnsibleActionFail, match="verb"):
        run_action(dict(cli=str(cli), verb="launch", data_root="/d"))
    assert not (tmp_path / "called.json").exists()


def test_an_unknown_verb_of_an_old_runtime_fails_with_one_message(tmp_path):
    cli = fake_cli(tmp_path, rc=2, err="rlops-run session: error: argument action: "
                                       "invalid choice: 'pack'\n")
    result = call(cli, "pack", session="s1", host="gpu1")
    assert result["failed"] and result["msg"].startswith(f"gpu1: the runtime at {cli} predates")


def test_the_runtime_error_line_is_the_message(tmp_path):
    cli = fake_cli(tmp_path, rc=2, err="rlops-run: error: session s1 is not on this host\n")
    result = call(cli, "evaluate", session="s1")
    assert result["failed"] and result["msg"] == "session s1 is not on this host"


def test_a_stop_that_failed_says_the_job_log(tmp_path):
    cli = fake_cli(tmp_path, {"ok": False, "msg": "not stopped", "log_tail": ["oom"]}, rc=1)
    result = call(cli, "stop", session="s1", args=["--manager", "auto"], host="gpu1")
    assert result["failed"]
    assert result["msg"] == ["not stopped (gpu1)", "last lines of the job log:", "oom"]
    assert called(tmp_path)["argv"][-3:] == ["--manager", "auto", "--json"]


def test_prepare_sends_the_request_on_stdin_and_returns_the_answer_without_config(tmp_path):
    cli = fake_cli(tmp_path, {"ok": True, "changed": True, "changes": {"a": [1, 2]},
                              "summary": ["a 1 -> 2"], "config": {"env": {}}, "msg": ""})
    result = call(cli, "prepare", session_dir="/d/sessions/s1", mode="resume",
                  stdin='{"credentials": {"K": "v"}}', check_mode=True)
    assert not result.get("failed") and result["changed"] is True
    assert "config" not in result["answer"] and result["answer"]["summary"] == ["a 1 -> 2"]
    assert called(tmp_path) == {"argv": ["session", "prepare", "--session-dir", "/d/sessions/s1",
                                         "--mode", "resume", "--json", "--check"],
                                "stdin": '{"credentials": {"K": "v"}}\n', "env": None}


def test_prepare_refused_fails_with_the_runtimes_message(tmp_path):
    cli = fake_cli(tmp_path, {"ok": False, "changed": False, "msg": "bad storage"}, rc=1)
    result = call(cli, "prepare", session_dir="/d/s/s1", mode="new", host="gpu1")
    assert result["failed"] and result["msg"] == "bad storage (gpu1)"


def test_a_start_that_failed_says_its_job_log(tmp_path):
    cli = fake_cli(tmp_path, {"ok": False, "msg": "exited", "log_tail": ["oom"]}, rc=1)
    result = call(cli, "start", session_dir="/d/s/s1", manager="systemd", timeout=60,
                  user="rl", group="rl", enable=False, host="gpu1")
    assert result["failed"]
    assert result["msg"] == ["exited (gpu1)", "last lines of /d/s/s1/logs/job.log:", "oom"]
    assert called(tmp_path)["argv"] == [
        "session", "start", "--session-dir", "/d/s/s1", "--manager", "systemd", "--timeout",
        "60", "--user", "rl", "--group", "rl", "--no-enable", "--json"]


def test_no_rc_in_a_result_that_did_not_fail(tmp_path):
    """Ansible fails a task whose result has an rc other than 0: a host without the runtime
    (a CLI that exits without a word) is not a failure."""
    for cli in (tmp_path / "missing", fake_cli(tmp_path, rc=127)):
        result = call(cli, "locate", session="s1")
        assert not result.get("failed") and "rc" not in result and result["answer"] == {}


def test_a_call_without_stdin_reads_the_empty_request_never_a_terminal(tmp_path):
    """ssh gives a command without stdin a terminal (-tt), where --storage-env-stdin with no
    credentials would wait forever: the call always sends stdin, {} when it has nothing."""
    cli = fake_cli(tmp_path, {"here": False, "known": []})
    result = call(cli, "locate", session="s1", args=["--storage-env-stdin"], stdin={})
    assert not result.get("failed") and called(tmp_path)["stdin"] == "{}\n"
