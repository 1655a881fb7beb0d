"""Recurring and dated time ranges: when a maintenance window or a rule's `active_hours` holds.

One spec for both. A weekly range names days and a time of day:

    {days: [business], start: "08:00", end: "20:00"}
    {days: [fri], start: "22:00", end: "06:00"}      # crosses midnight: Fri 22:00 - Sat 06:00

`days` are mon..sun, ranges such as mon-fri, `business` (working days of the official Chinese
calendar, make-up working days 调休 included, holidays excluded: chinese-calendar), `holiday`
(every day that is not a business day) and `weekend` (Saturday and Sunday). A range that
crosses midnight belongs to the day it starts on. A dated range is two local date-times:

    {start: "2026-12-31 20:00", end: "2027-01-01 08:00"}

Times are wall-clock times in the spec's time zone (zoneinfo), so "08:00" stays 08:00 across a
daylight-saving change; every comparison with an event time is made between instants.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from agent.model.calendar import BusinessCalendar

__all__ = ["ActiveHours", "DateRange", "Schedule", "TimeRange", "elapsed", "later",
           "parse_clock"]

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPECIAL_DAYS = ("business", "holiday", "weekend")
_CLOCK = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")
MINUTES_PER_DAY = 24 * 60
_CHAIN = 64  # adjacent periods joined into one, at most (a spec holding every day is endless)
_UTC = timezone.utc
_TICK = timedelta(microseconds=1)


def later(t: datetime, delta: timedelta) -> datetime:
    """`t + delta` in real time, shown in `t`'s time zone. Python adds a timedelta to the
    wall-clock time of a zone-aware datetime, which is an hour off across a DST change."""
    return (t.astimezone(_UTC) + delta).astimezone(t.tzinfo)


def elapsed(since: datetime, until: datetime) -> timedelta:
    """Real time from `since` to `until`, whatever their zones (see `later`)."""
    return until.astimezone(_UTC) - since.astimezone(_UTC)


def parse_clock(value: Any) -> int:
    """'08:00' -> 480 minutes after midnight; '24:00' is the end of the day.

    YAML reads an unquoted 22:00 as the base-60 number 1320, which is the same count of
    minutes: such numbers are taken as written. A small number (8) is refused: it is more
    likely meant as an hour than as 00:08."""
    if isinstance(value, bool):
        raise ValueError(f"expected a time of day like \"08:00\", got {value!r}")
    if isinstance(value, int):
        if 60 <= value <= MINUTES_PER_DAY:
            return value
        raise ValueError(f"expected a time of day in quotes like \"08:00\", got {value!r}")
    if isinstance(value, time):
        return value.hour * 60 + value.minute
    if isinstance(value, str):
        m = _CLOCK.match(value)
        if m:
            h, mi = int(m.group(1)), int(m.group(2))
            if mi < 60 and (h < 24 or (h == 24 and mi == 0)):
                return h * 60 + mi
    raise ValueError(f"expected a time of day like \"08:00\" (00:00 to 24:00), got {value!r}")


def _day_names(value: Any) -> Any:
    """`mon-fri` -> mon, tue, ..., fri; a single name -> a list of one."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return value
    out: list[Any] = []
    for v in value:
        if isinstance(v, str) and "-" in v:
            first, _, last = v.strip().lower().partition("-")
            if first not in DAY_NAMES or last not in DAY_NAMES:
                raise ValueError(f"unknown day range {v!r}; expected e.g. mon-fri")
            i, j = DAY_NAMES.index(first), DAY_NAMES.index(last)
            out += [DAY_NAMES[(i + k) % 7] for k in range((j - i) % 7 + 1)]
        else:
            out.append(v.strip().lower() if isinstance(v, str) else v)
    return out


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeRange(_Model):
    """A time of day on some days of the week; `end` at or before `start` crosses midnight."""

    days: Annotated[list[str], BeforeValidator(_day_names)] = Field(
        default_factory=lambda: list(DAY_NAMES),
        description="mon..sun, ranges like mon-fri, business, holiday, weekend; default every day")
    start: Annotated[int, BeforeValidator(parse_clock)] = Field(
        0, description="Local time of day it begins, \"HH:MM\"")
    end: Annotated[int, BeforeValidator(parse_clock)] = Field(
        MINUTES_PER_DAY, description="Local time of day it ends, \"HH:MM\" (\"24:00\": midnight)")

    @field_validator("days")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [d for d in v if d not in DAY_NAMES and d not in _SPECIAL_DAYS]
        if bad:
            raise ValueError(f"unknown day {bad[0]!r}; expected mon..sun, a range like mon-fri, "
                             "business, holiday or weekend")
        if not v:
            raise ValueError("expected at least one day")
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> "TimeRange":
        if self.start >= MINUTES_PER_DAY:
            raise ValueError("start must be before 24:00")
        if self.start == self.end:
            raise ValueError("start and end are the same time (write 00:00 to 24:00 for a "
                             "whole day)")
        return self

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start


def _local_datetime(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"expected a local date and time like \"2026-12-31 20:00\", got "
                             f"{value!r}") from None
    return value


