"""deepracer_tracks: the stdlib .npy reader against numpy, and the reward params against
values computed by hand on a real track and on synthetic (N, 6) tracks."""

import io
import math
from pathlib import Path

import numpy
import pytest
from ansible_collections.rlops.fleet.plugins.module_utils import deepracer_tracks as dt

REPO = Path(__file__).resolve().parents[3]
TRACKS = REPO / "roles/deepracer_stack/files/tracks"


def npy_bytes(array, version=None):
    buffer = io.BytesIO()
    numpy.lib.format.write_array(buffer, numpy.asarray(array), version=version)
    return buffer.getvalue()


def real(name):
    return dt.Track.from_npy((TRACKS / (name + ".npy")).read_bytes(), name)


def circle_rows(radius=5.0, width=1.0, segments=72):
    """A counter-clockwise ring track: centre radius R, inner R - w/2, outer R + w/2."""
    rows = []
    for k in range(segments + 1):
        angle = 2 * math.pi * (k % segments) / segments
        c, s = math.cos(angle), math.sin(angle)
        rows.append((radius * c, radius * s, (radius - width / 2) * c, (radius - width / 2) * s,
                     (radius + width / 2) * c, (radius + width / 2) * s))
    return rows


def straight_rows():
    """An open track along +x from 0 to 10 m, inner border at y = +0.5, outer at -0.5."""
    return [(float(x), 0.0, float(x), 0.5, float(x), -0.5) for x in range(11)]


# ---------------------------------------------------------------- the reader

@pytest.mark.parametrize("path", sorted(TRACKS.glob("*.npy")), ids=lambda p: p.stem)
def test_every_shipped_track_reads_as_numpy_does(path):
    rows = dt.read_npy(path.read_bytes(), path.name)
    assert numpy.array_equal(numpy.array(rows), numpy.load(path)[:, :6])


def test_format_2_and_extra_columns_read():
    array = numpy.arange(16 * 7, dtype="<f8").reshape(16, 7)
    rows = dt.read_npy(npy_bytes(array, version=(2, 0)))
    assert rows[3] == tuple(float(v) for v in array[3, :6])


@pytest.mark.parametrize("data, message", [
    (b"PK\x03\x04 not an array", "not a .npy file"),
    (npy_bytes(numpy.zeros((5, 6), dtype="<f4")), "not little-endian float64"),
    (npy_bytes(numpy.zeros((5, 6), dtype=">f8")), "not little-endian float64"),
    (npy_bytes(numpy.asfortranarray(numpy.zeros((5, 6)))), "Fortran order"),
    (npy_bytes(numpy.zeros((5, 4))), "shape (5, 4), not (N, 6)"),
    (npy_bytes(numpy.zeros(30)), "not (N, 6)"),
    (npy_bytes(numpy.zeros((5, 6)))[:-8], "bytes of values"),
    (npy_bytes(numpy.full((3, 6), numpy.nan)), "row 0 is not finite"),
], ids=["not-npy", "float32", "big-endian", "fortran", "4-columns", "1-d", "truncated", "nan"])
def test_a_file_that_is_not_a_track_is_refused_with_why(data, message):
    with pytest.raises(dt.TrackError, match=None) as caught:
        dt.read_npy(data, "broken.npy")
    assert message in str(caught.value) and "broken.npy" in str(caught.value)


# ---------------------------------------------------------------- a real track by hand

def test_the_simulators_waypoints_are_the_centre_line_without_its_repeated_point():
    raw = dt.read_npy((TRACKS / "reInvent2019_track.npy").read_bytes())
    track = real("reInvent2019_track")
    # Rows 38 and 39 have the same centre point: the simulator keeps one (155 -> 154).
    assert len(raw) == 155 and raw[38][0:2] == raw[39][0:2]
    assert len(track.waypoints) == 154
    assert track.waypoints[38] == raw[38][0:2] and track.waypoints[39] == raw[40][0:2]
    # Columns 0:2, not the inner border 2:4 that the console's validator takes.
    assert track.waypoints[10] == raw[10][0:2] != raw[10][2:4]


