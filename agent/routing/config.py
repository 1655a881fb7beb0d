"""The operator's alert management options: `notify.group_by/group_wait/group_interval`
(`Grouping`, which agent/config.py's NotifyConfig extends), `inhibit:` and `maintenance:` (top
level of the agent config) and a rule's `escalate:`.

Matchers select alerts: each key is a label, or `rule` for the rule's name, or `severity`;
each value is one value or a list of accepted values. An alert matches when every key does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from agent.configtypes import Duration, NonNegativeDuration
from agent.routing.timespec import DateRange, TimeRange

__all__ = ["Escalate", "Grouping", "InhibitRule", "MaintenanceWindow", "MaintenanceWindows",
           "Matchers", "matches"]


def _values(value: Any) -> Any:
    """{label: value | [values]} -> {label: [values]}; numbers written unquoted as text."""
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    for k, v in value.items():
        items = v if isinstance(v, list) else [v]
        out[k] = [str(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else x
                  for x in items]
    return out


# label (or `rule`, `severity`) -> the accepted values
Matchers = Annotated[dict[str, list[str]], BeforeValidator(_values)]


def matches(matchers: Mapping[str, list[str]], rule: str, severity: str,
            labels: Mapping[str, str]) -> bool:
    """Whether an alert of `rule` with `severity` and `labels` matches every matcher."""
    for key, accepted in matchers.items():
        if key == "rule":
            value: str | None = rule
        elif key == "severity":
            value = severity
        else:
            value = labels.get(key)
        if value not in accepted:
            return False
    return True


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _some_values(v: dict[str, list[str]]) -> dict[str, list[str]]:
    empty = sorted(k for k, vals in v.items() if not vals)
    if empty:
        raise ValueError(f"matcher {empty[0]!r} lists no value")
    return v


class Grouping(_Model):
    """How alerts share messages (Alertmanager's aggregation groups); part of `notify:`."""

    group_by: list[str] = Field(
        default_factory=list,
        description="Labels whose values make an alert group, one message per group (`rule`: "
                    "the rule's name); [] puts every alert of the agent in one group")
    group_wait: NonNegativeDuration = Field(
        timedelta(seconds=30),
        description="A new group's first message waits this long for the alerts firing with "
                    "the first one")
    group_interval: Duration = Field(
        timedelta(minutes=5),
        description="A group's next message, when something changed, at most this often")

    @field_validator("group_interval")
    @classmethod
    def _interval(cls, v: timedelta) -> timedelta:
        if v < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return v


class InhibitRule(_Model):
    """While an alert matching `source` fires (and `linger` after it resolved), alerts matching
    `target` with the same values of the `equal` labels are not notified: an outage mutes the
    latency and missing-invoice alerts it causes."""

    source: Matchers = Field(min_length=1, description="The muting alerts, e.g. {rule: x}")
    target: Matchers = Field(min_length=1, description="The muted alerts")
    equal: list[str] = Field(
        default_factory=list, description="Labels that must have the same value in both")
    linger: Duration = Field(
        timedelta(minutes=15),
        description="Targets stay muted this long after the source resolved (alerts caused "
                    "by an outage lag its recovery by a window or two)")

    _matchers = field_validator("source", "target")(_some_values)

    @field_validator("linger")
    @classmethod
    def _not_negative(cls, v: timedelta) -> timedelta:
        if v < timedelta(0):
            raise ValueError("must not be negative")
        return v


class MaintenanceWindow(_Model):
    """Planned maintenance (the tax platform's 系统维护时段, a deployment): matching alerts are
    not notified while it lasts, nor `grace` after; an alert still firing then is."""

    name: str = Field(min_length=1, description="Shown in status and in muted records")
    weekly: list[TimeRange] = Field(
        default_factory=list, description="Recurring: [{days, start, end}]")
    dates: list[DateRange] = Field(
        default_factory=list, description="Once: [{start, end}] in local time")
    timezone: str | None = Field(None, description="Default: the agent's `timezone`")
    match: Matchers = Field(default_factory=dict, description="Which alerts; default every one")
    grace: NonNegativeDuration = Field(
        timedelta(minutes=15), description="Alerts stay muted this long after the window ends")

    _matchers = field_validator("match")(_some_values)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {v!r} (expected e.g. Asia/Shanghai)"
                                 ) from None
        return v

    @model_validator(mode="after")
    def _some_time(self) -> "MaintenanceWindow":
        if not self.weekly and not self.dates:
            raise ValueError("a maintenance window needs `weekly:` or `dates:` (or both)")
        return self


def _unique_names(windows: list[MaintenanceWindow]) -> list[MaintenanceWindow]:
    names = [w.name for w in windows]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"maintenance window names must be unique: {', '.join(dupes)} "
                         "repeated")
    return windows


# `maintenance:`: the windows, each name once (muted records and `status` name them)
MaintenanceWindows = Annotated[list[MaintenanceWindow], AfterValidator(_unique_names)]


class Escalate(_Model):
    """A rule's `escalate:`: an alert still firing `after` this long takes severity `to`."""

    after: Duration = Field(description="How long firing before the severity rises")
    to: Literal["warning", "critical"] = Field("critical", description="The new severity")

    @field_validator("after")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("must be more than 0")
        return v