class DateRange(_Model):
    """One dated period, in local time (an offset written in the value is kept)."""

    start: Annotated[datetime, BeforeValidator(_local_datetime)] = Field(
        description="\"2026-12-31 20:00\" (a date alone: its midnight)")
    end: Annotated[datetime, BeforeValidator(_local_datetime)] = Field(
        description="\"2027-01-01 08:00\"; after start")

    @model_validator(mode="after")
    def _ordered(self) -> "DateRange":
        a, b = self.start, self.end
        if (a.tzinfo is None) == (b.tzinfo is None) and b <= a:
            raise ValueError(f"end {b} is not after start {a}")
        return self


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


# `active_hours:` of a rule: one weekly range or a list of them
ActiveHours = Annotated[list[TimeRange], BeforeValidator(_one_or_many)]


class Schedule:
    """When weekly ranges or dated ranges hold, in one time zone. Pure: time comes in."""

    def __init__(self, weekly: Sequence[TimeRange], dates: Sequence[DateRange] = (),
                 zone: tzinfo = _UTC, calendar: BusinessCalendar | None = None):
        self.weekly = tuple(weekly)
        self.zone = zone
        self.calendar = calendar or BusinessCalendar()
        self.dates = tuple(sorted(
            ((d.start if d.start.tzinfo else d.start.replace(tzinfo=zone)).astimezone(_UTC),
             (d.end if d.end.tzinfo else d.end.replace(tzinfo=zone)).astimezone(_UTC))
            for d in dates))

    def _day_matches(self, r: TimeRange, d: date) -> bool:
        wd = DAY_NAMES[d.weekday()]
        for name in r.days:
            if name == wd or (name == "weekend" and d.weekday() >= 5):
                return True
            if name in ("business", "holiday"):
                if self.calendar.is_business_day(d) == (name == "business"):
                    return True
        return False

    def at(self, d: date, minutes: int) -> datetime:
        """The instant of a local wall-clock time (a time skipped by a DST change: as if the
        clock had not moved yet)."""
        d += timedelta(days=minutes // MINUTES_PER_DAY)
        minutes %= MINUTES_PER_DAY
        local = datetime.combine(d, time(minutes // 60, minutes % 60), tzinfo=self.zone)
        return local.astimezone(_UTC)

    def _periods_at(self, t: datetime) -> list[tuple[datetime, datetime]]:
        """Every single range (weekly occurrence or dated) that holds at instant `t`."""
        t = t.astimezone(_UTC)
        out = [(s, e) for s, e in self.dates if s <= t < e]
        if self.weekly:
            today = t.astimezone(self.zone).date()
            for r in self.weekly:
                for d in (today - timedelta(days=1), today):
                    end = r.end + (MINUTES_PER_DAY if r.crosses_midnight else 0)
                    s, e = self.at(d, r.start), self.at(d, end)
                    if s <= t < e and self._day_matches(r, d):
                        out.append((s, e))
        return out

    def contains(self, t: datetime) -> bool:
        """Whether the schedule holds at `t` (an aware datetime)."""
        return bool(self._periods_at(t))

    def period(self, t: datetime) -> tuple[datetime, datetime] | None:
        """The period holding `t` as [start, end) instants in UTC, ranges that touch or
        overlap joined (Saturday 00:00-24:00 and Sunday 00:00-24:00 are one weekend), or
        None when the schedule does not hold at `t`."""
        found = self._periods_at(t)
        if not found:
            return None
        start = min(s for s, _ in found)
        end = max(e for _, e in found)
        for _ in range(_CHAIN):
            after = self._periods_at(end)
            if not after:
                break
            end = max(e for _, e in after)
        for _ in range(_CHAIN):
            before = self._periods_at(start - _TICK)
            if not before:
                break
            start = min(s for s, _ in before)
        return start, end

    def ends_between(self, after: datetime, upto: datetime) -> list[datetime]:
        """Instants in (after, upto] at which one of the ranges ends (whether or not it held
        on that day)."""
        out = [e for _, e in self.dates if after < e <= upto]
        if self.weekly:
            d = after.astimezone(self.zone).date() - timedelta(days=1)
            last = upto.astimezone(self.zone).date()
            while d <= last:
                for r in self.weekly:
                    e = self.at(d, r.end + (MINUTES_PER_DAY if r.crosses_midnight else 0))
                    if after < e <= upto:
                        out.append(e)
                d += timedelta(days=1)
        return out

    def holds_until(self, now: datetime, grace: timedelta = timedelta(0)) -> datetime | None:
        """When the schedule stops holding (plus `grace`), if it holds at `now` or stopped
        less than `grace` before it; otherwise None."""
        period = self.period(now)
        if period is not None:
            return later(period[1], grace)
        if grace <= timedelta(0):
            return None
        latest: datetime | None = None
        for end in self.ends_between(later(now, -grace), now):
            if (latest is None or end > latest) and self.contains(end - _TICK):
                latest = end
        return later(latest, grace) if latest is not None else None
