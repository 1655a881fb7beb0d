"""The SQLite store: one transaction per batch, offsets of let-go files removed, retention."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from agent.store import Batch, FileOffset, OutboxMessage, Store
from agent.types import Window

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=timezone(timedelta(hours=8)))


def offset(file_id: str, n: int) -> FileOffset:
    return FileOffset("upload", file_id, f"/logs/{file_id}", n, n, "f", "h")


def test_a_batch_that_fails_midway_leaves_nothing_behind(tmp_path):
    store = Store(tmp_path / "agent.db")
    store.commit(Batch(offsets={"upload": [offset("1:1", 10)]}))
    bad = Batch(offsets={"upload": [offset("1:1", 99)]})
    bad.count("upload", "lines", 89)
    bad.windows = [Window("upload", T0, T0, {"features": object()})]
    with pytest.raises(TypeError):  # the features cannot be stored: the whole batch is refused
        store.commit(bad)
    assert [o.offset for o in store.offsets.of("upload")] == [10]
    assert store.db.execute("SELECT count(*) FROM source_counters").fetchone() == (0,)


def test_offsets_of_files_the_source_let_go_are_removed(tmp_path):
    store = Store(tmp_path / "agent.db")
    store.commit(Batch(offsets={"upload": [offset("1:1", 10), offset("1:2", 5)]}))
    store.commit(Batch(offsets={"upload": [offset("1:2", 7)]}))
    assert [(o.file_id, o.offset) for o in store.offsets.of("upload")] == [("1:2", 7)]


def test_state_is_readable_by_a_second_process_while_open(tmp_path):
    store = Store(tmp_path / "agent.db")
    b = Batch()
    b.count("upload", "lines", 3)
    store.commit(b)
    other = sqlite3.connect(f"file:{tmp_path / 'agent.db'}?mode=ro", uri=True)
    assert other.execute("SELECT value FROM source_counters").fetchone() == (3,)
    other.close()


def test_prune_drops_old_windows_and_keeps_recent_deliveries(tmp_path):
    store = Store(tmp_path / "agent.db")
    windows = [Window("upload", T0 + timedelta(days=d), T0 + timedelta(days=d, minutes=5),
                      {"count": d}) for d in range(5)]
    outbox = [OutboxMessage("fp", "critical", f"t{i}", "b", "t-1") for i in range(5)]
    store.commit(Batch(windows=windows, outbox=outbox))
    for _ in range(4):  # one alert's messages to one target: one at a time, in order
        (head,) = store.outbox.pending()
        store.outbox.delivered(head.id, "now")
    store.prune(T0 + timedelta(days=3), keep_sent=2)
    starts = [r[0] for r in store.db.execute("SELECT start FROM windows ORDER BY start")]
    assert starts == [windows[3].start.isoformat(), windows[4].start.isoformat()]
    titles = [r[0] for r in store.db.execute("SELECT title FROM outbox ORDER BY id")]
    assert titles == ["t2", "t3", "t4"]  # the newest two delivered, and the undelivered one


def test_a_window_with_a_hundred_thousand_error_codes_is_stored_small(tmp_path):
    from datetime import datetime, timedelta, timezone

    from agent.features import Windows as Open
    from agent.store import Batch, Store
    from agent.types import Event

    start = datetime(2026, 11, 2, 10, tzinfo=timezone.utc)
    wins = Open(["upload"], timedelta(minutes=5), timedelta(0))
    for i in range(100_000):
        wins.add(Event(start, "upload", status="failed", error_code=f"E{i}"))
    for _ in range(50):
        wins.add(Event(start, "upload", status="failed", error_code="1001"))
    [w] = wins.advance(start + timedelta(minutes=5))
    store = Store(tmp_path / "a.db")
    store.commit(Batch(windows=[w]))
    row = store.db.execute("SELECT length(features) FROM windows").fetchone()
    assert row[0] < 10_000  # not the ~1.8 MB of every code
    [back] = store.windows.between(start, start + timedelta(minutes=5))
    f = back.features
    assert f["error_codes"]["1001"] == 50  # the frequent code kept with its count
    assert len(f["error_codes"]) == 100
    assert f["error_codes_more"] == 100_001 - 100
    assert f["error_codes_more_count"] + sum(f["error_codes"].values()) == 100_050
    assert f["distinct_error_codes"] == 100_001 and f["error_count"] == 100_050
    store.close()


def test_a_database_of_the_previous_schema_is_upgraded_at_start_and_keeps_its_data(tmp_path):
    import json
    import subprocess
    import sys

    from sqlite_utils import Database

    from agent.store import Store
    from agent.store.migrations import migrations

    (tmp_path / "state").mkdir()
    path = tmp_path / "state" / "agent.db"
    old = Database(path)
    migrations.apply(old, stop_before="m004_silences")  # the schema before silences
    old["file_offsets"].insert({"file_id": "f1", "source": "upload", "path": "/x.log",
                                "offset": 120, "line_no": 3, "fingerprint": "", "head": "",
                                "updated": "2026-11-01T00:00:00+00:00"})
    old.close()
    config = tmp_path / "agent.yaml"
    config.write_text("state_dir: state\nsources: []\nrules: []\n", encoding="utf-8")
    # `status` reads the old schema read-only, before any daemon upgraded it
    status = subprocess.run([sys.executable, "-m", "agent", "status", "-c", str(config),
                             "--json"], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["silences"] == []
    store = Store(path)  # what `run` opens: pending migrations applied
    assert [o.offset for o in store.offsets.of("upload")] == [120]
    assert store.silences.all() == []
    assert {m.name for m in migrations.applied(store.db)} >= {"m004_silences"}
    store.close()


def test_a_window_written_again_replaces_the_first_without_a_second_row(tmp_path):
    """A crash before the offsets moved on reads a window's lines again: its second closing
    replaces the stored one (its features as last counted), never duplicates or fails."""
    store = Store(tmp_path / "agent.db")
    end = T0 + timedelta(minutes=5)
    store.commit(Batch(windows=[Window("upload", T0, end, {"count": 3}),
                                Window("erp", T0, end, {"count": 1})]))
    store.commit(Batch(windows=[Window("upload", T0, end, {"count": 7})]))
    got = {w.source: w.features for w in store.windows.between(T0, end)}
    assert got == {"upload": {"count": 7}, "erp": {"count": 1}}
    assert store.db.execute("SELECT count(*) FROM windows").fetchone() == (2,)
