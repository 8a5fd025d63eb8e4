# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Filters of the trainer role's Python environment: which lock for which Python, the set a
venv is installed with (recorded in a session's config/requirements.lock), and the venv's
identity."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: trainer_lock_for
short_description: The lock file of a Python version among the collection's locks
version_added: 0.1.0
description:
  - Internal filter of the rlops.fleet.trainer role.
  - Picks C(python<X.Y>.txt) for the interpreter's major.minor version among lock paths;
    returns an empty string when there is none. C(trainer_lock_versions) lists the versions
    the paths cover; C(trainer_venv_spec), C(trainer_venv_spec_info) and C(trainer_venv_id)
    make, read and name the set a venv is installed with.
positional: _input
options:
  _input:
    description: Paths of lock files named C(python<X.Y>.txt).
    type: list
    elements: str
    required: true
  python:
    description: The interpreter's version, C(X.Y) or longer.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Pick the lock of the host's Python
  ansible.builtin.set_fact:
    lock: >-
      {{ query('ansible.builtin.fileglob', 'runtime/locks/python*.txt')
      | rlops.fleet.trainer_lock_for('3.11') }}
"""

RETURN = r"""
_value:
  description: The path of the matching lock, or an empty string.
  type: str
"""

import hashlib
import os
import re

from ansible.errors import AnsibleFilterError

_LOCK_NAME = re.compile(r"^python(\d+)\.(\d+)\.txt$")
_HEADER = "# rlops.fleet trainer: the set this venv was installed with; a resume installs the same."
_PYTHON = re.compile(r"^# python: (\d+\.\d+)$", re.M)
_REQUIREMENT = re.compile(r"^# requirement: (.+)$", re.M)
_FILE = re.compile(r"^# requirements file: (.+)$", re.M)


def _minor(version):
    parts = str(version).split(".")
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
        raise AnsibleFilterError("not a Python version: %r" % (version,))
    return int(parts[0]), int(parts[1])


def lock_versions(paths):
    """The X.Y versions that lock paths (python<X.Y>.txt) cover, oldest first."""
    found = set()
    for path in paths or []:
        match = _LOCK_NAME.match(os.path.basename(str(path)))
        if match:
            found.add((int(match.group(1)), int(match.group(2))))
    return ["%d.%d" % version for version in sorted(found)]


def lock_for(paths, python):
    """The lock of `python`'s major.minor among `paths`; '' when there is none."""
    wanted = "python%d.%d.txt" % _minor(python)
    for path in sorted(str(p) for p in paths or []):
        if os.path.basename(path) == wanted:
            return path
    return ""


def _lines(label, values):
    if isinstance(values, str):
        raise AnsibleFilterError("trainer_venv_spec wants lists, got %r" % (values,))
    lines = []
    for value in sorted(set(str(v).strip() for v in values or [])):
        if not value or "\n" in value:
            raise AnsibleFilterError("invalid requirement %r" % (value,))
        lines.append("# %s: %s" % (label, value))
    return lines


def venv_spec(requirements, lock_text, python, files=None):
    """The text that says what a venv is installed with: the requirements (in comments, so
    that the whole text stays a pip constraints file), what identifies the job's requirements
    files (installed later from the job's source), and the lock they are installed under.

    Requirements are sorted and deduplicated: their order does not change the venv.
    """
    lines = [_HEADER, "# python: %d.%d" % _minor(python)]
    lines += _lines("requirement", requirements) + _lines("requirements file", files)
    lock = (lock_text or "").strip("\n")
    return "\n".join(lines + ["#", lock] if lock else lines) + "\n"


def venv_spec_info(text):
    """What a spec (a session's config/requirements.lock) says: python, requirements."""
    text = text or ""
    if not text.startswith(_HEADER):
        raise AnsibleFilterError(
            "not a venv set written by the trainer role (its first line is not %r)" % _HEADER)
    python = _PYTHON.search(text)
    if not python:
        raise AnsibleFilterError("the venv set names no python")
    return {"python": python.group(1), "requirements": _REQUIREMENT.findall(text),
            "files": _FILE.findall(text)}


def venv_id(spec, python_version, python_executable):
    """12 hex digits naming the venv of `spec` for an interpreter (its version and real
    path): hosts and sessions with the same ones share the venv; any change is a new venv."""
    # A spec read back through a command's output may have lost its last newline.
    key = "%s %s|%s\n" % (python_version, python_executable, (spec or "").rstrip("\n"))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


class FilterModule(object):
    def filters(self):
        return {
            "trainer_lock_for": lock_for,
            "trainer_lock_versions": lock_versions,
            "trainer_venv_spec": venv_spec,
            "trainer_venv_spec_info": venv_spec_info,
            "trainer_venv_id": venv_id,
        }
