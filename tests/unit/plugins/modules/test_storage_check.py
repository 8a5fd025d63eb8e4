"""storage_check as a module, in-process, and session_preflight's documentation: their
documentation is their argument spec, what the host module decides, and no secret of the
storage credentials in any result, a refusal of bad arguments included (session_preflight's
action plugin: tests/unit/plugins/action/test_session_preflight_action.py). Real S3
requests: tests/integration/moto/test_s3_probe_moto.py."""

import contextlib
import json

import pytest
import yaml
from ansible_collections.rlops.fleet.plugins.module_utils.s3_probe import BUCKET, CheckError
from ansible_collections.rlops.fleet.plugins.module_utils.session_checks import (
    ARGUMENT_SPEC as PREFLIGHT_SPEC,
)
from ansible_collections.rlops.fleet.plugins.modules import session_preflight, storage_check
from docfragments import documentation, module_arguments, normalised

try:  # ansible-core >= 2.19
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core 2.17 / 2.18
    from ansible.module_utils import basic

    @contextlib.contextmanager
    def patch_module_args(args=None):
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode()
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved

SECRET = "wJalrXUtnFEMI-K7MDENG-known-secret"
TOKEN = "FQoGZXIvYXdzEXAMPLE-known-token"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIAKNOWNKEY00000000", "AWS_SECRET_ACCESS_KEY": SECRET,
               "AWS_SESSION_TOKEN": TOKEN, "RLOPS_S3_ENDPOINT_URL": "http://127.0.0.1:1"}


def _argument_spec(module, monkeypatch):
    """The module's spec as its main() gives it; the action plugin's spec for
    session_preflight (an action plugin only)."""
    if module is session_preflight:
        return PREFLIGHT_SPEC
    return module_arguments(module, monkeypatch, "StorageModule")["argument_spec"]


@pytest.mark.parametrize("module", [storage_check, session_preflight],
                         ids=["storage_check", "session_preflight"])
def test_documented_options_are_the_argument_spec(module, monkeypatch):
    doc = documentation(module)
    spec = _argument_spec(module, monkeypatch)
    assert sorted(doc["options"]) == sorted(spec)
    for name, option in spec.items():
        assert normalised(doc["options"][name]) == normalised(option), name
    assert doc["attributes"]["check_mode"]["support"] == "full"
    returned = yaml.safe_load(module.RETURN)
    assert all({"description", "returned", "type"} <= set(v) for v in returned.values())


def test_both_modules_share_the_storage_options(monkeypatch):
    host = documentation(storage_check)["options"]
    controller = documentation(session_preflight)["options"]
    for name in ("storage_credentials", "connect_timeout", "read_timeout"):
        assert host[name]["type"] == controller[name]["type"]
        assert host[name].get("default") == controller[name].get("default")


class Check:
    def __init__(self, answer=None, error=None):
        self.answer, self.error, self.calls = answer, error, []

    def __call__(self, uri, bucket, prefix, given, environ=None, write=True, **timeouts):
        self.calls.append((uri, bucket, prefix, environ, write))
        if self.error:
            raise self.error
        return self.answer


PARAMS = {"storage_uri": "s3://bkt/p", "storage_credentials": CREDENTIALS,
          "connect_timeout": 5.0, "read_timeout": 10.0}


def test_host_check_never_reads_the_hosts_environment_and_only_reads_in_check_mode():
    answer = {"checked": True, "reason": "", "endpoint": "http://127.0.0.1:1",
              "region": "us-east-1", "permissions": ["s3:ListBucket", "s3:GetObject"],
              "wrote_probe": False, "probe_key": "p/.rlops-check/h"}
    check = Check(answer)
    result, error = storage_check.host_storage_check(PARAMS, check_mode=True, run=check)
    assert error is None and check.calls == [("s3://bkt/p", "bkt", "p", None, False)]
    assert result == dict(answer, changed=False)


@pytest.mark.parametrize("uri, fragment", [
    ("file:///srv/rl", "file:// storage is a folder on this host"),
])
def test_host_check_leaves_file_storage_to_the_runtime(uri, fragment):
    check = Check()
    result, error = storage_check.host_storage_check(dict(PARAMS, storage_uri=uri), run=check)
    assert error is None and not result["checked"] and fragment in result["reason"]
    assert check.calls == []


