"""`type: threshold` with `group_by`: one alert per key (host, error code, taxpayer), the window
features computed per key from the source's events.

The rule keeps its own window accumulators (the same as the source's windows, agent/features.py)
for each key it has seen in a window, fed from `on_event`; when the source's window closes,
each key's features are judged by `when`. A key is judged in the windows where it has events,
and while its alert holds (so it can resolve). Events without a value for every `group_by`
field are not counted: they belong to no key. At most `max_keys` keys per window; the events of
further keys are counted (`keys_dropped`) and never crash or grow memory.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from agent.detect.base import NO_FINDINGS, Detector, OpenWindow, RuleConfig, Watch
from agent.detect.expr import Expression
from agent.detect.keys import (
    UNREADABLE,
    Key,
    field_value,
    key_from_json,
    key_labels,
    key_to_json,
    key_values,
)
from agent.detect.when import window_names
from agent.features import OpenFeatures, _Acc
from agent.types import Event, Finding, Window


class KeyedThresholdRule(Detector):
    def __init__(self, config: RuleConfig, source: str, when: Expression, window: timedelta,
                 *, early: bool, group_by: list[str], max_keys: int):
        super().__init__(config, {**config.labels, "source": source})
        self.source = source
        self.when = when
        self.early = early
        self.group_by = tuple(group_by)
        self.max_keys = max_keys
        self._length = window
        self._len = window.total_seconds()
        self._open: dict[float, dict[Key, _Acc]] = {}  # window start -> key -> its counts
        self._dropped: dict[float, int] = {}  # window start -> events of keys beyond the cap
        self._fired_in: dict[Key, float] = {}  # key -> open window an early firing was in
        self._firing: set[Key] = set()  # keys whose last verdict held

    def watch(self) -> Watch:
        return Watch(frozenset({self.source}), events=True)

    def on_event(self, ev: Event, open_window: OpenWindow) -> Collection[Finding]:
        parts = []
        for f in self.group_by:
            v = field_value(ev, f)
            if v is None or v == "":
                return NO_FINDINGS
            parts.append(v if isinstance(v, str) else str(v))
        key = tuple(parts)
        t = ev.ts.timestamp()
        start = t - t % self._len
        accs = self._open.get(start)
        if accs is None:
            accs = self._open[start] = {}
        acc = accs.get(key)
        if acc is None:
            if len(accs) >= self.max_keys:
                self._dropped[start] = self._dropped.get(start, 0) + 1
                return NO_FINDINGS
            acc = accs[key] = _Acc()
        acc.add(ev.status, ev.error_code, ev.level, ev.latency_ms)
        if not self.early or self._fired_in.get(key) == start:
            return NO_FINDINGS
        features = OpenFeatures(acc, self._length)  # computes only what `when` reads
        if not self.when(window_names(features)):
            return NO_FINDINGS
        self._fired_in[key] = start
        ws = datetime.fromtimestamp(start, ev.ts.tzinfo)
        return (Finding(self.name, True, ev.ts, key_labels(self.labels, self.group_by, key),
                        self._values(features, key, ws, ws + self._length, start),
                        line_no=ev.line_no, path=ev.path),)

    def on_window(self, window: Window) -> Collection[Finding]:
        start = window.start.timestamp()
        accs = self._open.pop(start, {})
        for older in [s for s in self._open if s < start]:  # none unless state was odd
            del self._open[older]
        findings: list[Finding] = []
        keys = list(accs) + [k for k in self._firing if k not in accs]
        for key in keys:
            acc = accs.get(key)
            features = OpenFeatures(acc if acc is not None else _Acc(), self._length)
            active = bool(self.when(window_names(features)))
            if active or key in self._firing:
                findings.append(Finding(
                    self.name, active, window.end, key_labels(self.labels, self.group_by, key),
                    self._values(features, key, window.start, window.end, start),
                    window_start=window.start))
            if active:
                self._firing.add(key)
            else:
                self._firing.discard(key)
        self._dropped = {s: n for s, n in self._dropped.items() if s > start}
        self._fired_in = {k: s for k, s in self._fired_in.items() if s > start}
        return findings

    def _values(self, features: Mapping[str, Any], key: Key, ws: datetime, we: datetime,
                start: float) -> dict[str, Any]:
        return {**features, **key_values(self.group_by, key), "source": self.source,
                "keys_dropped": self._dropped.get(start, 0),
                "window_start": ws.isoformat(), "window_end": we.isoformat()}

    # -- checkpoint ------------------------------------------------------------------------
    def state(self) -> Any:
        return {
            "group_by": list(self.group_by),
            "open": {str(s): [[key_to_json(k), a.to_json()] for k, a in accs.items()]
                     for s, accs in self._open.items()},
            "dropped": {str(s): n for s, n in self._dropped.items()},
            "fired_in": [[key_to_json(k), s] for k, s in self._fired_in.items()],
            "firing": [key_to_json(k) for k in self._firing],
        }

    def restore(self, state: Any) -> None:
        if not isinstance(state, dict) or state.get("group_by") != list(self.group_by):
            return  # another grouping before the restart: its counts mean nothing now
        try:
            self._restore(state)
        except UNREADABLE:
            self._open, self._dropped, self._fired_in, self._firing = {}, {}, {}, set()

    def _restore(self, state: dict[str, Any]) -> None:
        width = len(self.group_by)
        for s, items in state.get("open", {}).items():
            accs = self._open[float(s)] = {}
            for k, a in items[:self.max_keys]:
                key = key_from_json(k, width)
                if key is not None:
                    accs[key] = _Acc.from_json(a)
        self._dropped = {float(s): int(n) for s, n in state.get("dropped", {}).items()}
        for k, s in state.get("fired_in", []):
            key = key_from_json(k, width)
            if key is not None:
                self._fired_in[key] = float(s)
        for k in state.get("firing", []):
            key = key_from_json(k, width)
            if key is not None:
                self._firing.add(key)
