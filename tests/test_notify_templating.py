"""Notices rendered by the Jinja2 templates: what the person on call reads, per language and
channel; sizes in bytes; log text that must not become markup; templates that fail. Shipped
and operator template files are real files; the notices are built by hand."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from agent.notify.markup import WECOM_MARKDOWN_LIMIT, escape_wecom, wecom_content
from agent.notify.render import WECOM_TEXT_LIMIT
from agent.notify.templating import (
    EMAIL_LIMIT,
    NoticeRenderer,
    rule_template_problem,
    template_problems,
)
from agent.types import Muted, Notice, Transition

CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 2, 2, 10, tzinfo=UTC)  # 10:10 in Shanghai
HOSTILE = "**@all** <@zhangsan> [click](http://x) <font color=\"warning\">x</font> &lt;@all&gt;"


def alert(rule: str = "upload_outage", severity: str = "critical", state: str = "firing",
          zh: str = "上传全部超时", en: str = "every upload timing out",
          **changes) -> Transition:
    fields = dict(ts=NOW, rule=rule, kind="rule", severity=severity, state=state,
                  labels={"source": "upload"}, summary={"zh": zh, "en": en},
                  fingerprint="fp-" + rule,
                  reason="resolved" if state == "resolved" else "first notification",
                  fired_at=NOW - timedelta(minutes=5))
    fields.update(changes)
    return Transition(**fields)


def notice(firing=(), resolved=(), muted=(), news=None, **changes) -> Notice:
    firing, resolved = tuple(firing), tuple(resolved)
    severities = [t.severity for t in firing or resolved] or ["warning"]
    rank = {"critical": 3, "warning": 2, "info": 1}
    fields = dict(ts=NOW, key="group-upload", group={"source": "upload"},
                  severity=max(severities, key=rank.__getitem__), firing=firing,
                  resolved=resolved,
                  news=frozenset(t.fingerprint for t in firing + resolved) if news is None
                  else news, muted=tuple(muted),
                  reason="first notification" if firing else "resolved")
    fields.update(changes)
    return Notice(**fields)


def muted(*rules: str, why: str = "inhibited") -> list[Muted]:
    return [Muted(NOW, r, {"source": "upload"}, "fp-" + r, "firing", why, "upload_outage")
            for r in rules]


def size(channel: str, title: str, body: str) -> int:
    """What each channel's limit counts."""
    if channel == "wecom":
        return len(wecom_content(title, body).encode())
    if channel == "email":
        return len(body.encode())
    return len(f"{title}\r\n{body}".encode())


LIMITS = {"wecom": WECOM_MARKDOWN_LIMIT, "email": EMAIL_LIMIT, "text": WECOM_TEXT_LIMIT}
CHANNELS = tuple(LIMITS)


# --- titles and the headline ------------------------------------------------------------


@pytest.mark.parametrize(("language", "firing", "resolved", "expected"), [
    # one alert reads as it always did
    ("en", 1, 0, "[FIRING critical] upload_outage"),
    ("zh", 1, 0, "【告警·严重】upload_outage"),
    # a group: the most severe rule and how many fire
    ("en", 2, 0, "[FIRING critical] upload_outage (+1)"),
    ("zh", 2, 0, "【告警·严重】upload_outage 等 2 条"),
    ("en", 3, 1, "[FIRING critical] upload_outage (+2)"),
    # only resolved news
    ("en", 0, 1, "[RESOLVED] upload_outage"),
    ("zh", 0, 2, "【恢复】upload_outage 等 2 条"),
])
def test_title_says_severity_lead_rule_and_count(language, firing, resolved, expected):
    rules = ["upload_outage", "upload_latency", "model_anomaly"]
    n = notice(firing=[alert(r, "critical" if i == 0 else "warning")
                       for i, r in enumerate(rules[:firing])],
               resolved=[alert(r, "critical" if i == 0 else "warning", "resolved")
                         for i, r in enumerate(rules[:resolved])])
    for channel in CHANNELS:
        assert NoticeRenderer(language).render(n, channel)[0] == expected


