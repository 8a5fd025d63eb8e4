# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Filters of the rlops.fleet.deepracer_stack role: its whole plan from its settings (DRfC's
environment, the checks, the params YAML, the compose projects) and the increment's next
model prefix. The decisions are plugins/module_utils/deepracer_config.py and the session
contract's."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: deepracer_plan
short_description: The deepracer_stack role's plan from its settings
version_added: 0.1.0
description:
  - Takes the role's deepracer_stack_* settings (one per modelled DR_* variable) and answers with
    DRfC's environment (C(env), every DR_* name and its string value), the problems the
    argument spec cannot see (C(problems)), the training params files (C(training), keys
    relative to the model prefix, YAML text as DRfC writes it, and the C(MULTI_CONFIG) JSON),
    the evaluation params (C(evaluation)) and the compose projects (C(compose), C(training)
    and C(evaluation), as dicts).
  - The same file has C(rlops.fleet.deepracer_trainer_containers) - of C(docker inspect)'s
    records (the parsed JSON list), the SageMaker dir, the run id and the model prefix, the
    containers of that training's trainer, as a list of C({id, name, config_files, running}),
    sorted by name - the container rl_coach starts outside the stack's compose project, which a
    stop must stop. The rule is the session contract's (C(trainer_containers)), which the
    runtime's stop uses too - every compose file of the container (label
    C(com.docker.compose.project.config_files)) under the SageMaker dir, C(RUN_ID) and
    C(TRAINING_JOB_NAME) in its environment equal to the run id and the model prefix.
  - And the session layer's two (DeepRacer as a backend) -
    C(rlops.fleet.deepracer_session_settings), of the settings, a session's C(mode) (new,
    resume, evaluate), its C(storage_uri) and, on resume and evaluate, its C(current) run.json
    C(deepracer) object (or status entry), the settings the session decides (C(overrides) - the
    bucket, the increment, the evaluation's trials) and its C(problems); and
    C(rlops.fleet.deepracer_session), of a plan, run.json's C(deepracer) object
    (C(compose_command), C(compose_dir), C(training_minutes)) and the session contract's
    C(problems) of it with the session's C(storage_uri).
positional: _input
options:
  _input:
    description: The settings, a dict of C(deepracer_stack_*) names and their values.
    type: dict
    required: true
  extra_env:
    description: deepracer_stack_extra_env, more DR_* names and values.
    type: dict
    default: {}
  workers:
    description: deepracer_stack_multi_config_workers, worker 2..N's settings.
    type: list
    elements: dict
    default: []
  gpu:
    description: Whether the host has a GPU the simapp uses.
    type: bool
    default: false
  release:
    description: The simapp release the default tag is made of.
    type: str
    default: 6.0.4
  gateway:
    description: The sagemaker-local network's gateway (the host as the containers see it).
    type: str
    default: ""
  digest:
    description: The simapp image's digest, C(sha256:...), or empty.
    type: str
    default: ""
  algorithm:
    description: model_metadata.json's training algorithm, when known.
    type: str
    default: ""
  now:
    description: The time of the evaluation's keys, ISO 8601; empty - now (UTC).
    type: str
    default: ""
  comms_dir:
    description: The host folder robomaker workers number themselves in.
    type: str
    default: ""
  publish_address:
    description: The host address robomaker's ports are published on; empty - all.
    type: str
    default: 127.0.0.1
"""

EXAMPLES = r"""
- name: Plan
  ansible.builtin.set_fact:
    plan: "{{ {'deepracer_stack_workers': 2} | rlops.fleet.deepracer_plan(gpu=true) }}"
"""

RETURN = r"""
_value:
  description:
    - C(env), C(problems), C(training), C(evaluation), C(compose), C(projects) (the compose
      project names), C(next_model_prefix).
  type: dict
"""

from datetime import datetime, timezone  # noqa: E402

from ansible_collections.rlops.fleet.plugins.module_utils import (  # noqa: E402
    deepracer_config as dc,
)
from ansible_collections.rlops.fleet.plugins.module_utils import (  # noqa: E402
    session_contract as contract,
)


def deepracer_plan(settings, extra_env=None, workers=None, gpu=False, release=dc.SIMAPP_RELEASE,
                   gateway="", digest="", algorithm="", now="", comms_dir="",
                   publish_address="127.0.0.1"):
    settings = dict(settings or {})
    extra_env = extra_env if extra_env is not None else {}
    workers = workers if workers is not None else []
    problems = dc.extra_env_problems(extra_env)
    extra = extra_env if not problems and isinstance(extra_env, dict) else {}
    env = dc.build_env(settings, extra, gpu=bool(gpu), release=str(release),
                       gateway=str(gateway or ""))
    problems += dc.settings_problems(env, algorithm=str(algorithm or ""), gpu=bool(gpu),
                                     digest=str(digest or ""))
    problems += dc.worker_problems(env, workers)
    plan = {"env": env, "problems": problems}
    if problems:
        return plan
    when = datetime.fromisoformat(now) if now else datetime.now(timezone.utc)
    training = dc.training_files(env, workers, when)
    prefix = env["DR_LOCAL_S3_MODEL_PREFIX"]
    eval_key = dc.params_key(prefix, env["DR_LOCAL_S3_EVAL_PARAMS_FILE"])
    plan.update({
        "training": {
            "files": dict((dc.params_key(prefix, name), dc.params_yaml(config))
                          for name, config in training["files"].items()),
            "multi_config": training["multi_config"],
        },
        "evaluation": {"files": {eval_key: dc.params_yaml(dc.evaluation_params(env, when))}},
        "compose": dict((job, dc.compose_project(
            env, job, gpu=bool(gpu), digest=str(digest or ""),
            multi_config_json=training["multi_config"], comms_dir=comms_dir,
            publish_address=publish_address)) for job in ("training", "evaluation")),
        "projects": dict((job, dc.project_name(env, job)) for job in ("training", "evaluation")),
        "next_model_prefix": dc.next_model_prefix(prefix),
    })
    return plan


def deepracer_trainer_containers(inspected, sagemaker_dir, run_id, model_prefix):
    """One training's trainer containers among `docker inspect` records (the contract's
    rule, shared with the runtime's stop)."""
    return contract.trainer_containers(list(inspected or []), str(sagemaker_dir), run_id,
                                       str(model_prefix))


def deepracer_session_settings(settings, mode, storage_uri, current=None, active=False,
                               episodes=None, video=None, credentials=None):
    """{overrides, problems}: the settings a session's mode decides (and the S3 endpoint and
    keys the role left empty, from the storage credentials), or why it cannot start."""
    try:
        storage = contract.parse_storage_uri(storage_uri).as_dict()
    except contract.ContractError as exc:
        return {"overrides": {}, "problems": [str(exc)]}
    storage["uri"] = storage_uri
    problems = dc.session_problems(dict(settings or {}), storage)
    if problems:
        return {"overrides": {}, "problems": problems}
    try:
        overrides = dc.session_overrides(str(mode), storage, current=dict(current or {}),
                                         active=bool(active), episodes=episodes, video=video)
    except ValueError as exc:
        return {"overrides": {}, "problems": [str(exc)]}
    overrides.update(dc.storage_access(dict(settings or {}), dict(credentials or {})))
    return {"overrides": overrides, "problems": []}


def deepracer_session(plan, compose_command, compose_dir, training_minutes=None,
                      storage_uri=None):
    """{deepracer, problems}: run.json's deepracer object of a plan (deepracer_plan's answer
    without problems) and what the session contract says of it with the session's storage."""
    made = dc.session_object(plan["env"], plan["projects"], list(compose_command),
                             str(compose_dir), training_minutes=training_minutes)
    return {"deepracer": made,
            "problems": contract.deepracer_session_problems(storage_uri, made)}


class FilterModule(object):
    def filters(self):
        return {"deepracer_plan": deepracer_plan,
                "deepracer_trainer_containers": deepracer_trainer_containers,
                "deepracer_session_settings": deepracer_session_settings,
                "deepracer_session": deepracer_session}
