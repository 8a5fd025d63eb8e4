"""The collection's standard-library S3 client (module_utils/s3_probe) against real servers
on 127.0.0.1: a moto server that checks credentials and IAM policies, a socket that
accepts connections and never answers, a port nobody listens on, an HTTP server that is
not S3. Then the modules that use it (storage_check, session_preflight) through real
ansible-playbook runs, at -vvv, with a known secret that must appear nowhere.
"""

import contextlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest
from ansible_collections.rlops.fleet.plugins.module_utils import s3_probe as sp
from servers import free_port, http_server, moto_require_auth, moto_server, moto_users

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
BUCKET = "probe-bucket"
URI = f"s3://{BUCKET}/rl"
HOST = "gpu-lab-01"
# moto 5.2.6 authorises a ListObjectsV2 request as the action s3:ListObjectsV2 (AWS has no
# such action: it is s3:ListBucket there), so users that may list get both.
LIST_ACTIONS = ["s3:ListBucket", "s3:ListObjectsV2"]
USERS = {
    "writer": ["s3:*", "sts:AssumeRole"],
    "reader": LIST_ACTIONS + ["s3:GetObject"],            # no s3:PutObject
    "no-list": ["s3:GetObject", "s3:PutObject"],           # no s3:ListBucket
    "no-read": LIST_ACTIONS + ["s3:PutObject"],            # no s3:GetObject
}


def _boto(service, endpoint):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def moto():
    """(endpoint, {user: (key, secret)}): IAM users made while moto accepts anything, then
    authentication switched on (/moto-api/reset-auth), as runtime/tests/conftest.py does."""
    with moto_server() as endpoint:
        _boto("s3", endpoint).create_bucket(Bucket=BUCKET)
        iam = _boto("iam", endpoint)
        keys = moto_users(iam, USERS)
        # A role to take temporary credentials (with a session token) from.
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
        iam.create_role(RoleName="trainer", AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(RoleName="trainer", PolicyName="s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        moto_require_auth(endpoint)
        yield endpoint, keys


def _given(endpoint, key_secret, **extra):
    key, secret = key_secret
    return dict({"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
                 "RLOPS_S3_ENDPOINT_URL": endpoint}, **extra)


def _check(given, uri=URI, write=True, **timeouts):
    bucket, _sep, prefix = uri[len("s3://"):].partition("/")
    return sp.check_storage(uri, bucket, prefix, given, environ=None, write=write,
                            hostname=HOST, **timeouts)


def _refusal(given, uri=URI, write=True, **timeouts):
    with pytest.raises(sp.CheckError) as err:
        _check(given, uri, write, **timeouts)
    return err.value


def _s3_as(endpoint, user):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=user[0], aws_secret_access_key=user[1])


def _probe(endpoint, writer):
    s3 = _s3_as(endpoint, writer)
    try:
        return s3.get_object(Bucket=BUCKET, Key=f"rl/.rlops-check/{HOST}")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None


def test_a_writer_passes_and_the_probe_is_the_runtimes(moto):
    endpoint, keys = moto
    result = _check(_given(endpoint, keys["writer"]))
    assert result["checked"] and result["wrote_probe"]
    assert result["permissions"] == ["s3:ListBucket", "s3:PutObject", "s3:GetObject"]
    assert result["probe_key"] == f"rl/.rlops-check/{HOST}"
    assert (result["endpoint"], result["region"]) == (endpoint, "us-east-1")
    assert _probe(endpoint, keys["writer"]).startswith(b"rlops check 20")
    # A bucket without a prefix: the probe at the bucket's root.
    assert _check(_given(endpoint, keys["writer"]), uri=f"s3://{BUCKET}")["probe_key"] == (
        f".rlops-check/{HOST}")


def test_check_mode_reads_only(moto):
    endpoint, keys = moto
    before = _probe(endpoint, keys["writer"])
    result = _check(_given(endpoint, keys["writer"]), uri=f"s3://{BUCKET}/elsewhere",
                    write=False)
    assert result["checked"] and not result["wrote_probe"]
    assert result["permissions"] == ["s3:ListBucket", "s3:GetObject"]
    listed = _s3_as(endpoint, keys["writer"]).list_objects_v2(Bucket=BUCKET, Prefix="elsewhere/")
    assert listed["KeyCount"] == 0  # nothing written under the prefix
    assert _probe(endpoint, keys["writer"]) == before
    # A read-only credential passes a check-mode check; the real run refuses it.
    assert _check(_given(endpoint, keys["reader"]), write=False)["checked"]


@pytest.mark.parametrize("user, doing, permission", [
    ("no-list", f"listing s3://{BUCKET}/rl/", "s3:ListBucket"),
    ("reader", f"writing .rlops-check/{HOST}", "s3:PutObject"),
    ("no-read", f"reading .rlops-check/{HOST}", "s3:GetObject"),
])
def test_each_missing_permission_is_named(moto, user, doing, permission):
    endpoint, keys = moto
    error = _refusal(_given(endpoint, keys[user]))
    what = "no write permission" if permission == "s3:PutObject" else "access denied"
    assert str(error) == (f"storage {URI}: {doing} failed: {what} (AccessDenied): the "
                          f"credentials lack {permission} on bucket '{BUCKET}'")
    assert error.kind == sp.PERMISSION


def test_check_mode_still_names_a_missing_read_permission(moto):
    endpoint, keys = moto
    error = _refusal(_given(endpoint, keys["no-read"]), write=False)
    assert "the credentials lack s3:GetObject" in str(error)


@pytest.mark.parametrize("which, code", [("unknown key", "InvalidAccessKeyId"),
                                         ("wrong secret", "SignatureDoesNotMatch")])
def test_rejected_credentials(moto, which, code):
    endpoint, keys = moto
    pair = ("AKIAUNKNOWN000000000", "x") if which == "unknown key" else (keys["writer"][0], "no")
    error = _refusal(_given(endpoint, pair))
    assert str(error) == (f"storage {URI}: listing s3://{BUCKET}/rl/ failed: credentials "
                          f"rejected by {endpoint} ({code}): check AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY")
    assert error.kind == sp.CREDENTIALS


def test_missing_bucket(moto):
    endpoint, keys = moto
    error = _refusal(_given(endpoint, keys["writer"]), uri="s3://no-such-bucket/rl")
    assert str(error) == ("storage s3://no-such-bucket/rl: listing s3://no-such-bucket/rl/ "
                          f"failed: bucket 'no-such-bucket' does not exist at {endpoint}")
    assert error.kind == sp.BUCKET


def _temporary(endpoint, writer, name):
    """Temporary credentials (with a session token) of moto's role trainer."""
    sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id=writer[0], aws_secret_access_key=writer[1])
    return sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/trainer",
                           RoleSessionName=name)["Credentials"]


