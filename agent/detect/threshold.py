"""`type: threshold`: a condition over a source's window features."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from agent.detect.base import (
    NO_FINDINGS,
    BuildContext,
    Detector,
    OpenWindow,
    RuleConfig,
    Watch,
)
from agent.detect.expr import ExprError, Expression
from agent.features import FEATURES, empty_features
from agent.ledger.config import LEDGER_SOURCE
from agent.ledger.features import LEDGER_FEATURES, empty_ledger_features
from agent.types import Event, Finding, Window


class ThresholdConfig(RuleConfig):
    """Fires while `when` holds for the source's windows (after `for:`)."""

    source: str
    when: str
    early: bool = False
    """Also test the open window at every line, firing at the line that makes `when` true
    instead of at the window's end. For conditions that only grow within a window (`failed >=
    3`), not for rates of a few lines; resolving still waits for a window after the firing."""

    def features(self) -> dict[str, str]:
        """The features of the source's windows: the derived `ledger` source has its own."""
        return LEDGER_FEATURES if self.source == LEDGER_SOURCE else FEATURES

    def template_names(self) -> set[str]:
        return set(self.features()) | {"source", "window_start", "window_end"}

    def source_names(self) -> list[str]:
        return [self.source]

    def build(self, context: BuildContext) -> "ThresholdRule":
        return ThresholdRule(self, context.window)


class ThresholdRule(Detector):
    def __init__(self, config: ThresholdConfig, window: timedelta = timedelta(minutes=5)):
        super().__init__(config, {**config.labels, "source": config.source})
        self.source = config.source
        self.early = config.early
        self._len = window.total_seconds()
        self._fired_in: float | None = None  # start of the open window an early firing was in
        try:
            self.when = Expression(config.when, config.features())
            # a type error ('' > 1000) or a division by a zero count would otherwise fail in
            # every quiet window at run time: try it on an empty window now
            self.when(_names(empty_ledger_features() if config.source == LEDGER_SOURCE
                             else empty_features()))
        except ExprError as exc:
            raise ExprError(f"{exc} (tried on a window without events; guard with "
                            f"`count > 0 and ...` if needed)"
                            if "failed:" in str(exc) else str(exc), key="when") from None

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
        if not self.when(_names(so_far.features)):
            return NO_FINDINGS
        self._fired_in = start
        return (Finding(self.name, True, ev.ts, self.labels, self._values(so_far),
                        line_no=ev.line_no, path=ev.path),)

    def on_window(self, window: Window) -> Collection[Finding]:
        return (Finding(self.name, self.when(_names(window.features)), window.end, self.labels,
                        self._values(window), window_start=window.start),)

    def _values(self, w: Window) -> dict[str, Any]:
        return dict(w.features, source=self.source, window_start=w.start.isoformat(),
                    window_end=w.end.isoformat())


def _names(features: Mapping[str, Any]) -> dict[str, Any]:
    # the expression sees a read-only view of the error-code counts: no `.clear()` on them
    if "error_codes" not in features:  # the ledger's windows have none
        return dict(features)
    return dict(features, error_codes=MappingProxyType(features["error_codes"]))
