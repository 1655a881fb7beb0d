"""Tumbling windows in event time: Events in, Windows of features out.

Pure: time only comes in as the `now` passed to `advance`. A window [start, start+length)
closes once `now` passes its end plus the allowed lateness; an event for a window that has
already closed is counted as late and left out. Sources that log nothing still get (empty)
windows, so "nothing happened" is visible to the rules.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Iterable

from agent.types import Event, Window

FAIL_STATUSES = frozenset({"failed", "fail", "failure", "error"})
ERROR_LEVELS = frozenset({"error", "err", "critical", "crit", "fatal", "alert", "emerg"})
MAX_CATCH_UP = 2000  # windows emitted at most per source after a long gap
EXACT_LATENCIES = 2000  # samples per window kept exactly; beyond, 1% buckets
_STEP = math.log(1.01)

# Every feature a window carries; rule expressions and templates are checked against these.
FEATURES: dict[str, str] = {
    "count": "events in the window",
    "ok": "events with status ok",
    "failed": "events with status failed (or an error code and no status)",
    "timeout": "events with status timeout",
    "pending": "events with status pending",
    "failure_rate": "(failed + timeout) / count, 0 when count is 0",
    "timeout_rate": "timeout / count",
    "errors": "events logged at error level or worse",
    "latency_count": "events that carried a latency",
    "latency_p50": "median latency in ms (0 without samples)",
    "latency_p95": "95th percentile latency in ms (0 without samples)",
    "latency_max": "largest latency in ms",
    "latency_avg": "mean latency in ms",
    "error_codes": "mapping error code -> count, e.g. error_codes.get('1001', 0)",
    "error_count": "events carrying an error code",
    "distinct_error_codes": "how many different error codes",
    "top_error_code": "the most frequent error code ('' if none)",
    "top_error_code_count": "how often the top error code occurred",
    "window_minutes": "window length in minutes",
}

# The numeric part of a window, in a fixed order: what a model takes (a mapping such as
# `error_codes` and a text such as `top_error_code` stay for rules and messages only).
NON_NUMERIC = frozenset({"error_codes", "top_error_code"})
NUMERIC_FEATURES: tuple[str, ...] = tuple(f for f in FEATURES if f not in NON_NUMERIC)


class Latencies:
    """Latency samples of one window: exact while few, then 1%-wide logarithmic buckets.

    Percentiles stay exact for ordinary windows; a month-end window with hundreds of thousands
    of uploads costs a few hundred buckets in memory and in each checkpoint, not every sample,
    and its p50/p95 are within 1%.
    """

    __slots__ = ("exact", "buckets", "n", "total", "max")

    def __init__(self) -> None:
        self.exact: list[float] = []
        self.buckets: dict[int, int] = {}  # log-bucket -> count, for samples moved out of exact
        self.n = 0  # samples in buckets
        self.total = 0.0
        self.max = 0.0

    def compact(self) -> None:
        for v in self.exact:
            b = int(math.log(v) / _STEP) if v > 1.0 else 0
            self.buckets[b] = self.buckets.get(b, 0) + 1
            self.total += v
            if v > self.max:
                self.max = v
        self.n += len(self.exact)
        self.exact = []

    def summary(self) -> tuple[int, float, float, float, float]:
        """(count, p50, p95, max, mean)."""
        if not self.buckets:
            lat = sorted(self.exact)
            if not lat:
                return 0, 0.0, 0.0, 0.0, 0.0
            return (len(lat), _percentile(lat, 0.50), _percentile(lat, 0.95), lat[-1],
                    sum(lat) / len(lat))
        self.compact()
        return (self.n, self._bucket_percentile(0.50), self._bucket_percentile(0.95), self.max,
                self.total / self.n)

    def _bucket_percentile(self, q: float) -> float:
        rank = max(1, math.ceil(q * self.n))
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= rank:
                return min(self.max, math.exp((b + 0.5) * _STEP)) if b else min(self.max, 1.0)
        return self.max

    def to_json(self) -> dict[str, Any]:
        return {"exact": self.exact, "buckets": {str(k): v for k, v in self.buckets.items()},
                "n": self.n, "total": self.total, "max": self.max}

    @classmethod
    def from_json(cls, d: Any) -> "Latencies":
        lat = cls()
        if isinstance(d, list):  # state written before buckets existed
            lat.exact = list(d)
            return lat
        lat.exact = list(d["exact"])
        lat.buckets = {int(k): v for k, v in d["buckets"].items()}
        lat.n, lat.total, lat.max = d["n"], d["total"], d["max"]
        return lat


class _Acc:
    """Running counts of one open window."""

    __slots__ = ("count", "statuses", "errors", "latencies", "codes")

    def __init__(self) -> None:
        self.count = 0
        self.statuses: Counter[str] = Counter()
        self.errors = 0
        self.latencies = Latencies()
        self.codes: Counter[str] = Counter()

    def add(self, ev: Event) -> None:
        self.count += 1
        status = ev.status
        if status is None and ev.error_code:
            status = "failed"
        if status is not None:
            self.statuses["failed" if status in FAIL_STATUSES else status] += 1
        if ev.level is not None and ev.level.lower() in ERROR_LEVELS:
            self.errors += 1
        if ev.latency_ms is not None:
            exact = self.latencies.exact
            exact.append(ev.latency_ms)
            if len(exact) > EXACT_LATENCIES:
                self.latencies.compact()
        if ev.error_code:
            self.codes[ev.error_code] += 1

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "statuses": dict(self.statuses), "errors": self.errors,
                "latencies": self.latencies.to_json(), "codes": dict(self.codes)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "_Acc":
        acc = cls()
        acc.count = d["count"]
        acc.statuses.update(d["statuses"])
        acc.errors = d["errors"]
        acc.latencies = Latencies.from_json(d["latencies"])
        acc.codes.update(d["codes"])
        return acc


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile: a value that really occurred, as operators expect."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 1)) - 1))
    return sorted_values[k]


def empty_features(length: timedelta = timedelta(minutes=5)) -> dict[str, Any]:
    """The features of a window without events: what rules are tried on at load."""
    return compute_features(_Acc(), length)


def compute_features(acc: _Acc, length: timedelta) -> dict[str, Any]:
    n = acc.count
    st = acc.statuses
    lat_n, p50, p95, lat_max, lat_avg = acc.latencies.summary()
    failed, timeout = st.get("failed", 0), st.get("timeout", 0)
    top = acc.codes.most_common(1)
    return {
        "count": n,
        "ok": st.get("ok", 0),
        "failed": failed,
        "timeout": timeout,
        "pending": st.get("pending", 0),
        "failure_rate": (failed + timeout) / n if n else 0.0,
        "timeout_rate": timeout / n if n else 0.0,
        "errors": acc.errors,
        "latency_count": lat_n,
        "latency_p50": p50,
        "latency_p95": p95,
        "latency_max": lat_max,
        "latency_avg": lat_avg,
        "error_codes": dict(acc.codes),
        "error_count": sum(acc.codes.values()),
        "distinct_error_codes": len(acc.codes),
        "top_error_code": top[0][0] if top else "",
        "top_error_code_count": top[0][1] if top else 0,
        "window_minutes": length.total_seconds() / 60,
    }


class Windows:
    """Tumbling windows for a set of sources."""

    def __init__(self, sources: Iterable[str], length: timedelta, lateness: timedelta):
        self.length = length
        self.lateness = lateness
        self._len_s = length.total_seconds()
        self.sources = list(sources)
        self._open: dict[str, dict[float, _Acc]] = {s: {} for s in self.sources}
        self._next: dict[str, float | None] = {s: None for s in self.sources}  # next to close

    def _floor(self, t: float) -> float:
        return t - (t % self._len_s)

    def add(self, ev: Event) -> bool:
        """Count one event; False if its window had already closed (late)."""
        t = ev.ts.timestamp()
        start = self._floor(t)
        nxt = self._next.get(ev.source)
        if nxt is None:
            if ev.source not in self._open:
                return False
            self._next[ev.source] = start
        elif start < nxt:
            return False
        wins = self._open[ev.source]
        acc = wins.get(start)
        if acc is None:
            acc = wins[start] = _Acc()
        acc.add(ev)
        return True

    def so_far(self, ev: Event) -> Window | None:
        """The open window `ev` was counted into, with its features so far (for rules that
        fire early); None if the event was late."""
        t = ev.ts.timestamp()
        start = self._floor(t)
        acc = self._open.get(ev.source, {}).get(start)
        if acc is None:
            return None
        return self._close(ev.source, start, acc, ev.ts.tzinfo)

    def start(self, now: datetime) -> None:
        """Begin every source that has seen nothing yet at `now` (absence starts counting)."""
        t = self._floor(now.timestamp())
        for s, nxt in self._next.items():
            if nxt is None:
                self._next[s] = t

    def advance(self, now: datetime) -> list[Window]:
        """Close every window whose end + lateness <= now, in time order per source."""
        limit = now.timestamp() - self.lateness.total_seconds()
        out: list[Window] = []
        tz = now.tzinfo
        for s in self.sources:
            nxt = self._next[s]
            if nxt is None:
                continue
            wins = self._open[s]
            if limit - nxt > MAX_CATCH_UP * self._len_s:
                # a long gap: jump ahead, keeping windows that hold events
                jump = self._floor(limit) - MAX_CATCH_UP * self._len_s
                for st in sorted(k for k in wins if k < jump):
                    out.append(self._close(s, st, wins.pop(st), tz))
                nxt = max(nxt, jump)
            while nxt + self._len_s <= limit:
                acc = wins.pop(nxt) if nxt in wins else _Acc()
                out.append(self._close(s, nxt, acc, tz))
                nxt += self._len_s
            self._next[s] = nxt
        return out

    def _close(self, source: str, start: float, acc: _Acc, tz: Any) -> Window:
        st = datetime.fromtimestamp(start, tz)
        return Window(source, st, st + self.length, compute_features(acc, self.length))

    # -- checkpointing -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "next": self._next,
            "open": {s: {str(k): a.to_json() for k, a in w.items()} for s, w in self._open.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        for s in self.sources:
            if s in state.get("next", {}):
                self._next[s] = state["next"][s]
            for k, a in state.get("open", {}).get(s, {}).items():
                self._open[s][float(k)] = _Acc.from_json(a)
