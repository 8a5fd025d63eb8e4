"""The session contract, in one place: session ids, storage URIs, the storage layout, states,
run.json's keys, defaults and what a resume may change, and which hyperparameters a session
takes (docs/contract.md).

The runtime and the controller run this same file. It imports only the Python standard
library (3.8 and newer: module_utils also run on managed hosts) and nothing of its package,
so that the collection's plugins/module_utils/session_contract.py is a link to it (the
collection's build and install keep the link): one file, no copy to keep in step.
tests/unit/plugins/module_utils/test_session_contract.py checks the link, and that the
controller and the runtime give the same verdicts.

Everything here is a pure function or a constant. A rule broken raises ContractError (a
ValueError) whose message says what is wrong and why; the `*_error` forms return that
message, or None, for callers that collect problems.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any


class ContractError(ValueError):
    """Input that breaks the session contract; the message says what and why."""


def _error(check: Any, *args: Any) -> str | None:
    try:
        check(*args)
    except ContractError as exc:
        return str(exc)
    return None


# --- Session ids ---------------------------------------------------------------------------
SESSION_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SESSION_ID_MAX = 63
_STAMP_FORMAT = "%Y%m%dt%H%M%Sz"
_STAMP_LEN = len("20261122t051500z")


def validate_session_id(value: Any) -> str:
    """`value` when it is a session id, else ContractError saying why."""
    # fullmatch: `$` alone would accept a trailing newline.
    if not isinstance(value, str) or not SESSION_ID_RE.fullmatch(value):
        raise ContractError(
            f"session id {value!r} is invalid: use 1-63 lowercase letters, digits and '-', "
            "starting with a letter or digit")
    return value


def session_id_error(value: Any) -> str | None:
    return _error(validate_session_id, value)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower())


def make_session_id(name: str, now: datetime | None = None) -> str:
    """`<name>-<UTC timestamp>`, e.g. `cartpole-20261122t051500z`; the name is lowercased, runs
    of other characters become '-', and it is cut so that the id has at most 63 characters.
    A naive `now` is taken to be UTC already; none is the current time."""
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    base = _slug(name).strip("-")[: SESSION_ID_MAX - _STAMP_LEN - 1].rstrip("-")
    if not base:
        raise ContractError(
            f"session name {name!r} is invalid: it needs at least one letter or digit")
    return validate_session_id(f"{base}-{now.astimezone(timezone.utc).strftime(_STAMP_FORMAT)}")


def host_session_id(base: str, host: str, hosts: int) -> str:
    """The session id of one host of a train_new run over `hosts` hosts: the id itself for one
    host, else `<id>-<host name>` (made valid, cut to 63 characters) so that each host has a
    session of its own."""
    validate_session_id(base)
    if int(hosts) <= 1:
        return base
    return validate_session_id(f"{base}-{_slug(host)}"[:SESSION_ID_MAX].rstrip("-"))


# --- Storage URIs --------------------------------------------------------------------------
SUPPORTED_STORAGE = "use file:///path, s3://bucket/prefix or az://container/prefix"
STORAGE_SCHEMES = ("file", "s3", "az")
# Schemes refused up front in these words everywhere (controller, trainer role, runtime),
# never half-way on a host: none today.
RESERVED_SCHEMES: dict = {}
S3_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# An Azure Blob container: 3-63 lowercase letters, digits and single hyphens, no hyphen at
# either end.
AZ_CONTAINER_RE = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class StorageURI:
    """A parsed storage URI. `location` is the bucket for s3://, the absolute folder for
    file://; `prefix` is the key prefix inside the bucket ('' for none, and for file://)."""

    scheme: str
    location: str
    prefix: str

    def as_dict(self) -> dict:
        return {"scheme": self.scheme, "location": self.location, "prefix": self.prefix}


