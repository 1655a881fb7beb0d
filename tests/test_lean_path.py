"""The lean per-line path decides exactly as the plain one: msgspec's JSON decoder with the
standard library's as fallback, conversions memoised per field value, timestamps made from
their minute and carrying their POSIX time, pattern rules skipping messages without their
literals. Each shortcut can be switched off here, which gives the reference: the replay of the
demo day (every source, rule, the ledger and the model) must make the same transitions and the
same messages, byte for byte, both ways.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agent.detect.pattern as pattern_module
import agent.parse.base as parse_base
import agent.parse.json_lines as json_lines
from agent.demo import prepare
from agent.notify.render import jsonl_record
from agent.parse import ParseSpec, build_parser
from agent.parse.timestamps import Stamp, TimestampReader, load_zone
from agent.replay import configured_files, replay
from agent.routing.router import digest
from agent.types import Event, ParseFailure, RawLine
from agent.wiring import load_all


def _refuse(text: str) -> Any:
    raise ValueError("reference: the standard library decodes every line")


def plain_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shortcut off: what the pipeline did before them."""
    monkeypatch.setattr(json_lines, "_FAST", _refuse)
    monkeypatch.setattr(parse_base, "_MEMO_FIELDS", frozenset())
    monkeypatch.setattr(TimestampReader, "_in_minute", lambda self, text: None)
    monkeypatch.setattr(Stamp, "timestamp", datetime.timestamp)
    monkeypatch.setattr(pattern_module, "required_literals", lambda pattern: None)


def replayed(config: Path) -> tuple[list[str], list[str]]:
    loaded, rules = load_all(config, notify=False, batch=True)
    result = replay(loaded, rules, configured_files(loaded))
    transitions = [json.dumps(jsonl_record(t, "zh"), ensure_ascii=False, sort_keys=True)
                   for t in result.transitions]
    notices = [json.dumps(digest(n), ensure_ascii=False, sort_keys=True)
               for n in result.notices]
    return transitions, notices


def test_the_demo_day_decides_the_same_with_and_without_the_shortcuts(tmp_path, monkeypatch):
    config, _ = prepare(tmp_path)
    lean = replayed(config)
    with monkeypatch.context() as m:
        plain_path(m)
        reference = replayed(config)
    transitions, notices = lean
    assert len(transitions) >= 20 and len(notices) >= 15  # the demo's incidents, all there
    assert transitions == reference[0]
    assert notices == reference[1]


# -- the JSON decoders give the same records ------------------------------------------------

SPEC = ParseSpec(name="upload", format="json",
                 fields={"ts": "time", "event": "action", "invoice_no": "fphm", "status": "result",
                         "latency_ms": "cost", "error_code": "code", "amount": "je",
                         "level": "lvl", "host": "h.name"},
                 values={"status": {"成功": "ok", "失败": "failed", "1": "ok", "true": "ok"}},
                 timezone="Asia/Shanghai", max_future=timedelta(days=3650))

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**25, 10**25),
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
    st.sampled_from(["成功", "失败", " ok ", "OK", "1.50", "¥1,234.50", "120ms", "1.2s", "abc",
                     "", "E1001", "\ud800x", "tab\there", "2026-11-02 09:00:01"]),
    st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "name", "x"]), inner,
                                                 max_size=3)), max_leaves=6)
KEYS = ["time", "action", "fphm", "result", "cost", "code", "je", "lvl", "h", "retry", "note"]
TIMES = st.sampled_from(["2026-11-02 09:00:01", "2026-11-02T09:00:59+08:00", 1762045201,
                         "1762045201123", "2026/11/02 09:00:01", "bad", None])


@st.composite
def lines(draw: st.DrawFn) -> str:
    record = {k: draw(values) for k in draw(st.lists(st.sampled_from(KEYS), unique=True))}
    record["time"] = draw(TIMES)
    text = json.dumps(record, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):  # numbers with written digits: 1.50, 1E+5
        text = text.replace('"1.50"', "1.50").replace('"-0.10"', "-0.10")
    mangle = draw(st.sampled_from(["", "cut", "tail", "nan", "raw-tab"]))
    if mangle == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    elif mangle == "tail":
        text += draw(st.sampled_from([" ", "x", "}", "\t"]))
    elif mangle == "nan":
        text = text.replace("null", "NaN", 1)
    elif mangle == "raw-tab":
        text = text.replace("\\t", "\t")
    return text


