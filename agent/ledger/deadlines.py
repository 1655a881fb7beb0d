"""The invoices one deadline rule (missing, stuck, month_end) waits on, on disk.

A wait is (invoice, due, since, amount); it turns overdue when event time passes `due` and
ends when the invoice arrives. Waits live in SQLite (a million pending invoices cost no
memory); this batch's changes are kept here (read-your-writes) until the ledger hands them to
the batch commit. Only the count and amount total of the overdue ones are kept hot.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from decimal import Decimal
from itertools import islice

from agent.store.ledger import Invoices, to_decimal
from agent.store.records import WaitRow

_Entry = tuple[WaitRow | None, bool]  # (the wait, or None if removed; may a row be in SQLite)


def _order(w: WaitRow) -> tuple[float, float, str]:
    return w.due, w.since, w.key


class Deadlines:
    def __init__(self, rule: str, kind: str, repo: Invoices):
        self.rule = rule
        self.kind = kind
        self.repo = repo
        self._buf: dict[str, _Entry] = {}
        self.overdue, self.total = repo.overdue_summary(rule)

    def get(self, key: str) -> WaitRow | None:
        entry = self._buf.get(key)
        if entry is not None:
            return entry[0]
        return self.repo.wait(self.rule, key)

    def add(self, key: str, due: float, since: float, amount: str | None,
            cutoff: float | None) -> WaitRow:
        """Wait for `key`; overdue at once when `due` is not after `cutoff` (the time judged
        so far): an invoice first seen after its deadline had already passed."""
        late = cutoff is not None and due <= cutoff
        row = WaitRow(self.rule, self.kind, key, due, since, late, amount)
        old = self._buf.get(key)
        if old is not None and old[0] is not None and old[0].overdue:
            self._count(old[0], -1)
        self._buf[key] = (row, old[1] if old is not None else False)
        if late:
            self._count(row, 1)
        return row

    def remove(self, key: str) -> WaitRow | None:
        """End the wait for `key`; the wait that ended (None if there was none)."""
        entry = self._buf.get(key)
        if entry is None:
            row = self.repo.wait(self.rule, key)
            if row is None:
                return None
            self._buf[key] = (None, True)
        else:
            row, stored = entry
            if stored:
                self._buf[key] = (None, True)
            else:
                del self._buf[key]  # never written: nothing to delete either
        if row is not None and row.overdue:
            self._count(row, -1)
        return row

    def expire(self, cutoff: float) -> list[WaitRow]:
        """Pending waits due at or before `cutoff` turn overdue; returns them, oldest first."""
        out = [w for w in self.repo.due(self.rule, cutoff) if w.key not in self._buf]
        out += [e[0] for e in self._buf.values()
                if e[0] is not None and not e[0].overdue and e[0].due <= cutoff]
        out.sort(key=_order)
        turned = []
        for w in out:
            row = WaitRow(w.rule, w.kind, w.key, w.due, w.since, True, w.amount)
            stored = self._buf.get(w.key, (None, True))[1]
            self._buf[w.key] = (row, stored)
            self._count(row, 1)
            turned.append(row)
        return turned

    def oldest(self, n: int) -> list[WaitRow]:
        """The `n` oldest overdue waits."""
        stored: Iterator[WaitRow] = (w for w in self.repo.overdue(self.rule)
                                     if w.key not in self._buf)
        buffered = sorted((e[0] for e in self._buf.values() if e[0] is not None
                           and e[0].overdue), key=_order)
        return list(islice(heapq.merge(stored, buffered, key=_order), n))

    def take(self) -> tuple[list[WaitRow], list[tuple[str, str]]]:
        """This batch's changes: (waits to write, (rule, key) of waits to delete)."""
        write = [e[0] for e in self._buf.values() if e[0] is not None]
        gone = [(self.rule, k) for k, e in self._buf.items() if e[0] is None and e[1]]
        self._buf = {}
        return write, gone

    def _count(self, w: WaitRow, sign: int) -> None:
        self.overdue += sign
        self.total += sign * to_decimal(w.amount)
        if self.overdue <= 0:  # rounding of a total that went back to nothing
            self.overdue, self.total = 0, Decimal(0)
