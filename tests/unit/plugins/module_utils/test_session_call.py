"""The decisions of rlops.fleet.session_call: argv, failure message, no runtime, changed."""

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils import session_call as sc

CLI = "/srv/rlops/bin/rlops-run"
USAGE = ("usage: rlops-run session [-h] {start,stop,wait}\n"
         "rlops-run session: error: argument action: invalid choice: 'locate'\n")


def test_argv_names_data_root_session_and_extra_args():
    assert sc.build_argv(CLI, "locate", "/srv/rlops", "s1", ["--storage-uri", "file:///x"]) == [
        CLI, "session", "locate", "--data-root", "/srv/rlops", "--session", "s1",
        "--storage-uri", "file:///x"]


def test_status_without_a_session_asks_for_all():
    assert sc.build_argv(CLI, "status", "/d") == [CLI, "session", "status", "--data-root", "/d"]


@pytest.mark.parametrize("verb", ["status", "stop", "pack", "evaluate"])
def test_check_mode_passes_check(verb):
    assert sc.build_argv(CLI, verb, "/d", "s", check=True)[-1] == "--check"


def test_locate_only_reads_and_takes_no_check():
    assert "--check" not in sc.build_argv(CLI, "locate", "/d", "s", check=True)


def test_stop_answers_in_json_once():
    assert sc.build_argv(CLI, "stop", "/d", "s", ["--manager", "auto"]) == [
        CLI, "session", "stop", "--data-root", "/d", "--session", "s", "--manager", "auto",
        "--json"]
    assert sc.build_argv(CLI, "stop", "/d", "s", ["--json"]).count("--json") == 1


@pytest.mark.parametrize("data, text", [(None, None), ("", None), ({"a": 1}, '{"a": 1}'),
                                        ("raw", "raw")])
def test_stdin(data, text):
    assert sc.stdin_text(data) == text


def test_parse_answer_takes_the_json_object():
    assert sc.parse_answer('{"here": true}\n') == {"here": True}
    assert sc.parse_answer('warming up\n{"ok": true}\n') == {"ok": True}
    assert sc.parse_answer('{\n  "ok": false\n}') == {"ok": False}
    assert sc.parse_answer("") is None
    assert sc.parse_answer("[1, 2]") is None


def test_an_answer_is_no_failure():
    assert sc.failure("status", CLI, 0, '{"records": []}', "", {"records": []}) is None


def test_the_last_error_line_without_the_prog_prefix():
    stderr = "Traceback...\n\nrlops-run: error: session s1 is not on this host\n\n"
    assert sc.failure("pack", CLI, 2, "", stderr, None) == "session s1 is not on this host"


def test_no_words_says_the_exit_code():
    assert sc.failure("evaluate", CLI, 3, "", "", None) == "rlops-run exited 3"
    assert sc.failure("pack", CLI, 0, "not json", "", None) == "rlops-run gave no JSON answer"


def test_an_unknown_verb_is_a_runtime_older_than_the_layer():
    msg = sc.failure("locate", CLI, 2, "", USAGE, None, host="gpu1")
    assert msg == (
        "gpu1: the runtime at /srv/rlops/bin/rlops-run predates the session layer (it has no "
        "`rlops-run session locate`): train_new or resume a session on this host to install the "
        "runtime of this collection, which reaches every session there, older ones included")


def test_stop_fails_with_its_message_and_the_job_log():
    answer = {"ok": False, "msg": "session s1 is not stopped", "log_tail": ["a", "b"]}
    assert sc.failure("stop", CLI, 1, "", "", answer, host="gpu1") == [
        "session s1 is not stopped (gpu1)", "last lines of the job log:", "a", "b"]
    assert sc.failure("stop", CLI, 0, "", "", {"ok": True, "changed": False}) is None


def test_stop_without_ok_fails_even_with_rc_0():
    assert sc.failure("stop", CLI, 0, "{}", "", {}) == "rlops-run gave no JSON answer"


@pytest.mark.parametrize("verb", ["locate", "status"])
def test_no_runtime_is_nothing_to_do_for_locate_and_status(verb):
    assert sc.no_runtime(verb, exists=False)
    assert sc.no_runtime(verb, True, 127, "", "")
    assert not sc.no_runtime(verb, True, 2, "", "boom")
    assert not sc.no_runtime(verb, True, 0, "", "")
    assert not sc.no_runtime(verb, True)


@pytest.mark.parametrize("verb", ["stop", "pack", "evaluate"])
def test_a_missing_runtime_is_not_ignored_for_a_session_that_is_here(verb):
    assert not sc.no_runtime(verb, exists=False)


def test_changed_from_the_answer():
    assert sc.changed("status", {"changed": True})
    assert not sc.changed("status", {"changed": False})
    assert not sc.changed("pack", {"changed": False})
    assert sc.changed("stop", {"ok": True})                 # stop says nothing: it stopped
    assert not sc.changed("locate", {"changed": True})      # locate only reads
    assert sc.changed("evaluate", {"changed": False})       # check mode: would run episodes
    assert not sc.changed("status", None)
