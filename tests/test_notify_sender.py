"""AppriseSender against real receivers on 127.0.0.1: SMTP (aiosmtpd) and HTTP webhooks."""

from __future__ import annotations

import logging
import socket
import time
from datetime import datetime, timedelta, timezone

import pytest

from agent.notify.render import render
from agent.notify.sender import AppriseSender, Delivery
from agent.types import Transition
from tests.conftest import FAST, free_port

CST = timezone(timedelta(hours=8))


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


def test_route_to_a_tag_nobody_has_is_ok_and_says_so(receiver):
    sender = AppriseSender([receiver.url()], None, {"critical": ["pager"]})
    delivery = sender.send("t", "b", "critical")
    assert delivery.ok
    assert delivery.detail == "no target for tags pager"
    assert not receiver.posts


def test_route_tags_no_target_carries_are_flagged_for_check():
    routes = {"critical": ["oncall", "pagre"], "warning": ["1:oncall"]}  # "1:" = priority
    sender = AppriseSender([{"url": "json://127.0.0.1:9/x", "tags": ["OnCall"]}], None, routes)
    assert sender.unknown_route_tags() == {"pagre"}


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
    assert "Connection error" in caplog.text  # apprise's own log lines were captured too


def test_wecom_key_is_masked_in_what_operators_see():
    key = "693a91f6-7aoc-4bc4-97a0-0ec2sifa5aaa"
    sender = AppriseSender([f"wecombot://{key}"], None, {})
    # No network in tests: check the two places a key could leak without sending.
    assert key not in sender.redact(f"POST https://qyapi.weixin.qq.com/?key={key} failed")
    assert sender.targets == ["wecombot://6...a"]


def test_unloadable_url_is_refused_without_echoing_it():
    with pytest.raises(ValueError) as raised:
        AppriseSender(["nosuchscheme://user:TopSecret99@host/path"], None, {})
    assert "TopSecret99" not in str(raised.value)
    assert "nosuchscheme://****" in str(raised.value)


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
