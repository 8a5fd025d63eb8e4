# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""A small S3 client on the Python standard library, enough to check that storage works.

It does what the runtime's storage check does (rlops_runtime.storage.s3 `check()`): reach
the bucket and list under the prefix (s3:ListBucket), write the probe object
`<prefix>/.rlops-check/<host>` (s3:PutObject) and read it back (s3:GetObject), and says in
the runtime's words what failed and why. It runs where boto3 is not installed: on the
controller before anything changes, and on a training host's system Python (3.9 and newer)
before the runtime is installed.

Requests are signed with AWS Signature Version 4 (AWS, "Authenticating Requests (AWS
Signature Version 4)"), path-style for an S3-compatible endpoint and virtual-hosted style
for AWS itself, as boto3 addresses them in the runtime. Every request gets `connect_timeout`
seconds to connect and then `read_timeout` seconds in all for its whole answer, so that an
endpoint that accepts connections and never answers is reported within a known time.

Pure functions (signing, addressing, credentials, messages) are tested without a network;
`S3Client` is the thin I/O shell.
"""

from __future__ import annotations

import configparser
import errno
import hashlib
import hmac
import http.client
import json
import os
import re
import socket
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
DEFAULT_REGION = "us-east-1"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
CHECK_FOLDER = ".rlops-check"

# The IAM permission each request of the check needs: a denial names it (as the runtime).
LIST, WRITE, READ = "s3:ListBucket", "s3:PutObject", "s3:GetObject"
CREATE_BUCKET = "s3:CreateBucket"

# Kinds of failure. UNREACHABLE: no connection was made (refused, unknown name, no route, no
# connection within connect_timeout); the controller may leave such an endpoint to the host.
UNREACHABLE = "unreachable"
NO_ANSWER = "no_answer"
CREDENTIALS = "credentials"
NO_CREDENTIALS = "no_credentials"
BUCKET = "bucket"
PERMISSION = "permission"
REGION = "region"
MISMATCH = "mismatch"
BAD_INPUT = "bad_input"
OTHER = "other"

# Error codes as the runtime (rlops_runtime.storage.s3) reads them.
CREDENTIAL_CODES = frozenset((
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId", "InvalidToken",
    "ExpiredToken", "TokenRefreshRequired",
))
DENIED_CODES = frozenset(("403", "AccessDenied", "AllAccessDisabled"))
NOT_FOUND_CODES = frozenset(("404", "NoSuchKey", "NotFound"))
# Answers that name the bucket's region when a request was signed for another one.
REGION_CODES = frozenset((
    "AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException"))
RETRY_STATUS = frozenset((500, 502, 503, 504))

# Keys of storage credentials whose values are secrets: masked in every module result.
SECRET_KEY_RE = re.compile(
    r"(SECRET|TOKEN|PASSWORD|ACCESS_KEY|ACCOUNT_KEY|CONNECTION_STRING|SAS|STORAGE_KEY)",
    re.IGNORECASE)

_UNREACHABLE_ERRNOS = frozenset((
    errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN,
    errno.ENETDOWN, errno.EADDRNOTAVAIL,
))
_DNS_COMPATIBLE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


class CheckError(Exception):
    """One message saying what failed and why; `kind` tells the caller what to do with it."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Credentials:
    access_key: str
    secret_key: str
    token: str = ""
    # Where they came from, for messages: "storage_credentials", "the controller's
    # environment", "profile 'dev' in ~/.aws/credentials".
    source: str = "storage_credentials"


@dataclass
class Settings:
    """Where and how to reach storage, from the storage credentials (an environment)."""

    endpoint: str  # "" for AWS itself
    region: str
    credentials: Credentials | None
    # Why there are no credentials to check with ("" when there are).
    missing: str = ""
    ca_bundle: str = ""
    region_source: str = "default"


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes
    error: dict = field(default_factory=dict)


# --- Signature Version 4 (pure) ----------------------------------------------------------