def parse_storage_uri(uri: Any) -> StorageURI:
    """The one parser of storage URIs: `file:///abs/path`, `s3://bucket/prefix` or
    `az://container/prefix` (Azure Blob; `location` is the container)."""
    if not isinstance(uri, str) or "://" not in uri:
        raise ContractError(f"storage URI {uri!r} is not a URI: {SUPPORTED_STORAGE}")
    scheme, rest = uri.split("://", 1)
    if scheme in RESERVED_SCHEMES:
        raise ContractError(
            f"storage URI {uri!r}: {RESERVED_SCHEMES[scheme]} is not available yet: "
            f"{SUPPORTED_STORAGE}")
    if scheme not in STORAGE_SCHEMES:
        raise ContractError(f"unsupported storage URI {uri!r}: {SUPPORTED_STORAGE}")
    if "?" in rest or "#" in rest:
        raise ContractError(
            f"storage URI {uri!r}: '?' and '#' have no meaning in a storage URI: "
            f"{SUPPORTED_STORAGE}")
    if scheme == "file":
        if not rest.startswith("/"):
            raise ContractError(
                f"storage URI {uri!r}: a file:// path must be absolute (file:///abs/path)")
        return StorageURI(scheme, rest.rstrip("/") or "/", "")
    bucket, _sep, prefix = rest.partition("/")
    if scheme == "az":
        if not AZ_CONTAINER_RE.match(bucket):
            raise ContractError(
                f"storage URI {uri!r}: {bucket!r} is not a valid Azure Blob container name "
                "(3-63 lowercase letters, digits and single hyphens)")
        return StorageURI(scheme, bucket, prefix.strip("/"))
    if not bucket:
        raise ContractError(f"storage URI {uri!r} has no bucket: {SUPPORTED_STORAGE}")
    if not S3_BUCKET_RE.match(bucket):
        raise ContractError(f"storage URI {uri!r}: {bucket!r} is not a valid S3 bucket name")
    return StorageURI(scheme, bucket, prefix.strip("/"))


def storage_uri_error(uri: Any) -> str | None:
    return _error(parse_storage_uri, uri)


# az:// credentials, as storage_credentials (the runtime's storage.env) gives them: their form
# only, checked on the controller before anything changes and by the runtime's Blob client.
AZ_CONNECTION_STRING = "AZURE_STORAGE_CONNECTION_STRING"
AZ_ACCOUNT = "AZURE_STORAGE_ACCOUNT"
AZ_KEY = "AZURE_STORAGE_KEY"
AZ_SAS = "AZURE_STORAGE_SAS_TOKEN"
AZ_ACCOUNT_RE = re.compile(r"^[a-z0-9]{3,24}$")


def az_credentials_problem(environ: Any) -> str | None:
    """What is wrong with the form of az:// credentials (never a secret's value), or None:
    a connection string; or an account with a key or a SAS, or alone (the VM's identity)."""
    environ = environ if isinstance(environ, dict) else {}
    if str(environ.get(AZ_CONNECTION_STRING) or "").strip():
        return None
    account = str(environ.get(AZ_ACCOUNT) or "").strip()
    if not account:
        return (f"no Azure Storage credentials: set {AZ_CONNECTION_STRING}, or {AZ_ACCOUNT} "
                f"with {AZ_KEY} or {AZ_SAS}, or {AZ_ACCOUNT} alone on a VM whose managed "
                "identity has the role Storage Blob Data Contributor")
    if not AZ_ACCOUNT_RE.match(account):
        return (f"{AZ_ACCOUNT} {account!r} is not a storage account name "
                "(3-24 lowercase letters and digits)")
    if str(environ.get(AZ_KEY) or "").strip() and str(environ.get(AZ_SAS) or "").strip():
        return f"both {AZ_KEY} and {AZ_SAS} are set: give one"
    return None


# --- Layout: a session's folder on a host, and its keys in storage ---------------------------
# On a host: <data_root>/sessions/<session>/<the names below>. In storage: <prefix>/<session>/
# with the same names (never config/storage.env).
SESSIONS_DIR = "sessions"
CONFIG_DIR = "config"
RUN_JSON = "run.json"
HYPERPARAMETERS_JSON = "hyperparameters.json"
REQUIREMENTS_LOCK = "requirements.lock"
CONFIG_FILES = (RUN_JSON, HYPERPARAMETERS_JSON, REQUIREMENTS_LOCK)
STORAGE_ENV = "storage.env"  # credentials: on the host only, never published
CHECKPOINTS_DIR = "checkpoints"
LATEST = "LATEST"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
STATUS_JSON = "status.json"
SESSION_SUBDIRS = (CONFIG_DIR, CHECKPOINTS_DIR, "tensorboard", "logs", "eval", "report")
_STEP_RE = re.compile(r"[0-9]{12,}")


def step_dirname(step: int) -> str:
    """A checkpoint folder's name: the step zero-padded to 12 digits, so names sort as numbers."""
    if step < 0:
        raise ContractError(f"checkpoint step {step} is invalid: steps are >= 0")
    return f"{step:012d}"


def parse_step(name: str) -> int | None:
    """The step of a checkpoint folder name; None for anything else (.tmp-, .damaged-)."""
    return int(name) if _STEP_RE.fullmatch(name) else None


def checkpoints_key(session_id: str) -> str:
    return f"{session_id}/{CHECKPOINTS_DIR}"


def latest_key(session_id: str) -> str:
    return f"{checkpoints_key(session_id)}/{LATEST}"


def step_key(session_id: str, step: int) -> str:
    return f"{checkpoints_key(session_id)}/{step_dirname(step)}"


