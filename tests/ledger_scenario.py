"""A scenario with a known list of missing, late and mismatched invoices, written as real log
files (a platform log of issued invoices, an ERP log of synced ones), shared by the ledger
tests. Times are minutes after `t0`, so the same scenario can be replayed in the past or
followed live."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from agent.ledger.numbers import uscc_check_char

TAX = "91440300MA5FXT3K2" + uscc_check_char("91440300MA5FXT3K2")
PREFIX = "264424217506403"  # + 5 digits: 20-digit all-electronic numbers


def no(i: int) -> str:
    return f"{PREFIX}{i:05d}"


CONFIG = """\
state_dir: state
window: {window}
lateness: {lateness}
poll_interval: 200ms
sources:
  - name: platform
    paths: ["logs/platform.log"]
    fields: {{ts: time, event: action, invoice_no: fphm, issue_date: kprq, taxpayer_id: nsrsbh,
             status: result}}
    values: {{status: {{成功: ok}}}}
  - name: erp
    paths: ["logs/erp.log"]
    event: sync
    fields: {{ts: time, invoice_no: fphm, amount: je, status: result}}
    values: {{status: {{成功: ok, 失败: failed}}}}
rules: ["rules/*.yaml"]
notify: {{language: en}}
ledger:
  stages:
    issued: {{source: platform, event: issue, require: [amount, taxpayer_id]}}
    synced: {{source: erp, status: ok}}
  deadline: {deadline}
"""

RULES = """\
rules:
  - name: not_synced
    type: missing
    from: issued
    to: synced
    deadline: {deadline}
    limit: {limit}
    severity: critical
  - name: amount_mismatch
    type: mismatch
    fields: [amount]
    severity: critical
  - name: stuck
    type: stuck
    deadline: {deadline}
  - name: duplicate
    type: duplicate
  - name: incomplete
    type: incomplete
"""


def layout(tmp: Path, *, window: str = "5m", lateness: str = "30s", deadline: str = "30m",
           limit: int = 20, rules: str | None = None) -> Path:
    (tmp / "logs").mkdir(exist_ok=True)
    (tmp / "rules").mkdir(exist_ok=True)
    (tmp / "rules" / "r.yaml").write_text(
        rules if rules is not None else RULES.format(deadline=deadline, limit=limit),
        encoding="utf-8")
    config = tmp / "agent.yaml"
    config.write_text(CONFIG.format(window=window, lateness=lateness, deadline=deadline),
                      encoding="utf-8")
    return config


def issue_line(ts: datetime, i: int, amount: str = "100.00", tax: str = TAX) -> str:
    return json.dumps({"time": ts.isoformat(), "action": "issue", "fphm": no(i), "amount": amount,
                       "kprq": ts.date().isoformat(), "nsrsbh": tax, "result": "成功"},
                      ensure_ascii=False) + "\n"


def sync_line(ts: datetime, i: int, amount: str = "100.00", result: str = "成功") -> str:
    return json.dumps({"time": ts.isoformat(), "fphm": no(i), "je": amount, "result": result},
                      ensure_ascii=False) + "\n"


@dataclass
class Scenario:
    """One invoice issued every minute for `minutes`; each synced `sync_after` minutes later,
    except the `missing` ones (never), the `late` ones (`late_after` minutes) and the
    `mismatched` ones (with ten times the amount)."""

    t0: datetime
    minutes: int = 180
    sync_after: int = 2
    missing: set[int] = field(default_factory=lambda: {95, 96})
    late: set[int] = field(default_factory=lambda: {20, 21})
    late_after: int = 50
    mismatched: set[int] = field(default_factory=lambda: {60, 61})
    unsynced_tail: int = 2  # the last invoices have no sync yet when the logs end

    def lines(self) -> tuple[list[tuple[datetime, str]], list[tuple[datetime, str]]]:
        platform, erp = [], []
        for i in range(self.minutes):
            ts = self.t0 + timedelta(minutes=i)
            platform.append((ts, issue_line(ts, i)))
            if i in self.missing or i >= self.minutes - self.unsynced_tail:
                continue
            after = self.late_after if i in self.late else self.sync_after
            amount = "1000.00" if i in self.mismatched else "100.00"
            at = ts + timedelta(minutes=after)
            erp.append((at, sync_line(at, i, amount)))
        return platform, sorted(erp)

    def write(self, logs: Path) -> None:
        platform, erp = self.lines()
        (logs / "platform.log").write_text("".join(t for _, t in platform), encoding="utf-8")
        (logs / "erp.log").write_text("".join(t for _, t in erp), encoding="utf-8")

    def end(self) -> datetime:
        platform, erp = self.lines()
        return max(platform[-1][0], erp[-1][0])

    def pending_at_end(self) -> set[str]:
        return {no(i) for i in range(self.minutes - self.unsynced_tail, self.minutes)}


def dedent(text: str) -> str:
    return textwrap.dedent(text)
