"""The state database over months: its size after a simulated 90 days at 10 lines/s.

    python bench/state_size.py [--days 90] [--rate 10] [--ledger-retention 400d] [--json PATH]

10 lines/s is ~864,000 lines a day: a third each of issuing, upload and ERP sync, so ~288,000
invoices a day. Writing 77 million lines through the parser would take the better part of an
hour, so the day is built from the real parts, then written through the store's own API
(`Store.commit`, `Store.prune`, as the daemon calls them) for every simulated day:

- the windows of 4 sources every 5 minutes, with features computed by the real `Windows` from
  a simulated busy window (~3,000 events, 40 error codes);
- the invoices as the real ledger stores them: rows (stage JSON) copied from a replay of the
  demo's simulated day, with new numbers and times;
- 20 alert transitions and their outbox rows a day, delivered;
- the daemon's daily prune at the configured retention (windows and alerts 14 days, delivered
  notifications the newest 1000, completed invoices `ledger.retention`).

It prints the file size after each simulated fortnight and the rows per table at the end. The
baseline, measured in the same run, is the raw size of what was written (the bytes of the rows'
text), so "size / written" shows what retention keeps: it falls as days pass when retention
bounds the state.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import benchjson

from agent.configtypes import parse_duration
from agent.demo import prepare
from agent.features import Windows
from agent.replay import configured_files, replay
from agent.store import Batch, InvoiceRow, LedgerChanges, OutboxMessage, Store
from agent.types import AlertState, Event, Transition
from agent.wiring import load_all

SOURCES = ("platform", "upload", "erp", "system")
T0 = datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=8)))


def sample_invoices(work: Path) -> list[InvoiceRow]:
    """Invoice rows as the real ledger writes them, from a replay of the demo's day."""
    config, _ = prepare(work)
    loaded, rules = load_all(config, notify=False, batch=True, model=False)
    keep = work / "sample.db"
    import agent.replay as rp

    real_store = rp.Store

    def kept(path: Path, scratch: bool = False) -> Store:  # keep the replay's scratch ledger
        return real_store(keep, scratch=True)

    rp.Store = kept  # type: ignore[misc,assignment]
    try:
        replay(loaded, rules, configured_files(loaded))
    finally:
        rp.Store = real_store  # type: ignore[misc]
    store = Store(keep)
    rows = [InvoiceRow(*r) for r in store.db.execute(
        "SELECT key, first_ts, last_ts, start_ts, final_ts, data FROM ledger_invoices "
        "WHERE final_ts IS NOT NULL LIMIT 2000")]
    store.close()
    return rows


def busy_window_features() -> dict:
    wins = Windows(["upload"], timedelta(minutes=5), timedelta(0))
    rng = random.Random(3)
    for i in range(3000):
        code = f"E{rng.randrange(40)}" if rng.random() < 0.05 else None
        wins.add(Event(T0 + timedelta(seconds=i / 10), "upload", status="failed" if code
                       else "ok", latency_ms=rng.uniform(80, 900), error_code=code))
    [w] = wins.advance(T0 + timedelta(minutes=5))
    return dict(w.features)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--rate", type=float, default=10.0, help="lines per second")
    ap.add_argument("--ledger-retention", default="400d")
    ap.add_argument("--retention", default="14d", help="windows and alerts")
    benchjson.add_argument(ap)
    args = ap.parse_args()
    report = benchjson.Report("state_size", args.json)
    ledger_keep = parse_duration(args.ledger_retention)
    keep = parse_duration(args.retention)
    with tempfile.TemporaryDirectory(prefix="invoice-agent-size-") as tmp:
        work = Path(tmp)
        samples = sample_invoices(work / "demo")
        features = busy_window_features()
        db = work / "state" / "agent.db"
        store = Store(db)
        per_day = int(args.rate * 86400 / 3)  # invoices a day: three lines each
        written = 0
        t_start = time.perf_counter()
        print(f"{args.days} days at {args.rate:g} lines/s: {per_day:,} invoices a day, "
              f"ledger retention {args.ledger_retention}, windows/alerts {args.retention}")
        n = 0
        for day in range(args.days):
            start = T0 + timedelta(days=day)
            windows = [_window(s, start + timedelta(minutes=5 * i), features)
                       for s in SOURCES for i in range(288)]
            rows = []
            for i in range(per_day):
                proto = samples[i % len(samples)]
                t = (start + timedelta(seconds=i * 86400 / per_day)).timestamp()
                n += 1
                rows.append(InvoiceRow(f"{26000000000000000000 + n}", t, t + 40, t, t + 40,
                                       proto.data))
            transitions, alerts, outbox = _alerts(start)
            for chunk in range(0, len(rows), 20000):
                store.commit(Batch(ledger=LedgerChanges(invoices=rows[chunk:chunk + 20000])))
            store.commit(Batch(windows=windows, alerts=alerts, transitions=transitions,
                               outbox=outbox))
            for row in store.outbox.pending():
                store.outbox.delivered(row.id, "2026-01-01T00:00:00+00:00")
            written += sum(len(r.key) + len(r.data) + 40 for r in rows)
            written += sum(len(str(w.features)) for w in windows)
            written += sum(len(m.body) + len(m.title) for m in outbox)
            end = start + timedelta(days=1)
            store.prune(end - keep, ledger_before=end - ledger_keep)
            if (day + 1) % 15 == 0 or day + 1 == args.days:
                size = _size(db)
                print(f"  day {day + 1:3d}: {size / 2**20:9.1f} MiB on disk, "
                      f"{written / 2**20:9.1f} MiB written, size/written "
                      f"{size / written:.2f}  ({time.perf_counter() - t_start:.0f}s)")
                report.add(f"state on disk after day {day + 1} (ledger retention "
                           f"{args.ledger_retention})", size / 2**20, "MiB",
                           "bytes written (rows' text)", written / 2**20)
        rows = ", ".join(
            f"{t} {store.db.execute(f'SELECT count(*) FROM {t}').fetchone()[0]:,}"
            for t in ("windows", "alerts", "alert_log", "outbox", "ledger_invoices",
                      "ledger_findings", "silences"))
        print("rows:", rows)
        report.note(f"{args.days} days at {args.rate:g} lines/s; rows at the end: "
                    f"{rows}.")
        store.close()
    report.write()


def _window(source: str, start: datetime, features: dict):
    from agent.types import Window

    return Window(source, start, start + timedelta(minutes=5), features)


def _alerts(day: datetime) -> tuple[list[Transition], list[AlertState], list[OutboxMessage]]:
    transitions, alerts, outbox = [], [], []
    for i in range(10):
        t = day + timedelta(hours=2 * i)
        fp = f"fp{day:%j}{i}"
        for state in ("firing", "resolved"):
            transitions.append(Transition(t, "upload_latency", "rule", "warning", state,
                                          {"source": "upload"},
                                          {"zh": "上传响应变慢：P95 4200 ms", "en": "slow"}, fp,
                                          "first notification"))
            outbox.append(OutboxMessage(fp, "warning", "[FIRING warning] upload_latency",
                                        "uploads slow: p95 4200 ms\n" * 8, "t-1"))
        alerts.append(AlertState(fp, "upload_latency", "rule", "warning", {"source": "upload"},
                                 "resolved", t, t, t, t + timedelta(minutes=30)))
    return transitions, alerts, outbox


def _size(db: Path) -> int:
    return sum(os.path.getsize(p) for p in (db, Path(f"{db}-wal")) if p.exists())


if __name__ == "__main__":
    main()
