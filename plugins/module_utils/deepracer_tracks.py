# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""DeepRacer track waypoints and the reward function's `params` computed from them, with the
Python standard library only (the controller needs neither numpy nor shapely).

A track file is what the simulator reads (deepracer-simapp `bundle/routes/<world>.npy`): a
numpy array of shape (N, 6), float64, metres, one row per waypoint - columns 0-1 the centre
line, 2-3 the inner border, 4-5 the outer border; on a closed track the last row repeats the
first. (The DeepRacer console's validator takes columns 2:4 as the centre line: that is its
bug, not the simulator's geometry.)

`reward_params` fills every key the simulator gives a reward function
(simapp `markov/agent_ctrl/utils.py::set_reward_and_metrics`, `track_geom/track_data.py`),
the way it computes them: the car's point projected on the centre line gives progress,
closest_waypoints and projection_distance; the nearest inner and outer border points give
track_width and is_left_of_center; the four wheels against the road polygon give
all_wheels_on_track and is_offtrack.
"""

from __future__ import annotations

import ast
import bisect
import math
import struct
from dataclasses import dataclass, field

NPY_MAGIC = b"\x93NUMPY"
COLUMNS = 6
# The reported (x, y) is a point 0.14 m ahead of the car's base link (simapp
# agent_ctrl/constants.py RELATIVE_POSITION_OF_FRONT_OF_CAR); the wheels sit around the base
# link (simapp urdf/deepracer/deepracer_single_cam.urdf: steering hinges at x 0.0823,
# y +-0.0796; rear wheels at x -0.0817, y +-0.0811), in metres along and left of the heading.
FRONT_OF_CAR = 0.14
WHEELS = ((0.082311, 0.079601), (0.082311, -0.079601),
          (-0.081663, 0.08105), (-0.081663, -0.08105))
# The simulator drops a centre point closer than this to the one before it (_sanitize_waypoints).
DEGENERATE = 1e-9
# What a reward function gets when the race has no objects (RewardParam defaults).
NO_OBJECTS = {
    "closest_objects": [0, 0],
    "objects_location": [],
    "objects_left_of_center": [],
    "object_in_camera": False,
    "objects_speed": [],
    "objects_heading": [],
    "objects_distance_from_center": [],
    "objects_distance": [],
}
# object_in_camera: the simulator asks the camera's frustum; here the next object is seen
# when it is ahead within this half-angle and distance (the front camera's 120-degree view).
CAMERA_HALF_ANGLE = 60.0
CAMERA_RANGE = 3.0


class TrackError(ValueError):
    """A track file that cannot be read as an (N, 6) float64 array."""


def read_npy(data: bytes, name: str = "track") -> list[tuple[float, ...]]:
    """The rows of a .npy file (format 1.0, 2.0 or 3.0) holding a C-order, little-endian
    float64 array of shape (N, 6) or more columns (the first six are kept)."""
    if not data.startswith(NPY_MAGIC) or len(data) < 10:
        raise TrackError("%s: not a .npy file (no \\x93NUMPY magic)" % name)
    major = data[6]
    if major == 1:
        (header_len,) = struct.unpack("<H", data[8:10])
        start = 10
    elif major in (2, 3):
        if len(data) < 12:
            raise TrackError("%s: truncated .npy header" % name)
        (header_len,) = struct.unpack("<I", data[8:12])
        start = 12
    else:
        raise TrackError("%s: .npy format version %d is not supported" % (name, major))
    raw_header = data[start:start + header_len]
    try:
        header = ast.literal_eval(raw_header.decode("utf-8" if major == 3 else "latin-1"))
    except (ValueError, SyntaxError, UnicodeDecodeError) as exc:
        raise TrackError("%s: unreadable .npy header (%s)" % (name, exc)) from None
    if not isinstance(header, dict) or not {"descr", "fortran_order", "shape"} <= set(header):
        raise TrackError("%s: the .npy header lacks descr, fortran_order or shape" % name)
    if header["descr"] not in ("<f8", "f8", "float64"):
        raise TrackError("%s: values are %s, not little-endian float64 (<f8)"
                         % (name, header["descr"]))
    if header["fortran_order"]:
        raise TrackError("%s: the array is in Fortran order, not C order" % name)
    shape = header["shape"]
    if (not isinstance(shape, tuple) or len(shape) != 2 or shape[1] < COLUMNS
            or shape[0] < 2):
        raise TrackError("%s: shape %s, not (N, 6) with N >= 2" % (name, shape))
    rows, columns = shape
    body = data[start + header_len:]
    if len(body) < rows * columns * 8:
        raise TrackError("%s: %d bytes of values, %d expected for shape %s"
                         % (name, len(body), rows * columns * 8, shape))
    values = struct.unpack("<%dd" % (rows * columns), body[:rows * columns * 8])
    table = [tuple(values[r * columns:r * columns + COLUMNS]) for r in range(rows)]
    for number, row in enumerate(table):
        if not all(math.isfinite(v) for v in row):
            raise TrackError("%s: a value of row %d is not finite" % (name, number))
    return table


def _distance(a, b) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


class Polyline:
    """A line through points, with shapely's LineString project/interpolate/distance."""

    def __init__(self, points):
        self.points = [(float(p[0]), float(p[1])) for p in points]
        self.cumulative = [0.0]
        for a, b in zip(self.points, self.points[1:]):
            self.cumulative.append(self.cumulative[-1] + _distance(a, b))
        self.length = self.cumulative[-1]

    def _nearest(self, point):
        """(distance to the line, distance along it) of the line's point nearest `point`."""
        best = (math.inf, 0.0)
        px, py = point
        for index, (a, b) in enumerate(zip(self.points, self.points[1:])):
            dx, dy = b[0] - a[0], b[1] - a[1]
            squared = dx * dx + dy * dy
            if squared == 0.0:
                continue
            t = max(0.0, min(1.0, ((px - a[0]) * dx + (py - a[1]) * dy) / squared))
            gap = math.hypot(a[0] + t * dx - px, a[1] + t * dy - py)
            if gap < best[0]:
                best = (gap, self.cumulative[index] + t * math.sqrt(squared))
        return best

    def project(self, point) -> float:
        """Distance along the line to the point of the line nearest `point`."""
        return self._nearest(point)[1]

    def distance(self, point) -> float:
        return self._nearest(point)[0]

    def interpolate(self, along: float):
        """The point at distance `along` from the start (clamped to the line)."""
        along = max(0.0, min(self.length, along))
        index = min(bisect.bisect_right(self.cumulative, along) - 1, len(self.points) - 2)
        index = max(index, 0)
        span = self.cumulative[index + 1] - self.cumulative[index]
        t = 0.0 if span == 0.0 else (along - self.cumulative[index]) / span
        a, b = self.points[index], self.points[index + 1]
        return (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))