def test_headline_is_the_most_severe_firing_alerts_summary_whatever_the_order():
    n = notice(firing=[alert("upload_latency", "warning", zh="上传延迟 12 秒"),
                       alert("upload_outage", "critical", zh="上传全部超时")],
               resolved=[alert("sync_lag", "critical", "resolved", zh="同步滞后 1%")])
    for channel in CHANNELS:
        title, body = NoticeRenderer("zh").render(n, channel)
        assert title == "【告警·严重】upload_outage 等 2 条"
        first = body.splitlines()[0]
        assert "上传全部超时" in first and "延迟" not in first


def test_times_are_shown_in_the_configured_timezone_with_the_offset():
    n = notice(firing=[alert(fired_at=NOW - timedelta(minutes=5))])  # event times in UTC
    _, body = NoticeRenderer("en", timezone="Asia/Shanghai").render(n, "email")
    assert "Time: 2026-11-02 10:10 (UTC+08:00)" in body.splitlines()
    assert "Firing since: 10:05" in body.splitlines()
    _, body = NoticeRenderer("en").render(n, "email")  # no zone: as the event carried it
    assert "Time: 2026-11-02 02:10 (UTC+00:00)" in body.splitlines()


def test_an_alert_that_began_on_another_day_shows_its_date():
    n = notice(firing=[alert(fired_at=NOW - timedelta(hours=11))])
    _, body = NoticeRenderer("zh", timezone="Asia/Shanghai").render(n, "email")
    assert "告警开始：2026-11-01 23:10" in body.splitlines()


@pytest.mark.parametrize(("language", "expected"), [
    ("en", "resolved after 35 min; now: upload failure rate 2%"),
    ("zh", "已恢复，持续 35 分钟；现在：上传失败率 2%"),
])
def test_a_resolved_alert_says_how_long_it_lasted(language, expected):
    n = notice(resolved=[alert("upload_failure_rate", "warning", "resolved", zh="上传失败率 2%",
                               en="upload failure rate 2%",
                               fired_at=NOW - timedelta(minutes=35))])
    for channel in CHANNELS:
        _, body = NoticeRenderer(language).render(n, channel)
        assert expected in body


@pytest.mark.parametrize(("language", "expected"), [
    ("en", "Muted: 2 alerts caused by this: upload_latency, model_anomaly"),
    ("zh", "已屏蔽由此引起的 2 条告警：upload_latency、model_anomaly"),
])
def test_muted_alerts_are_listed_briefly(language, expected):
    # the same alert muted twice (firing, then resolved) counts once
    m = muted("upload_latency", "model_anomaly") + [replace(muted("upload_latency")[0],
                                                            state="resolved")]
    n = notice(firing=[alert()], muted=m)
    for channel in CHANNELS:
        _, body = NoticeRenderer(language).render(n, channel)
        assert expected in body


@pytest.mark.parametrize(("language", "expected"), [
    ("en", "Muted (silenced): 1 alert: sync_lag"),
    ("zh", "已屏蔽（静默）1 条告警：sync_lag"),
])
def test_alerts_muted_by_a_silence_say_so(language, expected):
    n = notice(firing=[alert()], muted=muted("sync_lag", why="silenced"))
    assert expected in NoticeRenderer(language).render(n, "text")[1].splitlines()


def test_other_alerts_and_resolved_ones_are_listed_under_the_headline():
    n = notice(firing=[alert(), alert("upload_latency", "warning", en="p95 12 s",
                                      fired_at=NOW - timedelta(minutes=3))],
               resolved=[alert("sync_lag", "warning", "resolved", en="lag 0 s")])
    _, body = NoticeRenderer("en", timezone="Asia/Shanghai").render(n, "text")
    lines = body.splitlines()
    assert lines[0] == "every upload timing out"
    assert "Also firing (1):" in lines
    assert "- [warning] upload_latency: p95 12 s (since 10:07; source=upload)" in lines
    assert "Resolved (1):" in lines
    assert "- sync_lag: resolved after 5 min; now: lag 0 s" in lines


