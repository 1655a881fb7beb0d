"""The ledger rule types over real log files, replayed: a scenario with a known list of
missing, late and mismatched invoices reports every one by number and nothing else; the demo's
day likewise; a silent ERP is named as such; stuck, duplicate, incomplete and month_end fire on
what they are meant to; rule and config mistakes are load errors with file, line and key."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.config import load_config
from agent.demo import prepare
from agent.notify.render import jsonl_record
from agent.replay import ReplayResult, configured_files, replay
from agent.wiring import load_all
from agent.yamlfile import FileProblems
from tests.ledger_scenario import Scenario, issue_line, layout, no, sync_line

TZ = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=TZ)


def run(config: Path) -> tuple[ReplayResult, list[dict]]:
    loaded, rules = load_all(config, notify=False, batch=True)
    result = replay(loaded, rules, configured_files(loaded))
    return result, [jsonl_record(t, "en") for t in result.transitions
                    if t.reason != "repeat interval elapsed"]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_a_scenario_reports_every_missing_late_and_mismatched_invoice_and_nothing_else(
        tmp_path):
    config = layout(tmp_path)
    sc = Scenario(T0)
    sc.write(tmp_path / "logs")
    result, records = run(config)
    missing = [(r["ts"], r["state"], r["invoices"]) for r in records if r["rule"] == "not_synced"]
    assert missing == [
        # invoice 20, issued 09:20, is 30 minutes old at 09:50 (21 joins the alert at 09:55)
        (at(50).isoformat(), "firing", [no(20)]),
        # 20 and 21 arrive at 10:10 and 10:11, late: the window holding the last ends it
        (at(75).isoformat(), "resolved", []),
        # 95 and 96 (10:35, 10:36) never arrive
        (at(125).isoformat(), "firing", [no(95)]),
    ]
    resolved = next(r for r in records if r["rule"] == "not_synced" and r["state"] == "resolved")
    assert f"late: {no(20)} (+20 min), {no(21)} (+20 min)" in resolved["summary"]
    mismatch = [(r["state"], r["invoices"]) for r in records if r["rule"] == "amount_mismatch"]
    assert mismatch == [("firing", [no(60)]), ("resolved", [no(60), no(61)])]
    assert "100.00" in records[2]["summary"] or any(
        "100.00 ≠ synced 1000.00" in r["summary"] for r in records)
    assert {r["rule"] for r in records} == {"not_synced", "amount_mismatch"}
    led = result.ledger
    assert led is not None
    assert set(led.missing) == {no(95), no(96)}
    assert set(led.late) == {no(20), no(21)}
    assert set(led.mismatched) == {no(60), no(61)}
    assert led.duplicates == [] and led.stuck == [] and led.incomplete == 0
    assert led.pending == 4  # the two missing and the two issued just before the end


def test_invoices_younger_than_the_deadline_when_the_files_end_are_pending_not_missing(
        tmp_path):
    config = layout(tmp_path, deadline="2m")
    sc = Scenario(T0, minutes=10, sync_after=1, missing=set(), late=set(), mismatched=set(),
                  unsynced_tail=1)
    sc.write(tmp_path / "logs")
    result, records = run(config)
    # the last invoice (09:09) is due 09:11; the files end at 09:09 and the last window
    # closes at 09:15: judged by the data's end, it is still on its way
    assert records == []
    assert result.ledger is not None and result.ledger.missing == [] and result.ledger.pending == 1


def test_a_silent_erp_is_named_as_down_instead_of_listing_every_invoice_as_lost(tmp_path):
    config = layout(tmp_path, limit=5)
    # two invoices (09:40, 09:41) are lost; the ERP stops at 10:30 and from 11:30 on syncs
    # everything issued meanwhile
    sc = Scenario(T0, minutes=180, missing={40, 41}, mismatched=set(), late=set())
    platform, erp = sc.lines()
    down = [line for t, line in erp if at(90) <= t < at(150)]
    erp = [(t, line) for t, line in erp if not at(90) <= t < at(150)]
    for k, line in enumerate(down):
        ts = at(150) + timedelta(seconds=k)
        erp.append((ts, line.replace(json.loads(line)["time"], ts.isoformat())))
    (tmp_path / "logs" / "platform.log").write_text("".join(x for _, x in platform), "utf-8")
    (tmp_path / "logs" / "erp.log").write_text("".join(x for _, x in sorted(erp)), "utf-8")
    result, records = run(config)
    lost, silent, back = [r for r in records if r["rule"] == "not_synced"]
    # two overdue invoices while the ERP works: they are listed as lost
    assert (lost["ts"], lost["invoices"]) == (at(70).isoformat(), [no(40)])
    # at 11:00 five wait and nothing reached the ERP for 31 minutes: the source is down,
    # told at once, not at the next reminder, and not as a list of losses
    assert silent["ts"] == at(120).isoformat() and silent["count"] == 5
    assert "erp silent since 10:29" in silent["summary"]
    assert "5 invoices waiting" in silent["summary"] and no(88) not in silent["summary"]
    assert silent["invoices"] == [no(40), no(41), no(88), no(89), no(90)]  # for scripts
    # the backlog arrives: what is still missing is listed again
    assert back["ts"] == at(155).isoformat() and back["invoices"] == [no(40), no(41)]
    assert no(40) in back["summary"] and "silent" not in back["summary"]
    assert [t.reason for t in result.transitions if t.rule == "not_synced"] == [
        "first notification", "cause changed", "cause changed"]
    assert result.ledger is not None and set(result.ledger.missing) == {no(40), no(41)}
    # issued 10:28-11:00 and synced from 11:30 on: after their deadline; later ones in time
    assert set(result.ledger.late) == {no(i) for i in range(88, 121)}


STUCK_DUP = """\
rules:
  - name: stuck
    type: stuck
    deadline: 20m
  - name: duplicate
    type: duplicate
  - name: incomplete
    type: incomplete
