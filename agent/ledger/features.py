"""The ledger's features per window: the derived source `ledger`.

Its windows close with every other source's (same length, same lateness) and are stored with
them, so threshold rules can say `source: ledger, when: "overdue > 50"` and the model reads the
numbers from closed windows of source `ledger` (NUMERIC_LEDGER_FEATURES, in that order). Counts
are of what happened in the window; `pending`, `overdue` and `oldest_pending_minutes` are the
ledger's state when the window closes. The names are a contract: keep them stable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from agent.features import MAX_CATCH_UP
from agent.latencies import Latencies
from agent.ledger.config import LEDGER_SOURCE
from agent.types import Window

LEDGER_FEATURES: dict[str, str] = {
    "pending": "invoices at the first stage, not yet at the final one, when the window closes",
    "overdue": "of those, at the first stage for longer than ledger.deadline",
    "oldest_pending_minutes": "age of the oldest pending invoice in minutes (0 without any)",
    "issued": "invoices that reached the first stage in the window",
    "completed": "invoices that reached the final stage in the window",
    "lag_p50_seconds": "first-to-final-stage lag of the invoices completed in the window, "
                       "median (0 without any)",
    "lag_p95_seconds": "the same lag, 95th percentile",
    "late": "invoices that reached a missing rule's `to` stage after its deadline",
    "mismatched": "invoices whose compared fields disagree across stages",
    "duplicates": "stages reached again with other contents",
    "incomplete": "ledger events with a missing or malformed field",
    "no_key": "stage events without an invoice number (counted, not ledgered)",
    "window_minutes": "window length in minutes",
}
NUMERIC_LEDGER_FEATURES: tuple[str, ...] = tuple(LEDGER_FEATURES)
_COUNTS = ("issued", "completed", "late", "mismatched", "duplicates", "incomplete", "no_key")

# (pending, overdue, the oldest pending one's first-stage time or None) at a window's `end`
Gauges = Callable[[float], tuple[int, int, float | None]]


class _Acc:
    __slots__ = ("counts", "lags")

    def __init__(self) -> None:
        self.counts = dict.fromkeys(_COUNTS, 0)
        self.lags = Latencies()

    def to_json(self) -> dict[str, Any]:
        return {"counts": self.counts, "lags": self.lags.to_json()}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "_Acc":
        acc = cls()
        acc.counts.update({k: int(v) for k, v in d["counts"].items() if k in acc.counts})
        acc.lags = Latencies.from_json(d["lags"])
        return acc


def empty_ledger_features(length: timedelta = timedelta(minutes=5)) -> dict[str, Any]:
    """A window without ledger events or pending invoices: what rules are tried on at load."""
    return _features(_Acc(), 0, 0, 0.0, length)


def _features(acc: _Acc, pending: int, overdue: int, oldest_minutes: float,
              length: timedelta) -> dict[str, Any]:
    _, p50, p95, _, _ = acc.lags.summary()
    return {"pending": pending, "overdue": overdue, "oldest_pending_minutes": oldest_minutes,
            **{k: acc.counts[k] for k in ("issued", "completed")},
            "lag_p50_seconds": p50, "lag_p95_seconds": p95,
            **{k: acc.counts[k] for k in _COUNTS[2:]},
            "window_minutes": length.total_seconds() / 60}


class LedgerWindows:
    """Tumbling windows of the derived source, closed in step with the engine's windows."""

    def __init__(self, length: timedelta, lateness: timedelta):
        self.length = length
        self._len = length.total_seconds()
        self._lateness = lateness.total_seconds()
        self._open: dict[float, _Acc] = {}
        self._next: float | None = None  # start of the next window to close

    def _acc(self, ts: float) -> _Acc | None:
        start = ts - ts % self._len
        if self._next is None or start < self._next:
            return None  # before monitoring began, or its window closed: not counted
        acc = self._open.get(start)
        if acc is None:
            acc = self._open[start] = _Acc()
        return acc

    def count(self, name: str, ts: float, n: int = 1) -> None:
        acc = self._acc(ts)
        if acc is not None:
            acc.counts[name] += n

    def lag(self, ts: float, seconds: float) -> None:
        acc = self._acc(ts)
        if acc is not None:
            acc.counts["completed"] += 1
            acc.lags.exact.append(max(0.0, seconds))
            if len(acc.lags.exact) > 2000:
                acc.lags.compact()

    def start(self, now: datetime) -> None:
        if self._next is None:
            t = now.timestamp()
            self._next = t - t % self._len

    def advance(self, now: datetime, gauges: Gauges) -> list[Window]:
        """Close every window whose end + lateness <= now, oldest first."""
        if self._next is None:
            return []
        limit = now.timestamp() - self._lateness
        nxt = self._next
        out: list[Window] = []
        if limit - nxt > MAX_CATCH_UP * self._len:  # a long gap: jump, as the engine does
            jump = limit - limit % self._len - MAX_CATCH_UP * self._len
            for st in sorted(k for k in self._open if k < jump):
                out.append(self._close(st, self._open.pop(st), now, gauges))
            nxt = max(nxt, jump)
        while nxt + self._len <= limit:
            acc = self._open.pop(nxt) if nxt in self._open else _Acc()
            out.append(self._close(nxt, acc, now, gauges))
            nxt += self._len
        self._next = nxt
        return out

    def _close(self, start: float, acc: _Acc, now: datetime, gauges: Gauges) -> Window:
        end = start + self._len
        pending, overdue, oldest = gauges(end)
        oldest_minutes = max(0.0, (end - oldest) / 60) if oldest is not None else 0.0
        st = datetime.fromtimestamp(start, now.tzinfo)
        return Window(LEDGER_SOURCE, st, st + self.length,
                      _features(acc, pending, overdue, round(oldest_minutes, 1), self.length))

    def state(self) -> dict[str, Any]:
        return {"next": self._next, "open": {str(k): a.to_json() for k, a in self._open.items()}}

    def restore(self, state: Mapping[str, Any]) -> None:
        self._next = state.get("next")
        self._open = {float(k): _Acc.from_json(a) for k, a in (state.get("open") or {}).items()}
