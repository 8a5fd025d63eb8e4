from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from rlops_runtime.session import SessionLayout, make_session_id, validate_session_id

NOW = datetime(2026, 11, 22, 5, 15, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("value", ["a", "0", "cartpole-20261122t051500z", "a" * 63, "a--b-"])
def test_valid_ids_are_returned(value):
    assert validate_session_id(value) == value


@pytest.mark.parametrize("value", ["", "Foo_1", "-a", "a" * 64, "a/b", "a\n", "ab c", "é"])
def test_invalid_ids_say_what_and_why(value):
    with pytest.raises(ValueError) as err:
        validate_session_id(value)
    assert repr(value) in str(err.value)
    assert "1-63 lowercase letters, digits and '-'" in str(err.value)


def test_make_session_id_appends_utc_timestamp():
    assert make_session_id("cartpole", NOW) == "cartpole-20261122t051500z"


def test_make_session_id_converts_to_utc_and_takes_naive_as_utc():
    plus_two = NOW.astimezone(timezone(timedelta(hours=2)))
    assert make_session_id("x", plus_two) == "x-20261122t051500z"
    assert make_session_id("x", NOW.replace(tzinfo=None)) == "x-20261122t051500z"


def test_make_session_id_sanitises_name():
    assert make_session_id("  My Run_v2!!  ", NOW) == "my-run-v2-20261122t051500z"


def test_make_session_id_trims_long_names_to_63():
    session = make_session_id("a" * 45 + "-" + "b" * 40, NOW)
    assert len(session) <= 63
    assert session == "a" * 45 + "-20261122t051500z"  # no '--' where the name was cut
    validate_session_id(session)


@pytest.mark.parametrize("name", ["", "___", "-"])
def test_make_session_id_rejects_empty_names(name):
    with pytest.raises(ValueError, match="at least one letter or digit"):
        make_session_id(name, NOW)


def test_layout_paths_follow_the_contract(tmp_path: Path):
    layout = SessionLayout.for_session(tmp_path, "s-1")
    root = tmp_path / "sessions" / "s-1"
    assert layout.root == root
    assert layout.session_id == "s-1"
    expected = {
        "config_dir": "config",
        "run_json": "config/run.json",
        "hyperparameters": "config/hyperparameters.json",
        "storage_env": "config/storage.env",
        "checkpoints": "checkpoints",
        "tensorboard": "tensorboard",
        "logs": "logs",
        "job_log": "logs/job.log",
        "supervisor_log": "logs/supervisor.log",
        "progress": "progress.json",
        "status": "status.json",
        "pidfile": "supervisor.pid",
        "eval_dir": "eval",
        "report_dir": "report",
    }
    for name, rel in expected.items():
        assert getattr(layout, name) == root / rel, name


def test_for_session_validates(tmp_path: Path):
    with pytest.raises(ValueError, match="invalid"):
        SessionLayout.for_session(tmp_path, "../etc")


def test_create_makes_folders_idempotently(tmp_path: Path):
    layout = SessionLayout.for_session(tmp_path, "s-1").create()
    layout.create()
    made = sorted(p.name for p in layout.root.iterdir())
    assert made == ["checkpoints", "config", "eval", "logs", "report", "tensorboard"]