"""


def test_stuck_duplicate_and_incomplete_name_their_invoices(tmp_path):
    config = layout(tmp_path, rules=STUCK_DUP)
    lines = [issue_line(at(i), i) for i in range(5)]
    lines.append(issue_line(at(5), 5, tax="91440300MA5FXT3K2X"))  # a bad check character
    lines.append(issue_line(at(6), 6, amount="").replace(f'"{no(6)}"', '"2644-bad"'))
    (tmp_path / "logs" / "platform.log").write_text("".join(lines), "utf-8")
    erp = [sync_line(at(1), 0, result="待处理"),  # stuck: pending and nothing after
           sync_line(at(2), 1, result="待处理"), sync_line(at(8), 1),  # pending 6 min: fine
           sync_line(at(3), 2), sync_line(at(4), 2, amount="99.00"),  # synced twice, changed
           sync_line(at(59), 3), sync_line(at(60), 4)]  # time moves past the deadline
    (tmp_path / "logs" / "erp.log").write_text("".join(erp), "utf-8")
    _, records = run(config)
    fired = {r["rule"]: r for r in records if r["state"] == "firing"}
    assert set(fired) == {"stuck", "duplicate", "incomplete"}
    assert fired["stuck"]["invoices"] == [no(0)]
    assert fired["stuck"]["ts"] == at(25).isoformat()  # 09:01 + 20 min, at its window's end
    assert fired["duplicate"]["invoices"] == [no(2)]
    assert "amount 100.00 → 99.00" in fired["duplicate"]["summary"]
    incomplete = [r for r in records if r["rule"] == "incomplete"]
    named = {n for r in incomplete for n in r["invoices"]}
    assert named == {no(5), "2644-bad"}
    assert fired["incomplete"]["line"] == 6 and fired["incomplete"]["file"].endswith(
        "platform.log")


MONTH_END = """\
rules:
  - name: month_end
    type: month_end
    warn_day: 10
    day: 15
