"""The demo day's messages: the 10:00 outage makes one message for its team and one for its
resolution, with the alerts it caused held back, instead of one per rule."""

from __future__ import annotations

from datetime import time

import pytest

from agent.demo import prepare
from agent.replay import configured_files, replay
from agent.types import Muted, Notice, Transition
from agent.wiring import load_all


@pytest.fixture(scope="module")
def demo_day(tmp_path_factory) -> tuple[list[Notice], list[Muted], list[Transition]]:
    """The demo's simulated day replayed as `invoice-agent demo` does: the messages its
    engine's router made, what it held back, every transition."""
    config, _ = prepare(tmp_path_factory.mktemp("demo"))
    loaded, rules = load_all(config, notify=False, batch=True)
    result = replay(loaded, rules, configured_files(loaded))
    return result.notices, result.muted, result.transitions


def between(notices: list[Notice], start: time, end: time) -> list[Notice]:
    return [n for n in notices if start <= n.ts.time() < end]


def finance(notices: list[Notice]) -> list[Notice]:
    return [n for n in notices if n.group == {"team": "finance-it"}]


def test_the_outage_is_one_message_and_its_resolution(demo_day):
    notices, muted, _ = demo_day
    first, last = finance(between(notices, time(10), time(11)))
    assert first.reason == "first notification" and first.severity == "critical"
    assert [t.rule for t in first.firing] == ["upload_outage"]
    # the refused connections and the model's alert at 10:10 are the outage's doing: held
    # back, listed on its message
    assert sorted((m.rule, m.why, m.by) for m in first.muted) == [
        ("model_anomaly", "inhibited", "upload_outage"),
        ("platform_connection_errors", "inhibited", "upload_outage")]
    assert last.reason == "resolved" and [t.rule for t in last.resolved] == ["upload_outage"]
    assert last.firing == ()
    # the model resolved at 10:45, within the outage's linger, without anyone told it fired
    assert ("model_anomaly", "resolved", "inhibited") in [
        (m.rule, m.state, m.why) for m in muted if m.ts.time() < time(11)]


def test_the_day_makes_fewer_messages_than_transitions_and_never_names_a_muted_alert(
        demo_day):
    notices, muted, transitions = demo_day
    # one message per transition before grouping; now several alerts share a message
    assert 0 < len(notices) < len(transitions)
    assert all(n.news for n in notices)
    assert [n.ts for n in notices] == sorted(n.ts for n in notices)
    held = {(m.fingerprint, m.ts) for m in muted if m.state == "firing"}
    shown = {(t.fingerprint, t.ts) for n in notices for t in n.firing}
    assert held and not held & shown


def test_replay_notifications_prints_the_messages_and_what_was_held_back(tmp_path, demo_day):
    import json
    import subprocess
    import sys

    notices, muted, _ = demo_day
    config, _ = prepare(tmp_path)
    run = [sys.executable, "-m", "agent", "replay", "-c", str(config), "--notifications",
           "--language", "en"]
    jsonl = subprocess.run(run + ["--format", "jsonl"], capture_output=True, text=True,
                           timeout=300)
    rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert len(rows) == len(notices)
    assert rows[0]["firing"] == ["upload_outage"]
    assert rows[0]["muted"] == [m.rule for m in notices[0].muted]
    text = subprocess.run(run, capture_output=True, text=True, timeout=300).stdout
    held = [line for line in text.splitlines() if line.startswith("not sent: ")]
    assert len(held) == len(muted)
    assert "model_anomaly firing (inhibited by upload_outage)" in text
