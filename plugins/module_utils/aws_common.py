# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""What the rlops.fleet AWS modules share: the session tag, tag checks, and one way to turn
AWS errors into a single message that says what failed, on which resource, and why."""

import re
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    boto3_tag_list_to_ansible_dict,
    boto3_tag_specifications,
)

try:
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )
except ImportError:  # AnsibleAWSModule reports the missing SDK itself.
    BotoCoreError = ClientError = EndpointConnectionError = Exception
    NoCredentialsError = PartialCredentialsError = Exception

SESSION_TAG = "rlops:session"
# What a session-tagged volume is for: "root" (an instance's, goes with it) or "data".
ROLE_TAG = "rlops:role"
MAX_TAGS = 50  # per EC2 resource
_TAG_KEY_MAX = 128
_TAG_VALUE_MAX = 256
# Tag keys and values: letters, digits, spaces and _ . : / = + - @ (EC2 allows more, but
# these are what every service that copies tags accepts).
_TAG_RE = re.compile(r"^[\w .:/=+\-@]*$", re.UNICODE)


class FleetAWSError(AnsibleAWSError):
    """A failure with its user-facing message; `exception` is the AWS error behind it."""


def error_code(exc: BaseException) -> str:
    """EC2's error code behind `exc` (raw or wrapped), or ''."""
    exc = _sdk_error(exc)
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _sdk_error(exc: BaseException) -> BaseException:
    """The SDK error behind amazon.aws's helpers' AnsibleAWSError (they wrap ClientError and
    BotoCoreError with a message of their own, which ours replaces)."""
    if isinstance(exc, AnsibleAWSError) and not isinstance(exc, FleetAWSError) \
            and exc.exception is not None:
        return exc.exception
    return exc


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Re-raise SDK errors (raw, or wrapped by amazon.aws's helpers) as FleetAWSError
    prefixed with `what` (what + which).

    Missing credentials and an unreachable endpoint get a message of their own: the AWS
    text for those does not say what to do.
    """
    try:
        yield
    except (ClientError, BotoCoreError, AnsibleAWSError) as raised:
        exc = _sdk_error(raised)
        if isinstance(exc, FleetAWSError) or not isinstance(exc, (ClientError, BotoCoreError)):
            raise
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            raise FleetAWSError(
                f"{what}: no usable AWS credentials ({exc}); set a profile (AWS_PROFILE or the "
                "profile option) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ) from exc
        if isinstance(exc, EndpointConnectionError):
            raise FleetAWSError(f"{what}: cannot reach the EC2 endpoint ({exc})") from exc
        raise FleetAWSError(what, exception=exc) from exc


def fail_module(module, err: FleetAWSError, **result) -> None:
    """The one place a module turns a raised error into fail_json / fail_json_aws."""
    result.update(err.kwargs)
    if err.exception is not None:
        module.fail_json_aws(err.exception, msg=err.message, **result)
    module.fail_json(msg=err.message, **result)


def run_module(module, run: Callable[[Any], Dict[str, Any]],
               refused: Optional[str] = None) -> None:
    """Exit once: with `refused` (arguments found wrong before any AWS call), or with what
    `run` returns given the module's EC2 client (a call made with aws_retry=True is retried
    with jittered backoff), or with the one message of the FleetAWSError it raised."""
    if refused:
        module.fail_json(msg=refused)
    ec2 = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff(retries=5))
    try:
        result = run(ec2)
    except FleetAWSError as err:
        fail_module(module, err)
    module.exit_json(**result)


class SessionResource:
    """Base of the modules' managers: the module, its EC2 client, parameters and session.
    Methods raise FleetAWSError; run_module exits."""

    def __init__(self, module, ec2):
        self.module = module
        self.ec2 = ec2
        self.params = module.params
        self.session = module.params["session"]

    def run(self) -> Dict[str, Any]:
        """The module's result: present() or absent(), as its `state` says."""
        return getattr(self, self.params["state"])()


def tags_error(tags: Optional[Mapping[str, Any]],
               reserved: Sequence[str] = (SESSION_TAG, ROLE_TAG)) -> Optional[str]:
    """Why these user tags cannot be applied, or None."""
    if not tags:
        return None
    problems = []
    for key, value in tags.items():
        key_text = str(key)
        value_text = "" if value is None else str(value)
        if key_text in reserved:
            problems.append(f"{key_text!r} is set by the module from the session")
        elif key_text.lower().startswith("aws:"):
            problems.append(f"{key_text!r}: the aws: prefix is reserved for AWS")
        elif not key_text or len(key_text) > _TAG_KEY_MAX:
            problems.append(f"{key_text!r}: keys are 1-{_TAG_KEY_MAX} characters")
        elif len(value_text) > _TAG_VALUE_MAX:
            problems.append(f"{key_text!r}: values are at most {_TAG_VALUE_MAX} characters")
        elif not _TAG_RE.match(key_text) or not _TAG_RE.match(value_text):
            problems.append(
                f"{key_text!r}: use letters, digits, spaces and _ . : / = + - @ only")
    if len(tags) + len(reserved) + 1 > MAX_TAGS:
        problems.append(
            f"{len(tags)} tags is too many (EC2 allows {MAX_TAGS} including the module's own)")
    if problems:
        return "invalid tags: " + "; ".join(problems)
    return None


def session_tags(session: Optional[str], tags: Optional[Mapping[str, Any]],
                 name: Optional[str] = None) -> Dict[str, str]:
    """User tags plus the session tag, and a Name unless the user gave one."""
    result = {str(k): "" if v is None else str(v) for k, v in (tags or {}).items()}
    if name and "Name" not in result:
        result["Name"] = name
    if session:
        result[SESSION_TAG] = session
    return result


def tag_specifications(tags: Mapping[str, str], resource_types: Sequence[str]
                       ) -> List[Dict[str, Any]]:
    """TagSpecifications, tags sorted by key (the same request on every run)."""
    return boto3_tag_specifications(dict(sorted(tags.items())), list(resource_types)) or []


def tag_dict(resource: Mapping[str, Any]) -> Dict[str, str]:
    """Tags of a described resource as a dict; moto and some calls leave `Tags` (or a
    tag's `Value`) out."""
    return boto3_tag_list_to_ansible_dict([
        {"Key": tag["Key"], "Value": tag.get("Value", "")}
        for tag in resource.get("Tags") or []
        if isinstance(tag, Mapping) and "Key" in tag
    ])


def session_filter(session: str) -> Dict[str, Any]:
    return {"Name": f"tag:{SESSION_TAG}", "Values": [session]}
