"""`type: threshold`: a condition over a source's window features.

Three runtimes, one config: the plain rule (one alert for the source), one alert per key
(`group_by`, threshold_keyed.py) and one condition over the windows of several sources
(`sources:`, threshold_sources.py).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import Any

from pydantic import Field, field_validator, model_validator

from agent.detect.base import (
    NO_FINDINGS,
    BuildContext,
    Detector,
    OpenWindow,
    RuleConfig,
    RuleError,
    Watch,
)
from agent.detect.keys import DEFAULT_MAX_KEYS, check_group_by
from agent.detect.threshold_keyed import KeyedThresholdRule
from agent.detect.threshold_sources import SourcesThresholdRule
from agent.detect.when import compile_when, features_of, window_names
from agent.ledger.config import LEDGER_SOURCE
from agent.types import Event, Finding, Window


class ThresholdConfig(RuleConfig):
    """Fires while `when` holds for the source's windows (after `for:`)."""

    source: str | None = Field(None, description="The source whose windows are judged")
    sources: list[str] | None = Field(
        None, description="Instead of `source`: several sources, judged together once each "
        "one's window of the same start has closed; `when` names `source.feature`")
    when: str
    early: bool = False
    """Also test the open window at every line, firing at the line that makes `when` true
    instead of at the window's end. For conditions that only grow within a window (`failed >=
    3`), not for rates of a few lines; resolving still waits for a window after the firing."""
    group_by: list[str] = Field(
        default_factory=list, description="One alert per value of these event fields (host, "
        "error_code, taxpayer_id): the features are computed per key and source window")
    max_keys: int = Field(DEFAULT_MAX_KEYS, ge=1, description="Keys tracked per window at "
                          "most; events of further keys are counted as `keys_dropped`")

    @field_validator("group_by")
    @classmethod
    def _keys(cls, v: list[str]) -> list[str]:
        return check_group_by(v)

    @field_validator("sources")
    @classmethod
    def _distinct(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            if not v:
                raise ValueError("name at least one source")
            if len(set(v)) != len(v):
                raise ValueError("a source is listed twice")
        return v

    @model_validator(mode="after")
    def _one_way(self) -> "ThresholdConfig":
        if (self.source is None) == (self.sources is None):
            raise ValueError("give either `source:` (one source) or `sources:` (several), "
                             "not both" if self.source else "`source:` or `sources:` is required")
        if self.sources is not None and (self.early or self.group_by):
            raise ValueError("`early` and `group_by` work with one `source:`, not `sources:`")
        return self

    def source_names(self) -> list[str]:
        return list(self.sources) if self.sources is not None else [str(self.source)]

    def template_names(self) -> set[str]:
        if self.sources is not None:
            return {f"{s}.{f}" for s in self.sources for f in features_of(s)} | {
                "source", "window_start", "window_end"}
        names = set(features_of(str(self.source))) | {"source", "window_start", "window_end"}
        if self.group_by:
            names |= {*self.group_by, "keys_dropped"}
        return names

    def build(self, context: BuildContext) -> Detector:
        if self.sources is not None:
            return SourcesThresholdRule(self, self.sources, compile_when(self.when, self.sources,
                                                                         qualified=True))
        source = str(self.source)
        if self.group_by:
            if source == LEDGER_SOURCE:
                raise RuleError("the ledger's windows have no events to group", key="group_by")
            return KeyedThresholdRule(self, source, compile_when(self.when, [source]),
                                      context.window)
        return ThresholdRule(self, context.window)


class ThresholdRule(Detector):
    """One alert for the source: its windows' features, as they close (or at each line while
    the open window's features make `when` true, with `early`)."""

    def __init__(self, config: ThresholdConfig, window: timedelta = timedelta(minutes=5)):
        source = str(config.source)
        super().__init__(config, {**config.labels, "source": source})
        self.source = source
        self.early = config.early
        self._len = window.total_seconds()
        self._fired_in: float | None = None  # start of the open window an early firing was in
        self.when = compile_when(config.when, [source])

    def watch(self) -> Watch:
        return Watch(frozenset({self.source}), events=self.early)

    def on_event(self, ev: Event, open_window: OpenWindow) -> Collection[Finding]:
        """A firing verdict at the line `ev`, from its window so far."""
        t = ev.ts.timestamp()
        start = t - t % self._len
        if self._fired_in == start:
            # fired at an earlier line of this window: the rest is its end's business, and
            # the window's features (percentiles) are not computed again at every line
            return NO_FINDINGS
        so_far = open_window.so_far(ev)
        if so_far is None:
            return NO_FINDINGS
        if not self.when(window_names(so_far.features)):
            return NO_FINDINGS
        self._fired_in = start
        return (Finding(self.name, True, ev.ts, self.labels, self._values(so_far),
                        line_no=ev.line_no, path=ev.path),)

    def on_window(self, window: Window) -> Collection[Finding]:
        return (Finding(self.name, self.when(window_names(window.features)), window.end,
                        self.labels, self._values(window), window_start=window.start),)

    def _values(self, w: Window) -> dict[str, Any]:
        return dict(w.features, source=self.source, window_start=w.start.isoformat(),
                    window_end=w.end.isoformat())
