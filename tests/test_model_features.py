"""The model's vector: calendar (China's holidays and make-up workdays), named versioned
features, slots assembled from windows, deviations that stay calm in quiet hours."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone

import numpy as np

from agent.model.calendar import BusinessCalendar
from agent.model.features import FEATURE_VERSION, FeatureSpec, SlotBuffer, calendar_matrix
from tests.test_model_helpers import SPEC, trained

TZ = timezone(timedelta(hours=8))


def test_make_up_workdays_and_holidays_come_from_chinese_calendar():
    cal = BusinessCalendar()
    assert cal.is_business_day(date(2026, 10, 10))  # a Saturday, make-up workday (调休)
    assert not cal.is_business_day(date(2026, 10, 1))  # National Day, a Thursday
    assert not cal.is_business_day(date(2026, 10, 11))  # an ordinary Sunday
    assert cal.day_type(date(2026, 9, 30)) == 2  # a month-end business day
    assert cal.is_filing_period(date(2026, 9, 15)) and not cal.is_filing_period(date(2026, 9, 16))


def test_a_year_the_package_does_not_know_falls_back_to_weekdays_said_once(caplog):
    cal = BusinessCalendar(holidays=[date(2027, 2, 8)], workdays=[date(2027, 2, 20)])
    with caplog.at_level(logging.WARNING, logger="agent.model.calendar"):
        assert cal.is_business_day(date(2027, 1, 4))  # a Monday
        assert not cal.is_business_day(date(2027, 1, 9))  # a Saturday
        assert not cal.is_business_day(date(2027, 2, 8))  # an operator's holiday wins
        assert cal.is_business_day(date(2027, 2, 20))  # an operator's make-up Saturday
    said = [r for r in caplog.records if "2027" in r.getMessage()]
    assert len(said) == 1 and "model.holidays" in said[0].getMessage()


def test_the_vector_is_named_and_versioned_with_ledger_only_when_configured():
    plain = FeatureSpec.for_sources(["upload", "erp"])
    assert plain.names[:2] == ["erp.count", "erp.failure_rate"]  # sorted: config order is free
    assert "calendar.business_day" in plain.names and not any("ledger" in n for n in plain.names)
    withl = FeatureSpec.for_sources(["upload", "erp"], ledger=True)
    assert {"ledger.pending", "ledger.overdue", "ledger.lag_p95_seconds"} <= set(withl.names)
    assert FEATURE_VERSION == SPEC.version == 1


def test_hour_and_weekday_are_cyclic():
    st = [datetime(2026, 9, 7, 23, 55, tzinfo=TZ), datetime(2026, 9, 8, 0, 0, tzinfo=TZ),
          datetime(2026, 9, 8, 12, 0, tzinfo=TZ)]
    rows, at, _ = calendar_matrix(st, [s + timedelta(minutes=5) for s in st], TZ,
                                  BusinessCalendar())
    assert np.linalg.norm(rows[0, :2] - rows[1, :2]) < 0.05  # 23:55 is next to 00:00
    assert np.linalg.norm(rows[2, :2] - rows[1, :2]) > 1.9  # noon is across the circle
    assert abs(at[0] - (23 + 57.5 / 60)) < 1e-9  # the slot's middle


def test_a_slot_completes_when_every_source_has_shown_its_window_or_at_the_tick():
    buf = SlotBuffer(FeatureSpec.for_sources(["a", "b"]))
    s, e = datetime(2026, 9, 8, 10, 0, tzinfo=TZ), datetime(2026, 9, 8, 10, 5, tzinfo=TZ)
    assert buf.add("a", s, e, {"count": 3}) is None
    slot = buf.add("b", s, e, {"count": 4})
    assert slot is not None and slot.raw[0] == 3 and slot.raw[6] == 4
    assert buf.add("a", s, e, {"count": 9}) is None  # late for a scored slot: not twice
    e2 = e + timedelta(minutes=5)
    buf.add("a", e, e2, {"count": 1})
    (only,) = buf.complete(e2)  # b never came: the tick completes it, b as empty
    assert only.raw[6] == 0


def test_quiet_hours_do_not_look_abnormal_but_an_empty_office_hour_does():
    model, _, slots = trained()
    night = [s for s in slots if s.start.hour == 3]
    raw = np.array([s.raw for s in night])
    at = np.full(len(raw), 3.0)
    z = model.profile.z(raw, at, np.ones(len(raw), dtype=int))
    # a rate over 1-2 uploads or a p95 of one sample swings every night: not "50 sigma"
    assert np.abs(z).max() < 6
    day = next(s for s in slots if s.start.hour == 10 and s.start.weekday() < 5)
    empty = np.array([day.raw]) * 0
    z = model.profile.z(empty, np.array([10.0]), np.array([1]))
    assert z[0, SPEC.column_of("upload", "count")] < -5
    assert z[0, SPEC.column_of("upload", "latency_p95")] == 0  # no samples: no evidence
