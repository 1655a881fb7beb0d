"""Value types and message helpers of the operator config: durations, secrets in messages.

Kept apart from agent/config.py (the schema and the loading) so each stays small.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
# scheme://user:pass@ or scheme://token@ : what Apprise URLs carry secrets in
_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^\s/@:'\"]*)(:[^\s/@'\"]*)?@")
HIDDEN = "(value hidden: may hold a secret)"


def parse_duration(value: Any) -> timedelta:
    """'30s', '5m', '2h', '1d', '250ms' or a number of seconds -> timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 5m, 2h or 1d")
    try:
        if isinstance(value, (int, float)):
            return timedelta(seconds=value)
        if isinstance(value, str):
            m = _DURATION.match(value)
            if m:
                return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    except OverflowError:
        raise ValueError(f"duration {value!r} is too large") from None
    raise ValueError(f"expected a duration like 30s, 5m, 2h or 1d, got {value!r}")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _positive(v: timedelta) -> timedelta:
    if v <= timedelta(0):
        raise ValueError("must be more than 0")
    return v


def _not_negative(v: timedelta) -> timedelta:
    if v < timedelta(0):
        raise ValueError("must not be negative")
    return v


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
NonNegativeDuration = Annotated[Duration, AfterValidator(_not_negative)]


def _commit_interval(v: timedelta) -> timedelta:
    if v > MAX_COMMIT_INTERVAL:
        raise ValueError("must be at most 1m: a crash reads again every line read since the "
                         "last commit")
    return v


MAX_COMMIT_INTERVAL = timedelta(minutes=1)
CommitInterval = Annotated[PositiveDuration, AfterValidator(_commit_interval)]


def _read_interval(v: timedelta) -> timedelta:
    if v > timedelta(seconds=1):
        raise ValueError("must be at most 1s: lines written meanwhile wait that long to be read")
    return v


ReadInterval = Annotated[NonNegativeDuration, AfterValidator(_read_interval)]


def mask_credentials(text: str) -> str:
    """`mailto://user:pass@host` -> `mailto://****:****@host`, wherever it occurs in `text`."""
    return _CREDENTIALS.sub(
        lambda m: m.group(1) + "****" + (":****" if m.group(3) else "") + "@", text)


def error_message(err: dict[str, Any], secret: bool) -> str:
    """One pydantic error as operators read it. `secret`: the key lies where values may be
    credentials (`notify`), so the input is never echoed, not even inside the message."""
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    value = err.get("input")
    if secret:
        if isinstance(value, str) and value:
            msg = msg.replace(repr(value), "...").replace(value, "...")
        return mask_credentials(f"{msg} {HIDDEN}")
    if err["type"] != "value_error" and "input" in err and not isinstance(value, (dict, list)):
        msg += f" (got {value!r})"
    return mask_credentials(msg)
