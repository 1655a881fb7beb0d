"""What the ledger knows of one invoice, and what one event changed about it.

`InvoiceRecord` is mutable while its batch is open (the ledger updates it in place, once per
event) and stored as one row: times as columns, stages as compact JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agent.store.records import InvoiceRow
from agent.types import Event

# one encoder, made once: json.dumps with options other than the defaults builds a new one
# at every call, which was a third of the cost of writing a record
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# what that encoder runs for a whole value (its C encoder, without the per-call set-up); the
# same text, and `_ENCODE` where the C encoder is missing. Rows are not circular: no markers.
_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_CHUNKS = (_C_ENCODER(None, None, json.encoder.encode_basestring, None, ":", ",", False, False,
                      True) if _C_ENCODER is not None else None)


def _encode(data: dict[str, Any]) -> str:
    if _CHUNKS is None:  # pragma: no cover
        return _ENCODE(data)
    return "".join(_CHUNKS(data, 0))


class Seen:
    """One stage of one invoice: when it was first reached and the fields it carried then."""

    __slots__ = ("ts", "amount", "issue_date", "taxpayer_id", "status", "source", "file",
                 "line", "n")

    def __init__(self, ts: float, amount: str | None, issue_date: str | None,
                 taxpayer_id: str | None, status: str | None, source: str, file: str | None,
                 line: int | None, n: int = 1):
        self.ts = ts
        self.amount = amount
        self.issue_date = issue_date
        self.taxpayer_id = taxpayer_id
        self.status = status
        self.source = source
        self.file = file  # the log file's name (not its folder: rows stay small)
        self.line = line
        self.n = n  # times the stage was reached with these contents (retries)

    @classmethod
    def of(cls, ev: Event, ts: float) -> "Seen":
        file = ev.path.rsplit("/", 1)[-1] if ev.path else None
        return cls(ts, ev.amount, ev.issue_date, ev.taxpayer_id, ev.status, ev.source, file,
                   ev.line_no)

    def get(self, field: str) -> str | None:
        value: str | None = getattr(self, field)
        return value


class InvoiceRecord:
    """Every stage one invoice reached, its latest status and the times that index it."""

    __slots__ = ("key", "number", "first_ts", "last_ts", "start_ts", "final_ts", "status",
                 "status_ts", "taxpayer_id", "stages")

    def __init__(self, key: str, number: str, ts: float):
        self.key = key
        self.number = number  # as the first event wrote it
        self.first_ts = ts
        self.last_ts = ts
        self.start_ts: float | None = None  # when it reached the first stage
        self.final_ts: float | None = None
        self.status: str | None = None
        self.status_ts: float | None = None
        self.taxpayer_id: str | None = None
        self.stages: dict[str, Seen] = {}

    @property
    def pending(self) -> bool:
        """At the first stage and not yet at the final one."""
        return self.start_ts is not None and self.final_ts is None

    def amount(self) -> str | None:
        """The amount the earliest stage that carried one gave."""
        for seen in self.stages.values():
            if seen.amount is not None:
                return seen.amount
        return None

    def to_row(self) -> InvoiceRow:
        st = {}
        for name, s in self.stages.items():  # Seen.to_list, inlined: once per stored record
            st[name] = [s.ts, s.amount, s.issue_date, s.taxpayer_id, s.status, s.source, s.file,
                        s.line, s.n]
        return InvoiceRow(self.key, self.first_ts, self.last_ts, self.start_ts, self.final_ts,
                          _encode({"no": self.number, "s": self.status, "sts": self.status_ts,
                                   "tp": self.taxpayer_id, "st": st}))

    @classmethod
    def from_row(cls, row: InvoiceRow) -> "InvoiceRecord":
        data = json.loads(row.data)
        rec = cls(row.key, data.get("no") or row.key, row.first_ts)
        rec.last_ts, rec.start_ts, rec.final_ts = row.last_ts, row.start_ts, row.final_ts
        rec.status, rec.status_ts, rec.taxpayer_id = data.get("s"), data.get("sts"), data.get("tp")
        rec.stages = {name: Seen(*values) for name, values in data.get("st", {}).items()}
        return rec


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A compared field that disagrees between two stages of one invoice."""

    field: str
    stage: str  # the earlier stage that gave the reference value
    value: str
    other_stage: str  # the stage just reached
    other_value: str

    def text(self) -> str:
        return f"{self.field} {self.stage} {self.value} ≠ {self.other_stage} {self.other_value}"


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A stage reached again with other contents than the first time."""

    stage: str
    diffs: tuple[tuple[str, str | None, str | None], ...]  # (field, first value, now)

    def text(self) -> str:
        return f"{self.stage} again: " + ", ".join(f"{f} {a} → {b}" for f, a, b in self.diffs)


@dataclass(slots=True)  # not frozen: one is made per ledger event, and a frozen dataclass
class Update:           # is three times slower to build (treat it as read-only all the same)
    """What the ledger made of one event: shown to the ledger rules (`on_ledger`)."""

    ev: Event
    ts: float  # the event's time, epoch seconds
    key: str | None  # None: not ledgered (its number is malformed)
    number: str  # the invoice number as written
    record: InvoiceRecord | None  # the invoice after the event
    reached: tuple[str, ...] = ()  # stages reached for the first time
    new: bool = False  # the invoice was first seen with this event
    status_before: str | None = None  # its latest status before the event
    problems: tuple[str, ...] = ()  # incomplete: missing or malformed fields
    mismatches: tuple[Mismatch, ...] = ()
    duplicate: Duplicate | None = None
