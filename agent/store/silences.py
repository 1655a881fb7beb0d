"""Operators' silences: written by `invoice-agent silence`, read by the daemon's loop.

The daemon re-reads them when another connection has written the database (`changed()`, one
`PRAGMA data_version`: a few microseconds per batch), so a silence added from the command line
is honoured at the next batch, without a restart or a signal.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone
from typing import Any

from sqlite_utils import Database

from agent.store.migrations import table
from agent.types import Silence


class Silences:
    def __init__(self, db: Database):
        self.db = db
        self._version: int | None = None

    def add(self, matchers: dict[str, str], starts_at: datetime, ends_at: datetime,
            comment: str, created_by: str, now: datetime) -> Silence:
        if not matchers:
            raise ValueError("a silence needs at least one matcher (--rule or --label)")
        if ends_at <= starts_at:
            raise ValueError("a silence must end after it starts")
        s = Silence(secrets.token_hex(4), dict(matchers), starts_at, ends_at, comment,
                    created_by)
        table(self.db, "silences").insert(
            {"id": s.id, "matchers": json.dumps(s.matchers, ensure_ascii=False, sort_keys=True),
             "starts_at": _utc(starts_at), "ends_at": _utc(ends_at),
             "comment": comment, "created_by": created_by, "created": _utc(now),
             "expired": None})
        return s

    def expire(self, silence_id: str, now: datetime) -> Silence | None:
        """End a silence now; None if there is no such silence still running or planned."""
        found = [s for s in self.all() if s.id == silence_id and s.ends_at > now]
        if not found:
            return None
        start = min(found[0].starts_at, now)
        self.db.execute("UPDATE silences SET ends_at = ?, starts_at = ?, expired = ? "
                        "WHERE id = ?", [_utc(now), _utc(start), _utc(now), silence_id])
        return Silence(found[0].id, found[0].matchers, start, now, found[0].comment,
                       found[0].created_by)

    def all(self) -> list[Silence]:
        return [_silence(r) for r in table(self.db, "silences").rows_where(
            order_by="starts_at")]

    def current(self, now: datetime) -> list[Silence]:
        """Silences running now or planned: what the router needs."""
        return [s for s in self.all() if s.ends_at > now]

    def changed(self) -> bool:
        """True the first time, then whenever another connection wrote the database."""
        version = self.db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._version:
            return False
        self._version = version
        return True

    def prune(self, before: datetime) -> None:
        """Silences that ended before `before`."""
        self.db.execute("DELETE FROM silences WHERE ends_at < ?", [_utc(before)])


def _silence(r: dict[str, Any]) -> Silence:
    return Silence(r["id"], json.loads(r["matchers"]), datetime.fromisoformat(r["starts_at"]),
                   datetime.fromisoformat(r["ends_at"]), r["comment"], r["created_by"])


def _utc(t: datetime) -> str:
    # one offset for every stored time: the text compares in time order
    return t.astimezone(timezone.utc).isoformat()
