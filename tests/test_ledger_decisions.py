"""`run` and `replay` report the same invoices, and deadlines survive SIGTERM and kill -9:
real `invoice-agent run` subprocesses against `invoice-agent replay` on the same files."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests.ledger_scenario import Scenario, issue_line, layout, no, sync_line
from tests.test_daemon import Agent, append, db_rows, wait_for

TZ = timezone(timedelta(hours=8))


def cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", *map(str, args)], capture_output=True,
                          text=True, timeout=60)


def listed(config: Path, kind: str) -> set[str]:
    done = cli("invoices", kind, "-c", config, "--json")
    assert done.returncode in (0, 1), done.stderr
    return {row["invoice_no"] for row in json.loads(done.stdout)}


def test_replay_and_a_live_run_report_the_same_invoices_and_transitions(tmp_path, agents):
    config = layout(tmp_path)
    now = datetime.now(TZ)
    t0 = (now - timedelta(hours=3, minutes=5)).replace(second=0, microsecond=0)
    t0 -= timedelta(minutes=t0.minute % 5)
    sc = Scenario(t0)  # 180 invoices; the last two still on their way when the logs end
    sc.write(tmp_path / "logs")

    done = cli("replay", "-c", config, "--format", "jsonl")
    assert done.returncode == 1, done.stderr
    offline = [json.loads(x) for x in done.stdout.splitlines()]
    assert {r["rule"] for r in offline} == {"not_synced", "amount_mismatch"}
    assert "ledger: invoices 180 pending 4 missing 2 late 2 mismatched 2" in done.stderr

    agent = Agent(config)
    agents.append(agent)
    wait_for(lambda: len(db_rows(config, "SELECT * FROM alert_log")) >= len(offline),
             what="the live agent's transitions")
    assert agent.stop() == 0
    live = db_rows(config, "SELECT ts, rule, state, summary FROM alert_log WHERE reason != "
                           "'repeat interval elapsed' ORDER BY id")
    assert sorted((ts, rule, state, json.loads(summary)["en"]) for ts, rule, state, summary
                  in live) == sorted((r["ts"], r["rule"], r["state"], r["summary"])
                                     for r in offline)
    # the live run's ledger, asked as finance would ask it
    assert listed(config, "missing") == {no(95), no(96)}
    assert listed(config, "late") == {no(20), no(21)}
    assert listed(config, "mismatched") == {no(60), no(61)}
    # the firing alert grew as the second invoice went overdue after it fired
    (data,) = db_rows(config, "SELECT data FROM alerts WHERE rule = 'not_synced' AND "
                              "state = 'firing'")
    assert json.loads(data[0])["values"]["invoices"] == [no(95), no(96)]


def test_a_deadline_survives_sigterm_and_kill_9_and_fires_once(tmp_path, agents):
    config = layout(tmp_path, window="1s", lateness="500ms", deadline="8s")
    logs = tmp_path / "logs"
    (logs / "platform.log").touch()
    (logs / "erp.log").touch()
    issued = datetime.now(TZ)
    first = Agent(config)
    agents.append(first)
    append(logs / "platform.log", "".join(issue_line(issued, i) for i in (1, 2, 3)))
    waiting = "SELECT key FROM ledger_waits WHERE rule = 'not_synced' ORDER BY key"
    wait_for(lambda: db_rows(config, waiting) == [(no(1),), (no(2),), (no(3),)],
             what="three invoices waiting", proc=first.proc)
    assert first.stop() == 0  # SIGTERM with the deadline running

    second = Agent(config)
    agents.append(second)
    append(logs / "erp.log", sync_line(datetime.now(TZ), 1))  # in time
    wait_for(lambda: db_rows(config, waiting) == [(no(2),), (no(3),)],
             what="the first one synced", proc=second.proc)
    second.proc.send_signal(signal.SIGKILL)  # kill -9, the deadline (8 s) normally still running
    second.proc.wait()

    third = Agent(config)
    agents.append(third)
    fired = "SELECT summary FROM alert_log WHERE rule = 'not_synced' AND state = 'firing'"
    wait_for(lambda: db_rows(config, fired), what="the deadline to pass", proc=third.proc)
    (summary,) = db_rows(config, fired)[0]
    assert no(2) in summary and no(3) in summary and no(1) not in summary
    third.proc.send_signal(signal.SIGKILL)  # once more, now with the alert firing
    third.proc.wait()

    fourth = Agent(config)
    agents.append(fourth)
    append(logs / "erp.log", sync_line(datetime.now(TZ), 2) + sync_line(datetime.now(TZ), 3))
    resolved = "SELECT summary FROM alert_log WHERE rule = 'not_synced' AND state = 'resolved'"
    wait_for(lambda: db_rows(config, resolved), what="the late invoices", proc=fourth.proc)
    assert fourth.stop() == 0
    # fired once and resolved once across four processes, naming the two late invoices
    assert [s for (s,) in db_rows(config, "SELECT state FROM alert_log WHERE rule = "
                                          "'not_synced' ORDER BY id")] == ["firing", "resolved"]
    late = json.loads(db_rows(config, resolved)[0][0])["en"]
    assert no(2) in late and no(3) in late and "late" in late
    assert listed(config, "late") == {no(2), no(3)}
    assert listed(config, "missing") == set()
