"""Rules that keep one alert per key (`group_by`): what a key may be made of, its labels, and
how it is written into a checkpoint.

A key is the tuple of its `group_by` values, in order, each as text ("" when the event has
none). Its labels carry those values under the `group_by` names, so the alert lifecycle keeps
one state per key (the fingerprint is the rule and its labels).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from agent.config import CANONICAL_FIELDS
from agent.detect.expr import suggest
from agent.types import Event

Key = tuple[str, ...]

# what reading a checkpoint written by another rule of the same name (or an older version of
# this one) can raise: the rule then starts afresh rather than stop the agent
UNREADABLE = (KeyError, TypeError, ValueError, IndexError, AttributeError)

DEFAULT_MAX_KEYS = 100


# what syslog and journald sources put into an event's `extra` (agent/parse/syslog_lines.py,
# agent/sources/journald.py): rules may read and group by them like event fields
EXTRA_FIELDS = ("program", "pid", "unit", "facility")


def field_value(ev: Event, name: str) -> Any:
    """An event field, or one of EXTRA_FIELDS from the event's `extra`."""
    if name in EXTRA_FIELDS:
        return ev.extra.get(name)
    return getattr(ev, name)


def unknown_field(name: str, also: Collection[str] = ()) -> str | None:
    """Why `name` cannot be read from an event (nor from `also`, e.g. a regex's named groups),
    with the closest known name; None if it can."""
    if name in CANONICAL_FIELDS or name in also or name in EXTRA_FIELDS:
        return None
    known = [*also, *CANONICAL_FIELDS, *EXTRA_FIELDS]
    close = suggest(name, known)
    hint = f"; did you mean {close!r}?" if close else ""
    extra = f" or a named group of `match` ({', '.join(also)})" if also else ""
    return (f"unknown field {name!r}{hint} (expected an event field: "
            f"{', '.join(CANONICAL_FIELDS)}; of syslog and journald sources "
            f"{', '.join(EXTRA_FIELDS)}{extra})")


def check_group_by(names: list[str], also: Collection[str] = ()) -> list[str]:
    """`group_by` as written, or ValueError naming the first unusable or repeated entry."""
    seen: set[str] = set()
    for i, name in enumerate(names):
        why = unknown_field(name, also)
        if why:
            raise ValueError(f"entry {i}: {why}")
        if name in seen:
            raise ValueError(f"entry {i}: {name!r} is listed twice")
        seen.add(name)
    return names


def text_of(value: Any) -> str:
    """An event value as a key part or label: "" for none."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def event_key(ev: Event, fields: Iterable[str]) -> Key:
    return tuple(text_of(field_value(ev, f)) for f in fields)


def key_labels(base: Mapping[str, str], group_by: Iterable[str], key: Key) -> dict[str, str]:
    """The labels of one key's alert: the rule's, then each `group_by` name with its value."""
    return {**base, **dict(zip(group_by, key, strict=True))}


def key_values(group_by: Iterable[str], key: Key) -> dict[str, str]:
    """The key's values by `group_by` name, for message templates."""
    return dict(zip(group_by, key, strict=True))


def key_to_json(key: Key) -> list[str]:
    return list(key)


def key_from_json(data: Any, width: int) -> Key | None:
    """A key read back from a checkpoint; None if it does not fit the rule as configured now
    (its `group_by` changed across the restart)."""
    if not isinstance(data, list) or len(data) != width or \
            not all(isinstance(v, str) for v in data):
        return None
    return tuple(data)