def manifest_key(session_id: str, step: int) -> str:
    return f"{step_key(session_id, step)}/{MANIFEST}"


def config_key(session_id: str, name: str) -> str:
    if name not in CONFIG_FILES:
        raise ContractError(f"{name!r} is not a session config file: {', '.join(CONFIG_FILES)}")
    return f"{session_id}/{CONFIG_DIR}/{name}"


def parse_latest(data: bytes | None) -> int | None:
    """The step a LATEST file names; None when it is absent or unreadable."""
    try:
        step = int(data.decode().strip()) if data is not None else None
    except (UnicodeDecodeError, ValueError):
        return None
    return step if step is not None and step >= 0 else None


def safe_relpath(path: Any) -> bool:
    """Whether `path` is a relative '/'-separated path that stays inside its folder (a
    manifest or a listing from storage names files to write here)."""
    if not isinstance(path, str) or "\\" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def manifest_problems(manifest: Any) -> list:
    """Structural problems of a manifest.json, before any file is looked at."""
    if not isinstance(manifest, dict):
        return ["manifest is not a JSON object"]
    problems = []
    if manifest.get("format") != MANIFEST_FORMAT:
        problems.append(f"manifest format {manifest.get('format')!r} is not {MANIFEST_FORMAT}")
    step = manifest.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        problems.append(f"manifest step {step!r} is not a non-negative integer")
    files = manifest.get("files")
    if not isinstance(files, list):
        return problems + ["manifest has no 'files' list"]
    for entry in files:
        if (not isinstance(entry, dict) or not safe_relpath(entry.get("path"))
                or not isinstance(entry.get("size"), int)
                or not isinstance(entry.get("sha256"), str)):
            problems.append(f"manifest entry {entry!r} is malformed")
    return problems


def fetch_candidates(latest: int | None, steps: list) -> list:
    """The checkpoints in storage a reader tries, in order: LATEST, then the earlier steps
    that have a manifest, newest first. Steps above LATEST are publishes cut short before
    LATEST moved: never offered. Without LATEST, every step with a manifest, newest first."""
    earlier = sorted({s for s in steps if latest is None or s < latest}, reverse=True)
    return ([latest] if latest is not None else []) + earlier


# --- States (status.json) ------------------------------------------------------------------
ACTIVE_STATES = frozenset({"starting", "running", "stopping"})
TERMINAL_STATES = frozenset({"stopped", "completed", "failed", "interrupted", "timeout"})
# Never written: readers report it when the supervisor of an active session is gone.
LOST = "lost"
# Never written: a stop reports it for a session that has its config here and has never run
# on this host (no status.json), so that nobody reads "stopped" for a session never started.
NEW = "new"
RESUMABLE_STATES = frozenset({"stopped", "interrupted", "timeout", LOST})
# A supervisor run moves forward only; a new run (resume) starts again from "starting".
TRANSITIONS = {
    "starting": frozenset({"running", "stopping", "failed"}),
    "running": frozenset({"stopping", "completed", "failed"}),
    "stopping": frozenset({"stopped", "interrupted", "timeout"}),
}

# --- Backends: what runs a session (run.json's `backend`) ------------------------------------
# The single-host supervisor; Ray (the session's job is a Ray driver on the cluster's head,
# under the same supervisor, with rollouts on the cluster's other hosts). A backend adds its
# name here and its entry in the runtime's registry (host_sessions.BACKENDS, held to these
# names by a test). A run.json without the key (every session an older runtime started) runs
# under the supervisor.
BACKEND_KEY = "backend"
DEFAULT_BACKEND = "supervisor"
RAY_BACKEND = "ray"
# DeepRacer: the session's job is a driver (agents/deepracer.py) of a DeepRacer compose stack
# (deepracer_stack's), under the same supervisor; run.json's `deepracer` object says which.
DEEPRACER_BACKEND = "deepracer"
BACKEND_NAMES = (DEFAULT_BACKEND, RAY_BACKEND, DEEPRACER_BACKEND)


def backend_name(run_json: Any) -> str:
    """The backend a session's run.json names; the supervisor when it names none."""
    name = run_json.get(BACKEND_KEY) if isinstance(run_json, dict) else None
    return name or DEFAULT_BACKEND


