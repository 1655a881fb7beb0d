"""Replay throughput against a bare Python read-and-parse loop measured in the same run.

    python bench/replay_throughput.py [--lines 1000000] [--repeat 3] [--rules-only]
                                      [--format json|syslog|both] [--json PATH]

json (the default): writes an upload log with the simulator, then times (best of --repeat):
  baseline: open, split lines, json.loads, datetime.fromisoformat, nothing else
  replay:   `invoice-agent replay` in-process (tail reader, parser, windows, rules, alerts),
            with the demo config's invoice ledger and model, then without them (only the
            latter with --rules-only); the garbage collector tuned as the command tunes it
syslog: writes an RFC 3164 syslog file of as many lines (bench/syslog_log.py: a host's
routine traffic and incidents the shipped rules/system.yaml matches), then times:
  baseline: open, split lines, one compiled `re` with named groups for the syslog header and
            `.groupdict()`, the date by `datetime.strptime` (with the year put in front)
  replay:   `invoice-agent replay` with a config whose only source is that file (`format:
            syslog`) and the shipped rules/system.yaml
and prints lines/s of each and the ratio replay/baseline. Where `fail2ban-regex` is installed
(Debian: apt-get install fail2ban), it is timed on the same files too, with a failregex for the
failed uploads (json) or the trouble lines (syslog) and the log's date pattern; its own report
("Date template hits") must show that it read the date of nearly every line. Ratios, not
seconds, are what to compare across machines.
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
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import benchjson
import syslog_log
import yaml

from agent.demo import prepare
from agent.pipeline import tune_gc
from agent.replay import match_files, replay
from agent.simulator import write_upload_lines
from agent.wiring import load_all

ROOT = Path(__file__).resolve().parent.parent
F2B_SKIPPED = "not installed (Debian: apt-get install fail2ban)"


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


def fail2ban(log: Path, datepattern: str, failregex: str) -> tuple[float, int]:
    """Seconds fail2ban-regex takes to find `failregex` in `log`, parsing every line's date
    (one `%` per field: with `%%` it matches no date and does less work), and how many lines
    its date template hit, from its own report."""
    t = time.perf_counter()
    done = subprocess.run(["fail2ban-regex", "--datepattern", datepattern, str(log), failregex],
                          capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - t
    report = done.stdout.partition("Date template hits:")[2]
    hits = re.search(r"\[(\d+)\]", report)
    return seconds, int(hits.group(1)) if hits else 0


def timed(log: Path, config: Path, base: Callable[[Path], int], repeat: int,
          expected: int) -> tuple[float, float, int, int]:
    """(baseline lines/s, replay lines/s, alerts, unparsed), best of `repeat` each."""
    loaded, rules = load_all(config, notify=False, batch=True)  # as `replay` does
    tune_gc(freeze=True)  # as `invoice-agent replay` does (the baseline loop runs with it too)
    pairs = match_files(loaded, [str(log)])
    best_base = best_replay = float("inf")
    alerts = unparsed = n = 0
    for _ in range(repeat):
        t = time.perf_counter()
        n = base(log)
        best_base = min(best_base, time.perf_counter() - t)
        t = time.perf_counter()
        res = replay(loaded, rules, pairs)
        best_replay = min(best_replay, time.perf_counter() - t)
        alerts, unparsed = res.fired, res.unparsed
        assert res.lines == n == expected, (res.lines, n)
    return n / best_base, n / best_replay, alerts, unparsed


def against_fail2ban(report: benchjson.Report, kind: str, log: Path, replay_rate: float,
                     lines: int, unparsed: int, datepattern: str, failregex: str,
                     repeat: int) -> None:
    """fail2ban-regex on `log`: lines/s against replay's, and the lines it dated."""
    if not shutil.which("fail2ban-regex"):
        report.skip(f"fail2ban-regex on the {kind} log", F2B_SKIPPED)
        print(f"fail2ban-regex: skipped, {F2B_SKIPPED}")
        return
    runs = [fail2ban(log, datepattern, failregex) for _ in range(repeat)]
    rate = lines / min(sec for sec, _ in runs)
    dated = runs[0][1]
    # the simulator writes a few garbled lines; every other line's date must be read
    assert dated >= lines - unparsed - 10, f"fail2ban-regex dated {dated} of {lines} lines"
    print(f"fail2ban-regex (regex scan + date):          {rate:12,.0f} lines/s "
          f"(date template hits {dated:,} of {lines:,} lines)")
    print(f"ratio replay/fail2ban-regex: {replay_rate / rate:.2f}")
    report.add(f"replay, {kind} log, against fail2ban-regex", replay_rate, "lines/s",
               "fail2ban-regex on the same file (failregex + datepattern)", rate)
    report.add(f"fail2ban-regex: lines dated (Date template hits), {kind} log", dated, "lines",
               "lines in the file", lines)