def _same(a: Event | ParseFailure, b: Event | ParseFailure) -> None:
    assert type(a) is type(b)
    assert a == b
    if isinstance(a, Event) and isinstance(b, Event):
        assert a.ts.isoformat() == b.ts.isoformat() and a.ts.timestamp() == b.ts.timestamp()
        assert [type(v) for v in a[1:]] == [type(v) for v in b[1:]]  # "1.50" is not 1.5
        assert repr(dict(a.extra)) == repr(dict(b.extra))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines(), min_size=1, max_size=8))
def test_json_lines_parse_the_same_with_either_decoder_and_memo(texts):
    clock = lambda: datetime(2026, 11, 2, 12, 0, tzinfo=load_zone("Asia/Shanghai"))  # noqa: E731
    lean = build_parser(SPEC, clock)
    with pytest.MonkeyPatch.context() as m:
        plain_path(m)
        reference = build_parser(SPEC, clock)
        expected = [reference.parse(RawLine("upload", "/l", i, t)) for i, t in enumerate(texts)]
    got = [lean.parse(RawLine("upload", "/l", i, t)) for i, t in enumerate(texts)]
    # and again: the second time every value comes from the memo
    again = [lean.parse(RawLine("upload", "/l", i, t)) for i, t in enumerate(texts)]
    assert got == expected and again == expected
    for a, b, c in zip(got, again, expected, strict=True):
        _same(a, c)  # types too: "1.50" is not 1.5, a Stamp's POSIX time is the datetime's
        _same(b, c)


def test_numbers_keep_their_written_digits_through_the_fast_decoder():
    parser = build_parser(SPEC)
    ev = parser.parse(RawLine("upload", "/l", 1, '{"time": "2026-11-02 09:00:01", "je": 1234.50, '
                                                  '"code": 1.50, "cost": 2.5e2, "retry": 0.10}'))
    assert isinstance(ev, Event)
    assert ev.amount == "1234.50" and ev.error_code == "1.50" and ev.latency_ms == 250.0
    assert ev.extra["retry"] == 0.1  # extras are plain JSON values, as before
    assert json_lines._FAST('{"a": 1.50}') == {"a": Decimal("1.50")}


# -- timestamps made from their minute ------------------------------------------------------

ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]


@settings(max_examples=300, deadline=None)
@given(zone=st.sampled_from(ZONES),
       when=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31)),
       sep=st.sampled_from([" ", "T"]), second=st.sampled_from(["00", "07", "59", "60", "5x"]))
def test_a_timestamp_from_its_minute_is_the_timestamp_parsed_whole(zone, when, sep, second):
    text = when.strftime(f"%Y-%m-%d{sep}%H:%M:") + second
    reader = TimestampReader(load_zone(zone), max_future=timedelta(days=36500))
    whole = TimestampReader(load_zone(zone), max_future=timedelta(days=36500))
    try:
        expected = whole._convert(text)
    except ValueError as exc:
        with pytest.raises(ValueError) as got:
            reader.read(text)
        assert str(got.value) == str(exc)
        return
    for _ in range(2):  # the minute read, then the cached second
        got_ts = reader.read(text)
        assert got_ts == expected and got_ts.isoformat() == expected.isoformat()
        assert got_ts.fold == expected.fold and got_ts.tzinfo is expected.tzinfo
        assert got_ts.timestamp() == datetime.timestamp(expected)
    neighbour = text[:-2] + "30"
    assert reader.read(neighbour).timestamp() == datetime.timestamp(whole._convert(neighbour))


def test_a_minute_with_a_clock_change_is_parsed_whole():
    berlin = TimestampReader(load_zone("Europe/Berlin"), max_future=timedelta(days=36500))
    # 2026-10-25 02:00-03:00 happens twice in Berlin; the minute path is never taken there
    # where the offset changes inside the minute, and agrees with parsing elsewhere
    for text in ("2026-10-25 02:30:15", "2026-03-29 02:30:15", "2026-10-25 01:59:59"):
        assert berlin.read(text).timestamp() == datetime.timestamp(berlin._convert(text))
