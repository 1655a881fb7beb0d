"""What keeps an alert from being notified: inhibition, silences, maintenance windows.

Each is a `Muter`: given an alert's latest transition and the event time, the `Mute` that
applies (why, by whom, until when) or None. The router asks them in Alertmanager's order
(inhibition, silences, time intervals) and the first answer is the one recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from agent.routing.config import InhibitRule, MaintenanceWindow, matches
from agent.routing.timespec import Schedule, later
from agent.types import Silence, Transition

INHIBITED = "inhibited"
SILENCED = "silenced"
MAINTENANCE = "maintenance"


@dataclass(frozen=True, slots=True)
class Mute:
    """Why an alert is not notified now."""

    why: str  # inhibited | silenced | maintenance
    by: str  # the muting alert's rule, the silence's id, the maintenance window's name
    until: datetime | None  # when it ends as far as known now; None: while the source fires


class Muter(Protocol):
    """One stage that may mute an alert."""

    def mutes(self, tr: Transition, now: datetime) -> Mute | None: ...


class Silencer:
    """The operator's silences (`invoice-agent silence add`), handed in from the store."""

    def __init__(self) -> None:
        self.silences: tuple[Silence, ...] = ()

    def set(self, silences: Iterable[Silence]) -> None:
        self.silences = tuple(silences)

    def mutes(self, tr: Transition, now: datetime) -> Mute | None:
        for s in self.silences:
            if s.active(now) and s.matches(tr.rule, tr.labels):
                return Mute(SILENCED, s.id, s.ends_at)
        return None


class Maintenance:
    """Maintenance windows: matching alerts are muted while one lasts and `grace` after."""

    def __init__(self, windows: Sequence[MaintenanceWindow], timezone: str):
        self.windows = [(w, Schedule(w.weekly, w.dates, ZoneInfo(w.timezone or timezone)))
                        for w in windows]

    def mutes(self, tr: Transition, now: datetime) -> Mute | None:
        for w, schedule in self.windows:
            if not matches(w.match, tr.rule, tr.severity, tr.labels):
                continue
            until = schedule.holds_until(now, w.grace)
            if until is not None:
                return Mute(MAINTENANCE, w.name, until)
        return None

    def active(self, now: datetime) -> list[tuple[str, datetime]]:
        """The windows muting at `now` (grace included), with when each stops muting."""
        out = []
        for w, schedule in self.windows:
            until = schedule.holds_until(now, w.grace)
            if until is not None:
                out.append((w.name, until))
        return out


@dataclass(slots=True)
class Source:
    """An alert that may inhibit others: it fires, or resolved at `resolved_at`."""

    rule: str
    severity: str
    labels: Mapping[str, str]
    resolved_at: datetime | None = None


class Inhibitor:
    """Alerts matching a rule's `source` mute those matching its `target` while they fire and
    `linger` after they resolved. An alert matching both sides is never muted by one that
    does too (nor by itself), as in Alertmanager."""

    def __init__(self, rules: Sequence[InhibitRule]):
        self.rules = tuple(rules)
        self.sources: dict[str, Source] = {}  # fingerprint -> a possible source
        self._linger = max((r.linger for r in self.rules), default=timedelta(0))

    def observe(self, tr: Transition) -> None:
        """Keep track of the alerts that can inhibit: called for each transition in order."""
        if not any(matches(r.source, tr.rule, tr.severity, tr.labels) for r in self.rules):
            self.sources.pop(tr.fingerprint, None)
            return
        resolved = tr.ts if tr.state == "resolved" else None
        self.sources[tr.fingerprint] = Source(tr.rule, tr.severity, dict(tr.labels), resolved)

    def prune(self, now: datetime) -> None:
        """Forget sources whose longest linger has passed (bounded memory)."""
        gone = [fp for fp, s in self.sources.items()
                if s.resolved_at is not None and later(s.resolved_at, self._linger) <= now]
        for fp in gone:
            del self.sources[fp]

    def inhibitor_of(self, tr: Transition, now: datetime) -> tuple[Source, Mute] | None:
        """The source muting `tr` at `now`, and the mute."""
        for r in self.rules:
            if not matches(r.target, tr.rule, tr.severity, tr.labels):
                continue
            both = matches(r.source, tr.rule, tr.severity, tr.labels)
            for fp, s in self.sources.items():
                if fp == tr.fingerprint or not matches(r.source, s.rule, s.severity, s.labels):
                    continue
                if both and matches(r.target, s.rule, s.severity, s.labels):
                    continue
                if any(s.labels.get(k) != tr.labels.get(k) for k in r.equal):
                    continue
                if s.resolved_at is None:
                    return s, Mute(INHIBITED, s.rule, None)
                until = later(s.resolved_at, r.linger)
                if now < until:
                    return s, Mute(INHIBITED, s.rule, until)
        return None

    def mutes(self, tr: Transition, now: datetime) -> Mute | None:
        found = self.inhibitor_of(tr, now)
        return found[1] if found is not None else None

    def state(self) -> list[dict[str, Any]]:
        return [{"fingerprint": fp, "rule": s.rule, "severity": s.severity,
                 "labels": dict(s.labels),
                 "resolved_at": s.resolved_at.isoformat() if s.resolved_at else None}
                for fp, s in self.sources.items()]

    def restore(self, saved: Iterable[Mapping[str, Any]]) -> None:
        for d in saved:
            resolved = d.get("resolved_at")
            self.sources[str(d["fingerprint"])] = Source(
                str(d["rule"]), str(d["severity"]), dict(d["labels"]),
                datetime.fromisoformat(resolved) if resolved else None)
