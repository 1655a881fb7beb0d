"""File offsets and the per-source counters and unparsed samples that go with them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlite_utils import Database

from agent.store.migrations import table
from agent.store.records import FileOffset
from agent.types import ParseFailure

SAMPLES_PER_SOURCE = 50  # unparsed lines kept per source for inspection
SAMPLE_TEXT_MAX = 2000


class Offsets:
    """Where each source's files stand; committed with the effects of the lines before them.

    Only rows that changed are written: a file whose position did not move since the last
    commit keeps its row (and its `updated` time: when it last moved), and the rows of a
    source's files are deleted only when the set of its files changed. What was written is
    remembered once its transaction commits (`committed`); after a rollback everything is
    written again."""

    def __init__(self, db: Database):
        self.db = db
        # source -> file_id -> the row as last committed (without `updated`)
        self._written: dict[str, dict[str, tuple[object, ...]]] = {}
        self._staged: dict[str, dict[str, tuple[object, ...]]] = {}

    def write(self, per_source: Mapping[str, list[FileOffset]], now: str) -> None:
        conn = self.db.conn
        for source, offsets in per_source.items():
            rows: dict[str, tuple[object, ...]] = {
                o.file_id: (o.file_id, source, o.path, o.offset, o.line_no, o.fingerprint,
                            o.head) for o in offsets}
            before = self._written.get(source)
            if before is None or before.keys() != rows.keys():
                keep = list(rows)
                conn.execute(f"DELETE FROM file_offsets WHERE source = ? AND file_id NOT IN "
                             f"({','.join('?' * len(keep))})", [source, *keep])
                before = {}
            changed = [(*row, now) for fid, row in rows.items() if before.get(fid) != row]
            if changed:
                conn.executemany(_UPSERT, changed)
            self._staged[source] = rows

    def committed(self) -> None:
        """The transaction holding the last `write` committed."""
        self._written.update(self._staged)
        self._staged = {}

    def rolled_back(self) -> None:
        """It did not: write every row again next time."""
        self._written, self._staged = {}, {}

    def of(self, source: str) -> list[FileOffset]:
        return [FileOffset(**r) for r in
                table(self.db, "file_offsets").rows_where("source = ?", [source],
                                                          order_by="path")]

    def sources(self) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT DISTINCT source FROM file_offsets ORDER BY source")]

    def has(self, source: str) -> bool:
        return self.db.execute("SELECT 1 FROM file_offsets WHERE source = ? LIMIT 1",
                               [source]).fetchone() is not None


_UPSERT = ("INSERT INTO file_offsets(file_id, source, path, offset, line_no, fingerprint, "
           "head, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(file_id) DO UPDATE SET "
           "source = excluded.source, path = excluded.path, offset = excluded.offset, "
           "line_no = excluded.line_no, fingerprint = excluded.fingerprint, "
           "head = excluded.head, updated = excluded.updated")


class Counters:
    """Cumulative counts per (source, name) and a few unparsed lines per source."""

    def __init__(self, db: Database):
        self.db = db

    def add(self, increments: Mapping[tuple[str, str], int]) -> None:
        for (source, name), n in increments.items():
            self.db.execute(
                "INSERT INTO source_counters(source, name, value) VALUES (?, ?, ?) "
                "ON CONFLICT(source, name) DO UPDATE SET value = value + excluded.value",
                [source, name, n])

    def all(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for source, name, value in self.db.execute(
                "SELECT source, name, value FROM source_counters ORDER BY source, name"):
            out.setdefault(source, {})[name] = value
        return out

    def keep_samples(self, samples: Iterable[ParseFailure], now: str) -> None:
        rows = [{"source": s.source, "path": s.path, "line_no": s.line_no, "reason": s.reason,
                 "text": s.text[:SAMPLE_TEXT_MAX], "seen": now} for s in samples]
        if not rows:
            return
        table(self.db, "unparsed").insert_all(rows)
        for source in {r["source"] for r in rows}:
            self.db.execute(
                "DELETE FROM unparsed WHERE source = ? AND id NOT IN (SELECT id FROM "
                "unparsed WHERE source = ? ORDER BY id DESC LIMIT ?)",
                [source, source, SAMPLES_PER_SOURCE])

    def samples(self, per_source: int = 3) -> dict[str, list[ParseFailure]]:
        out: dict[str, list[ParseFailure]] = {}
        for r in table(self.db, "unparsed").rows_where(order_by="id desc", limit=500):
            got = out.setdefault(r["source"], [])
            if len(got) < per_source:
                got.append(ParseFailure(r["source"], r["path"], r["line_no"], r["text"],
                                        r["reason"]))
        return out