def test_a_point_on_the_centre_line_has_its_waypoints_progress():
    raw = dt.read_npy((TRACKS / "reInvent2019_track.npy").read_bytes())
    centre = [r[0:2] for r in raw]
    length = sum(math.dist(a, b) for a, b in zip(centre, centre[1:]))
    along_20 = sum(math.dist(a, b) for a, b in zip(centre[:20], centre[1:21]))
    track = real("reInvent2019_track")
    x, y = centre[20]
    params = dt.reward_params(track, x, y, 0.0)
    assert params["track_length"] == pytest.approx(length, abs=1e-9)
    assert params["distance_from_center"] == pytest.approx(0.0, abs=1e-9)
    assert params["progress"] == pytest.approx(100 * along_20 / length, abs=1e-9)
    assert params["projection_distance"] == pytest.approx(along_20, abs=1e-9)
    assert params["closest_waypoints"] == [20, 21]
    # Inner and outer borders are 1.0668 m apart all along this track.
    assert params["track_width"] == pytest.approx(1.0668, abs=1e-3)
    assert params["all_wheels_on_track"] and not params["is_offtrack"]


def test_start_is_progress_0_and_crossing_the_line_from_99_is_100():
    track = real("reInvent2019_track")
    x, y = track.waypoints[0]
    assert dt.reward_params(track, x, y, 0.0)["progress"] == 0.0
    assert dt.reward_params(track, x, y, 0.0, prev_progress=99.5)["progress"] == 100.0


@pytest.mark.parametrize("name, ccw", [("2022_reinvent_champ_ccw", True),
                                       ("2024_reinvent_champ_cw", False)])
def test_left_of_centre_is_left_of_the_direction_of_travel(name, ccw):
    track = real(name)
    assert track.is_ccw is ccw
    x, y, heading = track.point_at(0.3, 0.2)
    left = dt.reward_params(track, x, y, heading)
    x, y, heading = track.point_at(0.3, -0.2)
    right = dt.reward_params(track, x, y, heading)
    assert left["is_left_of_center"] and not right["is_left_of_center"]
    assert left["distance_from_center"] == pytest.approx(0.2, abs=0.01)
    # Driven the other way, the same point is on the other side.
    backwards = track.reversed()
    x, y, heading = track.point_at(0.3, 0.2)
    assert not dt.reward_params(backwards, x, y, heading + 180)["is_left_of_center"]


def test_off_track_is_all_four_wheels_off_the_road():
    track = real("reinvent_base")
    x, y, heading = track.point_at(0.4, 1.2)
    off = dt.reward_params(track, x, y, heading)
    assert off["is_offtrack"] and not off["all_wheels_on_track"]


# ---------------------------------------------------------------- synthetic tracks by hand

def test_a_ring_track_by_hand():
    track = dt.Track("ring", circle_rows())
    assert track.is_loop and track.is_ccw
    assert track.track_length == pytest.approx(72 * 2 * 5 * math.sin(math.pi / 72))
    # Waypoint 18 is at 90 degrees, (0, 5); the car drives counter-clockwise: heading 180.
    params = dt.reward_params(track, 0.0, 5.3, 180.0, speed=2.0, steering_angle=-10, steps=40)
    assert params["closest_waypoints"] == [18, 19]
    assert params["progress"] == pytest.approx(25.0)
    assert params["projection_distance"] == pytest.approx(track.track_length / 4)
    assert params["distance_from_center"] == pytest.approx(0.3)
    # The inner border's nearest point to (0, 5) is its vertex (0, 4.5); the outer border's
    # is the foot of the perpendicular on its edge from 90 to 95 degrees (normal at 92.5,
    # 5.5 cos(2.5 deg) from the origin): the polygon's width, not the circle's 1.0.
    normal = (math.cos(math.radians(92.5)), math.sin(math.radians(92.5)))
    gap = 5.5 * math.cos(math.radians(2.5)) - 5.0 * normal[1]
    foot = (gap * normal[0], 5.0 + gap * normal[1])
    assert params["track_width"] == pytest.approx(math.dist(foot, (0.0, 4.5)), abs=1e-9)
    assert params["is_left_of_center"] is False  # outside the centre: right of travel
    assert params["heading"] == 180.0 and params["speed"] == 2.0
    assert params["steering_angle"] == -10.0 and params["steps"] == 40
    assert params["sim_time"] == pytest.approx(40 / 15)
    assert params["all_wheels_on_track"] and not params["is_offtrack"]
    assert params["is_reversed"] is False and params["is_crashed"] is False
    assert params["waypoints"] == [r[0:2] for r in circle_rows()]
    assert dt.reward_params(track, 0.0, 4.7, 180.0)["is_left_of_center"] is True
    # The outer border is at 5.5: 5.45 puts the outer wheels (0.08 m out) over it.
    border = dt.reward_params(track, 0.0, 5.45, 180.0)
    assert not border["all_wheels_on_track"] and not border["is_offtrack"]
    off = dt.reward_params(track, 0.0, 6.0, 180.0)
    assert off["is_offtrack"] and not off["all_wheels_on_track"]


