"""Replay speed as rules are added: none, one, one early, one early over 100k error codes, 1,000.

    python bench/rules_scaling.py [--lines 300000] [--repeat 3] [--rules 1000] [--json PATH]

Writes an upload log with the simulator (about 5 lines a second: 1,500 lines per 5-minute
window, 1% failed, an outage, a slow stretch and a burst of code 1001 every 200,000 lines), and
a second log of the same length in which every line is a failed upload with one of 100,000
error codes in turn (30 lines a second, one-hour windows: a full window holds 108,000 lines and
every one of the 100,000 codes). Each case replays its log in-process as
`invoice-agent replay` does (best of --repeat, in CPU seconds of this process, which other
work on the machine disturbs less than wall time), with the upload source alone:

  none          no rule: parse, windows and their features (the baseline, timed in this run)
  one           `timeout >= 600`, judged when each window closes
  one early     the same rule with `early: true`: judged at the lines that change `timeout`
  early, every  `count >= 100000` with `early: true`: judged at every line, never true
  early 100k    `failed >= 120000` with `early: true` over the log of 100,000 error codes (its
                own no-rule baseline): judged at every line, never true
  1,000         1,000 rules `failed >= N` / `timeout >= N` / `failure_rate > x and count >= N`,
                every tenth early (`failed`, `timeout` or `error_codes.get('1001', 0)` >= N)

and prints lines/s and the ratio of each against its baseline, and of 1,000 rules against one.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import benchjson
import yaml

from agent.pipeline import tune_gc
from agent.replay import match_files, replay
from agent.simulator import write_upload_lines
from agent.wiring import load_all

TZ = timezone(timedelta(hours=8))
CODES = 100_000

SOURCE = {"name": "upload", "paths": ["logs/upload*.log"], "format": "json",
          "fields": {"ts": "time", "event": "action", "invoice_no": "fphm",
                     "latency_ms": "cost", "status": "result", "error_code": "code"},
          "values": {"status": {"成功": "ok", "失败": "failed", "超时": "timeout"}}}


def rule(name: str, when: str, early: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "type": "threshold", "source": "upload", "when": when}
    if early:
        out["early"] = True
    return out


ONE = rule("uploads_timing_out", "timeout >= 600")
ONE_EARLY = rule("uploads_timing_out", "timeout >= 600", early=True)
# early rules whose features change at every line and that never hold: judged at each one
EVERY_LINE = rule("window_full", "count >= 100000", early=True)
CODES_EARLY = rule("failures_pile_up", "failed >= 120000", early=True)


def many(n: int) -> list[dict[str, Any]]:
    """`n` threshold rules of a few shapes with varying thresholds. Every tenth is early, on a
    count that only grows within a window (what `early` is for: a rate is judged at its end)."""
    out = []
    for i in range(n):
        k = i // 3 + 1
        if i % 10 == 0:
            when = (f"failed >= {k}", f"timeout >= {k * 2}",
                    f"error_codes.get('1001', 0) >= {k}")[i // 10 % 3]
        else:
            when = (f"failed >= {k}", f"timeout >= {k * 2}",
                    f"failure_rate > {k / 1000:.3f} and count >= {k}")[i % 3]
        out.append(rule(f"rule_{i:04d}", when, early=i % 10 == 0))
    return out


def write_codes_log(path: Path, lines: int, start: datetime) -> None:
    """`lines` failed uploads, 30 a second, each with one of CODES error codes in turn."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(lines):
            ts = (start + timedelta(seconds=i // 30)).strftime("%Y-%m-%d %H:%M:%S")
            f.write(f'{{"time": "{ts}", "action": "upload", "fphm": "{10**15 + i}", '
                    f'"result": "失败", "cost": 300, "code": "E{i % CODES:05d}"}}\n')


def timed(work: Path, log: Path, window: str, rules: list[dict[str, Any]],
          repeat: int) -> tuple[float, int, int]:
    """(best seconds, lines, alerts) of replaying `log` with `rules`."""
    config = work / "agent.yaml"
    config.write_text(yaml.safe_dump({
        "state_dir": "state", "timezone": "Asia/Shanghai", "window": window,
        "lateness": "30s", "sources": [SOURCE], "rules": ["rules/*.yaml"],
        "notify": {"urls": []}}, allow_unicode=True), encoding="utf-8")
    (work / "rules").mkdir(exist_ok=True)
    (work / "rules" / "bench.yaml").write_text(yaml.safe_dump({"rules": rules}),
                                               encoding="utf-8")
    best = float("inf")
    lines = alerts = 0
    for _ in range(repeat):
        loaded, detectors = load_all(config, notify=False, batch=True, model=False)
        pairs = match_files(loaded, [str(log)])
        tune_gc(freeze=True)  # as `invoice-agent replay` does
        t = time.process_time()  # CPU time: the machine may be busy with other work
        res = replay(loaded, detectors, pairs)
        best = min(best, time.process_time() - t)
        lines, alerts = res.lines, res.fired
    return best, lines, alerts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lines", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--only", choices=["plain", "codes"], default=None,
                    help="run only the cases over the simulated log, or only those over the "
                         "log of 100k error codes")
    benchjson.add_argument(ap)
    args = ap.parse_args()
    report = benchjson.Report("rules_scaling", args.json)
    work = Path(tempfile.mkdtemp(prefix="ia-rules-bench-"))
    try:
        (work / "logs").mkdir()
        plain, codes = work / "logs" / "upload.log", work / "logs" / "upload_codes.log"
        cases: list[tuple[str, Path, str, list[dict[str, Any]], str]] = []
        if args.only != "codes":
            write_upload_lines(plain, args.lines)
            cases += [("none", plain, "5m", [], ""), ("one", plain, "5m", [ONE], "none"),
                      ("one early", plain, "5m", [ONE_EARLY], "none"),
                      ("one early, every line", plain, "5m", [EVERY_LINE], "none"),
                      (f"{args.rules:,} rules", plain, "5m", many(args.rules), "one")]
        if args.only != "plain":
            write_codes_log(codes, args.lines, datetime(2026, 11, 2, tzinfo=TZ))
            cases += [("none, 100k codes", codes, "1h", [], ""),
                      ("early, 100k codes", codes, "1h", [CODES_EARLY], "none, 100k codes")]
        rates: dict[str, float] = {}
        print(f"{'case':<24}{'lines/s':>12}{'alerts':>8}  ratio")
        for name, log, window, rules, against in cases:
            seconds, lines, alerts = timed(work, log, window, rules, args.repeat)
            rates[name] = lines / seconds
            ratio = f"{rates[name] / rates[against]:.2f} of {against}" if against else ""
            print(f"{name:<24}{rates[name]:>12,.0f}{alerts:>8}  {ratio}", flush=True)
            if against:
                report.add(f"replay, {name}", rates[name], "lines/s (CPU)", f"replay, {against}",
                           rates[against])
            else:
                report.add(f"replay, {name}", rates[name], "lines/s (CPU)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
