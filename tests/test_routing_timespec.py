"""Time specs of maintenance windows and active_hours: days (business days with 调休),
ranges across midnight, dated ranges, time zones and daylight-saving changes; and the errors
an operator gets for a bad one."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from agent.config import load_config
from agent.routing.timespec import DateRange, Schedule, TimeRange
from agent.yamlfile import FileProblems

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
UTC = timezone.utc


def weekly(zone=SHANGHAI, **options) -> Schedule:
    return Schedule([TimeRange.model_validate(options)], zone=zone)


def local(*args, zone=SHANGHAI) -> datetime:
    return datetime(*args, tzinfo=zone)


OFFICE = {"days": ["business"], "start": "08:00", "end": "20:00"}

CASES = [
    # business days follow the official calendar: Thursday 2026-10-01 is National Day,
    # Saturday 2026-10-10 a make-up working day (调休), Sunday 2026-10-11 a day off
    (OFFICE, local(2026, 10, 1, 10, 0), False),
    (OFFICE, local(2026, 10, 9, 10, 0), True),
    (OFFICE, local(2026, 10, 10, 10, 0), True),
    (OFFICE, local(2026, 10, 11, 10, 0), False),
    # the ends: start inside, end outside
    (OFFICE, local(2026, 10, 9, 8, 0), True),
    (OFFICE, local(2026, 10, 9, 7, 59), False),
    (OFFICE, local(2026, 10, 9, 20, 0), False),
    # `holiday` is every day that is not a business day; `weekend` is Saturday and Sunday
    ({"days": ["holiday"]}, local(2026, 10, 1, 12, 0), True),
    ({"days": ["holiday"]}, local(2026, 10, 10, 12, 0), False),
    ({"days": ["weekend"]}, local(2026, 10, 10, 12, 0), True),
    # a range of weekdays
    ({"days": ["mon-wed"], "start": "09:00", "end": "10:00"}, local(2026, 11, 4, 9, 30), True),
    ({"days": ["mon-wed"], "start": "09:00", "end": "10:00"}, local(2026, 11, 5, 9, 30), False),
    # across midnight: the range belongs to the day it starts on (Friday 22:00 - Saturday 06:00)
    ({"days": ["fri"], "start": "22:00", "end": "06:00"}, local(2026, 11, 6, 23, 0), True),
    ({"days": ["fri"], "start": "22:00", "end": "06:00"}, local(2026, 11, 7, 5, 59), True),
    ({"days": ["fri"], "start": "22:00", "end": "06:00"}, local(2026, 11, 7, 6, 0), False),
    ({"days": ["fri"], "start": "22:00", "end": "06:00"}, local(2026, 11, 6, 5, 0), False),
    # the instant counts, whatever offset the event time carries: 14:30 UTC is 22:30 Shanghai
    ({"days": ["fri"], "start": "22:00", "end": "06:00"},
     datetime(2026, 11, 6, 14, 30, tzinfo=UTC), True),
]


@pytest.mark.parametrize("spec, t, expected", CASES)
def test_contains(spec, t, expected):
    assert weekly(**spec).contains(t) is expected


def test_wall_clock_times_hold_across_a_daylight_saving_change():
    # Berlin moves from +01:00 to +02:00 at 02:00 on 2026-03-29: 08:00 is 07:00 UTC the day
    # before and 06:00 UTC that day
    s = weekly(zone=BERLIN, start="08:00", end="09:00")
    assert s.contains(datetime(2026, 3, 28, 7, 30, tzinfo=UTC))
    assert s.contains(datetime(2026, 3, 29, 6, 30, tzinfo=UTC))
    assert not s.contains(datetime(2026, 3, 29, 7, 30, tzinfo=UTC))
    # a night range across the change is an hour shorter in real time
    night = weekly(zone=BERLIN, days=["sat"], start="22:00", end="06:00")
    start, end = night.period(local(2026, 3, 29, 1, 0, zone=BERLIN))
    assert end - start == timedelta(hours=7)


def test_period_joins_ranges_that_touch():
    weekend = Schedule([TimeRange.model_validate({"days": ["sat"]}),
                        TimeRange.model_validate({"days": ["sun"]})], zone=SHANGHAI)
    assert weekend.period(local(2026, 11, 7, 12, 0)) == (
        local(2026, 11, 7, 0, 0).astimezone(UTC), local(2026, 11, 9, 0, 0).astimezone(UTC))
    assert weekend.period(local(2026, 11, 9, 12, 0)) is None


def test_dated_ranges_and_grace():
    s = Schedule([], [DateRange.model_validate({"start": "2026-12-31 20:00",
                                                "end": "2027-01-01 08:00"})], zone=SHANGHAI)
    assert s.contains(local(2026, 12, 31, 23, 0))
    assert not s.contains(local(2027, 1, 1, 8, 0))
    assert s.holds_until(local(2027, 1, 1, 8, 10), timedelta(minutes=15)) == local(
        2027, 1, 1, 8, 15)
    assert s.holds_until(local(2027, 1, 1, 8, 20), timedelta(minutes=15)) is None


@pytest.mark.parametrize("options, message", [
    ({"start": "25:00"}, "expected a time of day"),
    ({"start": 8}, "in quotes"),
    ({"days": ["someday"]}, "unknown day 'someday'"),
    ({"days": ["mon-xyz"]}, "unknown day range"),
    ({"start": "08:00", "end": "08:00"}, "same time"),
])
def test_bad_weekly_ranges_say_what_was_expected(options, message):
    with pytest.raises(ValidationError, match=message):
        TimeRange.model_validate(options)


def test_yaml_reads_unquoted_times_as_minutes_and_they_are_taken_as_written(tmp_path):
    # PyYAML reads `start: 22:00` as the base-60 number 1320
    assert TimeRange.model_validate({"start": 1320, "end": "06:00"}).start == 22 * 60


def test_config_errors_name_the_file_the_key_and_the_line(tmp_path):
    config = tmp_path / "agent.yaml"
    config.write_text(textwrap.dedent("""\
        rules: []
        maintenance:
          - name: platform
            weekly:
              - {days: [fri], start: "22:00", end: "30:00"}
          - name: nothing
        inhibit:
          - source: {rule: upload_outage}
            target: {}
        notify:
          group_interval: 0s
        """), encoding="utf-8")
    with pytest.raises(FileProblems) as exc:
        load_config(config)
    found = {(p.key, p.line): p.message for p in exc.value.problems}
    assert all(p.file == str(config) for p in exc.value.problems)
    assert "expected a time of day" in found[("maintenance.0.weekly.0.end", 5)]
    assert "needs `weekly:` or `dates:`" in found[("maintenance.1", 6)]
    assert "at least 1" in found[("inhibit.0.target", 9)]
    assert "at least 1s" in found[("notify.group_interval", 11)]
