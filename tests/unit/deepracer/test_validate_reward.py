"""deepracer_validate: a catalogue of broken reward functions, each with the message, file and
line it gets - the source read, then the function called in a child process on params from a
real track - and what is accepted (an int, numpy's float, prints, a module the controller
lacks)."""

import sys
import textwrap
from pathlib import Path

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils import deepracer_tracks as dt
from ansible_collections.rlops.fleet.plugins.module_utils import deepracer_validate as dv

REPO = Path(__file__).resolve().parents[3]
TRACKS = REPO / "roles/deepracer_stack/files/tracks"
FILE = "reward_function.py"


@pytest.fixture(scope="module")
def tracks():
    """One loop and the open track: every kind of call, quickly."""
    return [dt.Track.from_npy((TRACKS / (n + ".npy")).read_bytes(), n)
            for n in ("reInvent2019_track", "Straight_track")]


def check(source, tracks, **options):
    options.setdefault("python", sys.executable)
    options.setdefault("call_timeout", 2.0)
    options.setdefault("timeout", 60.0)
    return dv.reward_problems(textwrap.dedent(source).lstrip("\n"), FILE, tracks, **options)


GOOD = """
def reward_function(params):
    if params["is_offtrack"]:
        return 1e-3
    return float(1.0 - params["distance_from_center"] / params["track_width"])
"""

# name, source, line of the problem (None: no line), words the message holds.
BROKEN = [
    ("syntax-error", """
def reward_function(params):
    reward = 1.0
    if reward > 0
        return reward
""", 3, ["does not compile", "expected ':'"]),
    ("no-reward-function", """
def reward(params):
    return 1.0
""", None, ["defines no reward_function(params) at the top level"]),
    ("two-parameters", """
import math

def reward_function(params, weight=1.0):
    return 1.0
""", 3, ["exactly one parameter", "(params, weight=1.0)"]),
    ("illegal-import", """
import math
import os

def reward_function(params):
    return 1.0
""", 2, ["imports os: only math, numpy, random, scipy, shapely may be imported"]),
    ("illegal-from-import", """
from subprocess import run

def reward_function(params):
    return 1.0
""", 1, ["imports subprocess"]),
    ("open", """
def reward_function(params):
    with open("/tmp/log", "a") as log:
        log.write(str(params["x"]))
    return 1.0
""", 2, ["uses open, which a reward function may not"]),
    ("eval", """
def reward_function(params):
    return eval("1.0")
""", 2, ["uses eval"]),
    ("dunder-import", """
def reward_function(params):
    json = __import__("json")
    return 1.0
""", 2, ["uses __import__"]),
    ("numpy-file-access", """
import numpy as np

def reward_function(params):
    best = np.load("racing_line.npy")
    return 1.0
""", 4, ["uses .load: a reward function may not read or write files"]),
    ("key-typo", """
def reward_function(params):
    speed = params["speeed"]
    return float(speed)
""", 2, ["raised KeyError: 'speeed'", "for params of reInvent2019_track start",
         "(221 of 221 calls)"]),
    ("returns-none", """
def reward_function(params):
    if params["all_wheels_on_track"]:
        return 1.0
""", None, ["ended without a return statement (None): return a float", "over the border"]),
    ("returns-none-explicitly", """
def reward_function(params):
    reward = None
    return reward
""", 3, ["returned NoneType None, not a number: return a float"]),
    ("returns-bool", """
def reward_function(params):
    return params["all_wheels_on_track"]
""", 2, ["returned bool", "not a number"]),
    ("returns-nan", """
def reward_function(params):
    if params["is_offtrack"]:
        return float("nan")
    return 1.0
""", 3, ["returned nan: the simulator stops on a reward that is NaN or infinite",
         "(off track)"]),
    ("out-of-range", """
def reward_function(params):
    return params["progress"] * 1e4
""", 2, ["returned 9", "outside [-1e5, 1e5] where the simulator stops"]),
    ("only-off-track", """
def reward_function(params):
    if params["is_offtrack"]:
        raise ValueError("the car left the road")
    return 1.0
""", 3, ["raised ValueError: the car left the road", "(off track)"]),
    ("division-by-zero-at-the-line", """
def reward_function(params):
    return float(100.0 / (100.0 - params["progress"]) / 100.0)
""", 2, ["raised ZeroDivisionError", "at progress 100.0%"]),
    ("index-past-the-last-waypoint", """
def reward_function(params):
    waypoints = params["waypoints"]
    ahead = waypoints[params["closest_waypoints"][1] + 1]
    return 1.0
""", 3, ["raised IndexError: list index out of range"]),
    ("objects-assumed", """
def reward_function(params):
    box = params["objects_location"][params["closest_objects"][1]]
    return 1.0
""", 2, ["raised IndexError", "on the centre line"]),
    ("endless-loop", """
def reward_function(params):
    while params["steps"] > 0:
        pass
    return 1.0
""", None, ["took more than 0.3 s"]),
    ("fails-when-loaded", """
import math

SCALE = 1 / 0

def reward_function(params):
    return 1.0
""", 3, ["running the file failed: ZeroDivisionError: division by zero"]),
]


