"""The model's named, versioned numeric vector: one row per time slot (the windows of every
source that end at the same time), plus calendar features so normal rhythms are not anomalies.

Per traffic source: count, failure and timeout rate, latency p50/p95 and error-code diversity,
from the Window features of agent.features. Per `ledger` source (when configured): pending,
overdue, oldest pending age, lag p50/p95. Calendar: hour of day and day of week as points on a
circle (23:55 is next to 00:00), business day (China's holidays and make-up workdays), month-end,
filing period.

Counts and latencies enter as log1p: their spread grows with their size, and the forest picks
split points uniformly between a feature's min and max, so on a raw scale one month-end peak
would leave every ordinary value in a single bin.

A change of names, order or transforms is a new FEATURE_VERSION: a model trained on another
version is refused at load rather than fed columns it never saw.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

import numpy as np

from agent.features import NUMERIC_FEATURES
from agent.model.calendar import BusinessCalendar

FEATURE_VERSION = 1
LEDGER = "ledger"  # the derived source of per-invoice stage features
TRAFFIC_METRICS = ("count", "failure_rate", "timeout_rate", "latency_p50", "latency_p95",
                   "distinct_error_codes")
if not set(TRAFFIC_METRICS) <= set(NUMERIC_FEATURES):  # taken from the windows' numbers
    raise ImportError(f"model metrics outside the window's numeric features: "
                      f"{sorted(set(TRAFFIC_METRICS) - set(NUMERIC_FEATURES))}")
# agent/ledger/features.py: gauges when the window closes, and the issued-to-final lag of the
# invoices completed in it (0 when none completed)
LEDGER_METRICS = ("pending", "overdue", "oldest_pending_minutes", "lag_p50_seconds",
                  "lag_p95_seconds")
CALENDAR = ("hour_sin", "hour_cos", "dow_sin", "dow_cos", "business_day", "month_end",
            "filing_period")
LOG_METRICS = frozenset({"count", "latency_p50", "latency_p95", *LEDGER_METRICS})
# How a measurement is compared with its hour's normal (agent.model.profile): event counts
# with Poisson noise, rates as binomial counts, latencies weighed by how many samples made the
# percentile, error-code diversity as a small count, ledger gauges like counts but one-sided,
# and the ledger's lags like latencies (a window where nothing completed has none)
KIND = {"count": "volume", "failure_rate": "rate", "timeout_rate": "rate",
        "latency_p50": "latency", "latency_p95": "latency", "distinct_error_codes": "diversity",
        "pending": "level", "overdue": "level", "oldest_pending_minutes": "level",
        "lag_p50_seconds": "latency", "lag_p95_seconds": "latency"}


@dataclass(frozen=True)
class FeatureSpec:
    """Which measurements make up a slot's vector, in order, for a set of configured sources."""

    sources: tuple[str, ...]  # traffic sources, sorted (config order may change, names not)
    ledger: bool = False
    version: int = FEATURE_VERSION
    measured: tuple[tuple[str, str], ...] = field(init=False)

    def __post_init__(self) -> None:
        pairs = [(s, m) for s in self.sources for m in TRAFFIC_METRICS]
        if self.ledger:
            pairs += [(LEDGER, m) for m in LEDGER_METRICS]
        object.__setattr__(self, "measured", tuple(pairs))

    @classmethod
    def for_sources(cls, sources: Collection[str], ledger: bool = False) -> "FeatureSpec":
        """The spec of a config: every source, and the ledger's features when it has one
        (`ledger`, or a source named `ledger` among `sources`)."""
        return cls(tuple(sorted(s for s in sources if s != LEDGER)), ledger or LEDGER in sources)

    @property
    def watched(self) -> frozenset[str]:
        return frozenset(self.sources) | ({LEDGER} if self.ledger else set())

    @property
    def measured_names(self) -> list[str]:
        return [f"{s}.{m}" for s, m in self.measured]

    @property
    def names(self) -> list[str]:
        """The named vector: measurements, then calendar features."""
        return self.measured_names + [f"calendar.{c}" for c in CALENDAR]

    def log_columns(self) -> np.ndarray:
        return np.array([m in LOG_METRICS for _, m in self.measured], dtype=bool)

    @property
    def kinds(self) -> list[str]:
        return [KIND[m] for _, m in self.measured]

    def column_of(self, source: str, metric: str) -> int:
        """The index of a measurement, -1 when the spec has none (the ledger has no count)."""
        try:
            return self.measured.index((source, metric))
        except ValueError:
            return -1

    def measure(self, by_source: Mapping[str, Mapping[str, Any]]) -> tuple[float, ...]:
        """Raw measurements of one slot; a source without a window counts as empty (0s)."""
        out = []
        for s, m in self.measured:
            feats = by_source.get(s)
            v = feats.get(m, 0.0) if feats is not None else 0.0
            out.append(float(v) if isinstance(v, (int, float)) else 0.0)
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Slot:
    """The windows of every watched source that share one [start, end)."""

    start: datetime
    end: datetime
    raw: tuple[float, ...]  # spec.measured order