def test_a_ledger_alert_lists_its_invoice_numbers():
    n = notice(firing=[alert("invoice_missing", kind="ledger", en="3 invoices not synced",
                             values={"invoices": ["24110200001", "24110200002"], "count": 3})])
    _, body = NoticeRenderer("en").render(n, "text")
    assert "Invoices (3): 24110200001, 24110200002 … and 1 more" in body.splitlines()


# --- sizes ------------------------------------------------------------------------------


def crowded_notice() -> Notice:
    """A ledger outage with 600 invoice numbers and 40 more alerts with long Chinese text."""
    lead = alert("invoice_missing", kind="ledger", zh="发票未同步：" + "上传平台无响应" * 10,
                 en="invoices not synced: " + "upload platform silent " * 10,
                 values={"invoices": [f"2411020{i:05d}" for i in range(600)], "count": 600})
    others = [alert(f"rule_{i:02d}", "warning", zh=f"第 {i} 条：" + "同步延迟发票号码缺失" * 8)
              for i in range(30)]
    gone = [alert(f"gone_{i:02d}", "warning", "resolved", zh="已经正常" * 10) for i in range(10)]
    return notice(firing=[lead, *others], resolved=gone)


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("language", ["zh", "en"])
def test_a_crowded_notice_fits_its_channel_keeping_the_headline(channel, language):
    title, body = NoticeRenderer(language).render(crowded_notice(), channel)
    assert size(channel, title, body) <= LIMITS[channel]
    headline = ("发票未同步：" + "上传平台无响应" * 10 if language == "zh"
                else ("invoices not synced: " + "upload platform silent " * 10).rstrip())
    assert headline in body.splitlines()[0]  # the headline survives whole
    assert "rule_00" in body  # the first further alerts are kept


def test_invoice_numbers_go_before_any_further_alert():
    n = crowded_notice()
    n = replace(n, firing=n.firing[:4], resolved=())
    title, body = NoticeRenderer("zh").render(n, "text")
    assert size("text", title, body) <= WECOM_TEXT_LIMIT
    assert all(f"rule_{i:02d}" in body for i in range(3))  # every further alert listed
    assert "241102000599" not in body and "另有 590 张" in body  # the invoice list made room
    assert "发票（600 张）" in body  # their count stays


def test_further_alerts_are_cut_from_the_end_and_the_rest_counted():
    title, body = NoticeRenderer("zh").render(crowded_notice(), "wecom")
    shown = [i for i in range(30) if f"rule_{i:02d}" in body]
    assert shown == list(range(len(shown))) and 0 < len(shown) < 30
    assert f"……另有 {40 - len(shown)} 条" in body


@pytest.mark.parametrize("channel", CHANNELS)
def test_one_huge_chinese_summary_is_cut_on_a_character_boundary(channel):
    n = notice(firing=[alert(zh="发票号码" * 40_000)])  # 480 kB of text in one summary
    title, body = NoticeRenderer("zh").render(n, channel)
    assert size(channel, title, body) <= LIMITS[channel]
    assert body.startswith("发票号码") or body.startswith('<font color="warning">发票号码')
    assert "…" in body
    assert body.encode("utf-8").decode("utf-8") == body
    assert "\ufffd" not in body


# --- escaping ---------------------------------------------------------------------------


def test_escaped_log_text_has_no_markup_left():
    out = escape_wecom(HOSTILE + "\n# heading\n> quote www.example.com `code`")
    for forged in ("*", "@", "<", ">", "[", "]", "://", "#", "`", "&", "\n", "www."):
        assert forged not in out, forged
    assert "＊＊＠all＊＊" in out and "［click］(http：//x)" in out  # still readable