# --- run.json ------------------------------------------------------------------------------
DEEPRACER_KEY = "deepracer"  # the DeepRacer backend's stack (deepracer_problems); else null
ALGOS = ("ppo", "dqn")
DEVICES = ("auto", "cpu", "cuda")
NOTICE_MODES = ("auto", "imds", "none")
REBALANCE_ACTIONS = ("checkpoint", "stop", "record")
DEFAULT_IMDS_ENDPOINT = "http://169.254.169.254"
# The reference agent's command after its interpreter (run.json's `command` default is the
# host's venv python with these): SB3 on one host, RLlib on a Ray cluster.
AGENT_ARGS = ("-m", "rlops_runtime.agents.sb3", "train")
RAY_AGENT_ARGS = ("-m", "rlops_runtime.agents.rllib", "train")
DEEPRACER_AGENT_ARGS = ("-m", "rlops_runtime.agents.deepracer", "train")
BACKEND_AGENT_ARGS = {DEFAULT_BACKEND: AGENT_ARGS, RAY_BACKEND: RAY_AGENT_ARGS,
                      DEEPRACER_BACKEND: DEEPRACER_AGENT_ARGS}
# Every key but session_id, storage_uri and command (the host's), with a new session's value.
RUN_DEFAULTS = {
    "workdir": "",
    "env_id": "CartPole-v1",
    "algo": "ppo",
    "total_timesteps": 100_000,
    "checkpoint_interval": 10_000,
    "device": "auto",
    "seed": 0,
    "sync_interval": 10,
    "max_duration": 0,
    "stop_grace": 60,
    "checkpoint_keep_local": 0,
    "final_sync_timeout": 180,
    "env": {},
    "notices": "auto",
    "imds_endpoint": DEFAULT_IMDS_ENDPOINT,
    "on_rebalance": "checkpoint",
    BACKEND_KEY: DEFAULT_BACKEND,
    DEEPRACER_KEY: None,
}
RUN_REQUIRED = ("session_id", "storage_uri")
RUN_KEYS = RUN_REQUIRED + ("command",) + tuple(RUN_DEFAULTS)
CHOICES = {"algo": ALGOS, "device": DEVICES, "notices": NOTICE_MODES,
           "on_rebalance": REBALANCE_ACTIONS, BACKEND_KEY: BACKEND_NAMES}
INT_SETTINGS = ("total_timesteps", "checkpoint_interval", "checkpoint_keep_local")
FLOAT_SETTINGS = ("sync_interval", "max_duration", "stop_grace", "final_sync_timeout")
POSITIVE_SETTINGS = ("total_timesteps", "checkpoint_interval", "sync_interval")
NON_NEGATIVE_SETTINGS = ("max_duration", "stop_grace", "checkpoint_keep_local",
                         "final_sync_timeout")
# The name a user gives a setting (trainer_<name>), for messages.
INPUT_PREFIX = "trainer_"

# How a resume treats a requested setting that differs from the session's.
APPLY = "apply"    # safe to change between runs of the job
REFUSE = "refuse"  # fixed when the session started: the checkpoints depend on it
GROW = "grow"      # total_timesteps: only beyond the step the session has reached
HOST = "host"      # where the job runs on this host (its venv): the host's, for the same job
DEEPRACER_RESUME = "deepracer"  # the stack's keys: DEEPRACER_RESUME_KEYS apply, others refused
RESUME_POLICY = {
    "session_id": REFUSE, "storage_uri": REFUSE, "command": HOST, "workdir": HOST,
    "env_id": REFUSE, "algo": REFUSE, "seed": REFUSE, "total_timesteps": GROW,
    "checkpoint_interval": APPLY, "device": APPLY, "sync_interval": APPLY,
    "max_duration": APPLY, "stop_grace": APPLY, "checkpoint_keep_local": APPLY,
    "final_sync_timeout": APPLY, "env": APPLY, "notices": APPLY, "imds_endpoint": APPLY,
    "on_rebalance": APPLY, BACKEND_KEY: REFUSE, DEEPRACER_KEY: DEEPRACER_RESUME,
}


def coerce_setting(name: str, value: Any) -> Any:
    """A requested setting in run.json's type (Ansible's -e gives strings)."""
    try:
        if name in INT_SETTINGS:
            return int(value)
        if name in FLOAT_SETTINGS:
            number = float(value)
            return int(number) if number.is_integer() else number
        if name == "seed":
            return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        raise ContractError(f"{INPUT_PREFIX}{name} must be a number, got {value!r}") from None
    if name == "env":
        if not isinstance(value, dict):
            raise ContractError(f"{INPUT_PREFIX}env must be a mapping, got {value!r}")
        return {str(key): str(item) for key, item in value.items()}
    if name == DEEPRACER_KEY and isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else None
        except ValueError:
            raise ContractError(f"{INPUT_PREFIX}{DEEPRACER_KEY} must be a mapping, got "
                                f"{value!r}") from None
    if name == DEEPRACER_KEY and value is not None and not isinstance(value, dict):
        raise ContractError(f"{INPUT_PREFIX}{DEEPRACER_KEY} must be a mapping, got {value!r}")
    return value


