"""Replay: log files from their start, in event time, as fast as possible.

Files are read with the same line reader as the daemon, parsed, then merged across files by
event time so that windows of every source close in order; the same Engine decides. The invoice
ledger runs the same code over a scratch SQLite file, deleted afterwards.
"""

from __future__ import annotations

import fnmatch
import glob
import heapq
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Never, TextIO

from agent.alerts import FIRST
from agent.config import LoadedConfig, SourceConfig
from agent.counting import Counts
from agent.detect.base import Detector
from agent.ledger.summary import LedgerSummary, summarize
from agent.pipeline import Engine
from agent.sources.files import FileSource
from agent.store import DB_NAME, Batch, Store
from agent.tally import Tally
from agent.types import Event, LineBatch, Muted, Notice, Transition
from agent.wiring import build_ledger

if TYPE_CHECKING:
    from tqdm import tqdm

# Told, once per batch of lines read from a file (never per line), the bytes and the lines
# that batch took: what a progress display needs.
ReadProgress = Callable[[int, int], None]


class NoSourceForFile(ValueError):
    """A file given on the command line matches no configured source."""


@dataclass
class ReplayResult:
    lines: int = 0
    unparsed: int = 0
    late: int = 0  # lines whose window had closed (out of order by more than `lateness`)
    windows: int = 0
    transitions: list[Transition] = field(default_factory=list)
    seconds: float = 0.0
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    encoding_hints: dict[str, str] = field(default_factory=dict)  # source -> likelier codec
    ledger: LedgerSummary | None = None  # what the ledger holds at the end of the files
    notices: list[Notice] = field(default_factory=list)  # the messages that would be sent
    muted: list[Muted] = field(default_factory=list)  # transitions held back, and why

    @property
    def fired(self) -> int:
        # alerts, not their reminders, escalations or changes of cause
        return sum(1 for t in self.transitions if t.state == "firing" and t.reason == FIRST)


def match_files(loaded: LoadedConfig, files: list[str],
                source: str | None = None) -> list[tuple[SourceConfig, str]]:
    """Pair each FILE with the first source whose glob matches its path (or its name), or
    with the source named `source` (for rotated copies such as upload.log.1)."""
    if source is not None:
        named = [s for s in loaded.config.sources if s.name == source]
        if not named:
            raise NoSourceForFile(f"no source named {source!r}; configured: "
                                  f"{', '.join(s.name for s in loaded.config.sources)}")
        return [(named[0], os.path.abspath(f)) for f in files]
    out = []
    for f in files:
        path = os.path.abspath(f)
        for src in loaded.config.sources:
            globs = loaded.source_globs(src)
            if any(fnmatch.fnmatch(path, g) for g in globs) or any(
                    fnmatch.fnmatch(os.path.basename(path), os.path.basename(g)) for g in globs):
                out.append((src, path))
                break
        else:
            raise NoSourceForFile(f"{f} matches no configured source's paths "
                                  f"(name the source with --source)")
    return out


def configured_files(loaded: LoadedConfig) -> list[tuple[SourceConfig, str]]:
    out = []
    for src in loaded.config.sources:
        for g in loaded.source_globs(src):
            out += [(src, p) for p in sorted(glob.glob(g)) if os.path.isfile(p)]
    return out


class UnreadableFile(OSError):
    """A file given to replay that cannot be read."""


def _by_source(pairs: list[tuple[SourceConfig, str]]
               ) -> list[tuple[SourceConfig, list[str]]]:
    """Each source's files, oldest (by modification time) first: rotated copies (upload.log.2,
    upload.log.1) before the live file, as logrotate leaves them, whatever their names sort
    as."""
    grouped: dict[str, tuple[SourceConfig, list[str]]] = {}
    for src, path in pairs:
        grouped.setdefault(src.name, (src, []))[1].append(path)
    return [(src, sorted(paths, key=_mtime)) for src, paths in grouped.values()]


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _source_events(engine: Engine, counts: Counts, src: SourceConfig, paths: list[str],
                   hints: dict[str, str], progress: ReadProgress | None = None
                   ) -> Iterator[tuple[datetime, int, Event]]:
    """One source's files read one after another, as one stream in its own time: its files
    are its history in order, and only one of them is open at a time."""
    seq = 0
    for path in paths:
        for confirmed, _, ev in _events(engine, counts, src, path, hints, progress):
            seq += 1
            yield confirmed, seq, ev


