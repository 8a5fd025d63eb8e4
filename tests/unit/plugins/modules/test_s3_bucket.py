"""s3_bucket in-process, without a network: its documentation is its argument spec, the
input checks, and what it decides from each S3 answer (look, create, check mode, the
refusals and their messages), with a scripted client. Real requests against moto:
tests/integration/moto/test_s3_bucket_moto.py."""

import http.server
import re
import threading
from pathlib import Path

import pytest
import yaml
from ansible_collections.rlops.fleet.plugins.module_utils import s3_probe as sp
from ansible_collections.rlops.fleet.plugins.modules import s3_bucket
from docfragments import documentation, module_arguments, normalised

REPO = Path(__file__).resolve().parents[4]
ENDPOINT = "http://127.0.0.1:9000"


def test_documented_options_are_the_argument_spec(monkeypatch):
    captured = module_arguments(s3_bucket, monkeypatch, "AnsibleModule")
    spec = captured["argument_spec"]
    assert captured["supports_check_mode"] is True
    doc = documentation(s3_bucket)
    assert sorted(doc["options"]) == sorted(spec)
    for name, option in spec.items():
        assert normalised(doc["options"][name]) == normalised(option), name
    # The secret is never shown; the access key is an identifier (as in amazon.aws).
    assert spec["secret_key"]["no_log"] is True and spec["access_key"]["no_log"] is False
    assert {a["support"] for a in doc["attributes"].values()} == {"full"}


def test_the_role_checks_bucket_names_with_the_modules_pattern():
    role_vars = yaml.safe_load((REPO / "roles/minio_proxy/vars/main.yml").read_text())
    assert role_vars["__minio_proxy_bucket_name_pattern"] == s3_bucket.BUCKET_NAME_PATTERN


@pytest.mark.parametrize("name, valid", [
    ("rlops-checkpoints", True), ("a.b-c", True), ("abc", True), ("a" * 63, True),
    ("ab", False), ("a" * 64, False), ("Caps", False), ("under_score", False),
    ("-dash", False), ("dash-", False), ("a..b", False), ("10.0.0.1", False),
    ("10.0.0.1a", True), ("", False),
])
def test_bucket_names(name, valid):
    assert bool(re.match(s3_bucket.BUCKET_NAME_PATTERN, name)) is valid


PARAMS = {"names": ["ckpt"], "state": "present", "endpoint": ENDPOINT, "region": "us-east-1",
          "ca_file": None, "access_key": "rlops", "secret_key": "secret-value",
          "connect_timeout": 5.0, "read_timeout": 10.0, "health_path": "",
          "health_timeout": 60, "health_delay": 2.0}


@pytest.mark.parametrize("change, message", [
    ({}, None),
    ({"names": ["ok-one", "Bad", "x"]}, "not valid bucket names: 'Bad', 'x' (3-63 lowercase"),
    ({"endpoint": "127.0.0.1:9000"}, "endpoint '127.0.0.1:9000' is not an http:// or https://"),
    ({"endpoint": "ftp://host"}, "endpoint 'ftp://host' is not an http:// or https://"),
    ({"endpoint": "http://"}, "endpoint 'http://' is not an http:// or https://"),
    ({"endpoint": "http://h:70000"}, "endpoint 'http://h:70000' has a port that is not"),
    ({"endpoint": "http://h:0"}, "endpoint 'http://h:0' has a port that is not"),
    ({"endpoint": "http://h:9000/?x=1"}, "endpoint 'http://h:9000/?x=1' has a query"),
    ({"region": ""}, "region must not be empty"),
    ({"health_path": "minio/health/live"}, "health_path 'minio/health/live' must start with /"),
    ({"health_timeout": -1}, "health_timeout must not be negative, got -1"),
    ({"access_key": ""}, "access_key must not be empty"),
    ({"secret_key": ""}, "secret_key must not be empty"),
    ({"read_timeout": 0.0}, "read_timeout must be more than 0 seconds, got 0.0"),
    ({"ca_file": "/etc/ca.pem"}, "ca_file is for an https:// endpoint; http://127.0.0.1:9000"),
    ({"ca_file": "/etc/ca.pem", "endpoint": "https://h:9000"},
     "ca_file /etc/ca.pem is not a file on this host"),
])
def test_input_errors(change, message):
    error = s3_bucket.input_error(dict(PARAMS, **change), is_file=lambda path: False)
    assert error == message if message is None else error.startswith(message), error


def test_a_ca_file_that_exists_is_accepted():
    params = dict(PARAMS, ca_file="/etc/ca.pem", endpoint="https://h:9000")
    assert s3_bucket.input_error(params, is_file=lambda path: path == "/etc/ca.pem") is None


