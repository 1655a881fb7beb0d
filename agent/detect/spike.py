"""`type: spike`: a feature of a source's windows against its own trailing baseline.

The baseline is the median of what the feature was before: over the last `windows` windows, or
(`baseline: same_hour`) over the same hour of the day on each of the last `days` days, each day
counting with the mean of its windows in that hour, so a busy morning is compared with other
mornings and not with the night. A window fires when its value is more than `ratio` times the
baseline (a spike), or, with `below: true` or a `ratio` under 1, when it falls under it (a
drop). Guards keep small numbers quiet: `min_value` (a spike must reach it), `min_baseline` (a
spike is compared with at least this baseline; a drop needs a baseline this high) and
`min_history` (baseline points needed before any verdict). Every window's value then joins the
baseline. Memory stays bounded: a deque of windows, or per hour of the day a deque of days.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Collection
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, ValidationInfo, field_validator

from agent.detect.base import BuildContext, Detector, RuleConfig, Watch
from agent.detect.expr import suggest
from agent.detect.keys import UNREADABLE
from agent.detect.when import features_of, numeric_features
from agent.types import Finding, Window

MAX_WINDOWS = 10_000
MAX_DAYS = 90


class SpikeConfig(RuleConfig):
    """Fires while a window's `feature` is `ratio` times its baseline (or under it)."""

    source: str
    feature: str = Field("count", description="A numeric window feature (README: Writing rules)")
    ratio: float = Field(3.0, gt=0, description="A spike is value > ratio x baseline; a ratio "
                         "under 1 (or `below`) looks for drops: value < ratio x baseline")
    below: bool = Field(False, description="Look for drops: value < baseline / ratio")
    baseline: Literal["windows", "same_hour"] = "windows"
    windows: int = Field(12, ge=1, le=MAX_WINDOWS, description="baseline: windows: how many")
    days: int = Field(7, ge=1, le=MAX_DAYS, description="baseline: same_hour: how many days")
    min_baseline: float = Field(0.0, ge=0)
    min_value: float = Field(0.0, ge=0)
    min_history: int | None = Field(
        None, ge=1, description="Baseline points needed before a verdict; default: `windows` "
        "(windows baseline) or 3 days (same_hour)")

    @field_validator("feature")
    @classmethod
    def _numeric(cls, v: str, info: ValidationInfo) -> str:
        source = info.data.get("source")
        if not isinstance(source, str):
            return v
        known = numeric_features(source)
        if v not in known:
            close = suggest(v, known)
            hint = f"; did you mean {close!r}?" if close else ""
            kind = "not a number" if v in features_of(source) else "unknown feature"
            raise ValueError(f"{kind} {v!r}{hint} (numeric features: {', '.join(known)})")
        return v

    @field_validator("ratio")
    @classmethod
    def _not_one(cls, v: float) -> float:
        if v == 1:
            raise ValueError("a ratio of 1 fires on any change; use > 1 for spikes, < 1 for "
                             "drops")
        return v

    def template_names(self) -> set[str]:
        return set(features_of(self.source)) | {
            "value", "baseline", "change", "history", "ratio", "feature", "source",
            "window_start", "window_end"}

    def source_names(self) -> list[str]:
        return [self.source]

    def build(self, context: BuildContext) -> "SpikeRule":
        return SpikeRule(self, ZoneInfo(context.timezone))


class _Hour:
    """One hour of the day: each past day's mean in it, and the day being filled."""

    __slots__ = ("days", "day", "total", "n")

    def __init__(self, days: int) -> None:
        self.days: deque[tuple[int, float]] = deque(maxlen=days)  # (day ordinal, mean)
        self.day: int | None = None
        self.total = 0.0
        self.n = 0

    def close_day(self, today: int) -> None:
        if self.day is not None and self.day < today and self.n:
            self.days.append((self.day, self.total / self.n))
            self.day, self.total, self.n = None, 0.0, 0

    def add(self, today: int, value: float) -> None:
        self.close_day(today)
        if self.day is None:
            self.day = today
        self.total += value
        self.n += 1


class SpikeRule(Detector):
    def __init__(self, config: SpikeConfig, zone: ZoneInfo):
        super().__init__(config, {**config.labels, "source": config.source})
        self.source = config.source
        self.feature = config.feature
        self.zone = zone
        self.drop = config.below or config.ratio < 1
        # value < factor x baseline for drops; value > factor x baseline for spikes
        self.factor = (config.ratio if config.ratio < 1 else 1 / config.ratio) if self.drop \
            else config.ratio
        self.same_hour = config.baseline == "same_hour"
        self.days = config.days
        self.min_baseline = config.min_baseline
        self.min_value = config.min_value
        self.min_history = config.min_history or (min(3, config.days) if self.same_hour
                                                  else config.windows)
        self._windows: deque[float] = deque(maxlen=config.windows)
        self._hours: dict[int, _Hour] = {}

    def watch(self) -> Watch:
        return Watch(frozenset({self.source}))

    def on_window(self, window: Window) -> Collection[Finding]:
        raw = window.features.get(self.feature)
        value = float(raw) if isinstance(raw, (int, float)) else 0.0
        local = window.start.astimezone(self.zone)
        history = self._history(local)
        baseline = statistics.median(history) if history else 0.0
        compared = baseline if self.drop else max(baseline, self.min_baseline)
        active = False
        if len(history) >= self.min_history:
            if self.drop:
                active = baseline >= self.min_baseline and baseline > 0 \
                    and value < self.factor * baseline
            else:
                active = value >= self.min_value and value > self.factor * compared
        self._add(local, value)
        values = {**window.features, "value": value, "baseline": baseline,
                  "change": value / compared if compared > 0 else 0.0,
                  "history": len(history), "ratio": self.factor, "feature": self.feature,
                  "source": self.source, "window_start": window.start.isoformat(),
                  "window_end": window.end.isoformat()}
        return (Finding(self.name, active, window.end, self.labels, values,
                        window_start=window.start),)

    def _history(self, local: datetime) -> list[float]:
        if not self.same_hour:
            return list(self._windows)
        hour = self._hours.get(local.hour)
        if hour is None:
            return []
        today = local.date().toordinal()
        hour.close_day(today)
        return [mean for day, mean in hour.days if today - self.days <= day < today]

    def _add(self, local: datetime, value: float) -> None:
        if not self.same_hour:
            self._windows.append(value)
            return
        hour = self._hours.get(local.hour)
        if hour is None:
            hour = self._hours[local.hour] = _Hour(self.days)
        hour.add(local.date().toordinal(), value)

    # -- checkpoint ------------------------------------------------------------------------
    def _shape(self) -> list[Any]:
        return [self.feature, "same_hour" if self.same_hour else "windows"]

    def state(self) -> Any:
        return {"shape": self._shape(), "windows": list(self._windows),
                "hours": {str(h): {"days": [list(d) for d in s.days], "day": s.day,
                                   "total": s.total, "n": s.n}
                          for h, s in self._hours.items()}}

    def restore(self, state: Any) -> None:
        if not isinstance(state, dict) or state.get("shape") != self._shape():
            return  # another feature or baseline before the restart: start learning again
        try:
            self._restore(state)
        except UNREADABLE:
            self._windows.clear()
            self._hours = {}

    def _restore(self, state: dict[str, Any]) -> None:
        self._windows.extend(float(v) for v in state.get("windows", []))
        for h, s in state.get("hours", {}).items():
            hour = self._hours[int(h)] = _Hour(self.days)
            hour.days.extend((int(d), float(m)) for d, m in s["days"])
            hour.day, hour.total, hour.n = s["day"], float(s["total"]), int(s["n"])
