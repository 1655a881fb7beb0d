"""`type: month_end`: last month's invoices still not at the final stage near the filing day.

Invoices must be in the books before the tax filing deadline (the 15th by default). Each
invoice not yet at `stage` (default the final one) waits until `warn_day` of the month after its
issue month (the rule's severity from then on); on `day` the alert escalates to critical.
The issue month is the invoice's issue date when an event gave one, else the month it was
first seen (local time).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date, datetime
from typing import Any

from pydantic import Field, model_validator

from agent.detect.base import NO_FINDINGS, BuildContext
from agent.detect.ledger_base import LISTING_NAMES, DeadlineRule, LedgerRuleConfig
from agent.ledger.records import Update
from agent.types import Finding

_NAMES = LISTING_NAMES | {"oldest_minutes", "oldest_since", "amount_total", "late_count",
                          "late_list", "months", "deadline", "stage"}


class MonthEndConfig(LedgerRuleConfig):
    """Fires when invoices of a past month are not at `stage` on or after `warn_day`."""

    stage: str | None = Field(None, description="Stage invoices must reach (default: final)")
    day: int = Field(15, ge=1, le=28, description="Filing deadline: critical from this day")
    warn_day: int | None = Field(
        None, ge=1, le=28, description="Alert (at the rule's severity) from this day; default "
                                       "`day`")

    @model_validator(mode="after")
    def _order(self) -> "MonthEndConfig":
        if self.warn_day is not None and self.warn_day > self.day:
            raise ValueError("warn_day must not be after day")
        return self

    def stages_used(self) -> list[tuple[str, str]]:
        return [("stage", self.stage)] if self.stage else []

    def template_names(self) -> set[str]:
        return _NAMES

    def build(self, context: BuildContext) -> "MonthEndRule":
        return MonthEndRule(self, context)


class MonthEndRule(DeadlineRule):
    wait_kind = "month_end"

    def __init__(self, config: MonthEndConfig, context: BuildContext):
        super().__init__(config, context)
        self.stage = config.stage or self.ledger_config.final
        self.day = config.day
        self.warn_day = config.warn_day or config.day

    def on_ledger(self, update: Update) -> Collection[Finding]:
        rec = update.record
        if rec is None:
            return NO_FINDINGS
        if self.stage in update.reached:
            self.ended(rec.key, update.ts, {"to": self.stage})
        elif update.new and self.stage not in rec.stages:
            month = _month(update.ev.issue_date) or self.local(rec.first_ts).date().replace(day=1)
            due = self._at(month, self.warn_day)
            self.waits.add(rec.key, due, rec.first_ts, rec.amount(), self.cutoff)
        return NO_FINDINGS

    def _at(self, month: date, day: int) -> float:
        """Midnight (local) of `day` in the month after `month`."""
        y, m = (month.year + 1, 1) if month.month == 12 else (month.year, month.month + 1)
        return datetime(y, m, day, tzinfo=self.zone).timestamp()

    def values(self, now: float) -> tuple[dict[str, Any], str | None]:
        values, _ = super().values(now)
        rows = self.waits.oldest(self.limit)
        months = sorted({self.local(w.due).strftime("%Y-%m") for w in rows})
        # the month the oldest waits belong to is the one before its due date's month
        shown = [_previous(m) for m in months]
        critical = None
        if rows:
            due = self.local(rows[0].due)
            filing = due.replace(day=self.day)
            values["deadline"] = filing.strftime("%Y-%m-%d")
            if now >= filing.timestamp():
                critical = "critical"
        values.update(months=", ".join(shown), stage=self.stage)
        values.setdefault("deadline", "")
        return values, critical

    def default_text(self, values: Mapping[str, Any], lang: str) -> str:
        v = values
        if not v.get("count"):
            if lang == "zh":
                return "上月发票已全部入账"
            return "every invoice of last month reached " + str(v.get("stage", "its final stage"))
        if lang == "zh":
            return (f"{v['months']} 月仍有 {v['count']} 张发票未到 {v['stage']}（申报截止 "
                    f"{v['deadline']}）：{v['invoice_list']}；金额合计 {v['amount_total']}")
        return (f"{v['count']} invoices of {v['months']} not yet {v['stage']} (filing deadline "
                f"{v['deadline']}): {v['invoice_list']}; total {v['amount_total']}")


def _month(issue_date: str | None) -> date | None:
    if not issue_date:
        return None
    try:
        return date.fromisoformat(issue_date).replace(day=1)
    except ValueError:
        return None


def _previous(month: str) -> str:
    y, m = int(month[:4]), int(month[5:7])
    return f"{y - 1}-12" if m == 1 else f"{y}-{m - 1:02d}"
