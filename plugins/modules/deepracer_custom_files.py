#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: deepracer_custom_files
short_description: Check DeepRacer custom files before they are uploaded or training starts
version_added: 0.1.0
description:
  - Runs on the controller (delegated to C(localhost)), before anything is uploaded or
    started. Reads the three files of a deepracer-for-cloud C(custom_files) folder -
    C(reward_function.py), C(model_metadata.json), C(hyperparameters.json) - checks them all
    and fails with every problem found in one message (each names the file, the line or the
    key, and why), or returns the files' sha256 and a summary. Changes nothing.
  - The reward function must compile, define C(reward_function(params)) at the top level with
    exactly one parameter, import only C(math), C(random), C(numpy), C(scipy), C(shapely)
    (and O(extra_imports)), and use none of C(open), C(eval), C(exec), C(compile), C(input),
    C(__import__) nor numpy's file access (C(load), C(save), C(fromfile), ...) - the
    DeepRacer console's rules.
  - It is then called, in a child process of O(python) with a time limit per call and for
    the whole run, about 500 times, with every key of C(params) the simulator gives (C(x),
    C(y), C(heading), C(progress), C(waypoints) = the centre line, C(closest_waypoints),
    C(distance_from_center), C(track_width), C(all_wheels_on_track), C(is_offtrack), the
    C(objects_*) keys of a race with objects, ...) computed from the tracks of O(tracks_dir)
    as the simulator computes them - start, middle and finish, on the centre line, in the
    lane, with wheels over the border and off the track, along, across and against the
    track, forward and reversed, with each action of the action space. Each call must return
    a finite number within [-1e5, 1e5]; a float, or an int (accepted and noted, as the
    simulator casts the result with float()); a bool or anything else is refused. An
    exception names the line of the reward function it came from.
  - A module the reward function imports (C(numpy), C(scipy), C(shapely)) that O(python)
    lacks is a warning, and the function is not called (RV(reward.missing) names them) -
    install it there or point O(python) to an interpreter that has it.
  - C(model_metadata.json) is checked against the simulator's schema - action space type
    and bounds (discrete - a list of C(steering_angle) -30..30 and C(speed) 0.1..4; continuous
    - C(low) below C(high) within those), exactly one camera and at most one lidar, the
    network, C(clipped_ppo) or C(sac) (C(sac) only with a continuous space), the version,
    C(lidar_config).
  - C(hyperparameters.json) - every key known, of its type and range, C(exploration_type)
    of clipped_ppo, and O(workers) against C(num_episodes_between_training) and C(sac).
    Keys of the other algorithm are noted as ignored, not refused (DRfC's defaults carry
    them).
author:
  - rlops.fleet developers (!UNKNOWN)
extends_documentation_fragment:
  - rlops.fleet.attributes.info_module
