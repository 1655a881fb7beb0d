"""The invoice ledger at scale: a million pending invoices, each figure against a baseline
measured in the same run.

    python bench/ledger_bench.py [--invoices 1000000] [--json PATH]

Writes a platform log of N issued invoices that never sync (all pending) and a flow log of
N/2 invoices issued and synced half a minute later (N lines), then measures:
  insert:  ledger inserts/s (Ledger.observe + batch commits into SQLite) of the N pending
           invoices, against a bare `executemany` of N rows into a two-column SQLite table
  lookup:  invoices/s read back by number from the million (random keys), against a bare
           primary-key SELECT on that table
  replay:  `replay` lines/s over the flow log with the ledger and its rules, against the
           same replay with no ledger (the rules-only replay)
  memory:  peak RSS of `invoice-agent replay` over the pending log with the ledger, against
           the same replay without it; and with the ledger at N/5 against N (flat = ~1)
Ratios are what to compare across machines.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import benchjson
import yaml

from agent.counting import Counts
from agent.demo import prepare
from agent.ledger.numbers import uscc_check_char
from agent.replay import match_files, replay
from agent.store import Batch, Store
from agent.types import Event
from agent.wiring import build_ledger, load_all

TZ = timezone(timedelta(hours=8))
T0 = datetime(2026, 10, 5, 8, 0, tzinfo=TZ)
TAX = "91440300MA5FXT3K2" + uscc_check_char("91440300MA5FXT3K2")
RULES = """\
rules:
  - name: not_synced
    type: missing
    from: issued
    to: synced
    deadline: 30d          # a month: every invoice of the pending log stays pending
  - name: amount_mismatch
    type: mismatch
  - name: incomplete
    type: incomplete
