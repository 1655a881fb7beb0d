"""Closed windows and their features (history for `status`, spike baselines and training)."""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from agent.store.migrations import table
from agent.types import Window

# error codes kept per stored window: a window with 100k distinct codes (a service logging a
# request id as its error code) would otherwise store megabytes, kept for the retention
STORED_CODES = 100


def stored_features(features: Mapping[str, Any]) -> dict[str, Any]:
    """The features as stored: the most frequent error codes, and how many others with how
    many events (`error_codes_more`, `error_codes_more_count`); every other feature as is."""
    out = dict(features)
    codes = out.get("error_codes")
    if isinstance(codes, dict) and len(codes) > STORED_CODES:
        top = heapq.nlargest(STORED_CODES, codes.items(), key=lambda kv: kv[1])
        out["error_codes"] = dict(top)
        out["error_codes_more"] = len(codes) - STORED_CODES
        out["error_codes_more_count"] = sum(codes.values()) - sum(n for _, n in top)
    return out


_UPSERT = ('INSERT INTO windows(source, start, "end", features) VALUES (?, ?, ?, ?) '
           'ON CONFLICT(source, start) DO UPDATE SET "end" = excluded."end", '
           'features = excluded.features')


class Windows:
    def __init__(self, db: Database):
        self.db = db

    def write(self, windows: Iterable[Window]) -> None:
        rows = [(w.source, w.start.isoformat(), w.end.isoformat(),
                 json.dumps(stored_features(w.features), ensure_ascii=False)) for w in windows]
        if rows:
            # plain executemany: sqlite-utils' upsert_all reads the table's schema at each
            # call, which cost more than the rows themselves at every commit of a busy log
            self.db.conn.executemany(_UPSERT, rows)

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
