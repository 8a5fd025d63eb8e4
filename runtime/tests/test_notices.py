"""Spot notices: the decisions, ImdsWatcher against the fake IMDSv2 (tests/fake_imds.py)."""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fake_imds import INSTANCE_ACTION, REBALANCE, TOKEN_PATH, FakeImds
from rlops_runtime.notices import (
    CHECKPOINT,
    INSTANCE_ACTION_PATH,
    REBALANCE_PATH,
    RECORD,
    SOURCE,
    STOP,
    ImdsWatcher,
    Notice,
    NoticeMonitor,
    build_watchers,
    instance_action_notice,
    is_new,
    looks_like_ec2,
    rebalance_notice,
    resolve_endpoint,
    response_to,
    should_watch,
    token_is_fresh,
)

# decisions --------------------------------------------------------------------------------


@pytest.mark.parametrize("body, expected", [
    (b'{"action": "stop", "time": "2026-11-22T08:00:00Z"}',
     Notice("spot instance-action: stop at 2026-11-22T08:00:00Z", STOP)),
    (b'{"action": "terminate", "time": "2026-11-22T08:00:00Z"}',
     Notice("spot instance-action: terminate at 2026-11-22T08:00:00Z", STOP)),
    (b'{"action": "hibernate", "time": "2026-11-22T08:00:00Z"}',
     Notice("spot instance-action: hibernate at 2026-11-22T08:00:00Z", CHECKPOINT)),
    (b'{"action": "reboot"}', Notice("spot instance-action: reboot", STOP)),
    (b"<html>oops</html>", Notice("spot instance-action: unreadable notice '<html>oops</html>'",
                                  STOP)),
    (b'["stop"]', Notice("spot instance-action: unreadable notice '[\"stop\"]'", STOP)),
])
def test_instance_action_notice(body: bytes, expected: Notice) -> None:
    assert instance_action_notice(body) == expected


@pytest.mark.parametrize("body, reason", [
    (b'{"noticeTime": "2026-11-22T07:50:00Z"}', "rebalance recommendation at 2026-11-22T07:50:00Z"),
    (b"not json", "rebalance recommendation"),
])
@pytest.mark.parametrize("action", [CHECKPOINT, STOP, RECORD])
def test_rebalance_notice(body: bytes, reason: str, action: str) -> None:
    assert rebalance_notice(body, action) == Notice(reason, action)


def test_is_new_repeats_only_stops() -> None:
    reported = {"rebalance recommendation at t1", "spot instance-action: stop at t2"}
    assert not is_new(Notice("rebalance recommendation at t1", CHECKPOINT), reported)
    assert is_new(Notice("rebalance recommendation at t3", CHECKPOINT), reported)
    assert is_new(Notice("spot instance-action: stop at t2", STOP), reported)


@pytest.mark.parametrize("action, progress, expected", [
    (STOP, False, STOP),
    (STOP, True, STOP),
    (CHECKPOINT, True, CHECKPOINT),
    (CHECKPOINT, False, RECORD),  # just (re)started: nothing new to save
    (RECORD, True, RECORD),
])
def test_response_to(action: str, progress: bool, expected: str) -> None:
    assert response_to(Notice("n", action), progress) == expected


def test_token_is_fresh() -> None:
    assert token_is_fresh(now=100, expires_at=200, margin=60)
    assert not token_is_fresh(now=140, expires_at=200, margin=60)
    assert not token_is_fresh(now=300, expires_at=200, margin=0)


def test_resolve_endpoint() -> None:
    assert resolve_endpoint("http://169.254.169.254", {}) == "http://169.254.169.254"
    assert resolve_endpoint("http://a/", {"RLOPS_IMDS_ENDPOINT": "http://127.0.0.1:9/"}) == (
        "http://127.0.0.1:9")
    assert resolve_endpoint("http://a", {"RLOPS_IMDS_ENDPOINT": ""}) == "http://a"


# the fake IMDSv2 --------------------------------------------------------------------------


