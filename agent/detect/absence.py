"""`type: absence`: no matching event for `for:`, even if the source never logged at all."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Mapping

from pydantic import Field, field_validator

from agent.config import CANONICAL_FIELDS, Duration
from agent.detect.base import Rule, RuleConfig, register
from agent.types import Event, Finding, Window


@register("absence")
class AbsenceConfig(RuleConfig):
    """Fires when the source has logged no event matching `match` for `for:`."""

    source: str
    for_: Duration = Field(alias="for", description="How long without a matching event fires")
    match: dict[str, str] = {}

    @field_validator("match")
    @classmethod
    def _fields(cls, v: dict[str, str]) -> dict[str, str]:
        bad = sorted(set(v) - set(CANONICAL_FIELDS) - {"source"})
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

    def build(self, sources: Mapping[str, Any]) -> "AbsenceRule":
        return AbsenceRule(self)


class AbsenceRule(Rule):
    def __init__(self, config: AbsenceConfig):
        super().__init__(config, {**config.labels, "source": config.source})
        self.source = config.source
        self.silence: timedelta = config.for_
        self.pending_for = timedelta(0)  # `for:` is the silence itself
        self.match = tuple(config.match.items())
        self.last_seen: datetime | None = None

    def observe(self, ev: Event) -> None:
        if ev.source != self.source:
            return
        for key, value in self.match:
            if getattr(ev, key) != value:
                return
        if self.last_seen is None or ev.ts > self.last_seen:
            self.last_seen = ev.ts

    def start(self, now: datetime) -> None:
        if self.last_seen is None:
            self.last_seen = now

    def evaluate(self, window: Window) -> Finding | None:
        if window.source != self.source:
            return None
        if self.last_seen is None:
            self.last_seen = window.start
        silent = window.end - self.last_seen
        values = {"source": self.source, "silent_minutes": int(silent.total_seconds() // 60),
                  "last_seen": self.last_seen.isoformat()}
        return Finding(self.name, silent >= self.silence, window.end, self.labels, values)

    def state(self) -> Any:
        return self.last_seen.isoformat() if self.last_seen else None

    def restore(self, state: Any) -> None:
        if state:
            self.last_seen = datetime.fromisoformat(state)
