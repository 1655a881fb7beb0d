"""AppriseSender against real receivers on 127.0.0.1: SMTP (aiosmtpd) and HTTP webhooks."""

from __future__ import annotations

import logging
import socket
import time
from datetime import datetime, timedelta, timezone

import pytest

from agent.notify.render import render
from agent.notify.sender import AppriseSender, Delivery, TargetProblems
from agent.types import Transition
from tests.conftest import FAST, free_port

CST = timezone(timedelta(hours=8))
SECRET_PATH, QUERY_TOKEN = "SECRETPATH99", "QSECRET77"


def alert(**changes) -> Transition:
    fields = {
        "ts": datetime(2026, 11, 2, 10, 5, tzinfo=CST),
        "rule": "upload_failure_rate",
        "kind": "rule",
        "severity": "critical",
        "state": "firing",
        "labels": {"source": "upload"},
        "summary": {"zh": "上传失败率 35%（阈值 10%）", "en": "upload failure rate 35%"},
        "fingerprint": "fp1",
        "reason": "first notification",
    }
    fields.update(changes)
    return Transition(**fields)


def mail_url(port: int, auth: str = "") -> str:
    return f"mailto://{auth}127.0.0.1:{port}?from=agent@example.com&to=ops@example.com&{FAST}"


# --- delivery to real receivers -----------------------------------------------------------


def test_alert_mail_arrives_with_chinese_subject_and_line_breaks(smtp):
    sink, port = smtp
    title, body = render(alert(), "zh")
    sender = AppriseSender([mail_url(port)], None, {}, timeout=5)

    delivery = sender.send(title, body, "critical")

    assert delivery.ok, delivery.detail
    [message] = sink.messages
    assert message["Subject"] == "【告警·严重】upload_failure_rate"  # header decoded by policy
    text = message.get_body(("plain",)).get_content()
    assert text.splitlines() == body.splitlines()
    assert "时间：2026-11-02T10:05:00+08:00" in text.splitlines()


def test_back_to_back_mails_are_not_held_by_throttle_when_disabled(smtp):
    sink, port = smtp
    sender = AppriseSender([mail_url(port)], None, {}, timeout=5, throttle=0)
    started = time.monotonic()
    assert sender.send("一", "first", "warning").ok
    assert sender.send("二", "second", "warning").ok
    assert time.monotonic() - started < 3  # apprise's default pause is 5.5 s per target
    assert [m["Subject"] for m in sink.messages] == ["一", "二"]


def test_webhook_receives_title_and_body(receiver):
    title, body = render(alert(state="resolved", reason="resolved"), "en")
    sender = AppriseSender([receiver.url()], None, {}, timeout=5)

    delivery = sender.send(title, body, "critical")

    assert delivery == Delivery(True, False, "delivered to 1 target(s)")
    [(path, payload)] = receiver.posts
    assert path == "/hook"
    assert payload["title"] == "[RESOLVED] upload_failure_rate"
    assert payload["message"] == body  # newlines intact in TEXT format


def test_dead_target_is_a_fast_recoverable_failure():
    sender = AppriseSender([f"json://127.0.0.1:{free_port()}/hook?{FAST}"], None, {}, timeout=3)
    started = time.monotonic()
    delivery = sender.send("t", "b", "critical")
    assert time.monotonic() - started < 2
    assert not delivery.ok and delivery.recoverable
    assert "FAILURE" in delivery.detail and "Connection error" in delivery.detail


def test_target_that_never_answers_times_out_recoverably():
    with socket.socket() as blackhole:  # accepts connections, never replies
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen()
        port = blackhole.getsockname()[1]
        sender = AppriseSender([f"json://127.0.0.1:{port}/x?cto=5&rto=5"], None, {}, timeout=0.3)
        started = time.monotonic()
        delivery = sender.send("t", "b", "critical")
        assert time.monotonic() - started < 1.5  # the call limit wins over rto
    assert not delivery.ok and delivery.recoverable
    assert delivery.detail.startswith("TIMEOUT") and "may still arrive" in delivery.detail
    assert "/x TIMEOUT: timed out" in delivery.detail


