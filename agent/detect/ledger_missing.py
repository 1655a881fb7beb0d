"""`type: missing`: invoices at stage `from` that did not reach stage `to` within `deadline`.

The case no generic log alerter catches: "the invoice was issued on the platform, but it is not
in our system". One alert lists the overdue invoices; it grows as more go overdue and resolves
when every one of them arrived, naming those that came late (also kept for `invoices late`).
When no invoice at all reached `to` for `silent_after` while several wait, the source feeding
it is down: the alert says so ("erp silent since 10:02; 214 invoices waiting") instead of
reading as 214 lost invoices. (A lone overdue invoice on a quiet night is listed as lost: one
invoice is no evidence that a whole source stopped.)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from agent.config import Duration
from agent.detect.base import NO_FINDINGS, BuildContext
from agent.detect.ledger_base import LISTING_NAMES, DeadlineRule, LedgerRuleConfig, minutes
from agent.ledger.records import Update
from agent.store.records import WaitRow
from agent.types import Finding

_NAMES = LISTING_NAMES | {"oldest_minutes", "oldest_since", "amount_total", "late_count",
                          "late_list", "from_stage", "to_stage", "to_source", "deadline_minutes",
                          "silent", "silent_since"}


class MissingConfig(LedgerRuleConfig):
    """Fires when invoices at stage `from` have not reached stage `to` within `deadline`."""

    from_: str = Field(alias="from", description="Stage the deadline counts from")
    to: str = Field(description="Stage that must follow")
    deadline: Duration | None = Field(None, description="Default: ledger.deadline")
    silent_after: Duration | None = Field(
        None, description="No invoice reaching `to` for this long means its source is down "
                          "(default: the deadline)")
    silent_min: int = Field(3, ge=1, description="...when at least this many invoices wait")

    def stages_used(self) -> list[tuple[str, str]]:
        return [("from", self.from_), ("to", self.to)]

    def template_names(self) -> set[str]:
        return _NAMES

    def build(self, context: BuildContext) -> "MissingRule":
        return MissingRule(self, context)


class MissingRule(DeadlineRule):
    wait_kind = "missing"
    late_finding = True

    def __init__(self, config: MissingConfig, context: BuildContext):
        super().__init__(config, context)
        self.from_stage, self.to_stage = config.from_, config.to
        self.deadline: timedelta = config.deadline or self.ledger_config.deadline
        self.silent_after: timedelta = config.silent_after or self.deadline
        self.silent_min = config.silent_min
        self.to_source = self.ledger_config.stages[config.to].source
        self.last_arrival: float | None = None  # the last time any invoice reached `to`
        self._deadline = self.deadline.total_seconds()

    def start(self, now: datetime) -> None:
        if self.last_arrival is None:
            self.last_arrival = now.timestamp()  # silence counts from when watching began

    def on_ledger(self, update: Update) -> Collection[Finding]:
        rec = update.record
        reached = update.reached
        if rec is None or not reached:
            return NO_FINDINGS
        if self.to_stage in reached:
            self.ended(rec.key, update.ts, {"from": self.from_stage, "to": self.to_stage})
        if self.from_stage in reached and self.to_stage not in rec.stages:
            since = rec.stages[self.from_stage].ts
            self.waits.add(rec.key, since + self._deadline, since, rec.amount(), self.cutoff)
        return NO_FINDINGS

    def _end(self, key: str, ts: float, detail: dict[str, Any]) -> WaitRow | None:
        # the source feeding `to` is alive as of its newest arrival, once that arrival's
        # window is judged
        self.last_arrival = ts if self.last_arrival is None else max(self.last_arrival, ts)
        return super()._end(key, ts, detail)

    def values(self, now: float) -> tuple[dict[str, Any], str | None]:
        values, severity = super().values(now)
        last = self.last_arrival if self.last_arrival is not None else now
        silent = (values["count"] >= self.silent_min
                  and now - last >= self.silent_after.total_seconds())
        values.update(from_stage=self.from_stage, to_stage=self.to_stage,
                      to_source=self.to_source, deadline_minutes=minutes(self.deadline),
                      silent=silent, silent_since=self.local(last).strftime("%H:%M")
                      if silent else "")
        return values, severity

    def cause(self, values: Mapping[str, Any]) -> str | None:
        # a change either way is told at once: the source went down, or it is back and these
        # invoices are still missing
        return "silent" if values.get("silent") else "overdue"

    def default_text(self, values: Mapping[str, Any], lang: str) -> str:
        v = values
        if not v.get("count"):
            late = v.get("late_list")
            if lang == "zh":
                return "全部发票已到达" + (f"；迟到：{late}" if late else "")
            return "every invoice arrived" + (f"; late: {late}" if late else "")
        if v.get("silent"):
            if lang == "zh":
                return (f"{v['to_source']} 自 {v['silent_since']} 起没有发票到达 {v['to_stage']}："
                        f"{v['count']} 张发票在等待（来源中断，并非逐张丢失），金额合计 "
                        f"{v['amount_total']}，最久 {v['oldest_minutes']} 分钟")
            return (f"{v['to_source']} silent since {v['silent_since']} (no invoice reached "
                    f"{v['to_stage']}): {v['count']} invoices waiting, total "
                    f"{v['amount_total']}, oldest {v['oldest_minutes']} min")
        if lang == "zh":
            return (f"{v['count']} 张发票 {v['from_stage']} 后 {v['deadline_minutes']} 分钟内未到 "
                    f"{v['to_stage']}：{v['invoice_list']}；最久 {v['oldest_minutes']} 分钟，"
                    f"金额合计 {v['amount_total']}")
        return (f"{v['count']} invoices not {v['to_stage']} within {v['deadline_minutes']} min "
                f"of {v['from_stage']}: {v['invoice_list']}; oldest {v['oldest_minutes']} min, "
                f"total {v['amount_total']}")

    def state(self) -> Any:
        return {**super().state(), "last_arrival": self.last_arrival}

    def restore(self, state: Any) -> None:
        super().restore(state)
        if isinstance(state, dict) and state.get("last_arrival") is not None:
            self.last_arrival = float(state["last_arrival"])
