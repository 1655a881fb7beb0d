"""CPU per line of the live daemon against `replay` of the same lines, in one run.

    python bench/live_cpu.py [--lines 1000000] [--repeat 1] [--rate 20000] [--chunk 100]
                             [--read-interval DURATION] [--root DIR] [--json PATH]

Writes an upload log with the simulator (starting now, so the live agent's clock never runs
ahead of the lines) and lays out the demo config as bench/replay_throughput.py --rules-only
does (no invoice ledger, no model, no invoice rules; only this log in the logs folder), then
measures, each as its own subprocess:

  replay:  `invoice-agent replay -c CONFIG LOG`, to its exit;
  tailing: `invoice-agent run -c CONFIG` on a fresh state folder and an empty log, to which the
           lines are appended while it runs (--chunk lines per write, --rate lines a second),
           until its state database counts every line; then SIGTERM;
  backlog: the same with the whole log present at the start (the agent catching up).

CPU is user+sys of each process (os.wait4). Each command's fixed cost (interpreter, imports,
start-up, shutdown) is measured on an empty log in the same run and taken off, so the figures
are per line. Prints CPU microseconds per line of each, the ratio live/replay and the live CPU
seconds per million lines; --repeat keeps the best of each. `--root DIR` runs the agent of
another checkout (an earlier commit: `git archive COMMIT | tar -x -C DIR`). `--json PATH` writes
the rows in the format bench/run_all.py collects.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import benchjson
import yaml

from agent.demo import prepare
from agent.simulator import write_upload_lines

ZONE = "Asia/Shanghai"  # the demo config's


def layout(work: Path, lines: int, read_interval: str | None = None) -> tuple[Path, Path]:
    """The demo config, rules only, reading one upload log: (config, log). `read_interval`:
    instead of the config's."""
    config, _ = prepare(work)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data.pop("ledger", None)
    data.pop("model", None)
    for key in ("commit_interval", "commit_lines"):  # the defaults; --root may not know them
        data.pop(key, None)
    # the log starts now and runs ahead of the clock (~5 lines a second of event time): its
    # lines must not be refused as stamped in the future
    data["max_future"] = f"{int(lines * 0.2 / 86400) + 2}d"
    if read_interval is not None:
        data["read_interval"] = read_interval
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    (work / "rules" / "invoice.yaml").unlink()
    logs = config.parent / "logs"
    shutil.rmtree(logs)  # the demo's day of logs: only the benchmark's upload log is read
    logs.mkdir()
    return config, logs / "upload.log"


