"""`run` and `replay` decide the same on the same syslog lines for the keyed rule types: a
pattern rule per host and per unit, a new term, a threshold per host."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests.test_daemon import Agent, db_rows, wait_for

TZ = timezone(timedelta(hours=8))

RULES = """\
rules:
  - name: refused
    type: pattern
    source: system
    match: 'Connection refused'
    threshold: 3
    window: 15m
    group_by: [host]
    summary: {en: "{host}: {hits} refused, last {last_match}"}
  - name: unit_failed
    type: pattern
    source: system
    match: '(?P<unit>invoice-\\w+\\.service): Failed'
    group_by: [unit]
    summary: {en: "{unit} failed"}
  - name: new_host
    type: new_term
    source: system
    field: host
    learn: 30m
    summary: {en: "first line from {host}"}
  - name: chatty_host
    type: threshold
    source: system
    when: "count >= 20"
    group_by: [host]
    summary: {en: "{host} logged {count} lines"}
"""


def setup(tmp: Path) -> Path:
    (tmp / "logs").mkdir(exist_ok=True)
    (tmp / "rules").mkdir(exist_ok=True)
    (tmp / "rules" / "r.yaml").write_text(RULES, encoding="utf-8")
    config = tmp / "agent.yaml"
    config.write_text(textwrap.dedent("""\
        state_dir: state
        window: 5m
        lateness: 30s
        poll_interval: 200ms
        sources:
          - name: system
            paths: ["logs/syslog"]
            format: syslog
        rules: ["rules/*.yaml"]
        notify: {language: en}
        """), encoding="utf-8")
    return config


def day(t0: datetime) -> str:
    """Three hours of syslog: a heartbeat per minute from two hosts; refused connections on
    fp-a in the first hour (three within 15 minutes at its end) and one stray on fp-b; an
    invoice unit failing twice; a third host appearing after the learning period, and a
    burst of lines from it; quiet for the last hour, so every alert has ended."""
    out: list[tuple[datetime, str, str, str]] = []
    for m in range(180):
        for host in ("fp-a", "fp-b"):
            out.append((t0 + timedelta(minutes=m, seconds=7), host, "invoice-sync[12]",
                        "heartbeat ok"))
    for m in (20, 48, 52, 58):
        out.append((t0 + timedelta(minutes=m, seconds=30), "fp-a", "invoice-sync[12]",
                    "connect to platform 10.1.2.3:443 failed: Connection refused"))
    out.append((t0 + timedelta(minutes=50, seconds=1), "fp-b", "invoice-sync[12]",
                "connect to platform 10.1.2.3:443 failed: Connection refused"))
    for m in (64, 101):
        out.append((t0 + timedelta(minutes=m, seconds=3), "fp-a", "systemd[1]",
                    "invoice-sync.service: Failed with result 'exit-code'."))
    for s in range(0, 120, 5):  # 24 lines in two minutes from a new host
        out.append((t0 + timedelta(minutes=75, seconds=s), "fp-c", "kernel", "eth0: link up"))
    out.sort()
    return "".join(f"{ts.isoformat()} {host} {tag}: {msg}\n" for ts, host, tag, msg in out)


def test_keyed_rules_decide_the_same_in_replay_and_in_a_running_agent(tmp_path, agents):
    config = setup(tmp_path)
    now = datetime.now(TZ)
    t0 = (now - timedelta(hours=3, minutes=5)).replace(second=0, microsecond=0)
    t0 -= timedelta(minutes=t0.minute % 5)
    log = tmp_path / "logs" / "syslog"
    log.write_text(day(t0), encoding="utf-8")

    done = subprocess.run([sys.executable, "-m", "agent", "replay", "-c", str(config),
                           "--format", "jsonl", str(log)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode in (0, 1), done.stderr
    records = [json.loads(x) for x in done.stdout.splitlines()]
    offline = [(datetime.fromisoformat(r["ts"]), r["rule"], r["state"],
                tuple(sorted(r["labels"].items()))) for r in records]
    by_rule = {}
    for ts, rule, state, labels in offline:
        by_rule.setdefault(rule, []).append((ts - t0, state, dict(labels)))
    m = timedelta(minutes=1)
    assert [(ts, state, labels["host"]) for ts, state, labels in by_rule["refused"]] == [
        # refused at :48, :52 and :58 on fp-a: three within [:45, :60); the :20 one is long
        # gone. fp-b's one line is no alert
        (60 * m, "firing", "fp-a"), (65 * m, "resolved", "fp-a")]
    assert [(ts, state, labels["unit"]) for ts, state, labels in by_rule["unit_failed"]] == [
        (65 * m, "firing", "invoice-sync.service"), (70 * m, "resolved", "invoice-sync.service"),
        (105 * m, "firing", "invoice-sync.service"),
        (110 * m, "resolved", "invoice-sync.service")]
    # fp-a and fp-b were learnt in the first 30 minutes; fp-c is news at its first line and
    # over with the next window
    assert [(ts, state, labels["host"]) for ts, state, labels in by_rule["new_host"]] == [
        (75 * m, "firing", "fp-c"), (85 * m, "resolved", "fp-c")]
    assert [(ts, state, labels["host"]) for ts, state, labels in by_rule["chatty_host"]] == [
        (80 * m, "firing", "fp-c"), (85 * m, "resolved", "fp-c")]
    firing = next(r for r in records if r["rule"] == "refused")
    assert firing["summary"] == ("fp-a: 3 refused, last connect to platform "
                                 "10.1.2.3:443 failed: Connection refused")

    agent = Agent(config)
    agents.append(agent)
    wait_for(lambda: len(db_rows(config, "SELECT * FROM alert_log")) >= len(offline),
             what="the live agent's transitions")
    assert agent.stop() == 0
    live = [(datetime.fromisoformat(ts), rule, state, tuple(sorted(json.loads(labels).items())))
            for ts, rule, state, labels in db_rows(
                config, "SELECT ts, rule, state, labels FROM alert_log WHERE reason != "
                        "'repeat interval elapsed' ORDER BY id")]
    assert sorted(live) == sorted(offline)
