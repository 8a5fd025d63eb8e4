from __future__ import annotations

import logging
from pathlib import Path

import pytest
from rlops_runtime.checkpoints import (
    choose_resume,
    local_steps,
    newest_complete_local,
    remove_partial,
    rotate_local,
)


def test_local_steps_only_counts_folders_with_a_manifest(tmp_path: Path, make_checkpoint):
    for step in (300, 100, 200):
        make_checkpoint(tmp_path, step)
    (tmp_path / ".tmp-400-99").mkdir()
    (tmp_path / ".damaged-500-20261122t000000z").mkdir()
    (tmp_path / ".damaged-500-20261122t000000z" / "manifest.json").write_text("{}")
    (tmp_path / "000000000600").mkdir()  # renamed in, manifest never written
    assert local_steps(tmp_path) == [100, 200, 300]
    assert local_steps(tmp_path / "missing") == []


def test_newest_complete_local_skips_damaged_with_a_warning(tmp_path, make_checkpoint, caplog):
    assert newest_complete_local(tmp_path) is None
    make_checkpoint(tmp_path, 100)
    newest = make_checkpoint(tmp_path, 200)
    assert newest_complete_local(tmp_path) == (200, newest)
    (newest / "model.zip").write_bytes(b"garbage!")
    with caplog.at_level(logging.WARNING):
        assert newest_complete_local(tmp_path) == (100, tmp_path / "000000000100")
    assert "000000000200" in caplog.text and "model.zip" in caplog.text


@pytest.mark.parametrize(
    "local, remote, expected",
    [
        (None, None, None),
        (100, None, ("local", 100)),
        (None, 100, ("remote", 100)),
        (200, 100, ("local", 200)),
        (100, 200, ("remote", 200)),
        (100, 100, ("local", 100)),
        (0, None, ("local", 0)),
    ],
)
def test_choose_resume(local, remote, expected):
    assert choose_resume(local, remote) == expected


def test_rotate_keeps_everything_when_keep_is_zero(tmp_path: Path, make_checkpoint):
    for step in (1, 2, 3):
        make_checkpoint(tmp_path, step)
    assert rotate_local(tmp_path, 0, {1, 2, 3}) == []
    assert local_steps(tmp_path) == [1, 2, 3]


def test_rotate_removes_only_published_beyond_the_newest(tmp_path: Path, make_checkpoint):
    for step in (1, 2, 3, 4, 5):
        make_checkpoint(tmp_path, step)
    # 2 is not published: kept; 4 and 5 are the newest two: kept although published.
    assert rotate_local(tmp_path, 2, {1, 3, 4, 5}) == [1, 3]
    assert local_steps(tmp_path) == [2, 4, 5]


def test_remove_partial_deletes_only_unfinished_writes(tmp_path: Path, make_checkpoint):
    make_checkpoint(tmp_path, 100)
    for name in (".tmp-200-4242", ".tmp-fetch-300-17"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.zip").write_bytes(b"half")
    (tmp_path / ".damaged-50-20261122t000000z").mkdir()
    (tmp_path / ".tmp-note").write_text("a file, not a write folder")
    assert remove_partial(tmp_path) == [".tmp-200-4242", ".tmp-fetch-300-17"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".damaged-50-20261122t000000z", ".tmp-note", "000000000100", "LATEST"
    ]
    assert remove_partial(tmp_path / "missing") == []
