"""A notice printed on a terminal (`demo`, `replay --notifications`): a few aligned lines."""

from __future__ import annotations

import io
from datetime import timedelta
from zoneinfo import ZoneInfo

from agent.notify.console import print_notice
from tests.test_notify_templating import NOW, alert, muted, notice


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def group():
    return notice(
        firing=[alert("upload_latency", "warning", zh="上传 p95 延迟 12 秒"),
                alert(zh="上传全部超时\n已持续 5 分钟")],
        resolved=[alert("upload_failure_rate", "warning", "resolved", zh="上传失败率 2%",
                        fired_at=NOW - timedelta(minutes=35))],
        muted=muted("invoice_missing", "model_anomaly"))


def test_a_notice_prints_its_time_what_fires_what_resolved_and_what_it_muted():
    out = io.StringIO()
    print_notice(group(), "zh", out, zone=ZoneInfo("Asia/Shanghai"))
    pad = " " * len("2026-11-02 10:10:00+08:00")
    assert out.getvalue().splitlines() == [
        "2026-11-02 10:10:00+08:00 FIRING   critical upload_outage 上传全部超时 已持续 5 分钟"
        " (source=upload)",
        f"{pad} FIRING   warning  upload_latency 上传 p95 延迟 12 秒 (source=upload)",
        f"{pad} RESOLVED warning  upload_failure_rate 已恢复，持续 35 分钟；现在：上传失败率 2%"
        " (source=upload)",
        f"{pad} MUTED    2: invoice_missing, model_anomaly (inhibited by upload_outage)",
    ]


def test_without_a_zone_the_notice_keeps_its_own_offset():
    out = io.StringIO()
    print_notice(notice(firing=[alert()]), "en", out)
    assert out.getvalue() == ("2026-11-02 02:10:00+00:00 FIRING   critical upload_outage "
                              "every upload timing out (source=upload)\n")


def test_silenced_alerts_say_by_what():
    out = io.StringIO()
    print_notice(notice(firing=[alert()], muted=muted("sync_lag", why="silenced")), "en", out)
    assert out.getvalue().splitlines()[-1].split(None, 1)[1] == \
        "1: sync_lag (silenced (upload_outage))"


def test_lines_are_coloured_by_state_and_severity_only_on_a_terminal(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    tty, pipe = FakeTty(), io.StringIO()
    print_notice(group(), "en", tty)
    print_notice(group(), "en", pipe)
    lines = tty.getvalue().splitlines()
    starts = ["\033[1;31m", "\033[33m", "\033[32m", "\033[2m"]  # critical, warning, resolved, muted
    assert [line.startswith(start) for line, start in zip(lines, starts, strict=True)] == \
        [True] * 4
    assert all(line.endswith("\033[0m") for line in lines)
    assert "\033" not in pipe.getvalue()