def setting_problems(config: dict) -> list:
    """Values out of range in a (complete) run.json, one message each, as a user names them."""
    problems = [
        f"{INPUT_PREFIX}{name} must be one of {', '.join(choices)}, got {config.get(name)!r}"
        for name, choices in CHOICES.items() if config.get(name) not in choices]
    for name in POSITIVE_SETTINGS:
        if config[name] <= 0:
            problems.append(f"{INPUT_PREFIX}{name} must be greater than 0, got {config[name]}")
    for name in NON_NEGATIVE_SETTINGS:
        if config[name] < 0:
            problems.append(f"{INPUT_PREFIX}{name} must not be negative, got {config[name]}")
    if config.get("seed") is not None and config["seed"] < 0:
        problems.append(f"{INPUT_PREFIX}seed must not be negative, got {config['seed']}")
    algos = BACKEND_ALGOS.get(config.get(BACKEND_KEY), ALGOS)
    if config.get(BACKEND_KEY) == DEEPRACER_BACKEND:
        if config.get("algo") in ALGOS and config["algo"] not in algos:
            problems.append(
                f"{INPUT_PREFIX}algo {config['algo']}: the deepracer backend trains what "
                "model_metadata.json's training_algorithm says (clipped_ppo or sac): leave "
                f"{INPUT_PREFIX}algo unset")
        problems += deepracer_session_problems(config.get("storage_uri"),
                                               config.get(DEEPRACER_KEY))
    elif config.get(DEEPRACER_KEY) is not None:
        problems.append(f"{INPUT_PREFIX}{DEEPRACER_KEY} is set, but the session's backend is "
                        f"{config.get(BACKEND_KEY)}, not {DEEPRACER_BACKEND}")
    elif config.get("algo") in ALGOS and config["algo"] not in algos:
        problems.append(
            f"{INPUT_PREFIX}algo {config['algo']} is not one the {config[BACKEND_KEY]} backend's"
            f" reference agent trains ({', '.join(algos)})")
    return problems


def requested_setting_problems(settings: dict) -> list:
    """What is wrong with the settings a request gives (None: not given), checked as a new
    session's run.json would be: one message each, as a user names them. The controller asks
    this before a host is touched; `rlops-run configure` applies the same rules."""
    given = {name: value for name, value in settings.items() if value is not None}
    unknown = sorted(set(given) - set(RUN_KEYS))
    if unknown:
        return [f"unknown settings: {', '.join(unknown)}"]
    config, problems = dict(RUN_DEFAULTS), []
    for name, value in given.items():
        try:
            config[name] = coerce_setting(name, value)
        except ContractError as exc:
            problems.append(str(exc))
    return problems or setting_problems(config)


