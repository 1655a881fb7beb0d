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
    """Where each source's files stand; committed with the effects of the lines before them."""

    def __init__(self, db: Database):
        self.db = db

    def write(self, per_source: Mapping[str, list[FileOffset]], now: str) -> None:
        for source, offsets in per_source.items():
            keep = [o.file_id for o in offsets]
            self.db.execute(f"DELETE FROM file_offsets WHERE source = ? AND file_id NOT IN "
                            f"({','.join('?' * len(keep))})", [source, *keep])
            if offsets:
                table(self.db, "file_offsets").upsert_all(
                    [_row(o, now) for o in offsets], pk="file_id")

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


def _row(o: FileOffset, now: str) -> dict[str, object]:
    return {"file_id": o.file_id, "source": o.source, "path": o.path, "offset": o.offset,
            "line_no": o.line_no, "fingerprint": o.fingerprint, "head": o.head,
            "updated": now}


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