def test_temporary_credentials_with_a_session_token(moto):
    """Credentials of an assumed role (with AWS_SESSION_TOKEN): signed and accepted."""
    endpoint, keys = moto
    temporary = _temporary(endpoint, keys["writer"], "probe")
    given = _given(endpoint, (temporary["AccessKeyId"], temporary["SecretAccessKey"]),
                   AWS_SESSION_TOKEN=temporary["SessionToken"])
    assert _check(given)["checked"]
    # The token is what makes them valid.
    del given["AWS_SESSION_TOKEN"]
    assert _refusal(given).kind == sp.CREDENTIALS


def test_unreachable_endpoint_fails_fast_and_says_so():
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    error = _refusal(_given(endpoint, ("AKIAX", "s")))
    assert time.monotonic() - started < 2
    assert str(error) == (f"storage {URI}: listing s3://{BUCKET}/rl/ failed: cannot reach the "
                          f"S3 endpoint {endpoint} (connection refused)")
    assert error.kind == sp.UNREACHABLE


@contextlib.contextmanager
def silent_server():
    """A socket on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except socket.timeout:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_an_endpoint_that_never_answers_times_out_within_the_bound(scheme):
    """http: the request is sent and nothing comes back; https: the TLS handshake never
    ends. Either way: the endpoint was reached, and the message says it did not answer."""
    with silent_server() as endpoint:
        endpoint = endpoint.replace("http:", f"{scheme}:")
        started = time.monotonic()
        error = _refusal(_given(endpoint, ("AKIAX", "s")), connect_timeout=1, read_timeout=1.5)
        took = time.monotonic() - started
    assert 1.4 < took < 1 + 1.5 + 1, took
    assert str(error) == (f"storage {URI}: listing s3://{BUCKET}/rl/ failed: the S3 endpoint "
                          f"{endpoint} accepted the connection but sent no answer within 1.5 s")
    assert error.kind == sp.NO_ANSWER


@contextlib.contextmanager
def web_server():
    """An HTTP server on 127.0.0.1 that is not S3: a web page for every request."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            body = b"<html><body>MinIO Console</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with http_server(Page) as url:
        yield url


def test_an_endpoint_that_is_not_s3():
    with web_server() as endpoint:
        error = _refusal(_given(endpoint, ("AKIAX", "s")))
    assert str(error) == (f"storage {URI}: listing s3://{BUCKET}/rl/ failed: {endpoint} "
                          "answered HTTP 200 without an S3 listing: is it an S3 endpoint?")


