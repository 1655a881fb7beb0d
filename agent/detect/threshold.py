"""`type: threshold`: a condition over a source's window features."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping

from agent.detect.base import Rule, RuleConfig, register
from agent.detect.expr import ExprError, Expression
from agent.features import FEATURES, empty_features
from agent.types import Event, Finding, Window


@register("threshold")
class ThresholdConfig(RuleConfig):
    """Fires while `when` holds for the source's windows (after `for:`)."""

    source: str
    when: str
    early: bool = False
    """Also test the open window at every line, firing at the line that makes `when` true
    instead of at the window's end. For conditions that only grow within a window (`failed >=
    3`), not for rates of a few lines; resolving still waits for the window to close."""

    def template_names(self) -> set[str]:
        return set(FEATURES) | {"source", "window_start", "window_end"}

    def build(self, sources: Mapping[str, Any]) -> "ThresholdRule":
        return ThresholdRule(self)


class ThresholdRule(Rule):
    def __init__(self, config: ThresholdConfig):
        super().__init__(config, {**config.labels, "source": config.source})
        self.source = config.source
        try:
            self.when = Expression(config.when, FEATURES)
            # a type error ('' > 1000) or a division by a zero count would otherwise fail in
            # every quiet window at run time: try it on an empty window now
            self.when(_names(empty_features()))
        except ExprError as exc:
            raise ExprError(f"{exc} (tried on a window without events; guard with "
                            f"`count > 0 and ...` if needed)"
                            if "failed:" in str(exc) else str(exc), key="when") from None

    def evaluate_early(self, ev: Event, so_far: Window) -> Finding | None:
        """A firing verdict at the line `ev`, from the window so far; None unless it holds."""
        if not self.config.early or not self.when(_names(so_far.features)):
            return None
        values = dict(so_far.features, source=self.source,
                      window_start=so_far.start.isoformat(), window_end=so_far.end.isoformat())
        return Finding(self.name, True, ev.ts, self.labels, values, line_no=ev.line_no)

    def evaluate(self, window: Window) -> Finding | None:
        if window.source != self.source:
            return None
        values = dict(window.features, source=self.source,
                      window_start=window.start.isoformat(), window_end=window.end.isoformat())
        return Finding(self.name, self.when(_names(window.features)), window.end, self.labels,
                       values)


def _names(features: Mapping[str, Any]) -> dict[str, Any]:
    # the expression sees a read-only view of the error-code counts: no `.clear()` on them
    return dict(features, error_codes=MappingProxyType(features["error_codes"]))
