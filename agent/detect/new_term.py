"""`type: new_term`: a value of an event field not seen in the last `days` (an error code, a
host, a program the source never logged before).

A new value is news, not a condition: the alert fires at the line that brought it and
resolves at the end of the next window of the source (the first window that begins after the
line). It fires once per value; the value is known from then on, and new again only after
`days` without it. For `learn` after monitoring first begins, values are recorded without
firing: at the first start there is no history, and everything would be new.

Memory is bounded: at most `max_terms` values are remembered, the least recently seen are
forgotten first (counted as `terms_forgotten`, and new again if they return). Values are
compared by their first 200 characters.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field, field_validator

from agent.configtypes import NonNegativeDuration
from agent.detect.base import (
    NO_FINDINGS,
    BuildContext,
    Detector,
    OpenWindow,
    RuleConfig,
    Watch,
)
from agent.detect.keys import UNREADABLE, field_value, unknown_field
from agent.types import Event, Finding, Window

MAX_TERM = 200  # characters of a value kept and compared
DAY = 86400.0


class NewTermConfig(RuleConfig):
    """Fires at the first event of `source` whose `field` has a value not seen in `days`."""

    source: str
    field: str = Field(description="The event field whose values are watched")
    days: int = Field(7, ge=1, le=3660, description="How long a value stays known unseen")
    learn: NonNegativeDuration = Field(
        timedelta(days=1),
        description="After the first start, values are recorded for this long without firing")
    max_terms: int = Field(10_000, ge=1, le=1_000_000,
                           description="Values remembered at most; the least recently seen "
                           "are forgotten first")

    @field_validator("field")
    @classmethod
    def _readable(cls, v: str) -> str:
        why = unknown_field(v)
        if why:
            raise ValueError(why)
        return v

    @field_validator("for_")
    @classmethod
    def _no_pending(cls, v: timedelta) -> timedelta:
        if v > timedelta(0):
            raise ValueError("a new value is an event that resolves at the next window: "
                             "`for:` would keep it pending until then and it would never fire")
        return v

    def template_names(self) -> set[str]:
        return {self.field, "value", "field", "source", "first_seen", "days", "terms",
                "terms_forgotten"}

    def source_names(self) -> list[str]:
        return [self.source]

    def build(self, context: BuildContext) -> "NewTermRule":
        return NewTermRule(self)


class NewTermRule(Detector):
    def __init__(self, config: NewTermConfig):
        super().__init__(config, {**config.labels, "source": config.source})
        self.source = config.source
        self.field = config.field
        self.keep = config.days * DAY
        self.days = config.days
        self.learn = config.learn.total_seconds()
        self.max_terms = config.max_terms
        self._seen: OrderedDict[str, float] = OrderedDict()  # value -> last seen, oldest first
        self._learn_until: float | None = None
        # value -> when it fired (timestamp, as written), until it resolves
        self._fired: dict[str, tuple[float, str]] = {}
        self.forgotten = 0

    def watch(self) -> Watch:
        return Watch(frozenset({self.source}), events=True)

    def start(self, now: datetime) -> None:
        if self._learn_until is None:
            self._learn_until = now.timestamp() + self.learn

    def on_event(self, ev: Event, open_window: OpenWindow) -> Collection[Finding]:
        raw = field_value(ev, self.field)
        if raw is None or raw == "":
            return NO_FINDINGS
        value = (raw if isinstance(raw, str) else str(raw))[:MAX_TERM]
        t = ev.ts.timestamp()
        seen = self._seen.get(value)
        if seen is not None and t - seen <= self.keep:
            if t > seen:
                self._seen[value] = t
                self._seen.move_to_end(value)
            return NO_FINDINGS
        self._seen[value] = t
        self._seen.move_to_end(value)
        if len(self._seen) > self.max_terms:
            self._seen.popitem(last=False)
            self.forgotten += 1
        if self._learn_until is None or t < self._learn_until or value in self._fired:
            return NO_FINDINGS
        first = ev.ts.isoformat()
        self._fired[value] = (t, first)
        return (Finding(self.name, True, ev.ts, self._labels(value), self._values(value, first),
                        line_no=ev.line_no, path=ev.path),)

    def on_window(self, window: Window) -> Collection[Finding]:
        start = window.start.timestamp()
        oldest = window.end.timestamp() - self.keep
        while self._seen:  # values unseen for `days` are new again: no need to keep them
            value, t = next(iter(self._seen.items()))
            if t >= oldest:
                break
            del self._seen[value]
        done = [(v, first) for v, (t, first) in self._fired.items() if t < start]
        for v, _ in done:
            del self._fired[v]
        return [Finding(self.name, False, window.end, self._labels(v), self._values(v, first),
                        window_start=window.start) for v, first in done]

    def _labels(self, value: str) -> dict[str, str]:
        return {**self.labels, self.field: value}

    def _values(self, value: str, first: str) -> dict[str, Any]:
        return {self.field: value, "value": value, "field": self.field, "source": self.source,
                "first_seen": first, "days": self.days, "terms": len(self._seen),
                "terms_forgotten": self.forgotten}

    # -- checkpoint ------------------------------------------------------------------------
    def state(self) -> Any:
        return {"field": self.field, "seen": [[v, t] for v, t in self._seen.items()],
                "learn_until": self._learn_until,
                "fired": {v: list(f) for v, f in self._fired.items()},
                "forgotten": self.forgotten}

    def restore(self, state: Any) -> None:
        if not isinstance(state, dict):
            return
        try:
            self._restore(state)
        except UNREADABLE:
            self._seen, self._fired, self.forgotten = OrderedDict(), {}, 0

    def _restore(self, state: dict[str, Any]) -> None:
        if state.get("learn_until") is not None:
            self._learn_until = float(state["learn_until"])
        if state.get("field") != self.field:
            return  # another field before the restart: its values mean nothing now
        for v, t in state.get("seen", [])[-self.max_terms:]:
            self._seen[str(v)] = float(t)
        self._fired = {str(v): (float(t), str(first))
                       for v, (t, first) in state.get("fired", {}).items()}
        self.forgotten = int(state.get("forgotten", 0))