@pytest.mark.parametrize("name, source, line, words", BROKEN, ids=[c[0] for c in BROKEN])
def test_a_broken_reward_function_is_named_with_its_line_and_why(
        name, source, line, words, tracks):
    options = {"call_timeout": 0.3} if name == "endless-loop" else {}
    found = check(source, tracks, **options)[0]
    assert found, "no problem found"
    first = found[0]
    assert first["file"] == FILE
    # Falling off the end: the line the function ended on, which Python versions tell apart.
    assert first.get("line") == line or name == "returns-none", first
    for word in words:
        assert word in first["msg"], (word, first["msg"])


def test_all_the_static_problems_at_once(tracks):
    found, findings = check("""
import os
import sys

def reward_function(params, extra):
    return eval(open("x").read())
""", tracks)
    assert [(p["line"], p["msg"].split(":")[0].split(",")[0]) for p in found] == [
        (1, "imports os"), (2, "imports sys"),
        (4, "reward_function must take exactly one parameter (params)"),
        (5, "uses eval"), (5, "uses open")]
    assert findings["calls"] == 0


def test_a_good_reward_function_is_called_everywhere(tracks):
    found, findings = check(GOOD, tracks)
    assert found == []
    # 77 calls per track, 55 on the loop reversed, 12 with objects (one crashed).
    assert findings["calls"] == 2 * 77 + 55 + 12 == len(dv.reward_cases(tracks)) == 221
    assert findings["kinds"] == {"float": findings["calls"]}
    assert findings["returned"][0] == 1e-3 and 0.99 < findings["returned"][1] <= 1.0


def test_the_calls_cover_start_middle_finish_on_and_off_track_and_directions(tracks):
    cases = dv.reward_cases(tracks, [(-30.0, 1.0), (30.0, 3.5)])
    params = [c["params"] for c in cases]
    assert {p["progress"] for p in params} >= {0.0, 100.0}
    assert any(49 < p["progress"] < 51 for p in params)
    assert {(p["all_wheels_on_track"], p["is_offtrack"]) for p in params} == {
        (True, False), (False, False), (False, True)}
    assert {p["is_left_of_center"] for p in params} == {True, False}
    assert {p["is_reversed"] for p in params} == {True, False}
    assert {p["is_crashed"] for p in params} == {True, False}
    assert {(p["steering_angle"], p["speed"]) for p in params} == {(-30.0, 1.0), (30.0, 3.5)}
    assert any(p["objects_location"] for p in params) and any(p["object_in_camera"]
                                                              for p in params)
    headings = sorted(p["heading"] for p in params)
    assert headings[0] < -90 and headings[-1] > 90


def test_an_int_or_numpys_float_is_accepted_and_counted(tracks):
    found, findings = check("""
import numpy as np

def reward_function(params):
    if params["is_offtrack"]:
        return 0
    return np.float64(1.0)
""", tracks)
    assert found == []
    assert set(findings["kinds"]) == {"int", "float"} and findings["imports"] == ["numpy"]


def test_what_the_function_prints_does_not_disturb_the_report(tracks):
    found, findings = check("""
def reward_function(params):
    print('{"load": "not json"}', params["steps"])
    return 1.0
""", tracks)
    assert found == [] and findings["calls"] > 0


def test_each_call_gets_its_own_params(tracks):
    found = check("""
def reward_function(params):
    waypoints = params["waypoints"]
    assert len(waypoints) > 10, len(waypoints)
    waypoints.clear()
    params.clear()
    return 1.0
""", tracks)[0]
    assert found == []


def test_a_module_the_controller_lacks_is_said_not_failed(tracks):
    found, findings = check("""
import rlops_no_such_module

def reward_function(params):
    return 1.0
""", tracks, extra_imports=("rlops_no_such_module",))
    assert found == [] and findings["missing"] == ["rlops_no_such_module"]
    assert findings["calls"] == 0


def test_a_child_that_does_not_answer_is_a_problem_not_a_crash(tracks):
    found = check(GOOD, tracks, runner=lambda *a, **k: {
        "failed": "the 209 calls took more than 1 s in all"})[0]
    assert found == [{"file": FILE, "msg": "the 209 calls took more than 1 s in all"}]
    found = check(GOOD, tracks, python="/nonexistent/python3")[0]
    assert "cannot run /nonexistent/python3" in found[0]["msg"]


def test_the_whole_run_has_a_time_limit(tracks):
    found = check("""
import time

def reward_function(params):
    time.sleep(0.05)
    return 1.0
""", tracks, extra_imports=("time",), timeout=1.0)[0]
    assert "took more than 1 s in all (timeout)" in found[0]["msg"]


def test_a_bound_method_as_reward_function_is_called(tracks):
    source = """
class Reward:
    def __init__(self):
        self.calls = 0

    def reward_function(self, params):
        self.calls += 1
        return float(params["steps"] > 0)

reward_function = Reward().reward_function
"""
    found, findings = check(source, tracks)
    assert found == [] and findings["calls"] == 221
    found = check(source.replace("reward_function = Reward", "reward_function = 3  # Reward"),
                  tracks)[0]
    assert found == [{"file": FILE, "msg": "defines no callable reward_function once run"}]
