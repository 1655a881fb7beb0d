"""Tumbling windows in event time: the features operators write rules against."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from agent.features import FEATURES, Windows
from agent.types import Event

TZ = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=TZ)
FIVE = timedelta(minutes=5)
LATE = timedelta(seconds=30)


def ev(second: float, status: str | None = "ok", latency: float | None = None,
       code: str | None = None, source: str = "upload", level: str | None = None) -> Event:
    return Event(ts=T0 + timedelta(seconds=second), source=source, event="upload",
                 status=status, latency_ms=latency, error_code=code, level=level)


# Ten uploads in 09:00-09:05 with latencies 100..1000 ms.
KNOWN = [
    ev(10, "ok", 100), ev(20, "ok", 200), ev(30, "ok", 300), ev(40, "ok", 400),
    ev(50, "ok", 500),
    ev(60, "failed", 600, "1001"), ev(70, "failed", 700, "1001"),
    ev(80, None, 800, "1002"),  # no status, but an error code: a failure
    ev(90, "timeout", 900, "NET_TIMEOUT"), ev(100, "timeout", 1000, level="ERROR"),
]


def windows(*sources: str) -> Windows:
    return Windows(sources or ("upload",), FIVE, LATE)


def test_window_features_from_known_events():
    w = windows()
    for e in KNOWN:
        assert w.add(e)
    (win,) = w.advance(T0 + FIVE + LATE)
    assert (win.source, win.start, win.end) == ("upload", T0, T0 + FIVE)
    f = win.features
    assert set(f) == set(FEATURES)
    assert (f["count"], f["ok"], f["failed"], f["timeout"]) == (10, 5, 3, 2)
    assert f["failure_rate"] == 0.5  # (failed + timeout) / count
    assert f["timeout_rate"] == 0.2
    assert (f["latency_p50"], f["latency_p95"], f["latency_max"]) == (500, 1000, 1000)
    assert f["latency_count"] == 10 and f["latency_avg"] == 550
    assert f["error_codes"] == {"1001": 2, "1002": 1, "NET_TIMEOUT": 1}
    assert (f["top_error_code"], f["top_error_code_count"]) == ("1001", 2)
    assert f["error_count"] == 4 and f["distinct_error_codes"] == 3
    assert f["errors"] == 1
    assert f["window_minutes"] == 5


def test_event_without_status_but_with_error_code_counts_as_failed():
    w = windows()
    w.add(ev(5, None, code="2103"))
    w.add(ev(6, None))  # neither: not a failure, just counted
    (win,) = w.advance(T0 + FIVE + LATE)
    assert (win.features["count"], win.features["failed"], win.features["ok"]) == (2, 1, 0)
    assert win.features["failure_rate"] == 0.5


def test_percentiles_are_values_that_really_occurred():
    w = windows()
    for i, ms in enumerate([5, 1, 4, 2, 3]):
        w.add(ev(i, latency=ms))
    (win,) = w.advance(T0 + FIVE + LATE)
    assert (win.features["latency_p50"], win.features["latency_p95"]) == (3, 5)


def test_window_waits_for_lateness_before_closing():
    w = windows()
    w.add(ev(10))
    assert w.advance(T0 + FIVE + LATE - timedelta(seconds=1)) == []
    w.add(ev(299))  # 09:04:59, written late but within the allowed lateness
    (win,) = w.advance(T0 + FIVE + LATE)
    assert win.features["count"] == 2


def test_late_events_are_counted_and_left_out():
    w = windows()
    w.add(ev(10))
    (first,) = w.advance(T0 + FIVE + LATE)
    assert w.add(ev(20)) is False  # its window already closed
    assert w.add(ev(310))  # the next window is still open
    (second,) = w.advance(T0 + 2 * FIVE + LATE)
    assert first.features["count"] == 1
    assert second.features["count"] == 1 and second.start == T0 + FIVE


def test_quiet_sources_get_empty_windows():
    w = windows("upload", "erp")
    w.start(T0)
    w.add(ev(10))
    out = w.advance(T0 + 3 * FIVE + LATE)
    erp = [x for x in out if x.source == "erp"]
    assert [x.start for x in erp] == [T0, T0 + FIVE, T0 + 2 * FIVE]
    for x in erp:
        assert x.features["count"] == 0
        assert x.features["failure_rate"] == 0.0 and x.features["latency_p95"] == 0.0
        assert x.features["top_error_code"] == ""
    upload = [x.features["count"] for x in out if x.source == "upload"]
    assert upload == [1, 0, 0]


def test_windows_close_in_time_order_per_source():
    w = windows()
    w.add(ev(10))
    w.add(ev(4 * 300 + 10))
    out = w.advance(T0 + 5 * FIVE + LATE)
    starts = [x.start for x in out]
    assert starts == sorted(starts) and len(starts) == 5
    assert [x.features["count"] for x in out] == [1, 0, 0, 0, 1]


def test_state_and_restore_continue_identically():
    # one Windows runs straight through; another is checkpointed (through JSON, as the store
    # keeps it) half way and restored into a fresh object; both must then emit the same windows
    events = [ev(s * 37, "failed" if s % 4 == 0 else "ok", 100 + s, "1001" if s % 4 == 0 else None)
              for s in range(60)]
    straight, before = windows("upload", "erp"), windows("upload", "erp")
    for w in (straight, before):
        w.start(T0)
    out_straight, out_before = [], []
    for i, e in enumerate(events):
        now = e.ts
        straight.add(e)
        out_straight += straight.advance(now)
        if i < 30:
            before.add(e)
            out_before += before.advance(now)
        elif i == 30:
            after = windows("upload", "erp")
            after.restore(json.loads(json.dumps(before.state())))
            after.add(e)
            out_before += after.advance(now)
        else:
            after.add(e)
            out_before += after.advance(now)
    end = events[-1].ts + 2 * FIVE
    out_straight += straight.advance(end)
    out_before += after.advance(end)
    assert len(out_straight) > 10
    assert [(x.source, x.start, dict(x.features)) for x in out_before] == [
        (x.source, x.start, dict(x.features)) for x in out_straight]
    late_event = ev(0)
    assert straight.add(late_event) is after.add(late_event) is False


def test_a_huge_window_keeps_percentiles_within_one_percent_and_a_small_checkpoint():
    import math
    import random

    rnd = random.Random(7)
    samples = [rnd.lognormvariate(5.5, 0.8) for _ in range(50_000)]  # a month-end window
    w = Windows(["upload"], FIVE, LATE)
    for i, v in enumerate(samples):
        w.add(ev(i * 0.005, "ok", v))
    state = json.dumps(w.state())
    (win,) = w.advance(T0 + FIVE + LATE)
    exact = sorted(samples)
    for q, name in ((0.5, "latency_p50"), (0.95, "latency_p95")):
        truth = exact[math.ceil(q * len(exact)) - 1]
        assert abs(win.features[name] - truth) / truth < 0.01
    assert win.features["latency_max"] == exact[-1]
    assert win.features["latency_count"] == 50_000
    assert len(state) < 100_000  # not every sample: ~2k exact values plus buckets
