"""What the ledger holds, in a few numbers and invoice lists: for the end of a replay and the
demo's summary."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.store.ledger import Invoices

MAX_LISTED = 10000  # invoices per list kept in the summary (the counts stay exact)


@dataclass
class LedgerSummary:
    invoices: int = 0
    pending: int = 0  # not at the final stage (younger than any deadline, or overdue)
    missing: list[str] = field(default_factory=list)  # overdue for a missing rule
    late: list[str] = field(default_factory=list)  # arrived after a missing rule's deadline
    mismatched: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    incomplete: int = 0  # events with missing or malformed fields

    def line(self) -> str:
        return (f"ledger: invoices {self.invoices} pending {self.pending} missing "
                f"{len(self.missing)} late {len(self.late)} mismatched {len(self.mismatched)} "
                f"duplicates {len(self.duplicates)} stuck {len(self.stuck)} incomplete "
                f"{self.incomplete}")


def summarize(repo: Invoices) -> LedgerSummary:
    counts = repo.counts()

    def keys(kind: str) -> list[str]:
        seen = dict.fromkeys(f.key for f in repo.findings((kind,)))
        return list(seen)[:MAX_LISTED]

    return LedgerSummary(
        invoices=counts["invoices"], pending=counts["open"],
        missing=list(dict.fromkeys(w.key for w in repo.waits("missing")))[:MAX_LISTED],
        late=keys("late"), mismatched=keys("mismatch"), duplicates=keys("duplicate"),
        stuck=list(dict.fromkeys(w.key for w in repo.waits("stuck")))[:MAX_LISTED],
        incomplete=len(repo.findings(("incomplete",))))
