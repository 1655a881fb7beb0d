"""The daemon under faults of its own: a batch that fails half way, a message that cannot be
rendered, a config that watches nothing, a status that must tell what runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agent.daemon import Daemon
from agent.detect.base import BuildContext
from agent.detect.threshold import ThresholdConfig
from tests.test_daemon import Agent, append, db_rows, layout, upload_line, wait_for


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True,
                          text=True, timeout=60)


def later(daemon: Daemon) -> datetime:
    cfg = daemon.loaded.config
    return max(daemon.engine.watermarks.values()) + cfg.window + cfg.lateness


def test_a_batch_that_fails_half_way_is_read_again_after_the_restart(tmp_path):
    config = layout(tmp_path)
    log = tmp_path / "logs" / "upload.log"
    append(log, "".join(upload_line("失败", "1001") for _ in range(4)))
    with open(tmp_path / "console.txt", "w", encoding="utf-8") as console:
        broken = Daemon(config, out=console)

        take = broken.engine.take

        def explode() -> list:
            if broken.engine.transitions:  # the window closed and the alert fired: now fail
                raise MemoryError("rendering the alert took all memory")
            return take()

        broken.engine.take = explode  # type: ignore[method-assign]
        with pytest.raises(MemoryError):
            broken.run()
        # nothing of the failed batch was checkpointed: the lines are read again
        again = Daemon(config, out=console)
        try:
            again.step()
            again.step(now=later(again))
        finally:
            again.shutdown()
    assert "FIRING" in (tmp_path / "console.txt").read_text(encoding="utf-8")
    assert db_rows(config, "SELECT rule, state FROM alert_log") == [("upload_failed", "firing")]


def test_a_summary_that_fails_to_render_still_sends_the_alert():
    rule = ThresholdConfig.model_validate({
        "name": "r", "type": "threshold", "source": "upload", "when": "count > 0",
        "summary": "{count} uploads"}).build(BuildContext(["upload"], timedelta(minutes=5)))

    class Exploding:
        def render(self, values):
            raise MemoryError("huge")

    rule.summaries = {"en": Exploding()}  # type: ignore[dict-item]
    text = rule.summary({"count": 3, "error_codes": {}})
    assert text["en"].startswith("r:") and "count=3" in text["en"]


def test_check_warns_about_a_config_without_rules_and_exits_0(tmp_path):
    config = layout(tmp_path, rules="rules: []\n")
    done = cli("check", "-c", str(config))
    assert done.returncode == 0, done.stderr
    assert "warning:" in done.stdout and "no rule loaded" in done.stdout


def test_status_tells_whether_the_daemon_runs_and_where_a_start_at_end_file_stands(
        tmp_path, agents):
    config = layout(tmp_path)
    data = json.loads(config.read_text(encoding="utf-8"))
    data["sources"][0]["start_at"] = "end"
    config.write_text(json.dumps(data), encoding="utf-8")
    log = tmp_path / "logs" / "upload.log"
    append(log, "".join(upload_line("成功") for _ in range(10)))
    agent = Agent(config)
    agents.append(agent)
    wait_for(lambda: db_rows(config, "SELECT offset FROM file_offsets"),
             what="the start position to be saved")
    status = json.loads(cli("status", "-c", str(config), "--json").stdout)
    assert status["daemon"]["running"] and status["daemon"]["pid"] == agent.proc.pid
    (f,) = status["sources"]["upload"]["files"]
    assert f["offset"] == log.stat().st_size and f["lines"] == 0  # at the end, nothing read
    assert agent.stop() == 0
    text = cli("status", "-c", str(config)).stdout
    assert "daemon not running (stopped" in text


def test_start_reload_and_stop_are_logged_once_each_with_their_reason(tmp_path, agents):
    config = layout(tmp_path)
    agent = Agent(config)
    agents.append(agent)
    wait_for(lambda: "started (pid" in agent.stderr(), what="the start line")
    agent.signal(signal.SIGHUP)
    wait_for(lambda: "reloaded" in agent.stderr(), what="the reload line")
    assert agent.stop() == 0
    err = agent.stderr()
    assert err.count("started (pid") == 1
    assert err.count("reloaded") == 1 and "SIGHUP" in err
    assert err.count("stopped (SIGTERM)") == 1


def test_under_journald_log_lines_carry_a_priority_and_no_timestamp(tmp_path):
    config = layout(tmp_path)
    (tmp_path / "rules" / "r.yaml").write_text("rules: []\n", encoding="utf-8")
    env = dict(os.environ, JOURNAL_STREAM="8:1234")
    proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "-c", str(config)],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if "running:" in line:
                break
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines += rest.splitlines()
    assert any(line.startswith("<4>") and "no rule loaded" in line for line in lines)
    assert any(line.startswith("<6>") and "running:" in line for line in lines)
    assert not any(line[:4].isdigit() for line in lines)  # journald adds its own time
    assert proc.returncode == 0


def test_verbose_may_follow_the_command(tmp_path):
    config = layout(tmp_path)
    assert cli("check", "-c", str(config), "-v").returncode == 0
    assert cli("-v", "check", "-c", str(config)).returncode == 0


def test_the_state_database_is_readable_by_the_agent_only(tmp_path):
    config = layout(tmp_path)
    with open(tmp_path / "console.txt", "w", encoding="utf-8") as console:
        Daemon(config, out=console).shutdown()
    db = Path(tmp_path / "state" / "agent.db")
    assert db.stat().st_mode & 0o777 == 0o600


def test_a_refused_notify_url_is_named_by_file_line_and_masked(tmp_path):
    (tmp_path / "logs").mkdir()
    config = tmp_path / "agent.yaml"
    config.write_text(
        'sources:\n  - {name: upload, paths: ["logs/u.log"]}\nrules: []\nnotify:\n  urls:\n'
        '    - "wechat://abc"\n    - "mailto://user:secretpw@127.0.0.1:8025"\n',
        encoding="utf-8")
    done = cli("check", "-c", str(config))
    assert done.returncode == 1
    assert f"{config}:6: notify.urls.0: wechat://" in done.stderr and "qywx://" in done.stderr
    assert f"{config}:7: notify.urls.1: mailto://" in done.stderr and "to=" in done.stderr
    assert "secretpw" not in done.stderr


def test_a_gbk_log_read_as_utf8_is_named_in_replay_and_status(tmp_path):
    config = layout(tmp_path)
    log = tmp_path / "logs" / "upload.log"
    log.write_bytes("".join(upload_line("失败", "错误1001") for _ in range(40)).encode("gbk"))
    done = cli("replay", "-c", str(config), str(log))
    assert "source upload: most lines do not decode as utf-8; they decode as gb18030" \
        in done.stderr
    with open(tmp_path / "console.txt", "w", encoding="utf-8") as console:
        daemon = Daemon(config, out=console)
        try:
            daemon.step()
        finally:
            daemon.shutdown()
    assert "they decode as gb18030" in cli("status", "-c", str(config)).stdout