@contextlib.contextmanager
def regional_server(region):
    """A tiny S3 on 127.0.0.1 whose bucket lives in `region`: a request signed for another
    region gets AWS's answer (400 AuthorizationHeaderMalformed naming the region)."""
    objects, seen = {}, []

    class Regional(http.server.BaseHTTPRequestHandler):
        def _answer(self, status, body=b""):
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _signed_for(self):
            scope = self.headers["Authorization"].split("Credential=", 1)[1].split(",", 1)[0]
            seen.append((self.command, scope.split("/")[2]))
            if scope.split("/")[2] == region:
                return True
            self._answer(400, (
                "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region "
                f"'{scope.split('/')[2]}' is wrong; expecting '{region}'</Message>"
                f"<Region>{region}</Region></Error>").encode())
            return False

        def do_GET(self):  # noqa: N802 (http.server's name)
            if not self._signed_for():
                return
            if "list-type=2" in self.path:
                self._answer(200, b"<ListBucketResult></ListBucketResult>")
            else:
                self._answer(200, objects[self.path])

        def do_PUT(self):  # noqa: N802
            if self._signed_for():
                objects[self.path] = self.rfile.read(int(self.headers["Content-Length"]))
                self._answer(200)

    with http_server(Regional) as url:
        yield url, seen


def test_the_buckets_region_is_followed_once():
    with regional_server("eu-west-1") as (endpoint, seen):
        result = _check(_given(endpoint, ("AKIAX", "s")))
    assert result["checked"] and result["region"] == "eu-west-1"
    assert seen == [("GET", "us-east-1"), ("GET", "eu-west-1"), ("PUT", "eu-west-1"),
                    ("GET", "eu-west-1")]


def test_tls_to_a_plain_http_endpoint(moto):
    endpoint, keys = moto
    https = endpoint.replace("http:", "https:")
    error = _refusal(_given(https, keys["writer"]))
    assert f"failed: TLS with the S3 endpoint {https} failed (" in str(error)
    assert error.kind == sp.OTHER


# --- The modules, through ansible-playbook ------------------------------------------------

SECRET_MARK = "known-secret-Zx81"