def uri_encode(value: str, keep_slash: bool = False) -> str:
    """AWS UriEncode: every byte but A-Z a-z 0-9 - _ . ~ (and '/' in paths) as %XY."""
    return quote(value, safe="/" if keep_slash else "")


def canonical_query(query) -> str:
    """`query`: (name, value) pairs, not encoded. Sorted by encoded name, then value."""
    pairs = sorted((uri_encode(str(k)), uri_encode(str(v))) for k, v in query)
    return "&".join("%s=%s" % pair for pair in pairs)


def _canonical_headers(headers: dict) -> tuple:
    rows = sorted(
        (name.lower().strip(), " ".join(str(value).strip().split()))
        for name, value in headers.items())
    canonical = "".join("%s:%s\n" % row for row in rows)
    return canonical, ";".join(name for name, _value in rows)


def canonical_request(method: str, path: str, query, headers: dict, payload_hash: str) -> tuple:
    """(canonical request, signed header names). `path` is already URI-encoded; every
    header given is signed."""
    canonical_headers, signed = _canonical_headers(headers)
    text = "\n".join((method, path or "/", canonical_query(query), canonical_headers, signed,
                      payload_hash))
    return text, signed


def signing_key(secret_key: str, day: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret_key).encode("utf-8")
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def authorization(method: str, path: str, query, headers: dict, payload_hash: str,
                  access_key: str, secret_key: str, region: str, service: str,
                  amz_date: str) -> str:
    """The Authorization header of a request whose `headers` (Host and X-Amz-Date among
    them) are all signed."""
    creq, signed = canonical_request(method, path, query, headers, payload_hash)
    day = amz_date[:8]
    scope = "%s/%s/%s/aws4_request" % (day, region, service)
    to_sign = "\n".join(("AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(creq.encode("utf-8")).hexdigest()))
    signature = hmac.new(signing_key(secret_key, day, region, service), to_sign.encode("utf-8"),
                         hashlib.sha256).hexdigest()
    return "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        access_key, scope, signed, signature)


def amz_date(now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def sign_s3(method: str, host: str, path: str, query, credentials: Credentials, region: str,
            when: str, payload_hash: str = EMPTY_SHA256, headers: dict | None = None) -> dict:
    """The headers to send with an S3 request (all signed): Host, X-Amz-Date,
    X-Amz-Content-Sha256 (the payload is always signed), X-Amz-Security-Token for
    temporary credentials, Authorization."""
    sent = dict(headers or {})
    sent.update({"Host": host, "X-Amz-Date": when, "X-Amz-Content-Sha256": payload_hash})
    if credentials.token:
        sent["X-Amz-Security-Token"] = credentials.token
    sent["Authorization"] = authorization(method, path, query, sent, payload_hash,
                                          credentials.access_key, credentials.secret_key,
                                          region, "s3", when)
    return sent


# --- Addressing (pure) ---------------------------------------------------------------------


def aws_endpoint(region: str) -> str:
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return "https://s3.%s.%s" % (region, suffix)


def address(endpoint: str, region: str, bucket: str, key: str = "") -> tuple:
    """(scheme, host, port, path) of a request on `bucket` (and `key`).

    An S3-compatible endpoint (MinIO, moto, ...) is addressed path-style under its own
    path, as the runtime's boto3 client does with an endpoint. AWS itself is addressed
    virtual-hosted style when the bucket name allows it (no dots: TLS names), else
    path-style.
    """
    base = endpoint or aws_endpoint(region)
    parts = urlsplit(base)
    scheme = parts.scheme or "https"
    port = parts.port or (443 if scheme == "https" else 80)
    host = parts.hostname or ""
    root = parts.path.rstrip("/")
    encoded_key = uri_encode(key, keep_slash=True)
    if not endpoint and _DNS_COMPATIBLE_RE.match(bucket):
        return scheme, "%s.%s" % (bucket, host), port, "/" + encoded_key
    return scheme, host, port, "%s/%s/%s" % (root, bucket, encoded_key) if key else (
        "%s/%s" % (root, bucket))


def host_header(scheme: str, host: str, port: int) -> str:
    default = 443 if scheme == "https" else 80
    name = "[%s]" % host if ":" in host else host
    return name if port == default else "%s:%d" % (name, port)


def display_endpoint(endpoint: str, region: str) -> str:
    return endpoint or aws_endpoint(region)


# --- Settings and credentials (pure; files read through `read_file`) -----------------------


def secret_values(credentials) -> set:
    """The values of `credentials` (an environment mapping) that are secrets."""
    if not isinstance(credentials, dict):
        return {str(credentials)} if credentials else set()
    return {str(value) for key, value in credentials.items()
            if value and SECRET_KEY_RE.search(str(key))}


def _read_text(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def _profile_section(text: str | None, section: str) -> dict:
    if not text:
        return {}
    parser = configparser.RawConfigParser()
    try:
        parser.read_string(text)
    except configparser.Error:
        return {}
    return dict(parser.items(section)) if parser.has_section(section) else {}


def profile_values(profile: str, env: dict, home: str, read_file=_read_text) -> tuple:
    """(values, where) of an AWS profile from the shared credentials and config files.

    The credentials file's `[name]` wins over the config file's `[profile name]`
    (`[default]` for the default profile), as in the AWS CLI and boto3.
    """
    cred_path = env.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(home, ".aws", "credentials")
    config_path = env.get("AWS_CONFIG_FILE") or os.path.join(home, ".aws", "config")
    config_section = profile if profile == "default" else "profile %s" % profile
    values = _profile_section(read_file(config_path), config_section)
    from_credentials = _profile_section(read_file(cred_path), profile)
    values.update(from_credentials)
    where = cred_path if from_credentials else config_path
    return values, where


def _static_keys(values: dict, source: str) -> Credentials | None:
    if values.get("aws_access_key_id") and values.get("aws_secret_access_key"):
        return Credentials(values["aws_access_key_id"], values["aws_secret_access_key"],
                           values.get("aws_session_token", ""), source)
    return None


def resolve_settings(given: dict, environ: dict | None = None, home: str = "",
                     read_file=_read_text) -> Settings:
    """Endpoint, region and credentials from the storage credentials `given` (the
    environment the runtime gets on the host).

    Explicit keys in `given` come first. Without them, a profile named in `given`
    (AWS_PROFILE) is looked up in the shared files; then, when `environ` is given (the
    controller's own environment), its keys and its profile or the default profile. What
    the standard library cannot do (instance roles, SSO, assumed roles, credential
    processes) leaves `credentials` None with the reason in `missing`.

    Raises CheckError (BAD_INPUT) for half a key pair.
    """
    given = {str(k): "" if v is None else str(v) for k, v in (given or {}).items()}
    env = environ if environ is not None else {}
    files_env = dict(env)
    files_env.update({k: v for k, v in given.items()
                      if k in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE") and v})
    home = home or env.get("HOME") or os.path.expanduser("~")
    endpoint = (given.get("RLOPS_S3_ENDPOINT_URL") or given.get("AWS_ENDPOINT_URL")
                or given.get("AWS_ENDPOINT_URL_S3") or "").rstrip("/")
    region = given.get("AWS_REGION") or given.get("AWS_DEFAULT_REGION") or ""
    region_source = "storage_credentials" if region else "default"
    settings = Settings(endpoint=endpoint, region=region, credentials=None,
                        ca_bundle=given.get("AWS_CA_BUNDLE", ""), region_source=region_source)

    key, secret = given.get("AWS_ACCESS_KEY_ID", ""), given.get("AWS_SECRET_ACCESS_KEY", "")
    if bool(key) != bool(secret):
        have, lack = (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if key
                      else ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"))
        raise CheckError("storage credentials set %s but not %s: give both or neither"
                         % (have, lack), BAD_INPUT)
    where = "on the controller" if environ is not None else "on this host"
    if key:
        settings.credentials = Credentials(key, secret, given.get("AWS_SESSION_TOKEN", ""))
    elif given.get("AWS_PROFILE"):
        profile = given["AWS_PROFILE"]
        values, path = profile_values(profile, files_env, home, read_file)
        settings.credentials = _static_keys(
            values, "profile '%s' in %s %s" % (profile, path, where))
        if settings.credentials is None:
            settings.missing = (
                "profile '%s' (AWS_PROFILE) has no access key in %s's shared AWS files %s"
                % (profile, "the controller" if environ is not None else "this host", where))
        elif not region and values.get("region"):
            settings.region, settings.region_source = values["region"], "profile"
    elif environ is not None:
        if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
            settings.credentials = Credentials(
                env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"],
                env.get("AWS_SESSION_TOKEN", ""), "the controller's environment")
        else:
            profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
            values, path = profile_values(profile, files_env, home, read_file)
            settings.credentials = _static_keys(
                values, "profile '%s' in %s on the controller" % (profile, path))
            if settings.credentials is not None and not region and values.get("region"):
                settings.region, settings.region_source = values["region"], "profile"
        if settings.credentials is not None and not region:
            env_region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
            if env_region:
                settings.region, settings.region_source = env_region, "environment"
        if settings.credentials is None:
            settings.missing = (
                "no AWS access key in the storage credentials, nor in the controller's "
                "environment or shared AWS files (an instance role or SSO cannot be used "
                "from here)")
    else:
        settings.missing = (
            "no AWS access key in the storage credentials: the host's own credentials "
            "(an instance role, a profile of the job's user) are checked by the runtime")
    settings.region = settings.region or DEFAULT_REGION
    return settings


# --- Answers and messages (pure) -----------------------------------------------------------


def parse_error(body: bytes) -> dict:
    """Code, Message, Region and Endpoint of an S3 error document ({} if it is not one)."""
    try:
        root = ElementTree.fromstring(body)
    except (ElementTree.ParseError, ValueError):
        return {}
    found = {}
    for child in root:
        name = child.tag.rsplit("}", 1)[-1]
        if name in ("Code", "Message", "Region", "Endpoint") and child.text:
            found[name] = child.text.strip()
    return found


def region_hint(response: Response) -> str:
    """The bucket's region when the answer says the request went to the wrong one."""
    hinted = response.headers.get("x-amz-bucket-region", "")
    named = hinted or response.error.get("Code") in REGION_CODES
    if response.status in (301, 307, 400) and named:
        return hinted or response.error.get("Region", "")
    return ""


def failure(response: Response, bucket: str, endpoint: str, permission: str,
            credential_names: str = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            region_name: str = "AWS_DEFAULT_REGION") -> tuple:
    """(kind, why) of an S3 error answer, in the runtime's words; a module names its own
    options for the credentials and the region."""
    code = response.error.get("Code") or str(response.status)
    if code in CREDENTIAL_CODES:
        return CREDENTIALS, ("credentials rejected by %s (%s): check %s"
                             % (endpoint, code, credential_names))
    if code == "NoSuchBucket":
        return BUCKET, "bucket '%s' does not exist at %s" % (bucket, endpoint)
    if code in DENIED_CODES:
        what = "no write permission" if permission == WRITE else "access denied"
        return PERMISSION, "%s (%s): the credentials lack %s on bucket '%s'" % (
            what, code, permission, bucket)
    if code in REGION_CODES:
        region = response.headers.get("x-amz-bucket-region") or response.error.get("Region", "")
        return REGION, "bucket '%s' is in another region%s (%s): set %s" % (
            bucket, " (%s)" % region if region else "", code, region_name)
    message = response.error.get("Message", "")
    if not response.error:
        text = response.body[:200].decode("utf-8", "replace").strip()
        message = " ".join(text.split())
    return OTHER, "%s answered HTTP %d%s%s" % (
        endpoint, response.status, " %s" % response.error["Code"] if response.error else "",
        ": %s" % message if message else "")


def probe_key(hostname: str) -> str:
    """The probe a host writes: one per host (rlops_runtime.storage.base.probe_key)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", hostname).strip(".-") or "host"
    return "%s/%s" % (CHECK_FOLDER, name)


def dir_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return prefix + "/" if prefix else ""


def _network_reason(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return "cannot resolve the host name: %s" % (exc.strerror or exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if exc.strerror[:1].isupper() else exc.strerror
    return str(exc) or type(exc).__name__


def connect_failure(exc: BaseException) -> bool:
    """True when connecting failed in a way that says nothing about the endpoint itself
    (refused, unknown name, no route, no connection in time)."""
    if isinstance(exc, (socket.gaierror, ConnectionRefusedError, socket.timeout)):
        return True
    return isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError) and (
        exc.errno in _UNREACHABLE_ERRNOS)


# --- The client (I/O) ---------------------------------------------------------------------


class S3Client:
    """Signed S3 requests with a bounded time each; every failure is a CheckError."""

    def __init__(self, settings: Settings, connect_timeout: float = CONNECT_TIMEOUT,
                 read_timeout: float = READ_TIMEOUT, clock=time.monotonic,
                 now=lambda: datetime.now(timezone.utc)) -> None:
        if settings.credentials is None:
            raise ValueError("S3Client needs credentials")
        self.settings = settings
        self.region = settings.region
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self._clock = clock
        self._now = now

    @property
    def endpoint(self) -> str:
        return display_endpoint(self.settings.endpoint, self.region)

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.ca_bundle or None)

    def request(self, method: str, bucket: str, key: str = "", query=(),
                body: bytes = b"") -> Response:
        """One request; a region redirect (AWS) is followed once, a 5xx retried once."""
        response = self._send(method, bucket, key, query, body)
        hinted = region_hint(response)
        if hinted and hinted != self.region:
            self.region = hinted
            response = self._send(method, bucket, key, query, body)
        if response.status in RETRY_STATUS:
            time.sleep(0.5)
            response = self._send(method, bucket, key, query, body)
        return response

    def _send(self, method, bucket, key, query, body) -> Response:
        scheme, host, port, path = address(self.settings.endpoint, self.region, bucket, key)
        payload_hash = hashlib.sha256(body).hexdigest()
        headers = sign_s3(method, host_header(scheme, host, port), path, query,
                          self.settings.credentials, self.region, amz_date(self._now()),
                          payload_hash)
        target = path + ("?" + canonical_query(query) if query else "")
        endpoint = self.endpoint
        connection = http.client.HTTPConnection(host, port, timeout=self.connect_timeout)
        try:
            try:
                # TCP only: a TLS handshake that never ends is an endpoint that does not
                # answer, not an unreachable one.
                http.client.HTTPConnection.connect(connection)
            except (OSError, http.client.HTTPException) as exc:
                if connect_failure(exc):
                    why = ("no connection within %g s" % self.connect_timeout
                           if isinstance(exc, socket.timeout) else _network_reason(exc))
                    raise CheckError("cannot reach the S3 endpoint %s (%s)" % (endpoint, why),
                                     UNREACHABLE) from exc
                raise CheckError("cannot connect to the S3 endpoint %s (%s)"
                                 % (endpoint, _network_reason(exc)), OTHER) from exc
            deadline = self._clock() + self.read_timeout
            sock = connection.sock
            try:
                sock.settimeout(self.read_timeout)
                if scheme == "https":
                    sock = self._context().wrap_socket(sock, server_hostname=host)
                    connection.sock = sock
                connection.request(method, target, body=body or None, headers=headers)
                sock.settimeout(max(0.001, deadline - self._clock()))
                answer = connection.getresponse()
                chunks = []
                # The answer closes the socket once its body is read.
                while not answer.isclosed():
                    sock.settimeout(max(0.001, deadline - self._clock()))
                    chunk = answer.read(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    if self._clock() > deadline:
                        raise socket.timeout("timed out")
            except socket.timeout as exc:
                raise CheckError(
                    "the S3 endpoint %s accepted the connection but sent no answer within %g s"
                    % (endpoint, self.read_timeout), NO_ANSWER) from exc
            except ssl.SSLError as exc:
                raise CheckError("TLS with the S3 endpoint %s failed (%s)"
                                 % (endpoint, exc.reason or exc), OTHER) from exc
            except (OSError, http.client.HTTPException) as exc:
                raise CheckError(
                    "the S3 endpoint %s accepted the connection but gave no valid answer (%s)"
                    % (endpoint, _network_reason(exc)), OTHER) from exc
        finally:
            connection.close()
        data = b"".join(chunks)
        response = Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, data)
        if answer.status >= 300:
            response.error = parse_error(data)
        return response


# --- The check -------------------------------------------------------------------------------


def check_s3(client: S3Client, uri: str, bucket: str, prefix: str, hostname: str,
             write: bool = True, now=lambda: datetime.now(timezone.utc)) -> dict:
    """The runtime's storage check, request by request; raises CheckError.

    With `write` false (check mode) only reads: the listing, and a read of this host's
    probe (absent is fine), so s3:PutObject is left unchecked.
    """
    root = dir_prefix(prefix)
    key = probe_key(hostname)
    endpoint_error = "storage %s: %%s failed: %%s" % uri
    permissions = []

    def ask(method, doing, permission, object_key="", query=(), body=b"", missing_ok=False):
        try:
            response = client.request(method, bucket, object_key, query, body)
        except CheckError as exc:
            raise CheckError(endpoint_error % (doing, exc), exc.kind) from exc
        if response.status >= 300 and not (
                missing_ok and response.error.get("Code", str(response.status)) in NOT_FOUND_CODES):
            kind, why = failure(response, bucket, client.endpoint, permission)
            raise CheckError(endpoint_error % (doing, why), kind)
        permissions.append(permission)
        return response

    listing = ask("GET", "listing s3://%s/%s" % (bucket, root), LIST,
                  query=(("list-type", "2"), ("prefix", root), ("delimiter", "/"),
                         ("max-keys", "1")))
    if not listing.body.strip().endswith(b"</ListBucketResult>"):
        raise CheckError(endpoint_error % (
            "listing s3://%s/%s" % (bucket, root),
            "%s answered HTTP %d without an S3 listing: is it an S3 endpoint?"
            % (client.endpoint, listing.status)), OTHER)
    probe = ""
    if write:
        probe = "rlops check %s from %s pid %d\n" % (
            now().strftime("%Y-%m-%dT%H:%M:%SZ"), hostname, os.getpid())
        ask("PUT", "writing %s" % key, WRITE, root + key, body=probe.encode())
    read = ask("GET", "reading %s" % key, READ, root + key, missing_ok=not write)
    if write and read.body != probe.encode():
        raise CheckError("storage %s: wrote %s but read back different content" % (uri, key),
                         MISMATCH)
    return {"permissions": permissions, "probe_key": root + key, "wrote_probe": write,
            "endpoint": client.endpoint, "region": client.region}


def check_storage(uri: str, bucket: str, prefix: str, given: dict, environ: dict | None = None,
                  write: bool = True, connect_timeout: float = CONNECT_TIMEOUT,
                  read_timeout: float = READ_TIMEOUT, hostname: str = "",
                  home: str = "") -> dict:
    """Resolve settings and run the check of s3:// storage.

    Returns {"checked": False, "reason": ...} when there are no credentials the standard
    library can use here, else the check's result with "checked": True. Raises CheckError.
    """
    settings = resolve_settings(given, environ, home)
    endpoint = display_endpoint(settings.endpoint, settings.region)
    if settings.credentials is None:
        return {"checked": False, "reason": settings.missing, "endpoint": endpoint,
                "region": settings.region, "permissions": [], "probe_key": "",
                "wrote_probe": False, "credentials_source": ""}
    client = S3Client(settings, connect_timeout, read_timeout)
    source = settings.credentials.source
    try:
        result = check_s3(client, uri, bucket, prefix, hostname or socket.gethostname(), write)
    except CheckError as exc:
        if source != "storage_credentials" and exc.kind not in (UNREACHABLE, NO_ANSWER):
            raise CheckError("%s (credentials: %s)" % (exc, source), exc.kind) from exc
        raise
    result.update({"checked": True, "reason": "", "credentials_source": source})
    return result


# --- Reading an object (the trainer's recorded set) -----------------------------------------

# The instance metadata service (IMDSv2), where an EC2 host's instance role gives
# credentials; botocore's variables name another endpoint or turn it off.
IMDS_ENDPOINT = "http://169.254.169.254"
IMDS_TIMEOUT = 1.0
IMDS_TOKEN_TTL = "60"
IMDS_ROLES = "/latest/meta-data/iam/security-credentials/"


def imds_endpoint(environ: dict) -> str:
    """The metadata service's URL ("" when AWS_EC2_METADATA_DISABLED is true)."""
    if str(environ.get("AWS_EC2_METADATA_DISABLED", "")).lower() == "true":
        return ""
    return (environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or IMDS_ENDPOINT).rstrip("/")


def instance_role_keys(role: str, body: bytes) -> Credentials:
    """The credentials of an instance role's answer (IMDS security-credentials/<role>)."""
    try:
        found = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        found = None
    if not isinstance(found, dict) or found.get("Code", "Success") != "Success" or not (
            found.get("AccessKeyId") and found.get("SecretAccessKey")):
        code = found.get("Code") if isinstance(found, dict) else ""
        raise CheckError("the instance role %s gave no credentials%s" % (
            role, " (%s)" % code if code else ""), NO_CREDENTIALS)
    return Credentials(found["AccessKeyId"], found["SecretAccessKey"], found.get("Token", ""),
                       "the instance role %s" % role)


def _imds_ask(endpoint: str, method: str, path: str, headers: dict, timeout: float) -> bytes:
    parts = urlsplit(endpoint)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port or 80,
                                            timeout=timeout)
    try:
        connection.request(method, parts.path.rstrip("/") + path, headers=headers)
        answer = connection.getresponse()
        body = answer.read()
    except (OSError, http.client.HTTPException) as exc:
        raise CheckError("the instance metadata service %s does not answer (%s)"
                         % (endpoint, _network_reason(exc)), NO_CREDENTIALS) from exc
    finally:
        connection.close()
    if answer.status != 200:
        raise CheckError("the instance metadata service %s answered HTTP %d to %s %s"
                         % (endpoint, answer.status, method, path), NO_CREDENTIALS)
    return body


def instance_role_credentials(endpoint: str, timeout: float = IMDS_TIMEOUT) -> Credentials:
    """The host's instance role's credentials from IMDSv2 (a token, the role's name, its
    keys); raises CheckError (NO_CREDENTIALS) saying why there are none."""
    token = _imds_ask(endpoint, "PUT", "/latest/api/token",
                      {"X-aws-ec2-metadata-token-ttl-seconds": IMDS_TOKEN_TTL}, timeout)
    headers = {"X-aws-ec2-metadata-token": token.decode("ascii", "replace").strip()}
    roles = _imds_ask(endpoint, "GET", IMDS_ROLES, headers, timeout).decode("utf-8", "replace")
    role = (roles.split() or [""])[0]
    if not role:
        raise CheckError("the instance metadata service %s names no instance role" % endpoint,
                         NO_CREDENTIALS)
    return instance_role_keys(role, _imds_ask(endpoint, "GET", IMDS_ROLES + quote(role),
                                              headers, timeout))


def read_object(client: S3Client, uri: str, bucket: str, prefix: str, key: str) -> str | None:
    """The text of `key` under the storage's prefix (s3:GetObject); None when there is none.
    Raises CheckError saying what failed and why."""
    doing = "storage %s: reading %s failed: %%s" % (uri, key)
    try:
        response = client.request("GET", bucket, dir_prefix(prefix) + key)
    except CheckError as exc:
        raise CheckError(doing % exc, exc.kind) from exc
    if response.status >= 300:
        if response.error.get("Code", str(response.status)) in NOT_FOUND_CODES:
            return None
        kind, why = failure(response, bucket, client.endpoint, READ)
        raise CheckError(doing % why, kind)
    try:
        return response.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckError(doing % "it is not UTF-8 text", OTHER) from exc


def read_storage(uri: str, bucket: str, prefix: str, key: str, given: dict,
                 environ: dict | None = None, connect_timeout: float = CONNECT_TIMEOUT,
                 read_timeout: float = READ_TIMEOUT, home: str = "",
                 host_environ: dict | None = None) -> dict:
    """Read `key` of s3:// storage: {"content": its text or None, "endpoint", "region",
    "credentials_source"}. Credentials as check_storage's; on a host (`environ` None) without
    keys or a profile, the instance role's (IMDSv2 at imds_endpoint(host_environ), when
    host_environ is given). Raises CheckError: NO_CREDENTIALS when there are none here."""
    settings = resolve_settings(given, environ, home)
    if settings.credentials is None and environ is None and host_environ is not None \
            and not (given or {}).get("AWS_PROFILE"):
        imds = imds_endpoint(host_environ)
        if imds:
            try:
                settings.credentials = instance_role_credentials(imds)
            except CheckError as exc:
                settings.missing = "%s, and %s" % (settings.missing.partition(":")[0], exc)
    if settings.credentials is None:
        raise CheckError("storage %s: no credentials to read %s with: %s"
                         % (uri, key, settings.missing), NO_CREDENTIALS)
    client = S3Client(settings, connect_timeout, read_timeout)
    source = settings.credentials.source
    try:
        content = read_object(client, uri, bucket, prefix, key)
    except CheckError as exc:
        if source != "storage_credentials" and exc.kind not in (UNREACHABLE, NO_ANSWER):
            raise CheckError("%s (credentials: %s)" % (exc, source), exc.kind) from exc
        raise
    return {"content": content, "endpoint": client.endpoint, "region": client.region,
            "credentials_source": source}


# --- Buckets (rlops.fleet.s3_bucket) ---------------------------------------------------------

S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"


def create_bucket_body(region: str) -> bytes:
    """CreateBucket's body: none in us-east-1, the region's LocationConstraint elsewhere
    (AWS and moto refuse a bucket of another region without it; MinIO accepts its own)."""
    if region == DEFAULT_REGION:
        return b""
    return ('<CreateBucketConfiguration xmlns="%s"><LocationConstraint>%s</LocationConstraint>'
            "</CreateBucketConfiguration>" % (S3_XMLNS, region)).encode("utf-8")


def bucket_exists(client: S3Client, bucket: str, **words) -> bool:
    """Whether `bucket` exists (HeadBucket, s3:ListBucket); raises CheckError saying why it
    cannot tell. A HEAD answer has no body to say why it refused: the refusal is asked
    again as a GET of the bucket's location, whose error document names the reason (a
    rejected secret and a missing permission are both 403 to HEAD). `words`: failure()'s."""
    head = client.request("HEAD", bucket)
    if head.status < 300:
        return True
    if head.status == 404:
        return False
    answer = head
    if not head.error:
        located = client.request("GET", bucket, query=(("location", ""),))
        if located.error:
            answer = located
    if answer.error.get("Code") in NOT_FOUND_CODES | {"NoSuchBucket"}:
        return False
    kind, why = failure(answer, bucket, client.endpoint, LIST, **words)
    raise CheckError(why, kind)


def create_bucket(client: S3Client, bucket: str, **words) -> bool:
    """Create `bucket` in the client's region (s3:CreateBucket): True when this request made
    it, False when it already was ours (made meanwhile); raises CheckError saying why not."""
    response = client.request("PUT", bucket, body=create_bucket_body(client.region))
    if response.status < 300:
        return True
    if response.error.get("Code") == "BucketAlreadyOwnedByYou":
        return False
    kind, why = failure(response, bucket, client.endpoint, CREATE_BUCKET, **words)
    raise CheckError(why, kind)