def test_wecom_values_from_alerts_cannot_forge_markup_or_mentions():
    def hostile_notice(text: str) -> Notice:
        return notice(firing=[alert(zh=text, labels={"source": text}, line_no=7, path=text,
                                    values={"invoices": [text], "count": 1}),
                              alert("upload_latency", "warning", zh=text)],
                      resolved=[alert("sync_lag", "warning", "resolved", zh=text)],
                      muted=muted(text), group={"source": text})

    title, body = NoticeRenderer("zh").render(hostile_notice(HOSTILE), "wecom")
    _, benign = NoticeRenderer("zh").render(hostile_notice("上传超时"), "wecom")
    content = wecom_content(title, body)
    assert "@" not in content and "<@" not in content
    assert "](" not in content and "http://" not in content
    assert "**@all**" not in content
    # the only markup is the template's own
    for mark in ("<font", "**", "[", "&"):
        assert content.count(mark) == wecom_content(title, benign).count(mark), mark
    assert "＊＊＠all＊＊ ＜＠zhangsan＞" in content


def test_text_and_email_keep_log_text_as_it_was():
    n = notice(firing=[alert(zh=HOSTILE)])
    for channel in ("text", "email"):
        assert NoticeRenderer("zh").render(n, channel)[1].splitlines()[0] == HOSTILE


# --- operator templates ------------------------------------------------------------------