def check_run_json(data: Any) -> dict:
    """`data` when it is a run.json the supervisor can run, else ContractError saying why."""
    if not isinstance(data, dict):
        raise ContractError("run.json must be a JSON object")
    unknown = sorted(set(data) - set(RUN_KEYS))
    if unknown:
        raise ContractError(f"run.json: unknown keys {', '.join(unknown)}")
    missing = [key for key in RUN_REQUIRED if not data.get(key)]
    if missing:
        raise ContractError(f"run.json: missing {', '.join(missing)}")
    validate_session_id(data["session_id"])
    command = data.get("command")
    if command is not None and (
            not isinstance(command, list) or not command
            or not all(isinstance(part, str) for part in command)):
        raise ContractError("run.json: command must be a non-empty list of strings")
    for key in ("notices", "on_rebalance", BACKEND_KEY):
        if key in data and data[key] not in CHOICES[key]:
            raise ContractError(
                f"run.json: {key} must be one of {', '.join(CHOICES[key])}, got {data[key]!r}")
    timeout = data.get("final_sync_timeout", 0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ContractError(
            f"run.json: final_sync_timeout must be a number of seconds >= 0, got {timeout!r}")
    endpoint = data.get("imds_endpoint", DEFAULT_IMDS_ENDPOINT)
    if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
        raise ContractError(f"run.json: imds_endpoint must be an http:// URL, got {endpoint!r}")
    if data.get(BACKEND_KEY) == DEEPRACER_BACKEND or data.get(DEEPRACER_KEY) is not None:
        problems = (deepracer_session_problems(data["storage_uri"], data.get(DEEPRACER_KEY))
                    if data.get(BACKEND_KEY) == DEEPRACER_BACKEND else
                    [f"{DEEPRACER_KEY} is set, but backend is {backend_name(data)}"])
        if problems:
            raise ContractError("run.json: " + "; ".join(problems))
    return data


# --- The DeepRacer backend's stack (run.json's `deepracer`) ----------------------------------
# Written by `rlops-run session prepare` from trainer_deepracer, which the deepracer_stack role
# plans: the compose projects it rendered and where, and the model in the session's bucket.
DEEPRACER_REQUIRED = ("project", "eval_project", "compose_command", "compose_dir",
                      "sagemaker_dir", "run_id", "model_prefix", "bucket", "metrics_prefix")
DEEPRACER_OPTIONAL = {"pretrained_prefix": None, "upload_target": None, "training_minutes": None}
DEEPRACER_KEYS = DEEPRACER_REQUIRED + tuple(DEEPRACER_OPTIONAL)
# What a resume may change: the increment (a new model from the current one's checkpoint, its
# metrics beside it), how long it trains and where the model goes on a notice. The rest names
# the stack.
DEEPRACER_RESUME_KEYS = ("model_prefix", "pretrained_prefix", "metrics_prefix",
                         "training_minutes", "upload_target")
COMPOSE_PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
S3_PREFIX_RE = re.compile(r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$")


def _s3_prefix_problem(name: str, value: Any) -> str | None:
    if not isinstance(value, str) or not S3_PREFIX_RE.match(value) or any(
            part in (".", "..") for part in value.split("/")):
        return (f"deepracer.{name} {value!r} is not an S3 key prefix (letters, digits, "
                "'!_.*'()-' in '/'-separated parts, no leading or trailing '/')")
    return None


def deepracer_problems(obj: Any) -> list:
    """What is wrong with run.json's `deepracer` object (the stack a DeepRacer session
    drives), one message each; [] when it can run."""
    if not isinstance(obj, dict):
        return [f"deepracer must be an object with {', '.join(DEEPRACER_REQUIRED)}, "
                f"got {obj!r}"]
    problems = []
    unknown = sorted(set(obj) - set(DEEPRACER_KEYS))
    if unknown:
        problems.append(f"deepracer: unknown keys {', '.join(unknown)} (it takes "
                        f"{', '.join(DEEPRACER_KEYS)})")
    missing = [key for key in DEEPRACER_REQUIRED if obj.get(key) in (None, "", [])]
    if missing:
        problems.append(f"deepracer: missing {', '.join(missing)}")
    for key in ("project", "eval_project"):
        value = obj.get(key)
        if value and (not isinstance(value, str) or not COMPOSE_PROJECT_RE.match(value)):
            problems.append(f"deepracer.{key} {value!r} is not a compose project name "
                            "(lowercase letters, digits, '_' and '-')")
    if obj.get("project") and obj.get("project") == obj.get("eval_project"):
        problems.append("deepracer.eval_project is the training's project: they must differ")
    command = obj.get("compose_command")
    if command and (not isinstance(command, list)
                    or not all(isinstance(p, str) and p for p in command)):
        problems.append(f"deepracer.compose_command must be a list of words, e.g. "
                        f"[\"docker\", \"compose\"], got {command!r}")
    for key in ("compose_dir", "sagemaker_dir"):
        value = obj.get(key)
        if value and (not isinstance(value, str) or not value.startswith("/")):
            problems.append(f"deepracer.{key} must be an absolute path, got {value!r}")
    run_id = obj.get("run_id")
    if run_id is not None and (isinstance(run_id, bool) or not isinstance(run_id, int)
                               or run_id < 0):
        problems.append(f"deepracer.run_id must be an integer >= 0, got {run_id!r}")
    for key in ("model_prefix", "metrics_prefix", "pretrained_prefix"):
        if obj.get(key) not in (None, ""):
            problem = _s3_prefix_problem(key, obj[key])
            if problem:
                problems.append(problem)
    if obj.get("model_prefix") and obj.get("model_prefix") == obj.get("pretrained_prefix"):
        problems.append("deepracer.pretrained_prefix is the model_prefix: an increment trains "
                        "a new model prefix from the current one")
    bucket = obj.get("bucket")
    if bucket and (not isinstance(bucket, str) or not S3_BUCKET_RE.match(bucket)):
        problems.append(f"deepracer.bucket {bucket!r} is not a valid S3 bucket name")
    target = obj.get("upload_target")
    if target is not None:
        parsed = _error(parse_storage_uri, target)
        if parsed or not target.startswith("s3://") or not parse_storage_uri(target).prefix:
            problems.append(f"deepracer.upload_target must be s3://bucket/prefix, got "
                            f"{target!r}")
    minutes = obj.get("training_minutes")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float))
                                or minutes <= 0):
        problems.append(f"deepracer.training_minutes must be a number > 0 or null, got "
                        f"{minutes!r}")
    return problems


