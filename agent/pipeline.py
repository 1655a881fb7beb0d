"""The decision pipeline shared by `run`, `replay` and `demo`: parse -> windows -> detectors ->
alerts -> routing (groups, inhibition, silences, maintenance: one message per group).

Pure apart from the parser's clock (for "timestamp in the future"): events go in, alert
transitions come out, and `now` is always passed in. Events are pushed in the order their
times are confirmed (`Confirmed`); before an event is shown to any detector, time advances to
it: every window that closed before it is closed and judged first. The daemon and replay push
events the same way, so they decide the same on the same lines. With a ledger, each event of a
stage source is recorded in it and the ledger rules are shown what it changed; the ledger's own
windows (the derived `ledger` source) close with the others.

Every alert transition also goes to the router (agent/routing). It takes transitions and group
flushes in event-time order up to `lateness` behind the engine's time: a window's verdict,
stamped with the window's end, arrives once `lateness` has passed, and must not miss the flush
it belongs to. In a replay (`batch`) the model scores windows in batches, so its transitions
arrive late: there the router takes everything at `finish`, in time order.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any, Callable

from agent.alerts import AlertBook, AlertState
from agent.config import AgentConfig, LoadedConfig, SourceConfig
from agent.counting import Counts
from agent.detect.base import Detector
from agent.detect.ledger_base import EpisodeRule, LedgerRule
from agent.detect.threshold import Placed, SourceThresholds, ThresholdRule
from agent.features import Windows
from agent.ledger.book import Ledger
from agent.parse import ParseSpec, build_parser
from agent.routing.router import Router
from agent.routing.timespec import later
from agent.store.records import LedgerChanges
from agent.tally import Tally, tally_for
from agent.types import (
    Event,
    Finding,
    Muted,
    Notice,
    ParseFailure,
    RawLine,
    Silence,
    Transition,
    Window,
)

log = logging.getLogger(__name__)

MAX_SAMPLES = 20  # unparsed lines kept per batch


# a journald source's lines are JSON of these fields (agent/sources/journald.py); its unit and
# program go to `extra`, where `group_by` finds them
JOURNALD_FIELDS = {"ts": "ts", "host": "host", "level": "level", "message": "message"}


def parse_spec(src: SourceConfig, cfg: AgentConfig) -> ParseSpec:
    journald = src.format == "journald"
    fields = {**JOURNALD_FIELDS, **src.fields} if journald else dict(src.fields)
    return ParseSpec(name=src.name, format="json" if journald else src.format, fields=fields,
                     values={k: dict(v) for k, v in src.values.items()}, pattern=src.pattern,
                     timestamp_format=src.timestamp_format,
                     event=src.event or ("system" if journald else None),
                     timezone=cfg.timezone, max_future=cfg.max_future)


class Confirmed:
    """Event time of one stream as the next line confirms it: a lone line stamped hours ahead
    (a wrong clock) must not move time forward and make every other line late. `push(ts)`
    returns the time up to which the stream is known to have come."""

    __slots__ = ("last", "prev")

    def __init__(self) -> None:
        self.last: datetime | None = None
        self.prev: datetime | None = None

    def push(self, ts: datetime) -> datetime:
        self.prev, self.last = self.last, ts
        prev = self.prev
        return ts if prev is None or ts < prev else prev


class Engine:
    """Everything between a raw line and an alert transition, for one config and detector set."""

    def __init__(self, loaded: LoadedConfig, detectors: list[Detector],
                 clock: Callable[[], datetime] | None = None, counts: Counts | None = None,
                 ledger: Ledger | None = None, batch: bool = False):
        """`batch`: a replay, whose detectors may hand findings over late (see above)."""
        cfg = loaded.config
        self.config = cfg
        self.parsers = {s.name: build_parser(parse_spec(s, cfg), clock) for s in cfg.sources}
        self.windows = Windows(self.parsers, cfg.window, cfg.lateness)
        self.detectors = detectors
        self.counts = counts if counts is not None else Counts()
        self.ledger = ledger
        self._on_ledger: list[Detector] = []
        # those shown an update without a problem: episode rules (mismatch, duplicate,
        # incomplete) find nothing in one
        self._on_clean: list[Detector] = []
        for d in detectors:
            if isinstance(d, LedgerRule):
                if ledger is None:
                    raise ValueError(f"rule {d.name} needs the invoice ledger (config `ledger:`)")
                d.attach(ledger)
        if ledger is not None:
            ledger.keep_rules([d.name for d in detectors if isinstance(d, LedgerRule)])
        # each source's watchers with their place in `detectors`: findings at one line or
        # window go to the alerts in that order. Its plain threshold rules are judged together
        self._on_event: dict[str, list[tuple[int, Detector]]] = {}
        self._on_window: dict[str, list[tuple[int, Detector]]] = {}
        self._on_tick: list[Detector] = []
        plain: dict[str, list[tuple[int, ThresholdRule]]] = {}
        for pos, d in enumerate(detectors):
            w = d.watch()
            if type(d) is ThresholdRule:
                plain.setdefault(d.source, []).append((pos, d))
                continue
            for s in (w.sources if w.sources is not None else self.parsers):
                if w.events:
                    self._on_event.setdefault(s, []).append((pos, d))
                if w.windows:
                    self._on_window.setdefault(s, []).append((pos, d))
            if w.ticks:
                self._on_tick.append(d)
            if w.ledger:
                self._on_ledger.append(d)
                if type(d).on_ledger is not EpisodeRule.on_ledger:
                    self._on_clean.append(d)
        self._thresholds = {s: SourceThresholds(s, rules, cfg.window)
                            for s, rules in plain.items()}
        self._early = {s: g for s, g in self._thresholds.items() if g.early}
        # the sources whose lines only windows read, counted without an Event (agent/tally.py)
        self.tallies: dict[str, Tally] = {}
        for s, parser in self.parsers.items():
            if ledger is not None and s in ledger.sources:
                continue
            tally = tally_for(parser, [d for _, d in self._on_event.get(s, ())],
                              cfg.window.total_seconds(), self._early.get(s))
            if tally is not None:
                self.tallies[s] = tally
        self.book = AlertBook({d.name: d for d in detectors}, cfg.notify.repeat_interval,
                              cfg.timezone)
        self.router = Router.from_config(cfg)
        self.batch = batch
        self._step = cfg.window.total_seconds()
        self._lateness = cfg.lateness.total_seconds()
        self._due: float | None = None  # event time at which the next window may close
        self.now: datetime | None = None  # how far event time has advanced
        # per source, the newest event time confirmed by the event after it
        self.watermarks: dict[str, datetime] = {}
        self._confirm: dict[str, Confirmed] = {}
        self.failures: list[ParseFailure] = []  # samples, drained into each batch
        self.closed: list[Window] = []  # drained into each batch
        self.changed: list[AlertState] = []  # alert states to persist, drained into each batch
        self.transitions: list[Transition] = []  # taken by the caller
        self.eval_errors: dict[str, str] = {}  # rule -> its last evaluation error
        # for /metrics: windows judged, and the time spent judging them (per-line rules are
        # not timed: a clock read per line would cost more than most rules)
        self.windows_closed = 0
        self.rule_seconds = 0.0

    # -- lines in --------------------------------------------------------------------------
    def parse(self, raw: RawLine) -> Event | ParseFailure:
        result = self.parsers[raw.source].parse(raw)
        if isinstance(result, ParseFailure):
            self.counts.add(raw.source, "unparsed")
            if len(self.failures) < MAX_SAMPLES:
                self.failures.append(result)
        return result

    def confirm(self, ev: Event) -> datetime:
        """The time `ev`'s stream has confirmed, as the merge key of `push`."""
        return self.confirmer(ev.source).push(ev.ts)

    def confirmer(self, source: str) -> Confirmed:
        c = self._confirm.get(source)
        if c is None:
            c = self._confirm[source] = Confirmed()
        return c

    @property
    def due(self) -> float | None:
        """The POSIX event time at which the next window may close (None before the first)."""
        return self._due

    def events(self, lines: Iterable[RawLine]) -> Iterator[tuple[datetime, Event]]:
        """(confirmed time, event) of each line that parses, in line order."""
        for raw in lines:
            r = self.parse(raw)
            if isinstance(r, Event):
                yield self.confirm(r), r

    def push(self, confirmed: datetime, ev: Event, limit: datetime | None = None) -> None:
        """Show one event: first advance time to `confirmed` (no further than `limit`), then
        count it into its window and show it to the detectors that watch events."""
        to = confirmed if limit is None or confirmed < limit else limit
        if self._due is None or to.timestamp() >= self._due:
            self.advance(to)
        if self.ledger is not None and ev.source in self.ledger.sources:
            # before the window check: an invoice's event counts in the ledger however late
            self._ledger_event(ev)
        if not self.windows.add(ev):
            self.counts.add(ev.source, "late")
        else:
            early = self._early.get(ev.source)
            watchers = self._on_event.get(ev.source)
            if early is not None or watchers:
                placed = [] if early is None else early.on_event(ev, self.windows,
                                                                 self.eval_failed)
                for pos, d in watchers or ():
                    try:
                        found = d.on_event(ev, self.windows)
                    except ValueError as exc:
                        self.eval_failed(d, exc)
                    else:
                        if found:
                            placed.extend((pos, f) for f in found)
                if placed:
                    self._decide(_in_order(placed))
        wm = self.watermarks.get(ev.source)
        if wm is None or confirmed > wm:
            self.watermarks[ev.source] = confirmed

    def _ledger_event(self, ev: Event) -> None:
        assert self.ledger is not None
        update = self.ledger.observe(ev)
        if update is None:
            return
        findings: list[Finding] = []
        problem = update.problems or update.mismatches or update.duplicate
        for d in self._on_ledger if problem else self._on_clean:
            try:
                found = d.on_ledger(update)
            except ValueError as exc:
                self.eval_failed(d, exc)
            else:
                if found:
                    findings.extend(found)
        if findings:
            self._decide(findings)

    def decide_placed(self, placed: Placed) -> None:
        """Findings at one line, with their rules' places (agent/tally.py)."""
        self._decide(_in_order(placed))

    def _decide(self, findings: list[Finding]) -> None:
        transitions, changed = self.book.process(findings)
        if transitions:
            self.transitions.extend(transitions)
            self.router.add(transitions)
        self.changed.extend(changed)

    def eval_failed(self, d: Detector, exc: ValueError) -> None:
        """A rule that cannot be evaluated: counted, and logged the first time."""
        self.counts.add("rule:" + d.name, "eval_errors")
        if d.name not in self.eval_errors:
            log.warning("rule %s cannot be evaluated (counted, not repeated): %s", d.name, exc)
        self.eval_errors[d.name] = str(exc)

    # -- time moves ------------------------------------------------------------------------
    def advance(self, now: datetime) -> None:
        """Close the windows `now` has passed and show them (and the tick) to the detectors."""
        # no-ops for what already started; a source or rule added by a reload starts here
        self.windows.start(now)
        if self.ledger is not None:
            self.ledger.start(now)
        for d in self.detectors:
            d.start(now)
        if self.now is None or now > self.now:
            self.now = now
        # the next window can close at its end + lateness; a due time computed from `now`
        # alone would skip one when `now` falls within the lateness after a boundary
        open_from = now.timestamp() - self._lateness
        self._due = open_from - open_from % self._step + self._step + self._lateness
        findings: list[Finding] = []
        closed = self.windows.advance(now)
        if self.ledger is not None:
            closed += self.ledger.advance(now)
        t0 = time.perf_counter()
        # the rules with a live alert: a plain threshold rule found false tells only those
        live = {a.rule for a in self.book.live.values()} if closed and self._thresholds \
            else set()
        for w in closed:
            self.closed.append(w)
            group = self._thresholds.get(w.source)
            placed: Placed = [] if group is None else group.on_window(w, live,
                                                                      self.eval_failed)
            for pos, d in self._on_window.get(w.source, ()):
                try:
                    found = d.on_window(w)
                except ValueError as exc:  # a rule that cannot be evaluated is counted
                    self.eval_failed(d, exc)
                else:
                    placed.extend((pos, f) for f in found)
            findings.extend(_in_order(placed))
        for d in self._on_tick:
            try:
                findings.extend(d.on_tick(now))
            except ValueError as exc:
                self.eval_failed(d, exc)
        if findings:
            self._decide(findings)
        self.rule_seconds += time.perf_counter() - t0
        self.windows_closed += len(closed)
        if not self.batch:
            self.router.advance(later(now, -self.config.lateness))

    def finish(self, now: datetime, data_end: datetime | None = None) -> None:
        """The end of a replay: time advances to `now`, then detectors hand over what they
        deferred. Ledger deadlines after `data_end` (the newest line) are not judged: those
        invoices are still pending when the files end, not missing."""
        if self.ledger is not None and data_end is not None:
            self.ledger.end_of_data(data_end)
        self.advance(now)
        findings: list[Finding] = []
        for d in self.detectors:
            try:
                findings.extend(d.finish(now))
            except ValueError as exc:
                self.eval_failed(d, exc)
        if findings:
            self._decide(findings)
        self.router.finish(now)

    def take(self) -> list[Transition]:
        """The transitions decided since the last call."""
        out, self.transitions = self.transitions, []
        return out

    def take_notices(self) -> list[Notice]:
        """The messages to send (one per alert group and flush) decided since the last call."""
        return self.router.take_notices()

    def take_muted(self) -> list[Muted]:
        """The transitions the router held back since the last call, and why."""
        return self.router.take_muted()

    def set_silences(self, silences: list[Silence]) -> None:
        """The operator's silences, as stored; they apply from the router's next flush."""
        self.router.set_silences(silences)

    # -- checkpoint ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "windows": self.windows.state(),
            "rules": {d.name: d.state() for d in self.detectors},
            "watermarks": {k: v.isoformat() for k, v in self.watermarks.items()},
            # each source's last line, so the first line after a restart is confirmed by it
            # like any other (a lone line stamped hours ahead must not move time then either)
            "last_lines": {k: c.last.isoformat() for k, c in self._confirm.items()
                           if c.last is not None},
            **({"ledger": self.ledger.state()} if self.ledger is not None else {}),
            "router": self.router.state(),
        }

    def restore(self, state: dict[str, Any], alerts: Iterable[AlertState]) -> None:
        self.book.restore(alerts)
        if not state:
            return
        self.windows.restore(state.get("windows", {}))
        saved = state.get("rules", {})
        for d in self.detectors:
            if d.name in saved:
                d.restore(saved[d.name])
        self.watermarks = {k: datetime.fromisoformat(v)
                           for k, v in state.get("watermarks", {}).items() if k in self.parsers}
        for k, v in (state.get("last_lines") or {}).items():
            if k in self.parsers:
                self._confirm.setdefault(k, Confirmed()).last = datetime.fromisoformat(v)
        if self.ledger is not None and isinstance(state.get("ledger"), dict):
            self.ledger.restore(state["ledger"])
        self.router.restore(state.get("router"))

    def drain(self) -> "Drained":
        """Hand over what accumulated since the last call (for the next batch commit)."""
        out = Drained(self.failures, self.closed, self.changed,
                      self.ledger.take() if self.ledger is not None else None)
        self.failures, self.closed, self.changed = [], [], []
        return out


def tune_gc(freeze: bool = False) -> None:
    """Collect cyclic garbage every 50,000 new objects instead of every 700. Each line makes a
    few short-lived dicts and tuples that never form cycles; with the default threshold the
    collector walked them every few hundred lines, about a tenth of a replay's time.
    `freeze`: also set aside for good what exists now (the config, rules, libraries), so
    the collector never walks it again: for a process that does one job and exits (`replay`),
    not for the daemon, whose reloads leave old rules to be collected."""
    if freeze:
        gc.collect()
        gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _in_order(placed: Placed) -> list[Finding]:
    """Findings in the order of their rules (a stable sort: a rule's own stay in order)."""
    if len(placed) > 1:
        placed.sort(key=itemgetter(0))
    return [f for _, f in placed]


@dataclass(frozen=True, slots=True)
class Drained:
    failures: list[ParseFailure]
    windows: list[Window]
    alerts: list[AlertState]
    ledger: LedgerChanges | None = None  # written with the batch's offsets