def write(root, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_an_operator_template_overrides_the_shipped_one_of_the_same_name(tmp_path):
    write(tmp_path, "en/text.j2", "{% block title %}OPS {{ severity }}{% endblock %}"
                                  "{% block body %}{{ lead.rule }}: {{ lead.text }}\n"
                                  "at {{ when }}{% endblock %}")
    r = NoticeRenderer("en", timezone="Asia/Shanghai", templates=tmp_path)
    assert r.render(notice(firing=[alert()]), "text") == (
        "OPS critical", "upload_outage: every upload timing out\nat 2026-11-02 10:10 (UTC+08:00)")
    # the channels it does not override keep the shipped templates
    assert r.render(notice(firing=[alert()]), "email")[0] == "[FIRING critical] upload_outage"


@pytest.mark.parametrize("broken", [
    "{% if %}oops",  # does not compile
    "{{ no_such_name }}",  # undefined: an error, never an empty line
    "{{ also.append(1) }}",  # the sandbox is immutable
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",  # the sandbox refuses internals
    "{{ lead.text | int }}{{ 1 / 0 }}",  # any error while rendering
])
def test_a_broken_operator_template_falls_back_to_the_shipped_one(tmp_path, caplog, broken):
    write(tmp_path, "zh/text.j2", broken)
    n = notice(firing=[alert()])
    with caplog.at_level(logging.WARNING, logger="agent.notify.templating"):
        rendered = NoticeRenderer("zh", templates=tmp_path).render(n, "text")
    assert rendered == NoticeRenderer("zh").render(n, "text")
    assert str(tmp_path / "zh" / "text.j2") in caplog.text


def test_when_no_template_renders_the_plain_built_in_text_is_sent(tmp_path, monkeypatch, caplog):
    ops, shipped = tmp_path / "ops", tmp_path / "shipped"
    write(ops, "en/wecom.j2", "{{ nothing }}")
    write(shipped, "en/wecom.j2", "{% for %}")
    monkeypatch.setattr("agent.notify.templating.SHIPPED", shipped)
    n = notice(firing=[alert(), alert("upload_latency", "warning", en="p95 " + HOSTILE)],
               muted=muted("model_anomaly"))
    with caplog.at_level(logging.WARNING, logger="agent.notify.templating"):
        title, body = NoticeRenderer("en", templates=ops).render(n, "wecom")
    assert title == "[FIRING critical] upload_outage (+1)"
    lines = body.splitlines()
    assert lines[0] == "every upload timing out"
    assert "- [warning] upload_latency: p95 ＊＊＠all＊＊" in body  # still escaped
    assert "Muted: 1 alert caused by this: model_anomaly" in lines
    assert "ops/en/wecom.j2" in caplog.text and "shipped/en/wecom.j2:1" in caplog.text


def test_a_missing_templates_folder_is_logged_and_the_shipped_ones_used(tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="agent.notify.templating"):
        r = NoticeRenderer("en", templates=tmp_path / "nope")
    assert "nope does not exist" in caplog.text
    assert r.render(notice(firing=[alert()]), "text")[0] == "[FIRING critical] upload_outage"


def test_template_problems_name_the_file_and_line(tmp_path):
    write(tmp_path, "zh/wecom.j2", "{% block body %}\n{{ lead.text }\n{% endblock %}")
    write(tmp_path, "en/email.j2", "{{ lead.no_such_field }}")
    write(tmp_path, "en/text.j2", "{{ lead.text }}")
    problems = template_problems(tmp_path)
    assert len(problems) == 2
    assert problems[0].startswith(f"{tmp_path / 'zh' / 'wecom.j2'}:2: ")
    assert problems[1].startswith(f"{tmp_path / 'en' / 'email.j2'}: fails on a sample notice")
    assert "no_such_field" in problems[1]
    assert template_problems(tmp_path / "none") == [
        f"notify templates folder {tmp_path / 'none'} does not exist"]


def test_the_shipped_templates_have_no_problem():
    from agent.notify.templating import SHIPPED
    assert template_problems(SHIPPED) == []


# --- per-rule templates -----------------------------------------------------------------


def test_a_rule_template_writes_its_alerts_line_in_every_channel():
    rules = {"invoice_missing": {"zh": "{{ values.count }} 张发票未同步（{{ labels.source }}）",
                                 "en": "{{ values.count }} invoices not synced"}}
    n = notice(firing=[alert("invoice_missing", kind="ledger", values={"count": 3}),
                       alert("upload_latency", "warning", zh="延迟")])
    for channel in CHANNELS:
        _, body = NoticeRenderer("zh", rule_templates=rules).render(n, channel)
        assert "3 张发票未同步（upload）" in body.splitlines()[0]
        assert "延迟" in body  # a rule without a template keeps its summary


def test_a_rule_template_in_one_language_serves_both():
    rules = {"upload_outage": {"zh": "上传中断 {{ values.failed }} 笔"}}
    n = notice(firing=[alert(values={"failed": 12})])
    _, body = NoticeRenderer("en", rule_templates=rules).render(n, "text")
    assert body.splitlines()[0] == "上传中断 12 笔"


def test_a_rule_templates_values_are_escaped_in_wecom_but_its_markup_is_kept():
    rules = {"upload_outage": {"zh": "**上传中断**：{{ values.message }}"}}
    n = notice(firing=[alert(values={"message": HOSTILE})])
    _, body = NoticeRenderer("zh", rule_templates=rules).render(n, "wecom")
    assert "**上传中断**：＊＊＠all＊＊ ＜＠zhangsan＞" in body


def test_a_broken_rule_template_keeps_the_summary(caplog):
    rules = {"upload_outage": {"zh": "{{ values.nope }}"}, "sync_lag": {"zh": "{% if %}"}}
    n = notice(firing=[alert(), alert("sync_lag", "warning", zh="同步滞后")])
    with caplog.at_level(logging.WARNING, logger="agent.notify.templating"):
        _, body = NoticeRenderer("zh", rule_templates=rules).render(n, "text")
    assert body.splitlines()[0] == "上传全部超时"
    assert "同步滞后" in body
    assert "rule upload_outage" in caplog.text and "rule sync_lag" in caplog.text
    assert rule_template_problem("{% if %}").startswith("line 1: ")
    assert rule_template_problem("{{ values.count }} 张") is None


def test_times_of_events_without_a_zone_change_keep_their_clock():
    n = notice(firing=[alert(ts=datetime(2026, 11, 2, 10, 10, tzinfo=CST),
                             fired_at=datetime(2026, 11, 2, 10, 5, tzinfo=CST))],
               ts=datetime(2026, 11, 2, 10, 10, tzinfo=CST))
    _, body = NoticeRenderer("zh", timezone="Asia/Shanghai").render(n, "text")
    assert "时间：2026-11-02 10:10 (UTC+08:00)" in body.splitlines()
