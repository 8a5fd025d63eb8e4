"""plugins/modules/trainer_host_info.py: what a host has for a session, read in one call."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[4] / "plugins/modules/trainer_host_info.py"
_SPEC = importlib.util.spec_from_file_location("trainer_host_info", _PATH)
thi = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = thi
_SPEC.loader.exec_module(thi)


def test_parse_probe_reads_the_last_line():
    out = 'a warning\n{"version": "3.11", "executable": "/usr/bin/python3.11", "venv": true}\n'
    assert thi.parse_probe(0, out, "", "python3") == {
        "version": "3.11", "executable": "/usr/bin/python3.11", "venv": True}


@pytest.mark.parametrize("rc,stdout,stderr,said", [
    (1, "", "Traceback\nSyntaxError: invalid syntax\n", "SyntaxError: invalid syntax"),
    (0, "not json\n", "", "not json"),
    (0, '{"version": "3.11"}\n', "", '{"version": "3.11"}'),  # a key is missing
    (127, "", "", "exit 127"),
])
def test_parse_probe_errors_name_the_interpreter(rc, stdout, stderr, said):
    assert thi.parse_probe(rc, stdout, stderr, "/opt/py/bin/python") == {
        "error": f"/opt/py/bin/python did not run the probe: {said}"}


def test_probe_python_runs_a_real_interpreter():
    found = thi.probe_python(sys.executable)
    assert found["version"] == "{}.{}".format(*sys.version_info[:2])
    assert found["executable"] == os.path.realpath(sys.executable)
    assert found["venv"] is True


def test_probe_python_missing_interpreter():
    missing = "no-such-python-3.99"
    assert thi.probe_python(missing) == {"error": f"{missing} is not on PATH"}
    assert "did not run the probe" in thi.probe_python("/nonexistent/python")["error"]


def test_count_checkpoints_counts_complete_folders_only(tmp_path):
    for name in ["000000002048", "000000004096", ".tmp-000000006144", "latest", "00000000204"]:
        (tmp_path / name).mkdir()
    (tmp_path / "000000008192").write_text("a file, not a checkpoint")
    assert thi.checkpoint_count(str(tmp_path)) == 2
    assert thi.checkpoint_count(str(tmp_path / "missing")) == 0
    assert thi.checkpoint_count(None) == 0


def test_read_files_globs_and_plain_paths(tmp_path):
    for venv in ["aaa", "bbb"]:
        (tmp_path / venv).mkdir()
        (tmp_path / venv / ".digest").write_text(f"{venv}-digest\n")
    (tmp_path / "ccc").mkdir()  # a venv without a stamp
    plain = tmp_path / "run.json"
    plain.write_text(json.dumps({"command": ["python"]}))
    files = thi.read_files([f"{tmp_path}/*/.digest", str(plain), str(tmp_path / "none")], 1024)
    assert files == {f"{tmp_path}/aaa/.digest": "aaa-digest\n",
                     f"{tmp_path}/bbb/.digest": "bbb-digest\n",
                     str(plain): '{"command": ["python"]}',
                     str(tmp_path / "none"): None}  # asked by name: reported missing


def test_read_files_refuses_a_large_file(tmp_path):
    big = tmp_path / "big"
    big.write_text("x" * 100)
    with pytest.raises(ValueError, match="larger than max_bytes"):
        thi.read_files([str(big)], 99)


def test_read_files_reports_a_folder_as_missing(tmp_path):
    assert thi.read_files([str(tmp_path)], 10) == {str(tmp_path): None}


def test_stat_paths(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    found = thi.stat_paths([str(tmp_path / n) for n in ["dir", "file", "link", "dangling", "none"]]
                           + [f"{tmp_path}/nomatch*"])
    assert found == {
        str(tmp_path / "dir"): {"exists": True, "isdir": True, "islink": False, "link": ""},
        str(tmp_path / "file"): {"exists": True, "isdir": False, "islink": False, "link": ""},
        str(tmp_path / "link"): {"exists": True, "isdir": False, "islink": True,
                                 "link": str(tmp_path / "file")},
        str(tmp_path / "dangling"): {"exists": True, "isdir": False, "islink": True,
                                     "link": str(tmp_path / "gone")},
        str(tmp_path / "none"): {"exists": False, "isdir": False, "islink": False, "link": ""},
    }


def test_users_and_groups():
    me = thi.lookup_user(__import__("pwd").getpwuid(os.getuid()).pw_name)
    assert me["uid"] == os.getuid()
    assert thi.lookup_user("no-such-user-rlops") is None
    assert thi.lookup_group("", me["gid"])["gid"] == me["gid"]  # the user's primary group
    assert thi.lookup_group("no-such-group-rlops", None) is None
    assert thi.lookup_group("", None) is None


def test_pick_user_takes_the_given_one_else_who_ran_sudo_else_the_runner():
    runner = {"name": "root", "uid": 0, "sudo_user": "alice"}
    assert thi.pick_user("bob", True, runner) == "bob"
    assert thi.pick_user("", True, runner) == "alice"
    assert thi.pick_user("", True, dict(runner, sudo_user="")) == "root"
    assert thi.pick_user("", False, runner) == ""


def test_runner_and_service_manager():
    runner = thi.read_runner()
    assert runner["uid"] == os.getuid()
    assert thi.lookup_user(runner["name"])["uid"] == os.getuid()
    assert thi.service_manager(True) == "systemd"
    assert thi.service_manager(False)  # process 1's name, or "unknown"
