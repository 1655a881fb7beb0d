"""Property tests of the line parsers: whatever a log holds, a line gives an Event or a counted
ParseFailure with a reason, and a hostile regex costs a bounded time per line.

`Parser.parse` has a last-resort `except Exception` turning an unexpected error into a failure
whose reason starts with "parser error"; a line reaching it is a bug the safety net hid, so
these properties also refuse that reason.

The catastrophic-pattern property runs in a child interpreter (this file run as a script): if
the per-match time limit ever stopped working the match would hold the GIL for hours, and a
hung test run helps nobody.
"""

from __future__ import annotations

import json
import string
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.parse import ParseSpec, build_parser
from agent.parse.regex_lines import MATCH_TIMEOUT
from agent.parse.values import MAX_LATENCY_MS
from agent.types import READABLE_FIELDS, Event, ParseFailure, RawLine

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=timezone(timedelta(hours=8)))
FAST = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

SPECS = {
    "json": ParseSpec(name="upload", format="json",
                      fields={"ts": "time", "invoice_no": "fphm", "status": "result",
                              "latency_ms": "meta.cost", "amount": "je"},
                      values={"status": {"成功": "ok", "失败": "failed", "1": "ok"},
                              "level": {"W": "warning"}}),
    "json_plain": ParseSpec(name="plain", format="json", timestamp_format="%d/%m %H:%M"),
    "regex": ParseSpec(name="erp", format="regex",
                       pattern=r"^(?P<ts>\S+ \S+) (?P<level>\w+) (?P<event>\S+)"
                               r"(?: 金额=(?P<amount>\S+))?(?: 耗时=(?P<latency_ms>\S+))?"
                               r"(?: (?P<message>.*))?$",
                       values={"event": {"同步": "sync"}}),
    "syslog": ParseSpec(name="system", format="syslog",
                        pattern=r"invoice (?P<invoice_no>\d+) (?P<status>\w+)"),
}
PARSERS = {kind: build_parser(spec, clock=lambda: NOW) for kind, spec in SPECS.items()}


def parse(kind: str, text: str, **raw: bool) -> Event | ParseFailure:
    result = PARSERS[kind].parse(RawLine(SPECS[kind].name, "/var/log/x.log", 3, text, **raw))
    check(result)
    return result


def check(result: Event | ParseFailure) -> None:
    """What every parse result must look like, whatever the line."""
    if isinstance(result, ParseFailure):
        assert result.reason and not result.reason.startswith("parser error"), result
        assert len(result.text) <= 2003  # a sample, not the whole line
        return
    assert isinstance(result, Event)
    assert result.ts.tzinfo is not None and result.ts.utcoffset() == timedelta(hours=8)
    assert result.ts <= NOW + timedelta(days=1)  # spec.max_future
    if result.latency_ms is not None:
        assert 0 <= result.latency_ms <= MAX_LATENCY_MS
    if result.amount is not None:  # decimal text that reads back as a finite number
        assert Decimal(result.amount).is_finite()
    json.dumps(dict(result.extra))  # what the store writes must serialise


# -- arbitrary text ----------------------------------------------------------------------------

LINES = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("utf-8", errors="replace")),
    st.binary(max_size=300).map(lambda b: b.decode("gb18030", errors="replace")),
    # text near each format, so the fuzzing reaches past the first check
    st.tuples(st.sampled_from(["{", '{"time": ', "<13>1 ", "<34>", "Nov  2 09:00:01 ",
                               "2026-11-02 09:00:01 ", "2026-11-02T09:00:01+08:00 ", "\ufeff"]),
              st.text(max_size=200)).map("".join),
)


@FAST
@given(kind=st.sampled_from(sorted(SPECS)), text=LINES, truncated=st.booleans(),
       replaced=st.booleans())
def test_any_text_gives_an_event_or_a_counted_failure(kind, text, truncated, replaced):
    result = parse(kind, text, truncated=truncated, replaced=replaced)
    if isinstance(result, ParseFailure) and truncated:
        assert result.reason.endswith("the line was truncated")


