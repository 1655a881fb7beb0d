"""Turn the timestamps logs actually contain into timezone-aware datetimes, fast.

Recognised without configuration:

* ISO-8601 as ``datetime.fromisoformat`` reads it in 3.11 (``2026-11-02 09:00:01``,
  ``2026-11-02T09:00:01.123+08:00``, ``...Z``, ``20261102T090001``), plus the common local
  variants ``2026/11/02 09:00:01``, ``2026年11月02日 09:00:01`` and ``2026-11-2 9:00:01``;
* epoch seconds, milliseconds, microseconds or nanoseconds, as JSON numbers or digit strings
  (the unit is told by magnitude; 10/13/16/19 digits);
* syslog's year-less ``Nov  2 09:00:01``: the year is the clock's, or the previous one when
  that would put the line more than ``max_future`` ahead (December logs read in January).

A naive timestamp is taken to be in the configured timezone; every result is converted to that
timezone, so calendar features (hour of day, month end) mean the operator's local time.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Stamp", "TimestampError", "TimestampReader", "load_zone"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_SYSLOG_TS = re.compile(
    r"([A-Z][a-z]{2}) +(\d{1,2}) (\d{1,2}):(\d\d):(\d\d)(?:\.(\d{1,6}))?(?: (\d{4}))?"
)
# Only reached when fromisoformat failed: formats seen in Chinese business systems and web
# servers. strptime is ~10x slower than fromisoformat, hence last.
_FALLBACK_FORMATS = (
    "%Y-%m-%d %H:%M:%S",  # single-digit month/day/hour, which fromisoformat refuses
    "%Y-%m-%d %H:%M:%S.%f",
    "%d/%b/%Y:%H:%M:%S %z",  # nginx / apache access logs
    "%Y.%m.%d %H:%M:%S",
    "%a %b %d %H:%M:%S %Y",  # ctime
)
_COMPACT_FORMATS = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
# Timestamps repeat (many lines share a second): a bounded cache skips the conversion.
_CACHE_SIZE = 4096
# Bad input must not make reasons huge.
_SHOWN = 64
# The epoch unit is decided by magnitude: seconds now have 10 digits, milliseconds 13, ...
_EPOCH_UNITS = ((1e11, 1), (1e14, 1_000), (1e17, 1_000_000), (float("inf"), 1_000_000_000))


_SECONDS = tuple(timedelta(seconds=s) for s in range(60))
_SECOND = {f"{s:02d}": s for s in range(60)}  # the seconds of a minute as written


class Stamp(datetime):
    """A datetime that knows its POSIX time: what a reader returns. Windows, rules and the
    ledger ask each event's `timestamp()` several times; computing it from an aware datetime
    goes through the zone (~0.4 us), reading it back is a tenth of that. Arithmetic and
    `replace()` give Stamps without the field; they compute it as any datetime does."""

    __slots__ = ("_epoch",)
    _epoch: float

    def timestamp(self) -> float:
        try:
            return self._epoch
        except AttributeError:
            return datetime.timestamp(self)


def stamp(ts: datetime) -> Stamp:
    """`ts` as a Stamp (same instant, zone and fold)."""
    out = Stamp(ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second, ts.microsecond,
                ts.tzinfo, fold=ts.fold)
    out._epoch = datetime.timestamp(ts)
    return out


class TimestampError(ValueError):
    """The reason a value could not be used as an event timestamp (shown to operators)."""


def load_zone(name: str) -> ZoneInfo:
    """Return the IANA zone ``name``; ValueError with a readable message if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown timezone {name!r} (expected an IANA name such as 'Asia/Shanghai')"
        ) from exc


def _span(delta: timedelta) -> str:
    """``1 day`` rather than timedelta's ``1 day, 0:00:00``."""
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def _shown(value: Any) -> str:
    try:
        text = str(value)
    except ValueError:  # an int past Python's 4300-digit limit for conversion to text
        return f"a number of {value.bit_length()} bits"
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _check_format(fmt: str) -> None:
    """Raise ValueError naming `timestamp_format` when strptime cannot use `fmt` at all (a bad
    or repeated directive), so the config is refused at load rather than every line failing."""
    try:
        datetime.strptime("", fmt)
    except re.error as exc:  # "%A%A": strptime builds a regex with a group name twice
        raise ValueError(f"timestamp_format: {fmt!r} cannot be used: {exc.msg}") from None
    except ValueError as exc:
        if not str(exc).startswith("time data"):  # not "does not match": a bad directive
            raise ValueError(f"timestamp_format: {fmt!r} cannot be used: {exc}") from None


