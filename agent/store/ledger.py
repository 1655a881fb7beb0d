"""The invoice ledger's tables: invoices, the deadlines rules wait on, and findings.

Reads serve the ledger while it runs (one invoice by key, waits due by a time, the oldest
overdue or open ones, read lazily so a listing of twenty never loads a million rows) and the
`invoices` command. Writes happen only in `write`, called by `Store.commit` inside the batch's
transaction: the ledger's changes are committed with the offsets of the lines that caused them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlite_utils import Database

from agent.store.records import InvoiceRow, LedgerChanges, LedgerFinding, WaitRow

_WAIT_COLUMNS = "rule, kind, key, due, since, overdue, amount"
# the partial index's condition, written the same way so SQLite uses the index
_PENDING = "final_ts IS NULL AND start_ts IS NOT NULL"
_FETCH = 64  # rows per fetch of a lazy listing
# the Bloom filter of stored keys: 2**24 bits (2 MiB), two probes from the key's hash; about
# 1% of the keys not stored are read for at a million stored invoices
_BLOOM_BITS = 1 << 24
_BLOOM_BYTES = _BLOOM_BITS // 8
_BLOOM_MASK = _BLOOM_BITS - 1
_GET = ("SELECT key, first_ts, last_ts, start_ts, final_ts, data FROM ledger_invoices "
        "WHERE key = ?")
_GET_WAIT = f"SELECT {_WAIT_COLUMNS} FROM ledger_waits WHERE rule = ? AND key = ?"


class Invoices:
    def __init__(self, db: Database):
        self.db = db
        self.generation = 0  # counts prunes: what a reader kept in memory may be gone since
        # keys that may be stored (a Bloom filter, made at the first `get`): most invoices are
        # new when first seen, and a key not in it is not read for. Only this connection
        # writes the table while the ledger runs, and every write goes through `write`.
        self._keys: bytearray | None = None

    # -- the running ledger ----------------------------------------------------------------
    def _stored(self, key: str) -> bool:
        """False if no invoice or wait of `key` was ever written (the Bloom filter of their
        keys, made at the first call); True if one may have been."""
        keys = self._keys
        if keys is None:
            keys = self._keys = bytearray(_BLOOM_BYTES)
            for (k,) in self.db.conn.execute("SELECT key FROM ledger_invoices UNION "
                                             "SELECT key FROM ledger_waits"):
                _add(keys, k)
        h = hash(key)
        a, b = h & _BLOOM_MASK, (h >> 32) & _BLOOM_MASK
        return bool((keys[a >> 3] >> (a & 7)) & 1 and (keys[b >> 3] >> (b & 7)) & 1)

    def get(self, key: str) -> InvoiceRow | None:
        if not self._stored(key):
            return None  # never written
        # the connection's own execute (its statement cache), not the wrapper's: once per event
        row = self.db.conn.execute(_GET, (key,)).fetchone()
        return InvoiceRow(*row) if row else None

    def wait(self, rule: str, key: str) -> WaitRow | None:
        if not self._stored(key):
            return None
        row = self.db.conn.execute(_GET_WAIT, (rule, key)).fetchone()
        return _wait(row) if row else None

    def due(self, rule: str, cutoff: float) -> list[WaitRow]:
        """Pending waits of `rule` due at or before `cutoff`."""
        return [_wait(r) for r in self.db.execute(
            f"SELECT {_WAIT_COLUMNS} FROM ledger_waits WHERE rule = ? AND overdue = 0 AND "
            "due <= ? ORDER BY due, since, key", [rule, cutoff])]

    def overdue(self, rule: str) -> Iterator[WaitRow]:
        """Overdue waits of `rule`, oldest first, read as they are consumed."""
        for row in _lazy(self.db, f"SELECT {_WAIT_COLUMNS} FROM ledger_waits WHERE rule = ? "
                                  "AND overdue = 1 ORDER BY due, since, key", [rule]):
            yield _wait(row)

    def overdue_summary(self, rule: str) -> tuple[int, Decimal]:
        """How many waits of `rule` are overdue and their amount total."""
        n, total = 0, Decimal(0)
        for (amount,) in self.db.execute("SELECT amount FROM ledger_waits WHERE rule = ? AND "
                                         "overdue = 1", [rule]):
            n += 1
            total += to_decimal(amount)
        return n, total

    def open_count(self) -> int:
        """Pending invoices: at the first stage, not yet at the final one."""
        return int(self.db.execute(f"SELECT count(*) FROM ledger_invoices WHERE {_PENDING}"
                                   ).fetchone()[0])

    def open_before(self, ts: float) -> int:
        """Pending invoices that reached the first stage at or before `ts`."""
        return int(self.db.execute(f"SELECT count(*) FROM ledger_invoices WHERE {_PENDING} "
                                   "AND start_ts <= ?", [ts]).fetchone()[0])

    def open_oldest(self) -> Iterator[tuple[str, float]]:
        """(key, first-stage time) of pending invoices, oldest first, read lazily."""
        for key, start in _lazy(self.db, f"SELECT key, start_ts FROM ledger_invoices WHERE "
                                         f"{_PENDING} ORDER BY start_ts", []):
            yield key, start

    def write(self, changes: LedgerChanges) -> None:
        conn = self.db.conn
        keys = self._keys
        if keys is not None:
            for r in changes.invoices:
                _add(keys, r.key)
            for w in changes.waits:
                _add(keys, w.key)
        if changes.invoices:
            conn.executemany(
                "INSERT INTO ledger_invoices(key, first_ts, last_ts, start_ts, final_ts, data) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "first_ts = excluded.first_ts, last_ts = excluded.last_ts, "
                "start_ts = excluded.start_ts, final_ts = excluded.final_ts, data = excluded.data",
                [(r.key, r.first_ts, r.last_ts, r.start_ts, r.final_ts, r.data)
                 for r in changes.invoices])
        if changes.gone:
            conn.executemany("DELETE FROM ledger_waits WHERE rule = ? AND key = ?", changes.gone)
        if changes.waits:
            conn.executemany(
                f"INSERT OR REPLACE INTO ledger_waits({_WAIT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(w.rule, w.kind, w.key, w.due, w.since, int(w.overdue), w.amount)
                 for w in changes.waits])
        if changes.findings:
            conn.executemany(
                "INSERT INTO ledger_findings(kind, key, rule, ts, detail) VALUES (?, ?, ?, ?, ?)",
                [(f.kind, f.key, f.rule, f.ts, json.dumps(f.detail, ensure_ascii=False))
                 for f in changes.findings])
        if changes.rules is not None:
            # a rule removed from the config leaves nothing waiting that no one will judge
            keep = changes.rules
            conn.execute(f"DELETE FROM ledger_waits WHERE rule NOT IN "
                         f"({','.join('?' * len(keep))})", keep)

    def prune(self, before: float) -> None:
        """Completed invoices last seen before `before` (event time), and older findings.
        Invoices that never completed stay: they are what `invoices missing` must show."""
        self.generation += 1
        self.db.execute("DELETE FROM ledger_invoices WHERE last_ts < ? AND final_ts IS NOT "
                        "NULL", [before])
        self.db.execute("DELETE FROM ledger_findings WHERE ts < ?", [before])

    # -- the `invoices` command ------------------------------------------------------------
    def waits(self, kind: str, since: float | None = None, overdue: bool = True
              ) -> list[WaitRow]:
        """Waits of every rule of `kind`, oldest first."""
        return [_wait(r) for r in self.db.execute(
            f"SELECT {_WAIT_COLUMNS} FROM ledger_waits WHERE kind = ? AND overdue = ? AND "
            "since >= ? ORDER BY since, key", [kind, int(overdue), since or float("-inf")])]

    def waits_of(self, key: str) -> list[WaitRow]:
        return [_wait(r) for r in self.db.execute(
            f"SELECT {_WAIT_COLUMNS} FROM ledger_waits WHERE key = ? ORDER BY rule", [key])]

    def findings(self, kinds: tuple[str, ...], since: float | None = None
                 ) -> list[LedgerFinding]:
        rows = self.db.execute(
            f"SELECT kind, key, rule, ts, detail FROM ledger_findings WHERE ts >= ? AND kind IN "
            f"({','.join('?' * len(kinds))}) ORDER BY ts, id", [since or float("-inf"), *kinds])
        return [LedgerFinding(k, key, rule, ts, json.loads(d)) for k, key, rule, ts, d in rows]

    def findings_of(self, key: str) -> list[LedgerFinding]:
        rows = self.db.execute("SELECT kind, key, rule, ts, detail FROM ledger_findings WHERE "
                               "key = ? ORDER BY ts, id", [key])
        return [LedgerFinding(k, key_, rule, ts, json.loads(d)) for k, key_, rule, ts, d in rows]

    def newest(self) -> float | None:
        """The newest event time the ledger has seen (what ages are measured against)."""
        row = self.db.execute("SELECT max(last_ts) FROM ledger_invoices").fetchone()
        return row[0] if row else None

    def counts(self) -> dict[str, int]:
        """Invoices, pending ones and those overdue for a missing rule, for `status`."""
        total = self.db.execute("SELECT count(*) FROM ledger_invoices").fetchone()[0]
        overdue = self.db.execute("SELECT count(DISTINCT key) FROM ledger_waits WHERE "
                                  "kind = 'missing' AND overdue = 1").fetchone()[0]
        return {"invoices": int(total), "open": self.open_count(), "overdue": int(overdue)}


def _add(keys: bytearray, key: str) -> None:
    h = hash(key)
    a, b = h & _BLOOM_MASK, (h >> 32) & _BLOOM_MASK
    keys[a >> 3] |= 1 << (a & 7)
    keys[b >> 3] |= 1 << (b & 7)


def to_decimal(amount: str | None) -> Decimal:
    """An amount as written, 0 when absent or not a number (totals never fail)."""
    try:
        return Decimal(amount) if amount else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _wait(row: Any) -> WaitRow:
    rule, kind, key, due, since, overdue, amount = row
    return WaitRow(rule, kind, key, due, since, bool(overdue), amount)


def _lazy(db: Database, sql: str, args: list[Any]) -> Iterator[Any]:
    cursor = db.conn.execute(sql, args)
    try:
        while True:
            rows = cursor.fetchmany(_FETCH)
            if not rows:
                return
            yield from rows
    finally:
        cursor.close()
