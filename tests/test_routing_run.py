"""`run` and `replay` send the same messages on the same lines: grouping and inhibition in the
real daemon (a subprocess, and the loop stepped line by line as lines are written) against
a replay of the file."""

from __future__ import annotations

import json
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from agent.config import load_config
from agent.daemon import Daemon
from agent.detect.loader import load_rules
from agent.replay import match_files, replay
from agent.routing.router import digest
from agent.types import Notice
from tests.test_daemon import Agent, append, db_rows, wait_for

TZ = timezone(timedelta(hours=8))

RULES = """\
rules:
  - name: outage
    type: threshold
    source: upload
    when: "timeout >= 3"
    severity: critical
    summary: {en: "{timeout} uploads timed out"}
  - name: failures
    type: threshold
    source: upload
    when: "failed >= 3"
    severity: warning
    summary: {en: "{failed} uploads failed"}
"""


def setup(tmp: Path, urls: tuple[str, ...] = ()) -> Path:
    (tmp / "logs").mkdir(exist_ok=True)
    (tmp / "rules").mkdir(exist_ok=True)
    (tmp / "rules" / "r.yaml").write_text(RULES, encoding="utf-8")
    config = tmp / "agent.yaml"
    config.write_text(textwrap.dedent("""\
        state_dir: state
        window: 1m
        lateness: 40s
        poll_interval: 200ms
        sources:
          - name: upload
            paths: ["logs/upload.log"]
            fields: {ts: time, status: result}
            values: {status: {成功: ok, 失败: failed, 超时: timeout}}
        rules: ["rules/*.yaml"]
        notify: {language: en, group_wait: 30s, group_interval: 2m, urls: URLS}
        inhibit:
          - source: {rule: outage}
            target: {rule: failures}
            linger: 3m
        """).replace("URLS", json.dumps(list(urls))), encoding="utf-8")
    return config


def day(t0: datetime) -> list[tuple[datetime, str]]:
    """30 minutes of uploads every 10 s: failures in minutes 3-6 (told), an outage in 12-16
    with failures in 13-18 (muted by it, and by its 3 minutes of linger: never told), and
    failures again in 22-24 (told)."""
    out = []
    for s in range(0, 30 * 60, 10):
        minute = s // 60
        status = "成功"
        if 12 <= minute < 16 and s % 20 == 0:
            status = "超时"
        elif (3 <= minute < 6 or 13 <= minute < 18 or 22 <= minute < 24) and s % 20 == 10:
            status = "失败"
        out.append((t0 + timedelta(seconds=s), status))
    return out


def text(lines: list[tuple[datetime, str]]) -> str:
    return "".join(json.dumps({"time": t.isoformat(), "result": s}, ensure_ascii=False) + "\n"
                   for t, s in lines)


def replayed(config: Path, log: Path) -> tuple[list[tuple[str, str, str]], list[dict[str, Any]]]:
    """The replay's transitions, and the messages its router decides over them."""
    loaded = load_config(config)
    rules = load_rules(loaded.rule_globs(), ["upload"], loaded.config.window)
    result = replay(loaded, rules, match_files(loaded, [str(log)]))
    return ([(t.ts.isoformat(), t.rule, t.state) for t in result.transitions],
            [digest(n) for n in result.notices])


def test_replay_of_the_day_groups_and_inhibits(tmp_path):
    config = setup(tmp_path)
    t0 = datetime(2026, 11, 2, 10, 0, tzinfo=TZ)
    log = tmp_path / "logs" / "upload.log"
    log.write_text(text(day(t0)), encoding="utf-8")
    _, notices = replayed(config, log)
    assert [(n["ts"], n["reason"], n["firing"], n["resolved"], n["muted"]) for n in notices] == [
        ((t0 + timedelta(minutes=4, seconds=30)).isoformat(), "first notification",
         ["failures"], [], []),
        # resolved at 10:07, told at the group's next flush (every 2 minutes from 4:30)
        ((t0 + timedelta(minutes=8, seconds=30)).isoformat(), "resolved", [], ["failures"], []),
        ((t0 + timedelta(minutes=13, seconds=30)).isoformat(), "first notification",
         ["outage"], [], []),
        # the failures it muted (14-19) are listed with its resolution
        ((t0 + timedelta(minutes=17, seconds=30)).isoformat(), "resolved", [], ["outage"],
         ["failures"]),
        ((t0 + timedelta(minutes=23, seconds=30)).isoformat(), "first notification",
         ["failures"], [], []),
        ((t0 + timedelta(minutes=25, seconds=30)).isoformat(), "resolved", [], ["failures"],
         []),
    ]


def test_run_as_a_subprocess_decides_the_same_messages_as_replay(tmp_path, agents, hooks):
    hook = hooks()
    config = setup(tmp_path, (hook.url(),))
    now = datetime.now(TZ)
    t0 = (now - timedelta(minutes=32)).replace(second=0, microsecond=0)
    log = tmp_path / "logs" / "upload.log"
    log.write_text(text(day(t0)), encoding="utf-8")
    transitions, notices = replayed(config, log)
    assert len(notices) == 6

    def router_state() -> dict[str, Any]:
        rows = db_rows(config, "SELECT value FROM engine_state WHERE key = 'engine'")
        return json.loads(rows[0][0]).get("router", {}) if rows else {}

    agent = Agent(config)
    agents.append(agent)
    wait_for(lambda: len(router_state().get("recent", ())) >= len(notices),
             what="the live agent's messages")
    # and the webhook got exactly those messages: one per group flush, not one per transition
    wait_for(lambda: len(hook.posts) >= len(notices), what="the deliveries")
    time.sleep(0.5)
    assert agent.stop() == 0
    assert router_state()["recent"] == notices
    bodies = [json.dumps(body, ensure_ascii=False) for _, body in hook.posts]
    assert len(bodies) == len(notices) < len(transitions)
    assert "outage" in bodies[2] and "FIRING critical" in bodies[2]
    live = [tuple(r) for r in db_rows(config, "SELECT ts, rule, state FROM alert_log "
                                              "ORDER BY id")]
    assert live == transitions


def brief(notices: list[Notice]) -> list[dict[str, Any]]:
    return [digest(n) for n in notices]


def test_the_daemon_loop_stepped_as_lines_arrive_sends_what_replay_decides(tmp_path):
    config = setup(tmp_path)
    t0 = datetime(2026, 11, 2, 10, 0, tzinfo=TZ)
    log = tmp_path / "logs" / "upload.log"
    log.touch()
    lines = day(t0)
    with open(tmp_path / "console.txt", "w", encoding="utf-8") as console:
        daemon = Daemon(config, out=console)
        try:
            # each line read as it is written, the clock a second behind it: a group's flush
            # (at :30) falls within the lateness (40 s) a window's verdict waits for
            for line in lines:
                append(log, text([line]))
                daemon.step(now=line[0] + timedelta(seconds=1))
            daemon.step(now=lines[-1][0] + timedelta(minutes=5))
            sent = daemon.engine.router.state()["recent"]  # the messages, as `status` reads
        finally:
            daemon.shutdown()
    assert sent == replayed(config, log)[1]
