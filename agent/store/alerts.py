"""Alert states (one row per fingerprint) and the log of their transitions."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from sqlite_utils import Database

from agent.store.migrations import table
from agent.types import AlertState, Transition


class Alerts:
    def __init__(self, db: Database):
        self.db = db

    def write(self, states: Iterable[AlertState], transitions: Iterable[Transition],
              now: str) -> None:
        rows = [{"fingerprint": a.fingerprint, "rule": a.rule, "state": a.state,
                 "data": json.dumps(a.to_json(), ensure_ascii=False, default=str),
                 "updated": now} for a in states]
        if rows:
            table(self.db, "alerts").upsert_all(rows, pk="fingerprint")
        log = [{"ts": t.ts.isoformat(), "rule": t.rule, "kind": t.kind, "severity": t.severity,
                "state": t.state, "labels": json.dumps(dict(t.labels), ensure_ascii=False),
                "summary": json.dumps(dict(t.summary), ensure_ascii=False), "reason": t.reason}
               for t in transitions]
        if log:
            table(self.db, "alert_log").insert_all(log)

    def states(self, state: str | None = None) -> list[AlertState]:
        rows = (table(self.db, "alerts").rows_where("state = ?", [state], order_by="updated")
                if state else table(self.db, "alerts").rows)
        return [AlertState.from_json(json.loads(r["data"])) for r in rows]

    def history(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The newest transitions, oldest first (labels and summary decoded)."""
        rows = list(table(self.db, "alert_log").rows_where(order_by="id desc", limit=limit))
        return [dict(r, labels=json.loads(r["labels"]), summary=json.loads(r["summary"]))
                for r in reversed(rows)]

    def prune(self, before: datetime) -> None:
        """Transitions older than `before` (event time); alerts that ended before it."""
        self.db.execute("DELETE FROM alert_log WHERE ts < ?", [before.isoformat()])
        ended = before.astimezone(timezone.utc).isoformat(timespec="seconds")
        self.db.execute("DELETE FROM alerts WHERE state IN ('resolved', 'cleared') AND "
                        "updated < ?", [ended])
