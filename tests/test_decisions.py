"""`run` and `replay` decide the same on the same lines: absence over a gap, early rules that
must not flap, a burst at a window's edge, resolved messages after a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.config import load_config
from agent.daemon import Daemon
from agent.detect.loader import load_rules
from agent.replay import UnreadableFile, match_files, replay
from tests.test_daemon import Agent, append, db_rows, wait_for

TZ = timezone(timedelta(hours=8))

RULES = """\
rules:
  - name: upload_silence
    type: absence
    source: upload
    match: {status: ok}
    for: 45m
    severity: critical
    summary: {en: "no successful upload for {silent_minutes} minutes"}
  - name: burst_early
    type: threshold
    source: upload
    when: "failed >= 3"
    early: true
    severity: warning
    summary: {en: "{failed} failed"}
  - name: burst
    type: threshold
    source: upload
    when: "failed >= 3"
    severity: warning
    summary: {en: "{failed} failed in the window"}
"""


def setup(tmp: Path, window: str = "5m", rules: str = RULES) -> Path:
    (tmp / "logs").mkdir(exist_ok=True)
    (tmp / "rules").mkdir(exist_ok=True)
    (tmp / "rules" / "r.yaml").write_text(rules, encoding="utf-8")
    config = tmp / "agent.yaml"
    config.write_text(textwrap.dedent(f"""\
        state_dir: state
        window: {window}
        lateness: 30s
        poll_interval: 200ms
        sources:
          - name: upload
            paths: ["logs/upload.log"]
            fields: {{ts: time, status: result}}
            values: {{status: {{成功: ok, 失败: failed}}}}
        rules: ["rules/*.yaml"]
        notify: {{language: en}}
        """), encoding="utf-8")
    return config


def line(ts: datetime, status: str = "成功") -> str:
    return json.dumps({"time": ts.isoformat(), "result": status}, ensure_ascii=False) + "\n"


def gap_and_burst(t0: datetime) -> str:
    """OK every 10 s for an hour, nothing for 90 minutes, OK again for 30 minutes; a burst of
    failures across a window boundary (3 before it, 3 after) in the second hour."""
    out = []
    t = t0
    while t < t0 + timedelta(hours=1):
        out.append((t, "成功"))
        t += timedelta(seconds=10)
    t = t0 + timedelta(hours=2, minutes=30)
    while t < t0 + timedelta(hours=3):
        out.append((t, "成功"))
        t += timedelta(seconds=10)
    edge = t0 + timedelta(hours=2, minutes=40)
    out += [(edge + timedelta(seconds=s), "失败") for s in (-3, -2, -1, 1, 2, 3)]
    return "".join(line(ts, st) for ts, st in sorted(out))


def replayed(config: Path, log: Path) -> list[tuple[datetime, str, str]]:
    result = subprocess.run([sys.executable, "-m", "agent", "replay", "-c", str(config),
                             "--format", "jsonl", str(log)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode in (0, 1), result.stderr
    records = [json.loads(x) for x in result.stdout.splitlines()]
    # an alert one line raised names that line and its file
    for r in records:
        if r["rule"] == "burst_early" and r["state"] == "firing":
            assert r["file"] == str(log)
            assert "失败" in log.read_text(encoding="utf-8").splitlines()[r["line"] - 1]
    return [(datetime.fromisoformat(r["ts"]), r["rule"], r["state"]) for r in records]


def test_absence_over_a_gap_fires_in_replay_and_run_gives_the_same_transitions(
        tmp_path, agents):
    config = setup(tmp_path)
    now = datetime.now(TZ)
    t0 = (now - timedelta(hours=3, minutes=2)).replace(second=0, microsecond=0)
    t0 -= timedelta(minutes=t0.minute % 5)
    log = tmp_path / "logs" / "upload.log"
    log.write_text(gap_and_burst(t0), encoding="utf-8")

    offline = replayed(config, log)
    silence = [(ts, state) for ts, rule, state in offline if rule == "upload_silence"]
    assert silence == [
        # last OK at t0+59:50; the window ending t0+1:45 is the first silent for 45 min
        (t0 + timedelta(hours=1, minutes=45), "firing"),
        # the first OK after the gap (t0+2:30) ends it with the window holding it
        (t0 + timedelta(hours=2, minutes=35), "resolved"),
    ]
    edge = t0 + timedelta(hours=2, minutes=40)
    # the third failure, one second before the boundary, fires the early rule at once; the
    # window-end rule fires at the boundary; both are over with the first quiet window
    assert [(ts, state) for ts, rule, state in offline if rule == "burst_early"] == [
        (edge - timedelta(seconds=1), "firing"), (edge + timedelta(minutes=10), "resolved")]
    assert [(ts, state) for ts, rule, state in offline if rule == "burst"] == [
        (edge, "firing"), (edge + timedelta(minutes=10), "resolved")]

    agent = Agent(config)
    agents.append(agent)
    wait_for(lambda: len(db_rows(config, "SELECT * FROM alert_log")) >= len(offline),
             what="the live agent's transitions")
    assert agent.stop() == 0
    live = [(datetime.fromisoformat(ts), rule, state) for ts, rule, state in db_rows(
        config, "SELECT ts, rule, state FROM alert_log WHERE reason != "
                "'repeat interval elapsed' ORDER BY id")]
    assert sorted(live) == sorted(offline)
    # and in each, no alert's transitions go back in time
    for seq in (live, offline):
        for rule in {r for _, r, _ in seq}:
            times = [ts for ts, r, _ in seq if r == rule]
            assert times == sorted(times)


FLAP = """\
rules:
  - name: failures
    type: threshold
    source: upload
    when: "failed >= 3"
    early: true
    severity: critical
    summary: {en: "{failed} failed"}
