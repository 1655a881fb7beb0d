"""Business days in China: holidays and make-up workdays (调休), for the calendar features.

The official schedule comes from the `chinese-calendar` package, which follows the State
Council's yearly announcement (published around November for the next year). For a year the
package does not know yet it raises NotImplementedError; then we fall back to Monday-Friday,
say so once in the log, and let operators add the announced dates in config (`holidays:`,
`workdays:`) until the package is upgraded. Operator dates always win, so a company that
works on a public holiday (or closes on a bridge day) can say so too.
"""

from __future__ import annotations

import calendar as _cal
import logging
from collections.abc import Iterable
from datetime import date

log = logging.getLogger(__name__)


class BusinessCalendar:
    """Is a date a business day, is it month-end, is it in the filing period (征期)."""

    def __init__(self, holidays: Iterable[date] = (), workdays: Iterable[date] = (),
                 month_end_days: int = 3, filing_last_day: int = 15):
        self.holidays = frozenset(holidays)
        self.workdays = frozenset(workdays)
        self.month_end_days = month_end_days
        self.filing_last_day = filing_last_day
        self._cache: dict[date, bool] = {}
        self.unknown_years: set[int] = set()  # years answered by the weekday fallback

    def is_business_day(self, d: date) -> bool:
        hit = self._cache.get(d)
        if hit is None:
            hit = self._cache[d] = self._business_day(d)
        return hit

    def _business_day(self, d: date) -> bool:
        if d in self.workdays:
            return True
        if d in self.holidays:
            return False
        import chinese_calendar  # type: ignore[import-untyped]  # only the model needs it

        try:
            return bool(chinese_calendar.is_workday(d))
        except NotImplementedError:
            if d.year not in self.unknown_years:
                self.unknown_years.add(d.year)
                log.warning("chinese-calendar does not know the holidays of %d yet: treating "
                            "Monday-Friday as business days; add the announced dates under "
                            "model.holidays / model.workdays, or upgrade chinese-calendar",
                            d.year)
            return d.weekday() < 5

    def is_month_end(self, d: date) -> bool:
        """The last `month_end_days` calendar days of the month (closing, reconciliation)."""
        last = _cal.monthrange(d.year, d.month)[1]
        return d.day > last - self.month_end_days

    def is_filing_period(self, d: date) -> bool:
        """Days 1..filing_last_day: the monthly tax filing period (征期)."""
        return d.day <= self.filing_last_day

    def day_type(self, d: date) -> int:
        """0 a day off (weekend, holiday), 1 a business day, 2 a business day at month-end:
        the three kinds of day whose traffic differs most, each with its own hourly profile."""
        if not self.is_business_day(d):
            return 0
        return 2 if self.is_month_end(d) else 1


DAY_TYPES = {0: ("day off", "休息日"), 1: ("business day", "工作日"),
             2: ("month-end business day", "月末工作日")}