def _events(engine: Engine, counts: Counts, src: SourceConfig, path: str,
            hints: dict[str, str], progress: ReadProgress | None = None
            ) -> Iterator[tuple[datetime, int, Event]]:
    seq = 0
    for batch in _batches(counts, src, path, hints, progress):
        for confirmed, ev in engine.events(batch.raw()):
            seq += 1
            yield confirmed, seq, ev


def _batches(counts: Counts, src: SourceConfig, path: str, hints: dict[str, str],
             progress: ReadProgress | None = None) -> Iterator[LineBatch]:
    """The lines of one file from its start, a batch at a time."""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:  # a file left out would be a silent hole in the replay
        raise UnreadableFile(f"{path}: {exc.strerror or exc}") from None
    reader = FileSource(src.name, [glob.escape(path)], encoding=src.encoding,
                        max_line_bytes=src.max_line_bytes)
    read = 0  # bytes of the file handed out so far
    try:
        while True:
            # at the end, a last line without its newline is a line too
            lines = reader.read(50000) or reader.flush_batch()
            for name, n in reader.take_counts().items():
                counts.add(src.name, name, n)
            if not lines:
                break
            if progress is not None:
                offset = sum(cp.offset for cp in reader.checkpoints())
                progress(offset - read, len(lines))
                read = offset
            yield lines
    finally:
        hint = reader.encoding_hint()
        if hint:
            hints[src.name] = hint
        reader.close()


@contextmanager
def ledger_scratch(loaded: LoadedConfig) -> Iterator[Store | None]:
    """A throwaway SQLite store for the ledger of a replay (None without a ledger)."""
    if loaded.config.ledger is None:
        yield None
        return
    scratch = tempfile.mkdtemp(prefix="invoice-agent-replay-")
    try:
        store = Store(Path(scratch) / DB_NAME, scratch=True)
        try:
            yield store
        finally:
            store.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def replay_engine(loaded: LoadedConfig, detectors: list[Detector], store: Store | None,
                  counts: Counts, clock: Callable[[], datetime] | None = None) -> Engine:
    """The engine of a replay: batch mode, the ledger (if any) in `store`."""
    ledger = None
    if store is not None:
        ledger = build_ledger(loaded, store, counts,
                              flush=lambda changes: store.commit(Batch(ledger=changes)))
    return Engine(loaded, detectors, clock=clock, counts=counts, ledger=ledger, batch=True)


Stream = Iterator[tuple[datetime, int, Event]]


def drive(loaded: LoadedConfig, engine: Engine, streams: list[Stream],
          until: datetime | None = None,
          emit: Callable[[], None] | None = None) -> datetime | None:
    """Push the events of `streams` (each a source's events in its own order, with the time
    its stream confirmed) merged by confirmed time; then finish: time advances past the last
    line (its window closes; its time was never confirmed by a line after it) and at least to
    `until`. `emit` is called whenever transitions are waiting. Returns the newest event
    time."""
    merged: Iterable[tuple[datetime, int, Event]]
    if len(streams) == 1:  # one source is already in its own order
        merged = streams[0]
    else:
        merged = heapq.merge(*streams, key=lambda x: x[0])  # empty when no stream
    last = newest = None
    for confirmed, _seq, ev in merged:
        last = confirmed
        if newest is None or ev.ts > newest:
            newest = ev.ts
        engine.push(confirmed, ev)
        if emit is not None and engine.transitions:
            emit()
    return _drive_end(loaded, engine, last, newest, until, emit)


def drive_tally(loaded: LoadedConfig, engine: Engine, tally: Tally,
                batches: Iterable[LineBatch], until: datetime | None = None,
                emit: Callable[[], None] | None = None) -> datetime | None:
    """`drive` for the lines of one source that only windows read (agent/tally.py): the
    same decisions, without an Event per line."""
    last = newest = None
    for batch in batches:
        counted = tally.count(engine, batch)
        if counted.last is not None:
            last = counted.last
        if counted.newest is not None and (newest is None or counted.newest > newest):
            newest = counted.newest
        if emit is not None and engine.transitions:
            emit()
    return _drive_end(loaded, engine, last, newest, until, emit)


