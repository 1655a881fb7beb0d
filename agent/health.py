"""What the running daemon tells about itself over HTTP: `/healthz`, `/metrics`, `/status`.

The loop thread publishes a `Snapshot` (plain numbers, built from what it already holds) after
each batch; the HTTP thread only ever reads the latest snapshot, so serving a scrape never
touches the loop's SQLite connection nor waits for the loop. Label values are bounded: source,
rule and target-kind names from the config, alert states, never invoice numbers or the paths
of rotated copies.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# the loop publishes at least every poll interval and batch; silent longer means stuck
STALL_SECONDS = 60.0


@dataclass
class Snapshot:
    """The daemon as the loop last saw it."""

    at: float = 0.0  # wall time of the loop's last publish
    started: float = 0.0
    pid: int = 0
    config: str = ""
    rules: int = 0
    reload_error: str | None = None
    counters: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> name -> n
    lag_seconds: dict[str, float] = field(default_factory=dict)  # source -> now - newest event
    behind_since: float | None = None  # wall time the loop has had unread lines since
    windows: int = 0  # windows closed and evaluated
    rule_seconds: float = 0.0  # time spent evaluating detectors
    alerts: dict[str, int] = field(default_factory=dict)  # state -> count
    outbox: dict[str, int] = field(default_factory=dict)  # status -> rows
    deliveries: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, result) -> n
    ledger: dict[str, int] | None = None
    model_score: float | None = None  # last window's score in thresholds (>1: abnormal)
    threads: dict[str, bool] = field(default_factory=dict)  # worker -> alive
    silences: int = 0
    muted: int = 0
    clock_jumps: int = 0  # wall-clock leaps ahead not followed (agent/eventclock.py)


class Health:
    """The latest snapshot, shared between the loop (writer) and the HTTP thread (reader)."""

    def __init__(self, max_lag: float = 600.0):
        self.max_lag = max_lag
        self._lock = threading.Lock()
        self._snap = Snapshot()

    def publish(self, snap: Snapshot) -> None:
        with self._lock:
            self._snap = snap

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snap

    def verdict(self, now: float | None = None) -> tuple[bool, str]:
        """(healthy, why): the loop published recently, every worker thread lives, and the
        loop has not been behind its files for longer than `max_lag`."""
        s = self.snapshot()
        now = time.time() if now is None else now
        if not s.at:
            return False, "starting: the loop has not finished a batch yet"
        if now - s.at > STALL_SECONDS:
            return False, f"the loop has not finished a batch for {now - s.at:.0f}s (stuck?)"
        dead = sorted(k for k, alive in s.threads.items() if not alive)
        if dead:
            return False, f"worker thread(s) not running: {', '.join(dead)}"
        if s.behind_since is not None and now - s.behind_since > self.max_lag:
            return False, (f"behind the log files for {now - s.behind_since:.0f}s "
                           f"(more than {self.max_lag:.0f}s)")
        return True, "ok"


class _Collector(Collector):
    def __init__(self, health: Health):
        self.health = health

    def collect(self) -> Iterator[Metric]:
        s = self.health.snapshot()
        lines = CounterMetricFamily("invoice_agent_lines", "Log lines read, by source and "
                                    "outcome (read, unparsed, late, truncated, undecodable)",
                                    labels=["source", "outcome"])
        for source, counts in sorted(s.counters.items()):
            if source.startswith("rule:"):
                continue
            for name, outcome in (("lines", "read"), ("unparsed", "unparsed"),
                                  ("late", "late"), ("truncated", "truncated"),
                                  ("replaced", "undecodable")):
                lines.add_metric([source, outcome], counts.get(name, 0))
        yield lines
        errors = CounterMetricFamily("invoice_agent_rule_evaluation_errors",
                                     "Rule evaluations that failed", labels=["rule"])
        for source, counts in sorted(s.counters.items()):
            if source.startswith("rule:"):
                errors.add_metric([source[5:]], counts.get("eval_errors", 0))
        yield errors
        lag = GaugeMetricFamily("invoice_agent_source_lag_seconds",
                                "Seconds since the newest event read from the source",
                                labels=["source"])
        for source, v in sorted(s.lag_seconds.items()):
            lag.add_metric([source], v)
        yield lag
        yield CounterMetricFamily("invoice_agent_windows_evaluated",
                                  "Closed windows shown to the rules", value=s.windows)
        yield CounterMetricFamily("invoice_agent_clock_jumps",
                                  "Wall-clock leaps ahead of the elapsed time, not followed",
                                  value=s.clock_jumps)
        yield CounterMetricFamily("invoice_agent_rule_evaluation_seconds",
                                  "Time spent evaluating rules and the model",
                                  value=s.rule_seconds)
        alerts = GaugeMetricFamily("invoice_agent_alerts", "Live alerts by state",
                                   labels=["state"])
        for state in ("pending", "firing"):
            alerts.add_metric([state], s.alerts.get(state, 0))
        yield alerts
        yield GaugeMetricFamily("invoice_agent_alerts_muted",
                                "Firing alerts muted by a silence, inhibition or maintenance",
                                value=s.muted)
        yield GaugeMetricFamily("invoice_agent_silences", "Silences running now",
                                value=s.silences)
        outbox = GaugeMetricFamily("invoice_agent_outbox_messages",
                                   "Notifications in the outbox by status",
                                   labels=["status"])
        for status in ("pending", "sent", "failed"):
            outbox.add_metric([status], s.outbox.get(status, 0))
        yield outbox
        deliveries = CounterMetricFamily("invoice_agent_deliveries",
                                         "Delivery attempts by target kind and result",
                                         labels=["kind", "result"])
        for (kind, result), n in sorted(s.deliveries.items()):
            deliveries.add_metric([kind, result], n)
        yield deliveries
        if s.ledger is not None:
            yield GaugeMetricFamily("invoice_agent_ledger_pending_invoices",
                                    "Invoices between their first and final stage",
                                    value=s.ledger.get("open", 0))
            yield GaugeMetricFamily("invoice_agent_ledger_overdue_invoices",
                                    "Invoices past a missing rule's deadline",
                                    value=s.ledger.get("overdue", 0))
        if s.model_score is not None:
            yield GaugeMetricFamily("invoice_agent_model_score",
                                    "Anomaly score of the last window in thresholds "
                                    "(above 1: abnormal)", value=s.model_score)
        ok, _ = self.health.verdict()
        yield GaugeMetricFamily("invoice_agent_healthy", "1 when /healthz answers 200",
                                value=1 if ok else 0)
        if s.started:
            yield GaugeMetricFamily("invoice_agent_start_time_seconds",
                                    "Start of the daemon, Unix time", value=s.started)


def status_json(s: Snapshot) -> dict[str, Any]:
    """What `invoice-agent status` asks the daemon for."""
    return {"running": True, "pid": s.pid, "started": s.started, "config": s.config,
            "rules": s.rules, "reload_error": s.reload_error, "counters": s.counters,
            "lag_seconds": s.lag_seconds, "alerts": s.alerts, "outbox": s.outbox,
            "silences": s.silences, "muted": s.muted,
            "deliveries": {f"{k}:{r}": n for (k, r), n in s.deliveries.items()}}


class HttpServer:
    """/healthz, /metrics and /status on `host:port` (127.0.0.1 unless configured), on a
    daemon thread."""

    def __init__(self, health: Health, host: str = "127.0.0.1", port: int = 9808):
        self.health = health
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(health))
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    ok, why = outer.health.verdict()
                    self._send(200 if ok else 503, "text/plain; charset=utf-8",
                               (why + "\n").encode())
                elif path == "/metrics":
                    self._send(200, "text/plain; version=0.0.4; charset=utf-8",
                               generate_latest(registry))
                elif path == "/status":
                    body = json.dumps(status_json(outer.health.snapshot()), ensure_ascii=False)
                    self._send(200, "application/json", body.encode())
                else:
                    self._send(404, "text/plain", b"not found: /healthz /metrics /status\n")

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # scrapes every 15 s: not worth a line
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.address = self.server.server_address
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.5,),
                                       name="http", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
