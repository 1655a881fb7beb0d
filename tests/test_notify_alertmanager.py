"""The `alertmanager://` target: a notice's alerts posted to Alertmanager's v2 API, checked
against a real Alertmanager when one is installed (Debian: prometheus-alertmanager), and
against a local receiver that checks the v2 schema everywhere."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.notify.templating import NoticeRenderer
from tests.conftest import free_port
from tests.test_notify_channels import deliver, stored
from tests.test_notify_templating import alert, notice

AM = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def now_notice(state: str = "firing"):
    t = datetime.now(timezone.utc).replace(microsecond=0)
    tr = alert(state=state, ts=t, fired_at=t - timedelta(minutes=5),
               values={"invoices": ["26442421750640307781", "26442421750640307782"]})
    return notice(firing=[tr] if state == "firing" else [],
                  resolved=[tr] if state == "resolved" else [], ts=t)


class V2Receiver:
    """Answers like Alertmanager: 200 for a valid postableAlerts list, 400 otherwise."""

    def __init__(self) -> None:
        self.alerts: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                ok = self.path == "/api/v2/alerts" and _valid(body)
                if ok:
                    outer.alerts += body
                self.send_response(200 if ok else 400)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.port = self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _valid(body: object) -> bool:
    """The v2 postableAlert schema: labels (non-empty, string values, valid names, an
    alertname), annotations strings, RFC 3339 times, generatorURL a URL."""
    if not isinstance(body, list) or not body:
        return False
    for a in body:
        labels = a.get("labels")
        if not isinstance(labels, dict) or "alertname" not in labels:
            return False
        for k, v in {**labels, **a.get("annotations", {})}.items():
            if not isinstance(v, str) or not k.replace("_", "a").isalnum() or k[0].isdigit():
                return False
        for key in ("startsAt", "endsAt"):
            datetime.fromisoformat(a[key].replace("Z", "+00:00"))
        if not a.get("generatorURL", "").startswith("http"):
            return False
    return True


def test_a_notice_becomes_v2_alerts_with_labels_annotations_and_times(tmp_path):
    rx = V2Receiver()
    try:
        n = now_notice()
        store = deliver(tmp_path, [f"alertmanager://127.0.0.1:{rx.port}"], [n],
                        NoticeRenderer("zh"))
        [a] = rx.alerts
        assert a["labels"]["alertname"] == "upload_outage"
        assert a["labels"]["severity"] == "critical" and a["labels"]["source"] == "upload"
        assert a["labels"]["instance"]  # this host
        assert a["annotations"]["summary"] == "上传全部超时"
        assert a["annotations"]["description"] == "every upload timing out"
        assert a["annotations"]["invoices"] == "26442421750640307781 26442421750640307782"
        starts = datetime.fromisoformat(a["startsAt"].replace("Z", "+00:00"))
        ends = datetime.fromisoformat(a["endsAt"].replace("Z", "+00:00"))
        assert starts == n.firing[0].fired_at and ends > n.ts + timedelta(hours=1)
        assert [row[0] for row in stored(store)] == [n.key]
        store.close()
    finally:
        rx.close()


def test_a_resolved_alert_ends_at_its_resolution(tmp_path):
    rx = V2Receiver()
    try:
        n = now_notice("resolved")
        deliver(tmp_path, [f"alertmanager://127.0.0.1:{rx.port}"], [n], NoticeRenderer("en")
                ).close()
        [a] = rx.alerts
        assert datetime.fromisoformat(a["endsAt"].replace("Z", "+00:00")) == n.ts
        assert a["annotations"]["summary"] == "every upload timing out"
    finally:
        rx.close()


@pytest.fixture
def alertmanager(tmp_path):
    if AM is None:
        pytest.skip("needs prometheus-alertmanager (Debian: apt-get install "
                    "prometheus-alertmanager; .ci/run installs it where it can)")
    port = free_port()
    cfg = tmp_path / "am.yml"
    cfg.write_text("route: {receiver: blackhole, group_wait: 1s}\nreceivers: [{name: blackhole}]\n")
    proc = subprocess.Popen([AM, f"--config.file={cfg}", f"--storage.path={tmp_path / 'am'}",
                             f"--web.listen-address=127.0.0.1:{port}",
                             "--cluster.listen-address="],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/-/ready", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("Alertmanager did not start")
            time.sleep(0.2)
    yield port, base
    proc.terminate()
    proc.wait(timeout=10)


def am_alerts(base: str) -> list[dict]:
    with urllib.request.urlopen(base + "/api/v2/alerts", timeout=5) as r:
        return json.load(r)


def test_a_real_alertmanager_takes_the_alert_and_its_resolution(tmp_path, alertmanager):
    port, base = alertmanager
    url = f"alertmanager://127.0.0.1:{port}"
    deliver(tmp_path, [url], [now_notice()], NoticeRenderer("zh")).close()
    [a] = am_alerts(base)
    assert a["labels"]["alertname"] == "upload_outage"
    assert a["annotations"]["summary"] == "上传全部超时"
    assert a["status"]["state"] == "active"
    assert a["generatorURL"].endswith("/invoice-agent/upload_outage")
    deliver(tmp_path / "2", [url], [now_notice("resolved")], NoticeRenderer("zh")).close()
    deadline = time.monotonic() + 10
    while am_alerts(base) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert am_alerts(base) == []  # resolved: no longer listed as active


def test_a_bad_request_is_refused_for_good_not_retried(tmp_path):
    from agent.notify.alertmanager import post

    rx = V2Receiver()
    try:
        ok, retry, why = post(f"http://127.0.0.1:{rx.port}", "[]")
        assert not ok and not retry and "HTTP 400" in why
        ok, retry, why = post(f"http://127.0.0.1:{free_port()}", "[]", timeout=2)
        assert not ok and retry and "unreachable" in why
    finally:
        rx.close()
