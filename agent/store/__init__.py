"""The one package that touches SQLite: offsets, counters, samples, windows, alerts, outbox,
the invoice ledger.

One connection, used from one thread (the daemon's loop). A batch of lines is committed in a
single transaction together with everything it caused (window state, alert state, outbox
rows), so after a crash the agent resumes from a consistent point: the uncommitted batch is
read again and, because its alerts were not committed either, nothing is notified twice.
Each table sits behind a small repository (offsets.py, windows.py, alerts.py, outbox.py,
ledger.py, silences.py);
the schema grows by numbered migrations (migrations.py).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from sqlite_utils import Database

from agent.store.alerts import Alerts
from agent.store.ledger import Invoices
from agent.store.migrations import migrations, table
from agent.store.offsets import Counters, Offsets
from agent.store.outbox import Outbox
from agent.store.records import (
    Batch,
    FileOffset,
    InvoiceRow,
    LedgerChanges,
    LedgerFinding,
    OutboxMessage,
    OutboxRow,
    WaitRow,
)
from agent.store.silences import Silences
from agent.store.windows import Windows

__all__ = ["DB_NAME", "Batch", "FileOffset", "InvoiceRow", "LedgerChanges", "LedgerFinding",
           "OutboxMessage", "OutboxRow", "Store", "WaitRow", "utc_now"]

DB_NAME = "agent.db"  # inside state_dir
# one encoder, made once (json.dumps with options builds one per call)
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


PRUNE_SECONDS = 60.0


class Store:
    """SQLite state of one agent. `path=":memory:"` for runs that must not touch state."""

    def __init__(self, path: str | Path, readonly: bool = False, scratch: bool = False,
                 clock: Callable[[], float] = time.monotonic):
        """`scratch`: a throwaway database (replay's ledger): nothing is synced to disk."""
        if readonly:
            # `status` beside a running daemon: no migrations, no writes; as_uri() escapes the
            # '#', '?' and '%' a plain "file:" URI would misread
            conn = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True)
            conn.execute("PRAGMA busy_timeout=5000")
        else:
            if str(path) != ":memory:":
                _create_private(Path(path))
            conn = sqlite3.connect(str(path), isolation_level=None)
            conn.execute("PRAGMA busy_timeout=5000")
            if str(path) != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF" if scratch else "PRAGMA synchronous=NORMAL")
        self.db = Database(conn)
        if not readonly:
            migrations.apply(self.db)
        self.offsets = Offsets(self.db)
        self.counters = Counters(self.db)
        self.windows = Windows(self.db)
        self.alerts = Alerts(self.db)
        self.outbox = Outbox(self.db)
        self.invoices = Invoices(self.db)
        self.silences = Silences(self.db)
        # engine state key -> its JSON as last committed: an unchanged part is not rewritten
        self._state_written: dict[str, str] = {}
        self._clock = clock  # monotonic seconds, for prune_now_and_then
        self._pruned: float | None = None  # when prune_now_and_then last pruned

    def close(self) -> None:
        self.db.close()

    def commit(self, batch: Batch) -> None:
        """Write one batch atomically: its effects and the offsets that produced them. Rows
        that did not change since the last commit (a file's offset, a part of the engine's
        state) are not written again."""
        now = utc_now()
        staged: dict[str, str] = {}
        try:
            with self.db.atomic():
                if batch.offsets:
                    self.offsets.write(batch.offsets, now)
                if batch.counters:
                    self.counters.add(batch.counters)
                if batch.samples:
                    self.counters.keep_samples(batch.samples, now)
                if batch.windows:
                    self.windows.write(batch.windows)
                if batch.engine_state:
                    staged = self._write_state(batch.engine_state)
                if batch.alerts or batch.transitions:
                    self.alerts.write(batch.alerts, batch.transitions, now)
                if batch.outbox:
                    self.outbox.add(batch.outbox, now)
                if batch.ledger is not None:
                    self.invoices.write(batch.ledger)
        except BaseException:
            self.offsets.rolled_back()
            self._state_written.clear()
            raise
        self.offsets.committed()
        self._state_written.update(staged)

    def _write_state(self, state: dict[str, Any]) -> dict[str, str]:
        """The engine state's keys whose JSON differs from what was last committed."""
        rows = {}
        for key, value in state.items():
            text = _ENCODE(value)
            if self._state_written.get(key) != text:
                rows[key] = text
        if rows:
            self.db.conn.executemany(
                "INSERT INTO engine_state(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value", list(rows.items()))
        return rows

    def engine_state(self) -> dict[str, Any]:
        return {r["key"]: json.loads(r["value"]) for r in table(self.db, "engine_state").rows}

    def prune_now_and_then(self, before: datetime,
                           ledger_before: datetime | None = None) -> None:
        """prune(), at most once every PRUNE_SECONDS: a busy log commits several times a
        second, and each prune is a transaction of its own for rows that only need to go
        within days. The first call prunes."""
        now = self._clock()
        if self._pruned is None or now - self._pruned >= PRUNE_SECONDS:
            self.prune(before, ledger_before=ledger_before)
            self._pruned = now

    def prune(self, before: datetime, keep_sent: int = 1000,
              ledger_before: datetime | None = None) -> None:
        """Drop what retention no longer covers: windows and alert history older than `before`
        (event time), alerts and silences that ended before it, delivered (or refused) notifications
        beyond the newest `keep_sent`; completed invoices last seen before `ledger_before`."""
        with self.db.atomic():
            self.windows.prune(before)
            self.alerts.prune(before)
            self.outbox.prune(keep_sent)
            self.silences.prune(before)
            if ledger_before is not None:
                self.invoices.prune(ledger_before.timestamp())


def _create_private(path: Path) -> None:
    """The state holds alert texts and log samples: readable by the agent's user only. SQLite
    gives its -wal and -shm files the permissions of the database file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