def deepracer_session_problems(storage_uri: Any, obj: Any) -> list:
    """A DeepRacer session's storage and stack together: s3:// storage (the bucket the stack
    reads and writes, with the session's credentials) whose bucket is the stack's."""
    problems = []
    parsed = None
    try:
        parsed = parse_storage_uri(storage_uri) if storage_uri else None
    except ContractError as exc:
        problems.append(str(exc))
    if parsed is not None and parsed.scheme != "s3":
        problems.append(f"the deepracer backend needs s3://bucket/prefix storage (its bucket "
                        f"is the stack's), got {storage_uri!r}")
        parsed = None
    problems += deepracer_problems(obj)
    if (parsed is not None and isinstance(obj, dict) and obj.get("bucket")
            and obj["bucket"] != parsed.location):
        problems.append(f"deepracer.bucket {obj['bucket']!r} is not the storage's bucket "
                        f"{parsed.location!r}: the stack and the session share one bucket")
    return problems


def deepracer_resume_problems(current: Any, requested: Any) -> list:
    """Keys of `deepracer` a resume asks to change that it may not (DEEPRACER_RESUME_KEYS
    may change), one message."""
    current = current if isinstance(current, dict) else {}
    requested = requested if isinstance(requested, dict) else {}
    fixed = sorted(key for key in set(current) | set(requested)
                   if key not in DEEPRACER_RESUME_KEYS
                   and current.get(key) != requested.get(key))
    if not fixed:
        return []
    return [f"{INPUT_PREFIX}{DEEPRACER_KEY} keys {', '.join(fixed)} cannot change on resume "
            f"(only {', '.join(DEEPRACER_RESUME_KEYS)} may): "
            + ", ".join(f"{k} {current.get(k)!r} -> {requested.get(k)!r}" for k in fixed)]


# The trainer rl_coach starts through the docker socket (SageMaker local mode) with a compose
# file of its own under the stack's sagemaker_dir: outside the project, so the project's `down`
# leaves it running. Found by what compose put on its container (`docker inspect`), never by
# name (compose v1 and v2 spell it differently): the runtime's stop and deepracer_stack's
# stop entry point (filter deepracer_trainer_containers) share this one rule.
CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"  # comma-separated paths


def container_environment(env: Any) -> dict:
    """`docker inspect`'s Config.Env (["KEY=value", ...]) as a dict."""
    pairs = (str(item).split("=", 1) for item in env or [])
    return {pair[0]: pair[1] if len(pair) > 1 else "" for pair in pairs}


def trainer_containers(inspected: Any, sagemaker_dir: Any, run_id: Any,
                       model_prefix: Any) -> list:
    """The trainers of one training among `docker inspect` records: every compose file of
    the container (its label) under sagemaker_dir, RUN_ID the run id and TRAINING_JOB_NAME
    the model prefix, exactly (DRfC's stop.sh greps, so run 1 also took run 10's trainer and
    model `m1` `m10`'s). [{id, name, config_files, running}], sorted by name."""
    root = str(sagemaker_dir).rstrip("/") + "/"
    found = []
    for record in inspected or []:
        config = (record.get("Config") if isinstance(record, dict) else None) or {}
        labels = config.get("Labels") or {}
        files = [f for f in str(labels.get(CONFIG_FILES_LABEL, "")).split(",") if f]
        env = container_environment(config.get("Env"))
        if (files and all(f.startswith(root) for f in files)
                and env.get("RUN_ID") == str(run_id)
                and env.get("TRAINING_JOB_NAME") == str(model_prefix)):
            found.append({"id": record.get("Id", ""),
                          "name": str(record.get("Name", "")).lstrip("/"),
                          "config_files": files,
                          "running": bool((record.get("State") or {}).get("Running"))})
    return sorted(found, key=lambda c: c["name"])


# --- Env ids and hyperparameters -----------------------------------------------------------
# gymnasium ids: optional namespace, name, mandatory version ("ALE/Pong-v5", "CartPole-v1").
ENV_ID_RE = re.compile(r"^(?:[A-Za-z0-9_.-]+/)?[A-Za-z0-9_.:-]+-v\d+$")
# Keys of rl-baselines3-zoo hyperparameter files that are not constructor arguments as such.
ZOO_KEYS = ("n_envs", "n_timesteps", "normalize", "policy", "policy_kwargs")
# Constructor arguments of Stable-Baselines3 that the session sets (from run.json and the
# session's folders), never the hyperparameters.
SESSION_OWNED = ("env", "seed", "device", "tensorboard_log", "_init_setup_model")
# The other constructor arguments of Stable-Baselines3 2.x, per algorithm: what the reference
# agent takes. A unit test checks them against the installed SB3 so that they cannot drift.
ALGO_KEYS = {
    "ppo": (
        "batch_size", "clip_range", "clip_range_vf", "ent_coef", "gae_lambda", "gamma",
        "learning_rate", "max_grad_norm", "n_epochs", "n_steps", "normalize_advantage",
        "policy_kwargs", "rollout_buffer_class", "rollout_buffer_kwargs", "sde_sample_freq",
        "stats_window_size", "target_kl", "use_sde", "verbose", "vf_coef",
    ),
    "dqn": (
        "batch_size", "buffer_size", "exploration_final_eps", "exploration_fraction",
        "exploration_initial_eps", "gamma", "gradient_steps", "learning_rate",
        "learning_starts", "max_grad_norm", "n_steps", "optimize_memory_usage",
        "policy_kwargs", "replay_buffer_class", "replay_buffer_kwargs",
        "stats_window_size", "target_update_interval", "tau", "train_freq", "verbose",
    ),
}


