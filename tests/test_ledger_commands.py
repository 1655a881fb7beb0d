"""`invoice-agent invoices` on a state the daemon wrote, and `invoice-agent reconcile` on
exports as finance systems write them (GBK, BOM, tabs, Chinese headers, Excel's damage)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.daemon import Daemon
from agent.ledger.features import NUMERIC_LEDGER_FEATURES
from tests.ledger_scenario import Scenario, layout, no

TZ = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=TZ)


def cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", *map(str, args)], capture_output=True,
                          timeout=60)


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Path:
    """A state written by the daemon itself over the scenario's logs."""
    tmp = tmp_path_factory.mktemp("ledger")
    config = layout(tmp)
    Scenario(T0).write(tmp / "logs")
    with open(tmp / "console.txt", "w", encoding="utf-8") as console:
        daemon = Daemon(config, out=console)
        try:
            daemon.step(now=T0 + timedelta(hours=3, minutes=5))
        finally:
            daemon.shutdown()
    return config


def test_missing_invoices_as_csv_open_in_excel_with_chinese_headers_and_every_digit(state):
    done = cli("invoices", "missing", "-c", state, "--csv", "--language", "zh")
    assert done.returncode == 1  # something is listed
    assert done.stdout.startswith(b"\xef\xbb\xbf")  # the byte-order mark Excel needs
    rows = list(csv.reader(io.StringIO(done.stdout.decode("utf-8-sig"))))
    assert rows[0][:3] == ["发票号码", "规则", "起始时间"]
    # Excel would round a 20-digit number to 15 digits; as a text formula it keeps them all
    assert [r[0] for r in rows[1:]] == [f'="{no(95)}"', f'="{no(96)}"']
    assert rows[1][1] == "not_synced" and rows[1][2] == "2026-11-02 10:35:00"


def test_every_list_names_its_invoices(state):
    def listed(kind: str) -> list[str]:
        done = cli("invoices", kind, "-c", state, "--json")
        return [r["invoice_no"] for r in json.loads(done.stdout)]

    assert listed("missing") == [no(95), no(96)]
    assert listed("late") == [no(20), no(21)]
    assert listed("mismatched") == [no(60), no(61)]
    assert listed("stuck") == listed("duplicates") == listed("incomplete") == []
    # found (arrived) at 10:10 and 10:11: --since keeps the second
    done = cli("invoices", "late", "-c", state, "--json", "--since", "2026-11-02T10:11")
    assert [r["invoice_no"] for r in json.loads(done.stdout)] == [no(21)]
    assert json.loads(done.stdout)[0]["late_minutes"] == 20


def test_the_table_for_a_terminal_and_a_file_for_finance(state, tmp_path):
    done = cli("invoices", "mismatched", "-c", state)
    text = done.stdout.decode()
    assert done.returncode == 1 and no(60) in text and "1000.00" in text and "100.00" in text
    out = tmp_path / "mismatched.csv"
    assert cli("invoices", "mismatched", "-c", state, "-o", out).returncode == 1
    assert out.read_bytes().startswith(b"\xef\xbb\xbf") and no(61) in out.read_text("utf-8-sig")


def test_show_gives_every_stage_with_time_and_fields(state):
    done = cli("invoices", "show", no(60), "-c", state, "--json")
    assert done.returncode == 0
    inv = json.loads(done.stdout)
    assert [(s["stage"], s["time"], s["amount"]) for s in inv["stages"]] == [
        ("issued", "2026-11-02 10:00:00", "100.00"), ("synced", "2026-11-02 10:02:00", "1000.00")]
    assert [f["kind"] for f in inv["findings"]] == ["mismatch"]
    text = cli("invoices", "show", no(95), "-c", state).stdout.decode()
    assert "not_synced (missing): OVERDUE" in text and "not yet" in text
    missing = cli("invoices", "show", "26442421750640399999", "-c", state)
    assert missing.returncode == 1 and b"not in the ledger" in missing.stderr


def test_status_counts_invoices_pending_and_overdue(state):
    data = json.loads(cli("status", "-c", state, "--json").stdout)
    # 95 and 96 overdue; 178 and 179 issued minutes before the daemon's last step
    assert data["ledger"] == {"invoices": 180, "open": 4, "overdue": 2}
    text = cli("status", "-c", state).stdout.decode()
    assert "ledger: 180 invoices, 4 pending, 2 overdue" in text


def test_lists_without_a_ledger_config_are_a_usage_error(tmp_path):
    config = tmp_path / "agent.yaml"
    config.write_text("sources: []\nrules: []\n", encoding="utf-8")
    done = cli("invoices", "missing", "-c", config)
    assert done.returncode == 2 and b"no `ledger:` section" in done.stderr