def test_every_documented_key_is_there_with_its_type():
    params = dt.reward_params(dt.Track("ring", circle_rows()), 5.0, 0.0, 90.0)
    types = {"all_wheels_on_track": bool, "x": float, "y": float, "heading": float,
             "distance_from_center": float, "projection_distance": float, "progress": float,
             "steps": int, "speed": float, "steering_angle": float, "track_width": float,
             "track_length": float, "waypoints": list, "closest_waypoints": list,
             "is_left_of_center": bool, "is_reversed": bool, "closest_objects": list,
             "objects_location": list, "objects_left_of_center": list,
             "object_in_camera": bool, "objects_speed": list, "objects_heading": list,
             "objects_distance_from_center": list, "objects_distance": list,
             "is_crashed": bool, "is_offtrack": bool, "sim_time": float}
    assert {k: type(v) for k, v in params.items()} == types


def test_objects_by_hand_on_the_ring():
    track = dt.Track("ring", circle_rows())
    quarter = track.track_length / 4
    boxes = [(0.0, -4.8, 0.0, 0.0),                 # 270 degrees, inside: left
             (5.0 * math.cos(math.pi / 4), 5.0 * math.sin(math.pi / 4), 0.0, 0.0),  # 45
             (-5.2, 0.0, 90.0, 0.5)]                # 180 degrees, outside: right
    params = dt.reward_params(track, 0.0, 5.0, 180.0, objects=boxes)
    # The car at 90 degrees: behind it the box at 45, ahead the one at 180.
    assert params["closest_objects"] == [1, 2]
    # Within 1 cm: a point inside the ring projects onto an edge, not onto its vertex.
    assert params["objects_distance"] == pytest.approx([3 * quarter, quarter / 2, 2 * quarter],
                                                       abs=0.01)
    assert params["objects_left_of_center"] == [True, False, False]
    assert params["objects_distance_from_center"] == pytest.approx([0.2, 0.0, 0.2], abs=0.01)
    assert params["objects_speed"] == [0.0, 0.0, 0.5]
    assert params["objects_heading"] == [0.0, 0.0, 90.0]
    assert params["objects_location"][2] == [-5.2, 0.0]
    # The next box is 7 m away along the circle: not in the camera's 3 m.
    assert params["object_in_camera"] is False
    near = dt.reward_params(track, 0.0, 5.0, 180.0, objects=[(-2.0, 5.0, 0.0, 0.0)])
    assert near["object_in_camera"] is True and near["closest_objects"] == [0, 0]


def test_without_objects_the_simulators_defaults():
    params = dt.reward_params(dt.Track("ring", circle_rows()), 5.0, 0.0, 90.0)
    assert params["closest_objects"] == [0, 0] and params["objects_location"] == []
    assert params["object_in_camera"] is False


def test_an_open_track_by_hand():
    track = dt.Track("line", straight_rows())
    assert not track.is_loop and track.is_ccw
    params = dt.reward_params(track, 5.0, 0.2, 0.0)
    assert params["closest_waypoints"] == [5, 6]
    assert params["progress"] == pytest.approx(50.0)
    assert params["distance_from_center"] == pytest.approx(0.2)
    assert params["track_width"] == pytest.approx(1.0)
    assert params["is_left_of_center"] is True
    assert dt.reward_params(track, 10.0, 0.0, 0.0)["progress"] == pytest.approx(100.0)
    backwards = track.reversed()
    assert backwards.is_ccw is False and backwards.waypoints[0] == (10.0, 0.0)
    reversed_params = dt.reward_params(backwards, 7.0, 0.2, 180.0)
    assert reversed_params["is_reversed"] is True
    assert reversed_params["progress"] == pytest.approx(30.0)
    assert reversed_params["is_left_of_center"] is False  # +y is right when driving to -x


def test_headings_are_reported_within_plus_minus_180():
    assert [dt.heading_degrees(a) for a in (190.0, -190.0, 540.0, 180.0, -180.0)] == [
        -170.0, 170.0, 180.0, 180.0, 180.0]


def test_a_track_of_one_distinct_point_is_refused():
    with pytest.raises(dt.TrackError, match="dot: the centre line has no length"):
        dt.Track("dot", [(1.0, 1.0, 1.0, 1.5, 1.0, 0.5)] * 3)
    with pytest.raises(dt.TrackError, match="fewer than 2 distinct centre points"):
        dt.Track("dot", [(1.0, 1.0, 1.0, 1.5, 1.0, 0.5), (1.0, 1.0, 2.0, 1.5, 2.0, 0.5)])