def test_one_dead_of_two_targets_is_partial_and_retried(receiver):
    dead = f"json://127.0.0.1:{free_port()}/hook?{FAST}"
    delivery = AppriseSender([receiver.url(), dead], None, {}, timeout=3).send("t", "b", "info")
    assert not delivery.ok and delivery.recoverable
    assert delivery.detail.startswith("PARTIAL")
    assert len(receiver.posts) == 1


# --- routing by severity ------------------------------------------------------------------


def test_config_file_tags_route_critical_only_to_oncall(receivers, tmp_path):
    oncall, chat = receivers
    config = tmp_path / "apprise.yaml"
    config.write_text(
        "urls:\n"
        f"  - {oncall.url('/oncall')}:\n"
        "      - tag: oncall\n"
        f"  - {chat.url('/chat')}:\n"
        "      - tag: chat\n"
    )
    routes = {"critical": ["oncall"], "warning": ["chat"]}
    sender = AppriseSender([], str(config), routes, timeout=5)

    assert sender.send("严重", "b", "critical").ok
    assert sender.send("警告", "b", "warning").ok
    assert sender.send("提示", "b", "info").ok  # no route: everyone

    assert [p["title"] for _, p in oncall.posts] == ["严重", "提示"]
    assert [p["title"] for _, p in chat.posts] == ["警告", "提示"]


def test_url_entries_with_tags_route_like_the_config_file(receivers):
    oncall, chat = receivers
    urls = [{"url": oncall.url(), "tags": ["oncall"]}, {"url": chat.url(), "tags": ["chat"]}]
    sender = AppriseSender(urls, None, {"critical": ["oncall", "chat"], "warning": ["chat"]})

    assert sender.targets_for("critical") == ["oncall", "chat"]
    assert sender.send("w", "b", "warning").ok
    assert not oncall.posts and len(chat.posts) == 1


def test_route_to_a_tag_no_target_carries_is_refused(receiver):
    # It used to make Apprise match nobody (NOMATCH), which counts as delivered: a typo in a
    # route silently dropped every alert of that severity.
    urls = [{"url": receiver.url("/hook/SECRETPATH99"), "tags": ["chat", "OnCall"]}]
    routes = {"critical": ["oncall", "pagre"], "warning": ["1:oncall"], "info": []}

    with pytest.raises(ValueError) as raised:
        AppriseSender(urls, None, routes)

    message = str(raised.value)
    assert "'critical'" in message and "'pagre'" in message
    assert "chat, oncall" in message  # what the targets do carry, to spot the typo
    assert "warning" not in message  # "1:" is a priority: 1:oncall is oncall
    assert "SECRETPATH99" not in message and str(receiver.port) not in message
    assert not receiver.posts


def test_route_check_names_every_bad_route_and_untagged_targets():
    routes = {"critical": ["pager"], "warning": ["chat"]}
    with pytest.raises(ValueError) as raised:
        AppriseSender(["json://127.0.0.1:9/x"], None, routes)
    message = str(raised.value)
    assert "'critical'" in message and "'pager'" in message
    assert "'warning'" in message and "'chat'" in message
    assert "no tags at all" in message


def test_routes_do_not_matter_without_targets():
    sender = AppriseSender([], None, {"critical": ["nobody"]})  # console mode
    assert not sender.has_targets
    assert sender.send("t", "b", "critical").ok


def test_priority_prefix_case_and_all_are_valid_route_tags():
    target = [{"url": "json://127.0.0.1:9/x", "tags": ["OnCall"]}]
    routes = {"critical": ["oncall", "all"], "warning": ["1:oncall"]}  # "1:" = priority
    sender = AppriseSender(target, None, routes)  # accepted: no typo among them
    assert sender.targets_for("warning") == ["1:oncall"]
    with pytest.raises(ValueError, match="'pager'"):
        AppriseSender(target, None, {"critical": ["pager"]})


def test_empty_route_silences_that_severity(receiver):
    sender = AppriseSender([receiver.url()], None, {"info": []})
    assert sender.send("t", "b", "info").ok
    assert not receiver.posts


