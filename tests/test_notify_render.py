"""Rendering alert transitions into what the on-call person reads on a phone."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from agent.notify.console import print_transition
from agent.notify.render import WECOM_TEXT_LIMIT, render, truncate_utf8
from agent.types import Transition

CST = timezone(timedelta(hours=8))


def transition(**changes) -> Transition:
    base = Transition(
        ts=datetime(2026, 11, 2, 10, 5, tzinfo=CST),
        rule="upload_failure_rate",
        kind="rule",
        severity="critical",
        state="firing",
        labels={"source": "upload", "host": "inv01"},
        summary={"zh": "上传失败率 35%（阈值 10%）", "en": "upload failure rate 35% (limit 10%)"},
        fingerprint="fp1",
        reason="first notification",
    )
    return replace(base, **changes)


def wire_bytes(title: str, body: str) -> int:
    """What WeCom counts: apprise sends title CRLF body."""
    return len(f"{title}\r\n{body}".encode())


# --- titles -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "state", "severity", "expected"),
    [
        ("zh", "firing", "critical", "【告警·严重】upload_failure_rate"),
        ("zh", "firing", "warning", "【告警·警告】upload_failure_rate"),
        ("zh", "resolved", "critical", "【恢复】upload_failure_rate"),
        ("en", "firing", "critical", "[FIRING critical] upload_failure_rate"),
        ("en", "resolved", "warning", "[RESOLVED] upload_failure_rate"),
    ],
)
def test_title_says_state_severity_and_rule(language, state, severity, expected):
    title, _ = render(transition(state=state, severity=severity), language)
    assert title == expected


def test_chinese_is_the_default_language():
    title, body = render(transition())
    assert title.startswith("【告警")
    assert body.startswith("上传失败率 35%")


# --- body ---------------------------------------------------------------------------------


def test_zh_body_lists_summary_labels_time_and_reason_one_per_line():
    _, body = render(transition(), "zh")
    assert body.splitlines() == [
        "上传失败率 35%（阈值 10%）",
        "标签：host=inv01 source=upload",
        "时间：2026-11-02T10:05:00+08:00",
        "原因：首次通知",
    ]


def test_en_body_keeps_the_events_own_offset():
    _, body = render(transition(reason="repeat interval elapsed"), "en")
    assert body.splitlines() == [
        "upload failure rate 35% (limit 10%)",
        "Labels: host=inv01 source=upload",
        "Time: 2026-11-02T10:05:00+08:00",
        "Reason: repeat interval elapsed",
    ]


def test_body_shows_line_number_for_alerts_about_one_line():
    _, body = render(transition(line_no=4127), "en")
    assert "Line: 4127" in body.splitlines()


def test_body_without_labels_has_no_empty_label_line():
    _, body = render(transition(labels={}), "zh")
    assert not any(line.startswith("标签") for line in body.splitlines())


@pytest.mark.parametrize(
    ("summary", "language", "first_line"),
    [
        # rule written in English only: zh readers still get the English text
        ({"en": "upload stalled"}, "zh", "upload stalled"),
        # rule written in Chinese only
        ({"zh": "上传停止"}, "en", "上传停止"),
        # blank template counts as missing
        ({"zh": "  ", "en": "upload stalled"}, "zh", "upload stalled"),
        # no message at all: the rule name, never an empty alert
        ({}, "zh", "upload_failure_rate"),
    ],
)
def test_summary_falls_back_to_other_language_then_rule_name(summary, language, first_line):
    _, body = render(transition(summary=summary), language)
    assert body.splitlines()[0] == first_line


def test_unknown_language_is_refused():
    with pytest.raises(ValueError, match="language"):
        render(transition(), "fr")


# --- byte limits --------------------------------------------------------------------------


def test_long_chinese_summary_fits_wecom_limit_and_keeps_metadata():
    tr = transition(summary={"zh": "发票 " + "未同步发票号码列表" * 400})
    title, body = render(tr, "zh")
    assert wire_bytes(title, body) <= WECOM_TEXT_LIMIT
    lines = body.splitlines()
    assert lines[0].endswith("…")  # the reader can tell it was cut
    assert lines[-2:] == ["时间：2026-11-02T10:05:00+08:00", "原因：首次通知"]
    body.encode("utf-8")  # no half character left at the cut


def test_short_message_is_not_touched_by_the_limit():
    assert render(transition(), "zh", max_bytes=WECOM_TEXT_LIMIT) == render(
        transition(), "zh", max_bytes=None
    )


def test_tiny_budget_still_yields_valid_text_within_limit():
    title, body = render(transition(summary={"zh": "很长" * 100}), "zh", max_bytes=80)
    assert wire_bytes(title, body) <= 80


@pytest.mark.parametrize(
    ("text", "max_bytes", "expected"),
    [
        ("abc", 10, "abc"),  # fits: unchanged
        ("abcdef", 5, "ab…"),  # ascii: 2 bytes + 3-byte ellipsis
        ("发票发票", 7, "发…"),  # 3+3 would leave no room for the ellipsis
        ("发票发票", 8, "发…"),  # one spare byte is not half a character
        ("发票发票", 2, ""),  # marker does not fit, no whole character either
        ("ab\r\ncdef", 6, "ab…"),  # never split a CRLF pair
        ("abc", 0, ""),
    ],
)
def test_truncate_utf8_cuts_on_character_boundaries(text, max_bytes, expected):
    cut = truncate_utf8(text, max_bytes)
    assert cut == expected
    assert len(cut.encode("utf-8")) <= max_bytes


def test_truncate_utf8_without_room_for_marker_cuts_bare():
    assert truncate_utf8("abcdef", 2) == "ab"


# --- console ------------------------------------------------------------------------------


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_console_prints_one_plain_line_per_transition():
    out = io.StringIO()
    tr = transition(
        rule="upload_outage",
        summary={"zh": "上传超时率 100%\n持续 5 分钟"},
        labels={"source": "upload"},
    )
    print_transition(tr, "zh", out)
    assert out.getvalue() == (
        "2026-11-02 10:05:00+08:00 FIRING   critical upload_outage "
        "上传超时率 100% 持续 5 分钟 (source=upload)\n"
    )


def test_console_colours_only_on_a_terminal(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    tty, pipe = FakeTty(), io.StringIO()
    print_transition(transition(state="resolved"), "en", tty)
    print_transition(transition(state="resolved"), "en", pipe)
    assert tty.getvalue().startswith("\033[32m") and tty.getvalue().endswith("\033[0m\n")
    assert "\033" not in pipe.getvalue()
    assert "RESOLVED" in pipe.getvalue()


def test_no_color_env_disables_colour_on_a_terminal(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    tty = FakeTty()
    print_transition(transition(), "en", tty)
    assert "\033" not in tty.getvalue()
