"""Inhibition (with linger and `equal`), silences and maintenance windows: what is held back,
what is told afterwards, and the records of what was muted."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from agent.routing.config import InhibitRule, MaintenanceWindow
from agent.routing.router import Router
from agent.types import Silence
from tests.test_routing_groups import T0, at, brief, feed, settings, tr

OUTAGE_MUTES = InhibitRule.model_validate({
    "source": {"rule": "upload_outage"},
    "target": {"rule": ["upload_latency", "invoice_not_synced"]},
    "linger": "15m"})


def test_an_outage_mutes_the_alerts_it_causes_and_its_message_lists_them():
    router = Router(settings(inhibit=(OUTAGE_MUTES,)))
    notices = feed(router, [tr(0, "upload_outage", severity="critical"),
                            tr(0.2, "upload_latency"), tr(3, "invoice_not_synced")], 10)
    assert brief(notices) == [(0.5, "first notification", ["upload_outage"], [])]
    assert [(m.rule, m.why, m.by) for m in notices[0].muted] == [
        ("upload_latency", "inhibited", "upload_outage")]
    # invoice_not_synced, muted at the 5.5 flush, is listed on the outage's next message
    notices = feed(router, [tr(20, "upload_outage", "resolved", severity="critical")], 21)
    assert brief(notices) == [(20.5, "resolved", [], ["upload_outage"])]
    assert [m.rule for m in notices[0].muted] == ["invoice_not_synced"]
    assert [(m.rule, m.state, m.why) for m in router.take_muted()] == [
        ("upload_latency", "firing", "inhibited"), ("invoice_not_synced", "firing", "inhibited")]


def test_linger_keeps_targets_muted_after_the_source_resolved_then_tells_what_still_fires():
    router = Router(settings(inhibit=(OUTAGE_MUTES,)))
    feed(router, [tr(0, "upload_outage"), tr(1, "upload_latency"),
                  tr(2, "invoice_not_synced")], 5)
    router.take_notices()
    # the outage resolves at 20: linger until 35. Latency recovers at 30 (never told);
    # a target firing only after the outage, within the linger, is muted too
    notices = feed(router, [tr(20, "upload_outage", "resolved"), tr(25, "upload_latency",
                                                                    "resolved", team="x"),
                            tr(30, "upload_latency", "resolved")], 34)
    assert brief(notices) == [(20.5, "resolved", [], ["upload_outage"])]
    mutes = {m.rule: m.until for m in router.muted_now()}
    assert mutes == {"invoice_not_synced": at(35)}
    # invoice_not_synced still fires when the linger ends: told at the next flush
    assert brief(feed(router, [], 50)) == [(35.5, "update", ["invoice_not_synced"], [])]
    assert ("upload_latency", "resolved") in [(m.rule, m.state) for m in router.take_muted()]


def test_inhibition_needs_equal_labels_and_an_alert_does_not_mute_itself():
    per_host = InhibitRule.model_validate({
        "source": {"rule": "host_down"}, "target": {"severity": "warning"},
        "equal": ["host"]})
    router = Router(settings(inhibit=(per_host,), group_by=("host",)))
    notices = feed(router, [
        tr(0, "host_down", severity="warning", host="a"),  # matches both sides: not muted
        tr(0.1, "disk_slow", host="a"), tr(0.2, "disk_slow", host="b")], 10)
    assert sorted((n.group["host"], [t.rule for t in n.firing]) for n in notices) == [
        ("a", ["host_down"]), ("b", ["disk_slow"])]


def silence(sid: str, start: float, end: float, **matchers: str) -> Silence:
    return Silence(sid, matchers, at(start), at(end), comment="deploying")


def test_a_silence_mutes_while_active_and_the_alert_is_told_after_it_ends():
    router = Router(settings())
    router.set_silences([silence("s1", -10, 60, rule="upload_latency"),
                         silence("s2", 100, 200, rule="upload_latency")])  # later: no effect
    notices = feed(router, [tr(0, "upload_latency"), tr(2, "erp_sync_failures")], 50)
    # the group began at 0 (its flush at 0.5 had nothing to say): erp_sync_failures waits
    # for the group's next flush, as in Alertmanager
    assert brief(notices) == [(5.5, "first notification", ["erp_sync_failures"], [])]
    assert [(m.rule, m.why, m.by) for m in router.take_muted()] == [
        ("upload_latency", "silenced", "s1")]
    assert [(m.rule, m.by, m.until) for m in router.muted_now()] == [
        ("upload_latency", "s1", at(60))]
    # ended at 60: the next flush on the group's cadence tells it
    assert brief(feed(router, [], 70)) == [
        (60.5, "update", ["upload_latency", "erp_sync_failures"], [])]


def test_a_silence_expired_early_lets_the_alert_through_at_the_next_flush():
    router = Router(settings())
    router.set_silences([silence("s1", 0, 600, team="finance-it")])
    assert feed(router, [tr(0, "upload_latency")], 17) == []
    router.set_silences([silence("s1", 0, 17, team="finance-it")])  # `silence expire s1`
    assert brief(feed(router, [], 30)) == [(20.5, "first notification", ["upload_latency"], [])]


def test_a_resolution_held_back_by_a_silence_is_told_when_it_ends():
    router = Router(settings())
    feed(router, [tr(0, "upload_latency")], 1)
    router.take_notices()
    router.set_silences([silence("s1", 2, 30, rule="upload_latency")])
    assert feed(router, [tr(4, "upload_latency", "resolved")], 29) == []
    assert brief(feed(router, [], 40)) == [(30.5, "resolved", [], ["upload_latency"])]


SHANGHAI = timezone(timedelta(hours=8))
HALF = timedelta(seconds=30)


def window(**options) -> MaintenanceWindow:
    return MaintenanceWindow.model_validate({"name": "platform", "grace": "15m", **options})


def sat(h: int, m: int = 0) -> datetime:  # 2026-11-07 is a Saturday
    return datetime(2026, 11, 7, h, m, tzinfo=SHANGHAI)


def minutes(t: datetime) -> float:
    return (t - T0).total_seconds() / 60


def test_a_weekly_window_across_midnight_mutes_and_grace_then_tells_what_still_fires():
    friday_night = window(weekly=[{"days": ["fri"], "start": "22:00", "end": "06:00"}])
    router = Router(settings(maintenance=(friday_night,), timezone="Asia/Shanghai"))
    # fires Saturday 01:00 (inside), another 05:50 and resolved 06:10 (within the grace)
    notices = feed(router, [tr(minutes(sat(1)), "upload_outage"),
                            tr(minutes(sat(5, 50)), "upload_latency"),
                            tr(minutes(sat(6, 10)), "upload_latency", "resolved")],
                   minutes(sat(6, 14)))
    assert notices == []
    assert {(m.why, m.by) for m in router.take_muted()} == {("maintenance", "platform")}
    assert [m.until for m in router.muted_now()] == [sat(6, 15)]
    (n,) = feed(router, [], minutes(sat(7)))
    # the group's flushes fall at :00:30, :05:30, ...: the first after 06:15
    assert ([t.rule for t in n.firing], n.ts) == (["upload_outage"], sat(6, 15) + HALF)


def test_a_weekly_window_holds_only_on_its_days():
    friday_night = window(weekly=[{"days": ["fri"], "start": "22:00", "end": "06:00"}])
    router = Router(settings(maintenance=(friday_night,)))
    thursday = datetime(2026, 11, 5, 23, 0, tzinfo=SHANGHAI)
    (n,) = feed(router, [tr(minutes(thursday), "upload_outage")], minutes(thursday) + 5)
    assert n.reason == "first notification"


def test_dated_window_in_its_own_time_zone_and_matchers():
    new_year = window(dates=[{"start": "2026-12-31 20:00", "end": "2027-01-01 08:00"}],
                      timezone="Europe/Berlin", match={"team": "finance-it"}, grace="0s")
    router = Router(settings(maintenance=(new_year,), group_by=("team",)))
    # 2027-01-01 03:00 in Shanghai is 2026-12-31 20:00 in Berlin: the window has just begun
    t = datetime(2027, 1, 1, 3, 0, tzinfo=SHANGHAI)
    notices = feed(router, [tr(minutes(t), "upload_outage"),
                            tr(minutes(t), "disk_full", team="ops")], minutes(t) + 10)
    assert [n.group for n in notices] == [{"team": "ops"}]
    assert [m.until for m in router.muted_now()] == [
        datetime(2027, 1, 1, 8, 0, tzinfo=timezone(timedelta(hours=1)))]
    # Berlin 08:00 is Shanghai 15:00: told at the first flush from then on
    end = datetime(2027, 1, 1, 15, 0, tzinfo=SHANGHAI)
    (n,) = feed(router, [], minutes(end) + 10)
    assert n.group == {"team": "finance-it"} and end <= n.ts < end + timedelta(minutes=5)
