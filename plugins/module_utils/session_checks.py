# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""Pure checks of a training request, run on the controller before anything changes.

Each check returns a message saying what is wrong and why, or None. They mirror the
runtime's own checks (rlops_runtime.session, rlops_runtime.agents.hyperparams) so that bad
input is refused on the controller, before a host is touched.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import json
import re
from datetime import datetime, timezone

SESSION_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# gymnasium ids: optional namespace, name, mandatory version ("ALE/Pong-v5", "CartPole-v1").
ENV_ID_RE = re.compile(r"^(?:[A-Za-z0-9_.-]+/)?[A-Za-z0-9_.:-]+-v\d+$")
S3_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
STORAGE_SCHEMES = ("file", "s3")
# Reserved for Azure Blob storage, which the runtime does not have yet: refused up front
# with its own message rather than failing on the host (on AWS after the instance exists).
RESERVED_SCHEMES = {"az": "Azure Blob storage"}
SUPPORTED_STORAGE = "use file:///path or s3://bucket/prefix"
ALGOS = ("ppo", "dqn")

# Constructor arguments of Stable-Baselines3 2.x that a user may set, plus the keys that
# rl-baselines3-zoo hyperparameter files add. tests/unit checks these against the
# installed SB3 so they cannot drift. env, seed, device and logging come from the session.
_SESSION_OWNED = ("env", "seed", "device", "tensorboard_log", "verbose", "_init_setup_model")
ZOO_KEYS = ("n_envs", "n_timesteps", "normalize", "policy")
ALGO_KEYS = {
    "ppo": (
        "batch_size", "clip_range", "clip_range_vf", "ent_coef", "gae_lambda", "gamma",
        "learning_rate", "max_grad_norm", "n_epochs", "n_steps", "normalize_advantage",
        "policy_kwargs", "rollout_buffer_class", "rollout_buffer_kwargs", "sde_sample_freq",
        "stats_window_size", "target_kl", "use_sde", "vf_coef",
    ),
    "dqn": (
        "batch_size", "buffer_size", "exploration_final_eps", "exploration_fraction",
        "exploration_initial_eps", "gamma", "gradient_steps", "learning_rate",
        "learning_starts", "max_grad_norm", "n_steps", "optimize_memory_usage",
        "policy_kwargs", "replay_buffer_class", "replay_buffer_kwargs",
        "stats_window_size", "target_update_interval", "tau", "train_freq",
    ),
}


def session_id_error(value):
    if not isinstance(value, str) or not SESSION_ID_RE.match(value):
        return (
            "session id %r is invalid: use 1-63 lowercase letters, digits and '-', "
            "starting with a letter or digit" % (value,)
        )
    return None


def make_session_id(name, now=None):
    """`<name>-<UTC timestamp>`, the name sanitised so the whole id is valid."""
    now = now or datetime.now(timezone.utc)
    stamp = now.astimezone(timezone.utc).strftime("%Y%m%dt%H%M%Sz")
    base = re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")
    if not base:
        raise ValueError("session name %r has no letters or digits to build an id from" % (name,))
    base = base[: 63 - len(stamp) - 1].rstrip("-")
    return "%s-%s" % (base, stamp)


def parse_hyperparameters(raw):
    """Return (dict, error). Accepts a mapping, a JSON object string, or nothing."""
    if raw is None or raw == "":
        return {}, None
    if isinstance(raw, dict):
        return dict(raw), None
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError as exc:
            return None, "hyperparameters are not valid JSON: %s" % exc
        if not isinstance(value, dict):
            return None, "hyperparameters must be a JSON object, got %s" % type(value).__name__
        return value, None
    return None, "hyperparameters must be a mapping or a JSON object string"


def hyperparameter_errors(algo, hyperparameters):
    """Unknown or session-owned keys for the builtin agent, one message or None."""
    known = set(ALGO_KEYS[algo]) | set(ZOO_KEYS)
    problems = []
    for key in sorted(hyperparameters):
        if key in _SESSION_OWNED:
            problems.append("%r is set by the session, not by hyperparameters" % key)
        elif key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = " (did you mean %r?)" % close[0] if close else ""
            problems.append("%r is not a %s hyperparameter%s" % (key, algo.upper(), hint))
    if not problems:
        return None
    return "hyperparameters rejected: " + "; ".join(problems)


def env_id_error(env_id, registry=None):
    """Check the form of an env id, and membership when a registry is known."""
    if not isinstance(env_id, str) or not ENV_ID_RE.match(env_id):
        return (
            "env id %r is not a gymnasium id: expected Name-vN, e.g. CartPole-v1" % (env_id,)
        )
    if registry is not None and env_id not in registry:
        close = difflib.get_close_matches(env_id, sorted(registry), n=3)
        hint = ": did you mean %s?" % ", ".join(close) if close else ""
        return "env id %r is not registered in gymnasium%s" % (env_id, hint)
    return None


def parse_storage_uri(uri):
    """Return ((scheme, location, prefix), error) for file:// and s3:// URIs."""
    if not isinstance(uri, str) or "://" not in uri:
        return None, "storage URI %r is not a URI: %s" % (uri, SUPPORTED_STORAGE)
    scheme, rest = uri.split("://", 1)
    if scheme in RESERVED_SCHEMES:
        return None, "storage URI %r: %s is not available yet: %s" % (
            uri, RESERVED_SCHEMES[scheme], SUPPORTED_STORAGE)
    if scheme not in STORAGE_SCHEMES:
        return None, "unsupported storage URI %r: %s" % (uri, SUPPORTED_STORAGE)
    if scheme == "file":
        if not rest.startswith("/"):
            return None, "storage URI %r: a file:// path must be absolute (file:///abs/path)" % uri
        return (scheme, rest.rstrip("/") or "/", ""), None
    location, _sep, prefix = rest.partition("/")
    if not S3_BUCKET_RE.match(location):
        return None, "storage URI %r: %r is not a valid S3 bucket name" % (uri, location)
    return (scheme, location, prefix.strip("/")), None
