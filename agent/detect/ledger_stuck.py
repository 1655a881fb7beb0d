"""`type: stuck`: an invoice whose latest status stays pending (待处理/待更新/未处理) too long.

The status is the newest one any event of a stage source gave the invoice. The wait starts
when it turns pending and ends when a later event gives it another status.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import timedelta
from typing import Any

from pydantic import Field

from agent.config import Duration
from agent.detect.base import NO_FINDINGS, BuildContext
from agent.detect.ledger_base import LISTING_NAMES, DeadlineRule, LedgerRuleConfig, minutes
from agent.ledger.config import DEFAULT_PENDING
from agent.ledger.records import Update
from agent.store.records import WaitRow
from agent.types import Finding

_NAMES = LISTING_NAMES | {"oldest_minutes", "oldest_since", "amount_total", "late_count",
                          "late_list", "deadline_minutes"}


class StuckConfig(LedgerRuleConfig):
    """Fires when invoices stay in a pending status for longer than `deadline`."""

    deadline: Duration = Field(description="How long a pending status may last")
    statuses: list[str] = Field(default_factory=lambda: list(DEFAULT_PENDING),
                                description="Statuses that mean pending (after `values:`)")

    def template_names(self) -> set[str]:
        return _NAMES

    def build(self, context: BuildContext) -> "StuckRule":
        return StuckRule(self, context)


class StuckRule(DeadlineRule):
    wait_kind = "stuck"

    def __init__(self, config: StuckConfig, context: BuildContext):
        super().__init__(config, context)
        self.deadline: timedelta = config.deadline
        self.statuses = frozenset(s.lower() for s in config.statuses)

    def on_ledger(self, update: Update) -> Collection[Finding]:
        rec = update.record
        if rec is None:
            return NO_FINDINGS
        now_pending = rec.status in self.statuses
        was_pending = update.status_before in self.statuses
        if now_pending and not was_pending:
            since = rec.status_ts if rec.status_ts is not None else update.ts
            self.waits.add(rec.key, since + self.deadline.total_seconds(), since, rec.amount(),
                           self.cutoff)
        elif was_pending and not now_pending:
            self.ended(rec.key, update.ts, {"status": rec.status})
        return NO_FINDINGS

    def values(self, now: float) -> tuple[dict[str, Any], str | None]:
        values, severity = super().values(now)
        values["deadline_minutes"] = minutes(self.deadline)
        return values, severity

    def note(self, w: WaitRow, now: float) -> str:
        return f"pending {int((now - w.since) // 60)} min"

    def default_text(self, values: Mapping[str, Any], lang: str) -> str:
        v = values
        if not v.get("count"):
            late = v.get("late_list")
            if lang == "zh":
                return "没有发票停留在待处理状态" + (f"；超时后才处理：{late}" if late else "")
            return "no invoice left pending" + (f"; moved on after the deadline: {late}"
                                                 if late else "")
        if lang == "zh":
            return (f"{v['count']} 张发票待处理超过 {v['deadline_minutes']} 分钟："
                    f"{v['invoice_list']}；金额合计 {v['amount_total']}")
        return (f"{v['count']} invoices pending for over {v['deadline_minutes']} min: "
                f"{v['invoice_list']}; total {v['amount_total']}")