"""


def number(i: int) -> str:
    return f"2644{i:016d}"


def issue(ts: datetime, i: int) -> str:
    return (f'{{"time": "{ts.isoformat()}", "action": "issue", "fphm": "{number(i)}", '
            f'"amount": "{100 + i % 900}.00", "kprq": "{ts.date()}", "nsrsbh": "{TAX}", '
            '"result": "成功"}\n')


def sync(ts: datetime, i: int) -> str:
    return (f"{ts:%Y-%m-%d %H:%M:%S} INFO 同步 发票号码={number(i)} 金额={100 + i % 900}.00 "
            "结果=成功 耗时=80ms\n")


def write_logs(logs: Path, n: int) -> tuple[Path, Path, Path]:
    pending = logs / "platform-pending.log"
    with open(pending, "w", encoding="utf-8") as f:
        f.writelines(issue(T0 + timedelta(seconds=i * 0.2), i) for i in range(n))
    flow_p, flow_e = logs / "platform.log", logs / "erp_sync.log"
    with open(flow_p, "w", encoding="utf-8") as p, open(flow_e, "w", encoding="gbk") as e:
        for i in range(n // 2):
            ts = T0 + timedelta(seconds=i * 0.4)
            p.write(issue(ts, n + i))
            e.write(sync(ts + timedelta(seconds=30), n + i))
    return pending, flow_p, flow_e


def configs(work: Path) -> tuple[Path, Path]:
    """The demo config with these rules only, and the same without the ledger."""
    config, _ = prepare(work)  # also writes a simulated day: removed below
    for f in (config.parent / "logs").iterdir():
        f.unlink()
    for f in (work / "rules").iterdir():
        f.unlink()
    (work / "rules" / "ledger.yaml").write_text(RULES, encoding="utf-8")
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data.pop("ledger")
    bare = config.with_name("no-ledger.yaml")
    bare.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    (work / "bare-rules").mkdir()
    data["rules"] = ["../bare-rules/*.yaml"]
    (work / "bare-rules" / "none.yaml").write_text("rules: []\n", encoding="utf-8")
    bare.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return config, bare


def insert_and_lookup(config: Path, n: int, db_dir: Path, lookups: int) -> dict[str, float]:
    loaded, _ = load_all(config, notify=False)
    store = Store(db_dir / "ledger.db", scratch=True)
    ledger = build_ledger(loaded, store, Counts(),
                          flush=lambda changes: store.commit(Batch(ledger=changes)))
    assert ledger is not None
    events = (Event(T0 + timedelta(seconds=i * 0.2), "platform", "issue", number(i),
                    f"{100 + i % 900}.00", "2026-10-05", TAX, "ok") for i in range(n))
    t = time.perf_counter()
    for ev in events:
        ledger.observe(ev)
    store.commit(Batch(ledger=ledger.take()))
    insert = n / (time.perf_counter() - t)
    assert store.invoices.open_count() == n
    keys = [number(random.randrange(n)) for _ in range(lookups)]
    t = time.perf_counter()
    for k in keys:
        assert store.invoices.get(k) is not None
    lookup = lookups / (time.perf_counter() - t)
    size = (db_dir / "ledger.db").stat().st_size
    store.close()

    bare = sqlite3.connect(db_dir / "bare.db", isolation_level=None)
    bare.execute("PRAGMA journal_mode=WAL")
    bare.execute("PRAGMA synchronous=OFF")
    bare.execute("CREATE TABLE t (key TEXT PRIMARY KEY, data TEXT)")
    row = '{"no":"x","st":{"issued":[1,"100.00","2026-10-05","%s","ok","platform",null,1,1]}}'
    t = time.perf_counter()
    for start in range(0, n, 5000):
        bare.execute("BEGIN")
        bare.executemany("INSERT INTO t VALUES (?, ?)",
                         [(number(i), row % TAX) for i in range(start, min(n, start + 5000))])
        bare.execute("COMMIT")
    base_insert = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for k in keys:
        assert bare.execute("SELECT data FROM t WHERE key = ?", [k]).fetchone() is not None
    base_lookup = lookups / (time.perf_counter() - t)
    bare.close()
    return {"insert": insert, "base_insert": base_insert, "lookup": lookup,
            "base_lookup": base_lookup, "db_mib": size / 2**20}


def replay_rate(config: Path, files: list[Path], repeat: int) -> tuple[float, int]:
    loaded, rules = load_all(config, notify=False, batch=True)
    pairs = match_files(loaded, [str(f) for f in files])
    best, lines = float("inf"), 0
    for _ in range(repeat):
        t = time.perf_counter()
        res = replay(loaded, rules, pairs)
        best = min(best, time.perf_counter() - t)
        lines = res.lines
    return lines / best, lines


def peak_rss_mib(config: Path, log: Path, source: str = "platform") -> float:
    proc = subprocess.Popen([sys.executable, "-m", "agent", "replay", "-c", str(config),
                             "--source", source, str(log)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode in (0, 1), proc.returncode
    return usage.ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--invoices", type=int, default=1_000_000)
    ap.add_argument("--lookups", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=2)
    benchjson.add_argument(ap)
    args = ap.parse_args()
    report = benchjson.Report("ledger_bench", args.json)
    n = args.invoices
    work = Path(tempfile.mkdtemp(prefix="ia-ledger-bench-"))
    try:
        config, bare = configs(work)
        logs = config.parent / "logs"
        t = time.perf_counter()
        pending, flow_p, flow_e = write_logs(logs, n)
        small = logs / "platform-small.log"
        with open(pending, encoding="utf-8") as src, open(small, "w", encoding="utf-8") as dst:
            for _, line in zip(range(n // 5), src, strict=False):
                dst.write(line)
        print(f"wrote {n:,} pending and {n:,} flow lines in {time.perf_counter() - t:.0f}s",
              file=sys.stderr)

        r = insert_and_lookup(config, n, work, args.lookups)
        print(f"insert: ledger {r['insert']:10,.0f} invoices/s   bare SQLite "
              f"{r['base_insert']:10,.0f} rows/s   ratio {r['insert'] / r['base_insert']:.2f}")
        print(f"lookup: ledger {r['lookup']:10,.0f} invoices/s   bare SQLite "
              f"{r['base_lookup']:10,.0f} rows/s   ratio {r['lookup'] / r['base_lookup']:.2f}   "
              f"({n:,} pending, {r['db_mib']:.0f} MiB on disk)")

        report.add(f"ledger insert (observe + batch commits), {n:,} pending", r["insert"],
                   "invoices/s", "bare SQLite executemany, 2 columns", r["base_insert"])
        report.add(f"ledger lookup by number among {n:,} (random)", r["lookup"], "invoices/s",
                   "bare primary-key SELECT", r["base_lookup"])

        with_rate, lines = replay_rate(config, [flow_p, flow_e], args.repeat)
        bare_rate, _ = replay_rate(bare, [flow_p, flow_e], args.repeat)
        print(f"replay: with ledger {with_rate:10,.0f} lines/s   rules only {bare_rate:10,.0f} "
              f"lines/s   ratio {with_rate / bare_rate:.2f}   ({lines:,} lines)")

        report.add(f"`replay` of the flow log ({lines:,} lines), with the ledger", with_rate,
                   "lines/s", "the same replay, rules only (no ledger)", bare_rate)

        big, base = peak_rss_mib(config, pending), peak_rss_mib(bare, pending)
        little = peak_rss_mib(config, small)
        print(f"memory: replay of {n:,} pending invoices peak RSS {big:.0f} MiB with the ledger, "
              f"{base:.0f} MiB without   ratio {big / base:.2f}")
        print(f"memory: with the ledger, {n // 5:,} invoices {little:.0f} MiB, {n:,} "
              f"{big:.0f} MiB   ratio {big / little:.2f}")
        report.add(f"peak RSS, replay of {n:,} pending invoices with the ledger", big, "MiB",
                   "the same replay without the ledger", base)
        report.add(f"peak RSS with the ledger, {n:,} pending", big, "MiB",
                   f"the same with {n // 5:,} pending", little)
        report.note(f"{n:,} pending invoices take {r['db_mib']:.0f} MiB on disk.")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
