"""`invoice-agent run` as a real subprocess: appended lines, alerts, signals, kill -9, rotation."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

from agent.simulator import simulate

RULES = """
rules:
  - name: upload_failed
    type: threshold
    source: upload
    when: "failed >= 3"
    severity: critical
    summary: {zh: "上传失败 {failed} 笔", en: "{failed} uploads failed"}
"""


def layout(tmp: Path, *, urls: list[str] = (), window: str = "2s", rules: str = RULES,
           batch_lines: int = 20000, paths: str = "logs/upload*.log") -> Path:
    (tmp / "logs").mkdir(exist_ok=True)
    (tmp / "rules").mkdir(exist_ok=True)
    (tmp / "rules" / "r.yaml").write_text(rules, encoding="utf-8")
    cfg = {
        "state_dir": "state", "window": window, "lateness": "1s", "poll_interval": "200ms",
        "batch_lines": batch_lines,
        "sources": [{"name": "upload", "paths": [paths],
                     "fields": {"ts": "time", "latency_ms": "cost", "status": "result",
                                "error_code": "code", "invoice_no": "fphm"},
                     "values": {"status": {"成功": "ok", "失败": "failed", "超时": "timeout"}}}],
        "rules": ["rules/*.yaml"],
        # a message per change, at once: the tests watch each transition arrive
        "notify": {"urls": list(urls), "language": "en", "group_wait": "0s",
                   "group_interval": "1s"},
    }
    path = tmp / "agent.yaml"
    path.write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")  # JSON is YAML
    return path


class Agent:
    """`python -m agent run` with stdout/stderr in files (a pipe could fill and block it)."""

    def __init__(self, config: Path):
        self.config = config
        self.out = config.parent / f"out-{time.monotonic_ns()}.txt"
        self.err = self.out.with_suffix(".err")
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "-c", str(config)],
                                         stdout=o, stderr=e)
        wait_for(lambda: "running:" in self.stderr(), what="the agent to start", proc=self.proc)

    def stdout(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=15)


def wait_for(cond: Callable[[], object], timeout: float = 20.0, what: str = "condition",
             proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the agent exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def upload_line(status: str, code: str | None = None, ts: datetime | None = None) -> str:
    ts = ts or datetime.now().astimezone()
    return json.dumps({"time": ts.isoformat(), "result": status, "code": code, "cost": 120},
                      ensure_ascii=False) + "\n"


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def db_rows(config: Path, sql: str) -> list[tuple]:
    db = config.parent / "state" / "agent.db"
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []  # tables not created yet
    finally:
        conn.close()


def lines_counted(config: Path) -> int:
    rows = db_rows(config, "SELECT value FROM source_counters WHERE name = 'lines'")
    return sum(r[0] for r in rows)


def test_appended_failures_alert_on_console_and_sigterm_exits_0(tmp_path, agents):
    config = layout(tmp_path)
    agent = Agent(config)
    agents.append(agent)
    append(tmp_path / "logs" / "upload.log", "".join(upload_line("失败", "1001") for _ in range(4)))
    wait_for(lambda: "FIRING" in agent.stdout(), what="the alert on the console")
    assert "upload_failed" in agent.stdout()
    assert "4 uploads failed" in agent.stdout()
    assert agent.stop() == 0
    assert lines_counted(config) == 4  # the batch was checkpointed before exiting


def test_webhook_gets_firing_then_resolved(tmp_path, agents, receiver):
    config = layout(tmp_path, urls=[receiver.url()])
    agent = Agent(config)
    agents.append(agent)
    log = tmp_path / "logs" / "upload.log"
    append(log, "".join(upload_line("失败", "1001") for _ in range(3)))
    wait_for(lambda: len(receiver.posts) >= 1, what="the firing notification")
    assert "[FIRING critical] upload_failed" in receiver.posts[0][1]["title"]
    assert "3 uploads failed" in receiver.posts[0][1]["message"]
    time.sleep(2.5)  # into a later window
    append(log, upload_line("成功"))
    wait_for(lambda: len(receiver.posts) >= 2, what="the resolved notification")
    assert "[RESOLVED] upload_failed" in receiver.posts[1][1]["title"]
    assert agent.stop() == 0


def test_alert_mail_in_chinese_reaches_a_real_smtp_server(tmp_path, agents, smtp):
    sink, port = smtp
    url = f"mailto://127.0.0.1:{port}?from=agent@example.com&to=ops@example.com&cto=1&rto=2"
    config = layout(tmp_path, urls=[url])
    text = config.read_text(encoding="utf-8").replace('"language": "en"', '"language": "zh"')
    config.write_text(text, encoding="utf-8")
    agent = Agent(config)
    agents.append(agent)
    append(tmp_path / "logs" / "upload.log", "".join(upload_line("失败", "1001") for _ in range(3)))
    wait_for(lambda: sink.messages, timeout=30, what="the alert mail")
    mail = sink.messages[0]
    assert mail["Subject"] == "【告警·严重】upload_failed"
    body = mail.get_body(preferencelist=("plain", "html")).get_content()
    assert "上传失败 3 笔" in body
    assert agent.stop() == 0


def test_delivery_to_a_down_target_is_kept_and_retried(tmp_path, agents, receiver):
    receiver.failing = True
    config = layout(tmp_path, urls=[receiver.url()])
    agent = Agent(config)
    agents.append(agent)
    append(tmp_path / "logs" / "upload.log", "".join(upload_line("失败") for _ in range(3)))
    wait_for(lambda: db_rows(config, "SELECT attempts FROM outbox WHERE attempts > 0"),
             what="a failed delivery attempt")
    assert receiver.posts == []
    assert db_rows(config, "SELECT count(*) FROM outbox WHERE status = 'pending'")[0][0] >= 1
    receiver.failing = False  # the target comes back: the retry (after ~5 s backoff) arrives
    wait_for(lambda: receiver.posts, timeout=30, what="the retried delivery")
    assert receiver.posts[0][1]["title"] == "[FIRING critical] upload_failed"
    # the firing (and, once its window passed, the resolved) notification: all delivered
    wait_for(lambda: db_rows(config, "SELECT count(*) FROM outbox WHERE status = 'pending'")
             == [(0,)], timeout=30, what="the outbox to drain")
    sent = db_rows(config, "SELECT title FROM outbox WHERE status = 'sent' ORDER BY id")
    assert [t for (t,) in sent] == [p[1]["title"] for p in receiver.posts]
    assert agent.stop() == 0


def test_kill_9_mid_ingest_then_restart_loses_no_line_and_repeats_no_alert(tmp_path, agents,
                                                                            receiver):
    # a simulated day with three incidents, read as a backlog in small checkpointed batches
    sim = simulate(tmp_path / "sim", rate_scale=3)
    log = tmp_path / "logs" / "upload.log"
    log.parent.mkdir()
    os.replace(sim.files["upload"], log)
    rules = """