def _drive_end(loaded: LoadedConfig, engine: Engine, last: datetime | None,
               newest: datetime | None, until: datetime | None,
               emit: Callable[[], None] | None) -> datetime | None:
    cfg = loaded.config
    ends = [] if last is None else [max(last, newest or last) + cfg.window + cfg.lateness]
    if until is not None:
        ends.append(until + cfg.lateness)  # every window that ends by `until` is judged
    if ends:
        data_end = max(d for d in (newest, until) if d is not None)
        engine.finish(max(ends), data_end=data_end)
        if emit is not None:
            emit()
    return newest


def replay(loaded: LoadedConfig, detectors: list[Detector],
           pairs: list[tuple[SourceConfig, str]],
           on_transition: Callable[[Transition], None] | None = None,
           progress: ReadProgress | None = None) -> ReplayResult:
    """Run the pipeline over files in event time; return what it found: the transitions,
    the messages the people on call would have got (notices) and what was muted.
    `progress` is told what each batch of lines read took (see ProgressBar)."""
    t0 = time.perf_counter()
    counts = Counts()
    result = ReplayResult()
    with ledger_scratch(loaded) as store:
        engine = replay_engine(loaded, detectors, store, counts)

        def emit() -> None:
            for tr in engine.take():
                result.transitions.append(tr)
                if on_transition is not None:
                    on_transition(tr)

        groups = _by_source(pairs)
        tally = engine.tallies.get(groups[0][0].name) if len(groups) == 1 else None
        if tally is not None:
            source, paths = groups[0]
            drive_tally(loaded, engine, tally,
                        (batch for path in paths for batch in _batches(
                            counts, source, path, result.encoding_hints, progress)), emit=emit)
        else:
            streams = [_source_events(engine, counts, s, paths, result.encoding_hints,
                                      progress) for s, paths in groups]
            drive(loaded, engine, streams, emit=emit)
        result.notices = engine.take_notices()
        result.muted = engine.take_muted()
        drained = engine.drain()
        if store is not None and drained.ledger is not None:
            store.commit(Batch(ledger=drained.ledger))
            result.ledger = summarize(store.invoices)
    for (src, name), n in counts.drain().items():
        result.counters.setdefault(src, {})[name] = n
    result.lines = sum(c.get("lines", 0) for c in result.counters.values())
    result.unparsed = sum(c.get("unparsed", 0) for c in result.counters.values())
    result.late = sum(c.get("late", 0) for c in result.counters.values())
    result.windows = len(drained.windows)
    result.seconds = time.perf_counter() - t0
    return result


# -- progress on a terminal ------------------------------------------------------------------

class ProgressBar:
    """Bytes read of the files' total size, lines, MB/s and the time left, on one line of a
    terminal (tqdm), redrawn at most twice a second. A ReadProgress: it moves once per batch
    of lines, so reading costs the same with it as without."""

    def __init__(self, total: int, what: str, out: TextIO):
        from tqdm import tqdm

        self.lines = 0
        self.out = out
        # a terminal that does not say its size (a bare pseudo-terminal) is taken as 80x24:
        # tqdm would draw nothing on zero rows
        sized = _columns(out) > 0
        self._bar: tqdm[Never] = tqdm(total=total, desc=what, unit="B", unit_scale=True,
                                     file=out, mininterval=0.5, smoothing=0.1,
                                     dynamic_ncols=sized, ncols=None if sized else 80,
                                     nrows=None if sized else 24)

    def __call__(self, nbytes: int, lines: int) -> None:
        self.lines += lines
        self._bar.set_postfix_str(f"{self.lines:,} lines", refresh=False)
        self._bar.update(nbytes)

    @contextmanager
    def aside(self) -> Iterator[None]:
        """Output to the same terminal printed inside: the bar is cleared first and drawn
        again after, so lines and bar do not run into each other."""
        self._bar.clear()
        try:
            yield
        finally:
            self._bar.refresh()

    def close(self) -> None:
        """Draw the bar a last time, at what was read in all, and end its line."""
        self._bar.close()


def progress_bar(paths: Iterable[str], what: str, quiet: bool = False,
                 out: TextIO | None = None) -> ProgressBar | None:
    """A ProgressBar over `paths` on `out` (stderr) when it is a terminal; None with `quiet`
    or when it is a file or a pipe: logs and scripts get no progress lines."""
    out = out if out is not None else sys.stderr
    if quiet or not out.isatty():
        return None
    return ProgressBar(sum(_size(p) for p in paths), what, out)


def _columns(out: TextIO) -> int:
    try:
        return os.get_terminal_size(out.fileno()).columns
    except (OSError, ValueError):
        return 0


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
