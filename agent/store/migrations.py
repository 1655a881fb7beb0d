"""Numbered schema migrations, each applied once and recorded (sqlite-utils Migrations)."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.db import Table
from sqlite_utils.migrations import Migrations

migrations = Migrations("invoice-agent")


def table(db: Database, name: str) -> Table:
    """A table (sqlite-utils types `db[name]` as table-or-view)."""
    return db.table(name)


@migrations()
def m001_initial(db: Database) -> None:
    table(db, "file_offsets").create(
        {"file_id": str, "source": str, "path": str, "offset": int, "line_no": int,
         "fingerprint": str, "head": str, "updated": str}, pk="file_id")
    table(db, "source_counters").create({"source": str, "name": str, "value": int},
                                        pk=("source", "name"))
    table(db, "unparsed").create(
        {"id": int, "source": str, "path": str, "line_no": int, "reason": str, "text": str,
         "seen": str}, pk="id")
    table(db, "unparsed").create_index(["source", "id"])
    table(db, "windows").create({"source": str, "start": str, "end": str, "features": str},
                                pk=("source", "start"))
    table(db, "engine_state").create({"key": str, "value": str}, pk="key")
    table(db, "alerts").create(
        {"fingerprint": str, "rule": str, "state": str, "data": str, "updated": str},
        pk="fingerprint")
    table(db, "alert_log").create(
        {"id": int, "ts": str, "rule": str, "kind": str, "severity": str, "state": str,
         "labels": str, "summary": str, "reason": str}, pk="id")
    table(db, "outbox").create(
        {"id": int, "created": str, "fingerprint": str, "severity": str, "title": str,
         "body": str, "attempts": int, "next_attempt": float, "status": str,
         "last_error": str, "delivered": str}, pk="id")
    table(db, "outbox").create_index(["status", "next_attempt"])


@migrations()
def m002_outbox_per_target(db: Database) -> None:
    # one row per (message, target): a retry goes only to the targets that did not take it
    table(db, "outbox").add_column("target", str, not_null_default="")


@migrations()
def m003_ledger(db: Database) -> None:
    # one row per invoice; its stages as JSON. The partial index holds only the pending ones
    # (at the first stage, not yet at the final one): what the pending/overdue features read
    db.execute("CREATE TABLE ledger_invoices (key TEXT PRIMARY KEY, first_ts REAL NOT NULL, "
               "last_ts REAL NOT NULL, start_ts REAL, final_ts REAL, data TEXT NOT NULL)")
    db.execute("CREATE INDEX ledger_invoices_open ON ledger_invoices(start_ts) "
               "WHERE final_ts IS NULL AND start_ts IS NOT NULL")
    db.execute("CREATE INDEX ledger_invoices_last ON ledger_invoices(last_ts)")
    # what each deadline rule waits on: pending rows (overdue 0) are scanned by due time as
    # event time passes; overdue ones are listed oldest first
    db.execute("CREATE TABLE ledger_waits (rule TEXT NOT NULL, key TEXT NOT NULL, "
               "kind TEXT NOT NULL, due REAL NOT NULL, since REAL NOT NULL, "
               "overdue INTEGER NOT NULL, amount TEXT, PRIMARY KEY (rule, key)) WITHOUT ROWID")
    db.execute("CREATE INDEX ledger_waits_due ON ledger_waits(rule, overdue, due, since)")
    db.execute("CREATE TABLE ledger_findings (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
               "key TEXT NOT NULL, rule TEXT NOT NULL, ts REAL NOT NULL, detail TEXT NOT NULL)")
    db.execute("CREATE INDEX ledger_findings_ts ON ledger_findings(ts)")
    db.execute("CREATE INDEX ledger_findings_key ON ledger_findings(key)")


@migrations()
def m004_silences(db: Database) -> None:
    # operators' silences (`invoice-agent silence add`); `expired` set when ended early
    db.execute("CREATE TABLE silences (id TEXT PRIMARY KEY, matchers TEXT NOT NULL, "
               "starts_at TEXT NOT NULL, ends_at TEXT NOT NULL, comment TEXT NOT NULL, "
               "created_by TEXT NOT NULL, created TEXT NOT NULL, expired TEXT)")
