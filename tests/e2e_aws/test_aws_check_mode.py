"""train_new --check on the AWS path when the controller's address has to be asked (moto
only, no lab hosts): the security group it would create lets in the address that
rlops_aws_address_url answered (a server on 127.0.0.1 here, in place of
checkip.amazonaws.com), and nothing is created. The --check runs of every playbook on a
session are in test_aws_spot_session.py."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from awslab import CREDENTIALS, REGION, AwsPlaybooks
from checkmode import cloud_state
from harness import assert_unchanged, debug_lines

SESSION = "check-20261206t070000z"
ADDRESS = "203.0.113.7"
PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHV0n7CwvN9bLk1Uf2V3Yk1xh1JtF1C4Qmy9gqYkKx3g "
              "check-mode\n")


@pytest.fixture
def address_url():
    """A stand-in for checkip.amazonaws.com on 127.0.0.1: (URL, the paths it was asked)."""
    asked: list[str] = []

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            asked.append(self.path)
            body = f"{ADDRESS}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", asked
    finally:
        server.shutdown()
        server.server_close()


def test_train_new_check_asks_the_controllers_address(moto_url, ec2, ami, address_url,
                                                      tmp_path):
    url, asked = address_url
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name=REGION,
                      aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    s3.create_bucket(Bucket="rlops-check")
    key = tmp_path / "id.pub"
    key.write_text(PUBLIC_KEY)
    playbooks = AwsPlaybooks(moto_url, tmp_path, {
        "rlops_aws_region": REGION, "rlops_aws_image_id": ami,
        "rlops_aws_instance_types": ["g5.xlarge"], "rlops_aws_iam_instance_profile": "",
        "rlops_aws_ssh_cidr": "", "rlops_aws_address_url": url,
        "rlops_aws_public_key_file": str(key), "rlops_aws_key_name": "rlops-check",
        "rlops_aws_connect": {"ansible_host": "127.0.0.1", "ansible_port": 9},
        "rlops_storage_uri": "s3://rlops-check/sessions",
        "rlops_storage_credentials": {**CREDENTIALS, "AWS_DEFAULT_REGION": REGION,
                                      "RLOPS_S3_ENDPOINT_URL": moto_url}})
    before = cloud_state(ec2, {"moto": s3})

    out = playbooks.run("train_new", check=True, rlops_session=SESSION).stdout

    assert_unchanged(before, cloud_state(ec2, {"moto": s3}), "the cloud (train_new --check)")
    assert asked == ["/"]
    would = debug_lines(out, "would launch")
    assert would[:2] == [
        f"session {SESSION}: would import the key pair rlops-check from {key}",
        f"session {SESSION}: would create the security group rlops-{SESSION}: "
        f"tcp/22 from {ADDRESS}/32"], would
    assert f"session {SESSION}: would launch a spot g5.xlarge in {REGION}" in would[2]