def cpu_of(proc: subprocess.Popen) -> tuple[int, float]:
    """Wait for `proc`; its exit status and CPU seconds (user + sys)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


ENV = dict(os.environ)  # --root: the agent of another checkout


def replay_cpu(config: Path, log: Path) -> float:
    proc = subprocess.Popen([sys.executable, "-m", "agent", "replay", "-q", "-c", str(config),
                             str(log)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=ENV)
    code, cpu = cpu_of(proc)
    assert code in (0, 1), f"replay exited {code}"  # 1: alerts fired
    return cpu


def counted(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT coalesce(sum(value), 0) FROM source_counters "
                               "WHERE name = 'lines'").fetchone()
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0  # not created yet
    return int(row[0])


def run_cpu(config: Path, lines: int, feed: Path | None = None, rate: int = 0,
            chunk: int = 0, timeout: float = 3600.0) -> float:
    """`invoice-agent run` until every line of the log is counted in its state, then SIGTERM.
    With `feed`, the log starts empty and `feed`'s lines are appended while the agent runs,
    `chunk` lines at a time, `rate` lines a second."""
    state = config.parent / "state"
    shutil.rmtree(state, ignore_errors=True)
    err = config.parent / "run.err"
    with open(err, "wb") as e:
        proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "-c", str(config)],
                                stdout=subprocess.DEVNULL, stderr=e, env=ENV)
    db = state / "agent.db"
    deadline = time.monotonic() + timeout
    try:
        if feed is not None:
            wait_started(proc, err)
            append_at_rate(feed, config.parent / "logs" / "upload.log", rate, chunk)
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"run exited {proc.returncode}:\n"
                                 + err.read_text(encoding="utf-8", errors="replace")[-2000:])
            if (lines == 0 and "started (pid" in err.read_text(errors="replace")) \
                    or (lines and counted(db) >= lines):
                break
            if time.monotonic() > deadline:
                raise SystemExit("run did not count every line in time")
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        code, cpu = cpu_of(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
    assert code == 0, f"run exited {code}"
    assert counted(db) == lines, (counted(db), lines)
    return cpu


def wait_started(proc: subprocess.Popen, err: Path) -> None:
    while "started (pid" not in err.read_text(errors="replace"):
        if proc.poll() is not None:
            raise SystemExit(f"run exited {proc.returncode}:\n"
                             + err.read_text(encoding="utf-8", errors="replace")[-2000:])
        time.sleep(0.05)


def append_at_rate(feed: Path, log: Path, rate: int, chunk: int) -> None:
    """Append `feed` to `log` as a busy application logs: `chunk` lines per write, `rate`
    lines a second."""
    t0 = time.monotonic()
    done = 0
    with open(feed, "rb") as src, open(log, "ab", buffering=0) as out:
        while True:
            lines = list(itertools.islice(src, chunk))
            if not lines:
                return
            out.write(b"".join(lines))
            done += len(lines)
            ahead = t0 + done / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each; the best is kept")
    ap.add_argument("--rate", type=int, default=20_000,
                    help="lines a second appended to the tailed log (default 20,000)")
    ap.add_argument("--chunk", type=int, default=100,
                    help="lines per write to the tailed log (default 100)")
    ap.add_argument("--root", metavar="DIR",
                    help="run the agent of another checkout (e.g. an earlier commit's tree "
                         "from git archive) instead of this one")
    ap.add_argument("--read-interval", metavar="DURATION",
                    help="the agent's read_interval (default: the demo config's)")
    benchjson.add_argument(ap)
    args = ap.parse_args()
    report = benchjson.Report("live_cpu", args.json)
    if args.root:
        ENV["PYTHONPATH"] = str(Path(args.root).absolute())
    n = args.lines
    work = Path(tempfile.mkdtemp(prefix="ia-live-cpu-"))
    try:
        config, log = layout(work, n, args.read_interval)
        log.write_bytes(b"")
        fixed_replay = min(replay_cpu(config, log) for _ in range(args.repeat))
        fixed_run = min(run_cpu(config, 0) for _ in range(args.repeat))
        feed = work / "feed.log"
        t = time.perf_counter()
        write_upload_lines(feed, n, start=datetime.now(ZoneInfo(ZONE)).replace(microsecond=0))
        print(f"wrote {n:,} lines ({feed.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - t:.1f}s; fixed cost: replay {fixed_replay:.2f} s, "
              f"run {fixed_run:.2f} s CPU", file=sys.stderr)
        best = {"replay": float("inf"), "backlog": float("inf"), "tail": float("inf")}
        for i in range(args.repeat):
            shutil.copy(feed, log)
            got = {"replay": replay_cpu(config, log) - fixed_replay,
                   "backlog": run_cpu(config, n) - fixed_run}
            log.write_bytes(b"")
            got["tail"] = run_cpu(config, n, feed, args.rate, args.chunk) - fixed_run
            print(f"round {i + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in got.items())
                  + " CPU", file=sys.stderr)
            best = {k: min(v, got[k]) for k, v in best.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    us = {k: v / n * 1e6 for k, v in best.items()}
    print(f"lines {n:,}")
    print(f"replay:                               {us['replay']:6.1f} us CPU per line")
    print(f"run, tailing ({args.rate:,} lines/s, {args.chunk} per write): "
          f"{us['tail']:6.1f} us CPU per line, ratio live/replay {us['tail'] / us['replay']:.2f}")
    print(f"run, backlog present at start:        {us['backlog']:6.1f} us CPU per line, "
          f"ratio live/replay {us['backlog'] / us['replay']:.2f}")
    print(f"live CPU per million lines (tailing): {us['tail']:.1f} s")
    report.add("replay CPU per line", us["replay"], "us")
    report.add("live CPU per line, tailing", us["tail"], "us", "replay CPU per line",
               us["replay"])
    report.add("live CPU per line, backlog at start", us["backlog"], "us",
               "replay CPU per line", us["replay"])
    report.add("live CPU per million lines, tailing", us["tail"], "s")
    report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
