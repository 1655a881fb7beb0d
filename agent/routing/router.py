"""The router: alert transitions in, one message per alert group out, muted ones recorded.

Pure and in event time. Transitions wait in a queue until the caller lets time advance past
them (`advance(now)`); then transitions and group flushes are taken in time order, so the
result depends only on the transitions and their times, never on when `advance` was called:
`run` and `replay` send the same. A transition older than the time already advanced to is
taken at once, as if it had arrived then.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent.routing.config import InhibitRule, MaintenanceWindow
from agent.routing.groups import Group, group_key, group_labels
from agent.routing.mutes import INHIBITED, Inhibitor, Maintenance, Mute, Silencer, Source
from agent.routing.records import transition_from_json, transition_json
from agent.routing.timespec import later
from agent.types import Muted, Notice, Silence, Transition

if TYPE_CHECKING:
    from agent.config import AgentConfig

RECENT = 50  # messages remembered in the checkpoint, for `status`


@dataclass(frozen=True, slots=True)
class RouterSettings:
    """What the router is built from (the config's notify, inhibit and maintenance)."""

    group_by: tuple[str, ...] = ()
    group_wait: timedelta = timedelta(seconds=30)
    group_interval: timedelta = timedelta(minutes=5)
    inhibit: tuple[InhibitRule, ...] = ()
    maintenance: tuple[MaintenanceWindow, ...] = ()
    timezone: str = "Asia/Shanghai"  # maintenance windows without their own


@dataclass(frozen=True, slots=True)
class MutedAlert:
    """An alert muted right now (for `status`)."""

    fingerprint: str
    rule: str
    labels: Mapping[str, str]
    state: str  # firing, or resolved with its message held back
    why: str  # inhibited | silenced | maintenance
    by: str
    until: datetime | None  # None: as long as the inhibiting alert fires

    def to_json(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "rule": self.rule,
                "labels": dict(self.labels), "state": self.state, "why": self.why,
                "by": self.by, "until": self.until.isoformat() if self.until else None}


class Router:
    """Groups, inhibits, silences and holds alerts back during maintenance."""

    def __init__(self, settings: RouterSettings = RouterSettings()):
        self.settings = settings
        self.inhibitor = Inhibitor(settings.inhibit)
        self.silencer = Silencer()
        self.maintenance = Maintenance(settings.maintenance, settings.timezone)
        self.now: datetime | None = None  # how far event time has been taken
        self.groups: dict[str, Group] = {}
        self._queue: list[tuple[datetime, int, Transition]] = []
        self._seq = 0
        self._notices: list[Notice] = []
        self._muted: list[Muted] = []
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)  # the latest messages

    @classmethod
    def from_config(cls, config: "AgentConfig") -> "Router":
        n = config.notify
        return cls(RouterSettings(tuple(n.group_by), n.group_wait, n.group_interval,
                                  tuple(config.inhibit), tuple(config.maintenance),
                                  config.timezone))

    # -- in --------------------------------------------------------------------------------
    def add(self, transitions: Iterable[Transition]) -> None:
        """Alert transitions, as the alert lifecycle decided them."""
        for tr in transitions:
            if self.now is not None and tr.ts <= self.now:
                self._take(tr, self.now)  # late: joins the group's next message
            else:
                self._seq += 1
                heapq.heappush(self._queue, (tr.ts, self._seq, tr))

    def set_silences(self, silences: Iterable[Silence]) -> None:
        """The operator's silences (all of them: ended ones are ignored). A still-firing
        alert a silence hid is notified at its group's next flush after the silence ends."""
        self.silencer.set(silences)

    def advance(self, now: datetime) -> None:
        """Take every queued transition and every group flush due up to `now`, in time
        order (a transition at a flush's time is in it)."""
        interval = self.settings.group_interval
        while True:
            t_tr = self._queue[0][0] if self._queue and self._queue[0][0] <= now else None
            t_fl = min((g.next_flush for g in self.groups.values()
                        if g.next_flush is not None and g.next_flush <= now), default=None)
            if t_tr is None and t_fl is None:
                break
            if t_tr is not None and (t_fl is None or t_tr <= t_fl):
                _, _, tr = heapq.heappop(self._queue)
                self._clock(t_tr)
                assert self.now is not None
                self._take(tr, self.now)
            else:
                assert t_fl is not None
                self._clock(t_fl)
                self._flush(t_fl, interval)
        self._clock(now)

    def finish(self, now: datetime) -> None:
        """The end of a replay: everything queued is taken, and each group still holding
        news flushes once more at its next flush time (what it would send then)."""
        last = max((ts for ts, _, _ in self._queue), default=now)
        self.advance(max(now, last))
        done: set[str] = set()
        while True:
            waiting = [g for g in self.groups.values() if g.key not in done and g.pending()]
            if not waiting:
                break
            for g in waiting:
                assert self.now is not None
                g.wake(self.now, self.settings.group_interval)
            at = min(g.next_flush for g in waiting if g.next_flush is not None)
            done.update(g.key for g in waiting if g.next_flush == at)
            self._clock(at)
            self._flush(at, self.settings.group_interval)

    # -- out -------------------------------------------------------------------------------
    def take_notices(self) -> list[Notice]:
        """The messages decided since the last call, in time order."""
        out, self._notices = self._notices, []
        return out

    def take_muted(self) -> list[Muted]:
        """The transitions held back since the last call, and why."""
        out, self._muted = self._muted, []
        return out

    def muted_now(self) -> list[MutedAlert]:
        """Every alert muted at the time advanced to, with why, by whom and until when."""
        if self.now is None:
            return []
        out = []
        for g in self.groups.values():
            for m in g.members.values():
                found = self._mute(m.tr, self.now)
                if found is not None:
                    mute = found[0]
                    out.append(MutedAlert(m.tr.fingerprint, m.tr.rule, dict(m.tr.labels),
                                          m.tr.state, mute.why, mute.by, mute.until))
        return out

    # -- inside ----------------------------------------------------------------------------
    def _clock(self, t: datetime) -> None:
        if self.now is None or t > self.now:
            self.now = t

    def _mute(self, tr: Transition, now: datetime) -> tuple[Mute, Source | None] | None:
        """The first mute in Alertmanager's order: inhibition, silences, time intervals."""
        inhibited = self.inhibitor.inhibitor_of(tr, now)
        if inhibited is not None:
            return inhibited[1], inhibited[0]
        mute = self.silencer.mutes(tr, now) or self.maintenance.mutes(tr, now)
        return (mute, None) if mute is not None else None

    def _take(self, tr: Transition, at: datetime) -> None:
        self.inhibitor.observe(tr)
        labels = group_labels(self.settings.group_by, tr.rule, tr.labels)
        key = group_key(labels)
        g = self.groups.get(key)
        if g is None:
            if tr.state == "resolved":
                self._dropped(tr, at)
                return
            g = self.groups[key] = Group(key, labels, later(at, self.settings.group_wait))
        if not g.take(tr, at, self.settings.group_interval):
            self._dropped(tr, at)
            if g.empty():
                del self.groups[key]

    def _dropped(self, tr: Transition, at: datetime) -> None:
        """A resolution nobody hears of: recorded as muted when a mute hid its alert."""
        found = self._mute(tr, at)
        if found is not None:
            self._record(tr, found[0], found[1])

    def _record(self, tr: Transition, mute: Mute, source: Source | None) -> None:
        rec = Muted(tr.ts, tr.rule, dict(tr.labels), tr.fingerprint, tr.state, mute.why,
                    mute.by)
        self._muted.append(rec)
        if mute.why == INHIBITED and source is not None:
            # the inhibiting alert's message lists what it held back
            key = group_key(group_labels(self.settings.group_by, source.rule, source.labels))
            owner = self.groups.get(key)
            if owner is not None:
                owner.inhibited.append(rec)

    def _flush(self, at: datetime, interval: timedelta) -> None:
        """Every group due at `at`: first what each mutes (an inhibited alert joins the
        inhibiting alert's message), then the messages."""
        self.inhibitor.prune(at)
        due = sorted((g for g in self.groups.values()
                      if g.next_flush is not None and g.next_flush <= at),
                     key=lambda g: (g.next_flush, g.key))
        found: dict[str, dict[str, Mute]] = {}
        sources: dict[str, Source | None] = {}  # muted fingerprint -> the inhibiting alert

        def check(tr: Transition) -> Mute | None:
            hit = self._mute(tr, at)
            if hit is None:
                return None
            sources[tr.fingerprint] = hit[1]
            return hit[0]

        for g in due:
            found[g.key], fresh = g.mutes(check)
            for m, mute in fresh:
                self._record(m.tr, mute, sources.get(m.tr.fingerprint))
        for g in due:
            notice = g.flush(at, found[g.key], interval)
            if notice is not None:
                self._notices.append(notice)
                self.recent.append(digest(notice))
            if g.empty():
                del self.groups[g.key]

    # -- checkpoint ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """What a restart needs (groups waiting to flush, queued transitions, inhibiting
        alerts), and what is muted now, for `status`."""
        return {
            "now": self.now.isoformat() if self.now else None,
            "queue": [transition_json(tr) for _, _, tr in sorted(self._queue,
                                                                  key=lambda x: x[:2])],
            "groups": [g.to_json() for g in self.groups.values()],
            "sources": self.inhibitor.state(),
            "muted": [m.to_json() for m in self.muted_now()],
            "recent": list(self.recent),
        }

    def restore(self, state: Mapping[str, Any] | None) -> None:
        """Take back `state()`. Groups are keyed again by the current `group_by`, so a
        reload that changes it keeps every alert and what its people were told."""
        if not isinstance(state, Mapping):
            return
        if state.get("now"):
            self.now = datetime.fromisoformat(state["now"])
        for d in state.get("queue") or ():
            tr = transition_from_json(d)
            self._seq += 1
            heapq.heappush(self._queue, (tr.ts, self._seq, tr))
        for d in state.get("groups") or ():
            old = Group.from_json(d)
            for fp, m in old.members.items():
                labels = group_labels(self.settings.group_by, m.tr.rule, m.tr.labels)
                key = group_key(labels)
                g = self.groups.get(key)
                if g is None:
                    g = self.groups[key] = Group(key, labels, old.next_flush, old.last_flush,
                                                 old.sent_any)
                g.members[fp] = m
                if key == old.key:
                    g.inhibited = old.inhibited
        self.inhibitor.restore(state.get("sources") or ())
        self.recent.extend(d for d in state.get("recent") or () if isinstance(d, dict))


def digest(n: Notice) -> dict[str, Any]:
    """A message in short: when, which group, why, and the alerts it named."""
    return {"ts": n.ts.isoformat(), "key": n.key, "group": dict(n.group),
            "reason": n.reason, "severity": n.severity,
            "firing": [t.rule for t in n.firing], "resolved": [t.rule for t in n.resolved],
            "news": sorted(n.news), "muted": [m.rule for m in n.muted]}
