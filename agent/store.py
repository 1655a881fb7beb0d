"""The one module that touches SQLite: offsets, counters, samples, windows, alerts, outbox.

One connection, used from one thread (the daemon's loop). A batch of lines is committed in a
single transaction together with everything it caused (window state, alert state, outbox
rows), so after a crash the agent resumes from a consistent point: the uncommitted batch is
read again and, because its alerts were not committed either, nothing is notified twice.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

DB_NAME = "agent.db"  # inside state_dir
SAMPLES_PER_SOURCE = 50  # unparsed lines kept per source for inspection

migrations = Migrations("invoice-agent")


@migrations()
def m001_initial(db: Database) -> None:
    db["file_offsets"].create(
        {"file_id": str, "source": str, "path": str, "offset": int, "line_no": int,
         "fingerprint": str, "head": str, "updated": str}, pk="file_id")
    db["source_counters"].create({"source": str, "name": str, "value": int},
                                 pk=("source", "name"))
    db["unparsed"].create(
        {"id": int, "source": str, "path": str, "line_no": int, "reason": str, "text": str,
         "seen": str}, pk="id")
    db["unparsed"].create_index(["source", "id"])
    db["windows"].create({"source": str, "start": str, "end": str, "features": str},
                         pk=("source", "start"))
    db["engine_state"].create({"key": str, "value": str}, pk="key")
    db["alerts"].create(
        {"fingerprint": str, "rule": str, "state": str, "data": str, "updated": str},
        pk="fingerprint")
    db["alert_log"].create(
        {"id": int, "ts": str, "rule": str, "kind": str, "severity": str, "state": str,
         "labels": str, "summary": str, "reason": str}, pk="id")
    db["outbox"].create(
        {"id": int, "created": str, "fingerprint": str, "severity": str, "title": str,
         "body": str, "attempts": int, "next_attempt": float, "status": str,
         "last_error": str, "delivered": str}, pk="id")
    db["outbox"].create_index(["status", "next_attempt"])


@dataclass
class Batch:
    """Everything one batch of lines changed, written in one transaction by `Store.commit`."""

    # every file each listed source still tracks: rows of files it let go are removed
    offsets: list[Mapping[str, Any]] = field(default_factory=list)
    offset_sources: list[str] = field(default_factory=list)
    counters: dict[tuple[str, str], int] = field(default_factory=dict)  # increments
    samples: list[Mapping[str, Any]] = field(default_factory=list)
    windows: list[Mapping[str, Any]] = field(default_factory=list)
    engine_state: dict[str, Any] = field(default_factory=dict)
    alerts: list[Mapping[str, Any]] = field(default_factory=list)
    transitions: list[Mapping[str, Any]] = field(default_factory=list)
    outbox: list[Mapping[str, Any]] = field(default_factory=list)

    def count(self, source: str, name: str, n: int = 1) -> None:
        key = (source, name)
        self.counters[key] = self.counters.get(key, 0) + n


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Store:
    """SQLite state of one agent. `path=":memory:"` for replays that must not touch state."""

    def __init__(self, path: str | Path, readonly: bool = False):
        if readonly:
            # `status` beside a running daemon: no migrations, no writes; as_uri() escapes the
            # '#', '?' and '%' a plain "file:" URI would misread
            conn = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True)
            conn.execute("PRAGMA busy_timeout=5000")
            self.db = Database(conn)
            return
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None)
        conn.execute("PRAGMA busy_timeout=5000")
        if str(path) != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        self.db = Database(conn)
        migrations.apply(self.db)

    def close(self) -> None:
        self.db.close()

    # -- the batch commit ------------------------------------------------------------------
    def commit(self, batch: Batch) -> None:
        """Write one batch atomically: its effects and the offsets that produced them."""
        db = self.db
        now = _now()
        with db.atomic():
            for source in batch.offset_sources:
                keep = [o["file_id"] for o in batch.offsets if o["source"] == source]
                db.execute(f"DELETE FROM file_offsets WHERE source = ? AND file_id NOT IN "
                           f"({','.join('?' * len(keep))})", [source, *keep])
            if batch.offsets:
                db["file_offsets"].upsert_all(
                    [dict(o, updated=now) for o in batch.offsets], pk="file_id")
            for (source, name), n in batch.counters.items():
                db.execute(
                    "INSERT INTO source_counters(source, name, value) VALUES (?, ?, ?) "
                    "ON CONFLICT(source, name) DO UPDATE SET value = value + excluded.value",
                    [source, name, n])
            if batch.samples:
                db["unparsed"].insert_all([dict(s, seen=now) for s in batch.samples])
                for source in {s["source"] for s in batch.samples}:
                    db.execute(
                        "DELETE FROM unparsed WHERE source = ? AND id NOT IN (SELECT id FROM "
                        "unparsed WHERE source = ? ORDER BY id DESC LIMIT ?)",
                        [source, source, SAMPLES_PER_SOURCE])
            if batch.windows:
                db["windows"].upsert_all(
                    [dict(w, features=json.dumps(w["features"], ensure_ascii=False))
                     for w in batch.windows], pk=("source", "start"))
            if batch.engine_state:
                db["engine_state"].upsert_all(
                    [{"key": k, "value": json.dumps(v, ensure_ascii=False)}
                     for k, v in batch.engine_state.items()], pk="key")
            if batch.alerts:
                db["alerts"].upsert_all(
                    [{"fingerprint": a["fingerprint"], "rule": a["rule"], "state": a["state"],
                      "data": json.dumps(a, ensure_ascii=False, default=str), "updated": now}
                     for a in batch.alerts], pk="fingerprint")
            if batch.transitions:
                db["alert_log"].insert_all(
                    [dict(t, labels=json.dumps(t["labels"], ensure_ascii=False),
                          summary=json.dumps(t["summary"], ensure_ascii=False))
                     for t in batch.transitions])
            if batch.outbox:
                db["outbox"].insert_all(
                    [dict(o, created=now, attempts=0, status="pending", last_error="",
                          delivered="") for o in batch.outbox])

    # -- reading state back ----------------------------------------------------------------
    def offsets(self, source: str) -> list[dict[str, Any]]:
        return list(self.db["file_offsets"].rows_where("source = ?", [source]))

    def has_offsets(self, source: str) -> bool:
        return self.db.execute(
            "SELECT 1 FROM file_offsets WHERE source = ? LIMIT 1", [source]).fetchone() is not None

    def engine_state(self) -> dict[str, Any]:
        return {r["key"]: json.loads(r["value"]) for r in self.db["engine_state"].rows}

    def alert_states(self) -> list[dict[str, Any]]:
        return [json.loads(r["data"]) for r in self.db["alerts"].rows]

    def prune(self, before: datetime, keep_sent: int = 1000) -> None:
        """Drop what retention no longer covers: windows and alert history older than `before`
        (event time), alerts that ended before it, delivered notifications beyond the newest
        `keep_sent`."""
        cutoff = before.isoformat()
        ended = before.astimezone(timezone.utc).isoformat(timespec="seconds")
        with self.db.atomic():
            self.db.execute("DELETE FROM windows WHERE end < ?", [cutoff])
            self.db.execute("DELETE FROM alert_log WHERE ts < ?", [cutoff])
            self.db.execute("DELETE FROM alerts WHERE state IN ('resolved', 'cleared') AND "
                            "updated < ?", [ended])
            self.db.execute(
                "DELETE FROM outbox WHERE status = 'sent' AND id NOT IN (SELECT id FROM outbox "
                "WHERE status = 'sent' ORDER BY id DESC LIMIT ?)", [keep_sent])

    # -- what `status` shows ---------------------------------------------------------------
    def summary(self, samples_per_source: int = 3) -> dict[str, Any]:
        """Files and offsets, counters and unparsed samples per source; firing alerts; outbox."""
        db = self.db
        sources: dict[str, dict[str, Any]] = {}

        def src(name: str) -> dict[str, Any]:
            return sources.setdefault(name, {"files": [], "samples": []})

        for r in db["file_offsets"].rows_where(order_by="source, path"):
            src(r["source"])["files"].append({"path": r["path"], "offset": r["offset"],
                                              "lines": r["line_no"], "updated": r["updated"]})
        for r in db["source_counters"].rows:
            src(r["source"])[r["name"]] = r["value"]
        for r in db["unparsed"].rows_where(order_by="id desc", limit=200):
            s = src(r["source"])
            if len(s["samples"]) < samples_per_source:
                s["samples"].append({k: r[k] for k in ("path", "line_no", "reason", "text")})
        firing = []
        for r in db["alerts"].rows_where("state = 'firing'", order_by="updated"):
            a = json.loads(r["data"])
            firing.append({k: a[k] for k in ("rule", "severity", "labels", "fired_at")})
        outbox: dict[str, Any] = {"pending": 0, "sent": 0}
        for status, n in db.execute("SELECT status, count(*) FROM outbox GROUP BY status"):
            outbox[status] = n
        row = db.execute("SELECT last_error FROM outbox WHERE status = 'pending' AND "
                         "last_error != '' ORDER BY id DESC LIMIT 1").fetchone()
        if row:
            outbox["last_error"] = row[0]
        return {"sources": sources, "firing": firing, "outbox": outbox}

    # -- outbox ------------------------------------------------------------------------------
    def pending_outbox(self, limit: int = 500) -> list[dict[str, Any]]:
        """Undelivered notifications, oldest first."""
        return list(self.db["outbox"].rows_where("status = 'pending'", order_by="id",
                                                 limit=limit))

    def outbox_attempts(self, item_id: int) -> int:
        row = self.db.execute("SELECT attempts FROM outbox WHERE id = ?", [item_id]).fetchone()
        return row[0] if row else 0

    def outbox_delivered(self, item_id: int) -> None:
        with self.db.atomic():
            self.db.execute(
                "UPDATE outbox SET status = 'sent', attempts = attempts + 1, delivered = ?, "
                "last_error = '' WHERE id = ?", [_now(), item_id])

    def outbox_failed(self, item_id: int, error: str, next_attempt: float) -> None:
        with self.db.atomic():
            self.db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt = ? "
                "WHERE id = ?", [error[:500], next_attempt, item_id])

