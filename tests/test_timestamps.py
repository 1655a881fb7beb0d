"""Reading log timestamps: formats, timezones, year-less syslog stamps, the future guard."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from agent.parse.timestamps import TimestampError, TimestampReader, load_zone

SHANGHAI = load_zone("Asia/Shanghai")
CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=CST)


def reader(now: datetime = NOW, fmt: str | None = None, **kwargs: Any) -> TimestampReader:
    return TimestampReader(SHANGHAI, fmt, clock=lambda: now, **kwargs)


def read(value: Any, **kwargs: Any) -> datetime:
    return reader(**kwargs).read(value)


def cst(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=CST)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2026-11-02 09:00:01", cst(2026, 11, 2, 9, 0, 1)),  # naive: the source's timezone
        ("2026-11-02T09:00:01+08:00", cst(2026, 11, 2, 9, 0, 1)),
        ("2026-11-02T01:00:01Z", cst(2026, 11, 2, 9, 0, 1)),  # UTC, shown in local time
        ("2026-11-02T09:00:01.250+0800", cst(2026, 11, 2, 9, 0, 1, 250000)),
        ("2026-11-02 09:00:01,250", cst(2026, 11, 2, 9, 0, 1, 250000)),  # Python logging
        ("20261102T090001", cst(2026, 11, 2, 9, 0, 1)),
        ("20261102090001", cst(2026, 11, 2, 9, 0, 1)),
        ("20261102", cst(2026, 11, 2)),
        ("2026/11/02 09:00:01", cst(2026, 11, 2, 9, 0, 1)),
        ("2026/11/2 9:00:01", cst(2026, 11, 2, 9, 0, 1)),
        ("2026-11-2 9:00:01", cst(2026, 11, 2, 9, 0, 1)),
        ("2026年11月02日 09:00:01", cst(2026, 11, 2, 9, 0, 1)),
        ("02/Nov/2026:09:00:01 +0800", cst(2026, 11, 2, 9, 0, 1)),  # nginx
        ("  2026-11-02 09:00:01 ", cst(2026, 11, 2, 9, 0, 1)),
    ],
)
def test_written_times_are_read_in_the_sources_timezone(written: str, expected: datetime) -> None:
    ts = read(written)
    assert ts == expected
    assert ts.utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1793581201, cst(2026, 11, 2, 9, 0, 1)),
        ("1793581201", cst(2026, 11, 2, 9, 0, 1)),
        (1793581201123, cst(2026, 11, 2, 9, 0, 1, 123000)),  # milliseconds, exactly
        ("1793581201123", cst(2026, 11, 2, 9, 0, 1, 123000)),
        (1793581201123456, cst(2026, 11, 2, 9, 0, 1, 123456)),  # microseconds
        (Decimal("1793581201.5"), cst(2026, 11, 2, 9, 0, 1, 500000)),
        (1793581201.5, cst(2026, 11, 2, 9, 0, 1, 500000)),
        ("1793581201.5", cst(2026, 11, 2, 9, 0, 1, 500000)),
    ],
)
def test_epoch_numbers_are_read_whatever_the_unit(value: Any, expected: datetime) -> None:
    assert read(value) == expected


def test_results_are_expressed_in_the_configured_zone() -> None:
    utc_reader = TimestampReader(load_zone("UTC"), clock=lambda: NOW)
    ts = utc_reader.read("2026-11-02 09:00:01")
    assert ts.utcoffset() == timedelta(0)
    assert ts == datetime(2026, 11, 2, 9, 0, 1, tzinfo=timezone.utc)


def test_syslog_stamp_without_year_takes_the_clocks_year() -> None:
    assert read("Nov  2 09:00:01") == cst(2026, 11, 2, 9, 0, 1)
    assert read("Nov 2 09:00:01") == cst(2026, 11, 2, 9, 0, 1)


def test_december_stamps_read_in_january_belong_to_last_year() -> None:
    january = cst(2027, 1, 1, 0, 10)
    assert read("Dec 31 23:59:58", now=january) == cst(2026, 12, 31, 23, 59, 58)
    assert read("Jan  1 00:09:00", now=january) == cst(2027, 1, 1, 0, 9)


def test_stamp_up_to_max_future_ahead_keeps_this_year() -> None:
    # A host clock a few hours ahead is normal; it must not send the line back a year.
    assert read("Nov  2 20:00:00") == cst(2026, 11, 2, 20)


def test_february_29_without_year_goes_to_the_previous_year_only_if_that_was_a_leap_year() -> None:
    assert read("Feb 29 10:00:00", now=cst(2029, 3, 1)) == cst(2028, 2, 29, 10)
    with pytest.raises(TimestampError, match="unreadable timestamp 'Feb 29 10:00:00'"):
        read("Feb 29 10:00:00", now=cst(2027, 3, 1))


def test_configured_format_is_used() -> None:
    assert read("02.11.2026 09:00:01", fmt="%d.%m.%Y %H:%M:%S") == cst(2026, 11, 2, 9, 0, 1)


def test_configured_format_without_year_infers_the_year() -> None:
    assert read("11-02 09:00:01", fmt="%m-%d %H:%M:%S") == cst(2026, 11, 2, 9, 0, 1)
    january = cst(2027, 1, 1)
    assert read("12-31 09:00:01", fmt="%m-%d %H:%M:%S", now=january) == cst(2026, 12, 31, 9, 0, 1)


def test_iso_times_are_still_read_when_a_format_is_configured() -> None:
    assert read("2026-11-02T09:00:01+08:00", fmt="%d.%m.%Y") == cst(2026, 11, 2, 9, 0, 1)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "no timestamp"),
        ("   ", "no timestamp"),
        ("yesterday", "unreadable timestamp 'yesterday'"),
        ("2026-13-02 09:00:01", "unreadable timestamp '2026-13-02 09:00:01'"),
        ("x" * 500, "unreadable timestamp '" + "x" * 64 + "...'"),
        (True, "unreadable timestamp 'True'"),
        ([1, 2], "unreadable timestamp '[1, 2]'"),
        ({"s": 1}, "unreadable timestamp \"{'s': 1}\""),
        (-5, "unreadable timestamp '-5'"),
        (float("nan"), "unreadable timestamp 'nan'"),
        (Decimal("Infinity"), "unreadable timestamp 'Infinity'"),
        (10**30, "unreadable timestamp '" + "1" + "0" * 30 + "'"),
    ],
)
def test_unusable_values_say_why(value: Any, reason: str) -> None:
    with pytest.raises(TimestampError) as info:
        read(value)
    assert str(info.value) == reason


def test_timestamp_beyond_max_future_is_refused() -> None:
    with pytest.raises(TimestampError) as info:
        read("2026-11-03 12:00:01")
    assert str(info.value) == (
        "timestamp 2026-11-03T12:00:01+08:00 lies in the future "
        "(more than 1 day after 2026-11-02T12:00:00+08:00)"
    )
    assert read("2026-11-03 12:00:00") == cst(2026, 11, 3, 12)


def test_max_future_is_configurable() -> None:
    with pytest.raises(TimestampError, match="more than 10 minutes after"):
        read("2026-11-02 12:10:01", max_future=timedelta(minutes=10))


def test_the_clock_is_read_again_before_refusing_a_future_time() -> None:
    # A parser built long ago must not refuse today's lines because its clock is stale.
    times = [NOW]
    stamps = TimestampReader(SHANGHAI, clock=lambda: times[-1])
    times.append(NOW + timedelta(days=3))
    assert stamps.read("2026-11-05 09:00:00") == cst(2026, 11, 5, 9)


def test_the_clock_is_not_read_for_every_line() -> None:
    calls = []

    def clock() -> datetime:
        calls.append(1)
        return NOW

    stamps = TimestampReader(SHANGHAI, clock=clock)
    for second in range(10_000):
        stamps.read(f"2026-11-02 09:{second // 60 % 60:02d}:{second % 60:02d}")
        stamps.read(1793581201 + second)
    assert len(calls) <= 2


def test_naive_clock_is_taken_in_the_configured_zone() -> None:
    assert read("2026-11-03 11:00:00", now=datetime(2026, 11, 2, 12)) == cst(2026, 11, 3, 11)


def test_unknown_timezone_is_refused_with_a_readable_message() -> None:
    with pytest.raises(ValueError, match="unknown timezone 'CST'.*IANA"):
        load_zone("CST")