def _call(url: str, method: str = "GET", headers: dict | None = None,
          data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_fake_imds_semantics(fake_imds: FakeImds) -> None:
    url = fake_imds.url
    assert _call(url + TOKEN_PATH, "PUT")[0] == 400  # no TTL header
    assert _call(url + TOKEN_PATH, "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "0"})[0] == 400
    status, token = _call(url + TOKEN_PATH, "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    assert status == 200 and token
    auth = {"X-aws-ec2-metadata-token": token.decode()}
    assert _call(url + INSTANCE_ACTION_PATH)[0] == 401
    assert _call(url + INSTANCE_ACTION_PATH, headers={"X-aws-ec2-metadata-token": "x"})[0] == 401
    assert _call(url + INSTANCE_ACTION_PATH, headers=auth)[0] == 404
    assert _call(url + "/latest/meta-data/instance-id", headers=auth)[0] == 200

    body = b'{"action": "stop", "time": "2026-11-22T08:00:00Z"}'
    assert _call(url + "/_control/" + INSTANCE_ACTION, "PUT", data=body)[0] == 200
    assert _call(url + INSTANCE_ACTION_PATH, headers=auth) == (200, body)
    assert _call(url + "/_control/" + INSTANCE_ACTION, "DELETE")[0] == 200
    assert _call(url + INSTANCE_ACTION_PATH, headers=auth)[0] == 404

    assert _call(url + "/_control/expire-tokens", "POST", data=b"")[0] == 200
    assert _call(url + INSTANCE_ACTION_PATH, headers=auth)[0] == 401
    seen = json.loads(_call(url + "/_control/requests")[1])
    assert ["PUT", TOKEN_PATH, 200] in seen


# ImdsWatcher against it -------------------------------------------------------------------


def test_watcher_reuses_its_token(fake_imds: FakeImds) -> None:
    watcher = ImdsWatcher(fake_imds.url)
    assert [watcher.poll() for _poll in range(3)] == [None, None, None]
    assert fake_imds.count("PUT", TOKEN_PATH) == 1
    assert fake_imds.count("GET", INSTANCE_ACTION_PATH) == 3
    assert fake_imds.count("GET", REBALANCE_PATH) == 3


def test_watcher_renews_a_token_near_expiry(fake_imds: FakeImds) -> None:
    now = [1000.0]
    watcher = ImdsWatcher(fake_imds.url, token_ttl=600, clock=lambda: now[0])
    watcher.poll()
    now[0] += 500  # within the margin of the 600 s token
    watcher.poll()
    assert fake_imds.count("PUT", TOKEN_PATH) == 1
    now[0] += 50
    watcher.poll()
    assert fake_imds.count("PUT", TOKEN_PATH) == 2


def test_watcher_renews_a_rejected_token(fake_imds: FakeImds) -> None:
    watcher = ImdsWatcher(fake_imds.url)
    assert watcher.poll() is None
    fake_imds.expire_tokens()
    fake_imds.set_instance_action("stop")
    assert watcher.poll() == Notice("spot instance-action: stop at 2026-11-22T08:00:00Z", STOP)
    assert fake_imds.count("PUT", TOKEN_PATH) == 2
    assert ("GET", INSTANCE_ACTION_PATH, 401) in fake_imds.requests


def test_watcher_reports_notices(fake_imds: FakeImds) -> None:
    watcher = ImdsWatcher(fake_imds.url, on_rebalance=CHECKPOINT)
    assert watcher.poll() is None
    fake_imds.set_rebalance("2026-11-22T07:50:00Z")
    rebalance = Notice("rebalance recommendation at 2026-11-22T07:50:00Z", CHECKPOINT)
    assert watcher.poll() == rebalance
    assert watcher.poll() is None  # still served, already reported
    fake_imds.set_rebalance("2026-11-22T07:55:00Z")
    assert watcher.poll().reason == "rebalance recommendation at 2026-11-22T07:55:00Z"
    fake_imds.set_instance_action("terminate", "2026-11-22T08:00:00Z")
    stop = Notice("spot instance-action: terminate at 2026-11-22T08:00:00Z", STOP)
    assert watcher.poll() == stop and watcher.poll() == stop
    fake_imds.clear(INSTANCE_ACTION)
    fake_imds.clear(REBALANCE)
    assert watcher.poll() is None


def test_watcher_ignores_proxy_settings(fake_imds: FakeImds,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:1")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")
    fake_imds.set_instance_action("stop")
    assert ImdsWatcher(fake_imds.url).poll().action == STOP


def test_imds_that_goes_away_is_no_notice_logged_once(closed_endpoint: str,
                                                      fake_imds: FakeImds,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "rlops_runtime.notices")
    watcher = ImdsWatcher(fake_imds.url)
    assert watcher.poll() is None and watcher.watch_state()["watching"]
    watcher.endpoint = closed_endpoint  # it stops answering: still asked at every poll
    started = time.monotonic()
    assert [watcher.poll() for _poll in range(5)] == [None] * 5
    assert time.monotonic() - started < 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and closed_endpoint in warnings[0].getMessage()
    state = watcher.watch_state()
    assert not state["watching"] and closed_endpoint in state["last_error"]
    watcher.endpoint = fake_imds.url  # it answers again
    assert watcher.poll() is None
    assert "answers again" in caplog.records[-1].getMessage()
    assert watcher.watch_state()["watching"] and watcher.watch_state()["last_error"] is None


@pytest.mark.parametrize("trouble", ["slow", "dropped"])
def test_imds_that_has_not_answered_yet_is_retried_with_backoff(
        fake_imds: FakeImds, trouble: str, caplog: pytest.LogCaptureFixture) -> None:
    """Until the first answer, attempts are 1, 2, 4, 4 s apart (a fake clock, a poll each
    second); each is bounded by the request timeout; the first answer starts watching."""
    caplog.set_level(logging.INFO, "rlops_runtime.notices")
    if trouble == "slow":
        fake_imds.delay = 0.5  # longer than the timeout below
    else:
        fake_imds.drop = True
    now = [100.0]
    watcher = ImdsWatcher(fake_imds.url, timeout=0.2, clock=lambda: now[0],
                          retry_base=1, retry_cap=4)
    state = watcher.watch_state()
    assert (state["source"], state["watching"], state["last_error"]) == (SOURCE, False, None)
    attempts = []
    for tick in range(12):
        before = len(fake_imds.requests)
        started = time.monotonic()
        assert watcher.poll() is None
        took = time.monotonic() - started
        assert took < 0.6
        # A slow attempt waits out the timeout (its answer is recorded later); a dropped
        # one is recorded before the connection closes.
        if (took >= 0.15) if trouble == "slow" else len(fake_imds.requests) > before:
            attempts.append(tick)
        now[0] += 1
    assert attempts == [0, 1, 3, 7, 11]
    assert {path for method, path, status in fake_imds.requests} <= {TOKEN_PATH}
    state = watcher.watch_state()
    assert not state["watching"] and state["last_error"].startswith(f"IMDS at {fake_imds.url}")
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1

    fake_imds.delay, fake_imds.drop = 0.0, False
    fake_imds.set_instance_action("stop")
    now[0] += 4
    assert watcher.poll() == Notice("spot instance-action: stop at 2026-11-22T08:00:00Z", STOP)
    state = watcher.watch_state()
    assert state["watching"] and state["last_error"] is None and state["since"]
    assert "answers: watching for spot notices" in caplog.text


def test_silent_imds_times_out_quickly() -> None:
    # Accepts connections (the kernel's backlog) and never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        watcher = ImdsWatcher(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3)
        started = time.monotonic()
        assert watcher.poll() is None
        assert time.monotonic() - started < 1.5


def test_server_errors_are_no_notice(fake_imds: FakeImds) -> None:
    watcher = ImdsWatcher(fake_imds.url + "/nope")  # not IMDS: the token PUT answers 405
    assert watcher.poll() is None
    assert watcher.watch_state()["last_error"] == (
        f"IMDS at {fake_imds.url}/nope: PUT /latest/api/token answered 405")


# choosing watchers from run.json ----------------------------------------------------------


def test_build_watchers_auto_at_the_endpoint_variable(fake_imds: FakeImds) -> None:
    env = {"RLOPS_IMDS_ENDPOINT": fake_imds.url}
    [watcher] = build_watchers("auto", "http://169.254.169.254", RECORD, env)
    assert watcher.endpoint == fake_imds.url and watcher.on_rebalance == RECORD
    assert fake_imds.requests == []  # building sends nothing: the first poll asks
    watcher.poll()
    watcher.poll()
    assert fake_imds.count("PUT", TOKEN_PATH) == 1  # the token is reused


def test_build_watchers_auto_off_and_on_ec2(closed_endpoint: str, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "rlops_runtime.notices")
    assert build_watchers("auto", closed_endpoint, CHECKPOINT, {}, sys_root=str(tmp_path)) == []
    assert "not an EC2 instance" in caplog.text
    # An EC2 instance by its firmware: watched whether IMDS answers at start or not (a
    # slow one is retried until it does).
    (tmp_path / "class/dmi/id").mkdir(parents=True)
    (tmp_path / "class/dmi/id/sys_vendor").write_text("Amazon EC2\n")
    caplog.clear()
    [watcher] = build_watchers("auto", closed_endpoint, CHECKPOINT, {}, sys_root=str(tmp_path))
    assert watcher.endpoint == closed_endpoint
    assert "an EC2 instance by its firmware" in caplog.text
    assert watcher.poll() is None and not watcher.watch_state()["watching"]


def test_auto_never_asks_the_network_off_ec2(fake_imds: FakeImds, tmp_path: Path) -> None:
    assert build_watchers("auto", fake_imds.url, CHECKPOINT, {}, sys_root=str(tmp_path)) == []
    assert fake_imds.count("PUT", TOKEN_PATH) == 0


@pytest.mark.parametrize("vendors, uuid, expected", [
    (["Amazon EC2\n", ""], "", True),
    (["", "Amazon EC2"], "", True),
    (["Xen", "Xen"], "ec2e1916-9099-7caf-fd21-012345abcdef\n", True),
    (["Xen", ""], "EC2E1916-9099", True),
    (["QEMU", "QEMU"], "", False),
    (["Microsoft Corporation", ""], "", False),
    (["", ""], "", False),
])
def test_looks_like_ec2(vendors: list[str], uuid: str, expected: bool) -> None:
    assert looks_like_ec2(vendors, uuid) is expected


@pytest.mark.parametrize("mode, on_ec2, given, expected", [
    ("auto", False, False, False), ("auto", True, False, True), ("auto", False, True, True),
    ("imds", False, False, True), ("none", True, True, False),
])
def test_should_watch(mode: str, on_ec2: bool, given: bool, expected: bool) -> None:
    assert should_watch(mode, on_ec2, given) is expected


def test_build_watchers_imds_watches_anyway(closed_endpoint: str,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "rlops_runtime.notices")
    [watcher] = build_watchers("imds", closed_endpoint, CHECKPOINT, {})
    assert watcher.poll() is None
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_build_watchers_with_a_bad_endpoint_variable() -> None:
    env = {"RLOPS_IMDS_ENDPOINT": "127.0.0.1:9"}  # no scheme
    for mode in ("auto", "imds"):
        [watcher] = build_watchers(mode, "http://169.254.169.254", CHECKPOINT, env)
        assert watcher.poll() is None
        assert "127.0.0.1:9" in watcher.watch_state()["last_error"]  # said in status.json


def test_build_watchers_none_sends_nothing(fake_imds: FakeImds) -> None:
    assert build_watchers("none", fake_imds.url, CHECKPOINT, {}) == []
    assert fake_imds.requests == []


# the monitor thread -----------------------------------------------------------------------


class ListWatcher:
    """Answers from a list, one item per poll (None when it runs out); counts polls."""

    def __init__(self, answers: list) -> None:
        self.answers = list(answers)
        self.polls = 0

    def poll(self):
        self.polls += 1
        return self.answers.pop(0) if self.answers else None


def test_monitor_hands_notices_over_and_stops_after_a_stop() -> None:
    rebalance = Notice("rebalance recommendation", CHECKPOINT)
    watcher = ListWatcher([None, rebalance, None, "spot instance-action: stop"])
    monitor = NoticeMonitor([watcher], interval=0.01, mode="imds")
    monitor.start()
    try:
        deadline = time.monotonic() + 5
        taken = []
        while len(taken) < 2:
            assert time.monotonic() < deadline
            notice = monitor.take()
            if notice:
                taken.append(notice)
            time.sleep(0.005)
        time.sleep(0.1)
        assert taken == [rebalance, Notice("spot instance-action: stop", STOP)]
        assert watcher.polls == 4 and monitor.take() is None  # no poll after the stop
    finally:
        monitor.stop()
    assert monitor.state() == {"mode": "imds", "source": "ListWatcher", "watching": True,
                               "since": None, "last_error": None}


def test_monitor_state_without_watchers_and_with_imds(fake_imds: FakeImds) -> None:
    assert NoticeMonitor([], 5, "auto").state() == {
        "mode": "auto", "source": None, "watching": False, "since": None, "last_error": None}
    monitor = NoticeMonitor([ImdsWatcher(fake_imds.url)], 5, "auto")
    assert monitor.poll_once() is None
    state = monitor.state()
    assert (state["mode"], state["source"], state["watching"]) == ("auto", SOURCE, True)
