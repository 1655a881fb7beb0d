"""`invoice-agent status` and `notify test` against real state files and real receivers."""

from __future__ import annotations

import json
import subprocess
import sys

from agent.daemon import Daemon
from tests.conftest import free_port
from tests.test_daemon import append, layout, upload_line


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True,
                          text=True, timeout=60)


def test_status_shows_offsets_unparsed_samples_and_firing_alerts(tmp_path):
    config = layout(tmp_path)
    log = tmp_path / "logs" / "upload.log"
    append(log, "".join(upload_line("失败", "1001") for _ in range(4)))
    append(log, "this is not json\n")
    with open(tmp_path / "console.txt", "w", encoding="utf-8") as console:
        daemon = Daemon(config, out=console)
        try:
            daemon.step()
            daemon.step(now=_later(daemon))  # the window closes: the rule fires
        finally:
            daemon.shutdown()
    result = cli("status", "-c", str(config), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    up = data["sources"]["upload"]
    assert up["lines"] == 5 and up["unparsed"] == 1
    assert up["files"][0]["path"] == str(log) and up["files"][0]["offset"] == log.stat().st_size
    assert "not JSON" in up["samples"][0]["reason"] or "JSON" in up["samples"][0]["reason"]
    assert up["samples"][0]["line_no"] == 5
    assert [a["rule"] for a in data["firing"]] == ["upload_failed"]
    text = cli("status", "-c", str(config)).stdout
    assert "firing alerts: 1" in text and "upload_failed" in text


def test_status_before_first_run_says_so(tmp_path):
    config = layout(tmp_path)
    result = cli("status", "-c", str(config))
    assert result.returncode == 0
    assert "has not run" in result.stdout


def test_notify_test_reports_each_target_and_fails_on_a_dead_one(tmp_path, receiver):
    dead = f"json://127.0.0.1:{free_port()}/hook?cto=0.5&rto=0.5"
    config = layout(tmp_path, urls=[receiver.url(), dead])
    result = cli("notify", "test", "-c", str(config))
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(receiver.posts) == 1  # the live target got its test message
    lines = result.stdout.strip().splitlines()
    assert sum(line.startswith("ok") for line in lines) == 1
    assert sum(line.startswith("FAILED") for line in lines) == 1

    ok_only = layout(tmp_path, urls=[receiver.url()])
    assert cli("notify", "test", "-c", str(ok_only)).returncode == 0
    assert len(receiver.posts) == 2


def _later(daemon: Daemon):
    # just past the close of the events' window, not of the next (empty) one
    cfg = daemon.loaded.config
    return max(daemon.engine.watermarks.values()) + cfg.window + cfg.lateness