class SlotBuffer:
    """Collects closed windows by their end until their slot is complete.

    The engine closes the windows of all sources with the same end in one `advance`, then
    ticks: a slot is complete when every watched source has shown its window, or at the tick
    after it (a source added by a reload, or a ledger window that did not come)."""

    def __init__(self, spec: FeatureSpec):
        self.spec = spec
        self.watched = spec.watched
        self._open: dict[datetime, tuple[datetime, dict[str, Mapping[str, Any]]]] = {}
        self.done_until: datetime | None = None  # slots ending at or before this are done

    def add(self, source: str, start: datetime, end: datetime,
            features: Mapping[str, Any]) -> Slot | None:
        """Take one window; the slot if this completed it."""
        if source not in self.watched or (self.done_until is not None
                                          and end <= self.done_until):
            return None  # late for a slot already scored: scoring it twice would flap
        entry = self._open.get(end)
        if entry is None:
            entry = self._open[end] = (start, {})
        entry[1][source] = features
        if len(entry[1]) < len(self.watched):
            return None
        del self._open[end]
        self._mark(end)
        return Slot(start, end, self.spec.measure(entry[1]))

    def complete(self, now: datetime) -> list[Slot]:
        """Every slot still open whose end is at or before `now`, oldest first."""
        due = sorted(e for e in self._open if e <= now)
        out = []
        for end in due:
            start, by_source = self._open.pop(end)
            out.append(Slot(start, end, self.spec.measure(by_source)))
        if due:
            self._mark(due[-1])
        return out

    def _mark(self, end: datetime) -> None:
        if self.done_until is None or end > self.done_until:
            self.done_until = end

    def state(self) -> dict[str, Any]:
        return {"open": {e.isoformat(): [s.isoformat(), {k: dict(v) for k, v in f.items()}]
                         for e, (s, f) in self._open.items()},
                "done_until": self.done_until.isoformat() if self.done_until else None}

    def restore(self, state: Mapping[str, Any]) -> None:
        for e, (s, f) in state.get("open", {}).items():
            self._open[datetime.fromisoformat(e)] = (datetime.fromisoformat(s), dict(f))
        done = state.get("done_until")
        self.done_until = datetime.fromisoformat(done) if done else None


def calendar_matrix(starts: Sequence[datetime], ends: Sequence[datetime], zone: tzinfo,
                    cal: BusinessCalendar) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(calendar features rows x CALENDAR, fractional hour of each slot's middle, kind of
    day) of slots [start, end); the day is the start's, in the config's time zone."""
    n = len(starts)
    out = np.zeros((n, len(CALENDAR)))
    at = np.zeros(n)
    kinds = np.zeros(n, dtype=np.int64)
    tau = 2 * math.pi
    for i, (st, en) in enumerate(zip(starts, ends, strict=True)):
        local = st.astimezone(zone)
        d = local.date()
        h = local.hour + local.minute / 60 + local.second / 3600
        dow = local.weekday()
        out[i] = (math.sin(tau * h / 24), math.cos(tau * h / 24), math.sin(tau * dow / 7),
                  math.cos(tau * dow / 7), cal.is_business_day(d), cal.is_month_end(d),
                  cal.is_filing_period(d))
        at[i] = h + (en - st).total_seconds() / 7200
        kinds[i] = cal.day_type(d)
    return out, at, kinds


def raw_matrix(slots: Iterable[Slot], width: int) -> np.ndarray:
    rows = [s.raw for s in slots]
    return np.array(rows, dtype=float).reshape(len(rows), width)


def slots_from_windows(windows: Iterable[Any], spec: FeatureSpec) -> list[Slot]:
    """Every slot of a history of closed windows (agent.types.Window), oldest first."""
    buf = SlotBuffer(spec)
    out = []
    last = None
    for w in windows:
        s = buf.add(w.source, w.start, w.end, w.features)
        if s is not None:
            out.append(s)
        last = w.end if last is None or w.end > last else last
    if last is not None:
        out += buf.complete(last)
    return sorted(out, key=lambda s: s.end)
