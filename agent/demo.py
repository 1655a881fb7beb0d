"""`invoice-agent demo`: a simulated day with incidents, watched by the real pipeline.

It lays out a work folder like a real installation (config/agent.yaml, rules/, logs), writes
the simulated logs (with invoices that go missing, arrive late or with a wrong amount),
replays them through the same code as `run` and `replay`, prints every alert and a summary of
which injected incident was caught by which rule, and the invoices the ledger named.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from agent.alerts import REPEAT
from agent.ledger.summary import LedgerSummary
from agent.notify.console import print_notice
from agent.replay import configured_files, replay
from agent.shipped import shipped_dir
from agent.simfaults import InvoiceFault
from agent.simulator import simulate
from agent.types import Transition
from agent.wiring import load_all

TEXT: dict[str, dict[str, Any]] = {
    "zh": {"title": "invoice-agent 演示：模拟一天的开票、上传、ERP 同步和系统日志",
           "files": "日志目录",
           "caught": "已发现", "missed": "未发现", "incident": "注入故障",
           "named": "点名 {named}/{total} 张发票",
           "ledger": "发票台账：{invoices} 张发票，结束时 {pending} 张仍在途（未超时限）",
           "kinds": {"missing": "未到 ERP", "late": "迟到", "mismatch": "金额不符"},
           "line": "汇总：{lines} 行，无法解析 {unparsed} 行，{windows} 个窗口，告警 {fired} 条"
                   "（已恢复 {resolved} 条），用时 {seconds:.1f} 秒",
           "messages": "发出 {messages} 条通知（{transitions} 次告警状态变化按组合并；"
                       "{muted} 条告警因由其他告警引起或在维护/静默中而未单独通知）"},
    "en": {"title": "invoice-agent demo: a simulated day of issuing, upload, ERP sync and syslog",
           "files": "log folder",
           "caught": "caught by", "missed": "MISSED", "incident": "injected incident",
           "named": "{named}/{total} invoices named",
           "ledger": "invoice ledger: {invoices} invoices, {pending} still on their way at the "
                     "end (within the deadline)",
           "kinds": {"missing": "missing in the ERP", "late": "late", "mismatch": "mismatched"},
           "line": "summary: {lines} lines, {unparsed} unparsed, {windows} windows, {fired} alerts "
                   "({resolved} resolved), {seconds:.1f}s",
           "messages": "{messages} notifications sent for {transitions} alert transitions "
                       "(grouped; {muted} alerts caused by another, or in maintenance or a "
                       "silence, were held back and named on its message)"},
}


def prepare(workdir: Path, seed: int = 7):
    """Lay out config, rules and simulated logs in `workdir`; return (config path, simulation)."""
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    shutil.copy(shipped_dir("config") / "agent.yaml", workdir / "config" / "agent.yaml")
    rules = workdir / "rules"
    rules.mkdir(exist_ok=True)
    for f in sorted(shipped_dir("rules").glob("*.yaml")):
        if not f.name.endswith(".test.yaml"):  # rule tests ship beside the rules; not rules
            shutil.copy(f, rules / f.name)
    models = workdir / "models"
    models.mkdir(exist_ok=True)
    for f in sorted(shipped_dir("models").glob("demo.*")):
        shutil.copy(f, models / f.name)
    sim = simulate(workdir / "config" / "logs", seed=seed, faults=True)
    return workdir / "config" / "agent.yaml", sim


def run_demo(workdir: Path | None = None, language: str = "zh", seed: int = 7,
             out: TextIO = sys.stdout) -> int:
    t = TEXT[language]
    t0 = time.perf_counter()
    keep = workdir is not None
    work = workdir or Path(tempfile.mkdtemp(prefix="invoice-agent-demo-"))
    try:
        config_path, sim = prepare(work, seed)
        print(t["title"], file=out)
        print(f"{t['files']}: {config_path.parent / 'logs'}\n", file=out)
        loaded, rules = load_all(config_path, notify=False, batch=True)
        seen: list[Transition] = []

        def show(tr: Transition) -> None:
            if tr.reason != REPEAT:
                seen.append(tr)

        result = replay(loaded, rules, configured_files(loaded), show)
        # what the people on call get: one message per alert group and change, the alerts
        # an outage causes held back and named on its message
        zone = ZoneInfo(loaded.config.timezone)
        for notice in result.notices:
            print_notice(notice, language, out, zone)
            print(file=out)
        # the model scores in batches during a replay: its alerts arrive late; count the day
        # in the order it happened
        seen.sort(key=lambda tr: tr.ts)
        elapsed = time.perf_counter() - t0
        fired = [tr for tr in seen if tr.state == "firing"]
        print(t["line"].format(
            lines=result.lines, unparsed=result.unparsed, windows=result.windows,
            fired=len(fired), resolved=sum(tr.state == "resolved" for tr in seen),
            seconds=elapsed), file=out)
        print("  " + t["messages"].format(
            messages=len(result.notices), transitions=len(result.transitions),
            muted=len({m.fingerprint for m in result.muted})), file=out)
        slack = loaded.config.window * 3
        for inc in sim.incidents:
            hits = [tr for tr in fired if inc.start <= tr.ts <= inc.end + slack]
            verdict = f"{t['caught']} {_first(hits)}" if hits else t["missed"]
            print(f"  {t['incident']} {inc.name} {inc.start:%H:%M}-{inc.end:%H:%M}: {verdict}",
                  file=out)
        if result.ledger is not None:
            for fault in sim.faults:
                _print_fault(fault, seen, result.ledger, t, out)
            print_ledger(result.ledger, t, out)
        return 0
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)



def _first(hits: list[Transition]) -> str:
    """The rules that caught an incident, each with the time it first did, earliest first:
    `model_anomaly 15:20, invoice_not_synced 16:15`."""
    first: dict[str, Transition] = {}
    for tr in sorted(hits, key=lambda tr: tr.ts):
        first.setdefault(tr.rule, tr)
    return ", ".join(f"{rule} {tr.ts:%H:%M}" for rule, tr in first.items())


def _found(ledger: LedgerSummary, kind: str) -> list[str]:
    return {"missing": ledger.missing, "late": ledger.late, "mismatch": ledger.mismatched}[kind]


def _print_fault(fault: InvoiceFault, seen: list[Transition], ledger: LedgerSummary,
                 t: dict[str, Any], out: TextIO) -> None:
    """An invoice fault is caught by the rules whose alerts name its invoices."""
    wanted = set(fault.invoices)
    fired = [tr for tr in seen if tr.state == "firing"]
    hits = [tr for tr in fired if wanted & set(tr.values.get("invoices") or ())]
    # the model sees invoices wait before any deadline passes: an early warning
    hits += [tr for tr in fired if tr.kind == "model" and fault.start <= tr.ts <= fault.end]
    named = len(wanted & set(_found(ledger, fault.name)))
    verdict = f"{t['caught']} {_first(hits)}" if hits and named else t["missed"]
    verdict += " (" + t["named"].format(named=named, total=len(wanted)) + ")"
    print(f"  {t['incident']} {fault.name} {fault.start:%H:%M}-{fault.end:%H:%M}: {verdict}",
          file=out)


def print_ledger(ledger: LedgerSummary, t: dict[str, Any], out: TextIO) -> None:
    """The invoices the ledger holds as missing, late and mismatched, by number."""
    print(t["ledger"].format(invoices=ledger.invoices, pending=ledger.pending - len(
        ledger.missing)), file=out)
    for kind, numbers in (("missing", ledger.missing), ("late", ledger.late),
                          ("mismatch", ledger.mismatched)):
        print(f"  {t['kinds'][kind]} ({len(numbers)}): {', '.join(numbers) or '-'}", file=out)
