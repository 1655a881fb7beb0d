"""`type: absence`: no matching event for `for:`, even if the source never logged at all.

With `active_hours`, silence counts from the start of the active period: after a quiet night
the rule fires `for:` after 08:00, not at 08:00.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from agent.config import CANONICAL_FIELDS, Duration, check_canonical
from agent.detect.base import (
    NO_FINDINGS,
    BuildContext,
    Detector,
    OpenWindow,
    RuleConfig,
    Watch,
)
from agent.routing.timespec import Schedule
from agent.types import Event, Finding, Window


class AbsenceConfig(RuleConfig):
    """Fires when the source has logged no event matching `match` for `for:`."""

    source: str
    for_: Duration = Field(alias="for", description="How long without a matching event fires")
    match: dict[str, str] = {}

    @field_validator("match")
    @classmethod
    def _fields(cls, v: dict[str, str]) -> dict[str, str]:
        bad = check_canonical(set(v) - {"source"})
        if bad:
            raise ValueError(f"unknown event field(s) {', '.join(bad)}; expected some of "
                             f"{', '.join(CANONICAL_FIELDS)}")
        return v

    @field_validator("for_")
    @classmethod
    def _some_silence(cls, v: timedelta) -> timedelta:
        # `for:` is the silence itself; 0 would fire on every window
        if v <= timedelta(0):
            raise ValueError("an absence rule needs `for:` > 0: how long a silence is too long")
        return v

    def template_names(self) -> set[str]:
        return {"source", "silent_minutes", "last_seen"}

    def source_names(self) -> list[str]:
        return [self.source]

    def build(self, context: BuildContext) -> "AbsenceRule":
        return AbsenceRule(self, context.window, context.timezone)


class AbsenceRule(Detector):
    """Each closed window is judged on the events before its end only. Events are shown as
    they are read, which can be ahead of the windows closing (a batch read at once, a merge
    waiting for the next line to confirm time): their times wait, one per window, until the
    window holding them closes, so a line at 10:30 cannot hide the silence of 09:00-10:30."""

    def __init__(self, config: AbsenceConfig, window: timedelta,
                 timezone: str = "Asia/Shanghai"):
        super().__init__(config, {**config.labels, "source": config.source})
        self.hours = (Schedule(self.active_hours, zone=ZoneInfo(timezone))
                      if self.active_hours else None)
        self.source = config.source
        self.silence: timedelta = config.for_
        self.pending_for = timedelta(0)  # `for:` is the silence itself
        self.match = tuple(config.match.items())
        self.last_seen: datetime | None = None  # newest match before the last closed window
        self._len = self.window_seconds = window.total_seconds()
        self._ahead: dict[float, datetime] = {}  # window start -> newest match in it
        self._closed_until: datetime | None = None

    def watch(self) -> Watch:
        return Watch(frozenset({self.source}), events=True)

    def on_event(self, ev: Event, open_window: OpenWindow) -> Collection[Finding]:
        for key, value in self.match:
            if getattr(ev, key) != value:
                return NO_FINDINGS
        self.saw((ev.ts,))
        return NO_FINDINGS

    def saw(self, times: Iterable[datetime]) -> None:
        """Matching events at `times`, in line order (agent/tally.py hands them over a batch at
        a time, between windows closing)."""
        closed, ahead, length = self._closed_until, self._ahead, self._len
        for ts in times:
            if closed is not None and ts < closed:
                self._see(ts)  # a late line: its window was judged already
                continue
            t = ts.timestamp()
            start = t - t % length
            seen = ahead.get(start)
            if seen is None or ts > seen:
                ahead[start] = ts

    def saw_window(self, times: list[datetime]) -> None:
        """saw(times) for times that all fall in one window, in line order: the same state,
        from their latest (the first of equals, as saw() keeps it)."""
        closed = self._closed_until
        if closed is not None and min(times) < closed:
            self.saw(times)
            return
        t = times[0].timestamp()
        start = t - t % self._len
        latest = max(times)
        seen = self._ahead.get(start)
        if seen is None or latest > seen:
            self._ahead[start] = latest

    def _see(self, ts: datetime) -> None:
        if self.last_seen is None or ts > self.last_seen:
            self.last_seen = ts

    def start(self, now: datetime) -> None:
        if self.last_seen is None:
            self.last_seen = now

    def on_window(self, window: Window) -> Collection[Finding]:
        end = window.end.timestamp()
        for start in sorted(k for k in self._ahead if k < end):
            self._see(self._ahead.pop(start))
        self._closed_until = window.end
        if self.last_seen is None:
            self.last_seen = window.start
        since = self.last_seen
        if self.hours is not None:
            period = self.hours.period(window.start)
            if period is not None and period[0] > since:
                since = period[0]  # the quiet before the active period does not count
        silent = window.end - since
        values = {"source": self.source, "silent_minutes": int(silent.total_seconds() // 60),
                  "last_seen": self.last_seen.isoformat()}
        return (Finding(self.name, silent >= self.silence, window.end, self.labels, values,
                        window_start=window.start),)

    def state(self) -> Any:
        return {"last_seen": self.last_seen.isoformat() if self.last_seen else None,
                "ahead": {str(k): v.isoformat() for k, v in self._ahead.items()},
                "closed_until": self._closed_until.isoformat() if self._closed_until else None}

    def restore(self, state: Any) -> None:
        if isinstance(state, str):  # written before windows held their own matches
            state = {"last_seen": state}
        if not isinstance(state, dict):
            return
        if state.get("last_seen"):
            self.last_seen = datetime.fromisoformat(state["last_seen"])
        self._ahead = {float(k): datetime.fromisoformat(v)
                       for k, v in (state.get("ahead") or {}).items()}
        if state.get("closed_until"):
            self._closed_until = datetime.fromisoformat(state["closed_until"])
