"""A stand-in for the MinIO server in the lab, where no MinIO binary or image can be had.

It takes MinIO's command line and environment as the role's unit gives them -
`minio server --address H:P --console-address H:P [--certs-dir D] DATA`, MINIO_ROOT_USER,
MINIO_ROOT_PASSWORD, MINIO_SITE_REGION from the environment file - tells systemd it is
ready (Type=notify), answers /minio/health/live, refuses every S3 request not signed
(AWS Signature Version 4) with the root user and password, as MinIO does, and serves the
rest with localbucket (buckets as folders of DATA, as MinIO's single-drive mode keeps
them).

build_standin.py packs it with localbucket and the collection's s3_probe (the signature
check) into one executable zip that the role installs as the server binary.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import ssl
import sys
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import localbucket
import s3_probe

HEALTH = "/minio/health/live"


def parse_args(argv: list) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="minio")
    parser.add_argument("command", choices=["server"])
    parser.add_argument("--address", required=True)
    parser.add_argument("--console-address", default="")
    parser.add_argument("--certs-dir", default="")
    parser.add_argument("data")
    return parser.parse_args(argv)


def host_port(address: str) -> tuple:
    host, _sep, port = address.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def signature_error(method: str, target: str, headers, user: str, password: str,
                    region: str) -> str:
    """Why a request is not signed with the root credentials ("" when it is)."""
    given = headers.get("Authorization", "")
    if not given.startswith("AWS4-HMAC-SHA256 "):
        return "AccessDenied"
    fields = dict(part.strip().split("=", 1)
                  for part in given[len("AWS4-HMAC-SHA256 "):].split(",") if "=" in part)
    if fields.get("Credential", "").split("/")[0] != user:
        return "InvalidAccessKeyId"
    signed = {name: headers.get(name, "") for name in fields.get("SignedHeaders", "").split(";")}
    parts = urlsplit(target)
    expected = s3_probe.authorization(
        method, parts.path, parse_qsl(parts.query, keep_blank_values=True), signed,
        headers.get("x-amz-content-sha256", ""), user, password, region, "s3",
        headers.get("x-amz-date", ""))
    return "" if expected == given else "SignatureDoesNotMatch"


class Handler(localbucket.S3Handler):
    """localbucket behind MinIO's health path and its check of the root credentials."""

    def _guard(self, action) -> None:
        if self.path == HEALTH:
            self._send(HTTPStatus.OK)
            return
        # The signature covers the payload's hash header; the payload is not hashed again.
        code = signature_error(self.command, self.path, self.headers,
                               os.environ["MINIO_ROOT_USER"], os.environ["MINIO_ROOT_PASSWORD"],
                               os.environ.get("MINIO_SITE_REGION") or s3_probe.DEFAULT_REGION)
        if code:
            self._send_error(localbucket.S3Error(HTTPStatus.FORBIDDEN, code,
                                                 "refused by the MinIO stand-in"))
            return
        action(self)

    def do_GET(self):  # noqa: N802 (http.server's names)
        self._guard(localbucket.S3Handler.do_GET)

    def do_HEAD(self):  # noqa: N802
        self._guard(localbucket.S3Handler.do_HEAD)

    def do_PUT(self):  # noqa: N802
        self._guard(localbucket.S3Handler.do_PUT)

    def do_POST(self):  # noqa: N802
        self._guard(localbucket.S3Handler.do_POST)

    def do_DELETE(self):  # noqa: N802
        self._guard(localbucket.S3Handler.do_DELETE)


def notify_ready() -> None:
    """sd_notify(READY=1) for Type=notify, as MinIO does."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"READY=1", address)


def main(argv: list) -> int:
    args = parse_args(argv)
    for name in ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"):
        if not os.environ.get(name):
            print(f"minio stand-in: {name} is not set", file=sys.stderr)
            return 1
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    Handler.data_root = Path(args.data).resolve()
    server = ThreadingHTTPServer(host_port(args.address), Handler)
    if args.certs_dir:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(os.path.join(args.certs_dir, "public.crt"),
                                os.path.join(args.certs_dir, "private.key"))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    notify_ready()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
