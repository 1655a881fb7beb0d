"""Tumbling windows in event time: Events in, Windows of features out.

Pure: time only comes in as the `now` passed to `advance`. A window [start, start+length)
closes once `now` passes its end plus the allowed lateness; an event for a window that has
already closed is counted as late and left out. Sources that log nothing still get (empty)
windows, so "nothing happened" is visible to the rules.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from agent.types import Event, Window

FAIL_STATUSES = frozenset({"failed", "fail", "failure", "error"})
ERROR_LEVELS = frozenset({"error", "err", "critical", "crit", "fatal", "alert", "emerg"})
MAX_CATCH_UP = 2000  # windows emitted at most per source after a long gap

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

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class _Acc:
    """Running counts of one open window."""

    __slots__ = ("count", "statuses", "errors", "latencies", "codes")

    def __init__(self) -> None:
        self.count = 0
        self.statuses: Counter[str] = Counter()
        self.errors = 0
        self.latencies: list[float] = []
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
            self.latencies.append(ev.latency_ms)
        if ev.error_code:
            self.codes[ev.error_code] += 1

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "statuses": dict(self.statuses), "errors": self.errors,
                "latencies": self.latencies, "codes": dict(self.codes)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "_Acc":
        acc = cls()
        acc.count = d["count"]
        acc.statuses.update(d["statuses"])
        acc.errors = d["errors"]
        acc.latencies = list(d["latencies"])
        acc.codes.update(d["codes"])
        return acc


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile: a value that really occurred, as operators expect."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 1)) - 1))
    return sorted_values[k]


def compute_features(acc: _Acc, length: timedelta) -> dict[str, Any]:
    n = acc.count
    st = acc.statuses
    lat = sorted(acc.latencies)
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
        "latency_count": len(lat),
        "latency_p50": _percentile(lat, 0.50),
        "latency_p95": _percentile(lat, 0.95),
        "latency_max": lat[-1] if lat else 0.0,
        "latency_avg": sum(lat) / len(lat) if lat else 0.0,
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
        self.late = Counter[str]()

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
            self.late[ev.source] += 1
            return False
        wins = self._open[ev.source]
        acc = wins.get(start)
        if acc is None:
            acc = wins[start] = _Acc()
        acc.add(ev)
        return True

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
                out.append(self._close(s, nxt, wins.pop(nxt, None) or _Acc(), tz))
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
            "late": dict(self.late),
        }

    def restore(self, state: dict[str, Any]) -> None:
        for s in self.sources:
            if s in state.get("next", {}):
                self._next[s] = state["next"][s]
            for k, a in state.get("open", {}).get(s, {}).items():
                self._open[s][float(k)] = _Acc.from_json(a)
        self.late.update({k: v for k, v in state.get("late", {}).items() if k in self._open})
