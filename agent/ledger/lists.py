"""The ledger's lists for finance, as rows: what `invoice-agent invoices` prints.

Read from the committed state (a second reader beside the running daemon, WAL mode). Ages are
measured against the newest event the ledger has seen, not the wall clock, so a list read
from a copied state file or after a replay still says how long each invoice waited.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

from agent.ledger.records import InvoiceRecord
from agent.store.ledger import Invoices
from agent.store.records import LedgerFinding, WaitRow

Row = dict[str, Any]

COLUMNS: dict[str, list[str]] = {
    "missing": ["invoice_no", "rule", "since", "due", "waiting_minutes", "amount", "issue_date",
                "taxpayer_id", "stages", "status"],
    "late": ["invoice_no", "rule", "since", "due", "arrived", "late_minutes", "amount"],
    "mismatched": ["invoice_no", "field", "stage", "value", "other_stage", "other_value",
                   "found", "where"],
    "stuck": ["invoice_no", "rule", "status", "since", "due", "waiting_minutes", "amount",
              "stages"],
    "duplicates": ["invoice_no", "stage", "changes", "found", "where"],
    "incomplete": ["invoice_no", "problems", "found", "where"],
}
HEADERS_ZH = {
    "invoice_no": "发票号码", "rule": "规则", "since": "起始时间", "due": "时限",
    "waiting_minutes": "等待分钟", "amount": "金额", "issue_date": "开票日期",
    "taxpayer_id": "纳税人识别号", "stages": "已到阶段", "status": "状态", "arrived": "到达时间",
    "late_minutes": "迟到分钟", "field": "字段", "stage": "阶段", "value": "值",
    "other_stage": "另一阶段", "other_value": "另一值", "found": "发现时间", "where": "位置",
    "changes": "变化", "problems": "问题",
}


class Lister:
    def __init__(self, repo: Invoices, zone: tzinfo, order: list[str]):
        self.repo = repo
        self.zone = zone
        self.order = order  # configured stages, in flow order
        self.asof = repo.newest()

    def rows(self, kind: str, since: float | None) -> list[Row]:
        makers: dict[str, Callable[[float | None], list[Row]]] = {
            "missing": lambda s: [self._wait(w) for w in self.repo.waits("missing", s)],
            "stuck": lambda s: [self._wait(w) for w in self.repo.waits("stuck", s)],
            "late": lambda s: [self._late(f) for f in self.repo.findings(("late",), s)],
            "mismatched": lambda s: [self._mismatch(f)
                                     for f in self.repo.findings(("mismatch",), s)],
            "duplicates": lambda s: [self._duplicate(f)
                                     for f in self.repo.findings(("duplicate",), s)],
            "incomplete": lambda s: [self._incomplete(f)
                                     for f in self.repo.findings(("incomplete",), s)],
        }
        return makers[kind](since)

    def time(self, ts: float | None) -> str | None:
        return None if ts is None else datetime.fromtimestamp(ts, self.zone).strftime(
            "%Y-%m-%d %H:%M:%S")

    def record(self, key: str) -> InvoiceRecord | None:
        row = self.repo.get(key)
        return InvoiceRecord.from_row(row) if row else None

    def _wait(self, w: WaitRow) -> Row:
        rec = self.record(w.key)
        first = _first(rec, "issue_date")
        return {"invoice_no": w.key, "rule": w.rule, "since": self.time(w.since),
                "due": self.time(w.due),
                "waiting_minutes": int((self.asof - w.since) // 60) if self.asof else None,
                "amount": w.amount, "issue_date": first,
                "taxpayer_id": rec.taxpayer_id if rec else None,
                "stages": ",".join(s for s in self.order if rec and s in rec.stages),
                "status": rec.status if rec else None}

    def _late(self, f: LedgerFinding) -> Row:
        d = f.detail
        return {"invoice_no": f.key, "rule": f.rule, "since": self.time(d.get("since")),
                "due": self.time(d.get("due")), "arrived": self.time(d.get("arrived")),
                "late_minutes": d.get("late_minutes"), "amount": d.get("amount")}

    def _where(self, d: dict[str, Any]) -> str:
        return f"{d.get('file') or d.get('source')}:{d.get('line')}" if d.get("line") else str(
            d.get("source", ""))

    def _mismatch(self, f: LedgerFinding) -> Row:
        d = f.detail
        return {"invoice_no": f.key, "field": d.get("field"), "stage": d.get("stage"),
                "value": d.get("value"), "other_stage": d.get("other_stage"),
                "other_value": d.get("other_value"), "found": self.time(f.ts),
                "where": self._where(d)}

    def _duplicate(self, f: LedgerFinding) -> Row:
        d = f.detail
        changes = "; ".join(f"{name} {a} → {b}" for name, a, b in d.get("diffs", []))
        return {"invoice_no": f.key, "stage": d.get("stage"), "changes": changes,
                "found": self.time(f.ts), "where": self._where(d)}

    def _incomplete(self, f: LedgerFinding) -> Row:
        d = f.detail
        return {"invoice_no": d.get("number") or f.key, "problems": "; ".join(
            d.get("problems", [])), "found": self.time(f.ts), "where": self._where(d)}

    def show(self, key: str) -> dict[str, Any] | None:
        """Every stage of one invoice with its time and fields, its waits and findings."""
        rec = self.record(key)
        if rec is None:
            return None
        stages = []
        for name in self.order + [s for s in rec.stages if s not in self.order]:
            seen = rec.stages.get(name)
            stages.append({"stage": name, "time": self.time(seen.ts) if seen else None,
                           "amount": seen.amount if seen else None,
                           "issue_date": seen.issue_date if seen else None,
                           "taxpayer_id": seen.taxpayer_id if seen else None,
                           "status": seen.status if seen else None,
                           "where": f"{seen.file or seen.source}:{seen.line}" if seen else None,
                           "times": seen.n if seen else 0})
        return {"invoice_no": rec.key, "number": rec.number, "status": rec.status,
                "first_seen": self.time(rec.first_ts), "last_seen": self.time(rec.last_ts),
                "complete": self.time(rec.final_ts), "stages": stages,
                "waits": [{"rule": w.rule, "kind": w.kind, "overdue": w.overdue,
                           "since": self.time(w.since), "due": self.time(w.due)}
                          for w in self.repo.waits_of(rec.key)],
                "findings": [{"kind": f.kind, "rule": f.rule, "found": self.time(f.ts),
                              **{k: v for k, v in f.detail.items() if k not in ("source",)}}
                             for f in self.repo.findings_of(rec.key)]}


def _first(rec: InvoiceRecord | None, field: str) -> str | None:
    if rec is None:
        return None
    for seen in rec.stages.values():
        value = seen.get(field)
        if value is not None:
            return value
    return None
