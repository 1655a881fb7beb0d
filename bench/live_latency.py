"""Live alert latency: from a line written to the alert arriving at a local webhook.

    python bench/live_latency.py [--trials 10]

Runs `invoice-agent run` (rules with `early: true`, notify to json:// on 127.0.0.1) and, as the
baseline in the same run, a bare watcher (watchdog wake-up, read the new bytes, json.loads,
POST with urllib) against the same receiver. Each trial appends one failing line with its own
error code, which one rule fires on; prints the median and worst latency of both and the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer


class Receiver:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                for code in outer.expect:
                    if code in body and code not in outer.arrived:
                        outer.arrived[code] = time.monotonic()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.expect: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.port = self.server.server_address[1]


def line(code: str) -> str:
    return json.dumps({"time": datetime.now().astimezone().isoformat(), "result": "failed",
                       "code": code}) + "\n"


def measure(log: Path, receiver: Receiver, codes: list[str]) -> list[float]:
    out = []
    for code in codes:
        receiver.expect.append(code)
        t0 = time.monotonic()
        with open(log, "a", encoding="utf-8") as f:
            f.write(line(code))
        while code not in receiver.arrived and time.monotonic() - t0 < 10:
            time.sleep(0.002)
        out.append(receiver.arrived.get(code, float("inf")) - t0)
        time.sleep(0.3)
    return out


class BareWatcher(FileSystemEventHandler):
    """The floor: wake on inotify, read what is new, parse it, post it."""

    def __init__(self, log: Path, url: str):
        self.log, self.url, self.offset = log, url, log.stat().st_size

    def on_any_event(self, event) -> None:
        with open(self.log, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        for raw in data.splitlines():
            rec = json.loads(raw)
            req = urllib.request.Request(self.url, data=json.dumps(
                {"title": "alert", "body": rec["code"]}).encode(), method="POST")
            urllib.request.urlopen(req, timeout=5).close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--trials", type=int, default=10)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ia-live-"))
    (work / "logs").mkdir()
    (work / "rules").mkdir()
    receiver = Receiver()
    codes = [f"E{i:03d}" for i in range(args.trials)]
    rules = {"rules": [{"name": f"code_{c}", "type": "threshold", "source": "upload",
                        "when": f"error_codes.get('{c}', 0) >= 1", "early": True,
                        "severity": "critical", "summary": {"en": c, "zh": c}} for c in codes]}
    (work / "rules" / "r.yaml").write_text(json.dumps(rules), encoding="utf-8")
    config = work / "agent.yaml"
    config.write_text(json.dumps({
        "state_dir": "state", "window": "1h", "sources": [{
            "name": "upload", "paths": ["logs/upload.log"],
            "fields": {"ts": "time", "status": "result", "error_code": "code"}}],
        "rules": ["rules/*.yaml"],
        "notify": {"urls": [f"json://127.0.0.1:{receiver.port}/hook"], "language": "en"}}),
        encoding="utf-8")
    log = work / "logs" / "upload.log"
    log.write_text("", encoding="utf-8")
    agent = subprocess.Popen([sys.executable, "-m", "agent", "run", "-c", str(config)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(4)  # start-up: imports, first poll
        agent_lat = measure(log, receiver, codes)
    finally:
        agent.terminate()
        agent.wait(15)
    bare_log = work / "logs" / "bare.log"
    bare_log.write_text("", encoding="utf-8")
    observer = Observer()
    observer.schedule(BareWatcher(bare_log, f"http://127.0.0.1:{receiver.port}/bare"),
                      str(bare_log.parent))
    observer.start()
    try:
        time.sleep(0.5)
        bare_lat = measure(bare_log, receiver, [f"B{i:03d}" for i in range(args.trials)])
    finally:
        observer.stop()
        observer.join()
    a, b = statistics.median(agent_lat), statistics.median(bare_lat)
    print(f"invoice-agent run: median {a * 1000:.0f} ms, worst {max(agent_lat) * 1000:.0f} ms")
    print(f"bare watcher:      median {b * 1000:.0f} ms, worst {max(bare_lat) * 1000:.0f} ms")
    print(f"ratio agent/bare (median): {a / b:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
