"""qywx://: WeCom group-bot delivery confirmed by errcode, against a local stand-in server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.notify.sender import AppriseSender


class FakeWeCom:
    """Answers like WeCom's webhook: HTTP 200 with an errcode, recording what was posted."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []
        self.errcode = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.posts.append((self.path, body))
                reply = json.dumps({"errcode": outer.errcode, "errmsg": "ok" if not
                                    outer.errcode else "invalid webhook url"}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, key: str = "SECRETKEY123") -> str:
        port = self.server.server_address[1]
        return f"qywx://{key}?endpoint=http://127.0.0.1:{port}/send&rto=2"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def wecom():
    w = FakeWeCom()
    yield w
    w.close()


def test_confirmed_delivery_posts_markdown_with_the_key(wecom):
    sender = AppriseSender([wecom.url()], None, {}, timeout=5)
    d = sender.send("【告警·严重】upload_outage", "上传大面积超时", "critical")
    assert d.ok, d.detail
    path, body = wecom.posts[0]
    assert path == "/send?key=SECRETKEY123"
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["content"] == "**【告警·严重】upload_outage**\n上传大面积超时"


def test_format_text_posts_plain_text(wecom):
    sender = AppriseSender([wecom.url() + "&format=text"], None, {}, timeout=5)
    assert sender.send("【告警·严重】upload_outage", "上传大面积超时", "critical").ok
    _, body = wecom.posts[0]
    assert body == {"msgtype": "text",
                    "text": {"content": "【告警·严重】upload_outage\n上传大面积超时"}}


def test_a_title_from_outside_is_escaped_in_the_markdown_heading(wecom):
    sender = AppriseSender([wecom.url()], None, {}, timeout=5)
    assert sender.send("**@all** <@zhangsan>", "body", "critical").ok
    content = wecom.posts[0][1]["markdown"]["content"]
    assert content == "**＊＊＠all＊＊ ＜＠zhangsan＞**\nbody"


@pytest.mark.parametrize(("url", "channel"), [
    ("qywx://KEY", "wecom"),
    ("qywx://KEY?format=text", "text"),
    ("qywx://KEY?format=markdown", "wecom"),
    ("wecombot://KEY", "text"),  # apprise's own bot posts msgtype text only
    ("mailto://user:pass@example.com", "email"),
    ("mailtos://user:pass@example.com?to=ops@example.com", "email"),
    ("json://127.0.0.1:9/hook", "text"),
])
def test_each_target_knows_its_channel(url, channel):
    sender = AppriseSender([url], None, {})
    [key] = sender.target_keys("critical")
    assert sender.channel(key) == channel
    assert sender.channel("t-unknown") == "text"


def test_bad_key_errcode_in_a_200_reply_is_a_permanent_failure(wecom):
    wecom.errcode = 93000  # WeCom's "invalid webhook url": apprise's wecombot calls it success
    sender = AppriseSender([wecom.url()], None, {}, timeout=5)
    [key] = sender.target_keys("critical")
    d = sender.send_to(key, "title", "body", "critical")
    assert not d.ok and not d.recoverable  # the same key will be refused again: no retry
    assert "errcode 93000" in d.detail
    assert "SECRETKEY123" not in d.detail


def test_rate_limit_errcode_is_retried(wecom):
    wecom.errcode = 45009  # WeCom's "api freq out of limit": 20 messages a minute per bot
    sender = AppriseSender([wecom.url()], None, {}, timeout=5)
    d = sender.send_to(sender.target_keys("warning")[0], "title", "body", "warning")
    assert not d.ok and d.recoverable
    assert "errcode 45009" in d.detail


@pytest.mark.parametrize(("option", "kind", "limit", "head"), [
    ("", "markdown", 4096, "**标题**\n发票"),
    ("&format=text", "text", 2048, "标题\n发票"),
])
def test_long_chinese_text_is_cut_to_wecoms_byte_limit(wecom, option, kind, limit, head):
    sender = AppriseSender([wecom.url() + option], None, {}, timeout=5)
    assert sender.send("标题", "发票" * 2000, "warning").ok
    body = wecom.posts[0][1]
    content = body[kind]["content"]
    assert body["msgtype"] == kind
    assert limit - 3 <= len(content.encode()) <= limit  # cut at a character, not before
    assert content.startswith(head) and content[-2:] in ("发…", "票…")


def test_key_is_not_shown_in_target_names(wecom):
    sender = AppriseSender([wecom.url("TOPSECRET999")], None, {}, timeout=5)
    assert all("TOPSECRET999" not in t for t in sender.targets)


def test_two_bots_in_a_config_file_are_two_targets_with_hidden_keys(wecom, tmp_path):
    # Apprise's decorator plugins rebuild their URL as just "qywx://": without our own, two
    # bots of a config file would share one key and one would never be sent to.
    config = tmp_path / "apprise.yaml"
    config.write_text(f"urls:\n  - {wecom.url('BOTKEYONE111')}\n  - {wecom.url('BOTKEYTWO222')}\n")
    sender = AppriseSender([], str(config), {}, timeout=5)
    keys = sender.target_keys("critical")
    assert len(keys) == 2
    assert sender.targets == ["qywx://****", "qywx://****"]
    assert sender.send_to(keys[1], "t", "b", "critical").ok
    assert [path for path, _ in wecom.posts] == ["/send?key=BOTKEYTWO222"]
    for secret in ("BOTKEYONE111", "BOTKEYTWO222"):
        assert secret not in sender.redact(f"POST /send?key={secret}") + repr(keys)


def test_a_bot_url_without_key_is_refused_at_load():
    with pytest.raises(ValueError, match=r"notify url #1 \(qywx://\*\*\*\*\).*needs the bot key"):
        AppriseSender(["qywx://"], None, {})
