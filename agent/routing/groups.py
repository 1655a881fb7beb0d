"""Aggregation groups (Alertmanager's): the alerts sharing the `group_by` label values, and
what their next message says.

A group flushes `group_wait` after its first alert, then on a fixed cadence of
`group_interval`, and sends a message only when something changed since its last one: an
alert fires that the last message did not show firing (new, or no longer muted), an alert the
people were told fires has resolved, an alert escalated, changed cause or is due a reminder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agent.routing.mutes import Mute
from agent.routing.records import muted_from_json, muted_json, transition_from_json, transition_json
from agent.routing.timespec import elapsed, later
from agent.types import REPEAT, RESOLVED, Muted, Notice, Transition

FIRST_NOTICE = "first notification"
UPDATE = "update"
REPEAT_NOTICE = "repeat"
RESOLVED_NOTICE = "resolved"
_RANK = {"info": 0, "warning": 1, "critical": 2}


def group_labels(group_by: Sequence[str], rule: str, labels: Mapping[str, str]
                 ) -> dict[str, str]:
    """The values of the `group_by` labels (`rule`: the rule's name); absent ones left out."""
    out = {}
    for k in group_by:
        v = rule if k == "rule" else labels.get(k)
        if v is not None:
            out[k] = v
    return out


def group_key(labels: Mapping[str, str]) -> str:
    text = json.dumps(sorted(labels.items()), ensure_ascii=False)
    return hashlib.sha256(("group" + text).encode()).hexdigest()[:16]


@dataclass(slots=True)
class Member:
    """One alert as its group knows it."""

    tr: Transition  # its latest transition
    told: bool = False  # a message showed it firing, and none since said it resolved
    shown: bool = False  # the group's last message showed it firing
    news: str | None = None  # reason of a transition no message carried yet
    muted_noted: bool = False  # a Muted record was made for its latest transition

    def to_json(self) -> dict[str, Any]:
        return {"tr": transition_json(self.tr), "told": self.told, "shown": self.shown,
                "news": self.news, "muted_noted": self.muted_noted}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Member":
        return cls(transition_from_json(d["tr"]), bool(d.get("told")), bool(d.get("shown")),
                   d.get("news"), bool(d.get("muted_noted")))


MuteCheck = Callable[[Transition], Mute | None]


@dataclass(slots=True)
class Group:
    """One aggregation group: its alerts, what its people were told, when it flushes next."""

    key: str
    labels: dict[str, str]
    next_flush: datetime | None  # None: asleep until an alert of it changes
    last_flush: datetime | None = None
    sent_any: bool = False
    members: dict[str, Member] = field(default_factory=dict)  # fingerprint -> member
    inhibited: list[Muted] = field(default_factory=list)  # muted by its alerts, not yet told

    # -- alerts in -------------------------------------------------------------------------
    def take(self, tr: Transition, now: datetime, interval: timedelta) -> bool:
        """One transition of an alert of this group, at router time `now`; what it means is
        decided at the flush. False: a resolution of an alert nobody was told fires, dropped
        (never sent)."""
        m = self.members.get(tr.fingerprint)
        if tr.state == "resolved":
            if m is None or not m.told:
                self.members.pop(tr.fingerprint, None)
                return False
            m.tr, m.news, m.muted_noted = tr, RESOLVED, False
        elif m is None:
            self.members[tr.fingerprint] = Member(tr, news=tr.reason)
        else:
            # a reminder does not hide a change the next message must still tell
            if m.news in (None, REPEAT) or m.tr.state == "resolved":
                m.news = tr.reason
            m.tr, m.muted_noted = tr, False
        self.wake(now, interval)
        return True

    def wake(self, now: datetime, interval: timedelta) -> None:
        """Schedule the next flush on the group's cadence, at or after `now`."""
        if self.next_flush is not None:
            return
        if self.last_flush is None:
            self.next_flush = now
            return
        steps = -(-elapsed(self.last_flush, now) // interval)  # ceil
        self.next_flush = later(self.last_flush, max(1, steps) * interval)

    # -- flush -----------------------------------------------------------------------------
    def mutes(self, check: MuteCheck) -> tuple[dict[str, Mute], list[tuple[Member, Mute]]]:
        """Each member's mute now, and the members whose untold transition a mute hides and
        that were not recorded as muted yet (each transition is recorded once)."""
        found: dict[str, Mute] = {}
        fresh: list[tuple[Member, Mute]] = []
        for fp, m in self.members.items():
            mute = check(m.tr)
            if mute is None:
                continue
            found[fp] = mute
            if m.news is not None and not m.muted_noted:
                m.muted_noted = True
                fresh.append((m, mute))
        return found, fresh

    def flush(self, now: datetime, muted: Mapping[str, Mute], interval: timedelta
              ) -> Notice | None:
        """The message due at `now`, if anything changed; `muted` as `mutes` found it."""
        firing: list[Transition] = []
        resolved: list[Transition] = []
        news: set[str] = set()
        repeats_only = True
        for fp, m in self.members.items():
            if fp in muted:
                continue
            if m.tr.state == "firing":
                firing.append(m.tr)
                if not m.shown or m.news is not None:
                    news.add(fp)
                    repeats_only = repeats_only and m.shown and m.news == REPEAT
            else:
                resolved.append(m.tr)
                news.add(fp)
                repeats_only = False
        notice = None
        if news:
            notice = Notice(now, self.key, dict(self.labels), _severity(firing or resolved),
                            tuple(firing), tuple(resolved), frozenset(news),
                            tuple(self.inhibited), self._reason(firing, repeats_only))
            self.sent_any = True
            self.inhibited = []
            for fp, m in list(self.members.items()):
                if fp in muted:
                    m.shown = False
                elif m.tr.state == "resolved":
                    del self.members[fp]
                else:
                    m.told = m.shown = True
                    m.news, m.muted_noted = None, False
        self.last_flush = now
        # asleep unless something may still change without a transition: a muted alert
        # whose mute ends, a message held back by a mute
        waiting = any(fp in muted for fp in self.members)
        self.next_flush = later(now, interval) if waiting else None
        return notice

    def _reason(self, firing: list[Transition], repeats_only: bool) -> str:
        if not self.sent_any:
            return FIRST_NOTICE
        if not firing:
            return RESOLVED_NOTICE
        return REPEAT_NOTICE if repeats_only else UPDATE

    def pending(self) -> bool:
        """Whether a transition waits to be told (for the end of a replay)."""
        return any(m.news is not None for m in self.members.values())

    def empty(self) -> bool:
        return not self.members

    # -- checkpoint ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "labels": self.labels,
                "next_flush": self.next_flush.isoformat() if self.next_flush else None,
                "last_flush": self.last_flush.isoformat() if self.last_flush else None,
                "sent_any": self.sent_any,
                "members": [m.to_json() for m in self.members.values()],
                "inhibited": [muted_json(x) for x in self.inhibited]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Group":
        nf, lf = d.get("next_flush"), d.get("last_flush")
        g = cls(str(d["key"]), dict(d.get("labels") or {}),
                datetime.fromisoformat(nf) if nf else None,
                datetime.fromisoformat(lf) if lf else None, bool(d.get("sent_any")))
        for md in d.get("members") or ():
            m = Member.from_json(md)
            g.members[m.tr.fingerprint] = m
        g.inhibited = [muted_from_json(x) for x in d.get("inhibited") or ()]
        return g


def _severity(trs: Sequence[Transition]) -> str:
    return max((t.severity for t in trs), key=lambda s: _RANK.get(s, 0), default="info")