options:
  path:
    description:
      - The custom files folder (DRfC's C(custom_files)); the three files are read from it
        unless named one by one.
    type: path
  reward_function:
    description: The reward function file. Default C(<path>/reward_function.py).
    type: path
  model_metadata:
    description: The model metadata file. Default C(<path>/model_metadata.json).
    type: path
  hyperparameters:
    description: The hyperparameters file. Default C(<path>/hyperparameters.json).
    type: path
  tracks_dir:
    description:
      - A folder of track waypoint files (C(<world>.npy), shape (N, 6)), e.g. the
        rlops.fleet.deepracer_stack role's C(files/tracks).
    type: path
    required: true
  tracks:
    description:
      - The tracks of O(tracks_dir) to call the reward function on (names without
        C(.npy)); all of them when empty. A name without a file is a warning.
    type: list
    elements: str
    default: []
  workers:
    description: The number of rollout workers (C(DR_WORKERS)).
    type: int
    default: 1
  extra_imports:
    description:
      - Modules the reward function may import beyond the console's allowlist, e.g.
        C(time) for DRfC's C(debug-reward_function.py). The simulator itself imports any
        module its image has; the console refuses them.
    type: list
    elements: str
    default: []
  python:
    description: The interpreter that calls the reward function. Default the module's own.
    type: path
  call_timeout:
    description: Seconds one call (and loading the file) may take.
    type: float
    default: 5.0
  timeout:
    description: Seconds all the calls may take together.
    type: float
    default: 120.0
notes:
  - The child process is a time limit and a clean namespace, not a sandbox - the reward
    function is the user's own code, run with the user's rights in an empty temporary folder.
seealso:
  - module: rlops.fleet.session_preflight
"""

EXAMPLES = r"""
- name: Check the custom files before they are uploaded
  rlops.fleet.deepracer_custom_files:
    path: "{{ playbook_dir }}/custom_files"
    tracks_dir: "{{ role_path }}/files/tracks"
    workers: 3
  delegate_to: localhost
  register: deepracer_custom

- name: A reward function that needs numpy, checked with the interpreter of a venv that has it
  rlops.fleet.deepracer_custom_files:
    path: custom_files
    tracks_dir: /opt/deepracer/tracks
    tracks: [reInvent2019_track]
    python: /opt/venvs/deepracer/bin/python
  delegate_to: localhost
"""

RETURN = r"""
files:
  description: Each file's path and sha256 (hex).
  returned: success
  type: dict
  sample:
    reward_function: {path: /home/me/custom_files/reward_function.py, sha256: "3f1c..."}
    model_metadata: {path: /home/me/custom_files/model_metadata.json, sha256: "9a0b..."}
    hyperparameters: {path: /home/me/custom_files/hyperparameters.json, sha256: "77e2..."}
metadata:
  description: What model_metadata.json says, as the simulator reads it.
  returned: success
  type: dict
  sample:
    action_space_type: discrete
    training_algorithm: clipped_ppo
    actions: 5
    steering_angle: [-30, 30]
    speed: [0.6, 0.6]
    sensor: [FRONT_FACING_CAMERA]
    neural_network: DEEP_CONVOLUTIONAL_NETWORK_SHALLOW
    version: "5"
reward:
  description: The calls of the reward function.
  returned: success
  type: dict
  contains:
    calls:
      description: How many calls returned (none when the file failed to load).
      type: int
    tracks:
      description: The tracks of the calls.
      type: list
      elements: str
    returned:
      description: The lowest and highest reward returned; null without a good call.
      type: list
      elements: float
    kinds:
      description:
        - The count of each kind of result - C(float), C(int), C(real) (another real
          number), C(bool), C(other), C(error), C(timeout).
      type: dict
    imports:
      description: The allowed modules the reward function imports.
      type: list
      elements: str
    missing:
      description: The modules of those that O(python) lacks; the function was not called.
      type: list
      elements: str
  sample:
    calls: 529
    tracks: [2022_reinvent_champ_ccw, reInvent2019_track]
    returned: [0.001, 1.0]
    kinds: {float: 529}
    imports: [math]
    missing: []
notes:
  description: What is accepted but ignored or unusual (keys the simulator does not read, an
    int reward).
  returned: always
  type: list
  elements: str
  sample: ["hyperparameters.json key sac_alpha is ignored with clipped_ppo (sac only)"]
problems:
  description: Every problem, each with C(file), C(line) or C(key), and C(msg).
  returned: always
  type: list
  elements: dict
  sample:
    - {file: reward_function.py, line: 7, msg: "raised KeyError: 'speeed' for params of ..."}
"""

import hashlib
import os
import sys

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rlops.fleet.plugins.module_utils import deepracer_validate as dv

FILES = (("reward_function", dv.REWARD_FILE), ("model_metadata", dv.METADATA_FILE),
         ("hyperparameters", dv.HYPERPARAMETERS_FILE))


def file_paths(params):
    """({option: path}, problem or None): each file's path from its option or the folder."""
    paths = {}
    for option, name in FILES:
        given = params.get(option)
        if not given and params.get("path"):
            given = os.path.join(params["path"], name)
        if not given:
            return None, "set path (the custom files folder) or %s" % option
        paths[option] = given
    return paths, None


def read_files(paths):
    """({option: text}, {option: sha256}, problems)."""
    texts, digests, found = {}, {}, []
    for option, name in FILES:
        try:
            with open(paths[option], "rb") as handle:
                data = handle.read()
        except OSError as exc:
            found.append(dv.problem(name, "cannot read %s: %s" % (paths[option], exc.strerror)))
            continue
        digests[option] = hashlib.sha256(data).hexdigest()
        try:
            texts[option] = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            found.append(dv.problem(name, "not UTF-8 text (byte %d)" % exc.start))
    return texts, digests, found


def check_custom_files(params, runner=dv.run_reward_calls):
    """(result, problems, warnings): every check of the three files; nothing is changed."""
    result = {"changed": False, "notes": [], "problems": []}
    warnings = []
    paths, error = file_paths(params)
    if error:
        return result, [dv.problem("custom_files", error)], warnings
    texts, digests, found = read_files(paths)
    tracks, track_problems = dv.read_tracks(params["tracks_dir"], params.get("tracks") or None)
    if not tracks:
        found += [dv.problem("tracks_dir", text) for text in track_problems]
    warnings += [text for text in track_problems if tracks]
    metadata = None
    if "model_metadata" in texts:
        metadata, problems = dv.load_json(texts["model_metadata"], dv.METADATA_FILE)
        found += problems
        if metadata is not None:
            problems = dv.metadata_problems(metadata)
            found += problems
            result["notes"] += dv.metadata_notes(metadata)
            if not problems:
                result["metadata"] = dv.metadata_summary(metadata)
    if "hyperparameters" in texts:
        hyper, problems = dv.load_json(texts["hyperparameters"], dv.HYPERPARAMETERS_FILE)
        found += problems
        if hyper is not None:
            found += dv.hyperparameter_problems(hyper, metadata, params["workers"])
            result["notes"] += dv.hyperparameter_notes(hyper, metadata, params["workers"])
    if "reward_function" in texts:
        reward_name = os.path.basename(paths["reward_function"])
        problems, findings = dv.reward_problems(
            texts["reward_function"], reward_name, tracks, dv.metadata_actions(metadata),
            extra_imports=params.get("extra_imports") or (),
            python=params.get("python") or sys.executable,
            call_timeout=params["call_timeout"], timeout=params["timeout"], runner=runner)
        found += problems
        findings["tracks"] = [t.name for t in tracks]
        result["reward"] = findings
        if findings["missing"]:
            warnings.append("%s was not called: %s lacks %s, which it imports (install it "
                            "there or set python)" % (reward_name, params.get("python")
                                                      or sys.executable,
                                                      ", ".join(findings["missing"])))
        accepted = {k: n for k, n in findings["kinds"].items() if k in ("int", "real")}
        if accepted:
            result["notes"].append(
                "%s returned %s in %s calls: accepted, the simulator casts it with float() (the "
                "DeepRacer console's validator wants a float)" % (
                    reward_name, " and ".join(sorted(accepted)), sum(accepted.values())))
    result["files"] = {option: {"path": paths[option], "sha256": digests[option]}
                       for option, name in FILES if option in digests}
    # A file given under another name is named as given.
    renamed = {name: os.path.basename(paths[option]) for option, name in FILES}
    found = [dict(p, file=renamed.get(p["file"], p["file"])) for p in found]
    result["problems"] = found
    return result, found, warnings


def failure_message(found):
    return "%d problem%s in the DeepRacer custom files: %s" % (
        len(found), "" if len(found) == 1 else "s", "; ".join(dv.problem_text(p) for p in found))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path"),
            reward_function=dict(type="path"),
            model_metadata=dict(type="path"),
            hyperparameters=dict(type="path"),
            tracks_dir=dict(type="path", required=True),
            tracks=dict(type="list", elements="str", default=[]),
            workers=dict(type="int", default=1),
            extra_imports=dict(type="list", elements="str", default=[]),
            python=dict(type="path"),
            call_timeout=dict(type="float", default=5.0),
            timeout=dict(type="float", default=120.0),
        ),
        supports_check_mode=True,
    )
    for name in ("call_timeout", "timeout", "workers"):
        if not module.params[name] > 0:
            module.fail_json(msg="%s must be more than 0, got %s" % (name, module.params[name]))
    result, found, warnings = check_custom_files(module.params)
    for text in warnings:
        module.warn(text)
    if found:
        module.fail_json(msg=failure_message(found), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