def _inside(ring, point) -> bool:
    """Whether `point` is inside the closed ring (even-odd rule)."""
    x, y = point
    inside = False
    count = len(ring)
    for index in range(count):
        (x1, y1), (x2, y2) = ring[index], ring[(index + 1) % count]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _signed_area(ring) -> float:
    return 0.5 * sum(a[0] * b[1] - b[0] * a[1]
                     for a, b in zip(ring, list(ring[1:]) + [ring[0]]))


def sanitize(rows):
    """The rows the simulator keeps: a centre point equal (within 1e-9 m) to the one kept
    before it is dropped, the closing row of a loop kept as it is."""
    rows = [tuple(r[:COLUMNS]) for r in rows]
    is_loop = rows[0] == rows[-1]
    body = rows[:-1] if is_loop and len(rows) > 2 else rows
    kept = [body[0]]
    for row in body[1:]:
        if _distance(row[0:2], kept[-1][0:2]) > DEGENERATE:
            kept.append(row)
    if is_loop and len(rows) > 2:
        kept.append(rows[-1])
    if len(kept) < 2:
        raise TrackError("the track has fewer than 2 distinct centre points")
    return kept


@dataclass
class Track:
    """A track as the simulator sees it in one direction of travel."""

    name: str
    rows: list
    is_reversed: bool = False
    is_loop: bool = field(init=False)
    center: Polyline = field(init=False)
    inner: Polyline = field(init=False)
    outer: Polyline = field(init=False)
    is_ccw: bool = field(init=False)
    ndists: list = field(init=False)

    def __post_init__(self):
        self.rows = sanitize(self.rows)
        ordered = self.rows[::-1] if self.is_reversed else self.rows
        self.is_loop = self.rows[0] == self.rows[-1]
        self.center = Polyline([r[0:2] for r in ordered])
        self.inner = Polyline([r[2:4] for r in ordered])
        self.outer = Polyline([r[4:6] for r in ordered])
        if self.center.length <= 0.0:
            raise TrackError("%s: the centre line has no length" % self.name)
        if self.is_loop:
            self._road = (self.outer.points, self.inner.points)
            self._inner_side = (self.center.points, self.inner.points)
            # LinearRing.is_ccw of the centre line; the reversed line turns the other way.
            self.is_ccw = _signed_area(self.center.points) > 0.0
        else:
            self._road = (self.outer.points + self.inner.points[::-1], None)
            self._inner_side = (self.center.points + self.inner.points[::-1], None)
            # The simulator calls an open track counter-clockwise, clockwise when reversed.
            self.is_ccw = not self.is_reversed
        # Normalised distance of every waypoint along the centre line, the last one 1.0.
        self.ndists = [c / self.center.length for c in self.center.cumulative[:-1]] + [1.0]

    @classmethod
    def from_npy(cls, data: bytes, name: str) -> Track:
        return cls(name, read_npy(data, name))

    def reversed(self) -> Track:
        return Track(self.name, self.rows, is_reversed=not self.is_reversed)

    @property
    def track_length(self) -> float:
        return self.center.length

    @property
    def waypoints(self):
        """The reward function's `waypoints`: the centre line's (x, y) tuples."""
        return list(self.center.points)

    def on_track(self, point) -> bool:
        """Whether the point is on the road (between the borders)."""
        outer, hole = self._road
        return _inside(outer, point) and not (hole is not None and _inside(hole, point))

    def _in_inner_side(self, point) -> bool:
        outer, hole = self._inner_side
        return _inside(outer, point) and not (hole is not None and _inside(hole, point))

    def closest_waypoints(self, ndist: float):
        """[previous, next] waypoint indices around a normalised distance (find_prev_next)."""
        following = bisect.bisect_right(self.ndists, ndist)
        previous = following - 1
        if previous == -1:
            previous = len(self.ndists) - 1
        if following == len(self.ndists):
            following = 0
        return [previous, following]

    def point_at(self, fraction: float, offset: float = 0.0):
        """(x, y, heading in degrees) of the centre line at `fraction` of its length, moved
        `offset` metres to the left of the direction of travel (negative: right)."""
        along = (fraction % 1.0 if self.is_loop else min(max(fraction, 0.0), 1.0)) \
            * self.track_length
        x, y = self.center.interpolate(along)
        ahead = self.center.interpolate(min(along + 0.05, self.track_length))
        behind = self.center.interpolate(max(along - 0.05, 0.0))
        heading = math.atan2(ahead[1] - behind[1], ahead[0] - behind[0])
        return (x - offset * math.sin(heading), y + offset * math.cos(heading),
                math.degrees(heading))

    def wheels(self, x: float, y: float, heading: float):
        """The four wheel contact points of a car whose reported point is (x, y)."""
        h = math.radians(heading)
        cos, sin = math.cos(h), math.sin(h)
        base = (x - FRONT_OF_CAR * cos, y - FRONT_OF_CAR * sin)
        return [(base[0] + ahead * cos - left * sin, base[1] + ahead * sin + left * cos)
                for ahead, left in WHEELS]