class TimestampReader:
    """Reads one source's timestamps; keep one per parser (it caches and tracks the clock).

    ``read(value)`` returns an aware datetime in ``zone`` or raises TimestampError with a
    reason such as ``unreadable timestamp 'abc'`` or ``timestamp ... lies in the future``.
    ``clock`` is consulted about once a second for year-less timestamps and again whenever a
    timestamp looks too far ahead, never per line.
    """

    def __init__(
        self,
        zone: ZoneInfo,
        fmt: str | None = None,
        max_future: timedelta = timedelta(days=1),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.zone = zone
        self.fmt = fmt
        self.max_future = max_future
        self._clock = clock or (lambda: datetime.now(UTC))
        if fmt is not None:
            _check_format(fmt)
        self._fmt_has_year = fmt is None or any(d in fmt for d in ("%Y", "%y", "%G", "%s"))
        self._cache: dict[Any, Stamp] = {}
        # "2026-11-02 09:00" -> its first second and POSIX time, for minutes without a clock
        # change: any second of such a minute is made without parsing (see _in_minute)
        self._minutes: dict[str, tuple[Stamp, float] | None] = {}
        self._now = _EPOCH
        self._limit = _EPOCH
        self._refreshed_at = 0.0
        self._refresh()

    def _refresh(self) -> None:
        now = self._clock()
        if now.tzinfo is None:
            now = now.replace(tzinfo=self.zone)
        self._now = now.astimezone(self.zone)
        self._limit = self._now + self.max_future
        self._refreshed_at = time.monotonic()
        # Year-less results depend on the clock; the rest are cheap to recompute.
        self._cache.clear()
        self._minutes.clear()

    @property
    def cache(self) -> dict[Any, Stamp]:
        """Values read lately -> what read() made of them (cleared when the clock is read)."""
        return self._cache

    @property
    def bound(self) -> datetime:
        """The latest time read() accepts without asking the clock again."""
        return self._limit

    def read(self, value: Any) -> Stamp:
        """Convert ``value`` (string or number) to an aware datetime, or raise TimestampError."""
        cache = self._cache
        try:
            ts = cache.get(value)
        except TypeError:  # unhashable (a JSON object or list)
            raise TimestampError(f"unreadable timestamp {_shown(value)!r}") from None
        if ts is None:
            ts = self._in_minute(value) if type(value) is str and len(value) == 19 else None
            if ts is None:
                ts = stamp(self._convert(value))
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            cache[value] = ts
        if ts > self._limit:
            self._refresh()  # the cached clock may simply be stale
            if ts > self._limit:
                now = self._now.replace(microsecond=0).isoformat()
                raise TimestampError(
                    f"timestamp {ts.isoformat()} lies in the future "
                    f"(more than {_span(self.max_future)} after {now})"
                )
        return ts

    def _in_minute(self, text: str) -> Stamp | None:
        """`YYYY-MM-DD HH:MM:SS` (or with a T) from its minute's first second, read once: the
        same datetime and POSIX time as parsing `text` whole, about five times cheaper. A
        minute holding a change of UTC offset is always parsed whole."""
        if self.fmt is not None or text[16] != ":" or text[13] != ":" or text[10] not in " T":
            return None
        second = _SECOND.get(text[17:])
        if second is None:
            return None
        head = text[:16]
        try:
            minute = self._minutes[head]
        except KeyError:
            minute = self._minute(head)
            if len(self._minutes) >= _CACHE_SIZE:
                self._minutes.clear()
            self._minutes[head] = minute
        if minute is None:
            return None
        first, epoch = minute
        out = first + _SECONDS[second]  # a Stamp; replace() would be ~2.5x slower on a subclass
        out._epoch = epoch + second
        return out

    def _minute(self, head: str) -> tuple[Stamp, float] | None:
        try:
            first = stamp(self._convert(head + ":00"))
            last = stamp(self._convert(head + ":59"))
        except TimestampError:
            return None
        epoch = first.timestamp()
        if last.timestamp() - epoch != 59 or last.replace(second=0) != first \
                or first.tzinfo is not last.tzinfo or first.fold or last.fold:
            return None
        return first, epoch

    def _convert(self, value: Any) -> datetime:
        kind = type(value)
        if kind is str:
            text = value.strip()
            if not text:
                raise TimestampError("no timestamp")
            if self.fmt is not None:
                try:
                    return self._from_format(text)
                except ValueError:
                    pass  # fall through: ISO and epoch are unambiguous
            ts = self._from_text(text)
            if ts is None:
                raise TimestampError(f"unreadable timestamp {_shown(value)!r}")
            return ts
        if kind is int or kind is float or kind is Decimal:
            ts = self._from_epoch(value)
            if ts is None:
                raise TimestampError(f"unreadable timestamp {_shown(value)!r}")
            return ts
        raise TimestampError(f"unreadable timestamp {_shown(value)!r}")

    def _aware(self, ts: datetime) -> datetime:
        if ts.tzinfo is None:
            return ts.replace(tzinfo=self.zone)
        return ts.astimezone(self.zone)

    def _from_format(self, text: str) -> datetime:
        ts = datetime.strptime(text, self.fmt or "")
        if self._fmt_has_year:
            return self._aware(ts)
        # strptime put it in 1900: the year comes from the clock, as for syslog.
        guessed = self._guess_year(
            (ts.month, ts.day, ts.hour, ts.minute, ts.second, ts.microsecond)
        )
        if guessed is None:
            raise ValueError(text)
        return guessed if ts.tzinfo is None else self._aware(guessed.replace(tzinfo=ts.tzinfo))

    def _from_text(self, text: str) -> datetime | None:
        if text.isascii() and text.replace(".", "", 1).isdigit():
            return self._from_digits(text)
        try:
            return self._aware(datetime.fromisoformat(text))
        except ValueError:
            pass
        candidates = [text]
        head = text[0]
        if head.isdigit():
            local = text.replace("/", "-").replace("年", "-").replace("月", "-")
            local = local.replace("日", " ").replace("  ", " ").rstrip()
            if local != text:
                try:
                    return self._aware(datetime.fromisoformat(local))
                except ValueError:
                    candidates.append(local)
        elif head in "JFMASOND":
            ts = self._from_syslog(text)
            if ts is not None:
                return ts
        for fmt in _FALLBACK_FORMATS:
            for candidate in candidates:
                try:
                    return self._aware(datetime.strptime(candidate, fmt))
                except ValueError:
                    continue
        return None

    def _from_digits(self, text: str) -> datetime | None:
        if len(text) > 24:  # longer than any epoch in nanoseconds: a counter or an id
            return None
        if "." in text:
            return self._from_epoch(Decimal(text))
        # Dates written without separators have fixed lengths no current epoch value has.
        compact = _COMPACT_FORMATS.get(len(text))
        if compact is not None:
            try:
                return self._aware(datetime.strptime(text, compact))
            except ValueError:
                return None
        return self._from_epoch(int(text))

    def _from_epoch(self, number: float | Decimal) -> datetime | None:
        if isinstance(number, Decimal):
            if not number.is_finite():
                return None
        elif isinstance(number, float) and not math.isfinite(number):
            return None  # (an int is finite, and one past the float range cannot be asked)
        if number < 0:  # before 1970: a counter or garbage, not a time
            return None
        per_second = next(unit for bound, unit in _EPOCH_UNITS if number < bound)
        try:
            if isinstance(number, int):
                # Integer arithmetic keeps milliseconds exact (floats would round).
                seconds, rest = divmod(number, per_second)
                delta = timedelta(seconds=seconds, microseconds=rest * 1_000_000 // per_second)
            else:
                delta = timedelta(seconds=float(number) / per_second)
            return (_EPOCH + delta).astimezone(self.zone)
        except (OverflowError, ValueError, ArithmeticError):
            return None

    def _from_syslog(self, text: str) -> datetime | None:
        match = _SYSLOG_TS.fullmatch(text)
        if match is None:
            return None
        mon, day, hour, minute, second, frac, year = match.groups()
        month = _MONTHS.get(mon)
        if month is None:
            return None
        micro = int(frac.ljust(6, "0")) if frac else 0
        parts = (month, int(day), int(hour), int(minute), int(second), micro)
        if year is not None:
            try:
                return datetime(int(year), *parts, tzinfo=self.zone)
            except ValueError:
                return None
        return self._guess_year(parts)

    def _guess_year(self, parts: tuple[int, int, int, int, int, int]) -> datetime | None:
        """The clock's year, or the previous one if that would lie more than max_future ahead."""
        if time.monotonic() - self._refreshed_at > 1.0:
            self._refresh()  # the year must come from a current clock
        this_year = self._now.year
        for year in (this_year, this_year - 1):
            try:
                ts = datetime(year, *parts, tzinfo=self.zone)
            except ValueError:  # Feb 29 outside a leap year: try the previous year
                continue
            if year != this_year or ts <= self._limit:
                return ts
        return None
