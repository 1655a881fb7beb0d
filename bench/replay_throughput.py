"""Replay throughput against a bare Python read-and-parse loop measured in the same run.

    python bench/replay_throughput.py [--lines 1000000] [--repeat 3] [--rules-only]

Writes an upload log with the simulator, then times (best of --repeat):
  baseline: open, split lines, json.loads, datetime.fromisoformat, nothing else
  replay:   `invoice-agent replay` in-process (tail reader, parser, windows, rules, alerts,
            and the demo config's invoice ledger and model unless --rules-only)
and prints lines/s of each and the ratio replay/baseline. Where `fail2ban-regex` is installed
(Debian: apt-get install fail2ban), it is timed on the same file too, with a failregex for the
failed uploads and the log's date pattern. Ratios, not seconds, are what to compare across
machines.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

from agent.demo import prepare
from agent.replay import match_files, replay
from agent.simulator import write_upload_lines
from agent.wiring import load_all


def baseline(path: Path) -> int:
    n = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                obj = json.loads(line)
                datetime.fromisoformat(obj["time"])
            except (ValueError, KeyError, TypeError):
                pass
            n += 1
    return n


def fail2ban(log: Path) -> tuple[float, int]:
    """Seconds fail2ban-regex takes to find the failed uploads in `log`, parsing every line's
    date (one `%` per field: with `%%` it matches no date and does less work), and how many
    lines its date template hit, from its own report."""
    t = time.perf_counter()
    done = subprocess.run(["fail2ban-regex", "--datepattern", '^\\{"time": "%Y-%m-%d %H:%M:%S"',
                           str(log), '"result": "失败".*"code": "<F-ID>[^"]+</F-ID>"'],
                          capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - t
    report = done.stdout.partition("Date template hits:")[2]
    hits = re.search(r"\[(\d+)\]", report)
    return seconds, int(hits.group(1)) if hits else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rules-only", action="store_true",
                    help="the demo config without its invoice ledger and model (and the "
                         "ledger's rules): the per-line pipeline alone")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ia-bench-"))
    try:
        config, _ = prepare(work)  # the shipped demo config and rules
        if args.rules_only:
            data = yaml.safe_load(config.read_text(encoding="utf-8"))
            data.pop("ledger", None)
            data.pop("model", None)
            config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
            (work / "rules" / "invoice.yaml").unlink()
        log = config.parent / "logs" / "upload.log"
        t = time.perf_counter()
        write_upload_lines(log, args.lines)
        print(f"wrote {args.lines:,} lines ({log.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - t:.1f}s", file=sys.stderr)
        loaded, rules = load_all(config, notify=False, batch=True)  # as `replay` does
        pairs = match_files(loaded, [str(log)])
        best_base = best_replay = float("inf")
        alerts = 0
        for _ in range(args.repeat):
            t = time.perf_counter()
            n = baseline(log)
            best_base = min(best_base, time.perf_counter() - t)
            t = time.perf_counter()
            res = replay(loaded, rules, pairs)
            best_replay = min(best_replay, time.perf_counter() - t)
            alerts = res.fired
            assert res.lines == n == args.lines, (res.lines, n)
        base_rate, replay_rate = n / best_base, n / best_replay
        print(f"lines {n:,}  alerts {alerts}")
        print(f"baseline (read + json.loads + fromisoformat): {base_rate:12,.0f} lines/s")
        print(f"replay (full pipeline):                       {replay_rate:12,.0f} lines/s")
        print(f"ratio replay/baseline: {replay_rate / base_rate:.2f}")
        if shutil.which("fail2ban-regex"):
            runs = [fail2ban(log) for _ in range(args.repeat)]
            f2b = min(sec for sec, _ in runs)
            dated = runs[0][1]
            # the simulator writes a few garbled lines; every other line's date must be read
            assert dated >= n - res.unparsed - 10, f"fail2ban-regex dated {dated} of {n} lines"
            print(f"fail2ban-regex (regex scan + date):          {n / f2b:12,.0f} lines/s "
                  f"(date template hits {dated:,})")
            print(f"ratio replay/fail2ban-regex: {replay_rate / (n / f2b):.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
