"""Notices delivered end to end: the dispatcher renders each notice once per channel, writes the
rows to a real SQLite outbox, and real servers on 127.0.0.1 receive them: a WeCom stand-in
(markdown), an SMTP server (aiosmtpd: subject and plain body) and a JSON webhook (text)."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest

from agent.notify.markup import wecom_content
from agent.notify.outbox import Dispatcher
from agent.notify.sender import AppriseSender
from agent.notify.templating import NoticeRenderer
from agent.store import Batch, Store
from tests.conftest import FAST
from tests.test_notify_templating import HOSTILE, NOW, alert, muted, notice
from tests.test_notify_wecom import FakeWeCom


@pytest.fixture
def wecom():
    w = FakeWeCom()
    yield w
    w.close()


def mail_url(port: int) -> str:
    return f"mailto://127.0.0.1:{port}?from=agent@example.com&to=ops@example.com&{FAST}"


def deliver(tmp_path, urls: list[str], notices, renderer: NoticeRenderer) -> Store:
    """Queue `notices` through a dispatcher and pump until the outbox is empty."""
    store = Store(tmp_path / "agent.db")
    sender = AppriseSender(urls, None, {}, timeout=5, throttle=0)
    d = Dispatcher(store.outbox, sender, renderer.language, renderer=renderer)
    d.start()
    try:
        store.commit(Batch(outbox=d.messages(notices)))
        deadline = time.monotonic() + 20
        while store.outbox.summary()["pending"] and time.monotonic() < deadline:
            d.pump()
            time.sleep(0.01)
        assert store.outbox.summary()["pending"] == 0, "the outbox did not drain"
    finally:
        d.stop()
    return store


def stored(store: Store) -> list[tuple[str, str, str, str]]:
    return store.outbox.db.execute(
        "SELECT fingerprint, severity, title, body FROM outbox ORDER BY id").fetchall()


def group_notice(summary: str = "上传全部超时"):
    return notice(
        firing=[alert(zh=summary, en="every upload timing out", line_no=4127,
                      path="/var/log/invoice/upload.log"),
                alert("upload_latency", "warning", zh="上传 p95 延迟 12 秒",
                      en="upload p95 latency 12 s", fired_at=NOW - timedelta(minutes=3))],
        resolved=[alert("upload_failure_rate", "warning", "resolved", zh="上传失败率 2%",
                        en="upload failure rate 2%", fired_at=NOW - timedelta(minutes=35))],
        muted=muted("invoice_missing", "model_anomaly"))


def test_a_wecom_bot_gets_one_markdown_message_for_a_whole_group(tmp_path, wecom):
    store = deliver(tmp_path, [wecom.url()], [group_notice()],
                    NoticeRenderer("zh", timezone="Asia/Shanghai"))
    [(path, post)] = wecom.posts
    assert post["msgtype"] == "markdown"
    content = post["markdown"]["content"]
    lines = content.splitlines()
    assert lines[0] == "**【告警·严重】upload_outage 等 2 条**"
    assert lines[1] == '<font color="warning">上传全部超时</font>'
    assert "> 告警开始：<font color=\"comment\">10:05</font>" in lines
    assert ("> 【警告】upload_latency：上传 p95 延迟 12 秒"
            '<font color="comment">（始于 10:07）</font>') in lines
    assert ('> <font color="info">upload_failure_rate</font>：'
            "已恢复，持续 35 分钟；现在：上传失败率 2%") in lines
    assert ('<font color="comment">'
            "已屏蔽由此引起的 2 条告警：invoice_missing、model_anomaly</font>") in lines
    assert lines[-1] == '<font color="comment">时间：2026-11-02 10:10 (UTC+08:00) · 首次通知</font>'
    # the row keeps what the bot received, under the group's key
    [(key, severity, title, body)] = stored(store)
    assert (key, severity) == ("group-upload", "critical")
    assert wecom_content(title, body) == content
    store.close()


def test_hostile_log_text_reaches_wecom_inert(tmp_path, wecom):
    store = deliver(tmp_path, [wecom.url()], [group_notice(HOSTILE)], NoticeRenderer("zh"))
    content = wecom.posts[0][1]["markdown"]["content"]
    assert "@" not in content and "](" not in content and "http://" not in content
    assert "＊＊＠all＊＊ ＜＠zhangsan＞ ［click］(http：//x)" in content.splitlines()[1]
    store.close()


@pytest.mark.parametrize(("language", "subject", "expected"), [
    ("zh", "【告警·严重】upload_outage 等 2 条",
     ["上传全部超时", "标签：source=upload", "告警开始：10:05",
      "行号：/var/log/invoice/upload.log:4127", "其他告警（1）：",
      "- 【警告】upload_latency：上传 p95 延迟 12 秒", "已恢复（1）：",
      "- upload_failure_rate：已恢复，持续 35 分钟；现在：上传失败率 2%",
      "已屏蔽由此引起的 2 条告警：invoice_missing、model_anomaly",
      "时间：2026-11-02 10:10 (UTC+08:00)", "原因：首次通知"]),
    ("en", "[FIRING critical] upload_outage (+1)",
     ["every upload timing out", "Labels: source=upload", "Firing since: 10:05",
      "Line: /var/log/invoice/upload.log:4127", "Also firing (1):",
      "- [warning] upload_latency: upload p95 latency 12 s", "Resolved (1):",
      "- upload_failure_rate: resolved after 35 min; now: upload failure rate 2%",
      "Muted: 2 alerts caused by this: invoice_missing, model_anomaly",
      "Time: 2026-11-02 10:10 (UTC+08:00)", "Reason: first notification"]),
])
def test_an_email_has_the_subject_and_a_plain_body(tmp_path, smtp, language, subject,
                                                    expected):
    sink, port = smtp
    store = deliver(tmp_path, [mail_url(port)], [group_notice()],
                    NoticeRenderer(language, timezone="Asia/Shanghai"))
    [message] = sink.messages
    assert message["Subject"] == subject
    text = message.get_body(("plain",)).get_content()
    lines = [line.rstrip() for line in text.splitlines()]
    assert [line for line in lines if line in expected] == expected  # all there, in order
    assert "<font" not in text and "**" not in text  # no markdown in a mail
    [(_, _, title, body)] = stored(store)
    assert (title, body.splitlines()) == (subject, lines)
    store.close()


def test_each_target_gets_its_own_channel_from_one_notice(tmp_path, wecom, smtp, receiver):
    sink, port = smtp
    urls = [wecom.url(), wecom.url("TEXTKEY") + "&format=text", mail_url(port), receiver.url()]
    store = deliver(tmp_path, urls, [group_notice()], NoticeRenderer("en"))
    by_key = {path: post for path, post in wecom.posts}
    markdown = by_key["/send?key=SECRETKEY123"]["markdown"]["content"]
    text = by_key["/send?key=TEXTKEY"]["text"]["content"]
    assert "<font" in markdown and "<font" not in text
    assert text.startswith("[FIRING critical] upload_outage (+1)\nevery upload timing out\n")
    [(_, hook)] = receiver.posts
    assert hook["title"] == "[FIRING critical] upload_outage (+1)"
    assert f"{hook['title']}\n{hook['message']}" == text  # the same text channel rendering
    assert sink.messages[0]["Subject"] == hook["title"]
    assert len(stored(store)) == 4
    store.close()


def test_a_broken_operator_template_still_delivers_the_alert(tmp_path, wecom, receiver, caplog):
    ops = tmp_path / "templates"
    (ops / "zh").mkdir(parents=True)
    (ops / "zh" / "wecom.j2").write_text("{% block body %}{{ lead.text }{% endblock %}")
    (ops / "zh" / "text.j2").write_text("{{ lead.missing_field }}")
    with caplog.at_level(logging.WARNING, logger="agent.notify.templating"):
        store = deliver(tmp_path, [wecom.url(), receiver.url()], [group_notice()],
                        NoticeRenderer("zh", templates=ops))
    content = wecom.posts[0][1]["markdown"]["content"]
    assert content.splitlines()[:2] == ["**【告警·严重】upload_outage 等 2 条**",
                                        '<font color="warning">上传全部超时</font>']
    assert receiver.posts[0][1]["message"].startswith("上传全部超时\n")
    assert f"{ops / 'zh' / 'wecom.j2'}:1" in caplog.text
    assert f"{ops / 'zh' / 'text.j2'} failed" in caplog.text
    store.close()


def test_a_rule_template_reaches_the_bot(tmp_path, wecom):
    rules = {"upload_outage": {
        "zh": "**上传中断**：{{ values.failed }} 笔失败，最近错误 {{ values.code }}"}}
    n = notice(firing=[alert(values={"failed": 12, "code": "<@all> 1001"})])
    store = deliver(tmp_path, [wecom.url()], [n], NoticeRenderer("zh", rule_templates=rules))
    content = wecom.posts[0][1]["markdown"]["content"]
    assert content.splitlines()[1] == \
        '<font color="warning">**上传中断**：12 笔失败，最近错误 ＜＠all＞ 1001</font>'
    store.close()


def test_a_bare_transition_is_still_sent_as_before(tmp_path, receiver):
    store = deliver(tmp_path, [receiver.url()], [alert(state="resolved", reason="resolved")],
                    NoticeRenderer("en"))
    [(_, hook)] = receiver.posts
    assert hook["title"] == "[RESOLVED] upload_outage"
    assert hook["message"].splitlines()[0] == \
        "resolved after 5 min; now: every upload timing out"
    assert stored(store)[0][0] == "fp-upload_outage"  # keyed by the alert, as before
    store.close()
