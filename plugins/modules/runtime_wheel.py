#!/usr/bin/python
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Internal module of the trainer role: the runtime as a wheel named by its content."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: runtime_wheel
short_description: Build the rlops_runtime wheel of a source folder, named by its content
version_added: 0.1.0
description:
  - Internal module of the rlops.fleet.runtime role; runs on the controller. Its action
    plugin builds the wheel (or finds it in the cache) in Ansible's worker itself, whatever the
    task's host, so a task pays no module run; this file holds the code and the documentation.
  - Builds C(rlops_runtime-<version>+<content hash>-py3-none-any.whl) from the runtime's source
    (C(pyproject.toml) and the C(rlops_runtime) package) with the standard library only (no
    build backend, no network), into a cache folder. A wheel of the same content is already
    there and is not built again; the same content always makes the same bytes, so a copy to a
    host is idempotent.
  - The content hash covers C(pyproject.toml) and every file of the package except caches and
    hidden files. A venv holds the runtime of this content when it has
    C(rlops_runtime-<version>.dist-info).
author:
  - rlops.fleet developers (!UNKNOWN)
attributes:
  check_mode:
    description:
      - Builds in check mode too (the controller's cache, not a managed host); the role's
        task sets C(check_mode=false).
    support: none
  diff_mode:
    description: Nothing to show a difference of.
    support: none
  idempotent:
    description: A wheel of the same content is found, not built again.
    support: full
options:
  src:
    description: The runtime's source folder (the collection's C(runtime/)).
    type: path
    required: true
  dest:
    description: The cache folder of wheels; created when missing.
    type: path
    default: ~/.cache/rlops.fleet/wheels
"""

EXAMPLES = r"""
- name: Build the runtime's wheel on the controller
  rlops.fleet.runtime_wheel:
    src: "{{ playbook_dir }}/../runtime"
  delegate_to: localhost
  run_once: true
  register: wheel
"""

RETURN = r"""
path:
  description: The wheel on the controller.
  type: str
  returned: success
  sample: /root/.cache/rlops.fleet/wheels/rlops_runtime-0.1.0+0123456789ab-py3-none-any.whl
filename:
  description: The wheel's file name.
  type: str
  returned: success
  sample: rlops_runtime-0.1.0+0123456789ab-py3-none-any.whl
version:
  description: The version in the wheel, the project's own with the content hash as its local label.
  type: str
  returned: success
  sample: 0.1.0+0123456789ab
dist_info:
  description: The name of the C(.dist-info) folder a venv has once the wheel is installed.
  type: str
  returned: success
  sample: rlops_runtime-0.1.0+0123456789ab.dist-info
"""

import base64
import hashlib
import os
import re
import tempfile
import zipfile

from ansible.module_utils.basic import AnsibleModule

try:  # Python 3.11+
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10 controllers
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None

PACKAGE = "rlops_runtime"
# Caches, build output and hidden files stay on the controller.
_SKIP = re.compile(r"(^|/)(__pycache__|[.][^/]+)(/|$)|[.]py[co]$")
# Every entry of a wheel gets this time: the same content makes the same bytes.
_EPOCH = (1980, 1, 1, 0, 0, 0)


class WheelError(Exception):
    """The source folder cannot be made into a wheel; the message says why."""


# --------------------------------------------------------------------------- decisions
# Pure functions: tests/unit/plugins/modules/test_runtime_wheel.py.


def package_files(names: list[str]) -> list[str]:
    """The package's files (paths relative to the source folder) that go into the wheel."""
    return sorted(name for name in names
                  if name.startswith(PACKAGE + "/") and not _SKIP.search(name))


def content_hash(files: dict[str, bytes]) -> str:
    """12 hex digits of the sha256 over every (path, content): the wheel's local version."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()[:12]


def project_info(pyproject: dict) -> dict:
    """What METADATA and entry_points.txt need, from pyproject.toml's [project] table."""
    project = pyproject.get("project") or {}
    name, version = project.get("name"), project.get("version")
    if name is None or re.sub(r"[-_.]+", "_", name).lower() != PACKAGE or not version:
        raise WheelError('pyproject.toml must have [project] name = "rlops-runtime" and a version')
    return {
        "name": name,
        "version": str(version),
        "summary": project.get("description", ""),
        "requires_python": project.get("requires-python", ""),
        "license": project.get("license", "") if isinstance(project.get("license"), str) else "",
        "dependencies": list(project.get("dependencies") or []),
        "extras": {extra: list(reqs)
                   for extra, reqs in (project.get("optional-dependencies") or {}).items()},
        "scripts": dict(project.get("scripts") or {}),
    }