"""

T10 = datetime(2026, 11, 2, 10, 0, tzinfo=TZ)
FAILS = [T10 + timedelta(seconds=s) for s in (5, 10, 15, 40, 60)]


def flap_lines() -> list[tuple[datetime, str]]:
    ok = [T10 + timedelta(seconds=s) for s in range(-120, 181, 20)]
    return sorted([(t, "成功") for t in ok] + [(t, "失败") for t in FAILS])


def test_an_early_firing_is_not_resolved_by_the_window_before_it_or_the_one_holding_it(
        tmp_path):
    config = setup(tmp_path, window="1m", rules=FLAP)
    log = tmp_path / "logs" / "upload.log"
    log.write_text("".join(line(t, s) for t, s in flap_lines()), encoding="utf-8")
    loaded = load_config(config)
    result = replay(loaded, load_rules(loaded.rule_globs(), ["upload"], loaded.config.window),
                    match_files(loaded, [str(log)]))
    assert [(t.state, t.ts) for t in result.transitions] == [
        ("firing", T10 + timedelta(seconds=15)),  # the third failure
        # [10:00, 10:01) held 4 failures; [10:01, 10:02) holds one: over
        ("resolved", T10 + timedelta(minutes=2)),
    ]


def test_live_early_firing_does_not_flap_when_the_window_before_it_closes_later(tmp_path):
    config = setup(tmp_path, window="1m", rules=FLAP)
    log = tmp_path / "logs" / "upload.log"
    log.touch()
    seen: list[tuple[str, datetime]] = []
    lines = flap_lines()
    with open(tmp_path / "console.txt", "w", encoding="utf-8") as console:
        daemon = Daemon(config, out=console)
        try:
            # the agent reads each line as it is written, and its clock runs 1 s behind
            for ts, status in lines:
                append(log, line(ts, status))
                daemon.step(now=ts + timedelta(seconds=1))
            daemon.step(now=lines[-1][0] + timedelta(minutes=2))
        finally:
            daemon.shutdown()
    seen = [(state, datetime.fromisoformat(ts)) for ts, state in db_rows(
        config, "SELECT ts, state FROM alert_log ORDER BY id")]
    assert seen == [("firing", T10 + timedelta(seconds=15)),
                    ("resolved", T10 + timedelta(minutes=2))]


def test_a_resolved_message_after_a_restart_shows_the_recovered_window_and_how_long(tmp_path):
    rules = FLAP.replace("early: true", "early: false").replace(
        '{en: "{failed} failed"}', '{en: "{failed} of {count} failed"}')
    config = setup(tmp_path, window="1m", rules=rules)
    log = tmp_path / "logs" / "upload.log"
    lines = flap_lines()
    half = [x for x in lines if x[0] < T10 + timedelta(seconds=50)]
    log.write_text("".join(line(t, s) for t, s in half), encoding="utf-8")
    with open(tmp_path / "console.txt", "w", encoding="utf-8") as console:
        first = Daemon(config, out=console)
        try:
            first.step(now=T10 + timedelta(minutes=1, seconds=31))  # [10:00, 10:01) fires
        finally:
            first.shutdown()
        append(log, "".join(line(t, s) for t, s in lines[len(half):]))
        second = Daemon(config, out=console)
        try:
            second.step(now=T10 + timedelta(minutes=5))
        finally:
            second.shutdown()
    text = (tmp_path / "console.txt").read_text(encoding="utf-8").splitlines()
    firing = [t for t in text if "FIRING" in t]
    resolved = [t for t in text if "RESOLVED" in t]
    assert len(firing) == 1 and "4 of" in firing[0]  # 4 failures in [10:00, 10:01)
    assert len(resolved) == 1
    # [10:01, 10:02) holds one failure of 4 lines: the message shows that, and the duration
    assert "resolved after 1 min; now: 1 of 4 failed" in resolved[0]


def test_a_new_burst_within_the_lateness_of_a_quiet_window_keeps_the_alert_firing(tmp_path):
    # failures at 10:00:05/10/15 fire; [10:01, 10:02) is quiet but closes (at 10:02:30) after
    # the early rule found the condition true again at 10:02:03: that window cannot end it
    config = setup(tmp_path, window="1m", rules=FLAP)
    log = tmp_path / "logs" / "upload.log"
    fails = [T10 + timedelta(seconds=s) for s in (5, 10, 15, 121, 122, 123)]
    ok = [T10 + timedelta(seconds=s) for s in range(-120, 301, 20)]
    lines = sorted([(t, "成功") for t in ok] + [(t, "失败") for t in fails])
    log.write_text("".join(line(t, s) for t, s in lines), encoding="utf-8")
    loaded = load_config(config)
    result = replay(loaded, load_rules(loaded.rule_globs(), ["upload"], loaded.config.window),
                    match_files(loaded, [str(log)]))
    assert [(t.state, t.ts) for t in result.transitions] == [
        ("firing", T10 + timedelta(seconds=15)),
        ("resolved", T10 + timedelta(minutes=4)),  # [10:03, 10:04) is the first quiet window after
    ]


def test_replay_of_a_rotated_pair_decides_as_replay_of_the_whole_file(tmp_path):
    config = setup(tmp_path)
    t0 = datetime(2026, 11, 2, 8, 0, tzinfo=TZ)
    whole = gap_and_burst(t0).splitlines(keepends=True)
    log = tmp_path / "logs" / "upload.log"
    log.write_text("".join(whole), encoding="utf-8")
    offline = replayed(config, log)
    # logrotate's pair: the older half in upload.log.1 (older mtime), named after the live file
    rotated, live = tmp_path / "logs" / "upload.log.1", tmp_path / "logs" / "upload.log"
    rotated.write_text("".join(whole[:len(whole) // 2]), encoding="utf-8")
    live.write_text("".join(whole[len(whole) // 2:]), encoding="utf-8")
    os.utime(rotated, (time.time() - 3600, time.time() - 3600))
    result = subprocess.run([sys.executable, "-m", "agent", "replay", "-c", str(config),
                             "--format", "jsonl", "--source", "upload", str(live), str(rotated)],
                            capture_output=True, text=True, timeout=60)
    pair = [(datetime.fromisoformat(r["ts"]), r["rule"], r["state"])
            for r in map(json.loads, result.stdout.splitlines())]
    assert pair == offline and len(offline) == 6


def test_replay_closes_the_window_of_a_last_line_after_a_gap(tmp_path):
    config = setup(tmp_path)
    t0 = datetime(2026, 11, 2, 8, 0, tzinfo=TZ)
    lines = [t0 + timedelta(seconds=10 * i) for i in range(360)]  # 08:00 .. 08:59:50
    lines.append(t0 + timedelta(hours=2, minutes=30))  # one line after the gap, then the end
    log = tmp_path / "logs" / "upload.log"
    log.write_text("".join(line(t) for t in lines), encoding="utf-8")
    got = [(ts, state) for ts, rule, state in replayed(config, log) if rule == "upload_silence"]
    assert got == [(t0 + timedelta(minutes=105), "firing"),
                   (t0 + timedelta(hours=2, minutes=35), "resolved")]


def test_replay_of_a_file_that_cannot_be_read_is_an_error_not_a_silent_hole(tmp_path):
    config = setup(tmp_path)
    log = tmp_path / "logs" / "upload.log"
    log.write_text(line(datetime(2026, 11, 2, 8, 0, tzinfo=TZ)), encoding="utf-8")
    loaded = load_config(config)
    pairs = match_files(loaded, [str(log)])
    log.unlink()  # gone between naming it and reading it
    with pytest.raises(UnreadableFile, match="upload.log"):
        replay(loaded, [], pairs)
