"""/healthz, /metrics and /status as a scraper sees them; the shipped Prometheus examples
checked by promtool and against the metrics the agent really exports."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from agent.health import Health, HttpServer, Snapshot

PROMETHEUS = Path(__file__).resolve().parent.parent / "config" / "prometheus"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture
def server():
    health = Health(max_lag=60)
    srv = HttpServer(health, "127.0.0.1", 0)
    srv.start()
    yield health, f"http://127.0.0.1:{srv.address[1]}"
    srv.stop()


def busy_snapshot(**over) -> Snapshot:
    now = time.time()
    snap = Snapshot(
        at=now, started=now - 100, pid=4242, config="/etc/invoice-agent/agent.yaml", rules=9,
        counters={"upload": {"lines": 1200, "unparsed": 3, "late": 1},
                  "rule:upload_latency": {"eval_errors": 2}},
        lag_seconds={"upload": 4.5}, windows=42, rule_seconds=0.25,
        alerts={"firing": 2, "pending": 1}, outbox={"pending": 1, "sent": 7},
        deliveries={("wecom", "ok"): 7, ("email", "failed"): 1},
        ledger={"invoices": 100, "open": 5, "overdue": 2}, model_score=0.6,
        threads={"delivery": True, "http": True}, clock_jumps=1)
    for k, v in over.items():
        setattr(snap, k, v)
    return snap


def test_healthz_says_why_it_is_unhealthy(server):
    health, base = server
    code, body = get(base + "/healthz")
    assert code == 503 and "starting" in body
    health.publish(busy_snapshot())
    assert get(base + "/healthz") == (200, "ok\n")
    health.publish(busy_snapshot(threads={"delivery": False}))
    code, body = get(base + "/healthz")
    assert code == 503 and "delivery" in body
    health.publish(busy_snapshot(behind_since=time.time() - 600))
    code, body = get(base + "/healthz")
    assert code == 503 and "behind the log files" in body
    health.publish(busy_snapshot(at=time.time() - 600))
    code, body = get(base + "/healthz")
    assert code == 503 and "stuck" in body


def test_metrics_in_prometheus_text_format(server):
    health, base = server
    health.publish(busy_snapshot())
    code, text = get(base + "/metrics")
    assert code == 200
    assert 'invoice_agent_lines_total{outcome="read",source="upload"} 1200.0' in text
    assert 'invoice_agent_lines_total{outcome="unparsed",source="upload"} 3.0' in text
    assert 'invoice_agent_rule_evaluation_errors_total{rule="upload_latency"} 2.0' in text
    assert 'invoice_agent_source_lag_seconds{source="upload"} 4.5' in text
    assert 'invoice_agent_alerts{state="firing"} 2.0' in text
    assert 'invoice_agent_outbox_messages{status="pending"} 1.0' in text
    assert 'invoice_agent_deliveries_total{kind="email",result="failed"} 1.0' in text
    assert "invoice_agent_ledger_overdue_invoices 2.0" in text
    assert "invoice_agent_model_score 0.6" in text
    assert "invoice_agent_healthy 1.0" in text
    assert "invoice_agent_clock_jumps_total 1.0" in text
    # a parser agrees it is the exposition format
    from prometheus_client.parser import text_string_to_metric_families
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"invoice_agent_lines", "invoice_agent_windows_evaluated"} <= names


def test_the_server_binds_loopback_by_default():
    import inspect

    assert inspect.signature(HttpServer).parameters["host"].default == "127.0.0.1"


promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                              reason="needs promtool (Debian: apt-get install prometheus)")


@promtool
def test_the_shipped_prometheus_examples_pass_promtool():
    for args in (["check", "config", "prometheus.yml"],
                 ["check", "rules", "invoice-agent.rules.yml"],
                 ["test", "rules", "invoice-agent.rules.test.yml"]):
        out = subprocess.run(["promtool", *args], cwd=PROMETHEUS, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr


def test_the_shipped_rules_use_only_metrics_the_agent_exports(server):
    health, base = server
    health.publish(busy_snapshot())
    exported = set(re.findall(r"^(invoice_agent_\w+?)(?:\{| )", get(base + "/metrics")[1],
                              re.M))
    rules = (PROMETHEUS / "invoice-agent.rules.yml").read_text()
    rules = re.sub(r"[\w]+:[\w]+:[\w]+", "", rules)  # recording rules' own names
    used = set(re.findall(r"\b(invoice_agent_[a-z_]+)\b", rules))
    assert used, "the rules name no metric"
    assert used <= exported, used - exported
