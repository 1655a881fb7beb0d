"""Delivery per target: stable keys, send_to, which failures are worth retrying, and why a
notify URL is refused.  Real receivers on 127.0.0.1 only: http.server and aiosmtpd."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from agent.notify.failures import is_recoverable
from agent.notify.redact import mask_for_display
from agent.notify.sender import AppriseSender, Delivery, TargetProblems, target_key
from tests.conftest import FAST, free_port


class PickyMail:
    """An SMTP server that knows its users: 550 for nobody@, 450 for busy@, 553 for mail
    from blocked@; and, when it offers AUTH, refuses every password (535)."""

    def __init__(self) -> None:
        self.received: list[list[str]] = []

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if address.startswith("blocked@"):
            return "553 5.7.1 sender address rejected"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 unknown recipient"
        if address.startswith("busy@"):
            return "450 4.2.1 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append(list(envelope.rcpt_tos))
        return "250 OK"


@pytest.fixture
def mail():
    sink = PickyMail()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield sink, controller.port
    controller.stop()


@pytest.fixture
def auth_mail():
    def refuse(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=False, handled=False)

    controller = Controller(PickyMail(), hostname="127.0.0.1", port=free_port(),
                            authenticator=refuse, auth_require_tls=False)
    controller.start()
    yield controller.port
    controller.stop()


def mail_to(port: int, to: str, sender: str = "agent@example.com", auth: str = "") -> str:
    return f"mailto://{auth}127.0.0.1:{port}?from={sender}&to={to}&{FAST}"


def only(sender: AppriseSender) -> str:
    [key] = sender.target_keys("critical")
    return key


# --- keys -----------------------------------------------------------------------------------


def test_keys_are_stable_distinct_and_reveal_no_secret(hooks):
    hook = hooks()
    secret = hook.url("/hook/SECRETPATH99")
    other = hook.url("/other")
    first = AppriseSender([secret, other], None, {})
    again = AppriseSender([other, secret], None, {})  # a reload that reorders the targets

    keys = first.target_keys("critical")
    assert keys == [target_key(secret), target_key(other)]
    assert sorted(again.target_keys("critical")) == sorted(keys)
    assert len(set(keys)) == 2
    assert keys[0] == "t-" + hashlib.sha256(secret.encode()).hexdigest()[:12]
    assert all(re.fullmatch(r"t-[0-9a-f]{12}", key) for key in keys)


def test_the_same_url_twice_is_one_target_with_both_tags(hooks):
    hook = hooks()
    urls = [{"url": hook.url(), "tags": ["oncall"]}, {"url": hook.url(), "tags": ["chat"]}]
    sender = AppriseSender(urls, None, {"critical": ["oncall"], "warning": ["chat"]})

    assert sender.target_keys("critical") == sender.target_keys("warning") == [
        target_key(hook.url())
    ]
    assert sender.targets == [f"json://127.0.0.1:{hook.port}/hook"]
    assert sender.send("t", "b", "critical").ok
    assert len(hook.posts) == 1


def test_target_keys_match_tags_the_way_apprise_does(hooks, tmp_path):
    oncall, chat, audit, plain = hooks(), hooks(), hooks(), hooks()
    config = tmp_path / "apprise.yaml"
    config.write_text(
        "urls:\n"
        f"  - {oncall.url()}:\n      - tag: OnCall\n"
        f"  - {chat.url()}:\n      - tag: chat\n"
        f"  - {audit.url()}:\n      - tag: always\n"  # Apprise: gets every notification
        f"  - {plain.url()}\n"
    )
    routes = {"critical": ["oncall"], "warning": ["chat", "oncall"], "info": []}
    sender = AppriseSender([], str(config), routes)
    by_key = dict(zip(sender.target_keys("debug"), (oncall, chat, audit, plain), strict=True))

    assert [by_key[k] for k in sender.target_keys("critical")] == [oncall, audit]
    assert [by_key[k] for k in sender.target_keys("warning")] == [oncall, chat, audit]
    assert sender.target_keys("info") == []  # an empty route silences, even "always"
    assert len(by_key) == 4  # unrouted: every target


def test_explicit_priority_selects_and_escalation_is_not_applied(tmp_path):
    config = tmp_path / "apprise.yaml"
    config.write_text(
        "urls:\n"
        "  - json://127.0.0.1:9/one:\n      - tag: 1:oncall\n"
        "  - json://127.0.0.1:9/two:\n      - tag: 2:oncall\n"
    )
    sender = AppriseSender([], str(config), {"critical": ["2:oncall"], "warning": ["oncall"]})
    assert [sender.describe(k) for k in sender.target_keys("critical")] == [
        "json://127.0.0.1:9/two"
    ]
    # Apprise would try priority 2 only if priority 1 failed; per target, both get it.
    assert len(sender.target_keys("warning")) == 2


def test_retrying_a_failing_target_never_repeats_the_working_one(hooks):
    # The reported bug: a working json:// target got one FIRING alert 4 times in 45 s
    # because the whole message was retried while another target answered 500.
    good, bad = hooks(200), hooks(500)
    sender = AppriseSender([good.url(), bad.url()], None, {}, timeout=5)
    pending = sender.target_keys("critical")

    for _ in range(4):  # what the outbox does: retry only the targets without the message
        outcomes = {key: sender.send_to(key, "FIRING", "b", "critical") for key in pending}
        pending = [key for key, d in outcomes.items() if not (d.ok or not d.recoverable)]

    assert len(good.posts) == 1
    assert len(bad.posts) == 4
    [failing] = pending
    d = sender.send_to(failing, "FIRING", "b", "critical")
    assert not d.ok and d.recoverable
    assert d.detail.startswith(f"json://127.0.0.1:{bad.port}/hook FAILURE: HTTP 500")


def test_unknown_key_is_a_permanent_failure_and_described_as_itself(hooks):
    hook, gone = hooks(), hooks()
    before = AppriseSender([hook.url(), gone.url()], None, {})
    after = AppriseSender([hook.url()], None, {})  # the config was edited and reloaded
    gone_key = target_key(gone.url())

    assert after.target_keys("critical") == [target_key(hook.url())]
    assert after.send_to(gone_key, "t", "b", "critical") == Delivery(
        False, False, "target no longer configured"
    )
    assert after.describe(gone_key) == gone_key
    assert before.describe(gone_key) == f"json://127.0.0.1:{gone.port}/hook"
    assert not gone.posts and not hook.posts


def test_send_to_reaches_that_target_only_whatever_the_routes(hooks):
    oncall, chat = hooks(), hooks()
    urls = [{"url": oncall.url(), "tags": ["oncall"]}, {"url": chat.url(), "tags": ["chat"]}]
    sender = AppriseSender(urls, None, {"critical": ["oncall"]})
    d = sender.send_to(target_key(chat.url()), "标题", "正文", "critical")
    assert d == Delivery(True, False, f"delivered to json://127.0.0.1:{chat.port}/hook")
    assert [p["title"] for _, p in chat.posts] == ["标题"] and not oncall.posts


# --- which failures are worth retrying ------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "status", "recoverable"),
    [
        ("json", 400, False),
        ("json", 401, False),
        ("json", 404, False),
        ("json", 408, True),
        ("json", 429, True),
        ("json", 500, True),
        ("json", 503, True),
        ("form", 403, False),
        ("form", 502, True),
    ],
)
def test_http_answers_are_classified(hooks, scheme, status, recoverable):
    hook = hooks(status)
    sender = AppriseSender([hook.url(scheme=scheme)], None, {}, timeout=5)
    d = sender.send_to(only(sender), "t", "b", "critical")
    assert not d.ok and d.recoverable is recoverable
    assert f"HTTP {status}" in d.detail
    assert len(hook.posts) == 1


def test_refused_connection_is_recoverable():
    sender = AppriseSender([f"json://127.0.0.1:{free_port()}/hook?{FAST}"], None, {}, timeout=3)
    d = sender.send_to(only(sender), "t", "b", "critical")
    assert not d.ok and d.recoverable and "connection refused" in d.detail


@pytest.mark.parametrize(
    ("to", "sender_address", "recoverable", "shown"),
    [
        ("nobody@example.com", "agent@example.com", False, "SMTP 550 5.1.1 unknown recipient"),
        ("busy@example.com", "agent@example.com", True, "SMTP 450 4.2.1 mailbox busy"),
        ("ops@example.com", "blocked@example.com", False, "SMTP 553 5.7.1 sender address"),
    ],
)
def test_smtp_answers_are_classified(mail, to, sender_address, recoverable, shown):
    sink, port = mail
    sender = AppriseSender([mail_to(port, to, sender_address)], None, {}, timeout=5)
    d = sender.send_to(only(sender), "t", "b", "critical")
    assert not d.ok and d.recoverable is recoverable
    assert shown in d.detail
    assert not sink.received


def test_smtp_unknown_recipient_beside_a_known_one_is_not_retried(mail):
    sink, port = mail
    sender = AppriseSender([mail_to(port, "ops@example.com,nobody@example.com")], None, {},
                           timeout=5)
    d = sender.send_to(only(sender), "t", "b", "critical")
    assert not d.ok and not d.recoverable
    assert sink.received == [["ops@example.com"]]


def test_smtp_authentication_failure_is_permanent(auth_mail):
    url = mail_to(auth_mail, "ops@example.com", auth="agent:WrongPassw0rd@")
    sender = AppriseSender([url], None, {}, timeout=5)
    d = sender.send_to(only(sender), "t", "b", "critical")
    assert not d.ok and not d.recoverable
    assert "SMTP 535" in d.detail and "authentication failed" in d.detail
    assert "WrongPassw0rd" not in d.detail


def test_send_is_not_recoverable_when_every_failure_is_permanent(hooks):
    bad, gone = hooks(400), hooks(404)
    d = AppriseSender([bad.url(), gone.url()], None, {}, timeout=5).send("t", "b", "info")
    assert not d.ok and not d.recoverable
    assert d.detail.startswith("FAILURE (2 of 2 failed)")


# What the failing attempt logged (warnings and exception lines), as Apprise and our qywx
# plugin write them; each row was seen against the local receivers above.
CLASSIFIED = [
    ("Failed to send JSON POST notification: Bad Request - Unsupported Parameters., error=400.",
     False),
    ("Failed to send Form POST notification: Verification Failed., error=401.", False),
    ("Failed to send JSON POST notification: Page not found., error=404.", False),
    ("Failed to send JSON POST notification: error=408.", True),
    ("Failed to send JSON POST notification: error=429.", True),
    ("Failed to send JSON POST notification: Internal server error., error=500.", True),
    ("Failed to send JSON POST notification: Servers are overloaded., error=503.", True),
    ("A Connection error occurred sending JSON notification to 127.0.0.1.\n"
     "Socket Exception: HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded "
     "(Caused by NewConnectionError(': Failed to establish a new connection: "
     "[Errno 111] Connection refused'))", True),
    ("Socket Exception: Read timed out. (read timeout=0.5)", True),
    ("wecom delivery failed: WeCom refused the message: errcode 93000 invalid webhook url",
     False),
    ("wecom delivery failed: WeCom refused the message: errcode 40058 invalid parameter", False),
    ("wecom delivery failed: WeCom refused the message: errcode 45009 api freq out of limit",
     True),
    ("wecom delivery failed: WeCom refused the message: errcode -1 system busy", True),
    ("wecom delivery failed: WeCom refused the message: errcode None", True),
    ("wecom delivery failed: HTTP 404", False),
    ("wecom delivery failed: HTTP 502", True),
    ("wecom delivery failed: unreachable: ConnectionRefusedError", True),
    ("Sending email to \"nobody@example.com\" failed.\n"
     "Socket Exception: {'nobody@example.com': (550, b'5.1.1 unknown recipient')}", False),
    ("Socket Exception: {'busy@example.com': (450, b'4.2.1 mailbox busy')}", True),
    ("Socket Exception: {'nobody@x.org': (550, b'5.1.1 unknown'), "
     "'busy@x.org': (452, b'4.2.2 over quota')}", True),
    ("Socket Exception: (553, b'5.1.8 sender address rejected', 'bad@example.com')", False),
    ("Connection error while submitting email to \"127.0.0.1\"\n"
     "Socket Exception: (535, b'5.7.8 Authentication credentials invalid')", False),
    ("Socket Exception: (421, b'4.7.0 try again later')", True),
    ("Socket Exception: SMTP AUTH extension not supported by server.", False),
    ("Connection error while submitting email to \"127.0.0.1\"\n"
     "Socket Exception: [Errno 111] Connection refused", True),
    ("Socket Exception: Connection unexpectedly closed", True),
    ("", True),
]


@pytest.mark.parametrize(("text", "recoverable"), CLASSIFIED)
def test_is_recoverable_table(text, recoverable):
    assert is_recoverable(text) is recoverable


# --- refused URLs ---------------------------------------------------------------------------


def test_refused_urls_say_why_with_their_index_and_masked(hooks):
    urls = [
        hooks().url(),
        "wechat://CORPSECRET77",  # Apprise's WeChat (WeCom app API), not a group bot
        "mailto://127.0.0.1:8025",  # no sender, no recipient
        "jsn://hooks.example.com/x/TOKENSECRET1",
        {"url": "mailto://bob:MailPa55word@127.0.0.1:8025?from=agent@example.com&to=ops",
         "tags": ["oncall"]},
    ]
    with pytest.raises(TargetProblems) as raised:
        AppriseSender(urls, None, {})

    problems = raised.value.problems
    assert [(i, url) for i, url, _ in problems] == [
        (1, "wechat://****"),
        (2, "mailto://127.0.0.1:8025"),
        (3, "jsn://hooks.example.com/x/****"),
        (4, "mailto://****@127.0.0.1:8025"),
    ]
    reasons = [why for _, _, why in problems]
    assert "Corp ID must be specified" in reasons[0] and "qywx://KEY" in reasons[0]
    assert "From email" in reasons[1] and "to=RECIPIENT" in reasons[1]
    assert reasons[2].startswith("unknown scheme 'jsn://'; did you mean json://, jsons://")
    assert reasons[3].startswith("no valid recipient: Dropped invalid To email (ops)")
    message = str(raised.value)
    assert isinstance(raised.value, ValueError)
    assert "notify url #2 (wechat://****) could not be loaded: A WeChat" in message
    for secret in ("CORPSECRET77", "TOKENSECRET1", "MailPa55word"):
        assert secret not in message


def test_apprise_echoing_a_bad_key_is_masked():
    with pytest.raises(TargetProblems) as raised:
        AppriseSender(["wecombot://NOT$A$KEY$SECRET"], None, {})
    [(index, url, why)] = raised.value.problems
    assert (index, url) == (0, "wecombot://****")
    assert "Webhook Key (****)" in why and "SECRET" not in str(raised.value)


# --- display --------------------------------------------------------------------------------


def test_every_place_masks_a_url_the_same_way(hooks):
    hook = hooks()
    urls = [
        hook.url("/hook/SECRETPATH99"),
        f"json://user:Passw0rd1@127.0.0.1:{hook.port}/hook?token=QSECRET77",
        "mailto://127.0.0.1:2525?from=agent@example.com&to=ops@example.com",
        "wecombot://693a91f6-7aoc-4bc4-97a0-0ec2sifa5aaa",
        f"qywx://WECOMKEY12345?endpoint=http://127.0.0.1:{hook.port}/send",
    ]
    sender = AppriseSender(urls, None, {})
    shown = [mask_for_display(url) for url in urls]

    assert shown == [sender.describe(target_key(url)) for url in urls] == sender.targets
    assert shown[:2] == [f"json://127.0.0.1:{hook.port}/hook/****",
                         f"json://****@127.0.0.1:{hook.port}/hook"]
    assert shown[4] == "qywx://****"
    for secret in ("SECRETPATH99", "Passw0rd1", "QSECRET77", "693a91f6", "WECOMKEY12345"):
        assert secret not in repr(shown)
    assert mask_for_display("nosuch://user:TopSecret99@KEYINHOST99/x") == "nosuch://****@****/x"
    assert mask_for_display("no scheme SECRET") == "****"


def test_redact_module_imports_no_apprise_and_nothing_else_of_agent():
    code = ("import sys, agent.notify.redact; "
            "print(sorted(m for m in sys.modules if m.startswith(('apprise', 'agent.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['agent.notify', 'agent.notify.redact']"


# --- notify test ----------------------------------------------------------------------------


def test_test_message_follows_the_language(hooks):
    hook = hooks()
    sender = AppriseSender([hook.url()], None, {}, timeout=5)
    [(shown, english)] = sender.test_all(language="en")
    [(_, chinese)] = sender.test_all()
    assert english.ok and chinese.ok and shown == f"json://127.0.0.1:{hook.port}/hook"
    assert [p["title"] for _, p in hook.posts] == [
        "[TEST] invoice-agent test",
        "【测试】invoice-agent test",
    ]
    assert hook.posts[0][1]["message"] == "This is a test message from invoice-agent."
    assert hook.posts[1][1]["message"].startswith("这是一条测试消息。")
    with pytest.raises(ValueError, match="language"):
        sender.test_all(language="fr")
