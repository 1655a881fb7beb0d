"""The ledger's per-event checks as rule types: `mismatch`, `duplicate`, `incomplete`.

Each fires at the line that showed the problem, lists the invoices (with both values, the
changed contents or what is wrong) while it fires, and resolves with the first window that
closes without a new one. Every finding is also kept for `invoice-agent invoices`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from agent.detect.base import BuildContext
from agent.detect.ledger_base import LISTING_NAMES, EpisodeRule, LedgerRuleConfig
from agent.ledger.config import Field_
from agent.ledger.records import Update

_WORDS = {
    "mismatch": ("张发票各阶段字段不一致", "invoices whose fields disagree across stages"),
    "duplicate": ("张发票重复到达同一阶段且内容不同", "invoices reaching a stage twice with other "
                                                    "contents"),
    "incomplete": ("条发票记录缺少字段或格式错误", "invoice events with missing or malformed "
                                                "fields"),
}


class _CheckConfig(LedgerRuleConfig):
    stages: list[str] = Field(default_factory=list,
                              description="Only these stages (default: every stage)")

    def stages_used(self) -> list[tuple[str, str]]:
        return [(f"stages.{i}", s) for i, s in enumerate(self.stages)]

    def template_names(self) -> set[str]:
        return LISTING_NAMES


class _CheckRule(EpisodeRule):
    check = ""

    def __init__(self, config: _CheckConfig, context: BuildContext):
        super().__init__(config, context)
        self.stages = frozenset(config.stages) or None

    def default_text(self, values: Mapping[str, Any], lang: str) -> str:
        zh, en = _WORDS[self.check]
        if not values.get("count"):
            return "没有新发现" if lang == "zh" else "nothing new found"
        if lang == "zh":
            return f"{values['count']} {zh}：{values['invoice_list']}"
        return f"{values['count']} {en}: {values['invoice_list']}"


class MismatchConfig(_CheckConfig):
    """Fires when an invoice's `fields` differ between two stages (both values listed)."""

    fields: list[Field_] = Field(default_factory=list,
                                 description="Compared fields to check (default: ledger.compare)")

    def build(self, context: BuildContext) -> "MismatchRule":
        return MismatchRule(self, context)


class MismatchRule(_CheckRule):
    check = "mismatch"

    def __init__(self, config: MismatchConfig, context: BuildContext):
        super().__init__(config, context)
        self.fields = frozenset(config.fields or self.ledger_config.compare)

    def items(self, u: Update) -> list[tuple[str, str]]:
        return [(u.key or u.number, m.text()) for m in u.mismatches if m.field in self.fields
                and (self.stages is None or m.other_stage in self.stages)]


class DuplicateConfig(_CheckConfig):
    """Fires when an invoice reaches a stage again with other contents."""

    def build(self, context: BuildContext) -> "DuplicateRule":
        return DuplicateRule(self, context)


class DuplicateRule(_CheckRule):
    check = "duplicate"

    def items(self, u: Update) -> list[tuple[str, str]]:
        d = u.duplicate
        if d is None or (self.stages is not None and d.stage not in self.stages):
            return []
        return [(u.key or u.number, d.text())]


class IncompleteConfig(_CheckConfig):
    """Fires on ledger events missing required fields or with a malformed invoice number,
    taxpayer id, amount or date, and on an invoice number used by two taxpayers."""

    def build(self, context: BuildContext) -> "IncompleteRule":
        return IncompleteRule(self, context)


class IncompleteRule(_CheckRule):
    check = "incomplete"

    def items(self, u: Update) -> list[tuple[str, str]]:
        if not u.problems:
            return []
        if self.stages is not None and not (set(u.reached) & self.stages):
            return []
        where = f"{u.ev.source}:{u.ev.line_no}" if u.ev.line_no else u.ev.source
        return [(u.key or u.number[:40], f"{'; '.join(u.problems)} @ {where}")]