# What the Ray backend's reference agent (agents/rllib.py) takes, in the session's names: the
# PPO keys it maps to RLlib's, then the ones it reads itself (the rollout size, the budget, the
# network). A test holds the agent's mapping to this set.
RAY_PPO_KEYS = (
    "batch_size", "clip_range", "clip_range_vf", "ent_coef", "gae_lambda", "gamma",
    "learning_rate", "max_grad_norm", "n_epochs", "vf_coef",
    "n_envs", "n_steps", "n_timesteps", "policy", "policy_kwargs", "verbose",
)
# The keys each backend's reference agent takes, per algorithm.
BACKEND_ALGO_KEYS = {
    DEFAULT_BACKEND: {algo: (*keys, *ZOO_KEYS) for algo, keys in ALGO_KEYS.items()},
    RAY_BACKEND: {"ppo": RAY_PPO_KEYS},
    # None: DeepRacer's hyperparameters are its custom files' hyperparameters.json (checked by
    # deepracer_stack), and its algorithm model_metadata.json's. run.json's algo keeps the
    # default.
    DEEPRACER_BACKEND: {"ppo": ()},
}
# The algorithms each backend's reference agent trains (the other checks are the same).
BACKEND_ALGOS = {backend: tuple(keys) for backend, keys in BACKEND_ALGO_KEYS.items()}


def check_algo(algo: Any) -> str:
    if algo not in ALGOS:
        raise ContractError(f"unknown algo {algo!r}; choose one of {', '.join(ALGOS)}")
    return algo


def env_id_error(env_id: Any, registry: Any = None) -> str | None:
    """What is wrong with a gymnasium env id: its form, and its registration when the
    registry (a collection of ids) is known; None when nothing is."""
    if not isinstance(env_id, str) or not ENV_ID_RE.match(env_id):
        return f"env id {env_id!r} is not a gymnasium id: expected Name-vN, e.g. CartPole-v1"
    if registry is not None and env_id not in registry:
        close = difflib.get_close_matches(env_id, sorted(registry), n=3)
        hint = f": did you mean {', '.join(close)}?" if close else ""
        return f"env id {env_id!r} is not registered in gymnasium{hint}"
    return None


def parse_hyperparameters(raw: Any) -> dict:
    """Hyperparameters given as a mapping, a JSON object string, or nothing ({})."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return dict(raw)
    if not isinstance(raw, str):
        raise ContractError("hyperparameters must be a mapping or a JSON object string")
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ContractError(f"hyperparameters are not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ContractError(
            f"hyperparameters must be a JSON object, got {type(value).__name__}")
    return value


def hyperparameter_key_problems(algo: str, hyperparameters: dict,
                                backend: str = DEFAULT_BACKEND) -> list:
    """Keys `backend`'s reference agent does not take for `algo`, one message each (their
    values are the runtime's to check, against the installed SB3 or RLlib)."""
    problem = _error(check_algo, algo)
    if problem:
        return [problem]
    if backend not in BACKEND_ALGO_KEYS:
        return [f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_NAMES)}"]
    if backend == DEEPRACER_BACKEND:
        return ["the deepracer backend takes no trainer_hyperparameters: DeepRacer's are the "
                "custom files' hyperparameters.json (deepracer_stack), its algorithm "
                "model_metadata.json's"] if hyperparameters or algo != ALGOS[0] else []
    if algo not in BACKEND_ALGOS[backend]:
        return [f"the {backend} backend's agent does not train {algo.upper()}; it trains "
                f"{', '.join(a.upper() for a in BACKEND_ALGOS[backend])}"]
    known = set(BACKEND_ALGO_KEYS[backend][algo])
    agent = "" if backend == DEFAULT_BACKEND else f" of the {backend} backend's agent"
    problems = []
    for key in sorted(hyperparameters):
        if key in SESSION_OWNED:
            problems.append(f"{key!r} is set by the session, not by hyperparameters")
        elif key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{key!r} is not a {algo.upper()} hyperparameter{agent}{hint}")
    return problems