def test_no_targets_at_all_is_reported():
    sender = AppriseSender([], None, {})
    assert not sender.has_targets
    assert sender.send("t", "b", "critical").ok


# --- secrets ------------------------------------------------------------------------------


def test_passwords_never_reach_failure_detail_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    closed = free_port()
    urls = [
        f"json://agent:Sup3rSecretPw@127.0.0.1:{closed}/hook?{FAST}",
        mail_url(closed, auth="bob:MailPa55word@"),
    ]
    delivery = AppriseSender(urls, None, {}, timeout=3).send("t", "b", "critical")
    # A fresh sender, as `invoice-agent notify test` makes: the one above would hold the
    # mail target back for apprise's 5.5 s throttle.
    tested = AppriseSender(urls, None, {}, timeout=3).test_all()

    assert not delivery.ok
    shown = delivery.detail + repr(tested) + caplog.text
    assert "Sup3rSecretPw" not in shown and "MailPa55word" not in shown
    assert "****" in delivery.detail  # the target is still recognisable, masked
    assert "connection refused" in delivery.detail
    assert "Connection error" in caplog.text


@pytest.fixture
def all_logs(caplog):
    """caplog at DEBUG, with the lines of the `apprise` logger, which does not propagate."""
    caplog.set_level(logging.DEBUG)
    apprise_log = logging.getLogger("apprise")
    apprise_log.addHandler(caplog.handler)
    yield caplog
    apprise_log.removeHandler(caplog.handler)


def test_secrets_in_url_paths_and_queries_never_shown(receiver, all_logs):
    receiver.failing = True  # answers 503
    dead_port = free_port()
    urls = [
        f"json://127.0.0.1:{receiver.port}/hook/{SECRET_PATH}?token={QUERY_TOKEN}&{FAST}",
        f"json://127.0.0.1:{dead_port}/hook/{SECRET_PATH}?-q={QUERY_TOKEN}&{FAST}",
    ]
    sender = AppriseSender(urls, None, {}, timeout=3)

    delivery = sender.send("t", "b", "critical")
    tested = sender.test_all()

    assert not delivery.ok and delivery.recoverable
    assert "HTTP 503" in delivery.detail and "connection refused" in delivery.detail
    assert sender.targets == [
        f"json://127.0.0.1:{receiver.port}/hook/****",  # short segments stay readable
        f"json://127.0.0.1:{dead_port}/hook/****",
    ]
    assert [t for t, _ in tested] == sender.targets
    [(_, to_503), (_, to_dead)] = tested
    assert not to_503.ok and "503" in to_503.detail
    assert not to_dead.ok and "connection refused" in to_dead.detail
    shown = delivery.detail + repr(sender.targets) + repr(tested) + all_logs.text
    assert SECRET_PATH not in shown and QUERY_TOKEN not in shown
    # The lines that used to leak were logged, masked: apprise's and urllib3's.
    assert any(r.name == "apprise" for r in all_logs.records)
    assert '"POST /hook/**** HTTP/1.1" 503' in all_logs.text


def test_secrets_of_config_file_targets_never_shown(receiver, tmp_path, all_logs):
    receiver.failing = True
    secret = "CONFIGSECRET42"
    config = tmp_path / "apprise.yaml"
    config.write_text(
        "urls:\n"
        f"  - json://cfguser:CfgPassw0rd@127.0.0.1:{receiver.port}/hook/{secret}?{FAST}:\n"
        "      - tag: oncall\n"
    )
    sender = AppriseSender([], str(config), {"critical": ["oncall"]}, timeout=3)

    delivery = sender.send("t", "b", "critical")
    tested = sender.test_all()

    assert sender.targets == [f"json://****@127.0.0.1:{receiver.port}/hook/****"]
    assert "HTTP 503" in delivery.detail
    shown = delivery.detail + repr(sender.targets) + repr(tested) + all_logs.text
    for leaked in (secret, "CfgPassw0rd", "cfguser"):
        assert leaked not in shown  # all_logs includes apprise's "Loaded ... URL" lines