rules:
  - name: outage
    type: threshold
    source: upload
    when: "timeout_rate > 0.5 and count >= 5"
    severity: critical
  - name: burst
    type: threshold
    source: upload
    when: "top_error_code == '1001' and top_error_code_count >= 5"
    severity: critical
"""
    config = layout(tmp_path, urls=[receiver.url()], window="5m", rules=rules, batch_lines=100)
    total = sim.lines["upload"]
    first = Agent(config)
    agents.append(first)
    # kill mid-ingest once every notification so far is recorded as delivered; one still under
    # way at the instant of a kill is sent again after the restart (at least once, never lost),
    # which is documented and not what this test is about
    def quiet_point() -> bool:
        counts = dict(db_rows(config, "SELECT status, count(*) FROM outbox GROUP BY status"))
        return 0 < lines_counted(config) < total and counts.get("sent") and not counts.get(
            "pending")

    wait_for(quiet_point, timeout=60, what="some lines and the first deliveries committed",
             proc=first.proc)
    first.proc.kill()  # SIGKILL: no chance to checkpoint
    first.proc.wait()
    assert lines_counted(config) < total, "killed too late to test anything"
    second = Agent(config)
    agents.append(second)
    wait_for(lambda: lines_counted(config) == total, timeout=60, what="every line counted")
    wait_for(lambda: db_rows(config, "SELECT count(*) FROM outbox WHERE status = 'pending'")
             == [(0,)], what="the outbox to drain")
    assert second.stop() == 0
    assert lines_counted(config) == total  # nothing lost, nothing counted twice
    titles = [p[1]["title"] for p in receiver.posts]
    firing = [t for t in titles if t.startswith("[FIRING")]
    assert sorted(firing) == ["[FIRING critical] burst", "[FIRING critical] outage"]
    assert len(titles) == len(set(titles)) == 4  # each fired and resolved exactly once


def test_sighup_keeps_running_rules_when_new_ones_are_broken(tmp_path, agents):
    config = layout(tmp_path)
    agent = Agent(config)
    agents.append(agent)
    rules_file = tmp_path / "rules" / "r.yaml"
    rules_file.write_text("rules:\n  - name: [unclosed\n", encoding="utf-8")
    agent.signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in agent.stderr(), what="the refused reload")
    assert "r.yaml" in agent.stderr() and "YAML syntax error" in agent.stderr()
    log = tmp_path / "logs" / "upload.log"
    append(log, "".join(upload_line("失败") for _ in range(3)))
    wait_for(lambda: "upload_failed" in agent.stdout(), what="the old rule still alerting")
    rules_file.write_text(RULES.replace("upload_failed", "upload_failed_v2"), encoding="utf-8")
    agent.signal(signal.SIGHUP)
    wait_for(lambda: "reloaded" in agent.stderr(), what="the accepted reload")
    time.sleep(2.5)
    append(log, "".join(upload_line("失败") for _ in range(3)))
    wait_for(lambda: "upload_failed_v2" in agent.stdout(), what="the new rule alerting")
    assert agent.stop() == 0


def test_rotation_under_the_running_agent_loses_no_line(tmp_path, agents):
    # the glob matches the rotated names too, as with logrotate's defaults: a copytruncate
    # copy then yields the lines written after the agent's last read and before the truncation
    config = layout(tmp_path, paths="logs/upload.log*")
    agent = Agent(config)
    agents.append(agent)
    log = tmp_path / "logs" / "upload.log"
    written = 0
    for round_ in range(3):
        append(log, "".join(upload_line("成功") for _ in range(50)))
        written += 50
        if round_ == 0:  # logrotate `create`: rename, then a new file
            os.rename(log, tmp_path / "logs" / "upload.log.1")
        elif round_ == 1:  # logrotate `copytruncate`
            data = log.read_bytes()
            (tmp_path / "logs" / "upload.log.2").write_bytes(data)
            with open(log, "r+b") as f:
                f.truncate(0)
        append(log, "".join(upload_line("成功") for _ in range(25)))
        written += 25
        time.sleep(0.5)
    wait_for(lambda: lines_counted(config) == written, what="every line across rotations")
    assert agent.stop() == 0
    assert lines_counted(config) == written


def test_an_early_rule_alerts_without_waiting_for_the_window(tmp_path, agents, receiver):
    early = RULES.replace('    severity: critical', '    severity: critical\n    early: true')
    config = layout(tmp_path, urls=[receiver.url()], window="1h", rules=early)
    agent = Agent(config)
    agents.append(agent)
    append(tmp_path / "logs" / "upload.log", "".join(upload_line("失败") for _ in range(3)))
    # the hour-long window is far from closing: only the line-by-line check can alert now
    wait_for(lambda: receiver.posts, timeout=10, what="the early alert")
    assert receiver.posts[0][1]["title"] == "[FIRING critical] upload_failed"
    assert agent.stop() == 0
