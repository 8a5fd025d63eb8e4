"""Run rlops.fleet modules in-process: module args in, exit_json / fail_json out as
exceptions, and module.client("ec2") answered by a botocore Stubber.

The Stubber checks every call's name and parameters in order, so a test states the exact
call sequence a module makes, and `assert_no_pending_responses` proves nothing was left
out (for example: no mutation happened after a refusal).
"""

import contextlib
import json
from typing import Any, Dict, Optional

import boto3
import pytest
from ansible.module_utils import basic
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import (
    RetryingBotoClientWrapper,
)
from botocore.stub import Stubber

try:  # ansible-core >= 2.19
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core 2.17 / 2.18: the classic _ANSIBLE_ARGS pattern

    @contextlib.contextmanager
    def patch_module_args(args=None):
        payload = json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode()
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = payload
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved


REGION = "us-east-1"
COMMON_ARGS = {"region": REGION, "access_key": "AKIDTEST", "secret_key": "secret",
               "poll_interval": 0}


class ModuleExit(Exception):
    def __init__(self, result: Dict[str, Any]):
        super().__init__(result.get("msg", ""))
        self.result = result


class ModuleFail(ModuleExit):
    pass


def _exit_json(self, **kwargs):
    kwargs.setdefault("changed", False)
    raise ModuleExit(kwargs)


def _fail_json(self, msg="", **kwargs):
    kwargs["failed"] = True
    kwargs["msg"] = msg
    raise ModuleFail(kwargs)


def _ec2_client():
    return boto3.client("ec2", region_name=REGION, aws_access_key_id="AKIDTEST",
                        aws_secret_access_key="secret")


def _answer_ec2_with(monkeypatch, client):
    """Every module.client("ec2") call returns `client` (wrapped with the module's retries)."""
    def fake_client(self, service, retry_decorator=None, **extra):
        assert service == "ec2"
        return client if retry_decorator is None else RetryingBotoClientWrapper(
            client, retry_decorator)

    monkeypatch.setattr(AnsibleAWSModule, "client", fake_client)


@pytest.fixture
def ec2_stub(monkeypatch):
    """(client, stubber): the client every module.client("ec2") call returns."""
    client = _ec2_client()
    stubber = Stubber(client)
    _answer_ec2_with(monkeypatch, client)
    with stubber:
        yield client, stubber


@pytest.fixture
def ec2_moto(monkeypatch):
    """The client every module.client("ec2") call returns, on moto's in-process EC2
    (mock_aws): for modules whose tests state what EC2 holds, not each call."""
    moto = pytest.importorskip("moto")
    with moto.mock_aws():
        client = _ec2_client()
        _answer_ec2_with(monkeypatch, client)
        yield client


@pytest.fixture
def run_module(monkeypatch):
    """run_module(main, args, check_mode=False) -> (result, failed)."""
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", _fail_json)

    def run(main, args: Dict[str, Any], check_mode: bool = False, diff: bool = False,
            common: Optional[Dict[str, Any]] = None):
        full = dict(COMMON_ARGS if common is None else common, **args)
        if check_mode:
            full["_ansible_check_mode"] = True
        if diff:
            full["_ansible_diff"] = True
        with patch_module_args(full):
            try:
                main()
            except ModuleFail as failure:
                return failure.result, True
            except ModuleExit as done:
                return done.result, False
        raise AssertionError("the module returned without exit_json or fail_json")

    return run
