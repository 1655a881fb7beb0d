"""Tumbling windows in event time: Events in, Windows of features out.

Pure: time only comes in as the `now` passed to `advance`. A window [start, start+length)
closes once `now` passes its end plus the allowed lateness; an event for a window that has
already closed is counted as late and left out. Sources that log nothing still get (empty)
windows, so "nothing happened" is visible to the rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from operator import itemgetter
from types import MappingProxyType
from typing import Any

from agent.latencies import EXACT_LATENCIES, Latencies
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

# The numeric part of a window, in a fixed order: what a model takes (a mapping such as
# `error_codes` and a text such as `top_error_code` stay for rules and messages only).
NON_NUMERIC = frozenset({"error_codes", "top_error_code"})
NUMERIC_FEATURES: tuple[str, ...] = tuple(f for f in FEATURES if f not in NON_NUMERIC)


_STATUS, _CODE, _LEVEL, _LATENCY = (itemgetter(i) for i in range(4))  # of a row (add_rows)


class _Acc:
    """Running counts of one open window: each event updates them in O(1)."""

    __slots__ = ("count", "statuses", "errors", "latencies", "codes", "coded")

    def __init__(self) -> None:
        self.count = 0
        self.statuses: Counter[str] = Counter()
        self.errors = 0
        self.latencies = Latencies()
        self.codes: dict[str, int] = {}  # a plain dict: a missing code reads as a KeyError
        self.coded = 0  # events carrying an error code (the sum of `codes`)

    def add(self, status: str | None, code: str | None, level: str | None,
            latency: float | None) -> None:
        """Count one event, given its status, error code, level and latency."""
        # agent/detect/when.py `changes` names the features each of these touches
        self.count += 1
        if status is None and code:
            status = "failed"
        if status is not None:
            self.statuses["failed" if status in FAIL_STATUSES else status] += 1
        if level is not None and level.lower() in ERROR_LEVELS:
            self.errors += 1
        if latency is not None:
            exact = self.latencies.exact
            exact.append(latency)
            if len(exact) > EXACT_LATENCIES:
                self.latencies.compact()
        if code:
            codes = self.codes
            codes[code] = codes.get(code, 0) + 1
            self.coded += 1

    def add_rows(self, rows: list[tuple[Any, ...]]) -> None:
        """Count many events as add() counts them one by one, in order: each row begins with
        (status, error code, level, latency). Each field is counted column-wise."""
        self.count += len(rows)
        statuses = self.statuses
        by_status = Counter(map(_STATUS, rows))
        if None in by_status:  # no status but an error code is a failure: row by row
            for status, code, *_ in rows:
                if status is None and code:
                    status = "failed"
                if status is not None:
                    statuses["failed" if status in FAIL_STATUSES else status] += 1
        else:  # statuses first seen first, as add() enters them
            for status, n in by_status.items():
                statuses["failed" if status in FAIL_STATUSES else status] += n
        by_level = Counter(map(_LEVEL, rows))
        by_level.pop(None, None)
        for level, n in by_level.items():
            if level.lower() in ERROR_LEVELS:
                self.errors += n
        latencies = [x for x in map(_LATENCY, rows) if x is not None]
        lat = self.latencies
        while latencies:  # compacted where add() would compact: the same state after
            room = EXACT_LATENCIES + 1 - len(lat.exact)
            lat.exact += latencies[:room]
            latencies = latencies[room:]
            if len(lat.exact) > EXACT_LATENCIES:
                lat.compact()
        found = Counter(c for c in map(_CODE, rows) if c)
        if found:
            codes = self.codes
            for code, n in found.items():  # new codes in the order first seen, as add()
                codes[code] = codes.get(code, 0) + n
            self.coded += sum(found.values())

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
        acc.codes = dict(d["codes"])
        acc.coded = sum(acc.codes.values())
        return acc


class OpenFeatures(Mapping[str, Any]):
    """The features of one window, each computed when read: a rule judged at every line reads
    only its own features of the open window. Counts and rates cost O(1); the percentiles
    (which sort the window's latencies) and the top error code (which walks its codes) are
    computed once per view, so a rule reading those at every line costs more. A view shows the
    window as it is when made (or moved to it, `ExprFeatures.show`): one per line."""

    __slots__ = ("acc", "length", "_latency", "_top")
    _get: dict[str, Callable[["OpenFeatures"], Any]]  # feature -> how to compute it

    def __init__(self, acc: _Acc, length: timedelta):
        self.acc = acc
        self.length = length
        self._latency: tuple[int, float, float, float, float] | None = None
        self._top: tuple[str, int] | None = None

    def __getitem__(self, name: str) -> Any:
        return self._get[name](self)  # KeyError for a name that is no feature

    def __iter__(self) -> Iterator[str]:
        return iter(FEATURES)

    def __len__(self) -> int:
        return len(FEATURES)

    def latency(self) -> tuple[int, float, float, float, float]:
        """(count, p50, p95, max, mean) of the window's latencies."""
        if self._latency is None:
            self._latency = self.acc.latencies.summary()
        return self._latency

    def top_code(self) -> tuple[str, int]:
        """The most frequent error code and its count; the first seen among equals, as
        Counter.most_common(1) picks."""
        if self._top is None:
            codes = self.acc.codes
            self._top = max(codes.items(), key=itemgetter(1)) if codes else ("", 0)
        return self._top

    def names(self) -> "ExprFeatures":
        """The names an expression sees for this window."""
        return ExprFeatures(self.acc, self.length)


class ExprFeatures(OpenFeatures):
    """The names an expression sees for an open window: its features, with `error_codes` a
    read-only view of the window's counts rather than a copy (100,000 codes are not copied
    at each line)."""

    __slots__ = ()

    def show(self, acc: _Acc) -> "ExprFeatures":
        """This view moved to `acc` as it is now: one view serves line after line."""
        self.acc, self._latency, self._top = acc, None, None
        return self


def _rate(part: int, n: int) -> float:
    return part / n if n else 0.0


OpenFeatures._get = {
    "count": lambda f: f.acc.count,
    "ok": lambda f: f.acc.statuses.get("ok", 0),
    "failed": lambda f: f.acc.statuses.get("failed", 0),
    "timeout": lambda f: f.acc.statuses.get("timeout", 0),
    "pending": lambda f: f.acc.statuses.get("pending", 0),
    "failure_rate": lambda f: _rate(f.acc.statuses.get("failed", 0)
                                    + f.acc.statuses.get("timeout", 0), f.acc.count),
    "timeout_rate": lambda f: _rate(f.acc.statuses.get("timeout", 0), f.acc.count),
    "errors": lambda f: f.acc.errors,
    "latency_count": lambda f: f.latency()[0],
    "latency_p50": lambda f: f.latency()[1],
    "latency_p95": lambda f: f.latency()[2],
    "latency_max": lambda f: f.latency()[3],
    "latency_avg": lambda f: f.latency()[4],
    "error_codes": lambda f: dict(f.acc.codes),
    "error_count": lambda f: f.acc.coded,
    "distinct_error_codes": lambda f: len(f.acc.codes),
    "top_error_code": lambda f: f.top_code()[0],
    "top_error_code_count": lambda f: f.top_code()[1],
    "window_minutes": lambda f: f.length.total_seconds() / 60,
}
ExprFeatures._get = {**OpenFeatures._get,
                     "error_codes": lambda f: MappingProxyType(f.acc.codes)}
assert list(OpenFeatures._get) == list(FEATURES), "every feature has one way to compute it"


# Features that never fall within a window and grow by at most one per event counted: while
# such a feature is short of a rule's threshold by n, the rule cannot hold for n more lines.
GROWING: dict[str, Callable[[_Acc], int]] = {
    "count": lambda a: a.count,
    "ok": lambda a: a.statuses.get("ok", 0),
    "failed": lambda a: a.statuses.get("failed", 0),
    "timeout": lambda a: a.statuses.get("timeout", 0),
    "pending": lambda a: a.statuses.get("pending", 0),
    "errors": lambda a: a.errors,
    "latency_count": lambda a: a.latencies.n + len(a.latencies.exact),
    "error_count": lambda a: a.coded,
    "distinct_error_codes": lambda a: len(a.codes),
    "top_error_code_count": lambda a: max(a.codes.values(), default=0),
}


def growing(name: str) -> Callable[[_Acc], int] | None:
    """How to read the growing feature `name` (GROWING, or `error_codes:CODE`: the count of
    one error code) from a window's counts; None for any other name."""
    if name.startswith("error_codes:"):
        code = name.partition(":")[2]
        return lambda a: a.codes.get(code, 0)
    return GROWING.get(name)


def empty_features(length: timedelta = timedelta(minutes=5)) -> dict[str, Any]:
    """The features of a window without events: what rules are tried on at load."""
    return compute_features(_Acc(), length)


def compute_features(acc: _Acc, length: timedelta) -> dict[str, Any]:
    """Every feature of a window, in FEATURES order (a closed window's, as stored)."""
    view = OpenFeatures(acc, length)
    return {name: get(view) for name, get in OpenFeatures._get.items()}


class Windows:
    """Tumbling windows for a set of sources."""

    def __init__(self, sources: Iterable[str], length: timedelta, lateness: timedelta):
        self.length = length
        self.lateness = lateness
        self._len_s = length.total_seconds()
        self.sources = list(sources)
        self._open: dict[str, dict[float, _Acc]] = {s: {} for s in self.sources}
        self._next: dict[str, float | None] = {s: None for s in self.sources}  # next to close
        # the window the last counted event went into, for the rules judged at each line
        self.last_start = 0.0
        self.last_acc: _Acc | None = None
        self._so_far: tuple[Event, Window] | None = None  # so_far of the last event, once
        # per source, the open window its last event went into: (start, end, counts); most
        # events fall in the same window as the one before. Dropped whenever windows close.
        self._current: dict[str, tuple[float, float, _Acc]] = {}

    def _floor(self, t: float) -> float:
        return t - (t % self._len_s)

    def add(self, ev: Event) -> bool:
        """Count one event; False if its window had already closed (late)."""
        t = ev.ts.timestamp()
        current = self._current.get(ev.source)
        if current is None or not current[0] <= t < current[1]:
            current = self.open_slot(ev.source, t)
            if current is None:
                return False
        start, _, acc = current
        acc.add(ev.status, ev.error_code, ev.level, ev.latency_ms)
        self.last_start, self.last_acc, self._so_far = start, acc, None
        return True

    def open_slot(self, source: str, t: float) -> tuple[float, float, _Acc] | None:
        """The open window of `source` that the POSIX time `t` falls in: (start, end, its
        counts), opened if need be and remembered as the source's current one; None if it
        has closed already (an event at `t` is late)."""
        start = self._floor(t)
        nxt = self._next.get(source)
        if nxt is None:
            if source not in self._open:
                return None
            self._next[source] = start
        elif start < nxt:
            return None
        wins = self._open[source]
        found = wins.get(start)
        acc = wins[start] = _Acc() if found is None else found
        slot = self._current[source] = (start, start + self._len_s, acc)
        return slot

    def current(self, source: str) -> tuple[float, float, _Acc] | None:
        """The window `source`'s last event went into, while no window has closed since."""
        return self._current.get(source)

    def counted(self, start: float, acc: _Acc) -> None:
        """Events were counted into `acc` (starting at `start`) without `add`."""
        self.last_start, self.last_acc, self._so_far = start, acc, None

    def so_far(self, ev: Event) -> Window | None:
        """The open window `ev` was counted into, with its features so far (for rules that
        fire early), computed as they are read (`OpenFeatures`) and shared by every rule
        shown the same event; None if the event was late."""
        cached = self._so_far
        if cached is not None and cached[0] is ev:
            return cached[1]
        t = ev.ts.timestamp()
        start = self._floor(t)
        acc = self._open.get(ev.source, {}).get(start)
        if acc is None:
            return None
        st = datetime.fromtimestamp(start, ev.ts.tzinfo)
        window = Window(ev.source, st, st + self.length, OpenFeatures(acc, self.length))
        if acc is self.last_acc:
            self._so_far = (ev, window)
        return window

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
        self._current.clear()
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
        self._current.clear()
        for s in self.sources:
            if s in state.get("next", {}):
                self._next[s] = state["next"][s]
            for k, a in state.get("open", {}).get(s, {}).items():
                self._open[s][float(k)] = _Acc.from_json(a)
