"""What a wake-up costs the daemon: the same lines read in the same steps, with and without a
sleep between the steps.

    python bench/wake_cost.py [--lines 200000] [--chunk 1000] [--sleeps 0.01,0.05,0.1,0.2]
                              [--repeat 3] [--json PATH]

Lays out the config of bench/live_cpu.py (the demo's rules, no ledger, no model, one upload
log) and drives `Daemon.step` in this process on a real log file and a real state database:
--chunk lines are appended, one step reads them, and the process sleeps before the next
append. CPU is this process's (user + sys) over the steps alone, not the writes or the sleeps;
each sleep gets a fresh state folder; best of --repeat. The baseline, measured in the same run,
is the same steps without a sleep (0.001 s, a yield). Prints CPU per line of each and its
ratio to the baseline, and the CPU each wake-up adds: what the `read_interval` config key
trades against latency (docs/operations.md).

Two controls, timed the same way after the longest sleep: a loop of integer arithmetic (no
memory to speak of) and a loop that builds and drops 20,000 small dicts and lists (like the
agent's work, memory-bound). Where the first costs the same after a sleep and the second does
not, what a wake-up costs is cold caches, not the agent's own wake-up work.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import benchjson
from live_cpu import ZONE, layout

from agent.daemon import Daemon
from agent.pipeline import tune_gc
from agent.simulator import write_upload_lines

BASELINE = 0.001


def arithmetic() -> int:
    s = 0
    for i in range(60_000):
        s += i * i
    return s


def allocating() -> int:
    d = {}
    for i in range(20_000):
        d[str(i)] = [i, str(i)]
    return len(d)


def control_cpu(work: Callable[[], int], sleep: float, rounds: int = 30) -> float:
    """CPU seconds per call of `work`, `sleep` before each call."""
    cpu = 0.0
    for _ in range(rounds):
        time.sleep(sleep)
        t = time.process_time()
        work()
        cpu += time.process_time() - t
    return cpu / rounds


def steps_cpu(config: Path, log: Path, chunks: list[bytes], sleep: float) -> float:
    """CPU seconds of the steps reading `chunks`, one step per chunk, `sleep` between."""
    shutil.rmtree(config.parent / "state", ignore_errors=True)
    log.write_bytes(b"")
    daemon = Daemon(config, out=io.StringIO())
    tune_gc()  # as `invoice-agent run` does
    cpu = 0.0
    try:
        daemon.step()
        with open(log, "ab", buffering=0) as f:
            for chunk in chunks:
                f.write(chunk)
                time.sleep(sleep)
                t = time.process_time()
                while daemon.step():
                    pass
                cpu += time.process_time() - t
    finally:
        daemon.shutdown()
    return cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--chunk", type=int, default=1000, help="lines per step")
    ap.add_argument("--sleeps", default="0.01,0.05,0.1,0.2",
                    help="seconds of sleep between steps, comma-separated")
    ap.add_argument("--repeat", type=int, default=3)
    benchjson.add_argument(ap)
    args = ap.parse_args()
    sleeps = [float(s) for s in args.sleeps.split(",") if s.strip()]
    report = benchjson.Report("wake_cost", args.json)
    work = Path(tempfile.mkdtemp(prefix="ia-wake-"))
    try:
        config, log = layout(work, args.lines, read_interval="0s")
        feed = work / "feed.log"
        write_upload_lines(feed, args.lines,
                           start=datetime.now(ZoneInfo(ZONE)).replace(microsecond=0))
        lines = feed.read_bytes().splitlines(keepends=True)
        chunks = [b"".join(lines[i:i + args.chunk]) for i in range(0, len(lines), args.chunk)]
        best: dict[float, float] = {}
        for _ in range(args.repeat):  # interleaved: the machine's load falls on each alike
            for sleep in [BASELINE, *sleeps]:
                cpu = steps_cpu(config, log, chunks, sleep)
                best[sleep] = min(best.get(sleep, float("inf")), cpu)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n, steps = len(lines), len(chunks)
    base = best[BASELINE] / n * 1e6
    print(f"{n:,} lines in {steps:,} steps of {args.chunk:,}; CPU of the steps, best of "
          f"{args.repeat}")
    print(f"no sleep between steps:   {base:5.2f} us per line")
    report.add(f"CPU per line, steps of {args.chunk:,} lines without a sleep", base, "us")
    for sleep in sleeps:
        us = best[sleep] / n * 1e6
        per_wake = (best[sleep] - best[BASELINE]) / steps * 1e6
        print(f"{sleep * 1000:5.0f} ms between steps: {us:5.2f} us per line, "
              f"{us / base:.2f} of no sleep, {per_wake:6.0f} us more per wake-up")
        report.add(f"CPU per line, {sleep * 1000:.0f} ms of sleep between steps", us, "us",
                   "without a sleep", base)
        report.add(f"CPU a wake-up adds after {sleep * 1000:.0f} ms of sleep", per_wake, "us")
    longest = max(sleeps, default=BASELINE)
    for name, loop in (("arithmetic", arithmetic), ("allocating", allocating)):
        warm = min(control_cpu(loop, BASELINE) for _ in range(args.repeat)) * 1e6
        cold = min(control_cpu(loop, longest) for _ in range(args.repeat)) * 1e6
        print(f"control, {name} loop: {warm:7.0f} us a call, {cold:7.0f} us after "
              f"{longest * 1000:.0f} ms of sleep ({cold / warm:.2f})")
        report.add(f"control: an {name} loop after {longest * 1000:.0f} ms of sleep", cold,
                   "us", "the same without a sleep", warm)
    report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
