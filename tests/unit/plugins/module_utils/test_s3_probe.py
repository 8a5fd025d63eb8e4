"""s3_probe without a network: Signature V4 against AWS's published values, addressing,
credentials and messages. The client against real servers: tests/integration/moto."""

import errno
import hashlib
import socket
import ssl
from datetime import datetime, timezone

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils import s3_probe as sp

# AWS Signature Version 4 test suite (docs.aws.amazon.com/general/latest/gr/
# signature-v4-test-suite.html, aws-sig-v4-test-suite.zip): every case signs with these.
SUITE_KEY, SUITE_SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_DATE = "20150830T123600Z"


@pytest.mark.parametrize("name, method, query, signature", [
    # <case>/<case>.authz of the suite.
    ("get-vanilla", "GET", [],
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("get-vanilla-query-order-key-case", "GET", [("Param2", "value2"), ("Param1", "value1")],
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    ("post-vanilla", "POST", [],
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
])
def test_signature_v4_test_suite(name, method, query, signature):
    headers = {"Host": "example.amazonaws.com", "X-Amz-Date": SUITE_DATE}
    value = sp.authorization(method, "/", query, headers, sp.EMPTY_SHA256, SUITE_KEY,
                             SUITE_SECRET, "us-east-1", "service", SUITE_DATE)
    assert value == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + signature), name


# Amazon S3 API Reference, "Signature Calculations for the Authorization Header:
# Transferring Payload in a Single Chunk (AWS Signature Version 4)", section "Examples:
# Signature Calculations" (docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html).
S3_DOCS = sp.Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
S3_DOCS_HOST = "examplebucket.s3.amazonaws.com"
S3_DOCS_DATE = "20130524T000000Z"
WELCOME = b"Welcome to Amazon S3."


@pytest.mark.parametrize("name, method, key, query, headers, body, signed, signature", [
    ("GET Object", "GET", "test.txt", [], {"Range": "bytes=0-9"}, b"",
     "host;range;x-amz-content-sha256;x-amz-date",
     "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
    ("PUT Object", "PUT", "test$file.text", [],
     {"Date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY"},
     WELCOME, "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
     "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"),
    ("GET Bucket Lifecycle", "GET", "", [("lifecycle", "")], {}, b"",
     "host;x-amz-content-sha256;x-amz-date",
     "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
    ("Get Bucket (List Objects)", "GET", "", [("max-keys", "2"), ("prefix", "J")], {}, b"",
     "host;x-amz-content-sha256;x-amz-date",
     "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
])
def test_s3_documentation_examples(name, method, key, query, headers, body, signed, signature):
    """The client's own addressing and signing (virtual-hosted style on AWS)."""
    scheme, host, port, path = sp.address("", "us-east-1", "examplebucket", key)
    assert (scheme, port) == ("https", 443)
    assert host == "examplebucket.s3.us-east-1.amazonaws.com"
    sent = sp.sign_s3(method, S3_DOCS_HOST, path, query, S3_DOCS, "us-east-1", S3_DOCS_DATE,
                      hashlib.sha256(body).hexdigest(), headers)
    assert sent["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        f"SignedHeaders={signed}, Signature={signature}"), name
    if name == "PUT Object":  # the documented payload hash and the encoded key
        assert path == "/test%24file.text"
        assert sent["X-Amz-Content-Sha256"] == (
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")


def test_session_token_is_sent_and_signed_as_botocore_signs_it():
    """Temporary credentials: X-Amz-Security-Token is a signed header; the signature is
    the one botocore's S3 signer computes for the same request."""
    botocore_auth = pytest.importorskip("botocore.auth")
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    creds = sp.Credentials("ASIAEXAMPLE", "secret/key+x", "FQoGZXIvYXdzEXAMPLE//token==")
    query = [("list-type", "2"), ("prefix", "rl/"), ("delimiter", "/"), ("max-keys", "1")]
    request = AWSRequest(method="GET", url="http://127.0.0.1:9000/bucket?"
                         + sp.canonical_query(query))
    request.headers["X-Amz-Content-SHA256"] = sp.EMPTY_SHA256
    botocore_auth.S3SigV4Auth(BotoCredentials(creds.access_key, creds.secret_key, creds.token),
                              "s3", "eu-west-1").add_auth(request)
    # botocore signs at the current time: sign ours at the same second.
    sent = sp.sign_s3("GET", "127.0.0.1:9000", "/bucket", query, creds, "eu-west-1",
                      request.headers["X-Amz-Date"])
    assert sent["X-Amz-Security-Token"] == creds.token
    assert "x-amz-security-token" in sent["Authorization"].split("SignedHeaders=")[1]
    assert sent["Authorization"] == request.headers["Authorization"]


def test_uri_encoding_and_query_order():
    assert sp.uri_encode("a b/c~d_e.f-g$", keep_slash=True) == "a%20b/c~d_e.f-g%24"
    assert sp.uri_encode("rl/runs/") == "rl%2Fruns%2F"
    assert sp.canonical_query([("prefix", "a/b"), ("delimiter", "/"), ("list-type", "2")]) == (
        "delimiter=%2F&list-type=2&prefix=a%2Fb")


@pytest.mark.parametrize("endpoint, region, bucket, key, expected", [
    ("http://127.0.0.1:9000", "us-east-1", "rl", ".rlops-check/h",
     ("http", "127.0.0.1", 9000, "/rl/.rlops-check/h")),
    ("http://127.0.0.1:9000/", "us-east-1", "rl", "", ("http", "127.0.0.1", 9000, "/rl")),
    ("https://minio.lab/s3", "us-east-1", "rl", "a b", ("https", "minio.lab", 443, "/s3/rl/a%20b")),
    ("", "eu-west-1", "my-bucket", "k",
     ("https", "my-bucket.s3.eu-west-1.amazonaws.com", 443, "/k")),
    # Dots do not fit the TLS certificate of a virtual host: path-style.
    ("", "eu-west-1", "my.bucket", "k",
     ("https", "s3.eu-west-1.amazonaws.com", 443, "/my.bucket/k")),
    ("", "cn-north-1", "b-1", "", ("https", "b-1.s3.cn-north-1.amazonaws.com.cn", 443, "/")),
])
def test_addressing(endpoint, region, bucket, key, expected):
    assert sp.address(endpoint, region, bucket, key) == expected


def test_host_header_names_the_port_only_when_it_is_not_the_default():
    assert sp.host_header("http", "127.0.0.1", 80) == "127.0.0.1"
    assert sp.host_header("https", "s3.amazonaws.com", 443) == "s3.amazonaws.com"
    assert sp.host_header("http", "127.0.0.1", 9000) == "127.0.0.1:9000"
    assert sp.host_header("http", "::1", 9000) == "[::1]:9000"


def _files(**content):
    return content.get


def test_explicit_keys_win_and_name_their_region_and_endpoint():
    given = {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK", "AWS_SESSION_TOKEN": "T",
             "AWS_DEFAULT_REGION": "eu-west-1", "RLOPS_S3_ENDPOINT_URL": "http://127.0.0.1:9/"}
    controller = {"AWS_ACCESS_KEY_ID": "other", "AWS_SECRET_ACCESS_KEY": "x"}
    settings = sp.resolve_settings(given, controller)
    assert settings.credentials == sp.Credentials("AK", "SK", "T", "storage_credentials")
    assert (settings.endpoint, settings.region) == ("http://127.0.0.1:9", "eu-west-1")


@pytest.mark.parametrize("given, fragment", [
    ({"AWS_ACCESS_KEY_ID": "AK"}, "set AWS_ACCESS_KEY_ID but not AWS_SECRET_ACCESS_KEY"),
    ({"AWS_SECRET_ACCESS_KEY": "SK"}, "set AWS_SECRET_ACCESS_KEY but not AWS_ACCESS_KEY_ID"),
])
def test_half_a_key_pair_is_bad_input(given, fragment):
    with pytest.raises(sp.CheckError) as err:
        sp.resolve_settings(given)
    assert fragment in str(err.value) and err.value.kind == sp.BAD_INPUT
    assert "SK" not in str(err.value) and "AK" not in str(err.value).replace("AWS_", "")


def test_on_a_host_without_keys_the_runtime_checks():
    settings = sp.resolve_settings({"RLOPS_S3_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert settings.credentials is None and "checked by the runtime" in settings.missing
    assert settings.region == "us-east-1"


def test_controller_chain_environment_then_profiles():
    env = {"AWS_ACCESS_KEY_ID": "EK", "AWS_SECRET_ACCESS_KEY": "ES", "AWS_REGION": "ap-south-1",
           "HOME": "/home/u"}
    settings = sp.resolve_settings({}, env, read_file=_files())
    assert settings.credentials == sp.Credentials("EK", "ES", "", "the controller's environment")
    assert settings.region == "ap-south-1"

    files = _files(**{
        "/home/u/.aws/credentials": (
            "[default]\naws_access_key_id = DK\naws_secret_access_key = DS\n"
            "[dev]\naws_access_key_id = PK\naws_secret_access_key = PS\n"
            "aws_session_token = PT\n"),
        "/home/u/.aws/config": (
            "[profile dev]\nregion = eu-north-1\n[profile sso]\nsso_start_url = x\n"),
    })
    default = sp.resolve_settings({}, {"HOME": "/home/u"}, read_file=files)
    assert (default.credentials.access_key, default.region) == ("DK", "us-east-1")
    assert "profile 'default' in /home/u/.aws/credentials" in default.credentials.source
    dev = sp.resolve_settings({}, {"HOME": "/home/u", "AWS_PROFILE": "dev"}, read_file=files)
    assert (dev.credentials.token, dev.region) == ("PT", "eu-north-1")
    # A profile named in the storage credentials, looked up on the controller.
    named = sp.resolve_settings({"AWS_PROFILE": "dev"}, {"HOME": "/home/u"}, read_file=files)
    assert named.credentials.access_key == "PK"
    sso = sp.resolve_settings({"AWS_PROFILE": "sso"}, {"HOME": "/home/u"}, read_file=files)
    assert sso.credentials is None
    assert "profile 'sso' (AWS_PROFILE) has no access key" in sso.missing
    nothing = sp.resolve_settings({}, {"HOME": "/nowhere"}, read_file=_files())
    assert nothing.credentials is None and "no AWS access key" in nothing.missing


def test_shared_file_locations_come_from_the_storage_credentials_first():
    files = _files(**{"/etc/c": "[default]\naws_access_key_id = K\naws_secret_access_key = S\n"})
    settings = sp.resolve_settings({"AWS_SHARED_CREDENTIALS_FILE": "/etc/c"}, {"HOME": "/h"},
                                   read_file=files)
    assert settings.credentials.access_key == "K"


def _answer(status, body=b"", **headers):
    response = sp.Response(status, headers, body)
    response.error = sp.parse_error(body)
    return response


def _error(code, message="m", region=""):
    extra = f"<Region>{region}</Region>" if region else ""
    return (f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{message}</Message>"
            f"{extra}</Error>").encode()


@pytest.mark.parametrize("response, permission, kind, why", [
    (_answer(403, _error("InvalidAccessKeyId")), sp.LIST, sp.CREDENTIALS,
     "credentials rejected by E (InvalidAccessKeyId): check AWS_ACCESS_KEY_ID and "
     "AWS_SECRET_ACCESS_KEY"),
    (_answer(403, _error("SignatureDoesNotMatch")), sp.WRITE, sp.CREDENTIALS,
     "credentials rejected by E (SignatureDoesNotMatch)"),
    (_answer(404, _error("NoSuchBucket")), sp.LIST, sp.BUCKET, "bucket 'b' does not exist at E"),
    (_answer(403, _error("AccessDenied")), sp.LIST, sp.PERMISSION,
     "access denied (AccessDenied): the credentials lack s3:ListBucket on bucket 'b'"),
    (_answer(403, _error("AccessDenied")), sp.WRITE, sp.PERMISSION,
     "no write permission (AccessDenied): the credentials lack s3:PutObject on bucket 'b'"),
    (_answer(403), sp.READ, sp.PERMISSION,
     "access denied (403): the credentials lack s3:GetObject on bucket 'b'"),
    (_answer(400, _error("AuthorizationHeaderMalformed", region="eu-west-1")), sp.LIST,
     sp.REGION, "bucket 'b' is in another region (eu-west-1)"),
    (_answer(500, _error("InternalError", "We encountered an internal error")), sp.LIST,
     sp.OTHER, "E answered HTTP 500 InternalError: We encountered an internal error"),
    (_answer(502, b"<html><body>Bad   gateway</body></html>"), sp.LIST, sp.OTHER,
     "E answered HTTP 502: <html><body>Bad gateway</body></html>"),
])
def test_failures_say_what_and_why(response, permission, kind, why):
    assert sp.failure(response, "b", "E", permission)[0] == kind
    assert why in sp.failure(response, "b", "E", permission)[1]


def test_region_hint_from_a_header_or_an_error_document():
    assert sp.region_hint(_answer(301, b"", **{"x-amz-bucket-region": "eu-west-1"})) == "eu-west-1"
    malformed = _answer(400, _error("AuthorizationHeaderMalformed", region="ap-1"))
    assert sp.region_hint(malformed) == "ap-1"
    assert sp.region_hint(_answer(403, _error("AccessDenied"))) == ""
    assert sp.region_hint(_answer(200, b"", **{"x-amz-bucket-region": "eu-west-1"})) == ""


def test_probe_key_matches_the_runtime():
    assert sp.probe_key("gpu-lab-01") == ".rlops-check/gpu-lab-01"
    assert sp.probe_key("a b/c") == ".rlops-check/a-b-c"
    assert sp.probe_key("...") == ".rlops-check/host"


def test_secret_values_are_the_values_of_secret_keys():
    given = {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK", "AWS_SESSION_TOKEN": "T",
             "RLOPS_S3_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_DEFAULT_REGION": "us-east-1",
             "AZURE_STORAGE_CONNECTION_STRING": "cs", "EMPTY_SECRET": "",
             "AZURE_STORAGE_KEY": "ak", "AZURE_STORAGE_SAS_TOKEN": "sas",
             "AZURE_STORAGE_ACCOUNT": "acct1"}
    assert sp.secret_values(given) == {"AK", "SK", "T", "cs", "ak", "sas"}
    assert sp.secret_values("AWS_SECRET_ACCESS_KEY=x") == {"AWS_SECRET_ACCESS_KEY=x"}


@pytest.mark.parametrize("exc, unreachable", [
    (socket.gaierror(-2, "Name or service not known"), True),
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), True),
    (OSError(errno.EHOSTUNREACH, "No route to host"), True),
    (OSError(errno.ENETUNREACH, "Network is unreachable"), True),
    (socket.timeout("timed out"), True),
    (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), False),
    (ssl.SSLError(1, "wrong version number"), False),
])
def test_what_counts_as_unreachable(exc, unreachable):
    """Only failures to connect: the controller may leave those endpoints to the host."""
    assert sp.connect_failure(exc) is unreachable


def test_amz_date_is_utc():
    assert sp.amz_date(datetime(2013, 5, 24, tzinfo=timezone.utc)) == "20130524T000000Z"


# --- Instance role credentials (IMDSv2), against the runtime's fake IMDS on 127.0.0.1 --------


def _fake_imds():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[4] / "runtime" / "tests" / "fake_imds.py"
    spec = importlib.util.spec_from_file_location("rlops_fake_imds", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FakeImds()


ROLE_KEYS = {"Code": "Success", "AccessKeyId": "ASIAROLEKEY", "SecretAccessKey": "role-secret",
             "Token": "role-token", "Expiration": "2026-12-07T00:00:00Z"}


@pytest.fixture()
def imds():
    with _fake_imds() as fake:
        yield fake


def test_imds_endpoint_as_botocore_names_it():
    assert sp.imds_endpoint({}) == "http://169.254.169.254"
    assert sp.imds_endpoint({"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9/"}) == (
        "http://127.0.0.1:9")
    assert sp.imds_endpoint({"AWS_EC2_METADATA_DISABLED": "True"}) == ""


def test_instance_role_credentials_take_a_token_then_the_roles_keys(imds):
    imds.set("iam/security-credentials", "trainer\n")
    imds.set("iam/security-credentials/trainer", ROLE_KEYS)
    found = sp.instance_role_credentials(imds.url)
    assert found == sp.Credentials("ASIAROLEKEY", "role-secret", "role-token",
                                   "the instance role trainer")
    assert imds.count("PUT", "/latest/api/token") == 1
    # Every metadata request carried the token (the fake answers 401 without one).
    assert [status for _m, path, status in imds.requests if "meta-data" in path] == [200, 200]


@pytest.mark.parametrize("setup, fragment", [
    (lambda fake: None, "answered HTTP 404 to GET /latest/meta-data/iam/security-credentials/"),
    (lambda fake: (fake.set("iam/security-credentials", "trainer"),
                   fake.set("iam/security-credentials/trainer", {"Code": "Expired"})),
     "the instance role trainer gave no credentials (Expired)"),
])
def test_no_instance_role_says_why(imds, setup, fragment):
    setup(imds)
    with pytest.raises(sp.CheckError) as err:
        sp.instance_role_credentials(imds.url)
    assert fragment in str(err.value) and err.value.kind == sp.NO_CREDENTIALS


def test_an_imds_that_does_not_answer_is_no_credentials_within_the_timeout(imds):
    imds.drop = True
    with pytest.raises(sp.CheckError) as err:
        sp.instance_role_credentials(imds.url, timeout=0.5)
    assert "does not answer" in str(err.value) and err.value.kind == sp.NO_CREDENTIALS


def test_read_storage_on_a_host_without_keys_asks_the_instance_role(imds, monkeypatch):
    imds.set("iam/security-credentials", "trainer")
    imds.set("iam/security-credentials/trainer", ROLE_KEYS)
    seen = []

    def read(client, uri, bucket, prefix, key):
        seen.append(client.settings.credentials)
        return "set\n"

    monkeypatch.setattr(sp, "read_object", read)
    given = {"RLOPS_S3_ENDPOINT_URL": "http://127.0.0.1:1"}
    found = sp.read_storage("s3://b/p", "b", "p", "s/config/requirements.lock", given,
                            host_environ={"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url})
    assert found["content"] == "set\n" and seen[0].token == "role-token"
    assert found["credentials_source"] == "the instance role trainer"
    # Explicit keys win: the metadata service is not asked.
    asked = len(imds.requests)
    sp.read_storage("s3://b/p", "b", "p", "k", dict(given, AWS_ACCESS_KEY_ID="K",
                                                    AWS_SECRET_ACCESS_KEY="S"),
                    host_environ={"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url})
    assert len(imds.requests) == asked and seen[1].source == "storage_credentials"
    # Disabled, or on the controller: no instance role, one message.
    for environ, host_environ in (({"HOME": "/nonexistent"}, None),
                                  (None, {"AWS_EC2_METADATA_DISABLED": "true"})):
        with pytest.raises(sp.CheckError) as err:
            sp.read_storage("s3://b/p", "b", "p", "k", given, environ=environ,
                            home="/nonexistent", host_environ=host_environ)
        assert err.value.kind == sp.NO_CREDENTIALS
        assert str(err.value).startswith("storage s3://b/p: no credentials to read k with: ")
    assert len(imds.requests) == asked
