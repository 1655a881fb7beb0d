"""Alert lifecycle: pending -> firing -> resolved, table-driven with the clock passed in."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from agent.alerts import (
    ESCALATED,
    FIRST,
    REPEAT,
    RESOLVED,
    AlertBook,
    AlertState,
    fingerprint,
    step,
)
from agent.detect.base import BuildContext
from agent.detect.threshold import ThresholdConfig, ThresholdRule
from agent.types import Finding

TZ = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=TZ)
DEFAULT_REPEAT = timedelta(hours=4)
LABELS = {"source": "upload", "team": "finance-it"}
CONTEXT = BuildContext(["upload"], timedelta(minutes=5))


def rule(for_: str = "0s", repeat: str | None = None, name: str = "upload_failure_rate"
         ) -> ThresholdRule:
    options = {"name": name, "type": "threshold", "source": "upload", "for": for_,
               "when": "failure_rate > 0.3", "severity": "critical",
               "summary": {"en": "failure rate {failure_rate:.0%}",
                           "zh": "失败率 {failure_rate:.0%}"}}
    if repeat:
        options["repeat_interval"] = repeat
    return ThresholdConfig.model_validate(options).build(CONTEXT)


def finding(minute: int, active: bool, name: str = "upload_failure_rate",
            labels: dict[str, str] = LABELS) -> Finding:
    return Finding(name, active, T0 + timedelta(minutes=minute), labels,
                   {"failure_rate": 0.5 if active else 0.1})


def run(book: AlertBook, verdicts: list[tuple[int, bool]]) -> list[tuple[int, str, str]]:
    out = []
    for minute, active in verdicts:
        transitions, _ = book.process([finding(minute, active)])
        out += [(int((t.ts - T0).total_seconds() // 60), t.state, t.reason) for t in transitions]
    return out


CASES = [
    # for: 10m, condition holds from 0 on: pending at 0 and 5, fires once 10 minutes have passed
    ("10m", None, [(0, True), (5, True), (10, True), (15, True)],
     [(10, "firing", FIRST)]),
    # for: 0: the first active verdict fires at once
    ("0s", None, [(0, True)], [(0, "firing", FIRST)]),
    # for: 10m but the condition clears at 5: it never pages, not even a resolve
    ("10m", None, [(0, True), (5, False), (10, False)], []),
    # cleared before for:, then holds again: the pending time starts over from 15
    ("10m", None, [(0, True), (5, False), (15, True), (20, True), (25, True)],
     [(25, "firing", FIRST)]),
    # firing then the condition clears: one resolved notification, nothing more
    ("5m", None, [(0, True), (5, True), (10, False), (15, False)],
     [(5, "firing", FIRST), (10, "resolved", RESOLVED)]),
    # still firing an hour later with repeat_interval 30m: reminded at 35 and 65
    ("5m", "30m", [(m, True) for m in range(0, 70, 5)],
     [(5, "firing", FIRST), (35, "firing", REPEAT), (65, "firing", REPEAT)]),
    # no repeat_interval on the rule: notify.repeat_interval (4h) applies, no reminder in 1h
    ("0s", None, [(m, True) for m in range(0, 65, 5)], [(0, "firing", FIRST)]),
    # resolved and then firing again later: a new first notification
    ("0s", None, [(0, True), (5, False), (10, True)],
     [(0, "firing", FIRST), (5, "resolved", RESOLVED), (10, "firing", FIRST)]),
    # an inactive verdict with nothing live: nothing at all
    ("0s", None, [(0, False), (5, False)], []),
]


@pytest.mark.parametrize("for_, repeat, verdicts, expected", CASES)
def test_lifecycle(for_, repeat, verdicts, expected):
    r = rule(for_, repeat)
    book = AlertBook({r.name: r}, DEFAULT_REPEAT)
    assert run(book, verdicts) == expected


def test_pending_alert_is_live_but_not_firing():
    r = rule("10m")
    book = AlertBook({r.name: r}, DEFAULT_REPEAT)
    run(book, [(0, True)])
    (state,) = book.live.values()
    assert state.state == "pending" and book.firing() == []
    run(book, [(10, True)])
    assert [a.state for a in book.firing()] == ["firing"]


def test_notifications_carry_rendered_summary_labels_and_severity():
    r = rule()
    book = AlertBook({r.name: r}, DEFAULT_REPEAT)
    (fired,), _ = book.process([finding(0, True)])
    (resolved,), _ = book.process([finding(5, False)])
    assert fired.summary == {"en": "failure rate 50%", "zh": "失败率 50%"}
    assert (fired.severity, fired.kind, dict(fired.labels)) == ("critical", "rule", LABELS)
    # the resolved message quotes the values it recovered to ("now: 10%")
    assert resolved.summary["en"] == "failure rate 10%"
    assert resolved.fired_at == fired.ts
    assert resolved.fingerprint == fired.fingerprint


def test_findings_of_unknown_rules_are_ignored():
    r = rule()
    book = AlertBook({r.name: r}, DEFAULT_REPEAT)
    transitions, changed = book.process([finding(0, True, name="gone")])
    assert transitions == [] and changed == [] and book.live == {}


def test_fingerprint_is_stable_and_independent_of_label_order():
    a = fingerprint("r", {"source": "upload", "team": "x"})
    assert a == fingerprint("r", {"team": "x", "source": "upload"})
    # pinned: stored alert states are keyed by it, so it must not change between versions
    assert a == "284bb728f9eee7e1"
    assert a != fingerprint("r", {"source": "erp", "team": "x"})
    assert a != fingerprint("r2", {"source": "upload", "team": "x"})


def test_labels_in_another_order_are_the_same_alert():
    r = rule()
    book = AlertBook({r.name: r}, DEFAULT_REPEAT)
    first, _ = book.process([finding(0, True, labels={"source": "upload", "team": "t"})])
    again, _ = book.process([finding(5, True, labels={"team": "t", "source": "upload"})])
    assert len(first) == 1 and again == [] and len(book.live) == 1


def test_restore_from_json_continues_without_renotifying():
    r = rule("5m", "30m")
    book = AlertBook({r.name: r}, DEFAULT_REPEAT)
    assert run(book, [(0, True), (5, True), (10, True)]) == [(5, "firing", FIRST)]
    saved = json.loads(json.dumps([a.to_json() for a in book.live.values()]))

    restarted = AlertBook({r.name: r}, DEFAULT_REPEAT)
    restarted.restore(AlertState.from_json(d) for d in saved)
    assert [a.state for a in restarted.firing()] == ["firing"]
    # still firing after the restart: no second first notification; the repeat interval
    # counts from the notification before the restart; then it resolves once
    assert run(restarted, [(15, True), (30, True), (35, True), (40, False)]) == [
        (35, "firing", REPEAT), (40, "resolved", RESOLVED)]


def test_restore_keeps_a_pending_alerts_start():
    r = rule("10m")
    book = AlertBook({r.name: r}, DEFAULT_REPEAT)
    run(book, [(0, True)])
    restarted = AlertBook({r.name: r}, DEFAULT_REPEAT)
    restarted.restore(AlertState.from_json(a.to_json()) for a in book.live.values())
    assert run(restarted, [(5, True), (10, True)]) == [(10, "firing", FIRST)]


def test_restore_drops_alerts_of_rules_that_no_longer_exist():
    r = rule()
    book = AlertBook({r.name: r}, DEFAULT_REPEAT)
    run(book, [(0, True)])
    other = rule(name="renamed")
    restarted = AlertBook({other.name: other}, DEFAULT_REPEAT)
    restarted.restore(AlertState.from_json(a.to_json()) for a in book.live.values())
    assert restarted.live == {}


def test_step_after_a_cleared_or_resolved_state_starts_a_new_alert():
    # a stored state that is history (never fired, or resolved) must not be mistaken for a
    # live alert: an inactive verdict then must not send a "resolved" for a page never sent
    r = rule("10m")
    cleared = AlertState(fingerprint(r.name, LABELS), r.name, "rule", "critical", LABELS,
                         "cleared", T0, resolved_at=T0 + timedelta(minutes=5))
    assert step(cleared, finding(10, False), r, DEFAULT_REPEAT) == (None, None)
    new, tr = step(cleared, finding(10, True), r, DEFAULT_REPEAT)
    assert tr is None and new.state == "pending" and new.active_since == T0 + timedelta(minutes=10)
    resolved = AlertState(cleared.fingerprint, r.name, "rule", "critical", LABELS, "resolved",
                          T0, fired_at=T0, last_notified=T0, resolved_at=T0)
    assert step(resolved, finding(10, False), r, DEFAULT_REPEAT) == (None, None)


def escalating(after: str = "1h", severity: str = "warning") -> ThresholdRule:
    return ThresholdConfig.model_validate({
        "name": "upload_failure_rate", "type": "threshold", "source": "upload",
        "when": "failure_rate > 0.3", "severity": severity,
        "escalate": {"after": after, "to": "critical"}}).build(CONTEXT)


def test_a_warning_firing_longer_than_escalate_after_becomes_critical_once():
    r = escalating()
    book = AlertBook({r.name: r}, DEFAULT_REPEAT)
    out = []
    for minute in range(0, 100, 5):
        transitions, _ = book.process([finding(minute, minute < 90)])
        out += [(int((t.ts - T0).total_seconds() // 60), t.state, t.reason, t.severity)
                for t in transitions]
    assert out == [(0, "firing", FIRST, "warning"),
                   (60, "firing", ESCALATED, "critical"),  # an hour after it fired, not again
                   (90, "resolved", RESOLVED, "critical")]
    # a new alert of the rule starts at the rule's severity
    transitions, _ = book.process([finding(100, True)])
    assert [t.severity for t in transitions] == ["warning"]


def test_escalation_survives_a_restart():
    r = escalating("30m")
    book = AlertBook({r.name: r}, DEFAULT_REPEAT)
    run(book, [(0, True), (10, True)])
    restarted = AlertBook({r.name: r}, DEFAULT_REPEAT)
    restarted.restore(AlertState.from_json(json.loads(json.dumps(a.to_json())))
                      for a in book.live.values())
    assert run(restarted, [(25, True), (30, True), (35, True)]) == [(30, "firing", ESCALATED)]


def office_hours_rule() -> ThresholdRule:
    return ThresholdConfig.model_validate({
        "name": "upload_failure_rate", "type": "threshold", "source": "upload",
        "when": "failure_rate > 0.3",
        "active_hours": {"days": ["mon-fri"], "start": "08:00", "end": "20:00"}}).build(CONTEXT)


def test_outside_active_hours_a_finding_counts_as_inactive():
    r = office_hours_rule()
    book = AlertBook({r.name: r}, DEFAULT_REPEAT, "Asia/Shanghai")
    # T0 is Monday 09:00 in Shanghai; 660 minutes later is 20:00
    assert run(book, [(0, True), (200, True), (660, True), (700, True)]) == [
        (0, "firing", FIRST), (660, "resolved", RESOLVED)]
    # the next morning at 08:00 it may fire again
    assert run(book, [(1380, True)]) == [(1380, "firing", FIRST)]