def _playbook(tmp_path, tasks, check=False, env=None, python=sys.executable):
    play = [{"name": "Storage checks", "hosts": "localhost", "gather_facts": False,
             "tasks": [dict(task, ignore_errors=True) for task in tasks]}]
    path = tmp_path / "play.yml"
    path.write_text(json.dumps(play))
    run_env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", **(env or {})}
    proc = subprocess.run(
        [str(PLAYBOOK), "-vvv", "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={python}", str(path)]
        + (["--check"] if check else []),
        cwd=REPO, env=run_env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    start = proc.stdout.index("{")
    results = [task["hosts"]["localhost"] for play in json.loads(proc.stdout[start:])["plays"]
               for task in play["tasks"]]
    return results, proc.stdout + proc.stderr


def test_modules_check_refuse_and_never_show_a_secret(moto, tmp_path):
    endpoint, keys = moto
    writer = _given(endpoint, keys["writer"])
    wrong = _given(endpoint, (keys["writer"][0], SECRET_MARK))
    reader = _given(endpoint, keys["reader"])
    with silent_server() as silent:
        tasks = [
            {"rlops.fleet.storage_check": {"storage_uri": URI, "storage_credentials": writer}},
            {"rlops.fleet.storage_check": {"storage_uri": URI, "storage_credentials": reader}},
            {"rlops.fleet.storage_check": {"storage_uri": URI, "storage_credentials": wrong}},
            {"rlops.fleet.storage_check": {"storage_uri": URI, "storage_credentials": {
                "RLOPS_S3_ENDPOINT_URL": endpoint}}},
            {"rlops.fleet.storage_check": {"storage_uri": "az://Models/rl"}},
            {"rlops.fleet.storage_check": {
                "storage_uri": URI, "read_timeout": 1, "connect_timeout": 1,
                "storage_credentials": dict(wrong, RLOPS_S3_ENDPOINT_URL=silent)}},
            {"rlops.fleet.session_preflight": {"storage_uri": URI, "storage_credentials": writer}},
            {"rlops.fleet.session_preflight": {"storage_uri": URI, "storage_credentials": wrong}},
            {"rlops.fleet.session_preflight": {
                "storage_uri": URI, "storage_credentials": dict(
                    wrong, RLOPS_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")}},
            {"rlops.fleet.session_preflight": {
                "storage_uri": URI, "storage_check": "controller", "storage_credentials": dict(
                    wrong, RLOPS_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")}},
            # A bad argument, refused by AnsibleModule before the module runs.
            {"rlops.fleet.storage_check": {"storage_uri": URI, "read_timeout": "soon",
                                           "storage_credentials": wrong}},
        ]
        # No credentials anywhere on the controller either.
        env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_PROFILE": "",
               "HOME": str(tmp_path)}
        results, output = _playbook(tmp_path, tasks, env=env)
    (host_ok, host_reader, host_wrong, host_no_keys, host_az, host_silent, ctl_ok, ctl_wrong,
     ctl_unreachable, ctl_must_reach, bad_argument) = results

    assert host_ok["checked"] and host_ok["wrote_probe"] and not host_ok["changed"]
    assert host_ok["permissions"] == ["s3:ListBucket", "s3:PutObject", "s3:GetObject"]
    assert host_reader["failed"] and "the credentials lack s3:PutObject" in host_reader["msg"]
    assert host_wrong["failed"] and "(SignatureDoesNotMatch)" in host_wrong["msg"]
    assert not host_no_keys.get("failed") and not host_no_keys["checked"]
    assert "checked by the runtime" in host_no_keys["reason"]
    assert host_az["failed"] and "is not a valid Azure Blob container name" in host_az["msg"]
    assert host_silent["failed"] and "sent no answer within 1 s" in host_silent["msg"]
    assert ctl_ok["storage_checked"] and ctl_ok["storage_check_reason"] == ""
    assert ctl_wrong["failed"] and "credentials rejected by" in ctl_wrong["msg"]
    assert not ctl_unreachable.get("failed") and not ctl_unreachable["storage_checked"]
    assert "(connection refused); the training host checks storage" in (
        ctl_unreachable["storage_check_reason"])
    assert ctl_must_reach["failed"] and "cannot reach the S3 endpoint" in ctl_must_reach["msg"]
    assert bad_argument["failed"] and "read_timeout" in bad_argument["msg"]
    # -vvv prints every result with its arguments: the secret is masked everywhere.
    assert output.count("VALUE_SPECIFIED_IN_NO_LOG_PARAMETER") + output.count("********") > 0
    assert SECRET_MARK not in output and keys["writer"][1] not in output


def test_modules_in_check_mode_write_nothing(moto, tmp_path):
    endpoint, keys = moto
    writer = _given(endpoint, keys["writer"])
    uri = f"s3://{BUCKET}/check-mode"
    tasks = [{"rlops.fleet.storage_check": {"storage_uri": uri, "storage_credentials": writer}},
             {"rlops.fleet.session_preflight": {"storage_uri": uri, "storage_credentials": writer}}]
    results, _output = _playbook(tmp_path, tasks, check=True)
    host, controller = results
    assert host["checked"] and not host["wrote_probe"]
    assert host["permissions"] == ["s3:ListBucket", "s3:GetObject"]
    assert controller["storage_checked"]
    assert controller["storage_check_permissions"] == ["s3:ListBucket", "s3:GetObject"]
    listed = _s3_as(endpoint, keys["writer"]).list_objects_v2(Bucket=BUCKET, Prefix="check-mode/")
    assert listed["KeyCount"] == 0


def _oldest_python():
    """The oldest Python a training host may have (3.9), where this machine has one."""
    found = sorted(Path.home().glob(".pyenv/versions/3.9.*/bin/python3.9"))
    return str(found[-1]) if found else None


@pytest.mark.skipif(_oldest_python() is None, reason="no Python 3.9 on this machine")
def test_storage_check_runs_on_python_3_9_without_boto3(moto, tmp_path):
    endpoint, keys = moto
    python = _oldest_python()
    probe = subprocess.run([python, "-c", "import boto3"], capture_output=True, check=False)
    assert probe.returncode != 0, "this Python has boto3: the test would prove nothing"
    tasks = [{"rlops.fleet.storage_check": {
        "storage_uri": URI, "storage_credentials": _given(endpoint, keys["writer"])}}]
    (result,), output = _playbook(tmp_path, tasks, python=python)
    assert result["checked"] and result["wrote_probe"], result
    assert f"{python} " in output and "AnsiballZ_storage_check.py" in output  # -vvv: the command


# --- Reading an object (a resumed session's recorded set) ------------------------------------

RECORD = "s1/config/requirements.lock"


def _read(given, environ=None, host_environ=None, key=RECORD):
    return sp.read_storage(URI, BUCKET, "rl", key, given, environ=environ,
                           host_environ=host_environ, home="/nonexistent")


def test_read_gives_the_objects_text_none_when_absent_and_why_when_denied(moto):
    endpoint, keys = moto
    _s3_as(endpoint, keys["writer"]).put_object(Bucket=BUCKET, Key=f"rl/{RECORD}",
                                                Body=b"# requirement: rlops-runtime\nsix==1\n")
    found = _read(_given(endpoint, keys["reader"]))
    assert found["content"] == "# requirement: rlops-runtime\nsix==1\n"
    assert found["credentials_source"] == "storage_credentials"
    assert _read(_given(endpoint, keys["reader"]), key="s2/config/requirements.lock")[
        "content"] is None
    with pytest.raises(sp.CheckError) as err:
        _read(_given(endpoint, keys["no-read"]))
    assert str(err.value).startswith(f"storage {URI}: reading {RECORD} failed: access denied")
    assert "s3:GetObject" in str(err.value) and err.value.kind == sp.PERMISSION


def _fake_imds():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "rlops_fake_imds", REPO / "runtime" / "tests" / "fake_imds.py")
    fake_imds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake_imds)
    return fake_imds.FakeImds()


def test_read_on_a_host_with_an_instance_role_signs_with_its_session_token(moto):
    """The fake IMDS (runtime/tests/fake_imds.py, on 127.0.0.1) hands out temporary
    credentials of moto's STS; moto checks the signature and the session token."""
    endpoint, keys = moto
    temporary = _temporary(endpoint, keys["writer"], "host")
    with _fake_imds() as imds:
        imds.set("iam/security-credentials", "trainer")
        imds.set("iam/security-credentials/trainer", {
            "Code": "Success", "AccessKeyId": temporary["AccessKeyId"],
            "SecretAccessKey": temporary["SecretAccessKey"], "Token": temporary["SessionToken"]})
        found = _read({"RLOPS_S3_ENDPOINT_URL": endpoint},
                      host_environ={"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url})
        assert found["content"].startswith("# requirement: rlops-runtime")
        assert found["credentials_source"] == "the instance role trainer"
        # A wrong token is refused by moto: the token is signed and checked.
        imds.set("iam/security-credentials/trainer", {
            "Code": "Success", "AccessKeyId": temporary["AccessKeyId"],
            "SecretAccessKey": temporary["SecretAccessKey"], "Token": "not-the-token"})
        with pytest.raises(sp.CheckError) as err:
            _read({"RLOPS_S3_ENDPOINT_URL": endpoint},
                  host_environ={"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url})
        assert "(credentials: the instance role trainer)" in str(err.value)


def test_storage_check_reads_in_a_playbook_with_keys_or_the_instance_role(moto, tmp_path):
    """storage_check's read through ansible-playbook at -vvv, in check mode too (it only
    reads), on the oldest host Python when there is one: the text, none, one message, and
    the instance role of the host's IMDS (the module's environment names the fake's)."""
    endpoint, keys = moto
    _s3_as(endpoint, keys["writer"]).put_object(Bucket=BUCKET, Key=f"rl/{RECORD}",
                                                Body=b"# requirement: rlops-runtime\n")
    reader = _given(endpoint, keys["reader"])
    wrong = _given(endpoint, (keys["reader"][0], SECRET_MARK))
    with _fake_imds() as imds:
        imds.set("iam/security-credentials", "trainer")
        imds.set("iam/security-credentials/trainer", {
            "Code": "Success", "AccessKeyId": keys["reader"][0],
            "SecretAccessKey": keys["reader"][1], "Token": ""})
        tasks = [{"rlops.fleet.storage_check": dict(task, storage_uri=URI)} for task in (
            {"storage_credentials": reader, "read": RECORD},
            {"storage_credentials": reader, "read": "s2/config/requirements.lock"},
            {"storage_credentials": wrong, "read": RECORD},
            {"storage_credentials": {"RLOPS_S3_ENDPOINT_URL": endpoint}, "read": RECORD})]
        results, output = _playbook(tmp_path, tasks, check=True,
                                    env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url},
                                    python=_oldest_python() or sys.executable)
    found, absent, refused, role = results
    assert found["content"] == "# requirement: rlops-runtime\n" and not found["changed"]
    assert absent["content"] is None and not absent.get("failed")
    assert refused["failed"] and refused["msg"].startswith(
        f"storage {URI}: reading {RECORD} failed: credentials rejected by")
    assert role["content"] == found["content"], role
    assert role["credentials_source"] == "the instance role trainer"
    assert SECRET_MARK not in output and keys["reader"][1] not in output
