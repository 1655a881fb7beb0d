"""What rules over window features share: the features a source's windows carry, the names an
expression sees, and compiling `when:` with a trial on a window without events."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import Any

from agent.detect.expr import ExprError, Expression, namespaces
from agent.features import FEATURES, empty_features
from agent.ledger.config import LEDGER_SOURCE
from agent.ledger.features import LEDGER_FEATURES, empty_ledger_features


def features_of(source: str) -> dict[str, str]:
    """The features of the source's windows: the derived `ledger` source has its own."""
    return LEDGER_FEATURES if source == LEDGER_SOURCE else FEATURES


def empty_of(source: str) -> dict[str, Any]:
    """The features of one of the source's windows without events."""
    return empty_ledger_features() if source == LEDGER_SOURCE else empty_features()


def numeric_features(source: str) -> list[str]:
    """The features that are numbers (what a baseline can be kept of)."""
    return [k for k, v in empty_of(source).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)]


def window_names(features: Mapping[str, Any]) -> dict[str, Any]:
    """The names an expression sees for one window's features."""
    # a read-only view of the error-code counts: no `.clear()` on them
    if "error_codes" not in features:  # the ledger's windows have none
        return dict(features)
    return dict(features, error_codes=MappingProxyType(features["error_codes"]))


def sources_names(features: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The names an expression over several sources sees: one namespace per source."""
    return namespaces({s: window_names(f) for s, f in features.items()})


def compile_when(text: str, sources: Collection[str], qualified: bool = False) -> Expression:
    """`when:` checked against the features of `sources` (qualified: `upload.count`, for a
    rule over several sources) and tried on windows without events: a type error ('' > 1000)
    or a division by a zero count would otherwise fail in every quiet window at run time."""
    try:
        if qualified:
            when = Expression(text, (), {s: features_of(s) for s in sources})
            when(sources_names({s: empty_of(s) for s in sources}))
        else:
            (source,) = sources
            when = Expression(text, features_of(source))
            when(window_names(empty_of(source)))
    except ExprError as exc:
        count = f"{next(iter(sources))}.count" if qualified else "count"
        raise ExprError(f"{exc} (tried on a window without events; guard with "
                        f"`{count} > 0 and ...` if needed)"
                        if "failed:" in str(exc) else str(exc), key="when") from None
    return when
