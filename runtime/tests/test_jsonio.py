from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from rlops_runtime.jsonio import parse_json_object, read_json, utc_iso, write_json_atomic


def test_write_then_read_leaves_no_temporary_files(tmp_path: Path):
    path = tmp_path / "status.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert read_json(path) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_read_json_returns_default_for_missing_or_torn_files(tmp_path: Path):
    assert read_json(tmp_path / "missing.json", default={}) == {}
    torn = tmp_path / "torn.json"
    torn.write_text('{"step": 40')
    assert read_json(torn) is None
    torn.write_bytes(b"\xff\xfe")
    assert read_json(torn, default=0) == 0


def test_utc_iso():
    moment = datetime(2026, 11, 22, 7, 15, 30, tzinfo=timezone(timedelta(hours=2)))
    assert utc_iso(moment) == "2026-11-22T05:15:30Z"
    assert utc_iso().endswith("Z")


def test_durable_writes_fsync_and_advisory_writes_do_not(tmp_path: Path, monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr("rlops_runtime.jsonio.os.fsync", calls.append)
    write_json_atomic(tmp_path / "status.json", {"a": 1})
    assert len(calls) == 2  # the file, then its folder
    calls.clear()
    write_json_atomic(tmp_path / "progress.json", {"a": 1}, durable=False)
    assert calls == []
    assert read_json(tmp_path / "progress.json") == {"a": 1}


def test_a_stdin_request_is_one_json_object():
    assert parse_json_object('{"a": 1}', "prepare") == {"a": 1}
    assert parse_json_object("", "prepare") == {}
    with pytest.raises(ValueError, match="^prepare reads one JSON object on stdin: Expecting"):
        parse_json_object("A=b", "prepare")
    with pytest.raises(ValueError, match="^configure reads one JSON object on stdin, got list$"):
        parse_json_object("[1]", "configure")
