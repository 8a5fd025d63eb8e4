"""plugins/modules/host_folders.py: a role's missing folders and links in one call."""

from __future__ import annotations

import importlib.util
import os
import stat
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[4] / "plugins/modules/host_folders.py"
_SPEC = importlib.util.spec_from_file_location("host_folders", _PATH)
hf = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = hf
_SPEC.loader.exec_module(hf)


def test_missing_folders_outermost_first():
    have = {"/", "/var"}
    assert hf.missing_folders("/var/lib/rlops/bin", have.__contains__) == [
        "/var/lib", "/var/lib/rlops", "/var/lib/rlops/bin"]
    assert hf.missing_folders("/var/", have.__contains__) == []


@pytest.mark.parametrize("exists,islink,target,action", [
    (False, False, "", "link"),
    (True, True, "/a", "keep"),
    (True, True, "/b", "link"),
    (True, False, "", "refuse"),
])
def test_link_action(exists, islink, target, action):
    assert hf.link_action("/d", "/a", lambda p: exists, lambda p: islink,
                          lambda p: target) == action


@pytest.mark.parametrize("mode", ["", "0855", "rwx", "01777x"])
def test_parse_mode_refuses_what_is_not_octal(mode):
    with pytest.raises(ValueError, match="not octal"):
        hf.parse_mode(mode)


def test_creates_then_changes_nothing(tmp_path, run_module):
    src = tmp_path / "venv/bin/rlops-run"
    args = {"folders": [{"path": str(tmp_path / "data/bin"), "mode": "0750"},
                        {"path": str(tmp_path / "data/sessions")}],
            "links": [{"src": str(src), "dest": str(tmp_path / "data/bin/rlops-run")}]}
    result, failed = run_module(hf.main, args, check_mode=True, common={})
    assert not failed and result["changed"] and not (tmp_path / "data").exists()
    assert result["created"] == [str(tmp_path / "data"), str(tmp_path / "data/bin"),
                                 str(tmp_path / "data/sessions")]
    result, failed = run_module(hf.main, args, common={})
    assert not failed and result["changed"] and result["linked"] == [args["links"][0]["dest"]]
    assert stat.S_IMODE((tmp_path / "data/bin").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "data/sessions").stat().st_mode) == 0o755
    assert os.readlink(tmp_path / "data/bin/rlops-run") == str(src)
    again, failed = run_module(hf.main, args, common={})
    assert not failed and not again["changed"] and again["created"] == again["linked"] == []


def test_an_existing_folder_keeps_its_mode_and_a_link_is_repointed(tmp_path, run_module):
    (tmp_path / "share").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to("/old")
    result, failed = run_module(hf.main, {
        "folders": [{"path": str(tmp_path / "share"), "mode": "0755"}],
        "links": [{"src": "/new", "dest": str(tmp_path / "link")}]}, common={})
    assert not failed and result["created"] == [] and result["linked"] == [str(tmp_path / "link")]
    assert stat.S_IMODE((tmp_path / "share").stat().st_mode) == 0o700
    assert os.readlink(tmp_path / "link") == "/new"


def test_a_file_where_the_link_goes_is_refused(tmp_path, run_module):
    (tmp_path / "rlops-run").write_text("mine")
    link = {"src": "/new", "dest": str(tmp_path / "rlops-run")}
    result, failed = run_module(hf.main, {"links": [link]}, common={})
    assert failed and "not a link" in result["msg"]
    assert (tmp_path / "rlops-run").read_text() == "mine"


def test_an_unknown_owner_is_refused(tmp_path, run_module):
    result, failed = run_module(hf.main, {
        "folders": [{"path": str(tmp_path / "x"), "owner": "no-such-user-rlops"}]}, common={})
    assert failed and "user no-such-user-rlops does not exist" in result["msg"]
    assert not (tmp_path / "x").exists()
