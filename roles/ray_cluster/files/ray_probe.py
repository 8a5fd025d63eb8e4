"""What rlops.fleet.ray_cluster reads on a host, run by the venv's own Python (so that the
versions are the venv's): Ray's and Python's versions, the units' user and group, memory,
/dev/shm and NVIDIA devices. One JSON line on stdout; argv: USER GROUP (empty: the user who
ran sudo, else the one running this; the user's primary group)."""
import glob
import grp
import json
import os
import platform
import pwd
import sys
from importlib import metadata


def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def account(user, group):
    user = user or os.environ.get("SUDO_USER") or pwd.getpwuid(os.getuid()).pw_name
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return {"user": user, "user_exists": False, "group": group, "group_exists": False}
    try:
        group = group or grp.getgrgid(entry.pw_gid).gr_name
        grp.getgrnam(group)
        group_exists = True
    except KeyError:
        group_exists = False
    return {"user": user, "user_exists": True, "group": group or str(entry.pw_gid),
            "group_exists": group_exists}


def size(path):
    try:
        stat = os.statvfs(path)
    except OSError:
        return 0
    return stat.f_frsize * stat.f_blocks


print(json.dumps({
    "ray": version("ray"),
    "runtime": version("rlops-runtime"),
    "python": platform.python_version(),
    "memory": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
    "shm": size("/dev/shm"),
    "gpu_devices": len(glob.glob("/dev/nvidia[0-9]*")),
    **account(sys.argv[1] if len(sys.argv) > 1 else "", sys.argv[2] if len(sys.argv) > 2 else ""),
}))
