from ansible_collections.rlops.fleet.plugins.filter.session_table import format_age, session_table


def test_format_age():
    assert [format_age(s) for s in (None, 5, 425, 11520, 187200)] == \
        ["-", "5s", "7m05s", "3h12m", "2d04h"]


def test_table_aligns_and_computes_checkpoint_age():
    lines = session_table([
        {"session_id": "cartpole-1", "host": "localhost", "state": "running", "step": 8192,
         "total_timesteps": 100000, "mean_return": 187.25,
         "last_checkpoint_time": "2026-11-22T05:16:00Z"},
        {"session_id": "b", "host": "lab-2", "state": "stopped"},
    ], now="2026-11-22T05:17:30Z")
    assert lines[0].split() == ["SESSION", "HOST", "STATE", "STEP", "RETURN", "CHECKPOINT", "AGE"]
    assert lines[1].split() == [
        "cartpole-1", "localhost", "running", "8192/100000", "187.2", "1m30s"]
    assert lines[2].split() == ["b", "lab-2", "stopped", "-", "-", "-"]
    column = lines[0].index("HOST")
    assert lines[1][column:].startswith("localhost") and lines[2][column:].startswith("lab-2")
