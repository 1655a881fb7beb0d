"""The durable outbox: notifications written with the batch that caused them, then delivered
(by agent.notify.outbox) one row per target, retried until taken or refused for good."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlite_utils import Database

from agent.store.migrations import table
from agent.store.records import OutboxMessage, OutboxRow

ERROR_MAX = 500


class Outbox:
    def __init__(self, db: Database):
        self.db = db

    def add(self, messages: Iterable[OutboxMessage], now: str) -> None:
        rows = [{"created": now, "fingerprint": m.fingerprint, "severity": m.severity,
                 "title": m.title, "body": m.body, "target": m.target, "attempts": 0,
                 "next_attempt": 0.0, "status": "pending", "last_error": "", "delivered": ""}
                for m in messages]
        if rows:
            table(self.db, "outbox").insert_all(rows)

    def pending(self, per_target: int = 100) -> list[OutboxRow]:
        """The oldest undelivered notification of each (alert, target), oldest first, at most
        `per_target` for each target: what may be sent next. One alert's messages reach a
        target in order, and a target with a long queue (one that is down) never keeps the
        other targets' rows off the page."""
        cur = self.db.execute(
            "SELECT * FROM (SELECT o.*, row_number() OVER (PARTITION BY target ORDER BY id) "
            "AS k FROM outbox o WHERE o.id IN (SELECT min(id) FROM outbox WHERE status = "
            "'pending' GROUP BY fingerprint, target)) WHERE k <= ? ORDER BY id", [per_target])
        names = [c[0] for c in cur.description]
        return [_row(dict(zip(names, r, strict=True))) for r in cur]

    def untargeted(self) -> list[OutboxRow]:
        """Rows written before delivery was per target (target ''), oldest first."""
        return [_row(r) for r in table(self.db, "outbox").rows_where(
            "status = 'pending' AND target = ''", order_by="id")]

    def replace(self, row_id: int, messages: Iterable[OutboxMessage], now: str) -> None:
        """Swap one row for others in its place (a row for every target becomes one per
        target), keeping the original order."""
        with self.db.atomic():
            self.db.execute("DELETE FROM outbox WHERE id = ?", [row_id])
            self.add(messages, now)

    def delivered(self, row_id: int, now: str) -> None:
        with self.db.atomic():
            self.db.execute(
                "UPDATE outbox SET status = 'sent', attempts = attempts + 1, delivered = ?, "
                "last_error = '' WHERE id = ?", [now, row_id])

    def attempts(self, row_id: int) -> int:
        row = self.db.execute("SELECT attempts FROM outbox WHERE id = ?", [row_id]).fetchone()
        return int(row[0]) if row else 0

    def failed(self, row_id: int, error: str, next_attempt: float | None) -> None:
        """Record a failed attempt; `next_attempt` None gives up on the row for good."""
        with self.db.atomic():
            if next_attempt is None:
                self.db.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?, "
                    "status = 'failed' WHERE id = ?", [error[:ERROR_MAX], row_id])
            else:
                self.db.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?, "
                    "next_attempt = ? WHERE id = ?", [error[:ERROR_MAX], next_attempt, row_id])

    def summary(self) -> dict[str, Any]:
        """Counts by status, the last error of a waiting row and every permanent failure."""
        out: dict[str, Any] = {"pending": 0, "sent": 0, "failed": 0}
        for status, n in self.db.execute("SELECT status, count(*) FROM outbox GROUP BY status"):
            out[status] = n
        row = self.db.execute("SELECT last_error FROM outbox WHERE status = 'pending' AND "
                              "last_error != '' ORDER BY id DESC LIMIT 1").fetchone()
        if row:
            out["last_error"] = row[0]
        if "target" not in table(self.db, "outbox").columns_dict:
            return out  # `status` beside a daemon of the previous version: not migrated yet
        out["refused"] = [
            {"target": t, "title": title, "error": err, "created": created}
            for t, title, err, created in self.db.execute(
                "SELECT target, title, last_error, created FROM outbox WHERE status = 'failed' "
                "ORDER BY id DESC LIMIT 20")]
        return out

    def prune(self, keep_sent: int) -> None:
        self.db.execute(
            "DELETE FROM outbox WHERE status IN ('sent', 'failed') AND id NOT IN (SELECT id "
            "FROM outbox WHERE status IN ('sent', 'failed') ORDER BY id DESC LIMIT ?)",
            [keep_sent])


def _row(r: dict[str, Any]) -> OutboxRow:
    msg = OutboxMessage(r["fingerprint"], r["severity"], r["title"], r["body"],
                        r.get("target") or "")
    return OutboxRow(r["id"], msg, r["attempts"], r["next_attempt"], r["status"],
                     r["last_error"], r["created"], r["delivered"])
