"""Grouping: one message per group of alerts, after group_wait, then at most every
group_interval and only with news; table-driven, event time passed in."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from agent.alerts import CHANGED, ESCALATED, FIRST, REPEAT, RESOLVED, fingerprint
from agent.routing.router import Router, RouterSettings
from agent.types import Notice, Transition

TZ = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=TZ)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def tr(minutes: float, rule: str, state: str = "firing", reason: str = FIRST,
       severity: str = "warning", **labels: str) -> Transition:
    labels = labels or {"team": "finance-it"}
    return Transition(at(minutes), rule, "rule", severity, state, labels,
                      {"en": f"{rule} {state}"}, fingerprint(rule, labels),
                      RESOLVED if state == "resolved" else reason)


def settings(**kw) -> RouterSettings:
    return RouterSettings(**{"group_wait": timedelta(seconds=30),
                             "group_interval": timedelta(minutes=5), **kw})


def feed(router: Router, transitions: list[Transition], until: float) -> list[Notice]:
    """Transitions in, time advanced after each (as the engine does), then to `until`."""
    for t in transitions:
        router.add([t])
        router.advance(t.ts)
    router.advance(at(until))
    return router.take_notices()


def brief(notices: list[Notice]) -> list[tuple[float, str, list[str], list[str]]]:
    """(minute, reason, firing rules, resolved rules) of each message."""
    return [((n.ts - T0).total_seconds() / 60, n.reason, [t.rule for t in n.firing],
             [t.rule for t in n.resolved]) for n in notices]


CASES = [
    # group_wait: the first message 30 s after the group's first alert
    ([tr(0, "a")], 10, [(0.5, "first notification", ["a"], [])]),
    # two alerts firing together: one message naming both
    ([tr(0, "a"), tr(0.2, "b")], 10, [(0.5, "first notification", ["a", "b"], [])]),
    # group_interval: b after the first message waits for the group's next flush (5.5), and
    # the message shows everything firing; c at 6 waits for 10.5
    ([tr(0, "a"), tr(1, "b"), tr(6, "c")], 20,
     [(0.5, "first notification", ["a"], []), (5.5, "update", ["a", "b"], []),
      (10.5, "update", ["a", "b", "c"], [])]),
    # nothing new: no message at 5.5, 10.5, ...
    ([tr(0, "a")], 60, [(0.5, "first notification", ["a"], [])]),
    # resolved-only message; the group is gone afterwards
    ([tr(0, "a"), tr(12, "a", "resolved")], 30,
     [(0.5, "first notification", ["a"], []), (15.5, "resolved", [], ["a"])]),
    # one of two resolved: an update still showing the other firing
    ([tr(0, "a"), tr(0, "b"), tr(7, "b", "resolved")], 30,
     [(0.5, "first notification", ["a", "b"], []), (10.5, "update", ["a"], ["b"])]),
    # fired and resolved before anyone was told: never sent, not even the resolution
    ([tr(0, "a"), tr(0.2, "a", "resolved")], 30, []),
    # the same after the first message: b comes and goes between two flushes
    ([tr(0, "a"), tr(1, "b"), tr(2, "b", "resolved")], 30,
     [(0.5, "first notification", ["a"], [])]),
    # a reminder (repeat interval elapsed) re-sends the group as a repeat
    ([tr(0, "a"), tr(240, "a", reason=REPEAT)], 250,
     [(0.5, "first notification", ["a"], []), (240.5, "repeat", ["a"], [])]),
    # an escalation or a change of cause is news
    ([tr(0, "a"), tr(61, "a", reason=ESCALATED, severity="critical")], 70,
     [(0.5, "first notification", ["a"], []), (65.5, "update", ["a"], [])]),
    ([tr(0, "a"), tr(20, "a", reason=CHANGED)], 30,
     [(0.5, "first notification", ["a"], []), (20.5, "update", ["a"], [])]),
]


@pytest.mark.parametrize("transitions, until, expected", CASES)
def test_grouping(transitions, until, expected):
    assert brief(feed(Router(settings()), transitions, until)) == expected


def test_news_names_only_what_changed_and_severity_is_the_highest_firing():
    notices = feed(Router(settings()), [
        tr(0, "a"), tr(1, "b", severity="critical"), tr(2, "a", "resolved")], 10)
    first, update = notices
    assert first.news == {fingerprint("a", {"team": "finance-it"})}
    assert first.severity == "warning"
    assert update.news == {fingerprint("b", {"team": "finance-it"}),
                           fingerprint("a", {"team": "finance-it"})}
    assert [t.state for t in update.resolved] == ["resolved"]
    assert update.severity == "critical"
    assert update.key == first.key  # the outbox orders one group's messages by it


def test_an_escalated_alert_is_routed_by_its_new_severity():
    notices = feed(Router(settings()), [
        tr(0, "a"), tr(60, "a", reason=ESCALATED, severity="critical")], 70)
    assert [n.severity for n in notices] == ["warning", "critical"]
    assert notices[1].firing[0].reason == ESCALATED


def test_two_groups_by_label_flush_separately():
    router = Router(settings(group_by=("team",)))
    notices = feed(router, [tr(0, "a", team="ops"), tr(0.1, "b", team="finance-it"),
                            tr(3, "c", team="ops")], 12)
    assert [(n.group, [t.rule for t in n.firing]) for n in notices] == [
        ({"team": "ops"}, ["a"]), ({"team": "finance-it"}, ["b"]), ({"team": "ops"}, ["a", "c"])]
    assert notices[0].key == notices[2].key != notices[1].key
    # an alert without the label: a group of its own, with the label left out
    (n,) = feed(router, [tr(20, "d", host="h1")], 30)
    assert n.group == {} and n.key not in (notices[0].key, notices[1].key)


def test_group_by_rule_gives_one_group_per_rule():
    notices = feed(Router(settings(group_by=("rule",))), [tr(0, "a"), tr(0, "b")], 5)
    assert sorted((n.group["rule"], len(n.firing)) for n in notices) == [("a", 1), ("b", 1)]


def test_a_late_transition_joins_the_next_flush_never_a_past_one():
    router = Router(settings())
    feed(router, [tr(0, "a")], 7)  # flushed at 0.5 and (nothing new) at 5.5
    router.add([tr(3, "b")])  # decided late: its time is already behind the router's
    router.advance(at(12))
    assert brief(router.take_notices()) == [(10.5, "update", ["a", "b"], [])]


def test_groups_are_dropped_when_nothing_fires_and_nothing_waits():
    router = Router(settings())
    feed(router, [tr(0, "a"), tr(1, "b"), tr(2, "a", "resolved"), tr(3, "b", "resolved")], 20)
    assert router.groups == {}
    feed(router, [tr(30, "c"), tr(30.1, "c", "resolved")], 40)
    assert router.groups == {}


def test_finish_flushes_what_still_waits_at_its_flush_time():
    router = Router(settings())
    router.add([tr(0, "a"), tr(2, "b"), tr(3, "a", "resolved")])
    router.finish(at(3))
    assert brief(router.take_notices()) == [
        (0.5, "first notification", ["a"], []), (5.5, "update", ["b"], ["a"])]
    router.finish(at(3))  # nothing is sent twice
    assert router.take_notices() == []


def round_trip(router: Router) -> Router:
    """A restart: the state goes through JSON (as the engine checkpoint in SQLite does)."""
    again = Router(router.settings)
    again.restore(json.loads(json.dumps(router.state())))
    return again


def test_a_restart_mid_group_neither_loses_the_waiting_message_nor_resends_a_sent_one():
    straight = Router(settings())
    events = [tr(0, "a"), tr(0.2, "b"), tr(7, "a", "resolved"), tr(8, "c")]
    expected = brief(feed(straight, events, 20))

    router = Router(settings())
    seen = feed(router, events[:1], 0.3)  # a fired, its group waits for 0.5
    assert seen == []
    router.add(events[1:2])  # queued, not taken yet: also in the checkpoint
    router = round_trip(router)
    seen = feed(router, [], 6)  # the first message, then nothing new
    router = round_trip(router)  # after the flush: not sent again
    seen += feed(router, events[2:], 20)
    assert brief(seen) == expected
    assert [n.key for n in seen] == [n.key for n in feed(Router(settings()), events, 20)]


def test_the_checkpoint_lists_recent_messages_for_status():
    router = Router(settings())
    feed(router, [tr(0, "a"), tr(5, "a", "resolved")], 10)
    recent = json.loads(json.dumps(router.state()))["recent"]
    assert [(r["reason"], r["firing"], r["resolved"]) for r in recent] == [
        ("first notification", ["a"], []), ("resolved", [], ["a"])]


def test_flush_times_are_real_time_across_a_daylight_saving_change():
    # Berlin's clocks jump from 02:00 to 03:00 on 2026-03-29: 30 s after 01:59:50 is 03:00:20
    berlin = ZoneInfo("Europe/Berlin")
    first = datetime(2026, 3, 29, 1, 59, 50, tzinfo=berlin)
    alert = Transition(first, "a", "rule", "warning", "firing", {}, {}, fingerprint("a", {}),
                       FIRST)
    router = Router(settings())
    router.add([alert])
    router.advance(first + timedelta(hours=2))
    (n,) = router.take_notices()
    assert n.ts.astimezone(timezone.utc) == datetime(2026, 3, 29, 1, 0, 20, tzinfo=timezone.utc)
    assert (n.ts.hour, n.ts.minute, n.ts.second) == (3, 0, 20)
