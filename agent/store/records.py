"""Typed records that cross the store boundary (the stages' own records come from agent.types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.types import AlertState, ParseFailure, Transition, Window


@dataclass(frozen=True, slots=True)
class FileOffset:
    """Where reading of one file identity of one source stands (see agent.sources.position)."""

    source: str
    file_id: str
    path: str
    offset: int
    line_no: int
    fingerprint: str
    head: str
    updated: str = ""  # when its position last changed (UTC, ISO); set by the store


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A notification to deliver to one target, as written by the batch that caused it.

    `target` is a sender's stable target key; "" (rows from before per-target delivery)
    means every target routed for `severity`, expanded into one row each before sending.
    """

    fingerprint: str  # the alert's: one alert's messages go out in order
    severity: str
    title: str
    body: str
    target: str = ""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A stored notification and how its delivery stands."""

    id: int
    message: OutboxMessage
    attempts: int
    next_attempt: float  # wall-clock seconds; due when <= now
    status: str  # pending | sent | failed (permanently: not retried)
    last_error: str
    created: str
    delivered: str


@dataclass(slots=True)
class Batch:
    """Everything one batch of lines changed, written in one transaction by `Store.commit`."""

    # per source, every file it still tracks: rows of files it let go are removed
    offsets: dict[str, list[FileOffset]] = field(default_factory=dict)
    counters: dict[tuple[str, str], int] = field(default_factory=dict)  # (source, name) -> +n
    samples: list[ParseFailure] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    engine_state: dict[str, Any] = field(default_factory=dict)  # key -> JSON-able value
    alerts: list[AlertState] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    outbox: list[OutboxMessage] = field(default_factory=list)
    ledger: "LedgerChanges | None" = None  # the ledger's changes caused by the same lines

    def count(self, source: str, name: str, n: int = 1) -> None:
        key = (source, name)
        self.counters[key] = self.counters.get(key, 0) + n

    def empty(self) -> bool:
        return not (self.offsets or self.counters or self.samples or self.windows
                    or self.alerts or self.transitions or self.outbox
                    or (self.ledger is not None and not self.ledger.empty()))


@dataclass(frozen=True, slots=True)
class InvoiceRow:
    """One invoice of the ledger as stored: times (epoch seconds, event time) and its stages
    as JSON (agent.ledger.records.InvoiceRecord)."""

    key: str
    first_ts: float
    last_ts: float
    start_ts: float | None  # when it reached the first stage (None: not seen there)
    final_ts: float | None  # None while the invoice has not reached its final stage
    data: str

    @property
    def pending(self) -> bool:
        """At the first stage and not yet at the final one."""
        return self.start_ts is not None and self.final_ts is None


@dataclass(frozen=True, slots=True)
class WaitRow:
    """An invoice a ledger rule waits on: due at `due`, waiting since `since` (epoch s)."""

    rule: str
    kind: str  # missing | stuck | month_end
    key: str
    due: float
    since: float
    overdue: bool
    amount: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerFinding:
    """Something the ledger found about one invoice, kept for `invoice-agent invoices`."""

    kind: str  # late | mismatch | duplicate | incomplete
    key: str  # the ledger key, or the number as written when it is malformed
    rule: str
    ts: float  # event time
    detail: dict[str, Any]


@dataclass(slots=True)
class LedgerChanges:
    """What one batch changed in the ledger, written by `Store.commit` with its offsets."""

    invoices: list[InvoiceRow] = field(default_factory=list)
    waits: list[WaitRow] = field(default_factory=list)  # inserted or updated
    gone: list[tuple[str, str]] = field(default_factory=list)  # (rule, key) waits removed
    findings: list[LedgerFinding] = field(default_factory=list)
    rules: list[str] | None = None  # when set, waits of any other rule are dropped

    def empty(self) -> bool:
        return not (self.invoices or self.waits or self.gone or self.findings
                    or self.rules is not None)
