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