def test_names_count_once_in_their_order():
    assert s3_bucket.unique(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


def _error(status, code=""):
    body = (b"<Error><Code>%s</Code><Message>m</Message></Error>" % code.encode()) if code else b""
    return sp.Response(status, {}, body, sp.parse_error(body) if body else {})


class ScriptedClient:
    """Answers S3Client.request from a script of {(method, bucket, query): [Response...]};
    records every request."""

    endpoint = ENDPOINT
    region = "us-east-1"

    def __init__(self, script):
        self.script = {key: list(answers) for key, answers in script.items()}
        self.calls = []

    def request(self, method, bucket, key="", query=(), body=b""):
        self.calls.append((method, bucket, dict(query), body))
        answers = self.script[(method, bucket, tuple(q[0] for q in query))]
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


OK = sp.Response(200, {}, b"")
MISSING = sp.Response(404, {}, b"")


def test_creates_the_missing_and_keeps_the_existing():
    client = ScriptedClient({("HEAD", "have", ()): [OK], ("HEAD", "lack", ()): [MISSING],
                             ("PUT", "lack", ()): [OK]})
    result, error = s3_bucket.ensure_buckets(client, ["have", "lack"])
    assert error is None
    assert (result["changed"], result["created"], result["existing"]) == (True, ["lack"], ["have"])
    assert [c[:2] for c in client.calls] == [("HEAD", "have"), ("HEAD", "lack"), ("PUT", "lack")]
    assert client.calls[-1][3] == b""  # us-east-1: no LocationConstraint


def test_check_mode_only_looks():
    client = ScriptedClient({("HEAD", "lack", ()): [MISSING]})
    result, error = s3_bucket.ensure_buckets(client, ["lack"], create=False)
    assert error is None and result["changed"] and result["created"] == ["lack"]
    assert [c[0] for c in client.calls] == ["HEAD"]
    assert s3_bucket.diff_of(result) == {"before": {"buckets": []},
                                         "after": {"buckets": ["lack"]}}


def test_nothing_missing_is_unchanged():
    client = ScriptedClient({("HEAD", "have", ()): [OK]})
    result, error = s3_bucket.ensure_buckets(client, ["have"])
    assert error is None and not result["changed"] and result["existing"] == ["have"]


def test_a_bucket_made_meanwhile_counts_as_existing():
    client = ScriptedClient({("HEAD", "race", ()): [MISSING],
                             ("PUT", "race", ()): [_error(409, "BucketAlreadyOwnedByYou")]})
    result, error = s3_bucket.ensure_buckets(client, ["race"])
    assert error is None and not result["changed"] and result["existing"] == ["race"]


def test_a_refused_head_is_asked_why_and_a_wrong_secret_is_named():
    rejected = _error(403, "SignatureDoesNotMatch")
    client = ScriptedClient({("HEAD", "ckpt", ()): [sp.Response(403, {}, b"")],
                             ("GET", "ckpt", ("location",)): [rejected]})
    result, error = s3_bucket.ensure_buckets(client, ["ckpt"])
    assert error == (f"Look for bucket ckpt at {ENDPOINT}: credentials rejected by {ENDPOINT} "
                     "(SignatureDoesNotMatch): check access_key and secret_key")
    assert not result["changed"] and [c[0] for c in client.calls] == ["HEAD", "GET"]


def test_a_refused_head_without_a_reason_is_a_missing_list_permission():
    client = ScriptedClient({("HEAD", "ckpt", ()): [sp.Response(403, {}, b"")],
                             ("GET", "ckpt", ("location",)): [OK]})
    _result, error = s3_bucket.ensure_buckets(client, ["ckpt"])
    assert error == (f"Look for bucket ckpt at {ENDPOINT}: access denied (403): the credentials "
                     "lack s3:ListBucket on bucket 'ckpt'")


def test_a_refused_create_stops_and_says_what_was_made():
    client = ScriptedClient({("HEAD", "one", ()): [MISSING], ("PUT", "one", ()): [OK],
                             ("HEAD", "two", ()): [MISSING],
                             ("PUT", "two", ()): [_error(403, "AccessDenied")],
                             })
    result, error = s3_bucket.ensure_buckets(client, ["one", "two", "three"])
    assert error == (f"Create bucket two at {ENDPOINT}: access denied (AccessDenied): the "
                     "credentials lack s3:CreateBucket on bucket 'two'")
    assert result["changed"] and result["created"] == ["one"]
    assert ("HEAD", "three") not in [c[:2] for c in client.calls]


def test_a_network_failure_names_the_bucket():
    reason = sp.CheckError(f"cannot reach the S3 endpoint {ENDPOINT} (connection refused)",
                           sp.UNREACHABLE)
    client = ScriptedClient({("HEAD", "ckpt", ()): [reason]})
    _result, error = s3_bucket.ensure_buckets(client, ["ckpt"])
    assert error == (f"Look for bucket ckpt at {ENDPOINT}: cannot reach the S3 endpoint "
                     f"{ENDPOINT} (connection refused)")


def test_outside_us_east_1_the_bucket_names_its_region():
    client = ScriptedClient({("HEAD", "eu", ()): [MISSING], ("PUT", "eu", ()): [OK]})
    client.region = "eu-west-1"
    s3_bucket.ensure_buckets(client, ["eu"])
    assert client.calls[-1][3] == (
        b'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>")


def test_the_client_signs_with_the_given_keys_for_the_endpoint():
    client = s3_bucket.client_for(dict(PARAMS, endpoint="https://minio.lab:9000/",
                                       region="eu-west-1", ca_file="/etc/ca.pem"))
    assert client.endpoint == "https://minio.lab:9000" and client.region == "eu-west-1"
    assert client.settings.ca_bundle == "/etc/ca.pem"
    assert (client.settings.credentials.access_key, client.settings.credentials.secret_key) == (
        "rlops", "secret-value")


def test_bad_input_is_refused_before_any_request(run_module, monkeypatch):
    def no_client(params):
        raise AssertionError("no request may be made")

    monkeypatch.setattr(s3_bucket, "client_for", no_client)
    args = {k: v for k, v in PARAMS.items() if v is not None}
    result, failed = run_module(s3_bucket.main, dict(args, names=["ok-one", "NO"]), common={})
    assert failed and result["msg"].startswith("not valid bucket names: 'NO'")
    assert result["created"] == [] and result["changed"] is False


def test_main_reports_check_mode_and_diff(run_module, monkeypatch):
    client = ScriptedClient({("HEAD", "have", ()): [OK], ("HEAD", "lack", ()): [MISSING]})
    monkeypatch.setattr(s3_bucket, "client_for", lambda params: client)
    args = {k: v for k, v in PARAMS.items() if v is not None}
    result, failed = run_module(s3_bucket.main, dict(args, names=["have", "lack", "have"]),
                                check_mode=True, diff=True, common={})
    assert not failed
    assert (result["changed"], result["created"], result["existing"]) == (True, ["lack"], ["have"])
    assert result["diff"] == {"before": {"buckets": ["have"]},
                              "after": {"buckets": ["have", "lack"]}}
    assert [c[0] for c in client.calls] == ["HEAD", "HEAD"]


class Clock:
    """A fake monotonic clock that sleeping moves on."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def answers(*said):
    script = list(said)
    return lambda params: script.pop(0)


LIVE = dict(PARAMS, health_path="/minio/health/live", health_timeout=5, health_delay=2.0)


def test_wait_live_asks_until_the_health_path_answers_200():
    clock = Clock()
    ask = answers((0, "connection refused"), (503, "HTTP 503"), (200, "HTTP 200"))
    assert s3_bucket.wait_live(LIVE, False, ask, clock=clock, sleep=clock.sleep) == (True, None)
    assert clock.now == 4.0


def test_wait_live_fails_after_the_timeout_with_the_last_answer():
    clock = Clock()
    ask = answers(*[(0, "connection refused")] * 3 + [(503, "HTTP 503")])
    assert s3_bucket.wait_live(LIVE, False, ask, clock=clock, sleep=clock.sleep) == (
        False, "http://127.0.0.1:9000/minio/health/live did not answer 200 within 5 s"
        " (last: HTTP 503)")


def test_check_mode_asks_once_and_a_server_not_live_is_no_error():
    clock = Clock()
    ask = answers((0, "connection refused"))
    assert s3_bucket.wait_live(LIVE, True, ask, clock=clock, sleep=clock.sleep) == (False, None)
    assert clock.now == 0.0


def test_health_gets_the_path_unsigned_and_says_what_answered():
    signed = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            signed.append("Authorization" in self.headers)
            self.send_response(200 if self.path == "/minio/health/live" else 403)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}"
        assert s3_bucket.health(dict(LIVE, endpoint=endpoint)) == (200, "HTTP 200")
        assert s3_bucket.health(dict(LIVE, endpoint=endpoint, health_path="/x")) == (
            403, "HTTP 403")
    finally:
        server.shutdown()
        server.server_close()
    assert signed == [False, False]
    assert s3_bucket.health(dict(LIVE, endpoint=endpoint))[0] == 0


def test_main_in_check_mode_looks_for_no_bucket_on_a_server_not_live(run_module, monkeypatch):
    def no_client(params):
        raise AssertionError("no bucket may be looked for")

    monkeypatch.setattr(s3_bucket, "client_for", no_client)
    monkeypatch.setattr(s3_bucket, "health", lambda params: (0, "connection refused"))
    result, failed = run_module(s3_bucket.main, dict(LIVE, ca_file=None), check_mode=True,
                                common={})
    assert not failed and result["live"] is False and result["created"] == []
    assert result["changed"] is False


def test_main_waits_for_the_server_then_creates_the_bucket(run_module, monkeypatch):
    client = ScriptedClient({("HEAD", "ckpt", ()): [MISSING], ("PUT", "ckpt", ()): [OK]})
    monkeypatch.setattr(s3_bucket, "client_for", lambda params: client)
    monkeypatch.setattr(s3_bucket, "health", lambda params: (200, "HTTP 200"))
    result, failed = run_module(s3_bucket.main, dict(LIVE, ca_file=None), common={})
    assert not failed and result["live"] is True and result["created"] == ["ckpt"]
