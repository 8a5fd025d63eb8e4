"""rlops.fleet.session_call in-process against a real executable standing in for rlops-run:
what it is given (argv, stdin) and what the module makes of its answer."""

import json
import sys

import pytest
from ansible.module_utils.basic import remove_values
from ansible.module_utils.common.parameters import _list_no_log_values
from ansible_collections.rlops.fleet.plugins.modules import session_call

# Records its argv and stdin next to itself, then answers as told by ANSWER/RC/ERR files.
FAKE_CLI = """#!{python}
import json, pathlib, sys
here = pathlib.Path(__file__).parent
(here / "called.json").write_text(json.dumps({{"argv": sys.argv[1:], "stdin": sys.stdin.read()}}))
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


def call(run_module, cli, verb, check_mode=False, **args):
    return run_module(session_call.main, dict(cli=str(cli), verb=verb, data_root="/d", **args),
                      check_mode=check_mode, common={})


def test_locate_sends_the_credentials_on_stdin_and_returns_the_answer(tmp_path, run_module):
    cli = fake_cli(tmp_path, {"here": True, "owner": "rl", "changed": False})
    result, failed = call(run_module, cli, "locate", session="s1",
                          args=["--storage-env-stdin"], stdin={"AWS_SECRET_ACCESS_KEY": "k"})
    assert not failed and result["answer"]["owner"] == "rl" and result["changed"] is False
    assert called(tmp_path) == {"argv": ["session", "locate", "--data-root", "/d", "--session",
                                         "s1", "--storage-env-stdin"],
                                "stdin": '{"AWS_SECRET_ACCESS_KEY": "k"}\n'}
    assert "k" not in json.dumps(result["cmd"])


def test_no_runtime_is_nothing_to_do_for_status(tmp_path, run_module):
    result, failed = call(run_module, tmp_path / "missing", "status")
    assert not failed and result["answer"] == {} and result["runtime"] is False


@pytest.mark.parametrize("check_mode", [True, False])
def test_start_without_a_cli_asks_nothing(tmp_path, run_module, check_mode):
    fake_cli(tmp_path, {"ok": True, "changed": True})
    result, failed = run_module(session_call.main, dict(
        cli="", verb="start", session_dir=str(tmp_path / "s1"), manager="process"),
        check_mode=check_mode, common={})
    assert not failed and result["answer"] == {} and result["runtime"] is False
    assert result["changed"] is False and not (tmp_path / "called.json").exists()


def test_check_mode_runs_with_check_and_changed_comes_from_the_answer(tmp_path, run_module):
    cli = fake_cli(tmp_path, {"records": [], "publishes": [], "changed": True})
    result, failed = call(run_module, cli, "status", check_mode=True)
    assert not failed and result["changed"] is True
    assert called(tmp_path)["argv"][-1] == "--check"


def test_an_unknown_verb_fails_with_one_message(tmp_path, run_module):
    cli = fake_cli(tmp_path, rc=2, err="rlops-run session: error: argument action: "
                                       "invalid choice: 'pack'\n")
    result, failed = call(run_module, cli, "pack", session="s1", host="gpu1")
    assert failed and result["msg"].startswith(f"gpu1: the runtime at {cli} predates")


def test_the_runtime_error_line_is_the_message(tmp_path, run_module):
    cli = fake_cli(tmp_path, rc=2, err="rlops-run: error: session s1 is not on this host\n")
    result, failed = call(run_module, cli, "evaluate", session="s1")
    assert failed and result["msg"] == "session s1 is not on this host"


def test_a_stop_that_failed_says_the_job_log(tmp_path, run_module):
    cli = fake_cli(tmp_path, {"ok": False, "msg": "not stopped", "log_tail": ["oom"]}, rc=1)
    result, failed = call(run_module, cli, "stop", session="s1", args=["--manager", "auto"],
                          host="gpu1")
    assert failed and result["msg"] == ["not stopped (gpu1)", "last lines of the job log:", "oom"]
    assert called(tmp_path)["argv"][-3:] == ["--manager", "auto", "--json"]


def test_prepare_sends_the_request_on_stdin_and_returns_the_answer_without_config(
        tmp_path, run_module):
    cli = fake_cli(tmp_path, {"ok": True, "changed": True, "changes": {"a": [1, 2]},
                              "summary": ["a 1 -> 2"], "config": {"env": {}}, "msg": ""})
    result, failed = call(run_module, cli, "prepare", session_dir="/d/sessions/s1",
                          mode="resume", stdin='{"credentials": {"K": "v"}}', check_mode=True)
    assert not failed and result["changed"] is True and "config" not in result["answer"]
    assert result["answer"]["summary"] == ["a 1 -> 2"]
    assert called(tmp_path) == {"argv": ["session", "prepare", "--session-dir", "/d/sessions/s1",
                                         "--mode", "resume", "--json", "--check"],
                                "stdin": '{"credentials": {"K": "v"}}\n'}


def test_prepare_refused_fails_with_the_runtimes_message(tmp_path, run_module):
    cli = fake_cli(tmp_path, {"ok": False, "changed": False, "msg": "bad storage"}, rc=1)
    result, failed = call(run_module, cli, "prepare", session_dir="/d/s/s1", mode="new",
                          host="gpu1")
    assert failed and result["msg"] == "bad storage (gpu1)"


def test_a_start_that_failed_says_its_job_log(tmp_path, run_module):
    cli = fake_cli(tmp_path, {"ok": False, "msg": "exited", "log_tail": ["oom"]}, rc=1)
    result, failed = call(run_module, cli, "start", session_dir="/d/s/s1", manager="systemd",
                          timeout=60, user="rl", group="rl", enable=False, host="gpu1")
    assert failed and result["msg"] == ["exited (gpu1)", "last lines of /d/s/s1/logs/job.log:",
                                        "oom"]
    assert called(tmp_path)["argv"] == [
        "session", "start", "--session-dir", "/d/s/s1", "--manager", "systemd", "--timeout",
        "60", "--user", "rl", "--group", "rl", "--no-enable", "--json"]


def test_no_rc_in_a_result_that_did_not_fail(tmp_path, run_module):
    """Ansible fails a task whose result has an rc other than 0: a host without the runtime
    (a CLI that exits without a word) is not a failure."""
    for cli in (tmp_path / "missing", fake_cli(tmp_path, rc=127)):
        result, failed = call(run_module, cli, "locate", session="s1")
        assert not failed and "rc" not in result and result["answer"] == {}


@pytest.mark.parametrize("stdin, owner", [('{"AWS_ACCESS_KEY_ID": "lab"}', "lab"),
                                          ({"AWS_ACCESS_KEY_ID": "lab"},
                                           "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER")])
def test_credentials_as_one_text_mask_only_that_text(stdin, owner):
    """The action plugin sends stdin as one JSON text: no_log masks that text in the output,
    not each value (a mapping would mask every 'lab' of the answer, here its owner)."""
    spec = {"stdin": {"type": "raw", "no_log": True}}
    masked = remove_values({"answer": {"owner": "lab"}},
                           _list_no_log_values(spec, {"stdin": stdin}))
    assert masked["answer"]["owner"] == owner
