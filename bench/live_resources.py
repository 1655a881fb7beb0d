"""What a running agent costs the host: memory over millions of lines, CPU while idle, many
files at once. Each figure against a baseline measured in the same run.

    python bench/live_resources.py [--lines 5000000] [--idle-seconds 60] [--files 200]
                                   [--rounds 5] [--only rss,idle,files] [--json PATH]

Every agent is a real `invoice-agent run` subprocess (the demo's upload source and the shipped
rules/upload.yaml, no ledger and no model, `http:` on 127.0.0.1 to read its line counts).

  rss    RSS (VmRSS and VmHWM from /proc/PID/status) of the agent at start, and after it has
         read --lines upload lines (written beforehand, renamed into its folder at once).
         Baselines: a bare `python -c "import agent.daemon"` process (for the start), the agent
         at start (for after): after/start near 1 means memory stays flat.
  idle   CPU seconds per minute of the agent (utime + stime from /proc/PID/stat) tailing 50
         quiet files for --idle-seconds, against a bare Python process that polls the same 50
         files with os.stat at the agent's poll interval (1 s), over the same seconds.
  files  one line appended to each of --files files matched by one glob: seconds until the
         agent has counted every line (median of --rounds), and its open descriptors
         (/proc/PID/fd), against an agent tailing 1 file, the two taking turns.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import benchjson
import yaml

from agent.simulator import write_upload_lines

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
SOURCE = {"name": "upload", "format": "json",
          "fields": {"ts": "time", "event": "action", "invoice_no": "fphm",
                     "latency_ms": "cost", "status": "result", "error_code": "code"},
          "values": {"status": {"成功": "ok", "失败": "failed", "超时": "timeout"}}}
BARE_POLLER = """
import glob, os, sys, time
paths = sorted(glob.glob(sys.argv[1]))
interval = float(sys.argv[2])
print("polling", len(paths), flush=True)
while True:
    for p in paths:
        os.stat(p)
    time.sleep(interval)
"""
BARE_IMPORT = "import agent.daemon, sys, time; print('imported', flush=True); time.sleep(600)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agent:
    """`python -m agent run` on a config whose source reads `glob` (relative to `work`)."""

    def __init__(self, work: Path, glob: str):
        (work / "rules").mkdir(parents=True, exist_ok=True)
        (work / "logs").mkdir(exist_ok=True)
        shutil.copy(ROOT / "rules" / "upload.yaml", work / "rules" / "upload.yaml")
        self.port = free_port()
        config = work / "agent.yaml"
        config.write_text(yaml.safe_dump({
            "state_dir": "state", "timezone": "Asia/Shanghai", "window": "5m",
            "sources": [{**SOURCE, "paths": [glob]}], "rules": ["rules/*.yaml"],
            "notify": {"urls": []}, "http": {"listen": f"127.0.0.1:{self.port}"}},
            allow_unicode=True), encoding="utf-8")
        self.err = work / "agent.err"
        with open(work / "agent.out", "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "-c",
                                          str(config)], stdout=out, stderr=err)
        self.wait(lambda: "running:" in self.err.read_text(errors="replace"), 60, "start")

    def wait(self, cond, timeout: float, what: str, every: float = 0.05) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if self.proc.poll() is not None:
                raise SystemExit(f"the agent exited ({self.proc.returncode}) waiting for {what}: "
                                 f"{self.err.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for the agent's {what}")
            time.sleep(every)

    def lines(self) -> int:
        """Lines the agent has counted, from its /status."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status",
                                        timeout=5) as r:
                counters = json.load(r)["counters"]
        except OSError:
            return -1  # the endpoint starts with the loop
        return sum(c.get("lines", 0) for c in counters.values())

    def wait_lines(self, n: int, timeout: float, every: float = 0.05) -> None:
        self.wait(lambda: self.lines() >= n, timeout, f"{n:,} lines", every)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def status_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of `pid`, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (all its threads), from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # fields 14 and 15 of proc(5)


def upload_line(i: int) -> str:
    return json.dumps({"time": datetime.now().astimezone().isoformat(), "action": "upload",
                       "fphm": f"{26 * 10**18 + i}", "result": "成功", "cost": 120},
                      ensure_ascii=False) + "\n"


def rss(work: Path, lines: int, report: benchjson.Report) -> None:
    work.mkdir(parents=True)
    staged = work / "upload.staged"
    t = time.perf_counter()
    write_upload_lines(staged, lines)
    print(f"wrote {lines:,} lines ({staged.stat().st_size / 1e6:.0f} MB) in "
          f"{time.perf_counter() - t:.0f}s", file=sys.stderr)
    bare = subprocess.Popen([sys.executable, "-c", BARE_IMPORT], stdout=subprocess.PIPE,
                            cwd=ROOT)
    try:
        assert bare.stdout is not None and bare.stdout.readline().strip() == b"imported"
        bare_kib = status_kib(bare.pid)["VmRSS"]
    finally:
        bare.kill()
        bare.wait()
    agent = Agent(work, "logs/upload*.log")
    try:
        agent.wait_lines(0, 30)  # its loop publishes: started
        time.sleep(2)
        start = status_kib(agent.proc.pid)
        t = time.perf_counter()
        staged.rename(work / "logs" / "upload.log")
        agent.wait_lines(lines, 120 + lines / 5000, every=0.5)
        took = time.perf_counter() - t
        after = status_kib(agent.proc.pid)
    finally:
        agent.stop()
    mib = 1 / 1024
    print(f"RSS: bare `import agent.daemon` {bare_kib * mib:.0f} MiB; agent at start "
          f"{start['VmRSS'] * mib:.0f} MiB; after {lines:,} lines {after['VmRSS'] * mib:.0f} "
          f"MiB (peak {after['VmHWM'] * mib:.0f} MiB), ratio after/start "
          f"{after['VmRSS'] / start['VmRSS']:.2f}; read in {took:.0f}s "
          f"({lines / took:,.0f} lines/s)")
    report.add("RSS of `invoice-agent run` at start", start["VmRSS"] * mib, "MiB",
               "a bare `python -c 'import agent.daemon'`", bare_kib * mib)
    report.add(f"RSS after reading {lines:,} lines (VmRSS)", after["VmRSS"] * mib, "MiB",
               "the agent at start (VmRSS)", start["VmRSS"] * mib)
    report.add(f"peak RSS after reading {lines:,} lines (VmHWM)", after["VmHWM"] * mib, "MiB",
               "the agent at start (VmHWM)", start["VmHWM"] * mib)
    report.note(f"The agent read the {lines:,} lines at {lines / took:,.0f} lines/s "
                "(demo upload source, rules/upload.yaml, no ledger, no model).")


