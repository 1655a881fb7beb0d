"""`type: threshold` with `sources:`: one condition over the windows of several sources that
start at the same time, e.g. `upload.failure_rate > 0.2 and erp.count == 0`.

Windows of every source close at the same boundaries (agent/features.py `Windows.advance`), one
source after the other: the rule holds each source's window until the windows of all its
sources for that start have closed, then judges them together. A start some source never
closes (it was added by a reload later) is dropped once a later start is complete.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from agent.detect.base import NO_FINDINGS, Detector, RuleConfig, Watch
from agent.detect.expr import Expression
from agent.detect.keys import UNREADABLE
from agent.detect.when import sources_names
from agent.features import MAX_CATCH_UP
from agent.types import Finding, Window


class SourcesThresholdRule(Detector):
    def __init__(self, config: RuleConfig, sources: list[str], when: Expression):
        super().__init__(config, {**config.labels, "source": ",".join(sources)})
        self.sources = tuple(sources)
        self.when = when
        # window start -> source -> (window end, features) until every source's has closed
        self._waiting: dict[float, dict[str, tuple[datetime, Mapping[str, Any]]]] = {}

    def watch(self) -> Watch:
        return Watch(frozenset(self.sources))

    def on_window(self, window: Window) -> Collection[Finding]:
        start = window.start.timestamp()
        got = self._waiting.get(start)
        if got is None:
            if len(self._waiting) > MAX_CATCH_UP:  # a source that never closes its windows
                del self._waiting[min(self._waiting)]
            got = self._waiting[start] = {}
        got[window.source] = (window.end, window.features)
        if len(got) < len(self.sources):
            return NO_FINDINGS
        for s in [s for s in self._waiting if s <= start]:
            del self._waiting[s]
        features = {s: got[s][1] for s in self.sources}
        values: dict[str, Any] = {f"{s}.{k}": v for s, f in features.items()
                                  for k, v in f.items()}
        values.update(source=self.labels["source"], window_start=window.start.isoformat(),
                      window_end=window.end.isoformat())
        return (Finding(self.name, self.when(sources_names(features)), window.end, self.labels,
                        values, window_start=window.start),)

    def state(self) -> Any:
        return {"waiting": {str(start): {s: [end.isoformat(), dict(f)]
                                         for s, (end, f) in got.items()}
                            for start, got in self._waiting.items()}}

    def restore(self, state: Any) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("waiting"), dict):
            return
        try:
            for start, got in state["waiting"].items():
                self._waiting[float(start)] = {
                    s: (datetime.fromisoformat(end), dict(f)) for s, (end, f) in got.items()
                    if s in self.sources}
        except UNREADABLE:
            self._waiting = {}