def run_json(work: Path, args: argparse.Namespace, report: benchjson.Report) -> None:
    """The demo config with its ledger and model, then (or only, with --rules-only) without
    them, on one log; fail2ban-regex against the rules-only replay, the comparable work."""
    log = work / "upload.log"
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    write_upload_lines(log, args.lines)
    print(f"wrote {args.lines:,} upload lines ({log.stat().st_size / 1e6:.0f} MB) in "
          f"{time.perf_counter() - t:.1f}s", file=sys.stderr)
    replay_rate = 0.0
    unparsed = 0
    for rules_only in ([True] if args.rules_only else [False, True]):
        what = "demo config, rules only" if rules_only else "demo config with ledger and model"
        folder = work / ("rules-only" if rules_only else "full")
        config, _ = prepare(folder)
        if rules_only:
            data = yaml.safe_load(config.read_text(encoding="utf-8"))
            data.pop("ledger", None)
            data.pop("model", None)
            config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
            (folder / "rules" / "invoice.yaml").unlink()
        base_rate, replay_rate, alerts, unparsed = timed(log, config, baseline, args.repeat,
                                                         args.lines)
        print(f"JSON upload log ({what}): lines {args.lines:,}  alerts {alerts}")
        print(f"baseline (read + json.loads + fromisoformat): {base_rate:12,.0f} lines/s")
        print(f"replay (full pipeline):                       {replay_rate:12,.0f} lines/s")
        print(f"ratio replay/baseline: {replay_rate / base_rate:.2f}")
        report.add(f"replay, JSON upload log ({what})", replay_rate, "lines/s",
                   "bare loop: read + json.loads + datetime.fromisoformat", base_rate)
    against_fail2ban(report, "JSON", log, replay_rate, args.lines, unparsed,
                     '^\\{"time": "%Y-%m-%d %H:%M:%S"',
                     '"result": "失败".*"code": "<F-ID>[^"]+</F-ID>"', args.repeat)


def run_syslog(work: Path, args: argparse.Namespace, report: benchjson.Report) -> None:
    (work / "logs").mkdir(parents=True, exist_ok=True)
    log = work / "logs" / "syslog"
    config = work / "syslog.yaml"
    config.write_text(yaml.safe_dump({
        "state_dir": "state", "timezone": "Asia/Shanghai", "window": "5m", "lateness": "30s",
        "sources": [{"name": "system", "paths": ["logs/syslog"], "format": "syslog"}],
        "rules": [str(ROOT / "rules" / "system.yaml")], "notify": {"urls": []}}),
        encoding="utf-8")
    t = time.perf_counter()
    syslog_log.write_syslog(log, args.lines, zone="Asia/Shanghai")
    print(f"wrote {args.lines:,} syslog lines ({log.stat().st_size / 1e6:.0f} MB) in "
          f"{time.perf_counter() - t:.1f}s", file=sys.stderr)
    base_rate, replay_rate, alerts, unparsed = timed(log, config, syslog_log.baseline,
                                                     args.repeat, args.lines)
    print(f"syslog: lines {args.lines:,}  alerts {alerts}  unparsed {unparsed}")
    print(f"baseline (read + re header groupdict + strptime): {base_rate:12,.0f} lines/s")
    print(f"replay (syslog source, rules/system.yaml):        {replay_rate:12,.0f} lines/s")
    print(f"ratio replay/baseline: {replay_rate / base_rate:.2f}")
    report.add("replay, syslog file (rules/system.yaml)", replay_rate, "lines/s",
               "bare loop: read + re header match + groupdict + datetime.strptime", base_rate)
    against_fail2ban(report, "syslog", log, replay_rate, args.lines, unparsed,
                     syslog_log.F2B_DATEPATTERN, syslog_log.F2B_FAILREGEX, args.repeat)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rules-only", action="store_true",
                    help="only the demo config without its invoice ledger and model (and the "
                         "ledger's rules): the per-line pipeline alone (default: both)")
    ap.add_argument("--format", choices=["json", "syslog", "both"], default="json",
                    help="the JSON upload log, the syslog file, or both (default: json)")
    benchjson.add_argument(ap)
    args = ap.parse_args()
    report = benchjson.Report("replay_throughput", args.json)
    work = Path(tempfile.mkdtemp(prefix="ia-bench-"))
    try:
        if args.format in ("json", "both"):
            run_json(work / "json", args, report)
        if args.format in ("syslog", "both"):
            run_syslog(work / "syslog", args, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