# -- JSON records of any shape -----------------------------------------------------------------

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["2026-11-02 09:00:01", "1793581200", "1793581200123", "1e400", "-0",
                     "¥1,234.50", "120ms", "1.2s", "3秒", "9" * 30, "成功", "NaN", "Infinity",
                     "2026年11月2日", "Nov  2 09:00:01", "0x1F", "١٢٣"]),
)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
KEYS = st.sampled_from(["time", "ts", "fphm", "result", "meta", "je", "amount", "status",
                        "level", "latency_ms", "cost", "event", "message", "extra", ""])


@FAST
@given(record=st.dictionaries(st.one_of(KEYS, st.text(max_size=10)), JSON_VALUES, max_size=8),
       meta=st.dictionaries(st.sampled_from(["cost", "x"]), SCALARS, max_size=2),
       kind=st.sampled_from(["json", "json_plain"]))
def test_any_json_object_gives_an_event_or_a_counted_failure(record, meta, kind):
    record.setdefault("meta", meta)
    result = parse(kind, json.dumps(record, ensure_ascii=False))  # checked by check()
    assert isinstance(result, (Event, ParseFailure))


@FAST
@given(depth=st.integers(1, 200_000), opener=st.sampled_from(["[", '{"a":']))
def test_deeply_nested_json_is_a_failure_not_a_crash(depth, opener):
    # never closed: a counted failure, however deep
    assert isinstance(parse("json", '{"time": 1, "x": ' + opener * depth), ParseFailure)


@FAST
@given(digits=st.integers(4000, 20000), key=st.sampled_from(["time", "je", "meta", "x"]))
def test_numbers_too_long_to_read_are_a_failure_or_kept_aside(digits, key):
    result = parse("json", '{"time": "2026-11-02 09:00:01", "%s": %s}' % (key, "7" * digits))
    assert isinstance(result, (Event, ParseFailure))


# -- syslog lines built from their parts ------------------------------------------------------

@FAST
@given(pri=st.one_of(st.none(), st.integers(0, 999)),
       stamp=st.one_of(st.sampled_from(["Nov  2 09:00:01", "Feb 29 23:59:59.999999",
                                        "Dec 31 23:59:60", "Jan  1 00:00:00",
                                        "2026-11-02T09:00:01.5+08:00", "2026-13-45T99:99"]),
                       st.from_regex(r"\A[A-Z][a-z]{2} +\d{1,2} \d{1,2}:\d\d:\d\d\Z")),
       host=st.from_regex(r"\A[^\s]{1,12}\Z"),
       tag=st.one_of(st.just(""), st.from_regex(r"\A[a-z]{1,8}(\[[^\]]{0,6}\])?: \Z")),
       message=st.text(max_size=80))
def test_rfc3164_shaped_lines_give_an_event_or_a_failure(pri, stamp, host, tag, message):
    head = f"<{pri}>" if pri is not None else ""
    result = parse("syslog", f"{head}{stamp} {host} {tag}{message}")
    assert isinstance(result, (Event, ParseFailure))


@FAST
@given(pri=st.integers(0, 999),
       fields=st.lists(st.one_of(st.just("-"), st.from_regex(r"\A[^\s]{1,10}\Z")),
                       min_size=5, max_size=5),
       sd=st.one_of(st.just("-"), st.from_regex(r'\A(\[[a-z@0-9]{1,6}( [a-z]{1,4}="[^"]*")*\])+\Z'),
                    st.text(max_size=30)),
       message=st.text(max_size=60))
def test_rfc5424_shaped_lines_give_an_event_or_a_failure(pri, fields, sd, message):
    ts, host, app, procid, msgid = fields
    result = parse("syslog", f"<{pri}>1 {ts} {host} {app} {procid} {msgid} {sd} {message}")
    assert isinstance(result, (Event, ParseFailure))


# -- long lines and the regex time bound -------------------------------------------------------

@settings(max_examples=20, deadline=None, database=None)
@given(head=st.text(max_size=40), filler=st.sampled_from(["a", " ", "=", "发票", "x y"]),
       size=st.integers(10_000, 200_000), kind=st.sampled_from(sorted(SPECS)))
