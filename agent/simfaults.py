"""Invoice-level faults for the simulated day: single invoices that go missing, arrive late or
arrive wrong in the ERP, the cases only the invoice ledger can catch.

Kept apart from the flow incidents (agent/simulator.py): those change how the whole system
behaves for a while, these change what happens to a few named invoices. Choices and delays come
from their own random stream, so the day's other lines are the same with or without faults.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone

import numpy as np

TZ = timezone(timedelta(hours=8))
FAULT_NAMES = ("missing", "late", "mismatch")


@dataclass(frozen=True)
class InvoiceFault:
    """`count` invoices issued from `start` on are `name`d: missing (never reach the ERP), late
    (reach it 80-95 minutes after issue) or mismatch (reach it with ten times the amount).
    `end` is when the ledger has caught them all; `invoices` is filled in by simulate()."""

    name: str
    start: datetime
    end: datetime
    description: str
    count: int
    invoices: tuple[str, ...] = ()


def default_faults(day: date = date(2026, 11, 2)) -> list[InvoiceFault]:
    """The demo's invoice faults, at times clear of the flow incidents."""

    def at(hh: int, mm: int) -> datetime:
        return datetime.combine(day, time(hh, mm), TZ)

    return [
        InvoiceFault("mismatch", at(11, 0), at(11, 5),
                     "3 invoices reach the ERP with ten times their issued amount", 3),
        InvoiceFault("late", at(12, 10), at(13, 50),
                     "5 invoices reach the ERP 80-95 minutes after issue (deadline 60)", 5),
        InvoiceFault("missing", at(15, 10), at(16, 15),
                     "4 invoices are issued and uploaded but never reach the ERP", 4),
    ]


class FaultPlan:
    """Which invoice of the day gets which fault, and what its ERP lines then look like."""

    def __init__(self, faults: list[InvoiceFault], midnight: datetime, seed: int):
        for f in faults:
            if f.name not in FAULT_NAMES or f.count < 1:
                raise ValueError(f"bad invoice fault {f.name!r}: name must be one of "
                                 f"{FAULT_NAMES} and count at least 1")
        self.faults = faults
        self.midnight = midnight
        self.rng = np.random.default_rng(seed + 1)
        self.hit: dict[int, str] = {}  # invoice index -> fault name

    def assign(self, issued: list[float], numbers: list[str]) -> list[InvoiceFault]:
        """The first `count` invoices issued at or after each fault's start (seconds since
        midnight in `issued`, sorted) get it; returns the faults with their invoice numbers."""
        out = []
        for f in self.faults:
            start = (f.start - self.midnight).total_seconds()
            chosen = [k for k, t in enumerate(issued) if t >= start and k not in self.hit]
            chosen = chosen[:f.count]
            for k in chosen:
                self.hit[k] = f.name
            out.append(replace(f, invoices=tuple(numbers[k] for k in chosen)))
        return out

    def sync_time(self, k: int, issued: float, when: float) -> float:
        """When invoice `k`'s sync happens: late ones well after the deadline."""
        if self.hit.get(k) == "late":
            return max(when, issued + float(self.rng.uniform(80, 95)) * 60)
        return when
