"""Live alert latency: from a line written to the alert arriving at a local webhook.

    python bench/live_latency.py [--alerts 300] [--gap 0.1] [--lateness 0s,30s] [--json PATH]

Runs `invoice-agent run` (one `early: true` rule per error code, notify to json:// on
127.0.0.1, a message per alert: `group_by: [rule]`, `group_wait: 0s`) once per --lateness
value and, as the baseline in the same run, a bare watcher (watchdog wake-up, read the new
bytes, json.loads, POST with urllib) against the same receiver. A writer appends --alerts
failing lines, one every --gap seconds, each with its own error code that one rule fires on;
each line's latency is from its append to its alert's arrival. Prints p50, p99 and worst of
each and the ratios agent/bare.

The engine hands alert transitions to notification routing `lateness` behind the newest event
time (agent/pipeline.py), so an early alert waits about `lateness` (default 30s) before it is
sent: `--lateness 0s` measures the path itself, the config's default shows what an operator
who keeps it gets.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
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

import benchjson
from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

from agent.configtypes import parse_duration

TIMEOUT = 10.0  # an alert not arrived this long after the last line (+ lateness) is lost
CODE = re.compile(r"\bK[a-z]\d{5}\b")  # the error codes of the lines: Ka00001, Kb00001, ...


class Receiver:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                now = time.monotonic()
                for code in CODE.findall(body):
                    outer.arrived.setdefault(code, now)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.port = self.server.server_address[1]


def line(code: str) -> str:
    return json.dumps({"time": datetime.now().astimezone().isoformat(), "result": "failed",
                       "code": code}) + "\n"


def measure(log: Path, receiver: Receiver, codes: list[str], gap: float,
            wait: float) -> list[float]:
    """Append a line per code every `gap` seconds; each one's seconds to its alert (inf: not
    arrived `wait` seconds after the last line)."""
    sent = {}
    for code in codes:
        with open(log, "a", encoding="utf-8") as f:
            sent[code] = time.monotonic()
            f.write(line(code))
        time.sleep(gap)
    deadline = time.monotonic() + wait
    while any(c not in receiver.arrived for c in codes) and time.monotonic() < deadline:
        time.sleep(0.01)
    return [receiver.arrived.get(c, float("inf")) - sent[c] for c in codes]


class BareWatcher(FileSystemEventHandler):
    """The floor: wake on inotify, read what is new, parse it, post it."""

    def __init__(self, log: Path, url: str):
        self.log, self.url, self.offset = log, url, log.stat().st_size

    def on_any_event(self, event) -> None:
        with open(self.log, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        # complete lines only: inotify may wake it while a line is half written (the rest
        # comes with the next event)
        data = data[:data.rfind(b"\n") + 1]
        self.offset += len(data)
        for raw in data.splitlines():
            rec = json.loads(raw)
            req = urllib.request.Request(self.url, data=json.dumps(
                {"title": "alert", "body": rec["code"]}).encode(), method="POST")
            urllib.request.urlopen(req, timeout=5).close()


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), inclusive method: p99 of 300 values lies between the 297th
    and the 298th smallest."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def run_agent(work: Path, receiver: Receiver, codes: list[str], gap: float,
              lateness: str) -> list[float]:
    work.mkdir(parents=True)
    (work / "rules").mkdir()
    (work / "logs").mkdir()
    rules = {"rules": [{"name": f"code_{c}", "type": "threshold", "source": "upload",
                        "when": f"error_codes.get('{c}', 0) >= 1", "early": True,
                        "severity": "critical", "summary": {"en": c, "zh": c}} for c in codes]}
    (work / "rules" / "r.yaml").write_text(json.dumps(rules), encoding="utf-8")
    config = work / "agent.yaml"
    config.write_text(json.dumps({
        "state_dir": "state", "window": "1h", "lateness": lateness, "sources": [{
            "name": "upload", "paths": ["logs/upload.log"],
            "fields": {"ts": "time", "status": "result", "error_code": "code"}}],
        "rules": ["rules/*.yaml"],
        "notify": {"urls": [f"json://127.0.0.1:{receiver.port}/hook"], "language": "en",
                   "group_by": ["rule"], "group_wait": "0s"}}),
        encoding="utf-8")
    log = work / "logs" / "upload.log"
    log.write_text("", encoding="utf-8")
    err = work / "agent.err"
    with open(err, "wb") as e:
        agent = subprocess.Popen([sys.executable, "-m", "agent", "run", "-c", str(config)],
                                 stdout=subprocess.DEVNULL, stderr=e)
    try:
        deadline = time.monotonic() + 60
        while "running:" not in err.read_text(errors="replace"):
            if agent.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the agent did not start: {err.read_text()[-2000:]}")
            time.sleep(0.05)
        time.sleep(1)  # its first poll
        return measure(log, receiver, codes, gap, parse_duration(lateness).total_seconds()
                       + TIMEOUT)
    finally:
        agent.terminate()
        agent.wait(15)


def run_bare(work: Path, receiver: Receiver, codes: list[str], gap: float) -> list[float]:
    bare_log = work / "bare.log"
    bare_log.write_text("", encoding="utf-8")
    observer = Observer()
    observer.schedule(BareWatcher(bare_log, f"http://127.0.0.1:{receiver.port}/bare"),
                      str(bare_log.parent))
    observer.start()
    try:
        time.sleep(0.5)
        return measure(bare_log, receiver, codes, gap, TIMEOUT)
    finally:
        observer.stop()
        observer.join()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--alerts", "--trials", dest="alerts", type=int, default=300,
                    help="lines appended, each alerted on once (default 300)")
    ap.add_argument("--gap", type=float, default=0.1, help="seconds between two lines")
    ap.add_argument("--lateness", default="0s,30s",
                    help="the agent's `lateness`, one run per comma-separated value "
                         "(default 0s,30s; 30s is the config's default)")
    benchjson.add_argument(ap)
    args = ap.parse_args()
    latenesses = [x.strip() for x in args.lateness.split(",") if x.strip()]
    if len(latenesses) > 25:
        ap.error("at most 25 --lateness values")
    work = Path(tempfile.mkdtemp(prefix="ia-live-"))
    receiver = Receiver()
    bare = run_bare(work, receiver, [f"Kz{i:05d}" for i in range(args.alerts)], args.gap)
    runs = {late: run_agent(work / f"agent-{i}", receiver,
                            [f"K{'abcdefghijklmnopqrstuvwxy'[i]}{n:05d}"
                             for n in range(args.alerts)], args.gap, late)
            for i, late in enumerate(latenesses)}
    lost = {late: sum(x == float("inf") for x in lat) for late, lat in runs.items()}
    lost["bare"] = sum(x == float("inf") for x in bare)
    if any(lost.values()):
        print(f"alerts lost (not arrived {TIMEOUT:.0f} s after the last line + lateness), of "
              f"{args.alerts}: {lost}; the agents' logs are in {work}")
        return 1
    report = benchjson.Report("live_latency", args.json)
    print(f"{args.alerts} alerts, one line every {args.gap:g} s, line appended -> webhook on "
          "127.0.0.1")
    bare_text = "bare watcher: watchdog + read + json.loads + urllib POST"
    for late, lat in runs.items():
        for name, q in (("p50", 50), ("p99", 99)):
            a, b = percentile(lat, q), percentile(bare, q)
            print(f"lateness {late:>4} {name}: invoice-agent run {a * 1000:9.1f} ms   bare "
                  f"watcher {b * 1000:7.1f} ms   ratio agent/bare {a / b:.1f}")
            report.add(f"alert latency {name}, lateness {late}, {args.alerts} alerts "
                       "(append -> local webhook)", a * 1000, "ms", f"{bare_text}, {name}",
                       b * 1000)
        print(f"lateness {late:>4} worst: invoice-agent run {max(lat) * 1000:9.1f} ms   bare "
              f"watcher {max(bare) * 1000:7.1f} ms")
    report.note("The engine hands early alerts to notification routing `lateness` behind the "
                "newest event time: with the config's default (30s) an early alert waits about "
                "that long before it is sent.")
    report.write()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
