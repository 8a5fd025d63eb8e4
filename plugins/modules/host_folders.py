#!/usr/bin/python
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Internal module of the runtime and trainer roles: missing folders and links in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_folders
short_description: Create the missing folders and links of a role in one call
version_added: 0.1.0
description:
  - Internal module of the rlops.fleet.runtime and rlops.fleet.trainer roles.
  - Creates every folder of O(folders) that does not exist, with its missing parents, each
    with the owner, group and mode given. A folder that exists keeps its owner and mode (a
    share, a mount).
  - Points every link of O(links) at its source. An existing link is replaced; a file or a
    folder at the link's path is refused, not replaced.
  - One call instead of an M(ansible.builtin.file) task per item, whose round trips were
    most of what a role paid on a fresh data root.
author:
  - rlops.fleet developers (!UNKNOWN)
attributes:
  check_mode:
    description: Reports what it would create without creating it.
    support: full
  diff_mode:
    description: Reports the created folders and links, not a diff.
    support: none
  idempotent:
    description: A second run with the same arguments creates nothing.
    support: full
options:
  folders:
    description: The folders to have.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The folder's absolute path.
        type: path
        required: true
      mode:
        description: Its mode as octal digits, e.g. C(0755); also that of the parents created.
        type: str
        default: "0755"
      owner:
        description: Its owner (and that of the parents created); empty - the running user.
        type: str
        default: ""
      group:
        description: Its group (and that of the parents created); empty - the owner's default.
        type: str
        default: ""
  links:
    description: The symbolic links to have.
    type: list
    elements: dict
    default: []
    suboptions:
      src:
        description: What the link points to.
        type: path
        required: true
      dest:
        description: The link's path; its folder must exist or be one of O(folders).
        type: path
        required: true
"""

EXAMPLES = r"""
- name: Create the runtime's folders and link its CLI
  rlops.fleet.host_folders:
    folders:
      - {path: /var/lib/rlops/bin, mode: "0755"}
      - {path: /var/lib/rlops/sessions, mode: "0755", owner: trainer, group: trainer}
    links:
      - {src: /var/lib/rlops/venvs/0123456789ab/bin/rlops-run, dest: /var/lib/rlops/bin/rlops-run}
"""

RETURN = r"""
created:
  description: The folders created (or that would be, in check mode), parents first.
  type: list
  elements: str
  returned: always
linked:
  description: The links created or pointed anew (or that would be, in check mode).
  type: list
  elements: str
  returned: always
"""

import grp
import os
import pwd

from ansible.module_utils.basic import AnsibleModule

# --------------------------------------------------------------------------- decisions
# Pure functions: tests/unit/plugins/modules/test_host_folders.py.


def missing_folders(path: str, exists) -> list[str]:
    """The folders of `path` (itself and its parents) that do not exist, outermost first."""
    out = []
    current = os.path.normpath(path)
    while not exists(current):
        out.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return out[::-1]


def link_action(dest: str, src: str, lexists, islink, readlink) -> str:
    """'keep' (already points at src), 'link' (absent or another link), or 'refuse'."""
    if not lexists(dest):
        return "link"
    if not islink(dest):
        return "refuse"
    return "keep" if readlink(dest) == src else "link"


def parse_mode(mode: str) -> int:
    if not mode or any(char not in "01234567" for char in mode) or len(mode) > 4:
        raise ValueError(f"mode {mode!r} is not octal digits such as 0755")
    return int(mode, 8)


# --------------------------------------------------------------------------- changing


def ids(owner: str, group: str) -> tuple[int, int]:
    """(uid, gid) for chown; -1 leaves one as it is."""
    uid = gid = -1
    if owner:
        try:
            entry = pwd.getpwnam(owner)
        except KeyError:
            raise ValueError(f"user {owner} does not exist") from None
        uid, gid = entry.pw_uid, entry.pw_gid
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ValueError(f"group {group} does not exist") from None
    return uid, gid


def create_folder(path: str, mode: int, uid: int, gid: int) -> None:
    os.mkdir(path)
    os.chmod(path, mode)  # not subject to the umask
    if uid != -1 or gid != -1:
        os.chown(path, uid, gid)


def point_link(src: str, dest: str) -> None:
    """Atomically: a new link beside dest, renamed over it."""
    tmp = f"{dest}.rlops-tmp-{os.getpid()}"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(src, tmp)
    os.replace(tmp, dest)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            folders=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True),
                mode=dict(type="str", default="0755"),
                owner=dict(type="str", default=""),
                group=dict(type="str", default=""),
            )),
            links=dict(type="list", elements="dict", default=[], options=dict(
                src=dict(type="path", required=True),
                dest=dict(type="path", required=True),
            )),
        ),
        supports_check_mode=True,
    )
    created: list[str] = []
    linked: list[str] = []
    try:
        for folder in module.params["folders"]:
            mode = parse_mode(folder["mode"])
            uid, gid = ids(folder["owner"], folder["group"])
            for path in missing_folders(folder["path"], os.path.isdir):
                if path in created:
                    continue
                if not module.check_mode:
                    create_folder(path, mode, uid, gid)
                created.append(path)
        for link in module.params["links"]:
            action = link_action(link["dest"], link["src"], os.path.lexists, os.path.islink,
                                 os.readlink)
            if action == "refuse":
                raise ValueError(f"{link['dest']} is a file or folder, not a link: move it away "
                                 f"to let {link['src']} be linked there")
            if action == "link":
                if not module.check_mode:
                    point_link(link["src"], link["dest"])
                linked.append(link["dest"])
    except (OSError, ValueError) as exc:
        module.fail_json(msg=str(exc), created=created, linked=linked)
    module.exit_json(changed=bool(created or linked), created=created, linked=linked)


if __name__ == "__main__":
    main()