def metadata(info: dict, version: str) -> str:
    lines = ["Metadata-Version: 2.1", "Name: " + info["name"], "Version: " + version]
    lines += ["Summary: " + info["summary"]] if info["summary"] else []
    lines += ["License: " + info["license"]] if info["license"] else []
    lines += ["Requires-Python: " + info["requires_python"]] if info["requires_python"] else []
    lines += ["Requires-Dist: " + req for req in info["dependencies"]]
    for extra, reqs in sorted(info["extras"].items()):
        lines.append("Provides-Extra: " + extra)
        lines += ['Requires-Dist: %s; extra == "%s"' % (req, extra) for req in reqs]
    return "\n".join(lines) + "\n"


def entry_points(info: dict) -> str:
    scripts = ["%s = %s" % item for item in sorted(info["scripts"].items())]
    return "[console_scripts]\n" + "\n".join(scripts) + "\n" if scripts else ""


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (name, digest, len(data))


def wheel_entries(files: dict[str, bytes], info: dict, version: str) -> list[tuple[str, bytes]]:
    """Every entry of the wheel in order, RECORD last (PEP 427)."""
    dist_info = "%s-%s.dist-info" % (PACKAGE, version)
    entries = [(name, files[name]) for name in sorted(files) if name.startswith(PACKAGE + "/")]
    entries += [
        (dist_info + "/METADATA", metadata(info, version).encode()),
        (dist_info + "/WHEEL", b"Wheel-Version: 1.0\nGenerator: rlops.fleet.runtime_wheel\n"
                               b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
    ]
    points = entry_points(info)
    if points:
        entries.append((dist_info + "/entry_points.txt", points.encode()))
    record = "".join(record_line(name, data) + "\n" for name, data in entries)
    record += dist_info + "/RECORD,,\n"
    return entries + [(dist_info + "/RECORD", record.encode())]


def wheel_name(version: str) -> str:
    return "%s-%s-py3-none-any.whl" % (PACKAGE, version)


# --------------------------------------------------------------------------- I/O


def read_source(src: str) -> tuple[dict, dict[str, bytes]]:
    """pyproject.toml (parsed) and the package's files of the source folder."""
    pyproject_path = os.path.join(src, "pyproject.toml")
    if not os.path.isfile(pyproject_path):
        raise WheelError("%s is not the rlops_runtime package source (no pyproject.toml)" % src)
    if tomllib is None:
        raise WheelError("reading pyproject.toml needs Python 3.11 or the tomli package "
                         "on the controller")
    with open(pyproject_path, "rb") as handle:
        raw = handle.read()
    try:
        pyproject = tomllib.loads(raw.decode())
    except ValueError as exc:
        raise WheelError("%s: %s" % (pyproject_path, exc)) from None
    names = []
    for root, _dirs, filenames in os.walk(os.path.join(src, PACKAGE)):
        names += [os.path.relpath(os.path.join(root, f), src).replace(os.sep, "/")
                  for f in filenames]
    files = {}
    for name in package_files(names):
        with open(os.path.join(src, name), "rb") as handle:
            files[name] = handle.read()
    if PACKAGE + "/__init__.py" not in files:
        raise WheelError("%s has no %s/__init__.py" % (src, PACKAGE))
    files["pyproject.toml"] = raw  # hashed, not packed
    return pyproject, files


def write_wheel(path: str, entries: list[tuple[str, bytes]]) -> None:
    """Write atomically: a concurrent run finds the whole wheel or none."""
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".rlops-wheel.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle, \
                zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as wheel:
            for name, data in entries:
                entry = zipfile.ZipInfo(name, date_time=_EPOCH)
                entry.external_attr = 0o644 << 16
                entry.compress_type = zipfile.ZIP_DEFLATED
                wheel.writestr(entry, data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def build(src: str, dest: str) -> dict:
    pyproject, files = read_source(src)
    info = project_info(pyproject)
    version = "%s+%s" % (info["version"], content_hash(files))
    path = os.path.join(dest, wheel_name(version))
    changed = not os.path.isfile(path)
    if changed:
        os.makedirs(dest, exist_ok=True)
        write_wheel(path, wheel_entries(files, info, version))
    return {"changed": changed, "path": path, "filename": wheel_name(version), "version": version,
            "dist_info": "%s-%s.dist-info" % (PACKAGE, version)}


def main() -> None:
    module = AnsibleModule(
        argument_spec={"src": {"type": "path", "required": True},
                       "dest": {"type": "path", "default": "~/.cache/rlops.fleet/wheels"}},
        supports_check_mode=False,
    )
    try:
        result = build(os.path.realpath(module.params["src"]), module.params["dest"])
    except (WheelError, OSError) as exc:
        module.fail_json(msg="runtime wheel from %s: %s" % (module.params["src"], exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
