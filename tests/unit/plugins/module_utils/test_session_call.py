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


def test_prepare_names_its_folder_and_mode_answers_in_json_and_takes_check():
    assert sc.build_argv(CLI, "prepare", None, args=(), check=True, session_dir="/d/sessions/s1",
                         options={"mode": "resume", "enable": True}) == [
        CLI, "session", "prepare", "--session-dir", "/d/sessions/s1", "--mode", "resume",
        "--json", "--check"]


def test_start_options_become_its_flags():
    options = {"manager": "systemd", "timeout": 120, "restart": True, "enable": False,
               "user": "rl", "group": "rlg", "mode": None}
    assert sc.build_argv(CLI, "start", None, session_dir="/d/s/s1", options=options) == [
        CLI, "session", "start", "--session-dir", "/d/s/s1", "--manager", "systemd",
        "--timeout", "120", "--user", "rl", "--group", "rlg", "--restart", "--no-enable",
        "--json"]


def test_start_unset_options_are_left_out():
    assert sc.option_args({"manager": "detached", "user": "", "restart": False,
                           "enable": True}) == ["--manager", "detached"]


@pytest.mark.parametrize("data, text", [(None, None), ("", None), ({}, None),
                                        ({"a": 1}, '{"a": 1}'),
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
    assert sc.no_runtime(verb, 0, sc.NO_RUNTIME_MARK + "\n")
    assert sc.no_runtime(verb, 127, "", "")
    assert not sc.no_runtime(verb, 2, "", "boom")
    assert not sc.no_runtime(verb, 0, "", "")
    assert not sc.no_runtime(verb, None)


@pytest.mark.parametrize("verb", ["stop", "pack", "evaluate"])
def test_a_missing_runtime_is_not_ignored_for_a_session_that_is_here(verb):
    assert not sc.no_runtime(verb, 0, sc.NO_RUNTIME_MARK + "\n")


def test_prepare_and_start_without_a_cli_ask_nothing():
    assert sc.not_installed("start", "") and sc.not_installed("prepare", None)
    assert not sc.not_installed("start", "/v/bin/rlops-run")
    assert not sc.not_installed("status", "")


def test_changed_from_the_answer():
    assert sc.changed("status", {"changed": True})
    assert not sc.changed("status", {"changed": False})
    assert not sc.changed("pack", {"changed": False})
    assert sc.changed("stop", {"ok": True})                 # stop says nothing: it stopped
    assert not sc.changed("locate", {"changed": True})      # locate only reads
    assert sc.changed("evaluate", {"changed": False})       # check mode: would run episodes
    assert not sc.changed("status", None)


# --- What the action plugin makes of an answer on the controller ---------------------------

def test_locate_facts_default_to_no_session_for_a_host_without_runtime():
    assert sc.facts("locate", {}, "h1") == {
        "rlops_session_here": False, "rlops_session_owner": "", "rlops_session_manager": "",
        "rlops_session_backend": "", "rlops_known_sessions": [],
        "rlops_session_in_storage": False}
    found = sc.facts("locate", {"here": True, "owner": "rl", "manager": "systemd",
                                "known": ["a", "b"], "in_storage": True}, "h1")
    assert found["rlops_session_here"] and found["rlops_session_owner"] == "rl"
    assert found["rlops_known_sessions"] == ["a", "b"] and found["rlops_session_in_storage"]
    assert sc.facts("locate", {"here": True, "backend": "deepracer"},
                    "h1")["rlops_session_backend"] == "deepracer"


def test_status_facts_name_the_host_of_each_record_and_publish():
    answer = {"records": [{"session_id": "s1"}], "publishes": [{"session_id": "s1", "sent": 1}]}
    assert sc.facts("status", answer, "h1") == {
        "rlops_status": [{"session_id": "s1", "host": "h1"}],
        "rlops_publish": [{"session_id": "s1", "sent": 1, "host": "h1"}]}
    assert sc.facts("status", {}, "h1") == {"rlops_status": [], "rlops_publish": []}


def test_evaluate_keeps_the_result_only_when_it_ran():
    assert sc.facts("evaluate", {"result": {"mean_return": 1}}, "h") == {
        "rlops_eval": {"mean_return": 1}}
    assert sc.facts("evaluate", {"result": None}, "h", check=True) == {}
    assert sc.facts("stop", {"ok": True}, "h") == {}


def test_stop_reports_where_it_stopped_or_what_it_would_do():
    assert sc.report("stop", {"ok": True, "status": {"state": "stopped"}}, "s1", "h1") == [
        "session s1 on h1: stopped; resume with: ansible-playbook playbooks/resume.yml"
        " -e rlops_session=s1"]
    assert "s1 on h1: stopped;" in sc.report("stop", {"ok": True, "status": None}, "s1", "h1")[0]
    assert sc.report("stop", {"actions": ["checkpoint", "publish", "stop"],
                              "before": {"state": "running"}}, "s1", "h1", check=True) == [
        "would publish and stop session s1 on h1 (now running)"]
    assert sc.report("stop", {"actions": ["publish"]}, "s1", "h1", check=True) == [
        "would publish session s1 on h1 (now never started)"]
    assert sc.report("stop", {"actions": []}, "s1", "h1", check=True) is None


def test_pack_reports_the_files_copied_or_that_would_be():
    lines = sc.report("pack", {"files": ["a", "b"]}, "s1", "h1", "/r/s1")
    assert lines == ["session s1 from h1 -> /r/s1 (2 new or changed files)",
                     "learning curve: /r/s1/report/learning_curve.png",
                     "next: ansible-playbook playbooks/evaluate.yml -e rlops_session=s1"]
    assert "(1 new or changed files would be copied)" in sc.report(
        "pack", {"files": ["a"]}, "s1", "h1", "/r/s1", check=True)[0]


def test_evaluate_reports_the_return_or_the_checkpoint_it_would_use():
    answer = {"checkpoint": 8192, "result": {"mean_return": 200.04, "std_return": 0.0,
                                             "episodes": 10}}
    assert sc.report("evaluate", answer, "s1", "h1", "/r/s1") == [
        "session s1: mean return 200.0 \u00b1 0.0 over 10 episodes (checkpoint step 8192)",
        "results: /r/s1/eval"]
    assert sc.report("evaluate", {"episodes": 10, "video": True, "checkpoint": None}, "s1", "h1",
                     "/r/s1", check=True) == [
        "would run 10 episodes of session s1's newest complete checkpoint (none yet) on h1,"
        " recording one, into /r/s1/eval"]


def test_fetch_reports_what_came_from_storage():
    answer = {"dest": "/r/s1", "fetched": ["x"], "checkpoint": 16384,
              "skipped_checkpoints": [24576]}
    assert sc.report("fetch", answer, "s1", "localhost", "/r/s1", storage_uri="s3://b/p") == [
        "session s1 from storage s3://b/p -> /r/s1 (1 new or changed files; newest complete"
        " checkpoint 16384 (skipped, incomplete in storage: 24576))",
        "next: ansible-playbook playbooks/evaluate.yml -e rlops_session=s1"
        " (needs a running instance)"]
    assert "files, not copied in check mode; newest complete checkpoint none)" in sc.report(
        "fetch", {"fetched": [], "checkpoint": None}, "s1", "l", "/r/s1", check=True,
        storage_uri="s3://b/p")[0]
    assert sc.report("locate", {"here": True}, "s1", "h1") is None


def test_fetch_argv_sends_the_environment_on_stdin_only():
    argv = sc.fetch_argv("/py", "s3://b/p", "s1", "/r/s1", check=True)
    assert argv == ["/py", "-m", "rlops_runtime.cli", "fetch", "--storage-uri", "s3://b/p",
                    "--session", "s1", "--dest", "/r/s1", "--storage-env-stdin", "--check"]


def test_fetch_env_adds_the_region_unless_the_credentials_name_one():
    assert sc.fetch_env({"AWS_ACCESS_KEY_ID": "k"}, "eu-west-1") == {
        "AWS_ACCESS_KEY_ID": "k", "AWS_DEFAULT_REGION": "eu-west-1"}
    assert sc.fetch_env({"AWS_REGION": "us-east-2"}, "eu-west-1") == {"AWS_REGION": "us-east-2"}
    assert sc.fetch_env(None, "") == {}


def test_fetch_failure_is_the_runtimes_last_error_line():
    stderr = "x\nrlops-run: error: no session s1 in s3://b/p\n"
    assert sc.fetch_failure("s1", "s3://b/p", 2, stderr) == \
        "session s1 from storage s3://b/p: no session s1 in s3://b/p"
    assert sc.fetch_failure("s1", "s3://b/p", 1, "") == \
        "session s1 from storage s3://b/p: rlops-run fetch failed (rc 1)"


def test_a_pack_may_not_name_paths_outside_the_results():
    assert sc.unsafe_members(["logs/job.log", "report/summary.json", ".hidden"]) == []
    assert sc.unsafe_members(["/etc/passwd", "a/../../b", "ok", "..\\x"]) == [
        "/etc/passwd", "a/../../b", "..\\x"]


def test_prepare_fails_with_its_own_message_and_the_host():
    answer = {"ok": False, "changed": False, "msg": "storage s3://b is not reachable"}
    assert sc.failure("prepare", CLI, 1, "", "", answer, "gpu1") == (
        "storage s3://b is not reachable (gpu1)")
    assert sc.failure("prepare", CLI, 0, "", "", {"ok": True, "changed": True}, "gpu1") is None


def test_prepare_without_an_answer_says_the_last_error_line():
    assert sc.failure("prepare", CLI, 1, "", "Traceback\nKeyError: 'x'\n", None) == "KeyError: 'x'"


def test_start_fails_with_its_message_and_the_end_of_its_job_log():
    answer = {"ok": False, "msg": "session s1 did not start", "log_tail": ["boom"]}
    assert sc.failure("start", CLI, 1, "", "", answer, "gpu1", "/d/sessions/s1/") == [
        "session s1 did not start (gpu1)", "last lines of /d/sessions/s1/logs/job.log:", "boom"]


def test_prepare_answer_is_kept_without_the_config():
    answer = {"ok": True, "changes": {}, "config": {"env": {"TOKEN": "t"}}}
    assert sc.kept_answer("prepare", answer) == {"ok": True, "changes": {}}
    assert sc.kept_answer("start", answer) is answer


def test_start_reports_only_in_check_mode_what_it_would_do():
    answer = {"actions": ["publish", "write-unit", "start"], "before": {"state": "stopped"}}
    assert sc.report("start", answer, "s1", "gpu1", check=True) == [
        "would publish and start session s1 on gpu1 (now stopped)"]
    assert sc.report("start", {"actions": ["restart"]}, "s1", "gpu1", check=True) == [
        "would restart session s1 on gpu1 (now never started)"]
    assert sc.report("start", {"actions": []}, "s1", "gpu1", check=True) is None
    assert sc.report("start", {}, "s1", "gpu1", check=True) == [
        "would start session s1 on gpu1 (now never started)"]
    assert sc.report("start", {}, "s1", "gpu1") is None
    assert sc.report("start", answer, "s1", "gpu1") is None