"""


def test_last_months_unsynced_invoices_warn_on_the_10th_and_turn_critical_on_the_15th(
        tmp_path):
    config = layout(tmp_path, window="1h", rules=MONTH_END)
    oct28 = datetime(2026, 10, 28, 16, 0, tzinfo=TZ)
    platform = [issue_line(oct28, 1), issue_line(oct28, 2)]
    days = [datetime(2026, 11, d, 9, 0, tzinfo=TZ) for d in (1, 9, 10, 12, 15, 16)]
    erp = [sync_line(days[0], 2)] + [sync_line(d, 100 + k) for k, d in enumerate(days[1:])]
    (tmp_path / "logs" / "platform.log").write_text("".join(platform), "utf-8")
    (tmp_path / "logs" / "erp.log").write_text("".join(erp), "utf-8")
    result, records = run(config)
    got = [(r["ts"][:16], r["severity"], r["invoices"]) for r in records]
    assert got == [("2026-11-10T00:00", "warning", [no(1)]),
                   ("2026-11-15T00:00", "critical", [no(1)])]
    assert [t.reason for t in result.transitions if "repeat" not in t.reason] == [
        "first notification", "escalated"]
    assert "2026-10" in records[0]["summary"] and "2026-11-15" in records[0]["summary"]


BACKLOG = """\
rules:
  - name: backlog
    type: threshold
    source: ledger
    when: "overdue >= 3"
    summary: {en: "{overdue} overdue, oldest {oldest_pending_minutes:.0f} min"}
"""


def test_a_threshold_rule_reads_the_ledgers_window_features(tmp_path):
    config = layout(tmp_path, rules=BACKLOG)
    Scenario(T0, minutes=60, missing={10, 11, 12, 13}, late=set(), mismatched=set()).write(
        tmp_path / "logs")
    _, records = run(config)
    (fired,) = [r for r in records if r["state"] == "firing"]
    assert fired["labels"]["source"] == "ledger" and fired["source"] == "rule"
    # at 09:40 only 09:10's invoice is 30 minutes old; at 09:45 all four (09:10-09:13) are
    assert fired["ts"] == at(45).isoformat()
    assert fired["summary"] == "4 overdue, oldest 35 min"


def test_the_demo_day_reports_exactly_its_injected_invoices(tmp_path):
    config, sim = prepare(tmp_path)
    result, records = run(config)
    faults = {f.name: set(f.invoices) for f in sim.faults}
    led = result.ledger
    assert led is not None
    assert set(led.missing) == faults["missing"]
    assert set(led.late) == faults["late"]
    assert set(led.mismatched) == faults["mismatch"]
    named = {n for r in records if r["source"] == "ledger" for n in r["invoices"]}
    assert named == faults["missing"] | faults["late"] | faults["mismatch"]
    assert led.incomplete == 0 and led.duplicates == [] and led.stuck == []


@pytest.mark.parametrize("rule, key, message", [
    ("type: missing\n    from: issued\n    to: synched", "rules.0.to", "unknown stage 'synched'"),
    ("type: mismatch\n    fields: [amonut]", "rules.0.fields.0", "amount"),
    ("type: month_end\n    day: 31", "rules.0.day", "28"),
])
def test_a_ledger_rule_mistake_names_file_line_and_key(tmp_path, rule, key, message):
    config = layout(tmp_path, rules=f"rules:\n  - name: r\n    {rule}\n")
    with pytest.raises(FileProblems) as exc:
        load_all(config, notify=False)
    (p,) = exc.value.problems
    assert p.key == key and message in p.message and p.line is not None
    assert p.file.endswith("r.yaml")


def test_ledger_rules_without_a_ledger_and_stages_of_unknown_sources_are_config_errors(
        tmp_path):
    config = layout(tmp_path)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("source: erp, status: ok", "source: erpp, status: ok"),
                      encoding="utf-8")
    with pytest.raises(FileProblems) as exc:
        load_config(config)
    (p,) = exc.value.problems
    assert p.key == "ledger.stages.synced.source" and "erpp" in p.message and p.line == 21
    config.write_text(text[:text.index("ledger:")], encoding="utf-8")
    with pytest.raises(FileProblems) as exc:
        load_all(config, notify=False)
    assert {p.key for p in exc.value.problems} == {f"rules.{i}.type" for i in range(5)}
    assert "needs a `ledger:` section" in exc.value.problems[0].message