def current_progress(ndist: float, start_ndist: float, prev_progress: float) -> float:
    """Progress in percent as the simulator computes it (compute_current_prog)."""
    progress = 100.0 * (ndist - start_ndist)
    if progress <= 0:
        progress += 100.0
    if prev_progress > progress + 50.0:
        progress += 100.0
    if progress > prev_progress + 50.0:
        progress -= 100.0
    return min(progress, 100.0)


def heading_degrees(angle: float) -> float:
    """An angle in degrees as the simulator reports a yaw: in (-180, 180]."""
    angle = math.fmod(angle, 360.0)
    if angle > 180.0:
        angle -= 360.0
    elif angle <= -180.0:
        angle += 360.0
    return angle


def _object_params(track: Track, point, heading: float, objects) -> dict:
    """objects_* and closest_objects for objects given as (x, y, heading, speed)."""
    locations = [[float(o[0]), float(o[1])] for o in objects]
    distances = [track.center.project(p) for p in locations]
    order = sorted(range(len(locations)), key=lambda i: distances[i])
    here = track.center.project(point)
    ordered = [distances[i] for i in order]
    following = bisect.bisect_right(ordered, here)
    previous = following - 1
    if previous == -1:
        previous = len(ordered) - 1
    if following == len(ordered):
        following = 0
    previous, following = order[previous], order[following]
    ahead = locations[following]
    bearing = math.degrees(math.atan2(ahead[1] - point[1], ahead[0] - point[0]))
    in_camera = (abs(heading_degrees(bearing - heading)) <= CAMERA_HALF_ANGLE
                 and _distance(ahead, point) <= CAMERA_RANGE)
    return {
        "closest_objects": [previous, following],
        "objects_location": locations,
        "objects_left_of_center": [track._in_inner_side(p) ^ (not track.is_ccw)
                                   for p in locations],
        "object_in_camera": in_camera,
        "objects_speed": [float(o[3]) for o in objects],
        "objects_heading": [float(o[2]) for o in objects],
        "objects_distance_from_center": [track.center.distance(p) for p in locations],
        "objects_distance": distances,
    }