def idle(work: Path, seconds: float, report: benchjson.Report) -> None:
    (work / "logs").mkdir(parents=True)
    for i in range(50):
        (work / "logs" / f"quiet-{i:02d}.log").write_text(upload_line(i), encoding="utf-8")
    agent = Agent(work, "logs/quiet-*.log")
    poller = subprocess.Popen([sys.executable, "-c", BARE_POLLER,
                               str(work / "logs" / "quiet-*.log"), "1.0"],
                              stdout=subprocess.PIPE)
    try:
        assert poller.stdout is not None and poller.stdout.readline().split() == [b"polling",
                                                                                b"50"]
        agent.wait_lines(50, 30)
        time.sleep(3)  # past its start-up work
        a0, b0 = cpu_seconds(agent.proc.pid), cpu_seconds(poller.pid)
        time.sleep(seconds)
        a1, b1 = cpu_seconds(agent.proc.pid), cpu_seconds(poller.pid)
    finally:
        poller.kill()
        poller.wait()
        agent.stop()
    per_min_agent, per_min_bare = (a1 - a0) / seconds * 60, (b1 - b0) / seconds * 60
    ratio = per_min_agent / per_min_bare if per_min_bare else None
    print(f"idle, 50 quiet files, {seconds:.0f}s: agent {per_min_agent:.3f} CPU s/min, bare "
          f"os.stat poller {per_min_bare:.3f} CPU s/min, ratio "
          f"{'-' if ratio is None else f'{ratio:.1f}'}")
    report.add("idle CPU, 50 quiet files tailed", per_min_agent, "CPU s/min",
               "bare Python polling the 50 files with os.stat every 1 s", per_min_bare, ratio)
    report.note(f"Idle CPU measured over {seconds:.0f} s; /proc/PID/stat counts in 1/{TICK} s "
                "ticks, so a figure under a few ticks is coarse.")


def many_files(work: Path, files: int, rounds: int, report: benchjson.Report) -> None:
    agents = {}
    try:
        for n in (files, 1):
            d = work / f"files-{n}"
            (d / "logs").mkdir(parents=True)
            for i in range(n):
                (d / "logs" / f"many-{i:03d}.log").write_text(upload_line(i), encoding="utf-8")
            agents[n] = (d, Agent(d, "logs/many-*.log"))
            agents[n][1].wait_lines(n, 60)
        times: dict[int, list[float]] = {files: [], 1: []}
        fds = {n: len(os.listdir(f"/proc/{a.proc.pid}/fd")) for n, (_, a) in agents.items()}
        for r in range(rounds):
            for n, (d, agent) in agents.items():
                time.sleep(1.5)  # idle again, as the next append finds it
                target = n * (r + 2)
                t = time.perf_counter()
                for i in range(n):
                    with open(d / "logs" / f"many-{i:03d}.log", "a", encoding="utf-8") as f:
                        f.write(upload_line(i))
                agent.wait_lines(target, 60, every=0.002)
                times[n].append(time.perf_counter() - t)
    finally:
        for _, agent in agents.values():
            agent.stop()
    many, one = statistics.median(times[files]), statistics.median(times[1])
    print(f"{files} files, one line each: counted in {many * 1000:.0f} ms (median of {rounds}); "
          f"1 file: {one * 1000:.0f} ms; ratio {many / one:.1f}; open fds {fds[files]} vs "
          f"{fds[1]}")
    report.add(f"one line appended to each of {files} files: all counted (median of {rounds})",
               many * 1000, "ms", "one line appended to 1 file: counted", one * 1000)
    report.add(f"open descriptors, tailing {files} files", fds[files], "fds",
               "tailing 1 file", fds[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lines", type=int, default=5_000_000, help="lines read for `rss`")
    ap.add_argument("--idle-seconds", type=float, default=60.0)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="rss,idle,files",
                    help="comma-separated parts to run: rss, idle, files")
    benchjson.add_argument(ap)
    args = ap.parse_args()
    parts = set(args.only.split(","))
    unknown = parts - {"rss", "idle", "files"}
    if unknown:
        ap.error(f"unknown part(s) in --only: {', '.join(sorted(unknown))}")
    report = benchjson.Report("live_resources", args.json)
    work = Path(tempfile.mkdtemp(prefix="ia-resources-"))
    try:
        if "rss" in parts:
            rss(work / "rss", args.lines, report)
        if "idle" in parts:
            idle(work / "idle", args.idle_seconds, report)
        if "files" in parts:
            many_files(work / "files", args.files, args.rounds, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
