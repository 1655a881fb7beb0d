"""The ledger over a real SQLite file: stages by number, read-your-writes across batches, bad
input counted and reported (never a crash), the features of its windows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import MappingProxyType

import pytest

from agent.config import load_config
from agent.counting import Counts
from agent.ledger.book import Ledger
from agent.ledger.numbers import uscc_check_char
from agent.store import Batch, FileOffset, Store
from agent.types import Event, Window

TZ = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=TZ)
TAX = "91440300MA5FXT3K2" + uscc_check_char("91440300MA5FXT3K2")
NO = "26442421750640306006"

CONFIG = """\
state_dir: state
window: 5m
lateness: 30s
sources:
  - {name: platform, paths: [logs/p.log]}
  - {name: erp, paths: [logs/e.log], fields: {amount: je}}
rules: []
ledger:
  stages:
    issued: {source: platform, event: issue, require: [amount, taxpayer_id]}
    synced: {source: erp, status: ok}
  deadline: 30m
"""


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "agent.yaml").write_text(CONFIG, encoding="utf-8")
    loaded = load_config(tmp_path / "agent.yaml")
    store = Store(tmp_path / "agent.db")
    counts = Counts()

    def ledger() -> Ledger:
        cfg = loaded.config
        assert cfg.ledger is not None
        return Ledger(cfg.ledger, cfg.sources, store.invoices, cfg.window, cfg.lateness, counts)

    yield ledger, store, counts
    store.close()


def issue(no: str | None = NO, at: timedelta = timedelta(0), amount: str | None = "100.00",
          tax: str | None = TAX, **kw) -> Event:
    return Event(T0 + at, "platform", "issue", no, amount, "2026-11-02", tax, "ok", line_no=1,
                 path="/logs/p.log", **kw)


def sync(no: str | None = NO, at: timedelta = timedelta(minutes=1), amount: str | None = "100.00",
         status: str = "ok", **kw) -> Event:
    return Event(T0 + at, "erp", "sync", no, amount, None, None, status, line_no=7,
                 path="/logs/e.log", **kw)


def commit(store: Store, ledger: Ledger) -> None:
    store.commit(Batch(ledger=ledger.take()))


def test_an_invoice_gets_its_stages_across_batches_and_restarts(setup):
    make, store, _ = setup
    ledger = make()
    first = ledger.observe(issue())
    assert first is not None and first.new and first.reached == ("issued",)
    commit(store, ledger)
    later = make()  # a restart: only what was committed is known
    assert later.open == 1
    u = later.observe(sync())
    assert u is not None and not u.new and u.reached == ("synced",)
    assert set(u.record.stages) == {"issued", "synced"} and later.open == 0
    commit(store, later)
    row = store.invoices.get(NO)
    assert row is not None and row.final_ts == (T0 + timedelta(minutes=1)).timestamp()


def test_uncommitted_changes_are_read_back_before_the_commit_and_gone_without_it(setup):
    make, store, _ = setup
    ledger = make()
    ledger.observe(issue())
    u = ledger.observe(sync())  # same batch: the record is read from memory
    assert u is not None and u.reached == ("synced",) and not u.new
    assert store.invoices.get(NO) is None  # nothing written before the batch commits
    again = make()  # the batch was never committed (a crash): its lines are read again
    assert again.observe(issue()).new


def test_a_failed_sync_updates_the_status_but_reaches_no_stage(setup):
    make, _, _ = setup
    ledger = make()
    ledger.observe(issue())
    u = ledger.observe(sync(status="failed"))
    assert u is not None and u.reached == () and u.record.status == "failed"
    assert ledger.open == 1


def test_events_without_a_number_are_counted_not_ledgered(setup):
    make, store, counts = setup
    ledger = make()
    assert ledger.observe(issue(no=None)) is None
    assert ledger.observe(sync(no=None)) is None
    assert counts.get("platform", "ledger_no_key") == 1 and counts.get("erp", "ledger_no_key") == 1
    commit(store, ledger)
    assert store.invoices.counts()["invoices"] == 0


def test_amounts_that_agree_as_numbers_are_no_mismatch_and_others_are_with_both_values(setup):
    make, store, _ = setup
    ledger = make()
    ledger.observe(issue(amount="100.5"))
    assert ledger.observe(sync(amount="100.50")).mismatches == ()
    other = "26442421750640306007"
    ledger.observe(issue(no=other, amount="100.00"))
    (m,) = ledger.observe(sync(no=other, amount="1000.00")).mismatches
    assert (m.field, m.stage, m.value, m.other_stage, m.other_value) == (
        "amount", "issued", "100.00", "synced", "1000.00")
    commit(store, ledger)
    assert [(f.kind, f.key) for f in store.invoices.findings(("mismatch",))] == [
        ("mismatch", other)]


def test_a_stage_reached_again_with_other_contents_is_a_duplicate_and_a_retry_is_not(setup):
    make, _, _ = setup
    ledger = make()
    ledger.observe(issue())
    ledger.observe(sync())
    assert ledger.observe(sync(at=timedelta(minutes=2))).duplicate is None  # same contents
    dup = ledger.observe(sync(at=timedelta(minutes=3), amount="99.00")).duplicate
    assert dup is not None and dup.stage == "synced" and dup.diffs == (
        ("amount", "100.00", "99.00"),)


@pytest.mark.parametrize("event, problem", [
    (issue(no="2644242175064030600"), "expected 20 digits"),  # malformed: not ledgered
    (issue(tax=TAX[:17] + ("1" if TAX[17] != "1" else "2")), "check character"),
    (issue(tax=None), "issued without taxpayer_id"),
    (issue(amount=None, extra=MappingProxyType({"amount": "一百元"})), "is not a number"),
    (sync(amount=None, extra=MappingProxyType({"je": "abc"})), "'abc' is not a number"),
    (issue()._replace(issue_date="2026-13-45"), "is not a date"),
    (issue(no="\x00" * 10000), "expected 20 digits"),  # garbage: reported, cut short
])
def test_bad_fields_are_problems_of_the_event_never_a_crash(setup, event, problem):
    make, store, _ = setup
    ledger = make()
    u = ledger.observe(event)
    assert u is not None and any(problem in p for p in u.problems), u.problems
    commit(store, ledger)
    (found,) = store.invoices.findings(("incomplete",))
    assert any(problem in p for p in found.detail["problems"])
    assert len(found.key) <= 10000


def test_one_number_used_by_two_taxpayers_is_a_problem(setup):
    make, _, _ = setup
    ledger = make()
    ledger.observe(issue())
    other = "91440300MA5FXT3K3" + uscc_check_char("91440300MA5FXT3K3")
    u = ledger.observe(issue(at=timedelta(seconds=5), tax=other))
    assert any("two taxpayers" in p for p in u.problems)


def test_window_features_count_pending_overdue_oldest_and_lag(setup):
    make, store, _ = setup
    ledger = make()
    ledger.start(T0)
    for i in range(4):  # four issued at 10:00; two synced after 60 and 120 seconds
        ledger.observe(issue(no=f"2644242175064030{6000 + i}"))
    ledger.observe(sync(no="26442421750640306000", at=timedelta(seconds=60)))
    ledger.observe(sync(no="26442421750640306001", at=timedelta(seconds=120)))
    commit(store, ledger)  # the gauges read both the stored rows and the open batch
    ledger.observe(sync(no="26442421750640306002", at=timedelta(minutes=4)))
    (w,) = [w for w in ledger.advance(T0 + timedelta(minutes=5, seconds=30))]
    f = w.features
    assert (w.source, f["issued"], f["completed"], f["pending"], f["overdue"]) == (
        "ledger", 4, 3, 1, 0)
    assert f["lag_p50_seconds"] == 120 and f["lag_p95_seconds"] == 240
    assert f["oldest_pending_minutes"] == 5.0
    later = ledger.advance(T0 + timedelta(minutes=35, seconds=30))
    assert later[-1].features["overdue"] == 1  # 35 minutes at the first stage, deadline 30m
    assert later[-1].features["issued"] == 0


def test_ledger_changes_commit_with_the_batchs_offsets_or_not_at_all(setup):
    make, store, _ = setup
    ledger = make()
    ledger.observe(issue())
    offset = FileOffset("platform", "1:1", "/logs/p.log", 99, 1, "f", "h")
    bad = Batch(offsets={"platform": [offset]}, ledger=ledger.take())
    bad.windows = [Window("platform", T0, T0, {"features": object()})]  # cannot be stored
    with pytest.raises(TypeError):
        store.commit(bad)
    assert store.invoices.get(NO) is None and store.offsets.of("platform") == []
    store.commit(Batch(offsets={"platform": [offset]}, ledger=bad.ledger))
    assert store.invoices.get(NO) is not None and store.offsets.of("platform")[0].offset == 99


def test_retention_drops_completed_invoices_and_keeps_unfinished_ones(setup):
    make, store, _ = setup
    ledger = make()
    ledger.observe(issue())
    ledger.observe(sync())
    ledger.observe(issue(no="26442421750640306007"))  # never synced
    commit(store, ledger)
    store.prune(T0, ledger_before=T0 + timedelta(days=1))
    assert store.invoices.get(NO) is None
    assert store.invoices.get("26442421750640306007") is not None
