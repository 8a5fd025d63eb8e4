"""tests/harness: the check-mode comparison and the waits with a deadline."""

from __future__ import annotations

import pytest
from harness.snapshot import Unchanged, tree_state
from harness.waiting import NotInTime, has_checkpoint, in_state, wait_until


def test_a_write_under_a_root_is_a_change(tmp_path):
    (tmp_path / "a").write_text("1")
    unchanged = Unchanged(lambda: {"the root": tree_state(tmp_path, tmp_path / "absent")})
    unchanged.check("nothing")
    (tmp_path / "b").mkdir()
    with pytest.raises(AssertionError, match=r"--check changed the root \(mkdir\):") as caught:
        unchanged.check("mkdir")
    assert f'+ "{tmp_path / "b"}": [' in str(caught.value)


def test_wait_returns_the_value_or_says_what_it_waited_for():
    values = iter([0, None, 3])
    assert wait_until(lambda: next(values), 5, "three", interval=0) == 3
    with pytest.raises(NotInTime, match=r"not done within 0 s; last: x"):
        wait_until(lambda: False, 0, "done", interval=0, detail=lambda: "last: x")


def test_states():
    assert has_checkpoint({"state": "running", "last_checkpoint_step": 8192})
    assert not has_checkpoint({"state": "running", "last_checkpoint_step": None})
    assert not has_checkpoint({"state": "stopped", "last_checkpoint_step": 8192})
    assert in_state("stopped", "completed")({"state": "completed"})
    assert not in_state("stopped")({})
