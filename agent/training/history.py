"""Where training data comes from: closed windows replayed from log files (plain or .gz), or
stored by a running agent; and the spans to leave out (alerts, operator ranges).

Log files go through agent.replay with the config's rules plus a detector that only collects
closed windows: the same parsing, windows and alert decisions as `replay`, so the slots and the
alerts left out are exactly what the running agent would have seen.
"""

from __future__ import annotations

import gzip
import shutil
import sys
import tempfile
import time
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from agent.detect.base import NO_FINDINGS, Detector, RuleConfig, Watch
from agent.types import Finding, Transition, Window

Span = tuple[datetime, datetime]


class Progress:
    """One self-overwriting status line on a terminal (nothing when stderr is a file or a
    pipe: logs and CI output stay clean)."""

    def __init__(self, out: TextIO | None = None, every: float = 0.5):
        self.out = out if out is not None else sys.stderr
        self.on = self.out.isatty()
        self.every = every
        self._last = 0.0
        self.started = time.perf_counter()

    def show(self, text: str, force: bool = False) -> None:
        now = time.perf_counter()
        if self.on and (force or now - self._last >= self.every):
            self._last = now
            self.out.write(f"\r{text} ({now - self.started:.0f}s)\x1b[K")
            self.out.flush()

    def done(self) -> None:
        if self.on:
            self.out.write("\r\x1b[K")
            self.out.flush()


class WindowCollector(Detector):
    """A detector that decides nothing: it keeps every closed window of `sources` (named:
    the engine's "every source" does not include the ledger's derived one)."""

    kind = "model"

    def __init__(self, sources: Collection[str], progress: Progress | None = None):
        super().__init__(RuleConfig.model_validate({"name": "model-training-collector",
                                                    "type": "model"}), {})
        self.sources = frozenset(sources)
        self.windows: list[Window] = []
        self.progress = progress

    def watch(self) -> Watch:
        return Watch(sources=self.sources, windows=True, ticks=self.progress is not None)

    def on_window(self, window: Window) -> Collection[Finding]:
        self.windows.append(window)
        return NO_FINDINGS

    def on_tick(self, now: datetime) -> Collection[Finding]:
        if self.progress is not None:
            self.progress.show(f"reading logs: {len(self.windows):,} windows, event time "
                               f"{now:%Y-%m-%d %H:%M}")
        return NO_FINDINGS


def windows_from_logs(loaded: Any, rules: list[Detector], sources: Collection[str],
                      files: list[str], source: str | None = None,
                      progress: Progress | None = None, quiet: bool = False
                      ) -> tuple[list[Window], list[Transition]]:
    """Closed windows of `sources` and the rules' alert transitions of replaying `files` (or,
    with none, every configured file). `.gz` files are decompressed to a temporary folder
    first and matched to sources by their name without `.gz`. On a terminal (not `quiet`) a
    bar shows the bytes read, MB/s and the time left; else `progress`'s status line, if any."""
    from agent.replay import configured_files, match_files, progress_bar, replay

    with tempfile.TemporaryDirectory(prefix="invoice-agent-train-") as tmp:
        if files:
            plain = [f[:-3] if f.endswith(".gz") else f for f in files]
            pairs = match_files(loaded, plain, source)
            for i, f in enumerate(files):
                if not Path(f).is_file():
                    raise FileNotFoundError(f"{f}: no such file")
                if f.endswith(".gz"):
                    out = Path(tmp) / f"{i}-{Path(plain[i]).name}"
                    with gzip.open(f, "rb") as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    pairs[i] = (pairs[i][0], str(out))
        else:
            pairs = configured_files(loaded)
        bar = progress_bar([p for _, p in pairs], "train: reading", quiet)
        collector = WindowCollector(sources, progress if bar is None else None)
        try:
            result = replay(loaded, [*rules, collector], pairs, progress=bar)
        finally:
            if bar is not None:
                bar.close()
    if progress is not None:
        progress.done()
    return collector.windows, result.transitions


def alert_spans(transitions: Iterable[Transition], pending: Mapping[str, timedelta],
                window: timedelta, end: datetime | None = None) -> list[Span]:
    """The time each alert covered: from the window that first made it active (its firing
    time less its `for:` and one window) until it resolved, or `end` when it never did."""
    open_: dict[str, datetime] = {}
    spans: list[Span] = []
    for tr in sorted(transitions, key=lambda t: t.ts):
        if tr.state == "firing" and tr.fingerprint not in open_:
            open_[tr.fingerprint] = tr.ts - pending.get(tr.rule, timedelta(0)) - window
        elif tr.state == "resolved" and tr.fingerprint in open_:
            spans.append((open_.pop(tr.fingerprint), tr.ts))
    if end is not None:
        spans += [(start, end) for start in open_.values()]
    return sorted(spans)


def stored_history(state_db: Path, days: float, now: datetime, pending: Mapping[str, timedelta],
                   window: timedelta) -> tuple[list[Window], list[Span]]:
    """The windows a running agent stored in the last `days` days before `now`, and the spans
    of the alerts it recorded (read-only: safe beside the running daemon)."""
    from agent.store import Store

    if not state_db.is_file():
        raise FileNotFoundError(f"{state_db}: no stored windows (has the agent run here?)")
    store = Store(state_db, readonly=True)
    try:
        windows = store.windows.between(now - timedelta(days=days), now)
        rows = store.alerts.history(limit=1_000_000)
    finally:
        store.close()
    spans: list[Span] = []
    began: dict[tuple[str, str], datetime] = {}
    for r in rows:  # oldest first; a firing..resolved pair per rule and labels
        key = (r["rule"], repr(sorted(r["labels"].items())))
        ts = datetime.fromisoformat(r["ts"])
        if r["state"] == "firing" and key not in began:
            began[key] = ts - pending.get(r["rule"], timedelta(0)) - window
        elif r["state"] == "resolved" and key in began:
            spans.append((began.pop(key), ts))
    spans += [(start, now) for start in began.values()]
    return windows, sorted(spans)


def parse_range(text: str, zone: Any) -> Span:
    """`FROM..TO` with ISO dates or times at both ends (`2026-10-01..2026-10-08`,
    `2026-11-02T10:00..2026-11-02T12:30`). A FROM date means its midnight, a TO date the end
    of that day; times without an offset are in the config's time zone."""
    if ".." not in text:
        raise ValueError(f"{text!r}: expected FROM..TO, e.g. 2026-10-01..2026-10-08")
    a, b = text.split("..", 1)

    def one(s: str, end: bool) -> datetime:
        s = s.strip()
        try:
            t = datetime.fromisoformat(s)
        except ValueError:
            raise ValueError(f"{s!r} is not an ISO date or time (2026-10-01 or "
                             "2026-10-01T10:00)") from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=zone)
        if end and len(s) == 10:  # a date: the whole day
            t += timedelta(days=1)
        return t

    start, stop = one(a, False), one(b, True)
    if stop <= start:
        raise ValueError(f"{text!r}: the end is not after the start")
    return start, stop
