"""The controller side of rlops.fleet.session_call: what it tells the host the controller has."""

import hashlib

from ansible_collections.rlops.fleet.plugins.action.session_call import local_checksums


def test_local_checksums_are_sha1_by_relative_path_hidden_files_included_links_not(tmp_path):
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "summary.json").write_bytes(b"{}")
    (tmp_path / ".hidden").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / ".hidden")
    assert local_checksums(str(tmp_path)) == {
        "report/summary.json": hashlib.sha1(b"{}").hexdigest(),
        ".hidden": hashlib.sha1(b"x").hexdigest()}