def test_host_check_leaves_az_to_the_runtime_and_reports_failures():
    check = Check()
    result, error = storage_check.host_storage_check(dict(PARAMS, storage_uri="az://models/p"),
                                                     run=check)
    assert error is None and not result["checked"] and check.calls == []
    assert result["reason"].startswith("az:// storage is checked by the runtime")
    _result, error = storage_check.host_storage_check(dict(PARAMS, storage_uri="az://c/p"),
                                                      run=Check())
    assert error == ("storage URI 'az://c/p': 'c' is not a valid Azure Blob container name "
                     "(3-63 lowercase letters, digits and single hyphens)")
    _result, error = storage_check.host_storage_check(
        PARAMS, run=Check(error=CheckError("bucket 'bkt' does not exist at E", BUCKET)))
    assert error == "bucket 'bkt' does not exist at E"


def _run(monkeypatch, main, args, capsys):
    """Run a module's main() as Ansible does (arguments in, JSON out, exit code)."""
    with patch_module_args(args), pytest.raises(SystemExit):
        main()
    return capsys.readouterr().out


@pytest.mark.parametrize("main, args", [
    # Refused by AnsibleModule itself, before main() could mask anything.
    (storage_check.main, {"storage_uri": "s3://bkt/p", "read_timeout": "soon"}),
    # Refused by the check (nothing listens on port 1).
    (storage_check.main, {"storage_uri": "s3://bkt/p", "connect_timeout": 2}),
    # Accepted.
    (storage_check.main, {"storage_uri": "file:///srv/rl"}),
])
def test_no_secret_in_any_result(monkeypatch, capsys, main, args):
    out = _run(monkeypatch, main, dict(args, storage_credentials=CREDENTIALS), capsys)
    result = json.loads(out)
    assert "invocation" in result  # the arguments are echoed, masked
    assert SECRET not in out and TOKEN not in out and "AKIAKNOWNKEY" not in out
    assert "http://127.0.0.1:1" in out  # the endpoint stays readable


class Read:
    def __init__(self, answer=None, error=None):
        self.answer, self.error, self.calls = answer, error, []

    def __call__(self, uri, bucket, prefix, key, given, environ=None, host_environ=None,
                 **timeouts):
        self.calls.append((uri, bucket, prefix, key, environ, host_environ))
        if self.error:
            raise self.error
        return self.answer


def test_host_read_returns_the_objects_text_with_the_hosts_environment_for_imds():
    answer = {"content": "# requirement: rlops-runtime\n", "endpoint": "E", "region": "r",
              "credentials_source": "the instance role trainer"}
    read = Read(answer)
    params = dict(PARAMS, read="s1/config/requirements.lock")
    result, error = storage_check.host_storage_read(params, run=read,
                                                    environ={"HOME": "/root"})
    assert error is None and result["content"] == answer["content"]
    assert result["permissions"] == ["s3:GetObject"] and not result["wrote_probe"]
    assert read.calls == [("s3://bkt/p", "bkt", "p", "s1/config/requirements.lock", None,
                           {"HOME": "/root"})]


def test_host_read_refuses_file_storage_and_says_why_storage_could_not_be_read():
    params = dict(PARAMS, read="s1/config/requirements.lock")
    _result, error = storage_check.host_storage_read(dict(params, storage_uri="file:///srv"),
                                                     run=Read())
    assert error == "read is for s3:// storage; file:// storage is a folder on this host"
    _result, error = storage_check.host_storage_read(
        params, run=Read(error=CheckError("storage s3://bkt/p: reading k failed: why", BUCKET)))
    assert error == "storage s3://bkt/p: reading k failed: why"


def test_read_through_main_masks_secrets(monkeypatch, capsys):
    # Nothing listens on port 1: the read fails, the secrets stay masked.
    out = _run(monkeypatch, storage_check.main,
               {"storage_uri": "s3://bkt/p", "read": "s1/config/requirements.lock",
                "connect_timeout": 2, "storage_credentials": CREDENTIALS}, capsys)
    result = json.loads(out)
    assert result["failed"] and "reading s1/config/requirements.lock failed" in result["msg"]
    assert SECRET not in out and TOKEN not in out and "AKIAKNOWNKEY" not in out