def test_targets_mask_credentials_and_long_path_segments_only():
    urls = [
        "jsons://hooks.example.com/x/TokenAbcdef123456",
        # a user name that is part of a shown host is no secret: masking it would hide where
        # a delivery went ("A Connection error occurred sending JSON notification to HOST")
        "json://hooks:pw12345@127.0.0.1:8080/hook/abc?-key=QPARAM123456&+X-Auth=Bearer%20HDR5ECRET",
    ]
    sender = AppriseSender(urls, None, {})  # nothing is sent
    assert sender.targets == [
        "jsons://hooks.example.com/x/****",
        "json://****@127.0.0.1:8080/hook/abc",
    ]
    text = (
        "POST https://hooks.example.com/x/TokenAbcdef123456 as hooks:pw12345 "
        "GET ?key=QPARAM123456 Authorization: Bearer HDR5ECRET"
    )
    scrubbed = sender.redact(text)
    for secret in ("TokenAbcdef123456", "pw12345", "QPARAM123456", "HDR5ECRET"):
        assert secret not in scrubbed
    assert "https://hooks.example.com/x/****" in scrubbed  # hosts are not secrets


def test_failure_reason_survives_the_cli_silencing_apprise(receiver):
    # `invoice-agent` sets the apprise logger to CRITICAL, which used to leave Apprise's
    # per-call log capture empty: "FAILURE: " and nothing after it.
    receiver.failing = True
    apprise_log = logging.getLogger("apprise")
    level = apprise_log.level
    apprise_log.setLevel(logging.CRITICAL)
    try:
        dead = f"json://127.0.0.1:{free_port()}/hook?{FAST}"
        delivery = AppriseSender([receiver.url(), dead], None, {}, timeout=3).send("t", "b", "info")
    finally:
        apprise_log.setLevel(level)
    assert not delivery.ok
    assert "/hook FAILURE: HTTP 503" in delivery.detail
    assert "/hook FAILURE: connection refused" in delivery.detail


def test_reason_from_our_wecom_plugin_reaches_the_detail(receiver):
    # The receiver answers 200 with an empty body: WeCom did not confirm (no errcode 0).
    key = "WECOMKEY12345"
    url = f"qywx://{key}?endpoint=http://127.0.0.1:{receiver.port}/send&rto=2"
    sender = AppriseSender([url], None, {}, timeout=5)
    delivery = sender.send("t", "b", "critical")
    assert not delivery.ok and delivery.recoverable
    assert "WeCom refused the message" in delivery.detail
    assert key not in delivery.detail + repr(sender.targets)
    assert len(receiver.posts) == 1


def test_wecom_key_is_masked_in_what_operators_see():
    key = "693a91f6-7aoc-4bc4-97a0-0ec2sifa5aaa"
    sender = AppriseSender([f"wecombot://{key}"], None, {})
    # No network in tests: check the two places a key could leak without sending.
    assert key not in sender.redact(f"POST https://qyapi.weixin.qq.com/?key={key} failed")
    assert sender.targets == ["wecombot://6...a"]


def test_unloadable_url_is_refused_without_echoing_it():
    with pytest.raises(TargetProblems) as raised:
        AppriseSender(["nosuchscheme://user:TopSecret99@host/path"], None, {})
    assert "TopSecret99" not in str(raised.value)
    assert raised.value.problems == [
        (0, "nosuchscheme://****@****/path", "unknown scheme 'nosuchscheme://'")
    ]


def test_missing_config_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        AppriseSender([], str(tmp_path / "nope.yaml"), {})


# --- notify test --------------------------------------------------------------------------


def test_notify_test_reports_each_target_separately(receiver):
    dead = f"json://127.0.0.1:{free_port()}/dead?{FAST}"
    sender = AppriseSender([receiver.url("/live"), dead], None, {}, timeout=3)

    results = dict(sender.test_all())

    assert results[f"json://127.0.0.1:{receiver.port}/live"].ok
    dead_result = next(d for url, d in results.items() if url.endswith("/dead"))
    assert not dead_result.ok and dead_result.recoverable
    assert len(receiver.posts) == 1
    assert "测试" in receiver.posts[0][1]["title"]