# -- reconcile ---------------------------------------------------------------------------------

def write(path: Path, rows: list[list[str]], encoding: str, sep: str = ",") -> Path:
    buf = io.StringIO()
    csv.writer(buf, delimiter=sep, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def test_reconcile_finds_what_is_missing_on_each_side_and_what_differs(tmp_path):
    issued = write(tmp_path / "platform.csv", [
        ["发票号码", "开票日期", "价税合计", "购方名称"],
        [no(1), "2026-11-02", "100.00", "北京某公司"],
        [no(2), "2026-11-02", "¥1,000.00", "上海某公司"],  # the same amount, written otherwise
        [no(3), "2026/11/02", "300.00", "广州某公司"],
        [no(4), "2026-11-02", "400.00", "深圳某公司"],
        ["2.64424E+19", "2026-11-02", "50.00", "Excel 改坏的"],
    ], "utf-8-sig")
    synced = write(tmp_path / "erp.txt", [
        ["发票号码", "金额", "开票时间"],
        [no(1), "100.0", "2026-11-02 09:15:00"],
        [no(2), "1000", "2026-11-02 10:00:00"],
        [no(3), "3000.00", "2026-11-02 11:00:00"],
        [no(5), "500.00", "2026-11-02 12:00:00"],
    ], "gbk", sep="\t")
    done = cli("reconcile", "--issued", issued, "--synced", synced, "--json")
    assert done.returncode == 1, done.stderr
    out = json.loads(done.stdout)
    assert out["only_issued"] == [no(4)] and out["only_synced"] == [no(5)]
    assert out["differ"] == [{"invoice_no": no(3), "field": "amount", "issued": "300.00",
                              "synced": "3000.00"}]
    assert len(out["unreadable"]) == 1 and "turned into a number by Excel" in out["unreadable"][0]
    text = cli("reconcile", "--issued", issued, "--synced", synced).stdout.decode()
    assert f"{no(3)}  amount: issued 300.00 / synced 3000.00" in text
    assert "4 difference(s)" in text  # one each side, one amount, one unreadable row


def test_reconcile_of_matching_exports_exits_0(tmp_path):
    rows = [["fphm", "je"], [no(1), "100.00"], [no(2), "200.00"]]
    a = write(tmp_path / "a.csv", rows, "utf-8")
    b = write(tmp_path / "b.csv", [["发票号码", "金额"], *rows[1:]], "gb18030", sep=";")
    done = cli("reconcile", "--issued", a, "--synced", b)
    assert done.returncode == 0, done.stdout
    assert b"no difference" in done.stdout


def test_a_wrong_header_names_the_expected_columns_and_options_map_others(tmp_path):
    a = write(tmp_path / "a.csv", [["票号", "钱"], [no(1), "100.00"]], "utf-8")
    b = write(tmp_path / "b.csv", [["发票号码", "金额"], [no(1), "100.00"]], "utf-8")
    done = cli("reconcile", "--issued", a, "--synced", b)
    assert done.returncode == 2
    err = done.stderr.decode()
    assert "no invoice number column" in err and "发票号码" in err and "票号" in err
    mapped = cli("reconcile", "--issued", a, "--synced", b, "--key", "票号")
    assert mapped.returncode == 2  # --key names the column in both files: b has none
    c = write(tmp_path / "c.csv", [["票号", "钱"], [no(1), "200.00"]], "utf-8")
    done = cli("reconcile", "--issued", a, "--synced", c, "--key", "票号", "--column",
               "amount=钱", "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["differ"] == [
        {"invoice_no": no(1), "field": "amount", "issued": "100.00", "synced": "200.00"}]
    xlsx = tmp_path / "a.xlsx"
    xlsx.write_bytes(b"PK\x03\x04")
    done = cli("reconcile", "--issued", xlsx, "--synced", b)
    assert done.returncode == 2 and b"save the sheet as CSV" in done.stderr


def test_the_ledgers_windows_are_stored_with_every_documented_feature(state):
    db = sqlite3.connect(state.parent / "state" / "agent.db")
    rows = db.execute("SELECT features FROM windows WHERE source = 'ledger' ORDER BY start")
    windows = [json.loads(f) for (f,) in rows]
    db.close()
    assert len(windows) >= 36  # three hours of five-minute windows
    assert all(list(w) == list(NUMERIC_LEDGER_FEATURES) for w in windows)
    assert sum(w["issued"] for w in windows) == 180
    assert max(w["overdue"] for w in windows) == 2  # 95 and 96, once 30 minutes old
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in readme for name in NUMERIC_LEDGER_FEATURES)  # the model's contract
