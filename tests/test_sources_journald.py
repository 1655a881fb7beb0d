"""The journald source against real journal files (systemd-journal-remote writes them,
journalctl reads them as it would the system journal)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from agent.sources.journald import JournalSource, journalctl_args
from tests.journal_files import JOURNALCTL, MISSING, REMOTE, export_entry, write_journal

pytestmark = pytest.mark.skipif(REMOTE is None or JOURNALCTL is None, reason=MISSING)

T0 = datetime(2026, 11, 2, 10, tzinfo=timezone.utc)


def read_all(src: JournalSource, want: int, timeout: float = 15.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got += src.poll(1000)
        time.sleep(0.05)
    return got


def entries(first: int, n: int, **fields) -> list[bytes]:
    return [export_entry(i, T0 + timedelta(seconds=i),
                         {"MESSAGE": f"line {i}", "_HOSTNAME": "erp1", "PRIORITY": "6",
                          **fields}) for i in range(first, first + n)]


def test_fields_are_mapped_and_binary_or_null_messages_handled(tmp_path):
    journal = tmp_path / "system.journal"
    write_journal(journal, [
        export_entry(1, T0, {"MESSAGE": "Out of memory: Killed process 4242 (python)",
                             "_HOSTNAME": "erp1", "_SYSTEMD_UNIT": "invoice-sync.service",
                             "SYSLOG_IDENTIFIER": "kernel", "PRIORITY": "3"}),
        export_entry(2, T0, {"MESSAGE": "上传失败".encode() + b"\xff\x00",
                             "_HOSTNAME": "erp1", "PRIORITY": "4"}),
        export_entry(3, T0, {"_HOSTNAME": "erp1"}),  # no MESSAGE at all
    ])
    src = JournalSource("system", files=[str(journal)], start_at="beginning")
    try:
        lines = read_all(src, 3)
    finally:
        src.close()
    rows = [json.loads(r.text) for r in lines]
    assert rows[0] == {"ts": "2026-11-02T10:00:00+00:00", "host": "erp1",
                       "unit": "invoice-sync.service", "program": "kernel", "level": "err",
                       "message": "Out of memory: Killed process 4242 (python)"}
    assert rows[1]["message"].startswith("上传失败") and "\ufffd" in rows[1]["message"]
    assert lines[1].replaced and not lines[0].replaced
    assert rows[2]["message"] == "" and rows[2]["level"] is None
    counts = src.take_counts()
    assert counts["lines"] == 3 and counts["replaced"] == 1


def test_the_cursor_resumes_after_a_restart_without_loss_or_repeat(tmp_path):
    journal = tmp_path / "system.journal"
    write_journal(journal, entries(1, 5))
    src = JournalSource("system", files=[str(journal)], start_at="beginning")
    first = read_all(src, 5)
    saved = src.checkpoints()
    src.close()
    write_journal(journal, entries(6, 3))  # written while the agent was down
    again = JournalSource("system", files=[str(journal)], start_at="beginning")
    again.restore(saved)
    try:
        second = read_all(again, 3)
        time.sleep(0.3)
        second += again.poll(1000)
    finally:
        again.close()
    messages = [json.loads(r.text)["message"] for r in first + second]
    assert messages == [f"line {i}" for i in range(1, 9)]


def test_a_journalctl_that_dies_is_started_again_from_the_last_entry(tmp_path, monkeypatch):
    import agent.sources.journald as jd

    monkeypatch.setattr(jd, "RESTART_SECONDS", 0.2)
    journal = tmp_path / "system.journal"
    write_journal(journal, entries(1, 3))
    src = JournalSource("system", files=[str(journal)], start_at="beginning")
    try:
        got = read_all(src, 3)
        assert src._proc is not None
        src._proc.kill()
        write_journal(journal, entries(4, 2))
        got += read_all(src, 2)
        time.sleep(0.3)
        got += src.poll(1000)
        assert src.take_counts().get("restarts") == 1
    finally:
        src.close()
    assert [json.loads(r.text)["message"] for r in got] == [f"line {i}" for i in range(1, 6)]


def test_a_first_start_at_end_reads_only_what_comes_after(tmp_path):
    journal = tmp_path / "system.journal"
    write_journal(journal, entries(1, 4))
    src = JournalSource("system", files=[str(journal)], start_at="end")
    try:
        assert read_all(src, 1, timeout=1.0) == []
        write_journal(journal, entries(5, 1))
        got = read_all(src, 1)
    finally:
        src.close()
    assert [json.loads(r.text)["message"] for r in got] == ["line 5"]


def test_units_and_identifiers_widen_the_match_and_priority_narrows_it():
    args = journalctl_args(units=["invoice-sync.service"], identifiers=["kernel"],
                           priority="warning", cursor="c1")
    assert args[args.index("--after-cursor") + 1] == "c1"
    assert args[-3:] == ["_SYSTEMD_UNIT=invoice-sync.service", "+", "SYSLOG_IDENTIFIER=kernel"]
    assert "--priority" in args and "--follow" in args and "--all" in args
