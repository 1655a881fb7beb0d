"""The running daemon's HTTP endpoint and `status` asking it; a journald source in a running
daemon (real journal files, journalctl), with its cursor across a restart."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

import pytest

from tests.conftest import free_port
from tests.journal_files import JOURNALCTL, MISSING, REMOTE, export_entry, write_journal
from tests.test_daemon import Agent, append, layout, lines_counted, upload_line, wait_for


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def with_http(config, port: int) -> None:
    cfg = json.loads(config.read_text(encoding="utf-8"))
    cfg["http"] = {"listen": f"127.0.0.1:{port}"}
    config.write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")


def status(config) -> dict:
    out = subprocess.run([sys.executable, "-m", "agent", "status", "-c", str(config), "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_healthz_metrics_and_status_from_the_running_daemon(tmp_path, agents):
    port = free_port()
    config = layout(tmp_path)
    with_http(config, port)
    agent = Agent(config)
    agents.append(agent)
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: get(base + "/healthz") == (200, "ok\n"), what="a healthy /healthz")
    append(tmp_path / "logs" / "upload.log", "".join(upload_line("失败") for _ in range(3)))
    wait_for(lambda: 'invoice_agent_lines_total{outcome="read",source="upload"} 3.0'
             in get(base + "/metrics")[1], what="the lines in /metrics")
    wait_for(lambda: 'invoice_agent_alerts{state="firing"} 1.0' in get(base + "/metrics")[1],
             what="the firing alert in /metrics")
    metrics = get(base + "/metrics")[1]
    assert "invoice_agent_windows_evaluated_total" in metrics
    assert "invoice_agent_source_lag_seconds" in metrics
    assert str(tmp_path) not in metrics  # no file paths in label values
    daemon = status(config)["daemon"]
    assert daemon["running"] and daemon["pid"] == agent.proc.pid
    assert daemon["via"] == f"{base}/status" and daemon["rules"] == 1
    assert daemon["config"].endswith("agent.yaml")
    assert agent.stop() == 0
    assert get(base + "/healthz")[0] == 0  # gone with the daemon
    daemon = status(config)["daemon"]  # read from the state instead
    assert not daemon["running"] and daemon.get("stopped") and "via" not in daemon


@pytest.mark.skipif(REMOTE is None or JOURNALCTL is None, reason=MISSING)
def test_a_journald_source_alerts_and_resumes_at_its_cursor(tmp_path, agents):
    journal = tmp_path / "system.journal"
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "oom.yaml").write_text("""
rules:
  - name: oom_killer
    type: pattern
    source: system
    match: 'Out of memory: Killed process'
    threshold: 1
    group_by: [host, unit]
    severity: critical
    summary: {en: "OOM on {host} in {unit}"}
""", encoding="utf-8")
    config = tmp_path / "agent.yaml"
    config.write_text(json.dumps({
        "state_dir": "state", "window": "2s", "lateness": "1s", "poll_interval": "200ms",
        "sources": [{"name": "system", "format": "journald", "start_at": "beginning",
                     "journald": {"files": ["system.journal"]}}],
        "rules": ["rules/*.yaml"], "notify": {"language": "en"}}), encoding="utf-8")

    def entries(first: int, n: int, message: str = "heartbeat") -> list[bytes]:
        now = datetime.now(timezone.utc)
        return [export_entry(i, now, {"MESSAGE": message, "_HOSTNAME": "erp1",
                                      "_SYSTEMD_UNIT": "invoice-sync.service", "PRIORITY": "6"})
                for i in range(first, first + n)]

    write_journal(journal, entries(1, 3))
    agent = Agent(config)
    agents.append(agent)
    wait_for(lambda: lines_counted(config) == 3, what="the journal's entries")
    write_journal(journal, entries(4, 1, "Out of memory: Killed process 4242 (invoice-sync)"))
    wait_for(lambda: "oom_killer" in agent.stdout(), what="the OOM alert")
    assert "OOM on erp1 in invoice-sync.service" in agent.stdout()
    assert agent.stop() == 0
    write_journal(journal, entries(5, 2))  # while the agent is down
    again = Agent(config)
    agents.append(again)
    wait_for(lambda: lines_counted(config) == 6, what="the entries written while down")
    time.sleep(1.0)
    assert lines_counted(config) == 6  # none read twice
    assert again.stop() == 0
