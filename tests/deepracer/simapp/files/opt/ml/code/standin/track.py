"""A track from its .npy waypoints (N, 6: centre 0:2, inner 2:4, outer 4:6) and the
reward params of a car on it. Standard library only: the image has no numpy."""

import ast
import math
import os
import struct

TRACKS_DIR = os.environ.get("STANDIN_TRACKS_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "tracks")


def read_npy(path):
    """Rows of a little-endian float64 .npy file (format 1.0-3.0, C order)."""
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:6] != b"\x93NUMPY":
        raise ValueError(f"{path}: not a .npy file")
    major = data[6]
    if major == 1:
        (hlen,), start = struct.unpack("<H", data[8:10]), 10
    else:
        (hlen,), start = struct.unpack("<I", data[8:12]), 12
    header = ast.literal_eval(data[start:start + hlen].decode("latin1"))
    if header["descr"] != "<f8" or header["fortran_order"]:
        raise ValueError(f"{path}: want little-endian float64 in C order")
    rows, cols = header["shape"]
    body = data[start + hlen:start + hlen + 8 * rows * cols]
    values = struct.unpack(f"<{rows * cols}d", body)
    return [list(values[i * cols:(i + 1) * cols]) for i in range(rows)]


class Track:
    def __init__(self, world_name, reverse=False):
        path = os.path.join(TRACKS_DIR, f"{world_name}.npy")
        if not os.path.exists(path):
            raise ValueError("WORLD_NAME {!r}: no track {} (tracks here: {})".format(
                world_name, path, ", ".join(sorted(f[:-4] for f in os.listdir(TRACKS_DIR)))))
        rows = read_npy(path)
        if reverse:
            rows = rows[::-1]
        self.name = world_name
        self.center = [(r[0], r[1]) for r in rows]
        self.inner = [(r[2], r[3]) for r in rows]
        self.outer = [(r[4], r[5]) for r in rows]
        self.closed = math.dist(self.center[0], self.center[-1]) < 1e-6
        self.seg = [math.dist(self.center[i], self.center[i + 1]) for i in range(len(rows) - 1)]
        self.cum = [0.0]
        for length in self.seg:
            self.cum.append(self.cum[-1] + length)
        self.length = self.cum[-1]
        self.widths = [math.dist(self.inner[i], self.outer[i]) for i in range(len(rows))]

    def point_at(self, dist, offset):
        """(x, y, heading deg, segment index, width) at distance dist along the centre line,
        offset metres to its left."""
        dist = dist % self.length if self.closed else min(max(dist, 0.0), self.length - 1e-9)
        i = max(0, min(len(self.seg) - 1, next(
            (k for k in range(len(self.seg)) if self.cum[k + 1] >= dist), len(self.seg) - 1)))
        (x0, y0), (x1, y1) = self.center[i], self.center[i + 1]
        t = (dist - self.cum[i]) / self.seg[i] if self.seg[i] else 0.0
        dx, dy = (x1 - x0) / (self.seg[i] or 1.0), (y1 - y0) / (self.seg[i] or 1.0)
        x, y = x0 + t * (x1 - x0) - dy * offset, y0 + t * (y1 - y0) + dx * offset
        width = self.widths[i] + t * (self.widths[i + 1] - self.widths[i])
        return x, y, math.degrees(math.atan2(dy, dx)), i, width

    def params(self, dist, offset, heading_error, speed, steering, steps, progress,
               is_offtrack, sim_time):
        """The reward function's params (deepracer developer guide, simapp RewardParam)."""
        x, y, heading, i, width = self.point_at(dist, offset)
        heading = (heading + heading_error + 180.0) % 360.0 - 180.0
        n = len(self.center) - 1 if self.closed else len(self.center)
        prev_wp, next_wp = i % n, (i + 1) % n
        return {
            "all_wheels_on_track": abs(offset) + 0.08 <= width / 2 and not is_offtrack,
            "x": x, "y": y, "heading": heading,
            "distance_from_center": abs(offset),
            "projection_distance": dist % self.length if self.closed else dist,
            "progress": progress, "steps": steps, "speed": speed,
            "steering_angle": steering, "track_width": width, "track_length": self.length,
            "waypoints": self.center[:n], "closest_waypoints": [prev_wp, next_wp],
            "is_left_of_center": offset > 0, "is_reversed": False,
            "closest_objects": [0, 0], "objects_location": [], "objects_left_of_center": [],
            "object_in_camera": False, "objects_speed": [], "objects_heading": [],
            "objects_distance_from_center": [], "objects_distance": [],
            "is_crashed": False, "is_offtrack": is_offtrack, "sim_time": sim_time,
        }
