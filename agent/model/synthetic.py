"""Weeks of invoice traffic at the window level, with labelled incidents: for evaluating the
model (bench/model_eval.py) and for tests that need a trained model in a second.

Log-level simulation (agent.simulator) writes one day of real lines; weeks of them would take
minutes to write and replay, and the model only ever sees window features. So this draws the
features directly, shaped like the demo's day: office hours with a lunch dip, quiet nights,
days off (weekends and China's holidays, with make-up workdays) at a tenth of the traffic,
busier Mondays, month-end peaks with slower answers, the filing period a little busier.
Sources match the demo config: platform (issued, no latency), upload (latency, failures,
timeouts, error codes), erp (sync latency, rare failures), system (syslog lines).

Normal traffic is not all smooth, in training or after it: batch issuing (2-3x volume for
10-20 minutes, a few times a week), short failure blips (a window with a handful of
rejections, about daily), slow spells (latency x1.5-2 for a window or two, a few a week).
A model that pages on these is of no use, so the evaluation keeps them in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import numpy as np

from agent.model.calendar import BusinessCalendar
from agent.types import Window

TZ = timezone(timedelta(hours=8))
SOURCES = ("erp", "platform", "system", "upload")
KINDS = ("outage", "latency", "error_burst", "slow_drift", "partial_outage", "volume_collapse")
DESCRIPTIONS = {
    "outage": "platform unreachable: uploads time out, ERP sync stops, syslog errors",
    "latency": "platform slow: upload latency x18",
    "error_burst": "half the uploads rejected with code 1001",
    "slow_drift": "upload latency creeping up 1x -> 5x over 6 hours",
    "partial_outage": "ERP sync stops, everything else normal",
    "volume_collapse": "all traffic drops to 8% during office hours",
}
_DURATION = {"outage": 30, "latency": 60, "error_burst": 20, "slow_drift": 360,
             "partial_outage": 45, "volume_collapse": 60}  # minutes


@dataclass(frozen=True)
class Incident:
    kind: str
    start: datetime
    end: datetime


def rate_per_min(hour: np.ndarray) -> np.ndarray:
    """Invoices issued per minute at an hour of a business day (the demo simulator's shape)."""
    ramp_in = np.clip((hour - 7.5) / 1.0, 0, 1)
    ramp_out = np.clip((20.0 - hour) / 2.0, 0, 1)
    office = 8.0 + 1.5 * np.sin((hour - 8.5) * np.pi / 4.75)
    lunch = 1.0 - 0.6 * np.exp(-(((hour - 12.75) / 0.55) ** 2))
    return 0.2 + office * ramp_in * ramp_out * lunch


class _Plan:
    """Per-slot parameters of the traffic, which incidents then change."""

    def __init__(self, starts: list[datetime], window: timedelta, cal: BusinessCalendar,
                 rng: np.random.Generator):
        n = len(starts)
        minutes = window.total_seconds() / 60
        hour = np.array([s.hour + s.minute / 60 for s in starts])
        day_factor: dict[date, float] = {}
        lat_factor: dict[date, float] = {}
        for s in starts:
            d = s.date()
            if d in day_factor:
                continue
            f = 1.0 if cal.is_business_day(d) else 0.1
            if cal.is_business_day(d) and d.weekday() == 0:
                f *= 1.1
            if cal.is_business_day(d) and cal.is_month_end(d):
                f *= 1.7
            if cal.is_filing_period(d):
                f *= 1.1
            day_factor[d] = f * math.exp(rng.normal(0, 0.08))
            lat_factor[d] = 1.3 if cal.is_business_day(d) and cal.is_month_end(d) else 1.0
        base = rate_per_min(hour) * minutes
        self.expected = base * np.array([day_factor[s.date()] for s in starts])
        self.count = {s: np.ones(n) for s in SOURCES}
        self.fail_p = np.full(n, 0.01)
        self.timeout_p = np.full(n, 0.002)
        self.burst_code = np.zeros(n, dtype=bool)
        self.latency = np.array([lat_factor[s.date()] for s in starts])
        self.system_extra = np.zeros(n)

    def quirks(self, rng: np.random.Generator, days: int, per_slot_day: int) -> None:
        """The irregular but normal events of the module docstring, at random office hours."""
        n = len(self.expected)

        def office(k: int) -> np.ndarray:
            day = rng.integers(0, days, k)
            return day * per_slot_day + (rng.uniform(9, 17, k) / 24 * per_slot_day).astype(int)

        for at in office(int(days * 3 / 7)):  # batch issuing
            rows = np.arange(at, min(n, at + int(rng.integers(2, 5))))
            boost = rng.uniform(2, 3)
            for s in ("platform", "upload", "erp"):
                self.count[s][rows] *= boost
        for at in office(days):  # a few rejections in one window
            self.fail_p[at] = max(self.fail_p[at], float(rng.uniform(0.05, 0.12)))
        for at in office(int(days * 3 / 7)):  # a slow spell
            self.latency[at:at + int(rng.integers(1, 3))] *= rng.uniform(1.5, 2.0)

    def inject(self, kind: str, rows: np.ndarray) -> None:
        k = len(rows)
        if kind == "outage":
            self.timeout_p[rows] = 0.95
            self.count["upload"][rows] *= 1.3
            self.count["erp"][rows] *= 0.05
            self.system_extra[rows] += 25
        elif kind == "latency":
            self.latency[rows] *= 18
        elif kind == "error_burst":
            self.fail_p[rows] = 0.5
            self.burst_code[rows] = True
            self.count["upload"][rows] *= 1.5
        elif kind == "slow_drift":
            self.latency[rows] *= np.linspace(1.0, 5.0, k)
        elif kind == "partial_outage":
            self.count["erp"][rows] = 0.0
        elif kind == "volume_collapse":
            for s in ("platform", "upload", "erp"):
                self.count[s][rows] *= 0.08
        else:
            raise ValueError(f"unknown incident kind {kind!r}; expected one of {KINDS}")


def _percentiles(samples: np.ndarray) -> tuple[float, float]:
    """Nearest-rank p50 and p95, as agent.features computes them."""
    n = len(samples)
    if n == 0:
        return 0.0, 0.0
    s = np.sort(samples)
    return float(s[max(0, math.ceil(0.5 * n) - 1)]), float(s[max(0, math.ceil(0.95 * n) - 1)])


def _features(n: int, failed: int, timeout: int, codes: int, p50: float, p95: float,
              minutes: float) -> dict[str, float]:
    return {"count": n, "ok": n - failed - timeout, "failed": failed, "timeout": timeout,
            "failure_rate": (failed + timeout) / n if n else 0.0,
            "timeout_rate": timeout / n if n else 0.0, "latency_p50": p50,
            "latency_p95": p95, "distinct_error_codes": codes, "window_minutes": minutes}


def generate(start: date, days: int, incidents: Iterable[Incident] = (), seed: int = 0,
             window: timedelta = timedelta(minutes=5),
             cal: BusinessCalendar | None = None, quirks: bool = True) -> list[Window]:
    """Windows of every source for `days` days from `start` (+08:00), time-ordered by end;
    `quirks`: with the irregular but normal events (see above)."""
    cal = cal or BusinessCalendar()
    rng = np.random.default_rng(seed)
    t0 = datetime.combine(start, time(0), TZ)
    n = int(timedelta(days=days) / window)
    starts = [t0 + i * window for i in range(n)]
    plan = _Plan(starts, window, cal, rng)
    if quirks:
        plan.quirks(rng, days, int(timedelta(days=1) / window))
    for inc in incidents:
        first = max(0, math.floor((inc.start - t0) / window))
        last = min(n, math.ceil((inc.end - t0) / window))
        plan.inject(inc.kind, np.arange(first, last))
    minutes = window.total_seconds() / 60
    counts = {s: rng.poisson(np.maximum(plan.expected * plan.count[s], 0.0))
              for s in ("platform", "upload", "erp")}
    counts["system"] = rng.poisson(1.8 + plan.system_extra)
    out: list[Window] = []
    for i, st in enumerate(starts):
        end = st + window
        nu = int(counts["upload"][i])
        timeout = int(rng.binomial(nu, plan.timeout_p[i]))
        failed = int(rng.binomial(nu - timeout, plan.fail_p[i]))
        if plan.burst_code[i]:
            codes = 1 + len(set(rng.integers(0, 6, max(0, failed // 20)).tolist()))
        else:
            codes = len(set(rng.integers(0, 6, failed).tolist()))
        codes += timeout > 0  # NET_TIMEOUT
        lat = np.clip(rng.lognormal(math.log(240 * plan.latency[i]), 0.45, nu - timeout),
                      25, 60000)
        up50, up95 = _percentiles(lat)
        ne = int(counts["erp"][i])
        efail = int(rng.binomial(ne, 0.005))
        e50, e95 = _percentiles(rng.lognormal(math.log(110), 0.4, ne))
        ecodes = len(set(rng.integers(0, 3, efail).tolist()))
        out += [
            Window("erp", st, end, _features(ne, efail, 0, ecodes, e50, e95, minutes)),
            Window("platform", st, end,
                   _features(int(counts["platform"][i]), 0, 0, 0, 0.0, 0.0, minutes)),
            Window("system", st, end,
                   _features(int(counts["system"][i]), 0, 0, 0, 0.0, 0.0, minutes)),
            Window("upload", st, end, _features(nu, failed, timeout, codes, up50, up95,
                                                minutes)),
        ]
    return out


def incident_plan(start: date, days: int, per_kind: int, seed: int = 1,
                  cal: BusinessCalendar | None = None) -> list[Incident]:
    """`per_kind` incidents of every kind at random business-day office hours (slow drifts
    from 08:30; the rest between 09:00 and 17:00), on window boundaries, never overlapping."""
    cal = cal or BusinessCalendar()
    rng = np.random.default_rng(seed)
    days_ok = [start + timedelta(days=i) for i in range(days)
               if cal.is_business_day(start + timedelta(days=i))]
    taken: list[tuple[datetime, datetime]] = []
    out: list[Incident] = []
    for kind in KINDS:
        placed = 0
        while placed < per_kind:
            d = days_ok[int(rng.integers(len(days_ok)))]
            hh = 8.5 if kind == "slow_drift" else float(rng.integers(18, 32)) / 2
            st = datetime.combine(d, time(int(hh), int(hh % 1 * 60)), TZ)
            en = st + timedelta(minutes=_DURATION[kind])
            # a gap of 3 hours on both sides: each incident is judged on its own
            if any(st < b + timedelta(hours=3) and a < en + timedelta(hours=3)
                   for a, b in taken):
                continue
            taken.append((st, en))
            out.append(Incident(kind, st, en))
            placed += 1
    return sorted(out, key=lambda i: i.start)
