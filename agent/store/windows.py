"""Closed windows and their features (history for `status`, spike baselines and training)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from sqlite_utils import Database

from agent.store.migrations import table
from agent.types import Window


class Windows:
    def __init__(self, db: Database):
        self.db = db

    def write(self, windows: Iterable[Window]) -> None:
        rows = [{"source": w.source, "start": w.start.isoformat(), "end": w.end.isoformat(),
                 "features": json.dumps(dict(w.features), ensure_ascii=False)} for w in windows]
        if rows:
            table(self.db, "windows").upsert_all(rows, pk=("source", "start"))

    def between(self, start: datetime, end: datetime,
                source: str | None = None) -> list[Window]:
        """Windows that started in [start, end), oldest first."""
        where, args = "start >= ? AND start < ?", [start.isoformat(), end.isoformat()]
        if source is not None:
            where, args = where + " AND source = ?", args + [source]
        return [Window(r["source"], datetime.fromisoformat(r["start"]),
                       datetime.fromisoformat(r["end"]), json.loads(r["features"]))
                for r in table(self.db, "windows").rows_where(where, args, order_by="start")]

    def prune(self, before: datetime) -> None:
        self.db.execute("DELETE FROM windows WHERE end < ?", [before.isoformat()])
