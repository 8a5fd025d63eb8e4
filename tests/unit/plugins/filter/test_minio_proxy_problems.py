"""rlops.fleet.minio_proxy's checks (plugins/filter/minio_proxy_problems.py): every problem,
each message naming the setting, with the role's own defaults as the good case."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.rlops.fleet.plugins.filter.minio_proxy_problems import (
    minio_proxy_problems,
)

REPO = Path(__file__).resolve().parents[4]
ROLE = REPO / "roles" / "minio_proxy"
ROLE_VARS = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
GOOD = {name: DEFAULTS.get(name) for name in ROLE_VARS["__minio_proxy_checked"]}
GOOD.update(minio_proxy_root_user="rlops-lab", minio_proxy_server_sha256="ab" * 32,
            minio_proxy_server_src="https://dl.example/minio.RELEASE.2025-04-22T22-12-26Z")
PASSWORD = {"length": 21, "one_line": True}
OPTIONS = ("service_mgr", "local_src", "binary")
ONE_LINE = "minio_proxy_root_user and minio_proxy_root_password must be one line each"
FOLDERS = "minio_proxy_data_dir and minio_proxy_config_dir must be absolute paths"
PORTS = "minio_proxy_port and minio_proxy_console_port must be two different ports"
LOCAL = {"kind": "local", "server_src": "files/minio"}


def problems(password=None, kind="url", **changes):
    options = {key: changes.pop(key) for key in OPTIONS if key in changes}
    settings = {**GOOD, **{"minio_proxy_" + name: value for name, value in changes.items()}}
    return minio_proxy_problems(
        settings, password or PASSWORD, "lab-1", kind,
        bucket_pattern=ROLE_VARS["__minio_proxy_bucket_name_pattern"],
        own_env=ROLE_VARS["__minio_proxy_own_env"], **options)


def test_the_defaults_with_a_pinned_source_have_no_problem():
    assert problems() == []
    assert problems(buckets=["rlops-checkpoints", "a.b-c"],
                    extra_env={"MINIO_BROWSER": "off"}) == []
    assert problems(tls_cert="/etc/ssl/m.crt", tls_key="/etc/ssl/m.key", port="9443") == []
    assert problems(server_sha256="", local_src={"isreg": True}, **LOCAL) == []
    assert problems(kind="none", server_sha256="", server_src="",
                    binary={"executable": True}) == []
    # Values as Jinja hands them over without native types (ansible-core 2.17 and 2.18).
    assert problems(password={"length": "8", "one_line": "True"}, health_timeout="5") == []


@pytest.mark.parametrize(("changes", "message"), [
    ({"root_user": "ab"}, "minio_proxy_root_user must have at least 3 characters"),
    ({"password": {"length": 7, "one_line": True}},
     "minio_proxy_root_password must have at least 8 characters"),
    ({"password": {"length": 9, "one_line": False}}, ONE_LINE),
    ({"root_user": "lab\nroot"}, ONE_LINE),
    ({"server_src": "https://dl.min.io/server/minio/release/linux-amd64/minio.latest"},
     "minio_proxy_server_src (https://dl.min.io/server/minio/release/linux-amd64/minio.latest)"
     " must name a pinned release, not latest"),
    ({"server_sha256": ""}, "minio_proxy_server_sha256 (64 hex digits) is required with a"
     " release URL in minio_proxy_server_src"),
    ({**LOCAL, "server_sha256": "abc", "local_src": {"isreg": True, "checksum": "abc"}},
     "minio_proxy_server_sha256 (abc) is not a sha256 (64 hex digits)"),
    ({"data_dir": "minio"}, FOLDERS),
    ({"config_dir": "/"}, FOLDERS),
    ({"port": 9001}, PORTS),
    ({"console_port": 65536}, PORTS),
    ({"port": "http"}, PORTS),
    ({"tls_cert": "/etc/ssl/m.crt"},
     "minio_proxy_tls_cert and minio_proxy_tls_key go together (both or neither)"),
    ({"buckets": ["ok-name", "Bad_Name", "10.0.0.1", "a..b"]},
     "bucket names must be 3-63 lowercase letters, digits, '.' and '-', starting and ending"
     " with a letter or digit, no '..', not an IP address: ['Bad_Name', '10.0.0.1', 'a..b']"),
    ({"extra_env": {"MINIO_BROWSER": "off", "MINIO_ROOT_PASSWORD": "x", "PATH": "/bin"}},
     "minio_proxy_extra_env keys must be MINIO_* names other than MINIO_ROOT_USER,"
     " MINIO_ROOT_PASSWORD, MINIO_SITE_REGION (set by the role): MINIO_ROOT_PASSWORD, PATH"),
    ({"health_timeout": 0}, "minio_proxy_health_timeout must be greater than 0"),
    ({"service_mgr": "sysvinit"}, "minio_proxy runs MinIO as a systemd unit: lab-1 runs sysvinit"),
    ({**LOCAL, "local_src": {}},
     "minio_proxy_server_src files/minio: not a file on the controller"),
    ({**LOCAL, "local_src": {"isreg": True, "checksum": "cd" * 32}},
     "minio_proxy_server_src files/minio: sha256 is " + "cd" * 32 + ", not " + "ab" * 32),
    ({"kind": "none", "server_src": "", "server_sha256": "", "binary": {"exists": False}},
     "minio_proxy_server_src is empty and /usr/local/bin/minio is not on lab-1: give a pinned"
     " release URL with minio_proxy_server_sha256, or a file on the controller"),
])
def test_each_problem_is_named(changes, message):
    assert problems(**changes) == [message]


def test_every_problem_is_said_and_an_upper_case_sha256_matches():
    found = problems(root_user="x", port=0, health_timeout=-1, service_mgr="openrc")
    assert [m.split(" ")[0] for m in found] == [
        "minio_proxy_root_user", "minio_proxy_port", "minio_proxy_health_timeout", "minio_proxy"]
    assert problems(kind="local", server_src="m", server_sha256="AB" * 32,
                    local_src={"isreg": True, "checksum": "ab" * 32}) == []


def test_the_checks_never_get_the_password():
    """The filter takes only the password's length and whether it is one line: the role's
    settings for it leave the password out, and only __minio_proxy_password_shape reads it,
    through `length` and `not in` (so the preflight's message can be shown, not no_log)."""
    assert "minio_proxy_root_password" not in ROLE_VARS["__minio_proxy_checked"]
    readers = {name for name, value in ROLE_VARS.items()
               if "minio_proxy_root_password" in yaml.safe_dump(value)}
    assert readers == {"__minio_proxy_password_shape"}
    assert ROLE_VARS["__minio_proxy_password_shape"] == {
        "length": "{{ minio_proxy_root_password | length }}",
        "one_line": "{{ '\n' not in minio_proxy_root_password }}"}