def reward_params(track: Track, x: float, y: float, heading: float, *, speed: float = 1.0,
                  steering_angle: float = 0.0, steps: int = 1, start_ndist: float = 0.0,
                  prev_progress: float | None = None, objects=(), is_crashed: bool = False,
                  sim_time: float | None = None) -> dict:
    """Every key of the reward function's `params` for a car at (x, y) heading `heading`
    degrees on `track` (in its direction of travel), computed as the simulator does.
    `prev_progress`: the progress of the step before (None: the car came from just behind,
    so no lap is added or taken away). `objects`: (x, y, heading, speed) of each box or bot
    car of a race with objects."""
    point = (float(x), float(y))
    length = track.track_length
    ndist = track.center.project(point) / length
    if prev_progress is None:
        prev_progress = 100.0 * (ndist - start_ndist)
        prev_progress += 100.0 if prev_progress < 0 else 0.0
    near_center = track.center.interpolate(ndist * length)
    near_inner = track.inner.interpolate(track.inner.project(near_center))
    near_outer = track.outer.interpolate(track.outer.project(near_center))
    wheels_on_track = [track.on_track(w) for w in track.wheels(x, y, heading)]
    params = {
        "all_wheels_on_track": all(wheels_on_track),
        "x": point[0],
        "y": point[1],
        "heading": heading_degrees(float(heading)),
        "distance_from_center": _distance(near_center, point),
        "projection_distance": ndist * length,
        "progress": current_progress(ndist, start_ndist, prev_progress),
        "steps": int(steps),
        "speed": float(speed),
        "steering_angle": float(steering_angle),
        "track_width": _distance(near_inner, near_outer),
        "track_length": length,
        "waypoints": track.waypoints,
        "closest_waypoints": track.closest_waypoints(ndist),
        "is_left_of_center": ((_distance(point, near_inner) < _distance(point, near_outer))
                              ^ (not track.is_ccw)),
        "is_reversed": track.is_reversed,
        "is_crashed": bool(is_crashed),
        "is_offtrack": not any(wheels_on_track),
        "sim_time": float(steps) / 15.0 if sim_time is None else float(sim_time),
    }
    params.update(NO_OBJECTS)
    if objects:
        params.update(_object_params(track, point, params["heading"], list(objects)))
    return params