def test_long_lines_are_parsed_or_refused_quickly(head, filler, size, kind):
    start = time.monotonic()
    parse(kind, "2026-11-02 09:00:01 INFO " + head + filler * (size // len(filler)))
    assert time.monotonic() - start < 2.0


CATASTROPHIC = [r"^(?P<ts>\S+) (?P<message>(a|aa)+)$", r"^(?P<ts>\S+) (?P<message>(a+)+)$",
                r"^(?P<ts>\S+) (?P<message>(\w+\s?)*)$", r"(?P<ts>(.*a){12})$",
                r"^(?P<ts>\S+) (?P<message>(a|a?)+b)"]


def catastrophic_property() -> None:
    """Run in a child interpreter by the test below; exits non-zero if the property fails."""

    @settings(max_examples=25, deadline=None, database=None, print_blob=True)
    @given(pattern=st.sampled_from(CATASTROPHIC),
           run=st.integers(25, 5000), tail=st.sampled_from(["!", " ", "b!", "\n"]),
           kind=st.sampled_from(["regex", "syslog"]))
    def bounded(pattern: str, run: int, tail: str, kind: str) -> None:
        if kind == "syslog":
            spec = ParseSpec(name="s", format="syslog", pattern=pattern.replace("^", ""))
            line = "<13>Nov  2 09:00:01 host prog: 2026-11-02T09:00:00 " + "a" * run + tail
        else:
            spec = ParseSpec(name="s", format="regex", pattern=pattern)
            line = "2026-11-02T09:00:00 " + "a" * run + tail
        parser = build_parser(spec, clock=lambda: NOW)
        start = time.monotonic()
        result = parser.parse(RawLine("s", "/x.log", 1, line))
        took = time.monotonic() - start
        # the limit applies to each search: a line is searched at most once per pattern
        assert took < MATCH_TIMEOUT + 1.0, (pattern, run, tail, took)
        check(result)

    bounded()


def test_a_catastrophic_pattern_on_long_lines_returns_within_its_time_bound():
    done = subprocess.run([sys.executable, __file__], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


# -- regex specs of any pattern ---------------------------------------------------------------

@settings(max_examples=100, deadline=None, database=None)
@given(pattern=st.one_of(
    st.text(alphabet=string.printable, max_size=30),
    st.tuples(st.just("(?P<ts>"), st.text(alphabet="\\.*+?()[]{}|^$adsw0-9,", max_size=15),
              st.just(")"), st.text(alphabet="\\.*+?()[]{}|^$adsw0-9,P<>", max_size=15))
    .map("".join)),
    line=st.text(max_size=80))
def test_any_operator_pattern_is_refused_at_build_or_parses_every_line(pattern, line):
    try:
        parser = build_parser(ParseSpec(name="s", format="regex", pattern=pattern),
                              clock=lambda: NOW)
    except ValueError as exc:
        assert str(exc).startswith(("pattern:", "fields:")), exc
        return
    result = parser.parse(RawLine("s", "/x.log", 1, "2026-11-02 09:00:01 " + line))
    check(result)


@settings(max_examples=60, deadline=None, database=None)
@given(fields=st.dictionaries(st.sampled_from(READABLE_FIELDS),
                              st.text(max_size=8), max_size=4),
       values=st.dictionaries(st.sampled_from(READABLE_FIELDS),
                              st.dictionaries(st.text(max_size=5), st.text(max_size=5),
                                              max_size=3), max_size=3),
       fmt=st.one_of(st.none(), st.text(max_size=12)),
       kind=st.sampled_from(["json", "syslog"]),
       record=st.dictionaries(st.text(max_size=8), SCALARS, max_size=6))
def test_any_field_mapping_is_refused_at_build_or_parses_every_line(fields, values, fmt, kind,
                                                                   record):
    spec = ParseSpec(name="s", format=kind, fields=fields, values=values, timestamp_format=fmt)
    try:
        parser = build_parser(spec, clock=lambda: NOW)
    except ValueError as exc:
        assert str(exc).startswith(("fields", "values", "timestamp_format")), exc
        return
    line = json.dumps(record, ensure_ascii=False) if kind == "json" else \
        "<13>Nov  2 09:00:01 host prog: " + " ".join(map(str, record.values()))
    check(parser.parse(RawLine("s", "/x.log", 1, line)))


if __name__ == "__main__":
    catastrophic_property()
