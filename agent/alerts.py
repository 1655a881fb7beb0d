"""Alert lifecycle: pending -> firing -> resolved, one state per fingerprint (rule + labels).

Pure: every decision takes the finding's event time, never the wall clock, so replay and the
daemon decide identically. Each notification carries a named reason, as it appears in logs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Iterable, Mapping, Protocol
from zoneinfo import ZoneInfo

from agent.routing.config import Escalate
from agent.routing.timespec import Schedule, TimeRange
from agent.types import (
    CHANGED,
    ESCALATED,
    FIRST,
    REPEAT,
    RESOLVED,
    AlertState,
    Finding,
    Transition,
)

__all__ = ["AlertBook", "AlertState", "CHANGED", "ESCALATED", "FIRST", "REPEAT", "RESOLVED",
           "fingerprint", "step"]

_RANK = {"info": 0, "warning": 1, "critical": 2}


class RuleMeta(Protocol):
    """What the lifecycle needs to know of a rule."""

    name: str
    kind: str
    severity: str
    pending_for: timedelta
    repeat_interval: timedelta | None
    active_hours: tuple[TimeRange, ...] | None  # None: at any time
    escalate: Escalate | None

    def summary(self, values: Mapping[str, Any]) -> dict[str, str]: ...


def fingerprint(rule: str, labels: Mapping[str, str]) -> str:
    items = tuple(sorted(labels.items()))
    try:
        return _fingerprint(rule, items)
    except TypeError:  # a label value that cannot be a key: computed every time
        return _fingerprint.__wrapped__(rule, items)


@lru_cache(maxsize=4096, typed=True)  # typed: 1, 1.0 and True are different labels
def _fingerprint(rule: str, items: tuple[tuple[str, str], ...]) -> str:
    """Remembered: a rule's alert is looked up at each of its findings (a thousand rules,
    every window), and hashing its JSON cost more than the rest of the lookup."""
    text = json.dumps([rule, items], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def step(prev: AlertState | None, f: Finding, rule: RuleMeta,
         default_repeat: timedelta) -> tuple[AlertState | None, Transition | None]:
    """The next state of one alert given a finding; and the notification it causes, if any."""
    now = f.ts
    # resolved and cleared states are history: a new finding starts a new alert
    live = prev if prev is not None and prev.state in ("pending", "firing") else None
    if live is not None and _stale(live, f):
        return live, None
    if not f.active:
        if live is None:
            return None, None
        if live.state == "pending":  # cleared before `for:` ran out: never worth a page
            return replace(live, state="cleared", resolved_at=now), None
        done = replace(live, state="resolved", resolved_at=now)
        # the message shows the values that ended it ("now 2% (1/50)"), and for how long
        return done, _transition(done, rule, now, "resolved", RESOLVED, f.values)
    if live is None:
        live = AlertState(fingerprint(f.rule, f.labels), f.rule, f.kind,
                          f.severity or rule.severity, dict(f.labels), "pending", now,
                          values=dict(f.values), line_no=f.line_no, path=f.path, cause=f.cause)
    else:
        live = replace(live, values=dict(f.values), line_no=f.line_no or live.line_no,
                       path=f.path or live.path)
    if f.window_start is None and f.active:  # a verdict at one line (an early rule)
        live = replace(live, early_at=now)
    if f.severity and _RANK.get(f.severity, 0) > _RANK.get(live.severity, 0):
        # only ever up: a firing alert that turns critical is told again, at once
        live = replace(live, severity=f.severity)
        if live.state == "firing":
            live = replace(live, last_notified=now)
            return live, _transition(live, rule, now, "firing", ESCALATED, live.values)
    esc = rule.escalate
    if esc is not None and live.state == "firing" and live.fired_at is not None \
            and now - live.fired_at >= esc.after \
            and _RANK.get(esc.to, 0) > _RANK.get(live.severity, 0):
        # still firing after `escalate.after`: told again at once, routed by the new severity
        live = replace(live, severity=esc.to, last_notified=now)
        return live, _transition(live, rule, now, "firing", ESCALATED, live.values)
    if f.cause is not None and f.cause != live.cause:
        # "erp silent: 214 waiting" after "3 invoices missing" is news, not a repeat
        live = replace(live, cause=f.cause)
        if live.state == "firing":
            live = replace(live, last_notified=now)
            return live, _transition(live, rule, now, "firing", CHANGED, live.values)
    if live.state == "pending":
        if now - live.active_since >= rule.pending_for:
            live = replace(live, state="firing", fired_at=now, last_notified=now)
            return live, _transition(live, rule, now, "firing", FIRST, live.values)
        return live, None
    repeat = rule.repeat_interval or default_repeat
    if repeat and live.last_notified is not None and now - live.last_notified >= repeat:
        live = replace(live, last_notified=now)
        return live, _transition(live, rule, now, "firing", REPEAT, live.values)
    return live, None


def _stale(live: AlertState, f: Finding) -> bool:
    """A verdict from before the alert's present: a window that began before the alert became
    active or before an early rule last found it true at a line (an early firing stands until
    a window after it), or any verdict older than the last notification. Acting on it would
    stamp a transition earlier than the one before, or end an alert a line just confirmed."""
    if f.window_start is not None and not f.active and (
            f.window_start < live.active_since
            or (live.early_at is not None and f.window_start < live.early_at)):
        return True
    last = live.last_notified or live.active_since
    return f.ts < last


def _transition(a: AlertState, rule: RuleMeta, now: datetime, state: str, reason: str,
                values: Mapping[str, Any]) -> Transition:
    return Transition(now, a.rule, a.kind, a.severity, state, a.labels, rule.summary(values),
                      a.fingerprint, reason, a.line_no, dict(values), a.path, a.fired_at)


class AlertBook:
    """The live alerts (pending and firing), advanced by findings. A rule's `active_hours`
    are read in `timezone`: outside them its findings count as inactive."""

    def __init__(self, rules: Mapping[str, RuleMeta], default_repeat: timedelta,
                 timezone: str = "Asia/Shanghai"):
        self.rules = rules
        self.default_repeat = default_repeat
        self.live: dict[str, AlertState] = {}
        zone = ZoneInfo(timezone)
        self.hours = {name: Schedule(r.active_hours, zone=zone) for name, r in rules.items()
                      if r.active_hours}

    def process(self, findings: Iterable[Finding]) -> tuple[list[Transition], list[AlertState]]:
        """Advance by findings; return the notifications and every changed state."""
        transitions: list[Transition] = []
        changed: list[AlertState] = []
        for f in findings:
            rule = self.rules.get(f.rule)
            if rule is None:
                continue
            if f.active and self.hours:
                f = self._within_hours(f)
            fp = fingerprint(f.rule, f.labels)
            prev = self.live.get(fp)
            new, tr = step(prev, f, rule, self.default_repeat)
            if new is None:
                continue
            if new.state in ("resolved", "cleared"):
                self.live.pop(fp, None)
            else:
                self.live[fp] = new
            # values too: after a restart a resolved message shows the window's final values
            if new != prev:
                changed.append(new)
            if tr is not None:
                transitions.append(tr)
        return transitions, changed

    def _within_hours(self, f: Finding) -> Finding:
        """A finding outside its rule's active hours counts as inactive. A window verdict is
        placed at the window's start: the window [19:55, 20:00) is inside 08:00-20:00."""
        hours = self.hours.get(f.rule)
        if hours is None or hours.contains(f.window_start or f.ts):
            return f
        return replace(f, active=False)

    def firing(self) -> list[AlertState]:
        return [a for a in self.live.values() if a.state == "firing"]

    def restore(self, states: Iterable[AlertState]) -> None:
        for a in states:
            if a.state in ("pending", "firing") and a.rule in self.rules:
                self.live[a.fingerprint] = a
