"""A hostile line or pattern costs a bounded time per line; absurd numbers never reach windows.

The catastrophic-pattern cases run in a child process: with `re` they never finished (the
match held the GIL, so not even SIGTERM got through), and a hung test run helps nobody.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone

import pytest

from agent.features import Windows
from agent.parse import ParseSpec, build_parser
from agent.parse.regex_lines import MATCH_CHARS
from agent.types import Event, ParseFailure, RawLine

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=timezone(timedelta(hours=8)))
UPLOAD = ParseSpec(name="upload", format="json", fields={"ts": "time", "latency_ms": "cost"})
# a hang is a failure, not something to wait for
CHILD_LIMIT = 120


def parse_in_child(spec: dict, line: str) -> dict:
    """Parse one line in a fresh interpreter; the ParseFailure or Event, as a dict."""
    script = textwrap.dedent("""\
        import json, sys
        from datetime import datetime, timedelta, timezone
        from agent.parse import ParseSpec, build_parser
        from agent.types import RawLine
        spec, line = json.loads(sys.stdin.read())
        now = datetime(2026, 11, 2, 12, tzinfo=timezone(timedelta(hours=8)))
        parser = build_parser(ParseSpec(**spec), clock=lambda: now)
        result = parser.parse(RawLine(spec["name"], "/x.log", 1, line))
        print(json.dumps({"failure": getattr(result, "reason", None),
                          "text": getattr(result, "text", None),
                          "message": getattr(result, "message", None)}))
        """)
    done = subprocess.run([sys.executable, "-c", script], input=json.dumps([spec, line]),
                          capture_output=True, text=True, timeout=CHILD_LIMIT, check=True)
    return json.loads(done.stdout)


AAA = "2026-11-02T09:00:00 " + "a" * 40 + "!"


def test_catastrophic_pattern_gives_up_on_the_line_and_keeps_a_sample():
    pattern = r"^(?P<ts>\S+) (?P<message>(a|aa)+)$"  # no nested quantifier, still exponential
    got = parse_in_child({"name": "erp", "format": "regex", "pattern": pattern}, AAA)
    assert got["failure"].startswith("pattern took too long")
    assert got["text"] == AAA  # the sample operators see next to the unparsed count


def test_nested_quantifier_pattern_from_the_field_report_finishes():
    # `(a+)+$` on 40 "a" and "!" ran at 95% CPU forever
    got = parse_in_child({"name": "erp", "format": "regex",
                          "pattern": r"^(?P<ts>\S+) (?P<message>(a+)+)$"}, AAA)
    assert got["failure"] == "does not match pattern" or \
        got["failure"].startswith("pattern took too long")


def test_catastrophic_syslog_message_pattern_gives_up_on_the_line():
    line = "<13>Nov  2 09:00:01 host app[1]: " + "a" * 40 + "!"
    got = parse_in_child({"name": "system", "format": "syslog",
                          "pattern": r"^(?P<message>(a|aa)+)$"}, line)
    assert got["failure"].startswith("pattern took too long")


def test_pattern_is_tried_on_the_start_of_an_overlong_line_only():
    spec = ParseSpec(name="erp", format="regex", pattern=r"^(?P<ts>\S+) (?P<message>.*)$")
    parser = build_parser(spec, clock=lambda: NOW)
    line = "2026-11-02T09:00:00 " + "x" * (3 * MATCH_CHARS)
    ev = parser.parse(RawLine("erp", "/x.log", 1, line))
    assert isinstance(ev, Event)
    assert len(ev.message) == MATCH_CHARS - len("2026-11-02T09:00:00 ")
    miss = parser.parse(RawLine("erp", "/x.log", 2, "x" * (3 * MATCH_CHARS)))
    assert isinstance(miss, ParseFailure)
    assert f"only the first {MATCH_CHARS} characters" in miss.reason


# --- numbers ---------------------------------------------------------------------------------


def upload(cost: object, second: int = 3) -> Event:
    line = json.dumps({"time": f"2026-11-02 09:00:0{second}", "cost": cost})
    if isinstance(cost, str) and cost.startswith("raw:"):
        line = line.replace(json.dumps(cost), cost[4:])
    ev = build_parser(UPLOAD, clock=lambda: NOW).parse(RawLine("upload", "/x.log", 1, line))
    assert isinstance(ev, Event), ev
    return ev


@pytest.mark.parametrize("cost", [1e308, "1.7e308", "raw:1e999", "raw:NaN", "raw:Infinity",
                                  "raw:-Infinity", "raw:" + "9" * 400, "1e306 min",
                                  "inf", "nan", 40_000_000_000])
def test_absurd_latency_is_kept_in_extra_not_used(cost):
    ev = upload(cost)
    assert ev.latency_ms is None
    assert "cost" in ev.extra


def test_three_huge_latencies_do_not_make_the_window_average_infinite():
    # "avg inf" in an alert: three latencies near 1e308 summed past the float range
    windows = Windows(["upload"], timedelta(minutes=5), timedelta(0))
    events = [upload(1.7e308, s) for s in (1, 2, 3)] + [upload(120, 4)]
    for ev in events:
        windows.add(ev)
    window = windows.so_far(events[-1])
    assert window is not None
    assert window.features["latency_avg"] == 120.0
    assert window.features["latency_count"] == 1


def test_long_but_plausible_latencies_are_kept():
    assert upload("90 min").latency_ms == 90 * 60 * 1000.0
    assert upload(86_400_000).latency_ms == 86_400_000.0
